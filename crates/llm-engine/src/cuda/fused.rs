//! Fused element-wise kernels of the models' forward (`kernels/fused_ops.cu`): residual add +
//! RMSNorm / LayerNorm, SiLU(gate)·up, and the rotary embedding of q and k that also splits the
//! fused qkv projection into contiguous q, k and v — one launch each where candle's op path
//! launches two to five. Inputs of f32, f16 or bf16, f32 arithmetic inside.

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::CudaDType;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Storage, Tensor};

use super::{arg_i32, contiguous_view, dim, dtype_suffix, kernel_error, load, KernelModule};
use crate::error::Result;

const FUSED_OPS: KernelModule = KernelModule {
    name: "llm_engine_fused_ops",
    image: include_bytes!(concat!(env!("OUT_DIR"), "/fused_ops.fatbin")),
};

/// Threads per block of the element-wise kernels.
const THREADS: u32 = 256;
/// Most blocks of an element-wise launch (the kernels loop over the rest).
const MAX_BLOCKS: usize = 1 << 16;

/// `x + delta` and its RMSNorm, in one launch: `(sum, rms_norm(sum) * weight)`, both
/// `[rows, hidden]` in the inputs' dtype. `sum` is rounded to the dtype before the norm reads
/// it, as `(x + delta)` followed by candle's `rms_norm` does.
///
/// # Errors
/// [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) naming `add_rms_norm_<dtype>`
/// for tensors not on CUDA, of mismatched shapes or dtypes, or a failed launch.
pub fn add_rms_norm(
    x: &Tensor,
    delta: &Tensor,
    weight: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    add_norm("add_rms_norm", x, delta, weight, None, eps)
}

/// `x + delta` and its LayerNorm, in one launch: `(sum, layer_norm(sum) * weight + bias)`,
/// both `[rows, hidden]` in the inputs' dtype.
///
/// # Errors
/// As [`add_rms_norm`], naming `add_layer_norm_<dtype>`.
pub fn add_layer_norm(
    x: &Tensor,
    delta: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    add_norm("add_layer_norm", x, delta, weight, Some(bias), eps)
}

/// `silu(gate) * up` of a fused gate/up projection `gate_up` `[rows, 2 * inter]` (gate in the
/// first `inter` columns): `[rows, inter]`, one launch.
///
/// # Errors
/// [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) naming `silu_mul_<dtype>`.
pub fn silu_mul(gate_up: &Tensor) -> Result<Tensor> {
    let kernel = kernel_name("silu_mul", gate_up.dtype());
    let (rows, width) = gate_up
        .dims2()
        .map_err(|e| kernel_error(&kernel, format!("gate_up: {e}")))?;
    if width % 2 != 0 {
        return Err(kernel_error(
            &kernel,
            format!("gate_up width {width} is odd"),
        ));
    }
    let inter = width / 2;
    let gate_up = gate_up.contiguous()?;
    let dev = cuda_device(&gate_up, &kernel)?;
    let (s, l) = gate_up.storage_and_layout();
    let out = match gate_up.dtype() {
        DType::F32 => silu_mul_launch::<f32>(&dev, &kernel, &s, l, rows, inter)?,
        DType::F16 => silu_mul_launch::<half::f16>(&dev, &kernel, &s, l, rows, inter)?,
        DType::BF16 => silu_mul_launch::<half::bf16>(&dev, &kernel, &s, l, rows, inter)?,
        other => return Err(unsupported(&kernel, other)),
    };
    Ok(Tensor::from_storage(
        Storage::Cuda(out),
        (rows, inter),
        BackpropOp::none(),
        false,
    ))
}

/// The rotary embedding of a step, as a [`rope_split_qkv`] argument.
#[derive(Debug, Clone, Copy)]
pub struct Rotary<'a> {
    /// `[max_positions, head_dim]`: cos of each position in the first `head_dim / 2` columns,
    /// sin in the rest, in the qkv's dtype.
    pub cos_sin: &'a Tensor,
    /// u32 `[rows]`: each row's position.
    pub positions: &'a Tensor,
}

