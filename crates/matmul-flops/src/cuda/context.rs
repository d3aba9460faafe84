//! Opening a CUDA device: context, stream and what gpu-probe knows about the card.

use std::sync::Arc;

use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaStream};

use crate::device::DeviceInfo;
use crate::error::{MatmulError, Result};

/// A CUDA device ready for work: its context, the one stream we use, and its facts.
pub(crate) struct OpenDevice {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) info: DeviceInfo,
    pub(crate) compute_capability: (u32, u32),
    pub(crate) sm_count: u32,
}

impl OpenDevice {
    /// Opens device `ordinal`, naming `library` as the code that does the work.
    pub(crate) fn open(ordinal: usize, library: &str) -> Result<Self> {
        let count = CudaContext::device_count()?;
        let available = usize::try_from(count).unwrap_or(0);
        if ordinal >= available {
            return Err(MatmulError::NoSuchDevice {
                requested: ordinal,
                available,
            });
        }
        let ctx = CudaContext::new(ordinal)?;
        let (major, minor) = ctx.compute_capability()?;
        let cc = (
            u32::try_from(major).unwrap_or(0),
            u32::try_from(minor).unwrap_or(0),
        );
        let name = ctx.name()?;
        let sm_count =
            ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let l2 = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?;
        let total = ctx.total_mem()? as u64;
        // gpu-probe (NVML) knows the architecture row and the NVML index for the sampler.
        let probe = gpu_probe::probe_gpus();
        let nvml_gpu = probe
            .devices()
            .iter()
            .find(|g| g.cuda_ordinal == Some(ordinal))
            .cloned();
        let arch_key = nvml_gpu
            .as_ref()
            .and_then(|g| g.arch_key.clone())
            .or_else(|| {
                gpu_probe::match_arch(&name, Some(cc), Some(total)).map(|a| a.key.to_string())
            });
        let nvml_index = nvml_gpu.map(|g| g.index).or_else(|| {
            // Without a CUDA↔NVML mapping, NVML's order is the PCI order, as CUDA's default is.
            u32::try_from(ordinal)
                .ok()
                .filter(|_| !probe.devices().is_empty())
        });
        let stream = ctx.default_stream();
        let info = DeviceInfo {
            device: format!("cuda:{ordinal}"),
            name,
            arch_key,
            compute_capability: Some(cc),
            parallel_units: u32::try_from(sm_count).unwrap_or(0),
            l2_bytes: u64::try_from(l2).ok(),
            memory_total_bytes: total,
            library: library.to_string(),
            nvml_index,
        };
        tracing::info!(device = %info.device, name = %info.name, arch = ?info.arch_key, "opened CUDA device");
        Ok(Self {
            ctx,
            stream,
            info,
            compute_capability: cc,
            sm_count: u32::try_from(sm_count).unwrap_or(1).max(1),
        })
    }

    /// Free device memory in bytes, now.
    pub(crate) fn free_bytes(&self) -> Result<u64> {
        self.ctx.bind_to_thread()?;
        let (free, _total) = self.ctx.mem_get_info()?;
        Ok(free as u64)
    }
}
