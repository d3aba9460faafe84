//! How long to time: warm-up, then repeat until the noise is low enough or a budget ends.
//!
//! The rule, checked after each batch of launches:
//!
//! | stop when                                           | reason           |
//! |-----------------------------------------------------|------------------|
//! | `samples >= max_iters`                              | `max_iterations` |
//! | `samples >= min_iters` and `cv(samples) <= target_cv` | `converged`    |
//! | `elapsed >= time_budget` and `samples >= 3`          | `time_budget`   |
//!
//! `cv` is the coefficient of variation (sample stddev / mean) of the per-launch times.
//! Batches are sized to take about [`BATCH_TARGET`] each, so the rule is checked often
//! without a host round trip per launch.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{MatmulError, Result};

/// Samples the time budget needs before it may stop a measurement.
pub const MIN_SAMPLES_AT_BUDGET: usize = 3;

/// Roughly how long one batch of timed launches should take.
pub const BATCH_TARGET: Duration = Duration::from_millis(50);

/// Largest batch of launches between two checks of the rule.
pub const MAX_BATCH: usize = 64;

/// Why a measurement stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The coefficient of variation fell to the target after the minimum samples.
    Converged,
    /// The maximum number of samples was reached.
    MaxIterations,
    /// The time budget ran out.
    TimeBudget,
}

impl StopReason {
    /// The snake_case name used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Converged => "converged",
            StopReason::MaxIterations => "max_iterations",
            StopReason::TimeBudget => "time_budget",
        }
    }
}

/// Warm-up and stop parameters of one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRule {
    /// Untimed launches before timing starts (at least this many...).
    pub warmup_iters: usize,
    /// ...and for at least this long, so clocks settle.
    pub warmup_time: Duration,
    /// Samples needed before the noise rule may stop.
    pub min_iters: usize,
    /// Samples after which timing always stops.
    pub max_iters: usize,
    /// Coefficient of variation low enough to stop.
    pub target_cv: f64,
    /// Wall-clock time (timed part) after which timing stops once it has 3 samples.
    pub time_budget: Duration,
}

impl Default for StopRule {
    fn default() -> Self {
        Self {
            warmup_iters: 10,
            warmup_time: Duration::from_millis(200),
            min_iters: 20,
            max_iters: 200,
            target_cv: 0.02,
            time_budget: Duration::from_secs(5),
        }
    }
}

impl StopRule {
    /// Checks that the parameters make sense.
    ///
    /// # Errors
    /// [`MatmulError::InvalidParameter`] if `max_iters` is 0, `min_iters > max_iters`,
    /// `target_cv` is negative or not finite, or the time budget is zero.
    pub fn validate(&self) -> Result<()> {
        if self.max_iters == 0 {
            return Err(MatmulError::InvalidParameter(
                "iterations must be at least 1".into(),
            ));
        }
        if self.min_iters > self.max_iters {
            return Err(MatmulError::InvalidParameter(format!(
                "minimum iterations ({}) above maximum ({})",
                self.min_iters, self.max_iters
            )));
        }
        if !self.target_cv.is_finite() || self.target_cv < 0.0 {
            return Err(MatmulError::InvalidParameter(format!(
                "target coefficient of variation must be a finite number >= 0, got {}",
                self.target_cv
            )));
        }
        if self.time_budget.is_zero() {
            return Err(MatmulError::InvalidParameter(
                "time budget must be above 0".into(),
            ));
        }
        Ok(())
    }

    /// Whether to stop after `samples` (per-launch times) taking `elapsed` in total, and why.
    pub fn decide(&self, samples: &[f64], elapsed: Duration) -> Option<StopReason> {
        let n = samples.len();
        if n >= self.max_iters {
            return Some(StopReason::MaxIterations);
        }
        if n >= self.min_iters.max(2) && coefficient_of_variation(samples) <= self.target_cv {
            return Some(StopReason::Converged);
        }
        if elapsed >= self.time_budget && n >= MIN_SAMPLES_AT_BUDGET {
            return Some(StopReason::TimeBudget);
        }
        None
    }