/// Splits a fused qkv projection `[rows, (heads + 2 * kv_heads) * head_dim]` into contiguous
/// q `[rows, heads * head_dim]`, k and v `[rows, kv_heads * head_dim]` in one launch, rotating
/// q and k ("rotate half", the Hugging Face Llama layout) when `rotary` is given.
///
/// # Errors
/// [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) naming `rope_split_qkv_<dtype>`
/// for mismatched shapes or dtypes (an odd `head_dim` with `rotary`), or a failed launch.
pub fn rope_split_qkv(
    qkv: &Tensor,
    rotary: Option<Rotary<'_>>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let kernel = kernel_name("rope_split_qkv", qkv.dtype());
    let rows = qkv
        .dims2()
        .map_err(|e| kernel_error(&kernel, format!("qkv: {e}")))?
        .0;
    let flat = split(qkv, rotary, heads, kv_heads, head_dim, None, &kernel)?;
    let (qs, kvs) = (heads * head_dim, kv_heads * head_dim);
    let q = flat.narrow(0, 0, rows * qs)?.reshape((rows, qs))?;
    let k = flat
        .narrow(0, rows * qs, rows * kvs)?
        .reshape((rows, kvs))?;
    let v = flat
        .narrow(0, rows * (qs + kvs), rows * kvs)?
        .reshape((rows, kvs))?;
    Ok((q, k, v))
}

/// The checks and launch shared by [`rope_split_qkv`] (returns the flat `[q | k | v]`) and
/// [`rope_qkv_to_cache`] (returns q `[rows, heads * head_dim]`).
fn split(
    qkv: &Tensor,
    rotary: Option<Rotary<'_>>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    cache: Option<CacheTarget<'_>>,
    kernel: &str,
) -> Result<Tensor> {
    let (rows, width) = qkv
        .dims2()
        .map_err(|e| kernel_error(kernel, format!("qkv: {e}")))?;
    if width != (heads + 2 * kv_heads) * head_dim || !head_dim.is_multiple_of(2) || head_dim == 0 {
        return Err(kernel_error(
            kernel,
            format!(
                "qkv width {width} is not ({heads} + 2 * {kv_heads}) heads of an even head_dim {head_dim}"
            ),
        ));
    }
    if let Some(r) = rotary {
        let table_ok = r.cos_sin.dims().len() == 2
            && r.cos_sin.dims()[1] == head_dim
            && r.cos_sin.dtype() == qkv.dtype();
        if !table_ok || r.positions.dims() != [rows] || r.positions.dtype() != DType::U32 {
            return Err(kernel_error(
                kernel,
                format!(
                    "rotary table {:?} {:?} or positions {:?} {:?} do not fit {rows} rows of head_dim {head_dim}",
                    r.cos_sin.dims(),
                    r.cos_sin.dtype(),
                    r.positions.dims(),
                    r.positions.dtype()
                ),
            ));
        }
    }
    let out_len = match cache {
        Some(_) => rows * heads * head_dim,
        None => rows * width,
    };
    let flat = if rows == 0 {
        Tensor::zeros(out_len, qkv.dtype(), qkv.device())?
    } else {
        let qkv = qkv.contiguous()?;
        let rotary = match rotary {
            Some(r) => Some((r.cos_sin.contiguous()?, r.positions.contiguous()?)),
            None => None,
        };
        let slots = cache.map(|c| c.slot_mapping.contiguous()).transpose()?;
        let cache = match (cache, slots.as_ref()) {
            (Some(c), Some(s)) => Some((c.k_cache, c.v_cache, s)),
            _ => None,
        };
        let dev = cuda_device(&qkv, kernel)?;
        let shape = SplitShape {
            rows,
            heads,
            kv_heads,
            head_dim,
            out_len,
        };
        let r = rotary.as_ref();
        let out = match qkv.dtype() {
            DType::F32 => split_launch::<f32>(&dev, kernel, &qkv, r, cache, shape)?,
            DType::F16 => split_launch::<half::f16>(&dev, kernel, &qkv, r, cache, shape)?,
            DType::BF16 => split_launch::<half::bf16>(&dev, kernel, &qkv, r, cache, shape)?,
            other => return Err(unsupported(kernel, other)),
        };
        Tensor::from_storage(Storage::Cuda(out), out_len, BackpropOp::none(), false)
    };
    Ok(match cache {
        Some(_) => flat.reshape((rows, heads * head_dim))?,
        None => flat,
    })
}

