//! The records a run produces: one [`GemmResult`] per (dtype, shape), one
//! [`BandwidthResult`] per test, and flat rows of both for CSV.

use serde::{Deserialize, Serialize};

use crate::bandwidth::{BandwidthTest, BytesCounted};
use crate::check::CheckReport;
use crate::clocks::ClockTrace;
use crate::dtype::GemmDtype;
use crate::mode::GemmMode;
use crate::shape::GemmShape;
use crate::stop_rule::StopReason;

/// One candidate algorithm the autotuner tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgorithmTrial {
    /// Position in the heuristic's list (0 = the library's own first choice).
    pub index: usize,
    /// What the algorithm is.
    pub label: String,
    /// Median milliseconds over the tuning launches; `None` if it failed the check.
    pub median_ms: Option<f64>,
    /// The throughput that median gives.
    pub tflops: Option<f64>,
    /// Why it was dropped, if it was (a failed check).
    pub rejected: Option<String>,
}

/// The checked, timed result of one GEMM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmResult {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The precision.
    pub dtype: GemmDtype,
    /// Where the shape comes from (`square`, `llama-3-8b qkv`).
    pub label: String,
    /// Tokens in flight, for model-layer shapes.
    pub tokens: Option<usize>,
    /// The dimensions.
    pub shape: GemmShape,
    /// `2·M·N·K`.
    pub flops: f64,
    /// The numerics it ran with.
    pub mode: GemmMode,
    /// `mode` in one line (`bf16 in, fp32 accumulate, bf16 out, reduced-precision reductions off`).
    pub mode_summary: String,
    /// The algorithm that was timed (the autotuner's winner).
    pub algorithm: String,
    /// Every candidate the autotuner tried (one entry when there was nothing to choose).
    pub autotune: Vec<AlgorithmTrial>,
    /// The f64 reference check the timed algorithm passed.
    pub check: CheckReport,
    /// Milliseconds per launch: count, median, min, max, cv, percentiles.
    pub time_ms: metrics::Summary,
    /// Throughput at the median time (TFLOP/s; TOP/s for int8).
    pub tflops: f64,
    /// Throughput at the fastest launch.
    pub tflops_best: f64,
    /// Throughput at the slowest launch.
    pub tflops_worst: f64,
    /// The device's theoretical dense peak for this precision, when known.
    pub peak_tflops: Option<f64>,
    /// `tflops` as a percentage of `peak_tflops`.
    pub pct_of_peak: Option<f64>,
    /// Why timing stopped.
    pub stop_reason: StopReason,
    /// Untimed warm-up launches before timing.
    pub warmup_launches: usize,
    /// Copies of A and B the launches rotated through.
    pub rotation_sets: u64,
    /// Clocks and throttling during the timed launches (GPU only).
    pub clocks: Option<ClockTrace>,
}

/// A [`GemmResult`] flattened for CSV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmCsvRow {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// dtype name.
    pub dtype: String,
    /// Shape origin.
    pub label: String,
    /// Tokens in flight.
    pub tokens: Option<usize>,
    /// M.
    pub m: usize,
    /// N.
    pub n: usize,
    /// K.
    pub k: usize,
    /// Median ms.
    pub median_ms: f64,
    /// Fastest ms.
    pub min_ms: f64,
    /// Slowest ms.
    pub max_ms: f64,
    /// Coefficient of variation of the launch times.
    pub cv: f64,
    /// Samples timed.
    pub samples: usize,
    /// Throughput at the median.
    pub tflops: f64,
    /// Throughput at the fastest launch.
    pub tflops_best: f64,
    /// Theoretical peak.
    pub peak_tflops: Option<f64>,
    /// Percentage of the peak.
    pub pct_of_peak: Option<f64>,
    /// Relative error of the check.
    pub check_rel_error: f64,
    /// The mode in one line.
    pub mode: String,
    /// The algorithm timed.
    pub algorithm: String,
    /// Why timing stopped.
    pub stop_reason: String,
    /// Lowest SM clock seen (MHz).
    pub min_sm_clock_mhz: Option<u32>,
    /// Mean power (W).
    pub mean_power_w: Option<f64>,
    /// Throttle reasons seen, `;`-separated.
    pub throttle_reasons: String,
}

