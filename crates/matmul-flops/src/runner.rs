//! The generic drivers: check, autotune, time and summarise a GEMM or a bandwidth test on
//! any backend.
//!
//! GEMM, per (dtype, shape):
//! 1. random inputs rounded to the dtype ([`HostOperands`]); f64 reference rows;
//! 2. every candidate algorithm runs once and is checked — a wrong one is dropped, and if none
//!    is right the GEMM is an error ([`MatmulError::CheckFailed`]);
//! 3. warm-up, then each correct candidate is timed briefly; the fastest median wins;
//! 4. the winner is timed under the [`StopRule`] while the GPU sampler records clocks;
//! 5. TFLOP/s at the median, best and worst launch, and % of the architecture's peak.

use std::time::Duration;

use crate::backend::{GemmBackend, GemmOptions, PreparedGemm};
use crate::bandwidth::{BandwidthBackend, BandwidthTest};
use crate::check::{check_rows, sample_rows, ReferenceRows, DEFAULT_CHECK_ROWS};
use crate::clocks::ClockSampler;
use crate::dtype::GemmDtype;
use crate::error::{MatmulError, Result};
use crate::operands::HostOperands;
use crate::result::{AlgorithmTrial, BandwidthResult, GemmResult};
use crate::shape::GemmProblem;
use crate::stop_rule::{run_timed, StopRule};

/// Everything [`run_gemm`] needs besides the backend and the problem.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmRunConfig {
    /// Numerics, autotune candidates, input rotation.
    pub options: GemmOptions,
    /// Warm-up and stop rule of the final measurement.
    pub rule: StopRule,
    /// Rows of C checked against the f64 reference.
    pub check_rows: usize,
    /// Seed of the random inputs.
    pub seed: u64,
}

impl Default for GemmRunConfig {
    fn default() -> Self {
        Self {
            options: GemmOptions::default(),
            rule: StopRule::default(),
            check_rows: DEFAULT_CHECK_ROWS,
            seed: 0x5EED,
        }
    }
}

/// The short rule each autotune candidate is timed with.
fn tuning_rule(main: &StopRule) -> StopRule {
    StopRule {
        warmup_iters: 2,
        warmup_time: Duration::ZERO,
        min_iters: 5.min(main.max_iters),
        max_iters: 10.min(main.max_iters),
        target_cv: 0.01,
        time_budget: Duration::from_millis(750).min(main.time_budget),
    }
}

