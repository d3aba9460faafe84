//! The one error type of this crate.

/// What can go wrong when probing GPUs or looking things up in the architecture table.
///
/// Note that [`crate::probe`] itself never fails: a machine without an NVIDIA GPU is a
/// normal outcome reported as [`crate::GpuProbe::Unavailable`], and a single NVML query
/// that fails leaves that one field `None`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// NVML could not be loaded or initialised: no driver, no GPU, no permission.
    #[error("no NVIDIA GPU: {reason}")]
    NvmlUnavailable {
        /// Why, in words (e.g. "NVML could not be loaded (libnvidia-ml.so.1: cannot open ...)").
        reason: String,
    },
    /// An NVML call failed after NVML was initialised.
    #[error("NVML query failed: {0}")]
    Nvml(#[from] nvml_wrapper::error::NvmlError),
    /// A GPU index that this machine does not have.
    #[error("GPU index {index} is out of range: this machine has {count} NVIDIA GPU(s)")]
    DeviceIndexOutOfRange {
        /// The index asked for.
        index: u32,
        /// How many GPUs the probe found.
        count: usize,
    },
    /// A precision name that [`crate::Precision`] does not know.
    #[error("unknown precision '{0}' (expected one of fp64, fp32, tf32, fp16, bf16, fp8, int8)")]
    UnknownPrecision(String),
    /// A GPU key or name that the built-in architecture table does not have.
    #[error("unknown GPU architecture '{0}' (see `gpu-specs --arch-table` for the known keys)")]
    UnknownArch(String),
    /// A CUDA driver API call failed (only with the `cuda` feature).
    #[error("CUDA driver call failed: {0}")]
    Cuda(String),
    /// CUDA was asked for but this build has no CUDA support.
    #[error("this build of gpu-probe was compiled without the `cuda` feature")]
    NotCompiledWithCuda,
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ProbeError>;