/// Where [`rope_qkv_to_cache`] writes k and v: one layer's paged cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheTarget<'a> {
    /// `[kv_heads, num_slots, head_dim]`, the qkv's dtype or fp8 E4M3 (k and v rounded to the
    /// qkv's dtype, then to the nearest fp8 value, saturated to ±448).
    pub k_cache: &'a Tensor,
    /// Same shape and dtype as `k_cache`.
    pub v_cache: &'a Tensor,
    /// u32 `[rows]`: the cache slot of each row.
    pub slot_mapping: &'a Tensor,
}

/// [`rope_split_qkv`] that writes the (rotated) k and v rows straight into their slots of the
/// paged cache (what `reshape_and_cache` does for k and v, without its two launches and the
/// round trip through memory) and returns only q `[rows, heads * head_dim]`.
///
/// # Errors
/// As [`rope_split_qkv`], naming `rope_qkv_to_cache_<dtype>`; also a cache of another shape or
/// dtype, or a slot mapping of the wrong length or type.
pub fn rope_qkv_to_cache(
    qkv: &Tensor,
    rotary: Option<Rotary<'_>>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    cache: CacheTarget<'_>,
) -> Result<Tensor> {
    let fp8 = cache.k_cache.dtype() == DType::F8E4M3;
    let kernel = if fp8 {
        format!("{}_fp8", kernel_name("rope_qkv_to_cache", qkv.dtype()))
    } else {
        kernel_name("rope_qkv_to_cache", qkv.dtype())
    };
    let (rows, _) = qkv
        .dims2()
        .map_err(|e| kernel_error(&kernel, format!("qkv: {e}")))?;
    let cache_ok = cache.k_cache.dims().len() == 3
        && cache.k_cache.dims()[0] == kv_heads
        && cache.k_cache.dims()[2] == head_dim
        && cache.v_cache.dims() == cache.k_cache.dims()
        && (cache.k_cache.dtype() == qkv.dtype() || fp8)
        && cache.v_cache.dtype() == cache.k_cache.dtype()
        && cache.slot_mapping.dims() == [rows]
        && cache.slot_mapping.dtype() == DType::U32;
    if !cache_ok {
        return Err(kernel_error(
            &kernel,
            format!(
                "caches {:?} {:?} / {:?} or slot mapping {:?} {:?} do not fit {rows} rows of {kv_heads} kv heads of {head_dim} ({:?})",
                cache.k_cache.dims(),
                cache.k_cache.dtype(),
                cache.v_cache.dims(),
                cache.slot_mapping.dims(),
                cache.slot_mapping.dtype(),
                qkv.dtype()
            ),
        ));
    }
    split(qkv, rotary, heads, kv_heads, head_dim, Some(cache), &kernel)
}

fn kernel_name(op: &str, dtype: DType) -> String {
    format!("{op}_{}", dtype_suffix(dtype).unwrap_or("unsupported"))
}

fn unsupported(kernel: &str, dtype: DType) -> crate::EngineError {
    kernel_error(kernel, format!("dtype {dtype:?} is not supported"))
}

fn cuda_device(t: &Tensor, kernel: &str) -> Result<CudaDevice> {
    t.device()
        .as_cuda_device()
        .cloned()
        .map_err(|e| kernel_error(kernel, format!("the tensors must be on CUDA: {e}")))
}

/// The contiguous CUDA elements of a tensor's storage.
fn view<'a, T: CudaDType>(
    storage: &'a Storage,
    layout: &Layout,
    kernel: &str,
    what: &str,
) -> Result<CudaView<'a, T>> {
    match storage {
        Storage::Cuda(s) => contiguous_view::<T>(s, layout, kernel, what),
        _ => Err(kernel_error(kernel, format!("{what} is not on CUDA"))),
    }
}

