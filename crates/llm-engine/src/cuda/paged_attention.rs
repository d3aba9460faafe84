//! Launching the paged decode and prefill kernels for one layer.

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::CudaDType;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, DType, Device, Storage, Tensor};

use super::{
    arg_i32, contiguous_view, dim, kernel_error, kv_suffix, load, paged_attention_module,
    KernelModule,
};
use crate::attention::metadata::{
    query_heads_per_block, AttentionMetadata, PREFILL_ROWS_PER_BLOCK,
};
use crate::attention::PagedAttention;
use crate::engine::kv_cache_dtype::FP8_CUDA_HEAD_DIMS;
use crate::error::Result;

/// Warps per thread block of both kernels (`DECODE_WARPS`, `PREFILL_WARPS`).
const WARPS: usize = 4;

/// Warps per block of the wide decode variant (`DECODE_WARPS_WIDE`, kernels `*_w16`).
const WIDE_DECODE_WARPS: usize = 16;

/// Below this many decode blocks (query-head groups × sequences) a step cannot fill an
/// H100's 132 multiprocessors with 4-warp blocks, so the wide variant is used.
const WIDE_DECODE_MAX_BLOCKS: usize = 256;

/// Warps per block for a decode launch of `blocks` blocks, and the kernel-name suffix.
///
/// At batch 1 a 7B model's decode has 32 blocks: with 4 warps each, every warp walks a
/// quarter of the context one dependent load after another and the kernel is bound by
/// memory latency (28 µs a layer at 190 tokens, measured on an H200). 16 warps put 4x as many
/// keys in flight. `wide_ok` says whether the kernel family has a wide variant whose registers
/// fit a 512-thread block. `LLM_ENGINE_DECODE_WARPS=4` or `16` (read at the first launch)
/// forces one (the kernel tests run both).
fn decode_warps(wide_ok: bool, blocks: usize) -> usize {
    // Read once per process: this runs for every layer of every step.
    static FORCED: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    let forced = *FORCED.get_or_init(|| {
        super::env_choice("LLM_ENGINE_DECODE_WARPS", &[WARPS, WIDE_DECODE_WARPS])
            .map(|w| w == WIDE_DECODE_WARPS)
    });
    if wide_ok && forced.unwrap_or(blocks < WIDE_DECODE_MAX_BLOCKS) {
        WIDE_DECODE_WARPS
    } else {
        WARPS
    }
}

/// Whether the 16-byte-load decode kernels (`paged_decode_vec_*`) may be used:
/// `LLM_ENGINE_DECODE_VEC=0` (read once) keeps every launch on `paged_decode_*`, for A/B runs
/// and so that the kernel tests cover both.
fn vec_decode_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| super::env_choice("LLM_ENGINE_DECODE_VEC", &[0, 1]) != Some(0))
}

/// Whether decode over an fp8 cache uses the tensor-core kernels (`paged_decode_tc_*`):
/// only with `LLM_ENGINE_DECODE_TC=1` (read once). Off by default: on an H200 at batch 256
/// they took 115.8 µs a layer against `paged_decode_vec_*`'s 108.9 over the same fp8 cache
/// (docs/PERFORMANCE.md, session 10); the kernel tests run both.
fn tc_decode_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| super::env_choice("LLM_ENGINE_DECODE_TC", &[0, 1]) == Some(1))
}

/// Query heads per kv head the tensor-core decode kernels take at most (the mma's n = 8).
const DECODE_TC_MAX_QPB: usize = 8;

/// Keys per round of the tensor-core prefill kernel (`PREFILL_TC_KEYS`).
const PREFILL_TC_KEYS: usize = 32;

/// Head dims the tensor-core prefill kernels are built for (`PREFILL_TC_KERNELS`).
const PREFILL_TC_HEAD_DIMS: [usize; 6] = [16, 64, 80, 96, 128, 256];

/// Whether a prefill launch runs on the tensor cores (`paged_prefill_tc_*`: f16/bf16, a
/// head_dim it is built for, a block size that is a multiple of 16 so that 16 consecutive
/// keys are 16 consecutive rows of one block, `aligned_32` caches); else `paged_prefill_*`.
/// `LLM_ENGINE_PREFILL_TC=0` (read once) keeps every launch on the scalar kernel.
fn prefill_on_tensor_cores(
    dtype_bytes: usize,
    head_dim: usize,
    block_size: usize,
    aligned_32: bool,
) -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let enabled =
        *ENABLED.get_or_init(|| super::env_choice("LLM_ENGINE_PREFILL_TC", &[0, 1]) != Some(0));
    enabled
        && dtype_bytes == 2
        && PREFILL_TC_HEAD_DIMS.contains(&head_dim)
        && block_size.is_multiple_of(16)
        && aligned_32
}

