//! Which device a benchmark runs on (`cpu`, `cuda`, `cuda:N`) and what we know about it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{MatmulError, Result};

/// Whether this build has the CUDA backends (the `cuda` feature).
pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

/// A device to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BenchDevice {
    /// The host CPU (all cores).
    Cpu,
    /// The CUDA device with this ordinal.
    Cuda(usize),
}

impl BenchDevice {
    /// The device this build would pick by default: `cuda:0` with the `cuda` feature, else `cpu`.
    pub fn default_for_build() -> Self {
        if CUDA_COMPILED {
            BenchDevice::Cuda(0)
        } else {
            BenchDevice::Cpu
        }
    }
}

impl fmt::Display for BenchDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchDevice::Cpu => f.write_str("cpu"),
            BenchDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for BenchDevice {
    type Err = MatmulError;

    /// Parses `cpu`, `cuda` / `gpu` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(BenchDevice::Cpu),
            "cuda" | "gpu" => Ok(BenchDevice::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(BenchDevice::Cuda)
                .ok_or_else(|| MatmulError::UnknownDevice(s.to_string())),
        }
    }
}

/// What a backend knows about the device it runs on, for reports and % of peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Marketing name (`NVIDIA H100 80GB HBM3`) or CPU brand.
    pub name: String,
    /// gpu-probe's architecture key (`h100-sxm`), when the card is in its table.
    pub arch_key: Option<String>,
    /// CUDA compute capability `(major, minor)`.
    pub compute_capability: Option<(u32, u32)>,
    /// Streaming multiprocessors (GPU) or logical cores (CPU).
    pub parallel_units: u32,
    /// L2 cache bytes (GPU), when known.
    pub l2_bytes: Option<u64>,
    /// Device memory (GPU) or RAM (CPU) in bytes.
    pub memory_total_bytes: u64,
    /// The library versions doing the work (`cuBLASLt 130100`, `gemm crate`).
    pub library: String,
    /// NVML's index of this GPU (for the clock sampler), when known.
    pub nvml_index: Option<u32>,
}

impl DeviceInfo {
    /// The architecture entry of gpu-probe's table, if this device has one.
    pub fn arch(&self) -> Option<&'static gpu_probe::ArchSpec> {
        self.arch_key.as_deref().and_then(gpu_probe::find_arch)
    }

    /// The theoretical dense peak (TFLOP/s or TOP/s) of this device for `precision`.
    pub fn peak_tflops(&self, precision: gpu_probe::Precision) -> Option<f64> {
        self.arch().and_then(|a| a.peak_tflops(precision))
    }

    /// The theoretical memory bandwidth (GB/s) of this device.
    pub fn peak_bandwidth_gb_s(&self) -> Option<f64> {
        self.arch().map(|a| a.bandwidth_gb_s)
    }
}

/// RAM the host can hand out now, in bytes (sysinfo's "available memory").
pub fn host_available_bytes() -> u64 {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.available_memory()
}

/// Fails with [`MatmulError::InsufficientMemory`] if `needed` bytes exceed `free` bytes.
///
/// # Errors
/// [`MatmulError::InsufficientMemory`] naming `what` and `device`.
pub fn ensure_fits(what: &str, device: &str, needed: u64, free: u64) -> Result<()> {
    if needed > free {
        return Err(MatmulError::InsufficientMemory {
            what: what.to_string(),
            device: device.to_string(),
            needed_bytes: needed,
            free_bytes: free,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse::<BenchDevice>().ok(), Some(BenchDevice::Cpu));
        assert_eq!(
            "cuda".parse::<BenchDevice>().ok(),
            Some(BenchDevice::Cuda(0))
        );
        assert_eq!(
            "CUDA:3".parse::<BenchDevice>().ok(),
            Some(BenchDevice::Cuda(3))
        );
        for bad in ["tpu", "cuda:", "cuda:-1", "cuda:x", ""] {
            assert!(bad.parse::<BenchDevice>().is_err(), "{bad}");
        }
        assert_eq!(BenchDevice::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn memory_errors_say_how_much_is_needed_and_free() {
        let e = ensure_fits("x", "cpu", 3 << 30, 1 << 30).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("needs 3.00 GiB"), "{msg}");
        assert!(msg.contains("1.00 GiB is free"), "{msg}");
        assert!(ensure_fits("x", "cpu", 1, 1).is_ok());
        assert!(host_available_bytes() > 0);
    }
}
