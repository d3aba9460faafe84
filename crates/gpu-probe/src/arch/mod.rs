//! The built-in table of NVIDIA data-center GPUs and their theoretical peaks.
//!
//! Every row quotes the vendor's datasheet (the `source` field says which); tensor-core
//! figures are stored DENSE, i.e. datasheet figures marked "with sparsity" are halved.
//! Figures the datasheet does not give (FP64 on inference cards) are derived from the
//! architecture's FP64:FP32 ratio and said so in `notes`.

mod matching;
mod table;

use serde::{Deserialize, Serialize};

use crate::error::{ProbeError, Result};
use crate::precision::Precision;

pub use matching::{match_arch, match_arch_with_power_limit};

/// Dense (no structured sparsity) theoretical peaks of one GPU, in TFLOPS (TOPS for int8).
///
/// `None` means the GPU has no tensor-core support for that type (e.g. fp8 before
/// Ada/Hopper, bf16 and tf32 before Ampere), not that the figure is unknown.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct PeakTflops {
    /// FP64 on the CUDA cores (vector FMA).
    pub fp64: f64,
    /// FP64 on the tensor cores (DGEMM), where the GPU has FP64 tensor cores (A100, H100, ...).
    pub fp64_tensor: Option<f64>,
    /// FP32 on the CUDA cores (no tensor cores).
    pub fp32: f64,
    /// TF32 tensor cores.
    pub tf32: Option<f64>,
    /// FP16 tensor cores (FP32 accumulate where the datasheet distinguishes).
    pub fp16: Option<f64>,
    /// BF16 tensor cores.
    pub bf16: Option<f64>,
    /// FP8 tensor cores.
    pub fp8: Option<f64>,
    /// INT8 tensor cores, in TOPS.
    pub int8: Option<f64>,
}

/// One row of the architecture table: what a GPU model is on paper.
#[derive(Serialize, Clone, Debug)]
pub struct ArchSpec {
    /// Stable lowercase key, e.g. `"h100-sxm"`.
    pub key: &'static str,
    /// Display name, e.g. `"H100 SXM"`.
    pub name: &'static str,
    /// Architecture (generation) name, e.g. `"Hopper"`.
    pub architecture: &'static str,
    /// Year of launch.
    pub year: u16,
    /// CUDA compute capability (major, minor).
    pub compute_capability: (u32, u32),
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// FP32 CUDA cores.
    pub cuda_cores: u32,
    /// Tensor cores.
    pub tensor_cores: u32,
    /// Memory size in GB as marketed.
    pub memory_gb: f64,
    /// Memory technology (`"HBM3"`, `"GDDR6"`, ...).
    pub memory_type: &'static str,
    /// Datasheet memory bandwidth in GB/s (10^9 bytes per second).
    pub bandwidth_gb_s: f64,
    /// Maximum board power (TDP) in watts.
    pub tdp_w: f64,
    /// Dense theoretical peaks per precision.
    pub peaks: PeakTflops,
    /// Where the figures come from (datasheet name and URL).
    pub source: &'static str,
    /// How figures not on the datasheet were derived, and other caveats; may be empty.
    pub notes: &'static str,
}

impl ArchSpec {
    /// Dense peak for `precision` in TFLOPS (TOPS for int8), `None` where this GPU has no
    /// (tensor-core) support for it.
    ///
    /// For [`Precision::Fp64`] this is the FP64 tensor-core figure where the GPU has one
    /// (what a DGEMM can reach), else the CUDA-core figure; [`PeakTflops::fp64`] keeps the
    /// vector figure.
    pub fn peak_tflops(&self, precision: Precision) -> Option<f64> {
        let p = &self.peaks;
        match precision {
            Precision::Fp64 => Some(p.fp64_tensor.unwrap_or(p.fp64)),
            Precision::Fp32 => Some(p.fp32),
            Precision::Tf32 => p.tf32,
            Precision::Fp16 => p.fp16,
            Precision::Bf16 => p.bf16,
            Precision::Fp8 => p.fp8,
            Precision::Int8 => p.int8,
        }
    }

    /// `measured_tflops` as a percentage of this GPU's dense peak for `precision`
    /// (`None` where there is no such peak).
    pub fn percent_of_peak(&self, measured_tflops: f64, precision: Precision) -> Option<f64> {
        self.peak_tflops(precision)
            .filter(|peak| *peak > 0.0)
            .map(|peak| 100.0 * measured_tflops / peak)
    }

    /// `measured_gb_s` as a percentage of the datasheet memory bandwidth.
    pub fn percent_of_bandwidth(&self, measured_gb_s: f64) -> f64 {
        100.0 * measured_gb_s / self.bandwidth_gb_s
    }

    /// Compute capability as the usual `"9.0"` string.
    pub fn compute_capability_string(&self) -> String {
        format!(
            "{}.{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }
}

/// The whole built-in table, oldest architecture first.
pub fn arch_table() -> &'static [ArchSpec] {
    table::ARCH_TABLE
}

/// Looks a row up by key (`"h100-sxm"`), display name (`"H100 SXM"`) or an NVML device
/// name (`"NVIDIA H100 80GB HBM3"`); case-insensitive, spaces/hyphens/underscores ignored.
pub fn find_arch(key_or_name: &str) -> Option<&'static ArchSpec> {
    let wanted = squash(key_or_name);
    if wanted.is_empty() {
        return None;
    }
    arch_table()
        .iter()
        .find(|a| squash(a.key) == wanted || squash(a.name) == wanted)
        .or_else(|| match_arch(key_or_name, None, None))
}

/// Like [`find_arch`], as a `Result` for callers that take a GPU from the user.
///
/// # Errors
///
/// [`ProbeError::UnknownArch`] when no row matches.
pub fn arch_by_key(key_or_name: &str) -> Result<&'static ArchSpec> {
    find_arch(key_or_name).ok_or_else(|| ProbeError::UnknownArch(key_or_name.to_string()))
}

/// Lowercase with spaces, hyphens and underscores removed.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests;