/// An output buffer of `len` elements that the kernel about to launch writes completely.
fn output<T: DeviceRepr>(dev: &CudaDevice, len: usize, kernel: &str) -> Result<CudaSlice<T>> {
    // SAFETY: every caller launches a kernel that writes all `len` elements before any read
    // (the launches are ordered on the device's stream).
    unsafe { dev.alloc::<T>(len) }.map_err(|e| kernel_error(kernel, format!("allocation: {e}")))
}

/// A grid of `THREADS`-thread blocks covering `total` items (kernels loop past `MAX_BLOCKS`).
fn elementwise_config(total: usize, kernel: &str) -> Result<LaunchConfig> {
    let blocks = total.div_ceil(THREADS as usize).clamp(1, MAX_BLOCKS);
    Ok(LaunchConfig {
        grid_dim: (dim(blocks, kernel, "blocks")?, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

fn add_norm(
    op: &str,
    x: &Tensor,
    delta: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    let kernel = kernel_name(op, x.dtype());
    let (rows, hidden) = x
        .dims2()
        .map_err(|e| kernel_error(&kernel, format!("x: {e}")))?;
    let params_ok = weight.dims() == [hidden]
        && weight.dtype() == x.dtype()
        && bias.is_none_or(|b| b.dims() == [hidden] && b.dtype() == x.dtype());
    if delta.dims() != x.dims() || delta.dtype() != x.dtype() || !params_ok {
        return Err(kernel_error(
            &kernel,
            format!(
                "x {:?} {:?}, delta {:?} {:?} and weight/bias of {:?} {:?} do not match",
                x.dims(),
                x.dtype(),
                delta.dims(),
                delta.dtype(),
                weight.dims(),
                weight.dtype()
            ),
        ));
    }
    if rows == 0 {
        return Ok((x.clone(), x.clone()));
    }
    let (x, delta, weight) = (x.contiguous()?, delta.contiguous()?, weight.contiguous()?);
    let bias = bias.map(Tensor::contiguous).transpose()?;
    let dev = cuda_device(&x, &kernel)?;
    let inputs = NormInputs {
        x: &x,
        delta: &delta,
        weight: &weight,
        bias: bias.as_ref(),
        eps: eps as f32,
    };
    let out = match x.dtype() {
        DType::F32 => add_norm_launch::<f32>(&dev, &kernel, &inputs, rows, hidden)?,
        DType::F16 => add_norm_launch::<half::f16>(&dev, &kernel, &inputs, rows, hidden)?,
        DType::BF16 => add_norm_launch::<half::bf16>(&dev, &kernel, &inputs, rows, hidden)?,
        other => return Err(unsupported(&kernel, other)),
    };
    let both = Tensor::from_storage(
        Storage::Cuda(out),
        (2 * rows, hidden),
        BackpropOp::none(),
        false,
    );
    Ok((both.narrow(0, 0, rows)?, both.narrow(0, rows, rows)?))
}

/// The (contiguous, same-dtype) inputs of an add + norm launch.
struct NormInputs<'a> {
    x: &'a Tensor,
    delta: &'a Tensor,
    weight: &'a Tensor,
    bias: Option<&'a Tensor>,
    eps: f32,
}

fn add_norm_launch<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    kernel: &str,
    inp: &NormInputs<'_>,
    rows: usize,
    hidden: usize,
) -> Result<CudaStorage> {
    let (xs, xl) = inp.x.storage_and_layout();
    let (ds, dl) = inp.delta.storage_and_layout();
    let (ws, wl) = inp.weight.storage_and_layout();
    let bias = inp.bias.map(|b| b.storage_and_layout());
    let x_v = view::<T>(&xs, xl, kernel, "x")?;
    let d_v = view::<T>(&ds, dl, kernel, "delta")?;
    let w_v = view::<T>(&ws, wl, kernel, "weight")?;
    let b_v = match &bias {
        Some((bs, bl)) => Some(view::<T>(bs, bl, kernel, "bias")?),
        None => None,
    };
    let func = load(dev, &FUSED_OPS, kernel)?;
    let mut dst = output::<T>(dev, 2 * rows * hidden, kernel)?;
    let rows_i = arg_i32(rows, kernel, "rows")?;
    let hidden_i = arg_i32(hidden, kernel, "hidden")?;
    let threads = norm_threads(hidden, std::mem::size_of::<T>());
    let cfg = LaunchConfig {
        grid_dim: (dim(rows, kernel, "rows")?, 1, 1),
        block_dim: (threads as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(&func);
    b.arg(&mut dst);
    b.arg(&x_v);
    b.arg(&d_v);
    b.arg(&w_v);
    if let Some(b_v) = &b_v {
        b.arg(b_v);
    }
    b.arg(&rows_i);
    b.arg(&hidden_i);
    b.arg(&inp.eps);
    // SAFETY: the arguments match add_rms_norm_<t> (no bias) / add_layer_norm_<t> (bias) in
    // kernels/fused_ops.cu; x and delta hold rows * hidden elements, weight and bias hidden,
    // dst 2 * rows * hidden (all checked above); one block per row.
    unsafe { b.launch(cfg) }.map_err(|e| kernel_error(kernel, e))?;
    Ok(CudaStorage::wrap_cuda_slice(dst, dev.clone()))
}

/// Threads of an add + norm block over rows of `hidden` elements of `elem_bytes` each: two
/// 16-byte vectors a thread where the row splits into them (the kernel's vector path keeps up
/// to four in registers), else one element a thread up to 1,024.
fn norm_threads(hidden: usize, elem_bytes: usize) -> usize {
    let per_vector = 16 / elem_bytes;
    if hidden.is_multiple_of(per_vector) {
        (hidden / per_vector)
            .div_ceil(2)
            .next_multiple_of(32)
            .clamp(32, 1024)
    } else {
        hidden.next_multiple_of(32).min(1024)
    }
}

/// Elements each thread of a rope/split launch handles per pair of half-heads: a 16-byte
/// vector where the half head splits into them (the kernel's vector path), else one.
fn rope_elems_per_thread(head_dim: usize, elem_bytes: usize) -> usize {
    let per_vector = 16 / elem_bytes;
    if (head_dim / 2).is_multiple_of(per_vector) {
        per_vector
    } else {
        1
    }
}

fn silu_mul_launch<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    kernel: &str,
    storage: &Storage,
    layout: &Layout,
    rows: usize,
    inter: usize,
) -> Result<CudaStorage> {
    let gu = view::<T>(storage, layout, kernel, "gate_up")?;
    let func = load(dev, &FUSED_OPS, kernel)?;
    let mut dst = output::<T>(dev, rows * inter, kernel)?;
    let cfg = elementwise_config(rows * inter, kernel)?;
    let rows_i = rows as i64;
    let inter_i = arg_i32(inter, kernel, "intermediate size")?;
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(&func);
    b.arg(&mut dst);
    b.arg(&gu);
    b.arg(&rows_i);
    b.arg(&inter_i);
    // SAFETY: the arguments match silu_mul_<t> in kernels/fused_ops.cu; gate_up holds
    // rows * 2 * inter elements and dst rows * inter.
    unsafe { b.launch(cfg) }.map_err(|e| kernel_error(kernel, e))?;
    Ok(CudaStorage::wrap_cuda_slice(dst, dev.clone()))
}

/// The sizes of a [`rope_split_qkv`] / [`rope_qkv_to_cache`] launch.
#[derive(Clone, Copy)]
struct SplitShape {
    rows: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Elements of the output: all of q, k, v, or only q when k and v go to the cache.
    out_len: usize,
}

/// The caches and slot mapping of a [`rope_qkv_to_cache`] launch.
type CacheArgs<'a> = (&'a Tensor, &'a Tensor, &'a Tensor);

fn split_launch<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    kernel: &str,
    qkv: &Tensor,
    rotary: Option<&(Tensor, Tensor)>,
    cache: Option<CacheArgs<'_>>,
    s: SplitShape,
) -> Result<CudaStorage> {
    let (qs, ql) = qkv.storage_and_layout();
    let rot = rotary.map(|(t, p)| (t.storage_and_layout(), p.storage_and_layout()));
    let caches = cache.map(|(k, v, slots)| {
        (
            k.storage_and_layout(),
            v.storage_and_layout(),
            slots.storage_and_layout(),
        )
    });
    let qkv_v = view::<T>(&qs, ql, kernel, "qkv")?;
    let total = s.rows * (s.heads + 2 * s.kv_heads) * s.head_dim;
    let func = load(dev, &FUSED_OPS, kernel)?;
    let mut dst = output::<T>(dev, s.out_len, kernel)?;
    let per_thread = rope_elems_per_thread(s.head_dim, std::mem::size_of::<T>());
    let cfg = elementwise_config(total / 2 / per_thread, kernel)?;
    let table_rows = rotary.map_or(0, |(t, _)| t.dim(0).unwrap_or(0)) as i64;
    let rows_i = s.rows as i64;
    let heads_i = arg_i32(s.heads, kernel, "heads")?;
    let kv_heads_i = arg_i32(s.kv_heads, kernel, "kv_heads")?;
    let head_dim_i = arg_i32(s.head_dim, kernel, "head_dim")?;
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(&func);
    b.arg(&mut dst);
    b.arg(&qkv_v);
    // Without rotary the kernel reads neither table nor positions: qkv stands in for both.
    let (table_v, pos_v);
    let rotate: i32 = match &rot {
        Some(((ts, tl), (ps, pl))) => {
            table_v = view::<T>(ts, tl, kernel, "rotary table")?;
            pos_v = view::<u32>(ps, pl, kernel, "positions")?;
            b.arg(&table_v);
            b.arg(&pos_v);
            1
        }
        None => {
            b.arg(&qkv_v);
            b.arg(&qkv_v);
            0
        }
    };
    b.arg(&table_rows);
    b.arg(&rows_i);
    b.arg(&heads_i);
    b.arg(&kv_heads_i);
    b.arg(&head_dim_i);
    b.arg(&rotate);
    let (k_v, v_v, slots_v, num_slots);
    let (k8_v, v8_v);
    if let Some(((ks, kl), (vs, vl), (ss, sl))) = &caches {
        // The cache holds T (rope_qkv_to_cache_<t>) or fp8 E4M3 (rope_qkv_to_cache_<t>_fp8).
        if ks.dtype() == DType::F8E4M3 {
            k8_v = view::<float8::F8E4M3>(ks, kl, kernel, "k cache")?;
            v8_v = view::<float8::F8E4M3>(vs, vl, kernel, "v cache")?;
            b.arg(&k8_v);
            b.arg(&v8_v);
        } else {
            k_v = view::<T>(ks, kl, kernel, "k cache")?;
            v_v = view::<T>(vs, vl, kernel, "v cache")?;
            b.arg(&k_v);
            b.arg(&v_v);
        }
        slots_v = view::<u32>(ss, sl, kernel, "slot mapping")?;
        num_slots = kl.dims()[1] as i64;
        b.arg(&slots_v);
        b.arg(&num_slots);
    }
    // SAFETY: the arguments match rope_split_qkv_<t> (no cache) or rope_qkv_to_cache_<t> in
    // kernels/fused_ops.cu; qkv holds rows * (heads + 2 * kv_heads) * head_dim elements and
    // dst out_len (all of them, or only q's with a cache); with `rotate` the table has
    // head_dim columns and positions one u32 per row; the kernel skips positions at or past
    // table_rows. With a cache, the kernel writes k and v rows into the caches'
    // [kv_heads, num_slots, head_dim] elements at the slots the mapping names (one u32 per
    // row, each below num_slots: the engine's slot mapping comes from its block tables). The
    // caches are written through views taken from shared storage guards: nothing on the host
    // reads that device memory, and every use of the cache is ordered on this one stream.
    unsafe { b.launch(cfg) }.map_err(|e| kernel_error(kernel, e))?;
    Ok(CudaStorage::wrap_cuda_slice(dst, dev.clone()))
}
