//! llm-engine's own CUDA kernels (`kernels/*.cu`, compiled to PTX by `build.rs`), launched on
//! candle's stream so they stay ordered with candle's ops without any synchronisation.
//!
//! | function | kernels | what it does |
//! |---|---|---|
//! | [`reshape_and_cache`] | `reshape_and_cache_<dtype>` | writes a step's new K (or V) rows into their cache slots, one launch per layer |
//! | [`paged_attention`] | `paged_decode_*`, `paged_prefill_*` | attention of every new token over the paged cache, output in token order |
//! | [`gemv::small_m_linear`] | `gemv_m<1-4>_<dtype>` | linear layers of 1-4 rows (batch-1 to -4 decode) at the memory bandwidth |
//! | [`fused`] | `add_rms_norm_*`, `rope_split_qkv_*`, .. | fused element-wise ops of the models' forward |
//! | [`argmax_rows`] | `argmax_rows_f32` | greedy sampling: each row's argmax, only the ids cross to the host |
//!
//! f32, f16 and bf16; head dims up to 256 ([`supports_head_dim`]). A kernel that cannot be
//! loaded or launched, or gets tensors it cannot use, is an
//! [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) naming it.

mod argmax;
pub mod fused;
pub mod gemv;
mod paged_attention;
mod reshape_and_cache;

pub use argmax::{argmax_rows, NO_ARGMAX};
pub use paged_attention::{paged_attention, supports_head_dim};
pub use reshape_and_cache::reshape_and_cache;

use std::fmt::Display;

use candle_core::cuda_backend::cudarc::driver::{CudaFunction, CudaView};
use candle_core::cuda_backend::CudaDType;
use candle_core::{CudaDevice, CudaStorage, DType, Layout};

use crate::error::{EngineError, Result};

/// The PTX of one kernel file and the name candle caches its loaded module under.
struct PtxModule {
    name: &'static str,
    ptx: &'static str,
}

const RESHAPE_AND_CACHE: PtxModule = PtxModule {
    name: "llm_engine_reshape_and_cache",
    ptx: include_str!(concat!(env!("OUT_DIR"), "/reshape_and_cache.ptx")),
};

/// The paged-attention kernels of `dtype`: one module per dtype, so a process loads (and the
/// driver JIT-compiles) only the one it runs.
fn paged_attention_module(dtype: DType) -> Option<PtxModule> {
    let (name, ptx) = match dtype {
        DType::F32 => (
            "llm_engine_paged_attention_f32",
            include_str!(concat!(env!("OUT_DIR"), "/paged_attention_f32.ptx")),
        ),
        DType::F16 => (
            "llm_engine_paged_attention_f16",
            include_str!(concat!(env!("OUT_DIR"), "/paged_attention_f16.ptx")),
        ),
        DType::BF16 => (
            "llm_engine_paged_attention_bf16",
            include_str!(concat!(env!("OUT_DIR"), "/paged_attention_bf16.ptx")),
        ),
        _ => return None,
    };
    Some(PtxModule { name, ptx })
}

/// The kernels' name for `dtype`.
fn dtype_suffix(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F32 => Some("f32"),
        DType::F16 => Some("f16"),
        DType::BF16 => Some("bf16"),
        _ => None,
    }
}

/// A numeric switch from the environment (`LLM_ENGINE_*`, for A/B runs) among `allowed`
/// values; unset gives `None`, anything else is ignored with a warning naming what is
/// accepted.
pub(crate) fn env_choice(name: &str, allowed: &[usize]) -> Option<usize> {
    let raw = std::env::var(name).ok()?;
    match raw.trim().parse::<usize>() {
        Ok(v) if allowed.contains(&v) => Some(v),
        _ => {
            tracing::warn!("{name}={raw:?} ignored (one of {allowed:?})");
            None
        }
    }
}

fn kernel_error(kernel: &str, reason: impl Display) -> EngineError {
    EngineError::CudaKernel {
        kernel: kernel.to_string(),
        reason: reason.to_string(),
    }
}

/// Loads `kernel` of `module` (candle caches the module per device after the first load).
fn load(dev: &CudaDevice, module: &PtxModule, kernel: &str) -> Result<CudaFunction> {
    dev.get_or_load_custom_func(kernel, module.name, module.ptx)
        .map(|f| f.into_cuda_function())
        .map_err(|e| kernel_error(kernel, format!("cannot load from {}: {e}", module.name)))
}

/// The contiguous elements of a CUDA tensor's storage that `layout` covers.
fn contiguous_view<'a, T: CudaDType>(
    storage: &'a CudaStorage,
    layout: &Layout,
    kernel: &str,
    what: &str,
) -> Result<CudaView<'a, T>> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| kernel_error(kernel, format!("{what} must be contiguous")))?;
    let slice = storage
        .as_cuda_slice::<T>()
        .map_err(|e| kernel_error(kernel, format!("{what}: {e}")))?;
    Ok(slice.slice(start..end))
}

/// A launch dimension as the driver's u32, or an error naming the kernel.
fn dim(x: usize, kernel: &str, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| kernel_error(kernel, format!("{what} {x} is too large")))
}

/// A kernel's i32 argument.
fn arg_i32(x: usize, kernel: &str, what: &str) -> Result<i32> {
    i32::try_from(x).map_err(|_| kernel_error(kernel, format!("{what} {x} does not fit i32")))
}
