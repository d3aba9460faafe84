//! Reading every [`GpuInfo`] field through NVML, one query at a time.
//!
//! Design: each NVML call goes through [`FieldReader::read`], which turns a failure into
//! `None` plus a line in `unavailable_fields`; nothing short of NVML failing to load makes
//! the whole probe fail.

use nvml_wrapper::enum_wrappers::device::{Clock, PerformanceState, TemperatureSensor};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use super::cuda_devices::{cuda_devices, CudaDeviceFacts};
use super::throttle::throttle_reason_names;
use super::{GpuInfo, GpuProbe, SmCountSource};
use crate::arch::match_arch_with_power_limit;
use crate::bandwidth::theoretical_bandwidth_gb_s;
use crate::error::{ProbeError, Result};

/// NVML's "MIG enabled" mode value (`NVML_DEVICE_MIG_ENABLE`).
const NVML_MIG_ENABLE: u32 = 1;

/// Loads and initialises NVML (at run time: `libnvidia-ml.so.1`).
///
/// This is the one place the crates of this workspace start NVML (the metrics sampler uses
/// it too), so a missing driver reads the same everywhere.
///
/// # Errors
///
/// [`ProbeError::NvmlUnavailable`] when the library cannot be loaded or initialised; its
/// message reads "no NVIDIA GPU: NVML could not be loaded (libnvidia-ml.so.1: ...)" and
/// similar.
pub fn nvml() -> Result<Nvml> {
    Nvml::init().map_err(|e| ProbeError::NvmlUnavailable {
        reason: describe_init_error(&e),
    })
}

fn describe_init_error(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(inner) => format!("NVML could not be loaded ({inner})"),
        NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".to_string(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_string(),
        NvmlError::FailedToLoadSymbol(s) => {
            format!("the NVML library is too old or incomplete ({s})")
        }
        other => format!("NVML could not be initialised ({other})"),
    }
}

/// Why a field is missing, in words.
fn describe_field_error(e: &NvmlError) -> String {
    match e {
        NvmlError::NotSupported => "not supported on this device".to_string(),
        NvmlError::NoPermission => "no permission".to_string(),
        other => other.to_string(),
    }
}

/// Probes every NVIDIA GPU through NVML. Never fails: no NVML, no driver or no device gives
/// [`GpuProbe::Unavailable`] with the reason.
pub fn probe_gpus() -> GpuProbe {
    match nvml() {
        Ok(nvml) => probe_with(&nvml),
        Err(e) => GpuProbe::Unavailable {
            reason: e.to_string(),
        },
    }
}

fn probe_with(nvml: &Nvml) -> GpuProbe {
    let driver_version = nvml
        .sys_driver_version()
        .unwrap_or_else(|_| crate::host::UNKNOWN.to_string());
    let count = match nvml.device_count() {
        Ok(0) => {
            return GpuProbe::Unavailable {
                reason: format!("no NVIDIA GPU: NVML reports 0 devices (driver {driver_version})"),
            }
        }
        Ok(n) => n,
        Err(e) => {
            return GpuProbe::Unavailable {
                reason: format!("no NVIDIA GPU: NVML could not count devices ({e})"),
            }
        }
    };
    let cuda_driver_version = nvml.sys_cuda_driver_version().ok().map(|v| {
        format!(
            "{}.{}",
            nvml_wrapper::cuda_driver_version_major(v),
            nvml_wrapper::cuda_driver_version_minor(v)
        )
    });
    let cuda = cuda_devices();
    let devices = (0..count).map(|i| probe_device(nvml, i, &cuda)).collect();
    GpuProbe::Available {
        driver_version,
        cuda_driver_version,
        nvml_version: nvml.sys_nvml_version().ok(),
        devices,
    }
}

/// Collects `None` + reason for each query that fails.
#[derive(Default)]
struct FieldReader {
    unavailable: Vec<String>,
}

impl FieldReader {
    fn read<T>(&mut self, field: &str, result: std::result::Result<T, NvmlError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.unavailable
                    .push(format!("{field}: {}", describe_field_error(&e)));
                None
            }
        }
    }
}

