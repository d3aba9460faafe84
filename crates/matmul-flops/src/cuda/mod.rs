//! The CUDA backends (feature `cuda`): GEMMs through cuBLASLt with autotuning, and memory
//! bandwidth through the copy engine and our own NVRTC-compiled kernels.
//!
//! Everything runs on one stream of the device's primary context, so cudarc never needs
//! cross-stream events; launches are timed with CUDA events recorded on that stream.

mod bandwidth;
mod context;
mod events;
mod gemm;
mod kernels;
mod lt;

pub use self::bandwidth::CudaBandwidthBackend;
pub use self::gemm::CudaGemmBackend;