    /// How many launches the next batch should have, given the time of one launch so far
    /// and how many samples exist: about [`BATCH_TARGET`] of work, never past `max_iters`.
    pub fn next_batch(&self, seconds_per_launch: f64, samples: usize) -> usize {
        let want = if seconds_per_launch > 0.0 && seconds_per_launch.is_finite() {
            (BATCH_TARGET.as_secs_f64() / seconds_per_launch).round() as usize
        } else {
            1
        };
        let room = self.max_iters.saturating_sub(samples).max(1);
        want.clamp(1, MAX_BATCH).min(room)
    }
}

/// Sample standard deviation over mean of `xs` (through [`metrics::Summary`]); infinite for
/// fewer than 2 samples or samples that cannot be summarised, so they never count as quiet.
pub fn coefficient_of_variation(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::INFINITY;
    }
    metrics::Summary::from_samples(xs).map_or(f64::INFINITY, |s| s.cv)
}

/// The per-launch times of one measurement and why it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedSamples {
    /// Milliseconds of each timed launch, in order.
    pub samples_ms: Vec<f64>,
    /// Why timing stopped.
    pub stop_reason: StopReason,
    /// Untimed warm-up launches that ran first.
    pub warmup_launches: usize,
    /// Wall-clock seconds of the timed part.
    pub wall_seconds: f64,
}

/// Runs warm-up and timed batches under `rule`.
///
/// `time_batch(n)` must run `n` launches and return the milliseconds of each (device events
/// on a GPU, a clock on the CPU).
///
/// # Errors
/// [`MatmulError::InvalidParameter`] for a bad rule; any error of `time_batch`; a batch that
/// returns the wrong number of samples or a non-finite or negative time.
pub fn run_timed<F>(rule: &StopRule, mut time_batch: F) -> Result<TimedSamples>
where
    F: FnMut(usize) -> Result<Vec<f64>>,
{
    rule.validate()?;
    // Warm-up: at least warmup_iters launches and warmup_time, in growing batches.
    let warm_start = Instant::now();
    let mut warmup_launches = 0usize;
    let mut seconds_per_launch = 0f64;
    while warmup_launches < rule.warmup_iters || warm_start.elapsed() < rule.warmup_time {
        let n = if warmup_launches == 0 {
            1
        } else {
            rule.next_batch(seconds_per_launch, 0)
                .min(rule.warmup_iters.max(1))
        };
        let t = checked_batch(n, time_batch(n)?)?;
        seconds_per_launch = t.iter().sum::<f64>() / 1e3 / n as f64;
        warmup_launches += n;
        if rule.warmup_iters == 0 && rule.warmup_time.is_zero() {
            break;
        }
    }
    let start = Instant::now();
    let mut samples: Vec<f64> = Vec::new();
    loop {
        let n = rule.next_batch(seconds_per_launch, samples.len());
        let t = checked_batch(n, time_batch(n)?)?;
        seconds_per_launch = t.iter().sum::<f64>() / 1e3 / n as f64;
        samples.extend(t);
        if let Some(stop_reason) = rule.decide(&samples, start.elapsed()) {
            return Ok(TimedSamples {
                samples_ms: samples,
                stop_reason,
                warmup_launches,
                wall_seconds: start.elapsed().as_secs_f64(),
            });
        }
    }
}

