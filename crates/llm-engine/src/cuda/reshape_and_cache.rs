//! Writing a step's new K or V rows into their cache slots in one launch.

use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::CudaDType;
use candle_core::{CpuStorage, CudaStorage, DType, InplaceOp3, Layout, Tensor};

use super::{arg_i32, contiguous_view, dim, kernel_error, kv_suffix, load, RESHAPE_AND_CACHE};
use crate::error::Result;

/// Writes `rows` (`[n, num_kv_heads, head_dim]`, the cache's dtype, or f32/f16/bf16 into an fp8
/// E4M3 cache: rounded to nearest even, saturated to ±448) into `cache`
/// (`[num_kv_heads, num_slots, head_dim]`) at the slots `slot_mapping` (u32 `[n]`) names: row
/// `t`, head `h` goes to `cache[h, slot_mapping[t], :]`. One kernel launch, on the cache's
/// stream.
///
/// # Errors
/// [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) for tensors not on CUDA, of
/// mismatched shapes or dtypes, or a failed launch.
pub fn reshape_and_cache(cache: &Tensor, rows: &Tensor, slot_mapping: &Tensor) -> Result<()> {
    let kernel = format!(
        "reshape_and_cache_{}",
        kv_suffix(rows.dtype(), cache.dtype()).unwrap_or("unsupported")
    );
    let (kvh, _, d) = cache
        .dims3()
        .map_err(|e| kernel_error(&kernel, format!("cache: {e}")))?;
    let n = slot_mapping.elem_count();
    if rows.dims() != [n, kvh, d] || kv_suffix(rows.dtype(), cache.dtype()).is_none() {
        return Err(kernel_error(
            &kernel,
            format!(
                "rows {:?} {:?} do not fit {n} slots of a {:?} {:?} cache",
                rows.dims(),
                rows.dtype(),
                cache.dims(),
                cache.dtype()
            ),
        ));
    }
    if slot_mapping.dtype() != DType::U32 {
        return Err(kernel_error(&kernel, "slot_mapping must be u32"));
    }
    if n == 0 {
        return Ok(());
    }
    let rows = rows.contiguous()?;
    cache
        .inplace_op3(&rows, slot_mapping, &ReshapeAndCache)
        .map_err(|e| match e {
            candle_core::Error::Wrapped(inner) => kernel_error(&kernel, inner),
            other => kernel_error(&kernel, other),
        })
}

struct ReshapeAndCache;

impl InplaceOp3 for ReshapeAndCache {
    fn name(&self) -> &'static str {
        "reshape_and_cache"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        candle_core::bail!("reshape_and_cache runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        cache: &mut CudaStorage,
        cache_l: &Layout,
        rows: &CudaStorage,
        rows_l: &Layout,
        slots: &CudaStorage,
        slots_l: &Layout,
    ) -> candle_core::Result<()> {
        use candle_core::backend::BackendStorage;
        let to_candle = |e: crate::EngineError| candle_core::Error::Wrapped(Box::new(e));
        use float8::F8E4M3;
        use half::{bf16, f16};
        let (c, r) = (cache, rows);
        match (c.dtype(), r.dtype()) {
            (DType::F32, DType::F32) => launch::<f32, f32>(c, cache_l, r, rows_l, slots, slots_l),
            (DType::F16, DType::F16) => launch::<f16, f16>(c, cache_l, r, rows_l, slots, slots_l),
            (DType::BF16, DType::BF16) => {
                launch::<bf16, bf16>(c, cache_l, r, rows_l, slots, slots_l)
            }
            (DType::F8E4M3, DType::F32) => {
                launch::<f32, F8E4M3>(c, cache_l, r, rows_l, slots, slots_l)
            }
            (DType::F8E4M3, DType::F16) => {
                launch::<f16, F8E4M3>(c, cache_l, r, rows_l, slots, slots_l)
            }
            (DType::F8E4M3, DType::BF16) => {
                launch::<bf16, F8E4M3>(c, cache_l, r, rows_l, slots, slots_l)
            }
            (cache, rows) => Err(kernel_error(
                "reshape_and_cache",
                format!("{rows:?} rows into a {cache:?} cache are not supported"),
            )),
        }
        .map_err(to_candle)
    }
}

