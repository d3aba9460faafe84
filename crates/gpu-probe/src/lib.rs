//! `gpu_probe`: what this machine's NVIDIA GPUs and host are, and what they should do on
//! paper, so every later measurement can be shown as a percentage of peak.
//!
//! NVML is loaded at run time (`libnvidia-ml.so.1`), so the same binary runs on a machine
//! without a GPU or driver: there the probe says why ("no NVIDIA GPU: ...") instead of
//! failing. Each NVML query that a device does not support leaves one field `None`.
//!
//! | Concept | What it is |
//! |---|---|
//! | [`probe`] → [`SystemReport`] | host ([`HostInfo`]) + GPUs ([`GpuProbe`]); never fails |
//! | [`GpuProbe`] | `Available { driver, devices: Vec<GpuInfo> }` or `Unavailable { reason }` |
//! | [`GpuInfo`] | one GPU: name, UUID, memory, clocks, power, PCIe, ECC/MIG, throttle reasons, `arch_key` |
//! | [`ArchSpec`] / [`arch_table`] | built-in datasheet rows (T4 ... B200), dense peaks per [`Precision`] |
//! | [`match_arch`] | NVML name + compute capability + memory → table row |
//! | [`nvml`] | the shared NVML start-up with the typed "no NVIDIA GPU" error |
//! | [`render_report`] / [`render_arch_table`] | the text `gpu-specs` prints |
//! | `cuda` feature | SM count and CUDA ordinal from the CUDA driver API ([`cuda_devices`]) |
//!
//! ```
//! use gpu_probe::{find_arch, probe, GpuProbe, Precision};
//!
//! let report = probe(); // never fails, GPU or not
//! assert!(report.host.logical_cores >= 1);
//! match &report.gpus {
//!     GpuProbe::Available { devices, .. } => {
//!         for gpu in devices {
//!             println!("{}: {:?}", gpu.name, gpu.arch().map(|a| a.key));
//!         }
//!     }
//!     GpuProbe::Unavailable { reason } => assert!(reason.starts_with("no NVIDIA GPU")),
//! }
//!
//! let h100 = find_arch("h100-sxm").ok_or("no row")?;
//! assert_eq!(h100.peak_tflops(Precision::Bf16), Some(989.4)); // dense, not "with sparsity"
//! let pct = h100.percent_of_peak(700.0, Precision::Bf16).ok_or("no peak")?;
//! assert!((pct - 70.75).abs() < 0.01);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod arch;
mod bandwidth;
mod error;
mod gpu;
mod host;
mod precision;
mod render;
mod report;

pub use arch::{
    arch_by_key, arch_table, find_arch, match_arch, match_arch_with_power_limit, ArchSpec,
    PeakTflops,
};
pub use bandwidth::theoretical_bandwidth_gb_s;
pub use error::{ProbeError, Result};
pub use gpu::{
    cuda_devices, format_cuda_uuid, nvml, probe_gpus, throttle_reason_names, CudaDeviceFacts,
    GpuInfo, GpuProbe, SmCountSource,
};
pub use host::{HostInfo, UNKNOWN};
pub use precision::Precision;
pub use render::{render_arch_spec, render_arch_table, render_report};
pub use report::{probe, GpuSpecsDocument, MatchedArch, SystemReport, TutorialGpuSpecs};

/// Re-export of the NVML wrapper, so callers of [`nvml`] and [`throttle_reason_names`] use
/// the same version.
pub use nvml_wrapper;
