//! Descriptive statistics over a set of samples: [`Summary`] and [`percentile`].
//!
//! Conventions (the ones a reader of a vLLM or numpy result expects):
//!
//! | quantity | definition |
//! |---|---|
//! | `mean` | arithmetic mean |
//! | `stddev` | **sample** standard deviation, `sqrt(Σ(x − mean)² / (n − 1))`; `0` when `n == 1` |
//! | `population_stddev` | population standard deviation, `sqrt(Σ(x − mean)² / n)` (numpy's `np.std`, what vLLM reports as `std_*_ms`) |
//! | `median` | the 50th percentile below |
//! | percentile `p` | numpy's default (`method="linear"`): rank `h = p/100 · (n − 1)` on the sorted samples, linear interpolation between `x[⌊h⌋]` and `x[⌈h⌉]` |
//! | `cv` | coefficient of variation, `stddev / |mean|` (sample stddev); `0` when all samples are equal, `+inf` when the mean is 0 but the samples differ |
//!
//! Cost: one sort, `O(n log n)`; the mean and variance use a two-pass sum for accuracy.

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};

/// The percentiles a [`Summary::from_samples`] reports: p50, p90, p95, p99.
pub const DEFAULT_PERCENTILES: [f64; 4] = [50.0, 90.0, 95.0, 99.0];

/// One percentile of a sample set: `p` in `0..=100` and its value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// Which percentile, in `0..=100` (99.9 is allowed).
    pub p: f64,
    /// The value at that percentile (linear interpolation, numpy's default).
    pub value: f64,
}

/// Descriptive statistics of a set of samples (see the module docs for each definition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// **Sample** standard deviation (divides by `n − 1`); `0` for a single sample.
    pub stddev: f64,
    /// Population standard deviation (divides by `n`), as numpy's `np.std` and vLLM's `std_*_ms`.
    pub population_stddev: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Median (the linearly interpolated 50th percentile).
    pub median: f64,
    /// Coefficient of variation, `stddev / |mean|`; `0` if all samples are equal, `+inf` if
    /// the mean is exactly 0 while the samples differ.
    pub cv: f64,
    /// The requested percentiles, in the order they were asked for.
    pub percentiles: Vec<Percentile>,
}

impl Summary {
    /// Summarises `xs` with the [`DEFAULT_PERCENTILES`] (p50, p90, p95, p99).
    ///
    /// # Errors
    /// [`MetricsError::EmptySamples`] if `xs` is empty, [`MetricsError::NonFiniteSample`] if
    /// any sample is NaN or infinite.
    pub fn from_samples(xs: &[f64]) -> Result<Summary> {
        Self::with_percentiles(xs, &DEFAULT_PERCENTILES)
    }

    /// Summarises `xs` and reports the percentiles `ps` (each in `0..=100`).
    ///
    /// # Errors
    /// [`MetricsError::EmptySamples`] if `xs` is empty, [`MetricsError::NonFiniteSample`] if
    /// any sample is NaN or infinite, [`MetricsError::InvalidPercentile`] if any `p` is
    /// outside `0..=100` or NaN.
    pub fn with_percentiles(xs: &[f64], ps: &[f64]) -> Result<Summary> {
        if xs.is_empty() {
            return Err(MetricsError::EmptySamples);
        }
        if let Some((index, &value)) = xs.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(MetricsError::NonFiniteSample { index, value });
        }
        if let Some(&p) = ps.iter().find(|p| !valid_percentile(**p)) {
            return Err(MetricsError::InvalidPercentile(p));
        }

        let mut sorted = xs.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let sum_sq: f64 = sorted.iter().map(|x| (x - mean) * (x - mean)).sum();
        let stddev = if n > 1 {
            (sum_sq / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let population_stddev = (sum_sq / n as f64).sqrt();
        let cv = if stddev == 0.0 {
            0.0
        } else if mean == 0.0 {
            f64::INFINITY
        } else {
            stddev / mean.abs()
        };
        let percentiles = ps
            .iter()
            .map(|&p| Percentile {
                p,
                value: interpolate(&sorted, p),
            })
            .collect();

        Ok(Summary {
            count: n,
            mean,
            stddev,
            population_stddev,
            min: sorted[0],
            max: sorted[n - 1],
            median: interpolate(&sorted, 50.0),
            cv,
            percentiles,
        })
    }

    /// The stored value of percentile `p`, if `p` was one of those requested
    /// (compared to within `1e-9`). `p == 50` always answers with the median.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        self.percentiles
            .iter()
            .find(|q| (q.p - p).abs() < 1e-9)
            .map(|q| q.value)
            .or_else(|| ((p - 50.0).abs() < 1e-9).then_some(self.median))
    }

