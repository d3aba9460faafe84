//! What NVML (and, with the `cuda` feature, the CUDA driver) tells about each NVIDIA GPU.

mod cuda_devices;
mod nvml_query;
mod throttle;

use serde::{Deserialize, Serialize};

use crate::arch::{find_arch, ArchSpec};
use crate::error::{ProbeError, Result};

pub use cuda_devices::{cuda_devices, format_cuda_uuid, CudaDeviceFacts};
pub use nvml_query::{nvml, probe_gpus};
pub use throttle::throttle_reason_names;

/// Where a [`GpuInfo::sm_count`] came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SmCountSource {
    /// CUDA driver attribute `MULTIPROCESSOR_COUNT` (needs the `cuda` feature).
    CudaDriver,
    /// NVML device attributes (`nvmlDeviceGetAttributes`).
    Nvml,
    /// The matched row of the built-in architecture table (not measured on this device).
    ArchTable,
}

/// Everything probed about one GPU. Each `Option` field is `None` when its query failed or
/// is not supported on this device (the reason is in [`GpuInfo::unavailable_fields`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct GpuInfo {
    /// NVML device index.
    pub index: u32,
    /// NVML device name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Device UUID, e.g. "GPU-5f1f...".
    pub uuid: Option<String>,
    /// PCI bus id, e.g. "00000000:18:00.0".
    pub pci_bus_id: Option<String>,
    /// CUDA device ordinal of this GPU as this process sees it (respects
    /// `CUDA_VISIBLE_DEVICES`; may differ from `index`). Needs the `cuda` feature.
    pub cuda_ordinal: Option<usize>,
    /// NVML's architecture name ("Hopper", "Ampere", ...).
    pub nvml_architecture: Option<String>,
    /// CUDA compute capability (major, minor).
    pub compute_capability: Option<(u32, u32)>,
    /// Streaming multiprocessors.
    pub sm_count: Option<u32>,
    /// Where `sm_count` came from.
    pub sm_count_source: Option<SmCountSource>,
    /// Total device memory in bytes.
    pub memory_total_bytes: Option<u64>,
    /// Used device memory in bytes.
    pub memory_used_bytes: Option<u64>,
    /// Free device memory in bytes.
    pub memory_free_bytes: Option<u64>,
    /// Memory bus width in bits.
    pub memory_bus_width_bits: Option<u32>,
    /// Current memory clock in MHz.
    pub memory_clock_mhz: Option<u32>,
    /// Maximum memory clock in MHz.
    pub memory_clock_max_mhz: Option<u32>,
    /// Theoretical bandwidth in GB/s from bus width and maximum memory clock (see
    /// [`crate::theoretical_bandwidth_gb_s`]).
    pub theoretical_bandwidth_gb_s: Option<f64>,
    /// Current SM clock in MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Maximum SM clock in MHz.
    pub sm_clock_max_mhz: Option<u32>,
    /// Current power draw in watts.
    pub power_draw_w: Option<f64>,
    /// Enforced power limit in watts.
    pub power_limit_w: Option<f64>,
    /// GPU die temperature in °C.
    pub temperature_c: Option<u32>,
    /// Performance state, "P0" (fastest) to "P15".
    pub performance_state: Option<String>,
    /// Current PCIe link generation.
    pub pcie_link_gen_current: Option<u32>,
    /// Maximum PCIe link generation of the device.
    pub pcie_link_gen_max: Option<u32>,
    /// Current PCIe link width (lanes).
    pub pcie_link_width_current: Option<u32>,
    /// Maximum PCIe link width (lanes).
    pub pcie_link_width_max: Option<u32>,
    /// Whether ECC is currently on.
    pub ecc_enabled: Option<bool>,
    /// Whether MIG mode is currently on.
    pub mig_enabled: Option<bool>,
    /// Current clock-event (throttle) reasons, e.g. `["gpu_idle"]`; empty when the clocks
    /// are not held back (or the query failed, see `unavailable_fields`).
    pub throttle_reasons: Vec<String>,
    /// Key of the matched architecture-table row, e.g. "h100-sxm".
    pub arch_key: Option<String>,
    /// Fields that could not be read, with why ("power_draw_w: not supported").
    pub unavailable_fields: Vec<String>,
}

impl GpuInfo {
    /// The matched row of the architecture table.
    pub fn arch(&self) -> Option<&'static ArchSpec> {
        self.arch_key.as_deref().and_then(find_arch)
    }

    /// Compute capability as the usual `"9.0"` string.
    pub fn compute_capability_string(&self) -> Option<String> {
        self.compute_capability
            .map(|(major, minor)| format!("{major}.{minor}"))
    }

    /// Total memory in GB (10^9 bytes).
    pub fn memory_total_gb(&self) -> Option<f64> {
        self.memory_total_bytes.map(|b| b as f64 / 1e9)
    }

    /// CUDA cores: probed SM count × the architecture's cores per SM (needs both).
    pub fn cuda_cores(&self) -> Option<u32> {
        let arch = self.arch()?;
        let per_sm = arch.cuda_cores / arch.sm_count;
        self.sm_count.map(|sm| sm * per_sm)
    }
}

/// The outcome of looking for NVIDIA GPUs: a normal result either way.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GpuProbe {
    /// NVML answered.
    Available {
        /// Driver version, e.g. "580.95.05".
        driver_version: String,
        /// Highest CUDA version the driver supports, e.g. "13.0".
        cuda_driver_version: Option<String>,
        /// NVML library version.
        nvml_version: Option<String>,
        /// One entry per GPU, in NVML index order.
        devices: Vec<GpuInfo>,
    },
    /// No usable NVIDIA GPU; `reason` reads "no NVIDIA GPU: ...".
    Unavailable {
        /// Why, in words.
        reason: String,
    },
}

impl GpuProbe {
    /// The probed GPUs (empty when unavailable).
    pub fn devices(&self) -> &[GpuInfo] {
        match self {
            GpuProbe::Available { devices, .. } => devices,
            GpuProbe::Unavailable { .. } => &[],
        }
    }

    /// The driver version, when NVML answered.
    pub fn driver_version(&self) -> Option<&str> {
        match self {
            GpuProbe::Available { driver_version, .. } => Some(driver_version),
            GpuProbe::Unavailable { .. } => None,
        }
    }

    /// The CUDA version the driver supports, when known.
    pub fn cuda_driver_version(&self) -> Option<&str> {
        match self {
            GpuProbe::Available {
                cuda_driver_version,
                ..
            } => cuda_driver_version.as_deref(),
            GpuProbe::Unavailable { .. } => None,
        }
    }

    /// The NVML library version, when known.
    pub fn nvml_version(&self) -> Option<&str> {
        match self {
            GpuProbe::Available { nvml_version, .. } => nvml_version.as_deref(),
            GpuProbe::Unavailable { .. } => None,
        }
    }

    /// Why there is no GPU, when there is none.
    pub fn unavailable_reason(&self) -> Option<&str> {
        match self {
            GpuProbe::Available { .. } => None,
            GpuProbe::Unavailable { reason } => Some(reason),
        }
    }

    /// The GPU with NVML index `index`.
    ///
    /// # Errors
    ///
    /// [`ProbeError::DeviceIndexOutOfRange`] when there is no such GPU (including when no
    /// GPU is available at all).
    pub fn device(&self, index: u32) -> Result<&GpuInfo> {
        self.devices()
            .iter()
            .find(|d| d.index == index)
            .ok_or(ProbeError::DeviceIndexOutOfRange {
                index,
                count: self.devices().len(),
            })
    }
}

#[cfg(test)]
mod tests;