/// Head dims the register-resident prefill kernels are built for (`PREFILL_MMA_KERNELS`).
const PREFILL_MMA_HEAD_DIMS: [usize; 2] = [64, 128];

/// Whether a tensor-core prefill launch runs `paged_prefill_mma_*` (fragments in registers,
/// head_dims 64 and 128, 16-byte-aligned q) rather than `paged_prefill_tc_*` (WMMA through
/// shared memory). `LLM_ENGINE_PREFILL_MMA=0` (read once) keeps `paged_prefill_tc_*`.
fn prefill_in_registers(head_dim: usize, q_aligned_16: bool) -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let enabled =
        *ENABLED.get_or_init(|| super::env_choice("LLM_ENGINE_PREFILL_MMA", &[0, 1]) != Some(0));
    enabled && PREFILL_MMA_HEAD_DIMS.contains(&head_dim) && q_aligned_16
}

/// Shared memory a kernel may take without opting in (48 KiB).
const DEFAULT_SHARED_MEMORY: usize = 48 * 1024;

/// The decode kernel of one launch: its name, warps per block and dynamic shared memory.
#[derive(Debug, Clone, PartialEq)]
struct DecodeKernel {
    name: String,
    warps: usize,
    shared_bytes: usize,
    /// `paged_decode_vec_*` or `paged_decode_tc_*` (block_shift argument) rather than
    /// `paged_decode_*`.
    vec: bool,
}

/// What picks the decode kernel of a launch.
#[derive(Debug, Clone, Copy)]
struct DecodeShape {
    dtype_bytes: usize,
    head_dim: usize,
    qpb: usize,
    /// Decode blocks of the launch: query-head groups × sequences.
    blocks: usize,
    block_size: usize,
    max_blocks: usize,
    /// q, k_cache and v_cache start on a 16-byte boundary.
    aligned_16: bool,
    /// The cache holds fp8 E4M3 (the `*_fp8` kernels).
    fp8: bool,
}

/// The decode kernel for `shape`: over an fp8 cache at batch sizes that fill the GPU and with
/// `LLM_ENGINE_DECODE_TC=1`, `paged_decode_tc_*` (head_dims 64 / 128, up to 8 query heads per
/// kv head, block sizes that are powers of two from 16); else `paged_decode_vec_*` where its constraints hold (a head row
/// of 4 to 32 vectors of 16 bytes, a power-of-two block size, aligned tensors, the block
/// table fitting shared memory), else `paged_decode_*`.
fn decode_kernel(dtype_suffix: &str, s: DecodeShape) -> DecodeKernel {
    let table_words = s.max_blocks.div_ceil(4) * 4;
    // m, l and the output row of every (warp, query head), after the block table.
    let shared_bytes =
        |warps: usize| (table_words + 2 * warps * s.qpb + warps * s.qpb * s.head_dim) * 4;
    // Over an fp8 cache with enough blocks to fill the GPU with 4-warp blocks:
    // paged_decode_tc_* (Q^T in shared memory after the vector kernel's layout).
    let tc_shared_bytes = shared_bytes(WARPS) + 8 * s.head_dim * s.dtype_bytes;
    let tc_shape = s.fp8
        && FP8_CUDA_HEAD_DIMS.contains(&s.head_dim)
        && s.qpb <= DECODE_TC_MAX_QPB
        && s.block_size.is_power_of_two()
        && s.block_size.is_multiple_of(16)
        && s.aligned_16
        && tc_shared_bytes <= DEFAULT_SHARED_MEMORY;
    if tc_shape && tc_decode_enabled() && decode_warps(true, s.blocks) == WARPS {
        return DecodeKernel {
            name: format!("paged_decode_tc_{dtype_suffix}_d{}_q{}", s.head_dim, s.qpb),
            warps: WARPS,
            shared_bytes: tc_shared_bytes,
            vec: true,
        };
    }
    let row_bytes = s.head_dim * s.dtype_bytes;
    let lanes_per_key = row_bytes / 16;
    let vec_shape = row_bytes.is_multiple_of(16)
        && [4, 8, 16, 32].contains(&lanes_per_key)
        && s.block_size.is_power_of_two()
        && s.aligned_16;
    if vec_shape && vec_decode_enabled() {
        let elems_per_vector = 16 / s.dtype_bytes;
        let warps = decode_warps(s.qpb * elems_per_vector <= 16, s.blocks);
        let shared_bytes = shared_bytes(warps);
        if shared_bytes <= DEFAULT_SHARED_MEMORY {
            return DecodeKernel {
                name: format!(
                    "paged_decode_vec_{dtype_suffix}_d{}_q{}_w{warps}",
                    s.head_dim, s.qpb
                ),
                warps,
                shared_bytes,
                vec: true,
            };
        }
    }
    let epl = elems_per_lane(s.head_dim);
    let warps = decode_warps(epl * s.qpb <= 16, s.blocks);
    let wide = if warps == WIDE_DECODE_WARPS {
        "_w16"
    } else {
        ""
    };
    DecodeKernel {
        name: format!("paged_decode_{dtype_suffix}_e{epl}_q{}{wide}", s.qpb),
        warps,
        shared_bytes: (2 * warps * s.qpb + warps * s.qpb * 32 * epl) * 4,
        vec: false,
    }
}