fn performance_state_name(p: PerformanceState) -> String {
    let n = match p {
        PerformanceState::Zero => 0,
        PerformanceState::One => 1,
        PerformanceState::Two => 2,
        PerformanceState::Three => 3,
        PerformanceState::Four => 4,
        PerformanceState::Five => 5,
        PerformanceState::Six => 6,
        PerformanceState::Seven => 7,
        PerformanceState::Eight => 8,
        PerformanceState::Nine => 9,
        PerformanceState::Ten => 10,
        PerformanceState::Eleven => 11,
        PerformanceState::Twelve => 12,
        PerformanceState::Thirteen => 13,
        PerformanceState::Fourteen => 14,
        PerformanceState::Fifteen => 15,
        PerformanceState::Unknown => return "unknown".to_string(),
    };
    format!("P{n}")
}

fn milliwatts_to_watts(mw: u32) -> f64 {
    f64::from(mw) / 1000.0
}

fn probe_device(nvml: &Nvml, index: u32, cuda: &Result<Vec<CudaDeviceFacts>>) -> GpuInfo {
    let device = match nvml.device_by_index(index) {
        Ok(d) => d,
        Err(e) => {
            return GpuInfo {
                index,
                name: crate::host::UNKNOWN.to_string(),
                unavailable_fields: vec![format!("device: {}", describe_field_error(&e))],
                ..GpuInfo::default()
            }
        }
    };
    let mut r = FieldReader::default();
    let pci = r.read("pci_bus_id", device.pci_info());
    let mut info = read_nvml_fields(&device, index, &mut r);
    info.pci_bus_id = pci.as_ref().map(|p| p.bus_id.clone());

    // SM count: the CUDA driver (matched by UUID, else PCI location), else NVML's device
    // attributes, else the architecture table.
    match cuda {
        Ok(list) => {
            let by_uuid = info
                .uuid
                .as_deref()
                .and_then(|u| list.iter().find(|c| c.uuid.eq_ignore_ascii_case(u)));
            let by_pci = || {
                pci.as_ref().and_then(|p| {
                    list.iter()
                        .find(|c| c.pci_domain_bus_device == (p.domain, p.bus, p.device))
                })
            };
            if let Some(c) = by_uuid.or_else(by_pci) {
                info.cuda_ordinal = Some(c.ordinal);
                info.sm_count = Some(c.sm_count);
                info.sm_count_source = Some(SmCountSource::CudaDriver);
            }
        }
        Err(ProbeError::NotCompiledWithCuda) => {}
        Err(e) => r.unavailable.push(format!("cuda_ordinal: {e}")),
    }
    if info.sm_count.is_none() {
        if let Ok(attrs) = device.attributes() {
            if attrs.multiprocessor_count > 0 {
                info.sm_count = Some(attrs.multiprocessor_count);
                info.sm_count_source = Some(SmCountSource::Nvml);
            }
        }
    }

    let arch = match_arch_with_power_limit(
        &info.name,
        info.compute_capability,
        info.memory_total_bytes,
        info.power_limit_w,
    );
    info.arch_key = arch.map(|a| a.key.to_string());
    if info.sm_count.is_none() {
        match arch {
            Some(a) => {
                info.sm_count = Some(a.sm_count);
                info.sm_count_source = Some(SmCountSource::ArchTable);
            }
            None => r
                .unavailable
                .push("sm_count: no CUDA, no NVML attribute, no table row".to_string()),
        }
    }
    info.unavailable_fields = r.unavailable;
    info
}

