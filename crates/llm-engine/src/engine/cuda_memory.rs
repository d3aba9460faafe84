//! Device memory queries for KV sizing on CUDA (built with the `cuda` feature only).
//!
//! candle allocates through cudarc's stream-ordered allocator (`cuMemAllocAsync`) from the
//! device's current memory pool, so the pool's `USED_MEM_CURRENT` is what this process holds
//! (like `torch.cuda.memory_allocated`) and `USED_MEM_HIGH` is its high-water mark, which we
//! reset before the profiling pass to measure the activation peak.

use candle_core::cuda_backend::cudarc::driver::{result, sys};
use candle_core::Device;

use crate::error::{EngineError, Result};

fn driver_err(what: &str, e: impl std::fmt::Debug) -> EngineError {
    EngineError::DeviceQuery(format!("{what}: {e:?}"))
}

fn bind(
    device: &Device,
) -> Result<std::sync::Arc<candle_core::cuda_backend::cudarc::driver::CudaStream>> {
    let cd = device.as_cuda_device()?;
    let stream = cd.cuda_stream();
    stream
        .context()
        .bind_to_thread()
        .map_err(|e| driver_err("binding the CUDA context", e))?;
    Ok(stream)
}

/// `(free, total)` device memory in bytes.
///
/// # Errors
/// [`EngineError::DeviceQuery`] if the driver call fails.
pub fn mem_info(device: &Device) -> Result<(u64, u64)> {
    bind(device)?;
    let (free, total) = result::mem_get_info().map_err(|e| driver_err("cuMemGetInfo", e))?;
    Ok((free as u64, total as u64))
}

fn pool(device: &Device) -> Result<sys::CUmemoryPool> {
    let stream = bind(device)?;
    let dev = stream.context().cu_device();
    // SAFETY: `dev` comes from a live context.
    unsafe { result::device::get_mem_pool(dev) }.map_err(|e| driver_err("cuDeviceGetMemPool", e))
}

fn get_attr(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute) -> Result<u64> {
    let mut v: u64 = 0;
    // SAFETY: the USED_MEM_* attributes are cuuint64_t values.
    unsafe { result::mem_pool::get_attribute(pool, attr, (&mut v as *mut u64).cast()) }
        .map_err(|e| driver_err("cuMemPoolGetAttribute", e))?;
    Ok(v)
}

/// Bytes currently allocated from the device's memory pool.
///
/// # Errors
/// [`EngineError::DeviceQuery`] if the driver call fails.
pub fn pool_used(device: &Device) -> Result<u64> {
    get_attr(
        pool(device)?,
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT,
    )
}

/// Resets the pool's used-memory high-water mark to the current use.
///
/// # Errors
/// [`EngineError::DeviceQuery`] if the driver call fails.
pub fn reset_pool_peak(device: &Device) -> Result<()> {
    let p = pool(device)?;
    let mut zero: u64 = 0;
    // SAFETY: USED_MEM_HIGH takes a cuuint64_t; 0 resets it to the current use.
    unsafe {
        result::mem_pool::set_attribute(
            p,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
            (&mut zero as *mut u64).cast(),
        )
    }
    .map_err(|e| driver_err("cuMemPoolSetAttribute", e))
}

/// The pool's used-memory high-water mark since the last reset.
///
/// # Errors
/// [`EngineError::DeviceQuery`] if the driver call fails.
pub fn pool_peak(device: &Device) -> Result<u64> {
    get_attr(
        pool(device)?,
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
    )
}
