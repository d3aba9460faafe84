//! Repetitions (`--repeat N`): run a mode N times and report each figure's median and
//! spread (min, max, sample stddev, CV), with a warning — in the report and in the log —
//! when the GPU's clocks throttled in any run or a figure's CV exceeds [`CV_WARNING`].
//!
//! The report of the repeated run is the run whose headline figure (e.g. throughput) is the
//! median (the lower middle for an even N), flattened at the top level, so a repeated result
//! reads like a single one; every run is kept under `runs`.

use std::collections::BTreeMap;

use metrics::Summary;
use serde::Serialize;

use crate::energy::EnergyReport;
use crate::error::{BenchError, Result};

/// Coefficient of variation above which a figure's spread is reported as large (5 %).
pub const CV_WARNING: f64 = 0.05;

/// What a mode's report gives to repeat statistics.
pub trait RunFigures {
    /// The figure that picks the median run (e.g. `throughput_tokens_per_sec`).
    fn headline(&self) -> &'static str;
    /// The figures whose spread is reported, by result key.
    fn figures(&self) -> Vec<(&'static str, f64)>;
    /// The run's energy report (clocks and throttling).
    fn energy(&self) -> &EnergyReport;
}

/// The spread of one figure over the repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Runs that reported the figure.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    pub stddev: f64,
    /// `stddev / |mean|` (0 for one run).
    pub cv: f64,
}

/// Repeat statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepeatSummary {
    /// Runs made.
    pub repeats: usize,
    /// Index (0-based) of the run reported at the top level.
    pub median_run: usize,
    /// Each figure's spread, by result key.
    pub spread: BTreeMap<String, Spread>,
    /// Whether any run saw its GPU clocks throttle.
    pub throttled: bool,
    /// Throttling and large-spread warnings (also logged).
    pub warnings: Vec<String>,
}

/// A repeated run: the median run's report flattened, the statistics, and every run.
#[derive(Debug, Clone, Serialize)]
pub struct Repeated<R> {
    /// The median run's report.
    #[serde(flatten)]
    pub report: R,
    /// Median and spread of each figure, warnings.
    pub repeat: RepeatSummary,
    /// Every run, in order (omitted for a single run).
    #[serde(skip_serializing_if = "runs_omitted")]
    pub runs: Vec<R>,
}

fn runs_omitted<R>(runs: &[R]) -> bool {
    runs.len() <= 1
}

/// Runs `run(i)` for `i` in `0..n` and summarises the runs.
///
/// # Errors
/// [`BenchError::InvalidArgument`] for `n == 0`; the first run's error.
pub fn repeat<R: RunFigures + Clone>(
    n: usize,
    mut run: impl FnMut(usize) -> Result<R>,
) -> Result<Repeated<R>> {
    if n == 0 {
        return Err(BenchError::InvalidArgument(
            "--repeat must be at least 1".into(),
        ));
    }
    let runs = (0..n).map(&mut run).collect::<Result<Vec<R>>>()?;
    let summary = summarize(&runs)?;
    for w in &summary.warnings {
        tracing::warn!("{w}");
    }
    Ok(Repeated {
        report: runs[summary.median_run].clone(),
        repeat: summary,
        runs,
    })
}

