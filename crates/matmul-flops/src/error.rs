//! The one error type of this crate.

use crate::dtype::GemmDtype;

/// Everything that can go wrong while setting up, checking or timing a GEMM or a bandwidth test.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatmulError {
    /// A dtype name that is not one of ours (`fp32`, `tf32`, `fp16`, `bf16`, `fp8`, `int8`).
    #[error("unknown dtype '{0}' (expected one of: fp32, tf32, fp16, bf16, fp8, int8)")]
    UnknownDtype(String),

    /// A device string that is neither `cpu`, `cuda` nor `cuda:N`.
    #[error("unknown device '{0}' (expected cpu, cuda or cuda:N)")]
    UnknownDevice(String),

    /// A CUDA device was asked for, but this build has no CUDA support.
    #[error("this build has no CUDA support; rebuild with --features cuda")]
    NotCompiledWithCuda,

    /// `cuda:N` with N at or above the number of GPUs of this host.
    #[error("no CUDA device {requested}: this host has {available} CUDA device(s)")]
    NoSuchDevice {
        /// The ordinal that was asked for.
        requested: usize,
        /// How many devices the driver reports.
        available: usize,
    },

    /// A GEMM dimension or buffer size that makes no sense (zero, or past what we can address).
    #[error("invalid size: {0}")]
    InvalidSize(String),

    /// A timing or stop-rule parameter that makes no sense.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),

    /// The work does not fit into the memory that is free on the device.
    #[error(
        "{what} needs {:.2} GiB but only {:.2} GiB is free on {device}",
        *needed_bytes as f64 / GIB,
        *free_bytes as f64 / GIB
    )]
    InsufficientMemory {
        /// What was being sized (e.g. `bf16 GEMM 16384x16384x16384`).
        what: String,
        /// The device (`cpu`, `cuda:0`).
        device: String,
        /// Bytes the work needs.
        needed_bytes: u64,
        /// Bytes free right now.
        free_bytes: u64,
    },

    /// The dtype cannot run on this device (e.g. fp8 below compute capability 8.9, or tf32 on the CPU).
    #[error("{dtype} is not supported on {device}: {reason}")]
    UnsupportedDtype {
        /// The dtype that was asked for.
        dtype: GemmDtype,
        /// The device (`cpu`, `cuda:0 (NVIDIA A100 ...)`).
        device: String,
        /// Why not.
        reason: String,
    },

    /// The result of a GEMM differs from the f64 reference by more than the dtype's tolerance.
    #[error(
        "{dtype} GEMM {shape} gave wrong results: relative error {rel_error:.3e} > tolerance {tolerance:.1e} ({detail})"
    )]
    CheckFailed {
        /// The dtype under test.
        dtype: GemmDtype,
        /// The shape, as `MxNxK`.
        shape: String,
        /// The measured normwise relative error (NaN when non-finite values came back).
        rel_error: f64,
        /// The tolerance of this dtype.
        tolerance: f64,
        /// Where it went wrong (worst element, algorithm).
        detail: String,
    },

    /// A bandwidth pass moved the wrong bytes (a copy that did not copy, a read whose sum is off).
    #[error("bandwidth check failed for {test}: {detail}")]
    TransferCheckFailed {
        /// The test (`copy`, `read`, ...).
        test: String,
        /// What was wrong.
        detail: String,
    },

    /// cuBLASLt offered no algorithm for this problem.
    #[error("cuBLASLt has no algorithm for {0}")]
    NoAlgorithm(String),

    /// Statistics over the timing samples could not be computed.
    #[error("statistics: {0}")]
    Statistics(String),

    /// A CUDA driver, cuBLAS(Lt) or NVRTC call failed.
    #[error("CUDA: {0}")]
    Cuda(String),
}

const GIB: f64 = (1u64 << 30) as f64;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, MatmulError>;

#[cfg(feature = "cuda")]
impl From<cudarc::driver::DriverError> for MatmulError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        MatmulError::Cuda(format!("driver: {e}"))
    }
}

#[cfg(feature = "cuda")]
impl From<cudarc::cublaslt::result::CublasError> for MatmulError {
    fn from(e: cudarc::cublaslt::result::CublasError) -> Self {
        MatmulError::Cuda(format!("cuBLASLt: {e:?}"))
    }
}

#[cfg(feature = "cuda")]
impl From<cudarc::nvrtc::CompileError> for MatmulError {
    fn from(e: cudarc::nvrtc::CompileError) -> Self {
        MatmulError::Cuda(format!("NVRTC: {e}"))
    }
}

impl From<metrics::MetricsError> for MatmulError {
    fn from(e: metrics::MetricsError) -> Self {
        MatmulError::Statistics(e.to_string())
    }
}