/// Checks, autotunes and times one GEMM (see the module docs for the steps).
///
/// # Errors
/// [`MatmulError::UnsupportedDtype`], [`MatmulError::InsufficientMemory`],
/// [`MatmulError::CheckFailed`] when no algorithm computes the right result,
/// [`MatmulError::InvalidParameter`] for a bad stop rule, and device failures.
pub fn run_gemm(
    backend: &mut dyn GemmBackend,
    problem: &GemmProblem,
    dtype: GemmDtype,
    config: &GemmRunConfig,
) -> Result<GemmResult> {
    config.rule.validate()?;
    let shape = problem.shape;
    backend.supports(dtype)?;
    backend.ensure_fits(dtype, &shape, &config.options)?;
    let info = backend.device().clone();
    tracing::debug!(%dtype, %shape, label = %problem.label, "generating inputs");
    let operands = HostOperands::random(dtype, shape, config.seed)?;
    let rows = sample_rows(shape.m, config.check_rows, config.seed);
    let reference = ReferenceRows::compute(&operands, &rows)?;

    let mut gemm = backend.prepare(&operands, &config.options)?;
    let mode = gemm.mode();

    // 2. correctness of every candidate
    let mut trials = Vec::new();
    let mut passing = Vec::new();
    let mut first_failure = None;
    for index in 0..gemm.algorithm_count() {
        gemm.select_algorithm(index)?;
        let label = gemm.algorithm_label();
        // A candidate the library offered but cannot run (e.g. NOT_SUPPORTED at launch) is
        // rejected like a wrong one; only when no candidate runs and passes is it an error.
        let checked = gemm
            .run_once()
            .and_then(|()| gemm.read_rows(&reference.rows))
            .and_then(|got| check_rows(&operands, &reference, &got, &label));
        match checked {
            Ok(report) => passing.push((index, report)),
            Err(e) => {
                tracing::warn!(%dtype, %shape, algorithm = %label, error = %e, "candidate rejected");
                trials.push(AlgorithmTrial {
                    index,
                    label,
                    median_ms: None,
                    tflops: None,
                    rejected: Some(e.to_string()),
                });
                first_failure.get_or_insert(e);
            }
        }
    }
    if passing.is_empty() {
        return Err(first_failure
            .unwrap_or_else(|| MatmulError::NoAlgorithm(format!("{dtype} GEMM {shape}"))));
    }

    // 3. warm-up on the library's first choice, then tune
    let (mut best_index, mut best_report) = passing[0].clone();
    if passing.len() > 1 {
        gemm.select_algorithm(best_index)?;
        warm_up(gemm.as_mut(), config.rule.warmup_time)?;
        let rule = tuning_rule(&config.rule);
        let mut best_ms = f64::INFINITY;
        for (index, report) in &passing {
            gemm.select_algorithm(*index)?;
            let timed = run_timed(&rule, |n| gemm.time_launches(n))?;
            let median = metrics::Summary::from_samples(&timed.samples_ms)?.median;
            let label = gemm.algorithm_label();
            tracing::debug!(%dtype, %shape, algorithm = %label, median_ms = median, "tuned");
            trials.push(AlgorithmTrial {
                index: *index,
                label,
                median_ms: Some(median),
                tflops: Some(shape.flops() / (median * 1e-3) / 1e12),
                rejected: None,
            });
            if median < best_ms {
                best_ms = median;
                best_index = *index;
                best_report = report.clone();
            }
        }
    } else {
        trials.push(AlgorithmTrial {
            index: best_index,
            label: {
                gemm.select_algorithm(best_index)?;
                gemm.algorithm_label()
            },
            median_ms: None,
            tflops: None,
            rejected: None,
        });
    }
    trials.sort_by_key(|t| t.index);

    // 4. the measurement
    gemm.select_algorithm(best_index)?;
    let algorithm = gemm.algorithm_label();
    let sampler = ClockSampler::start(&info);
    let timed = run_timed(&config.rule, |n| gemm.time_launches(n));
    let clocks = sampler.map(ClockSampler::stop);
    let timed = timed?;
    let time_ms = metrics::Summary::from_samples(&timed.samples_ms)?;

    // 5. throughput and peak
    let tflops_at = |ms: f64| shape.flops() / (ms * 1e-3) / 1e12;
    let tflops = tflops_at(time_ms.median);
    let peak_tflops = info.peak_tflops(dtype.precision());
    Ok(GemmResult {
        device: info.device.clone(),
        dtype,
        label: problem.label.clone(),
        tokens: problem.tokens,
        shape,
        flops: shape.flops(),
        mode_summary: mode.to_string(),
        mode,
        algorithm,
        autotune: trials,
        check: best_report,
        tflops,
        tflops_best: tflops_at(time_ms.min),
        tflops_worst: tflops_at(time_ms.max),
        time_ms,
        pct_of_peak: peak_tflops.map(|p| 100.0 * tflops / p),
        peak_tflops,
        stop_reason: timed.stop_reason,
        warmup_launches: timed.warmup_launches,
        rotation_sets: gemm.rotation_sets(),
        clocks,
    })
}

/// Runs launches until `duration` has passed (at least one), so clocks ramp up.
fn warm_up(gemm: &mut dyn PreparedGemm, duration: Duration) -> Result<()> {
    let start = std::time::Instant::now();
    let mut batch = 1;
    loop {
        gemm.time_launches(batch)?;
        if start.elapsed() >= duration {
            return Ok(());
        }
        batch = (batch * 2).min(crate::stop_rule::MAX_BATCH);
    }
}

