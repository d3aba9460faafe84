//! Facts about the host machine (the CPU is a device we benchmark too), through `sysinfo`.

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// Written where the operating system does not tell a fact.
pub const UNKNOWN: &str = "unknown";

/// The host's CPU, memory and operating system.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HostInfo {
    /// Host name ([`UNKNOWN`] if the OS does not say).
    pub hostname: String,
    /// CPU model (brand string of the first CPU, e.g. "AMD EPYC 7R13 Processor").
    pub cpu_model: String,
    /// CPU architecture (`"x86_64"`, `"aarch64"`, ...).
    pub cpu_arch: String,
    /// Physical cores, where the OS reports them.
    pub physical_cores: Option<usize>,
    /// Logical cores (hardware threads) this process can see.
    pub logical_cores: usize,
    /// Total RAM in bytes.
    pub memory_total_bytes: u64,
    /// RAM available for new allocations, in bytes, at probe time.
    pub memory_available_bytes: u64,
    /// OS name (e.g. "Ubuntu").
    pub os_name: String,
    /// OS version (e.g. "22.04").
    pub os_version: String,
    /// Long OS description (e.g. "Linux (Ubuntu 22.04)").
    pub os_long_version: String,
    /// Kernel version (e.g. "6.8.0-1015-aws").
    pub kernel_version: String,
}

impl HostInfo {
    /// Reads the host facts now. Never fails: what the OS does not tell is [`UNKNOWN`] (or
    /// `None` for `physical_cores`).
    pub fn probe() -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        let cpu_model = system
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| UNKNOWN.to_string());
        let logical_cores = match system.cpus().len() {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let or_unknown = |v: Option<String>| v.unwrap_or_else(|| UNKNOWN.to_string());
        HostInfo {
            hostname: or_unknown(System::host_name()),
            cpu_model,
            cpu_arch: System::cpu_arch(),
            physical_cores: System::physical_core_count(),
            logical_cores,
            memory_total_bytes: system.total_memory(),
            memory_available_bytes: system.available_memory(),
            os_name: or_unknown(System::name()),
            os_version: or_unknown(System::os_version()),
            os_long_version: or_unknown(System::long_os_version()),
            kernel_version: or_unknown(System::kernel_version()),
        }
    }

    /// Total RAM in GB (10^9 bytes).
    pub fn memory_total_gb(&self) -> f64 {
        self.memory_total_bytes as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_fills_the_host() {
        let h = HostInfo::probe();
        assert!(h.logical_cores >= 1);
        if let Some(p) = h.physical_cores {
            assert!(p >= 1 && p <= h.logical_cores);
        }
        assert!(h.memory_total_bytes > 0);
        assert!(h.memory_available_bytes <= h.memory_total_bytes);
        assert!(!h.cpu_arch.is_empty());
        assert!(!h.hostname.is_empty());
        assert!(!h.kernel_version.is_empty());
        if cfg!(target_os = "linux") {
            assert_ne!(h.kernel_version, UNKNOWN);
            assert_ne!(h.cpu_model, UNKNOWN);
        }
    }

    #[test]
    fn round_trips_through_json() {
        let h = HostInfo::probe();
        let json = serde_json::to_string(&h).expect("serialize");
        let back: HostInfo = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, h);
    }
}
