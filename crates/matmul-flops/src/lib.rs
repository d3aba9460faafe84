//! `matmul_flops`: how many TFLOP/s a device really gives per precision, and how many GB/s
//! its memory moves — checked against an f64 reference before anything is timed.
//!
//! A GEMM benchmark here is: random inputs (never zeros) rounded to the dtype; every
//! candidate algorithm checked on sampled rows against f64; the fastest correct one
//! (cuBLASLt's heuristic candidates, autotuned) timed with CUDA events, inputs rotated
//! through more memory than the L2 holds, warm-up, repetitions until the noise is low or
//! the time budget ends; the median, min, max and coefficient of variation; the % of the
//! architecture's peak (gpu-probe), with clocks and throttle reasons sampled during the run
//! (metrics). Bandwidth tests follow the same pattern.
//!
//! | concept | type |
//! |---|---|
//! | precision (`fp32`, `tf32`, `fp16`, `bf16`, `fp8`, `int8`) | [`GemmDtype`] |
//! | numerics actually used (accumulate, reduced-precision reductions) | [`GemmMode`], [`NumericsOptions`] |
//! | GEMM dimensions / a named one / a model layer's GEMMs | [`GemmShape`], [`GemmProblem`], [`TransformerDims`] |
//! | device (`cpu`, `cuda:N`) | [`BenchDevice`], [`DeviceInfo`] |
//! | a GEMM engine / one prepared GEMM | [`GemmBackend`], [`PreparedGemm`] |
//! | inputs and the f64 check | [`HostOperands`], [`ReferenceRows`], [`check_rows`] |
//! | when to stop timing | [`StopRule`], [`StopReason`] |
//! | the driver | [`run_gemm`], [`run_bandwidth`] |
//! | results | [`GemmResult`], [`BandwidthResult`] |
//!
//! Backends: the CPU ([`cpu::CpuGemmBackend`], the `gemm` crate, fp32/fp16) always; CUDA
//! (cuBLASLt for GEMMs, NVRTC-compiled kernels for bandwidth) with the `cuda` feature.
//! Without it, asking for `cuda:N` returns [`MatmulError::NotCompiledWithCuda`].
//!
//! ```
//! use std::time::Duration;
//! use matmul_flops::{open_gemm_backend, run_gemm, BenchDevice, GemmDtype, GemmProblem,
//!                    GemmRunConfig, StopRule};
//!
//! # fn main() -> matmul_flops::Result<()> {
//! let mut cpu = open_gemm_backend(BenchDevice::Cpu)?;
//! let problems = GemmProblem::square_sweep(&[128])?;
//! let config = GemmRunConfig {
//!     rule: StopRule { min_iters: 5, max_iters: 10, time_budget: Duration::from_secs(2),
//!                      ..StopRule::default() },
//!     ..GemmRunConfig::default()
//! };
//! let r = run_gemm(cpu.as_mut(), &problems[0], GemmDtype::Fp32, &config)?;
//! assert!(r.check.rel_error <= GemmDtype::Fp32.tolerance());
//! println!("{} {}: {:.1} GFLOP/s ({})", r.dtype, r.shape, r.tflops * 1e3, r.mode_summary);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod backend;
pub mod bandwidth;
pub mod check;
pub mod clocks;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
pub mod dtype;
pub mod error;
pub mod fp8;
pub mod mode;
pub mod operands;
pub mod report;
pub mod result;
pub mod runner;
pub mod shape;
pub mod stop_rule;
pub mod transformer;

pub use backend::{open_gemm_backend, GemmBackend, GemmOptions, PreparedGemm};
pub use bandwidth::{open_bandwidth_backend, BandwidthBackend, BandwidthTest, BytesCounted};
pub use check::{check_rows, CheckReport, ReferenceRows};
pub use device::{BenchDevice, DeviceInfo, CUDA_COMPILED};
pub use dtype::GemmDtype;
pub use error::{MatmulError, Result};
pub use mode::{GemmMode, NumericsOptions};
pub use operands::HostOperands;
pub use result::{BandwidthResult, GemmResult};
pub use runner::{run_bandwidth, run_gemm, GemmRunConfig};
pub use shape::{GemmProblem, GemmShape};
pub use stop_rule::{StopReason, StopRule};
pub use transformer::TransformerDims;