impl From<&GemmResult> for GemmCsvRow {
    fn from(r: &GemmResult) -> Self {
        let clocks = r.clocks.as_ref().and_then(|c| c.summary.as_ref());
        Self {
            device: r.device.clone(),
            dtype: r.dtype.name().into(),
            label: r.label.clone(),
            tokens: r.tokens,
            m: r.shape.m,
            n: r.shape.n,
            k: r.shape.k,
            median_ms: r.time_ms.median,
            min_ms: r.time_ms.min,
            max_ms: r.time_ms.max,
            cv: r.time_ms.cv,
            samples: r.time_ms.count,
            tflops: r.tflops,
            tflops_best: r.tflops_best,
            peak_tflops: r.peak_tflops,
            pct_of_peak: r.pct_of_peak,
            check_rel_error: r.check.rel_error,
            mode: r.mode_summary.clone(),
            algorithm: r.algorithm.clone(),
            stop_reason: r.stop_reason.name().into(),
            min_sm_clock_mhz: clocks.and_then(|c| c.min_sm_clock_mhz),
            mean_power_w: clocks.and_then(|c| c.mean_power_w),
            throttle_reasons: clocks
                .map(|c| c.throttle_reasons.join(";"))
                .unwrap_or_default(),
        }
    }
}

/// The verified, timed result of one bandwidth test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandwidthResult {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The test.
    pub test: BandwidthTest,
    /// What ran (`cuMemcpyDtoDAsync`, `copy kernel: 1056 blocks x 512 threads`).
    pub method: String,
    /// Size of the buffer in bytes.
    pub buffer_bytes: u64,
    /// How bytes are counted.
    pub counting: BytesCounted,
    /// Bytes one pass counts.
    pub bytes_per_pass: u64,
    /// Milliseconds per pass.
    pub time_ms: metrics::Summary,
    /// GB/s (10⁹ B/s) at the median time.
    pub gb_s: f64,
    /// GB/s at the fastest pass.
    pub gb_s_best: f64,
    /// The device's theoretical memory bandwidth, for device-memory tests.
    pub peak_gb_s: Option<f64>,
    /// `gb_s` as a percentage of `peak_gb_s`.
    pub pct_of_peak: Option<f64>,
    /// Why timing stopped.
    pub stop_reason: StopReason,
    /// Clocks and throttling during the timed passes (GPU only).
    pub clocks: Option<ClockTrace>,
}

/// A [`BandwidthResult`] flattened for CSV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandwidthCsvRow {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Test name.
    pub test: String,
    /// What ran.
    pub method: String,
    /// Buffer bytes.
    pub buffer_bytes: u64,
    /// Counting rule.
    pub counting: String,
    /// Median ms.
    pub median_ms: f64,
    /// Coefficient of variation.
    pub cv: f64,
    /// GB/s at the median.
    pub gb_s: f64,
    /// GB/s at the fastest pass.
    pub gb_s_best: f64,
    /// Theoretical peak GB/s.
    pub peak_gb_s: Option<f64>,
    /// Percentage of the peak.
    pub pct_of_peak: Option<f64>,
}

impl From<&BandwidthResult> for BandwidthCsvRow {
    fn from(r: &BandwidthResult) -> Self {
        Self {
            device: r.device.clone(),
            test: r.test.name().into(),
            method: r.method.clone(),
            buffer_bytes: r.buffer_bytes,
            counting: match r.counting {
                BytesCounted::ReadPlusWritten => "read+written",
                BytesCounted::Read => "read",
                BytesCounted::Written => "written",
                BytesCounted::Transferred => "transferred",
            }
            .into(),
            median_ms: r.time_ms.median,
            cv: r.time_ms.cv,
            gb_s: r.gb_s,
            gb_s_best: r.gb_s_best,
            peak_gb_s: r.peak_gb_s,
            pct_of_peak: r.pct_of_peak,
        }
    }
}
