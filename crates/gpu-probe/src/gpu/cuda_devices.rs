//! What the CUDA driver API tells that NVML does not (SM count) and how CUDA ordinals map
//! to NVML devices. Real only with the `cuda` feature; without it [`cuda_devices`] returns
//! [`ProbeError::NotCompiledWithCuda`].

use serde::{Deserialize, Serialize};

#[cfg(not(feature = "cuda"))]
use crate::error::ProbeError;
use crate::error::Result;

/// One CUDA device as the driver API sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CudaDeviceFacts {
    /// CUDA device ordinal (after `CUDA_VISIBLE_DEVICES`).
    pub ordinal: usize,
    /// UUID in NVML's format, "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
    pub uuid: String,
    /// `CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT`.
    pub sm_count: u32,
    /// PCI domain, bus and device numbers.
    pub pci_domain_bus_device: (u32, u32, u32),
}

/// Formats the 16 bytes of a `CUuuid` the way NVML prints UUIDs:
/// `GPU-` then 8-4-4-4-12 lowercase hex digits.
///
/// ```
/// let bytes = [0x5f, 0x1f, 0x3b, 0x2a, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xab, 0xcd];
/// assert_eq!(
///     gpu_probe::format_cuda_uuid(bytes),
///     "GPU-5f1f3b2a-0001-0203-0405-06070809abcd"
/// );
/// ```
pub fn format_cuda_uuid(bytes: [u8; 16]) -> String {
    let hex = |r: std::ops::Range<usize>| -> String {
        bytes[r].iter().map(|b| format!("{b:02x}")).collect()
    };
    format!(
        "GPU-{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// Every CUDA device this process can see, with its SM count, through the CUDA driver API
/// (no context is created).
///
/// # Errors
///
/// [`crate::ProbeError::NotCompiledWithCuda`] without the `cuda` feature;
/// [`crate::ProbeError::Cuda`] when the driver API fails (no driver, no device).
pub fn cuda_devices() -> Result<Vec<CudaDeviceFacts>> {
    #[cfg(feature = "cuda")]
    {
        real::cuda_devices()
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(ProbeError::NotCompiledWithCuda)
    }
}

#[cfg(feature = "cuda")]
mod real {
    use cudarc::driver::{result, sys};

    use super::{format_cuda_uuid, CudaDeviceFacts};
    use crate::error::{ProbeError, Result};

    fn cuda_err(e: result::DriverError) -> ProbeError {
        ProbeError::Cuda(e.to_string())
    }

    fn attribute(dev: sys::CUdevice, attrib: sys::CUdevice_attribute) -> Result<u32> {
        // SAFETY: `dev` is a device handle returned by `cuDeviceGet` after `cuInit`, and
        // `attrib` is a valid attribute enum; the call only writes an int.
        let v = unsafe { result::device::get_attribute(dev, attrib) }.map_err(cuda_err)?;
        u32::try_from(v).map_err(|_| ProbeError::Cuda(format!("negative attribute value {v}")))
    }

    pub(super) fn cuda_devices() -> Result<Vec<CudaDeviceFacts>> {
        // cudarc's dynamic loading panics when libcuda is missing; keep that a typed error.
        std::panic::catch_unwind(list_devices).unwrap_or_else(|_| {
            Err(ProbeError::Cuda(
                "the CUDA driver library (libcuda.so.1) could not be loaded".to_string(),
            ))
        })
    }

    fn list_devices() -> Result<Vec<CudaDeviceFacts>> {
        use sys::CUdevice_attribute as A;
        result::init().map_err(cuda_err)?;
        let count = result::device::get_count().map_err(cuda_err)?;
        let mut out = Vec::new();
        for ordinal in 0..count {
            let dev = result::device::get(ordinal).map_err(cuda_err)?;
            let uuid = result::device::get_uuid(dev).map_err(cuda_err)?;
            let bytes: [u8; 16] = uuid.bytes.map(|b| b as u8);
            out.push(CudaDeviceFacts {
                ordinal: ordinal as usize,
                uuid: format_cuda_uuid(bytes),
                sm_count: attribute(dev, A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
                pci_domain_bus_device: (
                    attribute(dev, A::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID)?,
                    attribute(dev, A::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
                    attribute(dev, A::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID)?,
                ),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_format_matches_nvml() {
        let bytes: [u8; 16] = core::array::from_fn(|i| (i as u8) * 17);
        let s = format_cuda_uuid(bytes);
        assert_eq!(s, "GPU-00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(s.len(), 4 + 36);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_cuda_feature_is_a_typed_error() {
        assert!(matches!(
            cuda_devices(),
            Err(crate::error::ProbeError::NotCompiledWithCuda)
        ));
    }
}