/// One launch: `T` the rows' element, `C` the cache's (`T`, or fp8 E4M3).
fn launch<T: CudaDType + DeviceRepr, C: CudaDType + DeviceRepr>(
    cache: &mut CudaStorage,
    cache_l: &Layout,
    rows: &CudaStorage,
    rows_l: &Layout,
    slots: &CudaStorage,
    slots_l: &Layout,
) -> Result<()> {
    use candle_core::backend::BackendStorage;
    let kernel = format!(
        "reshape_and_cache_{}",
        kv_suffix(rows.dtype(), cache.dtype()).unwrap_or("unsupported")
    );
    let (kvh, num_slots, d) = cache_l
        .shape()
        .dims3()
        .map_err(|e| kernel_error(&kernel, e))?;
    let n = slots_l.shape().elem_count();
    let (c0, c1) = cache_l
        .contiguous_offsets()
        .ok_or_else(|| kernel_error(&kernel, "the cache must be contiguous"))?;
    let rows_v = contiguous_view::<T>(rows, rows_l, &kernel, "rows")?;
    let slots_v = contiguous_view::<u32>(slots, slots_l, &kernel, "slot_mapping")?;
    let dev = cache.device().clone();
    let func = load(&dev, &RESHAPE_AND_CACHE, &kernel)?;
    let num_kv_heads = arg_i32(kvh, &kernel, "num_kv_heads")?;
    let head_dim = arg_i32(d, &kernel, "head_dim")?;
    let num_slots = num_slots as i64;
    let threads = (kvh * d).next_multiple_of(32).min(256);
    let cfg = LaunchConfig {
        grid_dim: (dim(n, &kernel, "tokens")?, 1, 1),
        block_dim: (threads as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let cache_s = cache
        .as_cuda_slice_mut::<C>()
        .map_err(|e| kernel_error(&kernel, e))?;
    let mut cache_v = cache_s.slice_mut(c0..c1);
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(&func);
    b.arg(&mut cache_v);
    b.arg(&rows_v);
    b.arg(&slots_v);
    b.arg(&num_kv_heads);
    b.arg(&head_dim);
    b.arg(&num_slots);
    // SAFETY: the argument list matches the kernel's signature (kernels/reshape_and_cache.cu);
    // every slot < num_slots (the metadata checks block ids against the storage) and every
    // row read is inside `rows` ([n, kvh, d], checked above).
    unsafe { b.launch(cfg) }.map_err(|e| kernel_error(&kernel, e))?;
    Ok(())
}

/// `t` converted between f32 / f16 / bf16 and fp8 E4M3 on CUDA, one launch (`fp8_from_<t>`:
/// round to nearest even, saturate to ±448, NaN stays NaN; `fp8_to_<t>`: exact). What
/// `Tensor::to_dtype` would do, which candle 0.11 cannot on CUDA (its F8E4M3 cast kernels are
/// looked up under names the kernel library does not have).
///
/// # Errors
/// [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) for a tensor not on CUDA, a pair
/// of dtypes other than those, or a failed launch.
pub fn convert_fp8(t: &Tensor, dtype: DType) -> Result<Tensor> {
    let (from, to) = (t.dtype(), dtype);
    let (kernel, model_dtype) = match (from, to) {
        (DType::F8E4M3, d) => ("fp8_to", d),
        (d, DType::F8E4M3) => ("fp8_from", d),
        _ => ("fp8_convert", from),
    };
    let kernel = format!(
        "{kernel}_{}",
        super::dtype_suffix(model_dtype).unwrap_or("unsupported")
    );
    if super::dtype_suffix(model_dtype).is_none()
        || (from == DType::F8E4M3) == (to == DType::F8E4M3)
    {
        return Err(kernel_error(
            &kernel,
            format!("{from:?} -> {to:?} is not a conversion to or from fp8 E4M3 of f32/f16/bf16"),
        ));
    }
    let candle_core::Device::Cuda(dev) = t.device() else {
        return Err(kernel_error(&kernel, "the tensor is not on CUDA"));
    };
    let t = t.contiguous()?;
    let n = t.elem_count();
    let out = match (from, to) {
        (DType::F8E4M3, DType::F32) => cast_launch::<float8::F8E4M3, f32>(dev, &t, &kernel)?,
        (DType::F8E4M3, DType::F16) => cast_launch::<float8::F8E4M3, half::f16>(dev, &t, &kernel)?,
        (DType::F8E4M3, _) => cast_launch::<float8::F8E4M3, half::bf16>(dev, &t, &kernel)?,
        (DType::F32, _) => cast_launch::<f32, float8::F8E4M3>(dev, &t, &kernel)?,
        (DType::F16, _) => cast_launch::<half::f16, float8::F8E4M3>(dev, &t, &kernel)?,
        _ => cast_launch::<half::bf16, float8::F8E4M3>(dev, &t, &kernel)?,
    };
    debug_assert_eq!(n, t.elem_count());
    Ok(Tensor::from_storage(
        candle_core::Storage::Cuda(out),
        t.shape().clone(),
        candle_core::op::BackpropOp::none(),
        false,
    ))
}

/// One element-wise launch reading `t` (`I` elements, contiguous) and writing a new `O` buffer.
fn cast_launch<I: CudaDType + DeviceRepr, O: CudaDType + DeviceRepr>(
    dev: &candle_core::CudaDevice,
    t: &Tensor,
    kernel: &str,
) -> Result<CudaStorage> {
    let n = t.elem_count();
    let (guard, layout) = t.storage_and_layout();
    let candle_core::Storage::Cuda(storage) = &*guard else {
        return Err(kernel_error(kernel, "the tensor is not on CUDA"));
    };
    let input = contiguous_view::<I>(storage, layout, kernel, "input")?;
    // SAFETY: the launch below writes all n elements before anything reads them (ordered on
    // the device's stream).
    let mut out = unsafe { dev.alloc::<O>(n) }
        .map_err(|e| kernel_error(kernel, format!("allocation: {e}")))?;
    if n > 0 {
        let func = load(dev, &RESHAPE_AND_CACHE, kernel)?;
        let cfg = LaunchConfig {
            grid_dim: (dim(n.div_ceil(256).min(65_535), kernel, "blocks")?, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let len = n as i64;
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&func);
        b.arg(&mut out);
        b.arg(&input);
        b.arg(&len);
        // SAFETY: the arguments match fp8_from_<t> / fp8_to_<t> (kernels/reshape_and_cache.cu):
        // out and input hold n elements of the kernel's types; the grid-stride loop stays below n.
        unsafe { b.launch(cfg) }.map_err(|e| kernel_error(kernel, e))?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}
