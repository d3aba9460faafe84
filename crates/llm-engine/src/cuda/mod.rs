//! llm-engine's own CUDA kernels (`kernels/*.cu`, compiled by `build.rs` to a fat binary of
//! machine code for the build's GPU and PTX for newer ones), launched on candle's stream so they stay ordered with candle's ops without any synchronisation.
//!
//! | function | kernels | what it does |
//! |---|---|---|
//! | [`reshape_and_cache`] | `reshape_and_cache_<dtype>[_fp8]` | writes a step's new K (or V) rows into their cache slots, one launch per layer |
//! | [`paged_attention`] | `paged_decode_*`, `paged_prefill_*` | attention of every new token over the paged cache, output in token order |
//! | [`gemv::small_m_linear`] | `gemv_m<1-4>_<dtype>` | linear layers of 1-4 rows (batch-1 to -4 decode) at the memory bandwidth |
//! | [`fused`] | `add_rms_norm_*`, `rope_split_qkv_*`, .. | fused element-wise ops of the models' forward |
//! | [`argmax_rows`] | `argmax_rows_f32` | greedy sampling: each row's argmax, only the ids cross to the host |
//! | [`topk_rows`] | `topk_rows_f32` | top-k sampling: each row's k best scaled logits, sorted; only those cross to the host |
//!
//! f32, f16 and bf16; head dims up to 256 ([`supports_head_dim`]). The KV cache may instead
//! hold fp8 E4M3 (`*_<dtype>_fp8` kernels: written with round-to-nearest-even and saturation
//! to ±448, read back exactly; attention for f16 / bf16 models with head dims 64 and 128). A kernel that cannot be
//! loaded or launched, or gets tensors it cannot use, is an
//! [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) naming it.

mod argmax;
pub mod fused;
pub mod gemv;
mod paged_attention;
mod reshape_and_cache;
mod topk;

pub use argmax::{argmax_rows, NO_ARGMAX};
pub use paged_attention::{paged_attention, supports_head_dim};
pub use reshape_and_cache::{convert_fp8, reshape_and_cache};
pub use topk::{topk_rows, TopKCandidates, TopKRow, MAX_DEVICE_TOP_K, NO_CANDIDATE};

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::driver::{CudaFunction, CudaModule, CudaView};
use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
use candle_core::cuda_backend::CudaDType;
use candle_core::{CudaDevice, CudaStorage, DType, Layout};

use crate::error::{EngineError, Result};

/// The fat binary of one kernel file and the name its loaded module is cached under.
struct KernelModule {
    name: &'static str,
    image: &'static [u8],
}

const RESHAPE_AND_CACHE: KernelModule = KernelModule {
    name: "llm_engine_reshape_and_cache",
    image: include_bytes!(concat!(env!("OUT_DIR"), "/reshape_and_cache.fatbin")),
};

/// The paged-attention kernels of q's `dtype` over a cache of `cache_dtype` (the same, or fp8
/// E4M3 for f16 / bf16): one module per pair, so a process loads only the one it runs.
fn paged_attention_module(dtype: DType, cache_dtype: DType) -> Option<KernelModule> {
    let (name, image): (_, &'static [u8]) = match (dtype, cache_dtype) {
        (DType::F16, DType::F8E4M3) => (
            "llm_engine_paged_attention_f16_fp8",
            include_bytes!(concat!(env!("OUT_DIR"), "/paged_attention_f16_fp8.fatbin")),
        ),
        (DType::BF16, DType::F8E4M3) => (
            "llm_engine_paged_attention_bf16_fp8",
            include_bytes!(concat!(env!("OUT_DIR"), "/paged_attention_bf16_fp8.fatbin")),
        ),
        (d, c) if d != c => return None,
        (DType::F32, _) => (
            "llm_engine_paged_attention_f32",
            include_bytes!(concat!(env!("OUT_DIR"), "/paged_attention_f32.fatbin")),
        ),
        (DType::F16, _) => (
            "llm_engine_paged_attention_f16",
            include_bytes!(concat!(env!("OUT_DIR"), "/paged_attention_f16.fatbin")),
        ),
        (DType::BF16, _) => (
            "llm_engine_paged_attention_bf16",
            include_bytes!(concat!(env!("OUT_DIR"), "/paged_attention_bf16.fatbin")),
        ),
        _ => return None,
    };
    Some(KernelModule { name, image })
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

/// The kernels' name for a model `dtype` writing to / reading from a cache of `cache_dtype`:
/// the dtype's name where they match (`f16`), `<dtype>_fp8` over an fp8 E4M3 cache.
fn kv_suffix(dtype: DType, cache_dtype: DType) -> Option<&'static str> {
    match (dtype, cache_dtype) {
        (d, c) if d == c => dtype_suffix(d),
        (DType::F32, DType::F8E4M3) => Some("f32_fp8"),
        (DType::F16, DType::F8E4M3) => Some("f16_fp8"),
        (DType::BF16, DType::F8E4M3) => Some("bf16_fp8"),
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

/// Loads `kernel` of `module` on `dev`'s context. Modules are loaded once per context and kept
/// for the process (candle's own cache takes PTX text only, these are fat binaries).
fn load(dev: &CudaDevice, module: &KernelModule, kernel: &str) -> Result<CudaFunction> {
    type Key = (usize, &'static str);
    static MODULES: OnceLock<Mutex<HashMap<Key, Arc<CudaModule>>>> = OnceLock::new();
    let context = dev.cuda_stream().context().clone();
    // Keyed by the driver context (every candle device of one GPU shares its primary
    // context); a cached module holds the context, so the handle is never reused.
    let key = (context.cu_ctx() as usize, module.name);
    let loaded = {
        let mut modules = MODULES
            .get_or_init(Default::default)
            .lock()
            .map_err(|_| kernel_error(kernel, "the module cache was poisoned by a panic"))?;
        match modules.get(&key) {
            Some(m) => m.clone(),
            None => {
                let m = context
                    .load_module(Ptx::from_binary(module.image.to_vec()))
                    .map_err(|e| {
                        kernel_error(kernel, format!("cannot load module {}: {e}", module.name))
                    })?;
                modules.insert(key, m.clone());
                m
            }
        }
    };
    loaded
        .load_function(kernel)
        .map_err(|e| kernel_error(kernel, format!("not in module {}: {e}", module.name)))
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