    /// The same summary with every value multiplied by `factor` (e.g. `1000.0` for
    /// seconds → milliseconds). `count` and `cv` are unchanged for a positive `factor`.
    pub fn scaled(&self, factor: f64) -> Summary {
        let (lo, hi) = if factor >= 0.0 {
            (self.min * factor, self.max * factor)
        } else {
            (self.max * factor, self.min * factor)
        };
        Summary {
            count: self.count,
            mean: self.mean * factor,
            stddev: self.stddev * factor.abs(),
            population_stddev: self.population_stddev * factor.abs(),
            min: lo,
            max: hi,
            median: self.median * factor,
            cv: self.cv,
            percentiles: self
                .percentiles
                .iter()
                .map(|q| Percentile {
                    p: q.p,
                    value: q.value * factor,
                })
                .collect(),
        }
    }
}

/// Percentile `p` (`0..=100`) of **already sorted** (ascending) samples, with numpy's
/// default linear interpolation. `None` if `sorted` is empty or `p` is outside `0..=100`
/// or NaN. The caller is responsible for the order; an unsorted slice gives a meaningless
/// answer (checked in debug builds).
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !valid_percentile(p) {
        return None;
    }
    debug_assert!(
        sorted.windows(2).all(|w| w[0] <= w[1]),
        "percentile() needs ascending input"
    );
    Some(interpolate(sorted, p))
}

fn valid_percentile(p: f64) -> bool {
    (0.0..=100.0).contains(&p)
}

