//! The CPU backends: GEMMs through the `gemm` crate and host memory bandwidth.

mod bandwidth;
mod gemm;

pub use self::bandwidth::CpuBandwidthBackend;
pub use self::gemm::CpuGemmBackend;

use crate::device::DeviceInfo;

/// What we know about the host CPU, with `library` naming the code that does the work.
fn cpu_device_info(library: &str) -> DeviceInfo {
    let mut sys = sysinfo::System::new();
    sys.refresh_cpu_all();
    sys.refresh_memory();
    let name = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "unknown CPU".to_string());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    DeviceInfo {
        device: "cpu".into(),
        name,
        arch_key: None,
        compute_capability: None,
        parallel_units: u32::try_from(threads).unwrap_or(u32::MAX),
        l2_bytes: None,
        memory_total_bytes: sys.total_memory(),
        library: library.into(),
        nvml_index: None,
    }
}
