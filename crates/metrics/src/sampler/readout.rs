//! Where readings come from: the [`GpuReadout`] trait and its NVML implementation.

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::Nvml;
use serde::{Deserialize, Serialize};

/// One instantaneous reading; `None` for every query the device does not support.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuReading {
    /// Percent of the last period in which a kernel was running.
    pub gpu_util_pct: Option<u32>,
    /// Percent of the last period in which device memory was read or written.
    pub mem_util_pct: Option<u32>,
    /// Device memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Board power draw, watts.
    pub power_w: Option<f64>,
    /// Total-energy counter, millijoules.
    pub energy_mj: Option<u64>,
    /// Die temperature, °C.
    pub temperature_c: Option<u32>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Memory clock, MHz.
    pub mem_clock_mhz: Option<u32>,
    /// Clock-event (throttle) reasons bitmask.
    pub clock_event_mask: Option<u64>,
}

/// A source of [`GpuReading`]s that the sampler thread polls. Reading never fails as a
/// whole: unsupported or failing queries are `None` in the reading.
pub trait GpuReadout: Send + 'static {
    /// Takes one reading now.
    fn read(&mut self) -> GpuReading;
}

/// Reads one GPU through NVML (loaded at run time, so a host without a driver gets a
/// clean "unavailable" instead of a link failure).
#[derive(Debug)]
pub struct NvmlReadout {
    nvml: Nvml,
    index: u32,
    name: String,
}

impl NvmlReadout {
    /// Loads NVML and checks that GPU `index` answers.
    ///
    /// # Errors
    /// A human-readable reason when NVML cannot be loaded (no NVIDIA driver / GPU) or the
    /// index does not name a GPU; the sampler records it instead of failing.
    pub fn open(index: u32) -> Result<NvmlReadout, String> {
        let nvml = gpu_probe::nvml().map_err(|e| e.to_string())?;
        let name = {
            let device = nvml.device_by_index(index).map_err(|e| {
                let count = nvml
                    .device_count()
                    .map_or_else(|_| "unknown".to_string(), |c| c.to_string());
                format!("GPU index {index} is not usable ({count} GPUs visible): {e}")
            })?;
            device.name().unwrap_or_else(|_| format!("GPU {index}"))
        };
        Ok(NvmlReadout { nvml, index, name })
    }

    /// The GPU's marketing name, as NVML reports it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl GpuReadout for NvmlReadout {
    fn read(&mut self) -> GpuReading {
        let device = match self.nvml.device_by_index(self.index) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(index = self.index, error = %e, "GPU reading failed");
                return GpuReading::default();
            }
        };
        let util = device.utilization_rates().ok();
        GpuReading {
            gpu_util_pct: util.as_ref().map(|u| u.gpu),
            mem_util_pct: util.as_ref().map(|u| u.memory),
            memory_used_bytes: device.memory_info().ok().map(|m| m.used),
            power_w: device.power_usage().ok().map(|mw| f64::from(mw) / 1e3),
            energy_mj: device.total_energy_consumption().ok(),
            temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
            sm_clock_mhz: device.clock_info(Clock::SM).ok(),
            mem_clock_mhz: device.clock_info(Clock::Memory).ok(),
            clock_event_mask: device.current_throttle_reasons().ok().map(|r| r.bits()),
        }
    }
}
