//! Linear layers of a few rows (a decode step of 1-4 sequences) with our own GEMV kernel
//! (`kernels/gemv.cu`) instead of cuBLAS.
//!
//! At batch 1 a decode step is a pass over all the weights, and the linear layers are ~70% of
//! it. cuBLAS's kernels for an `M = 1` product read the weight at ~77% of the H200's measured
//! bandwidth. Here one to four warps per output column stream its weight row with four 16-byte
//! loads in flight per lane (figures in docs/PERFORMANCE.md). `LLM_ENGINE_GEMV=0` keeps cuBLAS;
//! `LLM_ENGINE_GEMV_SPLIT=1|2|4` forces the warps per column and `LLM_ENGINE_GEMV_DEPTH=4|8`
//! the loads in flight (all read once).

use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::CudaDType;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, DType, Storage, Tensor};

use super::{
    arg_i32, contiguous_view, dim, dtype_suffix, env_choice, kernel_error, load, KernelModule,
};
use crate::error::Result;

const GEMV: KernelModule = KernelModule {
    name: "llm_engine_gemv",
    image: include_bytes!(concat!(env!("OUT_DIR"), "/gemv.fatbin")),
};

/// The most rows of `x` the kernel takes (`gemv_m1` .. `gemv_m4`).
pub const MAX_ROWS: usize = 4;
/// Warps (output columns) per thread block.
const WARPS: usize = 8;

/// The GEMV settings the environment asks for, read once.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// `LLM_ENGINE_GEMV=0` turns the path off (cuBLAS).
    on: bool,
    /// `LLM_ENGINE_GEMV_SPLIT=1|2|4`: warps per output column (otherwise [`DEFAULT_SPLIT`]).
    split: Option<usize>,
    /// `LLM_ENGINE_GEMV_DEPTH=4|8`: 16-byte loads in flight per lane (otherwise by shape).
    depth: Option<usize>,
}

fn settings() -> Settings {
    static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();
    *SETTINGS.get_or_init(|| Settings {
        on: env_choice("LLM_ENGINE_GEMV", &[0, 1]) != Some(0),
        split: env_choice("LLM_ENGINE_GEMV_SPLIT", &[1, 2, 4]),
        depth: env_choice("LLM_ENGINE_GEMV_DEPTH", &[4, 8]),
    })
}

/// Layers with at most this many output columns get 8 loads in flight per lane by default
/// (their warps, one per column, all fit on the GPU at once, so more loads per warp cost no
/// occupancy). `None`: never by default. Measured on the H200 (2026-11-28, session 6, with CUDA
/// graphs): Llama-2-7B at batch 1 gave 207.6-209.5 tok/s with 8 loads for its 4,096-column
/// o_proj and down_proj against 214.0 with 4, so the deep variant stays opt-in
/// (`LLM_ENGINE_GEMV_DEPTH=8`).
pub const DEEP_MAX_COLUMNS: Option<usize> = None;

/// Warps per output column by default. On the H200 (device call 4 of 2026-11-28), splitting
/// Llama-2-7B's 4,096-column layers over 2 warps made no difference at batch 1 (191.7 vs
/// 190.6 tok/s) and timed slower under ncu (22.4 µs against 19.5 µs for o_proj + down_proj
/// on average), so one warp per column; 2 and 4 stay available for other cards.
pub const DEFAULT_SPLIT: usize = 1;

/// `x · wᵀ (+ bias)` for `x` `[m, k]` with `1 <= m <=` [`MAX_ROWS`], `w` `[n, k]` (PyTorch's
/// layout), `bias` `[n]`, all CUDA tensors of one dtype: `Some([m, n])`. `None` when the
/// kernel does not apply (more rows, a CPU tensor, other dtypes, a `k` that is not a whole
/// number of 16-byte loads, unaligned storage, or the path turned off), so the caller uses
/// its matmul.
///
/// # Errors
/// [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) naming `gemv_m<m>_w<split>_<dtype>` for
/// a failed launch.
pub fn small_m_linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Option<Tensor>> {
    let s = settings();
    if !s.on {
        return Ok(None);
    }
    small_m_linear_with(x, w, bias, s.split, s.depth)
}

/// [`small_m_linear`] with `split` (1, 2 or 4) warps per output column, or [`DEFAULT_SPLIT`]
/// when `None`, whatever the environment says; `None` also for another split. For tests and
/// A/B runs.
///
/// # Errors
/// As [`small_m_linear`].
pub fn small_m_linear_with_split(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    split: Option<usize>,
) -> Result<Option<Tensor>> {
    small_m_linear_with(x, w, bias, split, None)
}