/// Whether the kernels handle `head_dim` (up to 256 elements per head).
pub fn supports_head_dim(head_dim: usize) -> bool {
    (1..=256).contains(&head_dim)
}

/// Elements of head_dim per lane: the kernels' `EPL` template parameter.
fn elems_per_lane(head_dim: usize) -> usize {
    [1, 2, 4, 8]
        .into_iter()
        .find(|e| 32 * e >= head_dim)
        .unwrap_or(8)
}

/// Attention of every new token of a step over the paged cache of one layer, on CUDA.
///
/// `q` is `[num_tokens, num_heads * head_dim]`; `k_cache`/`v_cache` the layer's
/// `[num_kv_heads, num_slots, head_dim]` tensors of q's dtype, or fp8 E4M3 for an f16 / bf16
/// `q` with a head_dim in [`FP8_CUDA_HEAD_DIMS`], already holding this step's new rows (see
/// [`super::reshape_and_cache`]); `meta` describes the step, `block_size` the cache.
/// Decode slices go to the decode kernel, longer slices to the prefill kernel; both write
/// their rows of the returned `[num_tokens, num_heads * head_dim]` tensor (q's dtype) in
/// token order.
///
/// # Errors
/// [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) for tensors that are not on
/// CUDA, of dtypes or shapes other than `attn` and the cache imply, a head_dim over 256, or a
/// failed launch.
pub fn paged_attention(
    attn: &PagedAttention,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    meta: &AttentionMetadata,
    block_size: usize,
) -> Result<Tensor> {
    let dtype = q.dtype();
    let cache_dtype = k_cache.dtype();
    let suffix = kv_suffix(dtype, cache_dtype);
    let what = format!("paged_attention_{}", suffix.unwrap_or("unsupported"));
    let (h, kvh, d) = (attn.num_heads(), attn.num_kv_heads(), attn.head_dim());
    let n = meta.num_tokens;
    let cache_dims = k_cache.dims();
    if q.dims() != [n, h * d]
        || v_cache.dtype() != cache_dtype
        || cache_dims.len() != 3
        || cache_dims[0] != kvh
        || cache_dims[2] != d
        || v_cache.dims() != cache_dims
    {
        return Err(kernel_error(
            &what,
            format!(
                "q {:?} {:?}, caches {:?} {:?} / {:?} {:?} do not fit {n} tokens of {h} heads / {kvh} kv heads of {d}",
                q.dims(),
                q.dtype(),
                cache_dims,
                cache_dtype,
                v_cache.dims(),
                v_cache.dtype()
            ),
        ));
    }
    if !supports_head_dim(d) || kvh == 0 || h % kvh != 0 || block_size == 0 {
        return Err(kernel_error(
            &what,
            format!("unsupported shape: {h} heads, {kvh} kv heads, head_dim {d}, block size {block_size}"),
        ));
    }
    let fp8 = cache_dtype == DType::F8E4M3;
    if fp8 && !FP8_CUDA_HEAD_DIMS.contains(&d) {
        return Err(kernel_error(
            &what,
            format!("an fp8 KV cache needs head_dim 64 or 128 on CUDA, this model has {d}"),
        ));
    }
    let Device::Cuda(dev) = q.device() else {
        return Err(kernel_error(&what, "q is not on a CUDA device"));
    };
    let (Some(suffix), Some(module)) = (suffix, paged_attention_module(dtype, cache_dtype)) else {
        return Err(kernel_error(
            &what,
            format!("q {dtype:?} over a {cache_dtype:?} cache is not supported (the cache holds q's dtype, or fp8 for f16/bf16)"),
        ));
    };
    let q = q.contiguous()?;
    let args = Args {
        attn,
        q: &q,
        k_cache,
        v_cache,
        meta,
        block_size,
        module: &module,
        dtype_suffix: suffix,
    };
    let storage = match (dtype, fp8) {
        (DType::F32, _) => run::<f32, f32>(dev, &args)?,
        (DType::F16, false) => run::<half::f16, half::f16>(dev, &args)?,
        (DType::F16, true) => run::<half::f16, float8::F8E4M3>(dev, &args)?,
        (_, false) => run::<half::bf16, half::bf16>(dev, &args)?,
        (_, true) => run::<half::bf16, float8::F8E4M3>(dev, &args)?,
    };
    Ok(Tensor::from_storage(
        Storage::Cuda(storage),
        (n, h * d),
        BackpropOp::none(),
        false,
    ))
}

