//! When serving-mode requests arrive: all at once, a Poisson process, or a gamma process
//! with a burstiness factor — vLLM's `--request-rate` / `--burstiness`
//! (`vllm/benchmarks/serve.py`, `get_request`).
//!
//! Inter-arrival gaps are drawn from a gamma distribution with shape `burstiness` and scale
//! `1 / (request_rate · burstiness)`, so the mean gap is `1 / request_rate` whatever the
//! burstiness, and the coefficient of variation of the gaps is `1 / √burstiness`:
//! `burstiness = 1` is a Poisson process (exponential gaps, CV 1), below 1 is burstier,
//! above 1 is more regular. As in vLLM the first request arrives at time 0 and each later
//! one a gap after the previous; `request_rate = ∞` sends every request at time 0.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// An arrival process: a rate (requests/s, may be infinite) and a burstiness.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArrivalProcess {
    /// Mean requests per second; `f64::INFINITY` sends all at once. Serialised as `null`
    /// when infinite.
    #[serde(with = "rate_serde")]
    pub request_rate: f64,
    /// Gamma shape: 1 = Poisson, < 1 burstier, > 1 more regular.
    pub burstiness: f64,
}

mod rate_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(rate: &f64, s: S) -> Result<S::Ok, S::Error> {
        if rate.is_finite() {
            s.serialize_f64(*rate)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

impl ArrivalProcess {
    /// Every request at time 0 (`--request-rate inf`).
    pub const ALL_AT_ONCE: ArrivalProcess = ArrivalProcess {
        request_rate: f64::INFINITY,
        burstiness: 1.0,
    };

    /// A checked process.
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] when `request_rate` is not > 0 (it may be infinite)
    /// or `burstiness` is not a finite number > 0.
    pub fn new(request_rate: f64, burstiness: f64) -> Result<ArrivalProcess> {
        if request_rate.is_nan() || request_rate <= 0.0 {
            return Err(BenchError::InvalidArgument(format!(
                "--request-rate must be > 0 requests/s (or inf), got {request_rate}"
            )));
        }
        if !burstiness.is_finite() || burstiness <= 0.0 {
            return Err(BenchError::InvalidArgument(format!(
                "--burstiness must be a finite number > 0, got {burstiness}"
            )));
        }
        Ok(ArrivalProcess {
            request_rate,
            burstiness,
        })
    }

    /// Whether every request arrives at once.
    pub fn is_all_at_once(&self) -> bool {
        self.request_rate.is_infinite()
    }

    /// Arrival times (seconds from the start, ascending, the first 0) of `n` requests,
    /// reproducible from `seed`.
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] when the process's parameters are out of range (a
    /// value built without [`ArrivalProcess::new`]).
    pub fn arrival_times(&self, n: usize, seed: u64) -> Result<Vec<f64>> {
        let checked = ArrivalProcess::new(self.request_rate, self.burstiness)?;
        if checked.is_all_at_once() {
            return Ok(vec![0.0; n]);
        }
        let scale = 1.0 / (checked.request_rate * checked.burstiness);
        let gamma = Gamma::new(checked.burstiness, scale).map_err(|e| {
            BenchError::InvalidArgument(format!(
                "no gamma distribution for rate {} and burstiness {}: {e}",
                checked.request_rate, checked.burstiness
            ))
        })?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut t = 0.0;
        Ok((0..n)
            .map(|i| {
                if i > 0 {
                    t += gamma.sample(&mut rng);
                }
                t
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean and coefficient of variation of the gaps between `times`.
    fn gap_stats(times: &[f64]) -> (f64, f64) {
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn poisson_gaps_have_mean_one_over_rate_and_cv_one() -> Result<()> {
        let times = ArrivalProcess::new(4.0, 1.0)?.arrival_times(20_000, 42)?;
        assert_eq!(times[0], 0.0);
        assert!(times.windows(2).all(|w| w[1] >= w[0]));
        let (mean, cv) = gap_stats(&times);
        // Standard error of the mean gap: 0.25 / sqrt(20000) ≈ 0.0018.
        assert!((mean - 0.25).abs() < 0.01, "mean gap {mean}");
        assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
        Ok(())
    }

    #[test]
    fn burstiness_sets_the_cv_not_the_mean() -> Result<()> {
        for (b, tol) in [(0.25, 0.12), (0.5, 0.08), (4.0, 0.03), (16.0, 0.02)] {
            let times = ArrivalProcess::new(10.0, b)?.arrival_times(20_000, 7)?;
            let (mean, cv) = gap_stats(&times);
            assert!((mean - 0.1).abs() < 0.1 * 0.06, "b={b}: mean gap {mean}");
            let want = 1.0 / f64::sqrt(b);
            assert!((cv - want).abs() < tol, "b={b}: cv {cv}, want {want}");
        }
        Ok(())
    }

    #[test]
    fn seeded_reproducible_and_all_at_once() -> Result<()> {
        let p = ArrivalProcess::new(2.0, 0.5)?;
        assert_eq!(p.arrival_times(100, 1)?, p.arrival_times(100, 1)?);
        assert_ne!(p.arrival_times(100, 1)?, p.arrival_times(100, 2)?);
        let all = ArrivalProcess::new(f64::INFINITY, 1.0)?;
        assert!(all.is_all_at_once());
        assert_eq!(all.arrival_times(3, 0)?, vec![0.0; 3]);
        assert!(ArrivalProcess::new(1.0, 1.0)?
            .arrival_times(0, 0)?
            .is_empty());
        Ok(())
    }

    #[test]
    fn rejects_non_positive_rate_and_burstiness() {
        for (r, b) in [
            (0.0, 1.0),
            (-1.0, 1.0),
            (f64::NAN, 1.0),
            (1.0, 0.0),
            (1.0, -2.0),
            (1.0, f64::INFINITY),
            (1.0, f64::NAN),
        ] {
            assert!(
                ArrivalProcess::new(r, b).is_err(),
                "rate {r} burstiness {b}"
            );
        }
        let bad = ArrivalProcess {
            request_rate: -1.0,
            burstiness: 1.0,
        };
        assert!(bad.arrival_times(3, 0).is_err());
    }

    #[test]
    fn infinite_rate_round_trips_through_json_as_null() -> Result<()> {
        let v = serde_json::to_value(ArrivalProcess::ALL_AT_ONCE)
            .map_err(|e| BenchError::InvalidArgument(e.to_string()))?;
        assert!(v["request_rate"].is_null());
        let back: ArrivalProcess =
            serde_json::from_value(v).map_err(|e| BenchError::InvalidArgument(e.to_string()))?;
        assert!(back.is_all_at_once());
        Ok(())
    }
}