fn checked_batch(expected: usize, times: Vec<f64>) -> Result<Vec<f64>> {
    if times.len() != expected {
        return Err(MatmulError::Statistics(format!(
            "a batch of {expected} launches returned {} times",
            times.len()
        )));
    }
    if let Some(bad) = times.iter().find(|t| !t.is_finite() || **t < 0.0) {
        return Err(MatmulError::Statistics(format!(
            "a launch time of {bad} ms is not a valid duration"
        )));
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> StopRule {
        StopRule {
            warmup_iters: 2,
            warmup_time: Duration::ZERO,
            min_iters: 5,
            max_iters: 50,
            target_cv: 0.01,
            time_budget: Duration::from_secs(3600),
        }
    }

    #[test]
    fn quiet_samples_converge_after_the_minimum() {
        let r = rule();
        let quiet = [1.0, 1.001, 0.999, 1.0];
        assert_eq!(r.decide(&quiet, Duration::ZERO), None, "below min_iters");
        let quiet5 = [1.0, 1.001, 0.999, 1.0, 1.0];
        assert_eq!(
            r.decide(&quiet5, Duration::ZERO),
            Some(StopReason::Converged)
        );
    }

    #[test]
    fn noisy_samples_run_to_the_maximum_or_the_budget() {
        let r = rule();
        let noisy: Vec<f64> = (0..49)
            .map(|i| if i % 2 == 0 { 1.0 } else { 2.0 })
            .collect();
        assert_eq!(r.decide(&noisy, Duration::ZERO), None);
        let mut at_max = noisy.clone();
        at_max.push(1.0);
        assert_eq!(
            r.decide(&at_max, Duration::ZERO),
            Some(StopReason::MaxIterations)
        );
        assert_eq!(
            r.decide(&noisy, Duration::from_secs(4000)),
            Some(StopReason::TimeBudget)
        );
        // the budget needs 3 samples
        assert_eq!(r.decide(&[1.0, 2.0], Duration::from_secs(4000)), None);
    }

    #[test]
    fn bad_rules_are_rejected() {
        let mut r = rule();
        r.max_iters = 0;
        assert!(r.validate().is_err());
        let mut r = rule();
        r.min_iters = 51;
        assert!(r.validate().is_err());
        let mut r = rule();
        r.target_cv = f64::NAN;
        assert!(r.validate().is_err());
        let mut r = rule();
        r.time_budget = Duration::ZERO;
        assert!(r.validate().is_err());
        assert!(StopRule::default().validate().is_ok());
    }

    #[test]
    fn batches_aim_at_the_target_and_respect_the_maximum() {
        let r = rule();
        assert_eq!(r.next_batch(0.010, 0), 5); // 50 ms / 10 ms
        assert_eq!(r.next_batch(1e-9, 0), 50); // max_iters
        let long = StopRule {
            max_iters: 1000,
            ..rule()
        };
        assert_eq!(long.next_batch(1e-9, 0), MAX_BATCH);
        assert_eq!(r.next_batch(10.0, 0), 1);
        assert_eq!(r.next_batch(1e-9, 48), 2);
    }

    #[test]
    fn run_timed_stops_on_convergence_with_constant_times() {
        let mut launches = 0;
        let t = run_timed(&rule(), |n| {
            launches += n;
            Ok(vec![2.0; n])
        })
        .unwrap();
        assert_eq!(t.stop_reason, StopReason::Converged);
        assert!(t.samples_ms.len() >= 5);
        assert!(t.warmup_launches >= 2);
        assert_eq!(launches, t.samples_ms.len() + t.warmup_launches);
    }

    #[test]
    fn run_timed_runs_noise_to_the_maximum() {
        let mut i = 0u32;
        let t = run_timed(&rule(), |n| {
            Ok((0..n)
                .map(|_| {
                    i += 1;
                    1.0 + f64::from(i % 3)
                })
                .collect())
        })
        .unwrap();
        assert_eq!(t.stop_reason, StopReason::MaxIterations);
        assert_eq!(t.samples_ms.len(), 50);
    }

    #[test]
    fn run_timed_rejects_bad_batches() {
        assert!(run_timed(&rule(), |n| Ok(vec![1.0; n + 1])).is_err());
        assert!(run_timed(&rule(), |n| Ok(vec![f64::NAN; n])).is_err());
        assert!(run_timed(&rule(), |_| Err(MatmulError::Cuda("boom".into()))).is_err());
    }

    #[test]
    fn cv_is_stddev_over_mean() {
        assert_eq!(coefficient_of_variation(&[3.0, 3.0, 3.0]), 0.0);
        let cv = coefficient_of_variation(&[1.0, 3.0]);
        assert!((cv - (2f64.sqrt() / 2.0)).abs() < 1e-12);
        assert!(coefficient_of_variation(&[1.0]).is_infinite());
    }
}