/// Everything one layer's launches need.
struct Args<'a> {
    attn: &'a PagedAttention,
    q: &'a Tensor,
    k_cache: &'a Tensor,
    v_cache: &'a Tensor,
    meta: &'a AttentionMetadata,
    block_size: usize,
    module: &'a KernelModule,
    /// The kernels' `<dtype>` or `<dtype>_fp8` (see `kv_suffix`).
    dtype_suffix: &'static str,
}

/// The CUDA storage behind a tensor, or an error naming `kernel`.
fn cuda_storage<'a>(guard: &'a Storage, kernel: &str, what: &str) -> Result<&'a CudaStorage> {
    match guard {
        Storage::Cuda(s) => Ok(s),
        _ => Err(kernel_error(
            kernel,
            format!("{what} is not on a CUDA device"),
        )),
    }
}

/// The u32 elements a metadata tensor covers.
fn u32_view<'a>(
    guard: &'a Storage,
    layout: &candle_core::Layout,
    kernel: &str,
    what: &str,
) -> Result<CudaView<'a, u32>> {
    contiguous_view::<u32>(cuda_storage(guard, kernel, what)?, layout, kernel, what)
}

/// The launches of one layer: `T` q's and the output's element, `C` the cache's (`T`, or fp8).
fn run<T: CudaDType + DeviceRepr + ValidAsZeroBits, C: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    a: &Args<'_>,
) -> Result<CudaStorage> {
    let (h, kvh, d) = (a.attn.num_heads(), a.attn.num_kv_heads(), a.attn.head_dim());
    let meta = a.meta;
    let epl = elems_per_lane(d);
    let qpb = query_heads_per_block(h, kvh);
    let dtype_bytes = std::mem::size_of::<T>();
    let cache_bytes = std::mem::size_of::<C>();
    let fp8 = cache_bytes != dtype_bytes;
    let aligned_16 = (a.q.layout().start_offset() * dtype_bytes).is_multiple_of(16)
        && [a.k_cache.layout(), a.v_cache.layout()]
            .iter()
            .all(|l| (l.start_offset() * cache_bytes).is_multiple_of(16));
    let decode = decode_kernel(
        a.dtype_suffix,
        DecodeShape {
            dtype_bytes,
            head_dim: d,
            qpb,
            blocks: (h / qpb.max(1)) * meta.num_decodes,
            block_size: a.block_size,
            max_blocks: meta.max_blocks,
            aligned_16,
            fp8,
        },
    );
    let decode_kernel = decode.name.as_str();
    let prefill_kernel = format!("paged_prefill_{}_e{epl}_q{qpb}", a.dtype_suffix);
    if PREFILL_ROWS_PER_BLOCK / qpb != meta.tokens_per_tile {
        return Err(kernel_error(
            &prefill_kernel,
            format!(
                "the metadata was built for {} tokens per tile, this model needs {}",
                meta.tokens_per_tile,
                PREFILL_ROWS_PER_BLOCK / qpb
            ),
        ));
    }
    let mut out: CudaSlice<T> = dev
        .alloc_zeros::<T>(meta.num_tokens * h * d)
        .map_err(|e| kernel_error(decode_kernel, format!("output allocation: {e}")))?;

    let (q_g, q_l) = a.q.storage_and_layout();
    let (k_g, k_l) = a.k_cache.storage_and_layout();
    let (v_g, v_l) = a.v_cache.storage_and_layout();
    let q_v = contiguous_view::<T>(
        cuda_storage(&q_g, decode_kernel, "q")?,
        q_l,
        decode_kernel,
        "q",
    )?;
    let k_v = contiguous_view::<C>(
        cuda_storage(&k_g, decode_kernel, "k_cache")?,
        k_l,
        decode_kernel,
        "k_cache",
    )?;
    let v_v = contiguous_view::<C>(
        cuda_storage(&v_g, decode_kernel, "v_cache")?,
        v_l,
        decode_kernel,
        "v_cache",
    )?;
    // The decode kernel loads cache rows as vectors of `epl` elements: the views must start
    // on such a boundary (they do: caches are whole allocations).
    if k_l.start_offset() % epl != 0 || v_l.start_offset() % epl != 0 {
        return Err(kernel_error(
            decode_kernel,
            "the KV cache views are not vector-aligned",
        ));
    }
    let (bt_g, bt_l) = meta.block_tables.storage_and_layout();
    let (cl_g, cl_l) = meta.context_lens.storage_and_layout();
    let (qs_g, qs_l) = meta.query_starts.storage_and_layout();
    let (ds_g, ds_l) = meta.decode_slices.storage_and_layout();
    let (pt_g, pt_l) = meta.prefill_tiles.storage_and_layout();
    let k = decode_kernel;
    let block_tables = u32_view(&bt_g, bt_l, k, "block_tables")?;
    let context_lens = u32_view(&cl_g, cl_l, k, "context_lens")?;
    let query_starts = u32_view(&qs_g, qs_l, k, "query_starts")?;
    let decode_slices = u32_view(&ds_g, ds_l, k, "decode_slices")?;
    let prefill_tiles = u32_view(&pt_g, pt_l, k, "prefill_tiles")?;

    let num_heads = arg_i32(h, decode_kernel, "num_heads")?;
    let num_kv_heads = arg_i32(kvh, decode_kernel, "num_kv_heads")?;
    let head_dim = arg_i32(d, decode_kernel, "head_dim")?;
    let block_size = arg_i32(a.block_size, decode_kernel, "block_size")?;
    let max_blocks = arg_i32(meta.max_blocks, decode_kernel, "max_blocks")?;
    let num_slots = a.k_cache.dims()[1] as i64;
    let scale = a.attn.scale() as f32;
    let window = arg_i32(
        a.attn.sliding_window().unwrap_or(0),
        decode_kernel,
        "sliding_window",
    )?;
    let stream = dev.cuda_stream();

    if meta.num_decodes > 0 {
        if meta.num_decodes > 65_535 {
            return Err(kernel_error(
                decode_kernel,
                format!(
                    "{} decode sequences exceed the grid's 65,535",
                    meta.num_decodes
                ),
            ));
        }
        let func = load(dev, a.module, decode_kernel)?;
        let cfg = LaunchConfig {
            grid_dim: (
                dim(h / qpb, decode_kernel, "head groups")?,
                dim(meta.num_decodes, decode_kernel, "decode sequences")?,
                1,
            ),
            block_dim: ((decode.warps * 32) as u32, 1, 1),
            shared_mem_bytes: decode.shared_bytes as u32,
        };
        // `paged_decode_vec_*` takes log2(block_size) where `paged_decode_*` takes head_dim
        // and block_size.
        let block_shift = a.block_size.trailing_zeros() as i32;
        let mut b = stream.launch_builder(&func);
        b.arg(&mut out);
        b.arg(&q_v);
        b.arg(&k_v);
        b.arg(&v_v);
        b.arg(&block_tables);
        b.arg(&context_lens);
        b.arg(&query_starts);
        b.arg(&decode_slices);
        b.arg(&num_heads);
        b.arg(&num_kv_heads);
        if decode.vec {
            b.arg(&block_shift);
        } else {
            b.arg(&head_dim);
            b.arg(&block_size);
        }
        b.arg(&max_blocks);
        b.arg(&num_slots);
        b.arg(&scale);
        b.arg(&window);
        // SAFETY: the arguments match paged_decode_* in kernels/paged_attention.cuh (or
        // paged_decode_vec_* in kernels/paged_decode_vec.cuh, or paged_decode_tc_* in
        // kernels/paged_decode_tc.cuh with the same arguments, chosen only for the head_dims,
        // power-of-two block sizes and 16-byte-aligned tensors it reads with vector loads, with
        // shared memory for `max_blocks` table entries); the
        // metadata's slices, rows and block ids were checked against the batch and the
        // storage when it was built, so every read and write stays inside its tensor.
        unsafe { b.launch(cfg) }.map_err(|e| kernel_error(decode_kernel, e))?;
    }
    if meta.num_prefill_tiles > 0 {
        // No WMMA kernel reads an fp8 cache: the register kernel, else the scalar one.
        let tc = !fp8
            && prefill_on_tensor_cores(
                dtype_bytes,
                d,
                a.block_size,
                // WMMA loads need 32-byte-aligned cache rows.
                [a.k_cache.layout(), a.v_cache.layout()]
                    .iter()
                    .all(|l| (l.start_offset() * dtype_bytes).is_multiple_of(32)),
            );
        let q_aligned_16 = (a.q.layout().start_offset() * dtype_bytes).is_multiple_of(16);
        let in_registers = prefill_in_registers(d, q_aligned_16)
            && if fp8 {
                a.block_size.is_multiple_of(16)
            } else {
                tc
            };
        let prefill_kernel = if in_registers {
            format!("paged_prefill_mma_{}_d{d}_q{qpb}", a.dtype_suffix)
        } else if tc {
            format!("paged_prefill_tc_{}_d{d}_q{qpb}", a.dtype_suffix)
        } else {
            prefill_kernel
        };
        let func = load(dev, a.module, &prefill_kernel)?;
        let (threads, smem) = if in_registers {
            // One warp a tile, everything in registers (paged_prefill_mma.cuh).
            (32, 0)
        } else if tc {
            // Q [16][D] T, S [16][KEYS + 4] f32, P [16][KEYS + 8] T, O [16][D] f32
            // (paged_prefill_tc.cuh).
            let rows = PREFILL_ROWS_PER_BLOCK;
            let keys = PREFILL_TC_KEYS;
            (
                32,
                rows * d * dtype_bytes
                    + rows * (keys + 4) * 4
                    + rows * (keys + 8) * dtype_bytes
                    + rows * d * 4,
            )
        } else {
            let bk = if epl >= 8 { 8 } else { 32 };
            (
                WARPS * 32,
                (bk * (d + 1) + bk * d + PREFILL_ROWS_PER_BLOCK * d) * 4,
            )
        };
        let cfg = LaunchConfig {
            grid_dim: (
                dim(meta.num_prefill_tiles, &prefill_kernel, "prefill tiles")?,
                dim(h / qpb, &prefill_kernel, "head groups")?,
                1,
            ),
            block_dim: (threads as u32, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        let mut b = stream.launch_builder(&func);
        b.arg(&mut out);
        b.arg(&q_v);
        b.arg(&k_v);
        b.arg(&v_v);
        b.arg(&block_tables);
        b.arg(&prefill_tiles);
        b.arg(&num_heads);
        b.arg(&num_kv_heads);
        if !tc && !in_registers {
            b.arg(&head_dim);
        }
        b.arg(&block_size);
        b.arg(&max_blocks);
        b.arg(&num_slots);
        b.arg(&scale);
        b.arg(&window);
        // SAFETY: as for the decode launch; the arguments match paged_prefill_* (or
        // paged_prefill_tc_* / paged_prefill_mma_*, chosen only for the dtypes, head_dims,
        // block sizes that are multiples of 16 and 32-byte-aligned caches (and, for the mma
        // kernel, 16-byte-aligned q) their fragment loads need, sized for their shared memory
        // above).
        unsafe { b.launch(cfg) }.map_err(|e| kernel_error(&prefill_kernel, e))?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}