/// Verifies and times one bandwidth test over a buffer of `buffer_bytes`.
///
/// # Errors
/// [`MatmulError::InsufficientMemory`], [`MatmulError::TransferCheckFailed`] when the bytes
/// are wrong, [`MatmulError::InvalidParameter`] for a test the device lacks or a bad rule,
/// and device failures.
pub fn run_bandwidth(
    backend: &mut dyn BandwidthBackend,
    test: BandwidthTest,
    buffer_bytes: u64,
    rule: &StopRule,
) -> Result<BandwidthResult> {
    rule.validate()?;
    backend.ensure_fits(test, buffer_bytes)?;
    let info = backend.device().clone();
    let mut transfer = backend.prepare(test, buffer_bytes)?;
    transfer.verify()?;
    let method = transfer.label();
    let sampler = ClockSampler::start(&info);
    let timed = run_timed(rule, |n| transfer.time_launches(n));
    let clocks = sampler.map(ClockSampler::stop);
    let timed = timed?;
    let time_ms = metrics::Summary::from_samples(&timed.samples_ms)?;
    let bytes = test.bytes_counted(buffer_bytes);
    let gb_s_at = |ms: f64| bytes as f64 / (ms * 1e-3) / 1e9;
    let gb_s = gb_s_at(time_ms.median);
    let peak_gb_s = if test.is_device_memory() {
        info.peak_bandwidth_gb_s()
    } else {
        None
    };
    Ok(BandwidthResult {
        device: info.device.clone(),
        test,
        method,
        buffer_bytes,
        counting: test.counting(),
        bytes_per_pass: bytes,
        gb_s,
        gb_s_best: gb_s_at(time_ms.min),
        time_ms,
        pct_of_peak: peak_gb_s.map(|p| 100.0 * gb_s / p),
        peak_gb_s,
        stop_reason: timed.stop_reason,
        clocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::open_gemm_backend;
    use crate::bandwidth::open_bandwidth_backend;
    use crate::device::BenchDevice;
    use crate::shape::GemmShape;

    fn quick() -> GemmRunConfig {
        GemmRunConfig {
            rule: StopRule {
                warmup_iters: 1,
                warmup_time: Duration::ZERO,
                min_iters: 3,
                max_iters: 5,
                target_cv: 0.5,
                time_budget: Duration::from_secs(5),
            },
            options: GemmOptions {
                rotation_bytes: 1 << 20,
                ..GemmOptions::default()
            },
            ..GemmRunConfig::default()
        }
    }

    #[test]
    fn cpu_gemm_is_checked_timed_and_summarised() {
        let mut b = open_gemm_backend(BenchDevice::Cpu).unwrap();
        let problem = GemmProblem {
            label: "square".into(),
            tokens: None,
            shape: GemmShape::square(96).unwrap(),
        };
        let r = run_gemm(b.as_mut(), &problem, GemmDtype::Fp32, &quick()).unwrap();
        assert!(r.tflops > 0.0 && r.tflops.is_finite());
        assert!(r.tflops_best >= r.tflops && r.tflops >= r.tflops_worst);
        assert!(r.time_ms.count >= 3 && r.time_ms.count <= 5);
        assert!(r.check.rel_error <= GemmDtype::Fp32.tolerance());
        assert_eq!(r.autotune.len(), 1);
        assert!(r.peak_tflops.is_none() && r.clocks.is_none());
        assert!(r.rotation_sets > 1);
        assert_eq!(r.flops, 2.0 * 96f64.powi(3));
        let table = crate::report::gemm_table(std::slice::from_ref(&r));
        assert!(table.contains("GFLOP/s"), "{table}");
        assert!(
            table.contains("fp32 in, fp32 accumulate, fp32 out"),
            "{table}"
        );
    }

    #[test]
    fn unsupported_dtype_and_bad_rule_fail_before_work() {
        let mut b = open_gemm_backend(BenchDevice::Cpu).unwrap();
        let problem = GemmProblem {
            label: "square".into(),
            tokens: None,
            shape: GemmShape::square(8).unwrap(),
        };
        assert!(run_gemm(b.as_mut(), &problem, GemmDtype::Int8, &quick()).is_err());
        let mut bad = quick();
        bad.rule.max_iters = 0;
        assert!(run_gemm(b.as_mut(), &problem, GemmDtype::Fp32, &bad).is_err());
    }

    #[test]
    fn cpu_copy_counts_read_plus_written() {
        let mut b = open_bandwidth_backend(BenchDevice::Cpu).unwrap();
        let r = run_bandwidth(b.as_mut(), BandwidthTest::Copy, 4 << 20, &quick().rule).unwrap();
        assert_eq!(r.bytes_per_pass, 8 << 20);
        let expected = (8u64 << 20) as f64 / (r.time_ms.median * 1e-3) / 1e9;
        assert!((r.gb_s - expected).abs() < 1e-9 * expected);
        assert!(r.peak_gb_s.is_none());
    }
}