/// Every field NVML answers directly, except the PCI location (read by the caller).
fn read_nvml_fields(device: &Device<'_>, index: u32, r: &mut FieldReader) -> GpuInfo {
    let name = r
        .read("name", device.name())
        .unwrap_or_else(|| crate::host::UNKNOWN.to_string());
    let compute_capability = r
        .read("compute_capability", device.cuda_compute_capability())
        .and_then(|c| Some((u32::try_from(c.major).ok()?, u32::try_from(c.minor).ok()?)));
    let memory = r.read("memory", device.memory_info());
    let memory_bus_width_bits = r.read("memory_bus_width_bits", device.memory_bus_width());
    let memory_clock_max_mhz = r.read("memory_clock_max_mhz", device.max_clock_info(Clock::Memory));
    let theoretical_bandwidth_gb_s = match (memory_bus_width_bits, memory_clock_max_mhz) {
        (Some(bits), Some(mhz)) => Some(theoretical_bandwidth_gb_s(bits, mhz)),
        _ => None,
    };
    let power_limit_w = r
        .read("power_limit_w", device.enforced_power_limit())
        .map(milliwatts_to_watts);
    let throttle_reasons = r
        .read("throttle_reasons", device.current_throttle_reasons())
        .map(throttle_reason_names)
        .unwrap_or_default();
    GpuInfo {
        index,
        name,
        uuid: r.read("uuid", device.uuid()),
        pci_bus_id: None,
        cuda_ordinal: None,
        nvml_architecture: r
            .read("nvml_architecture", device.architecture())
            .map(|a| a.to_string()),
        compute_capability,
        sm_count: None,
        sm_count_source: None,
        memory_total_bytes: memory.as_ref().map(|m| m.total),
        memory_used_bytes: memory.as_ref().map(|m| m.used),
        memory_free_bytes: memory.as_ref().map(|m| m.free),
        memory_bus_width_bits,
        memory_clock_mhz: r.read("memory_clock_mhz", device.clock_info(Clock::Memory)),
        memory_clock_max_mhz,
        theoretical_bandwidth_gb_s,
        sm_clock_mhz: r.read("sm_clock_mhz", device.clock_info(Clock::SM)),
        sm_clock_max_mhz: r.read("sm_clock_max_mhz", device.max_clock_info(Clock::SM)),
        power_draw_w: r
            .read("power_draw_w", device.power_usage())
            .map(milliwatts_to_watts),
        power_limit_w,
        temperature_c: r.read("temperature_c", device.temperature(TemperatureSensor::Gpu)),
        performance_state: r
            .read("performance_state", device.performance_state())
            .map(performance_state_name),
        pcie_link_gen_current: r.read("pcie_link_gen_current", device.current_pcie_link_gen()),
        pcie_link_gen_max: r.read("pcie_link_gen_max", device.max_pcie_link_gen()),
        pcie_link_width_current: r
            .read("pcie_link_width_current", device.current_pcie_link_width()),
        pcie_link_width_max: r.read("pcie_link_width_max", device.max_pcie_link_width()),
        ecc_enabled: r
            .read("ecc_enabled", device.is_ecc_enabled())
            .map(|e| e.currently_enabled),
        mig_enabled: r
            .read("mig_enabled", device.mig_mode())
            .map(|m| m.current == NVML_MIG_ENABLE),
        throttle_reasons,
        arch_key: None,
        unavailable_fields: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn performance_states_are_named_like_nvidia_smi() {
        assert_eq!(performance_state_name(PerformanceState::Zero), "P0");
        assert_eq!(performance_state_name(PerformanceState::Eight), "P8");
        assert_eq!(performance_state_name(PerformanceState::Fifteen), "P15");
        assert_eq!(performance_state_name(PerformanceState::Unknown), "unknown");
    }

    #[test]
    fn field_errors_read_as_words() {
        let mut r = FieldReader::default();
        let v: Option<u32> = r.read("power_draw_w", Err(NvmlError::NotSupported));
        assert_eq!(v, None);
        assert_eq!(
            r.unavailable,
            ["power_draw_w: not supported on this device"]
        );
        assert_eq!(r.read("x", Ok(3u32)), Some(3));
        assert_eq!(r.unavailable.len(), 1);
    }

    #[test]
    fn init_errors_read_as_words() {
        assert_eq!(
            describe_init_error(&NvmlError::DriverNotLoaded),
            "the NVIDIA kernel driver is not loaded"
        );
        assert!(
            describe_init_error(&NvmlError::FailedToLoadSymbol("nvmlInit_v2".into()))
                .contains("nvmlInit_v2")
        );
    }

    #[test]
    fn milliwatts_convert() {
        assert_eq!(milliwatts_to_watts(700_000), 700.0);
        assert_eq!(milliwatts_to_watts(72_500), 72.5);
    }
}