/// The statistics of `runs` (see the [module docs](self)).
///
/// # Errors
/// [`BenchError::InvalidArgument`] when `runs` is empty; [`BenchError::Metrics`] for a
/// non-finite figure.
pub fn summarize<R: RunFigures>(runs: &[R]) -> Result<RepeatSummary> {
    let Some(first) = runs.first() else {
        return Err(BenchError::InvalidArgument("no run to summarise".into()));
    };
    let headline = first.headline();
    let mut by_key: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut headline_values = Vec::with_capacity(runs.len());
    for r in runs {
        let figures = r.figures();
        headline_values.push(
            figures
                .iter()
                .find(|(k, _)| *k == headline)
                .map_or(f64::NAN, |(_, v)| *v),
        );
        for (k, v) in figures {
            by_key.entry(k).or_default().push(v);
        }
    }
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| headline_values[a].total_cmp(&headline_values[b]));
    let median_run = order[(runs.len() - 1) / 2];

    let mut spread = BTreeMap::new();
    let mut warnings = Vec::new();
    for (k, xs) in by_key {
        let s = Summary::from_samples(&xs)?;
        if xs.len() > 1 && s.cv > CV_WARNING {
            warnings.push(format!(
                "{k} varies by {:.1}% (CV) over {} runs (min {:.4}, max {:.4}): more than {:.0}%, the figure is noisy",
                s.cv * 100.0,
                xs.len(),
                s.min,
                s.max,
                CV_WARNING * 100.0
            ));
        }
        spread.insert(
            k.to_string(),
            Spread {
                n: s.count,
                median: s.median,
                min: s.min,
                max: s.max,
                mean: s.mean,
                stddev: s.stddev,
                cv: s.cv,
            },
        );
    }
    let mut throttled = false;
    for (i, r) in runs.iter().enumerate() {
        let e = r.energy();
        if e.throttled {
            throttled = true;
            warnings.push(format!(
                "GPU clocks throttled during run {} of {} ({}; SM clock {}-{} MHz)",
                i + 1,
                runs.len(),
                if e.throttle_reasons.is_empty() {
                    "reason not reported".to_string()
                } else {
                    e.throttle_reasons.join(", ")
                },
                e.min_sm_clock_mhz.map_or("?".into(), |c| c.to_string()),
                e.max_sm_clock_mhz.map_or("?".into(), |c| c.to_string()),
            ));
        }
    }
    Ok(RepeatSummary {
        repeats: runs.len(),
        median_run,
        spread,
        throttled,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Serialize)]
    struct FakeRun {
        tps: f64,
        ttft: f64,
        #[serde(skip)]
        energy: EnergyReport,
    }

    impl RunFigures for FakeRun {
        fn headline(&self) -> &'static str {
            "tps"
        }
        fn figures(&self) -> Vec<(&'static str, f64)> {
            vec![("tps", self.tps), ("ttft", self.ttft)]
        }
        fn energy(&self) -> &EnergyReport {
            &self.energy
        }
    }

    fn run(tps: f64, ttft: f64) -> FakeRun {
        FakeRun {
            tps,
            ttft,
            energy: EnergyReport::unavailable("cpu"),
        }
    }

    #[test]
    fn median_run_and_spread() -> Result<()> {
        let runs = [run(100.0, 10.0), run(120.0, 10.1), run(110.0, 9.9)];
        let r = repeat(3, |i| Ok(runs[i].clone()))?;
        assert_eq!(r.repeat.median_run, 2);
        assert_eq!(r.report.tps, 110.0);
        let tps = r.repeat.spread["tps"];
        assert_eq!(
            (tps.min, tps.median, tps.max, tps.n),
            (100.0, 110.0, 120.0, 3)
        );
        approx::assert_abs_diff_eq!(tps.stddev, 10.0, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(tps.cv, 10.0 / 110.0, epsilon = 1e-12);
        // tps CV 9% warns; ttft CV 1% does not.
        assert_eq!(r.repeat.warnings.len(), 1, "{:?}", r.repeat.warnings);
        assert!(r.repeat.warnings[0].starts_with("tps varies by 9.1%"));
        let v = serde_json::to_value(&r).map_err(|e| BenchError::InvalidArgument(e.to_string()))?;
        assert_eq!(v["runs"].as_array().map(Vec::len), Some(3));
        Ok(())
    }

    #[test]
    fn single_run_has_no_spread_warning_and_no_runs_list() -> Result<()> {
        let r = repeat(1, |_| Ok(run(5.0, 1.0)))?;
        assert!(r.repeat.warnings.is_empty());
        assert_eq!(r.repeat.spread["tps"].cv, 0.0);
        let v = serde_json::to_value(&r).map_err(|e| BenchError::InvalidArgument(e.to_string()))?;
        assert!(v.get("runs").is_none());
        assert!(repeat(0, |_| Ok(run(1.0, 1.0))).is_err());
        Ok(())
    }

    #[test]
    fn throttling_warns() -> Result<()> {
        let mut hot = run(100.0, 1.0);
        hot.energy.throttled = true;
        hot.energy.throttle_reasons = vec!["sw_thermal_slowdown".into()];
        hot.energy.min_sm_clock_mhz = Some(1400);
        hot.energy.max_sm_clock_mhz = Some(1980);
        let s = summarize(&[run(100.0, 1.0), hot])?;
        assert!(s.throttled);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("run 2 of 2 (sw_thermal_slowdown; SM clock 1400-1980 MHz)"));
        Ok(())
    }
}