/// numpy `method="linear"`: h = (n-1)·p/100, x[lo] + (h - lo)·(x[hi] - x[lo]).
fn interpolate(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let h = (n - 1) as f64 * p / 100.0;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    if frac == 0.0 || a == b {
        a
    } else {
        a + (b - a) * frac
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn hand_computed_summary() {
        // xs = 1..=10 shuffled. mean 5.5; Σ(x-5.5)² = 82.5; sample var 82.5/9; pop var 8.25.
        let xs = [7.0, 1.0, 10.0, 3.0, 5.0, 2.0, 9.0, 4.0, 8.0, 6.0];
        let s = Summary::from_samples(&xs).unwrap();
        assert_eq!(s.count, 10);
        assert_relative_eq!(s.mean, 5.5);
        assert_relative_eq!(s.stddev, (82.5f64 / 9.0).sqrt(), epsilon = 1e-12);
        assert_relative_eq!(s.stddev, 3.0276503540974917, epsilon = 1e-12);
        assert_relative_eq!(s.population_stddev, 8.25f64.sqrt(), epsilon = 1e-12);
        assert_eq!((s.min, s.max), (1.0, 10.0));
        assert_relative_eq!(s.median, 5.5);
        assert_relative_eq!(s.cv, 3.0276503540974917 / 5.5, epsilon = 1e-12);
        // numpy.percentile(range(1, 11), [50, 90, 95, 99]) = [5.5, 9.1, 9.55, 9.91]
        let want = [(50.0, 5.5), (90.0, 9.1), (95.0, 9.55), (99.0, 9.91)];
        for (got, (p, v)) in s.percentiles.iter().zip(want) {
            assert_eq!(got.p, p);
            assert_relative_eq!(got.value, v, epsilon = 1e-12);
        }
        assert_relative_eq!(s.percentile(95.0).unwrap(), 9.55, epsilon = 1e-12);
        assert_eq!(s.percentile(42.0), None);
    }

    #[test]
    fn numpy_linear_interpolation_small_cases() {
        // numpy.percentile([10, 20, 30, 40], 25) = 17.5; p75 = 32.5; p0/p100 = min/max.
        let xs = [10.0, 20.0, 30.0, 40.0];
        assert_relative_eq!(percentile(&xs, 25.0).unwrap(), 17.5);
        assert_relative_eq!(percentile(&xs, 75.0).unwrap(), 32.5);
        assert_eq!(percentile(&xs, 0.0), Some(10.0));
        assert_eq!(percentile(&xs, 100.0), Some(40.0));
        // numpy.percentile([1, 2, 3, 4, 100], 99.9) = 99.616
        let ys = [1.0, 2.0, 3.0, 4.0, 100.0];
        assert_relative_eq!(percentile(&ys, 99.9).unwrap(), 99.616, epsilon = 1e-9);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&xs, 100.5), None);
        assert_eq!(percentile(&xs, -1.0), None);
        assert_eq!(percentile(&xs, f64::NAN), None);
    }

    #[test]
    fn single_sample() {
        let s = Summary::from_samples(&[4.2]).unwrap();
        assert_eq!(s.count, 1);
        assert_eq!((s.mean, s.min, s.max, s.median), (4.2, 4.2, 4.2, 4.2));
        assert_eq!((s.stddev, s.population_stddev, s.cv), (0.0, 0.0, 0.0));
        assert!(s.percentiles.iter().all(|q| q.value == 4.2));
    }

    #[test]
    fn cv_with_zero_mean() {
        let s = Summary::from_samples(&[-1.0, 1.0]).unwrap();
        assert_eq!(s.mean, 0.0);
        assert!(s.cv.is_infinite());
        let z = Summary::from_samples(&[0.0, 0.0]).unwrap();
        assert_eq!(z.cv, 0.0);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            Summary::from_samples(&[]),
            Err(MetricsError::EmptySamples)
        ));
        assert!(matches!(
            Summary::from_samples(&[1.0, f64::NAN]),
            Err(MetricsError::NonFiniteSample { index: 1, .. })
        ));
        assert!(matches!(
            Summary::from_samples(&[f64::INFINITY]),
            Err(MetricsError::NonFiniteSample { index: 0, .. })
        ));
        assert!(matches!(
            Summary::with_percentiles(&[1.0], &[50.0, 101.0]),
            Err(MetricsError::InvalidPercentile(p)) if p == 101.0
        ));
    }

    #[test]
    fn scaled_to_milliseconds() {
        let s = Summary::with_percentiles(&[0.010, 0.020, 0.030], &[99.0]).unwrap();
        let ms = s.scaled(1000.0);
        assert_relative_eq!(ms.mean, 20.0, epsilon = 1e-9);
        assert_relative_eq!(ms.median, 20.0, epsilon = 1e-9);
        assert_relative_eq!(ms.stddev, 10.0, epsilon = 1e-9);
        assert_relative_eq!(ms.percentile(99.0).unwrap(), 29.8, epsilon = 1e-9);
        assert_relative_eq!(ms.cv, s.cv);
    }

    #[test]
    fn serde_round_trip() {
        let s = Summary::from_samples(&[3.0, 1.0, 2.0]).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn samples() -> impl Strategy<Value = Vec<f64>> {
            prop::collection::vec(-1e6f64..1e6, 1..200)
        }

        proptest! {
            #[test]
            fn percentiles_lie_between_min_and_max(xs in samples(), p in 0.0f64..=100.0) {
                let s = Summary::with_percentiles(&xs, &[p]).unwrap();
                let v = s.percentiles[0].value;
                prop_assert!(s.min <= v && v <= s.max, "{} <= {} <= {}", s.min, v, s.max);
                prop_assert!(s.min <= s.median && s.median <= s.max);
                prop_assert!(s.min <= s.mean + 1e-6 && s.mean <= s.max + 1e-6);
            }

            #[test]
            fn percentile_is_monotone_in_p(xs in samples(), a in 0.0f64..=100.0, b in 0.0f64..=100.0) {
                let mut sorted = xs.clone();
                sorted.sort_by(f64::total_cmp);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                prop_assert!(percentile(&sorted, lo).unwrap() <= percentile(&sorted, hi).unwrap());
            }

            #[test]
            fn extremes_are_min_and_max(xs in samples()) {
                let s = Summary::with_percentiles(&xs, &[0.0, 100.0]).unwrap();
                prop_assert_eq!(s.percentiles[0].value, s.min);
                prop_assert_eq!(s.percentiles[1].value, s.max);
            }

            #[test]
            fn sample_stddev_exceeds_population(xs in samples()) {
                let s = Summary::from_samples(&xs).unwrap();
                prop_assert!(s.stddev >= s.population_stddev);
                prop_assert!(s.stddev >= 0.0);
            }

            #[test]
            fn order_does_not_matter(mut xs in samples()) {
                let a = Summary::from_samples(&xs).unwrap();
                xs.reverse();
                let b = Summary::from_samples(&xs).unwrap();
                prop_assert_eq!(a.median, b.median);
                prop_assert_eq!(a.percentiles, b.percentiles);
            }
        }
    }
}