/// [`small_m_linear`] with both variant choices explicit: `split` warps per column (1, 2, 4;
/// `None`: [`DEFAULT_SPLIT`]) and `depth` 16-byte loads in flight per lane (4, or 8 with one
/// warp per column; `None`: 8 for layers of at most [`DEEP_MAX_COLUMNS`] columns at split 1,
/// else 4). `None` for a combination the kernels do not have.
///
/// # Errors
/// As [`small_m_linear`].
pub fn small_m_linear_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    split: Option<usize>,
    depth: Option<usize>,
) -> Result<Option<Tensor>> {
    if !x.device().is_cuda() || split.is_some_and(|s| ![1, 2, 4].contains(&s)) {
        return Ok(None);
    }
    let (Ok((m, k)), Ok((n, wk))) = (x.dims2(), w.dims2()) else {
        return Ok(None);
    };
    let dtype = x.dtype();
    let per_load = match dtype {
        DType::F32 => 4,
        DType::F16 | DType::BF16 => 8,
        _ => return Ok(None),
    };
    let shapes_ok = (1..=MAX_ROWS).contains(&m)
        && wk == k
        && k % per_load == 0
        && n > 0
        && w.dtype() == dtype
        && bias.is_none_or(|b| b.dims() == [n] && b.dtype() == dtype);
    if !shapes_ok || !aligned(x, per_load) || !aligned(w, per_load) {
        return Ok(None);
    }
    let split = split.unwrap_or(DEFAULT_SPLIT);
    let depth = match depth {
        Some(d) => d,
        None if split == 1 && DEEP_MAX_COLUMNS.is_some_and(|c| n <= c) => 8,
        None => 4,
    };
    let variant = match (depth, split) {
        (4, _) => format!("w{split}"),
        (8, 1) => "w1_u8".to_string(),
        _ => return Ok(None),
    };
    let kernel = format!(
        "gemv_m{m}_{variant}_{}",
        dtype_suffix(dtype).unwrap_or("unsupported")
    );
    let dev = x
        .device()
        .as_cuda_device()
        .cloned()
        .map_err(|e| kernel_error(&kernel, e))?;
    let bias = bias.map(Tensor::contiguous).transpose()?;
    let shape = GemvShape { m, n, k, split };
    let out = match dtype {
        DType::F32 => launch::<f32>(&dev, &kernel, x, w, bias.as_ref(), shape)?,
        DType::F16 => launch::<half::f16>(&dev, &kernel, x, w, bias.as_ref(), shape)?,
        DType::BF16 => launch::<half::bf16>(&dev, &kernel, x, w, bias.as_ref(), shape)?,
        _ => return Ok(None),
    };
    Ok(Some(Tensor::from_storage(
        Storage::Cuda(out),
        (m, n),
        BackpropOp::none(),
        false,
    )))
}

/// Contiguous, with rows starting on 16-byte boundaries (the storage itself is allocated
/// aligned; the view's offset must keep it so).
fn aligned(t: &Tensor, per_load: usize) -> bool {
    t.layout()
        .contiguous_offsets()
        .is_some_and(|(start, _)| start % per_load == 0)
}

/// A storage's CUDA side.
fn cuda<'a>(storage: &'a Storage, kernel: &str) -> Result<&'a CudaStorage> {
    match storage {
        Storage::Cuda(c) => Ok(c),
        _ => Err(kernel_error(kernel, "a tensor is not on CUDA")),
    }
}

#[derive(Clone, Copy)]
struct GemvShape {
    m: usize,
    n: usize,
    k: usize,
    /// Warps per output column.
    split: usize,
}

fn launch<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    kernel: &str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    s: GemvShape,
) -> Result<CudaStorage> {
    let (xs, xl) = x.storage_and_layout();
    let (ws, wl) = w.storage_and_layout();
    let bias = bias.map(|b| b.storage_and_layout());
    let x_v = contiguous_view::<T>(cuda(&xs, kernel)?, xl, kernel, "x")?;
    let w_v = contiguous_view::<T>(cuda(&ws, kernel)?, wl, kernel, "weight")?;
    let b_v = match &bias {
        Some((bs, bl)) => Some(contiguous_view::<T>(cuda(bs, kernel)?, bl, kernel, "bias")?),
        None => None,
    };
    let func = load(dev, &GEMV, kernel)?;
    // SAFETY: the kernel writes every one of the m * n outputs (one group of `split` warps
    // per column, whose first lane 0 writes its m rows) before anything reads them (same
    // stream).
    let mut y = unsafe { dev.alloc::<T>(s.m * s.n) }
        .map_err(|e| kernel_error(kernel, format!("allocation: {e}")))?;
    let n_i = arg_i32(s.n, kernel, "out features")?;
    let k_i = arg_i32(s.k, kernel, "in features")?;
    let cfg = LaunchConfig {
        grid_dim: (dim(s.n.div_ceil(WARPS / s.split), kernel, "blocks")?, 1, 1),
        block_dim: (32 * WARPS as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let null: u64 = 0;
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(&func);
    b.arg(&mut y);
    b.arg(&x_v);
    b.arg(&w_v);
    match &b_v {
        Some(b_v) => b.arg(b_v),
        None => b.arg(&null),
    };
    b.arg(&n_i);
    b.arg(&k_i);
    // SAFETY: the arguments match gemv_m<m>_w<split>_<t> in kernels/gemv.cu: x holds m * k elements, w
    // n * k, bias n (or a null pointer, which the kernel tests), y m * n; k is a whole number
    // of 16-byte loads and both x and w start 16-byte aligned (checked by the caller).
    unsafe { b.launch(cfg) }.map_err(|e| kernel_error(kernel, e))?;
    Ok(CudaStorage::wrap_cuda_slice(y, dev.clone()))
}
