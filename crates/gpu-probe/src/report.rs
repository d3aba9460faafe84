//! The whole-machine report: host plus GPUs, and the document `gpu-specs --json` prints.

use serde::{Deserialize, Serialize};

use crate::arch::ArchSpec;
use crate::gpu::{probe_gpus, GpuInfo, GpuProbe};
use crate::host::HostInfo;

/// Host and GPU facts of this machine.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SystemReport {
    /// CPU, memory, OS.
    pub host: HostInfo,
    /// NVIDIA GPUs, or why there are none.
    pub gpus: GpuProbe,
}

/// Probes the host and every NVIDIA GPU. Never fails: a machine without an NVIDIA GPU (or
/// driver, or NVML) gives `gpus: GpuProbe::Unavailable { reason }`, and a single query that
/// fails leaves just that field `None`.
pub fn probe() -> SystemReport {
    SystemReport {
        host: HostInfo::probe(),
        gpus: probe_gpus(),
    }
}

/// One GPU with the keys of the tutorial's `gpu_specs.py` (`name`, `compute_capability`,
/// `total_memory_gb`, ...), so its users find the figures they know.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TutorialGpuSpecs {
    /// Device name.
    pub name: String,
    /// `"9.0"`.
    pub compute_capability: Option<String>,
    /// Total memory in GB (10^9 bytes).
    pub total_memory_gb: Option<f64>,
    /// Streaming multiprocessors.
    pub sm_count: Option<u32>,
    /// CUDA cores (SM count × cores per SM of the matched architecture); the tutorial
    /// printed "Unknown" here.
    pub cuda_cores: Option<u32>,
    /// Maximum memory clock in MHz.
    pub memory_clock_mhz: Option<u32>,
    /// Theoretical memory bandwidth in GB/s (bus width × clock × 2 / 8).
    pub memory_bandwidth_gb_s: Option<f64>,
    /// Driver version.
    pub driver_version: Option<String>,
    /// Performance state ("P0").
    pub power_state: Option<String>,
    /// Temperature in °C.
    pub temperature_c: Option<u32>,
    /// Power draw in W.
    pub power_draw_w: Option<f64>,
    /// Power limit in W.
    pub power_limit_w: Option<f64>,
}

impl TutorialGpuSpecs {
    /// The tutorial's view of `gpu` (with the machine's `driver_version`).
    pub fn from_gpu(gpu: &GpuInfo, driver_version: Option<&str>) -> Self {
        TutorialGpuSpecs {
            name: gpu.name.clone(),
            compute_capability: gpu.compute_capability_string(),
            total_memory_gb: gpu.memory_total_gb(),
            sm_count: gpu.sm_count,
            cuda_cores: gpu.cuda_cores(),
            memory_clock_mhz: gpu.memory_clock_max_mhz,
            memory_bandwidth_gb_s: gpu.theoretical_bandwidth_gb_s,
            driver_version: driver_version.map(str::to_string),
            power_state: gpu.performance_state.clone(),
            temperature_c: gpu.temperature_c,
            power_draw_w: gpu.power_draw_w,
            power_limit_w: gpu.power_limit_w,
        }
    }
}

/// A probed GPU and its architecture-table row.
#[derive(Serialize, Clone, Debug)]
pub struct MatchedArch {
    /// NVML index of the GPU.
    pub gpu_index: u32,
    /// The matched row.
    pub arch: &'static ArchSpec,
}

/// What `gpu-specs --json` prints: the report, the matched table rows, and the tutorial's
/// keys per GPU.
#[derive(Serialize, Clone, Debug)]
pub struct GpuSpecsDocument {
    /// Host and GPUs.
    #[serde(flatten)]
    pub report: SystemReport,
    /// The architecture row of each GPU that matched one.
    pub matched_arch: Vec<MatchedArch>,
    /// Each GPU with the tutorial's `gpu_specs.py` keys.
    pub tutorial_specs: Vec<TutorialGpuSpecs>,
}

impl GpuSpecsDocument {
    /// Builds the document from a report, keeping only the GPU with NVML index `only_gpu`
    /// when given (the caller checks that it exists, e.g. with [`GpuProbe::device`]).
    pub fn new(mut report: SystemReport, only_gpu: Option<u32>) -> Self {
        if let (Some(index), GpuProbe::Available { devices, .. }) = (only_gpu, &mut report.gpus) {
            devices.retain(|d| d.index == index);
        }
        let driver = report.gpus.driver_version().map(str::to_string);
        let devices = report.gpus.devices();
        let matched_arch = devices
            .iter()
            .filter_map(|d| {
                d.arch().map(|arch| MatchedArch {
                    gpu_index: d.index,
                    arch,
                })
            })
            .collect();
        let tutorial_specs = devices
            .iter()
            .map(|d| TutorialGpuSpecs::from_gpu(d, driver.as_deref()))
            .collect();
        GpuSpecsDocument {
            report,
            matched_arch,
            tutorial_specs,
        }
    }
}
