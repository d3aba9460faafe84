//! Greedy sampling on the device (`kernels/argmax.cu`): each row's argmax in one launch, the
//! host's tie and NaN rules ([`crate::sampling::argmax`]), so only the ids cross to the host.

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::op::BackpropOp;
use candle_core::{CudaStorage, DType, Storage, Tensor};

use super::{arg_i32, contiguous_view, dim, kernel_error, load, KernelModule};
use crate::error::Result;

const ARGMAX: KernelModule = KernelModule {
    name: "llm_engine_argmax",
    image: include_bytes!(concat!(env!("OUT_DIR"), "/argmax.fatbin")),
};

/// What [`argmax_rows`] returns for a row with no non-NaN logit.
pub const NO_ARGMAX: u32 = u32::MAX;

/// Threads per row.
const THREADS: u32 = 256;

/// The index of the largest value of each row of f32 `logits` `[rows, vocab]` on CUDA: u32
/// `[rows]`, the lowest index on a tie, NaN skipped, [`NO_ARGMAX`] for a row of NaN only (or of
/// no columns).
///
/// # Errors
/// [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) naming `argmax_rows_f32` for
/// logits that are not a 2-D f32 CUDA tensor, or a failed launch.
pub fn argmax_rows(logits: &Tensor) -> Result<Tensor> {
    let kernel = "argmax_rows_f32";
    let (rows, vocab) = logits
        .dims2()
        .map_err(|e| kernel_error(kernel, format!("logits: {e}")))?;
    if logits.dtype() != DType::F32 {
        return Err(kernel_error(
            kernel,
            format!("logits are {:?}, not f32", logits.dtype()),
        ));
    }
    let dev = logits
        .device()
        .as_cuda_device()
        .cloned()
        .map_err(|e| kernel_error(kernel, format!("the logits must be on CUDA: {e}")))?;
    if rows == 0 || vocab == 0 {
        return Ok(Tensor::full(NO_ARGMAX, rows, logits.device())?);
    }
    let logits = logits.contiguous()?;
    let (storage, layout) = logits.storage_and_layout();
    let Storage::Cuda(cuda) = &*storage else {
        return Err(kernel_error(kernel, "the logits are not on CUDA"));
    };
    let view = contiguous_view::<f32>(cuda, layout, kernel, "logits")?;
    let func = load(&dev, &ARGMAX, kernel)?;
    // SAFETY: the kernel writes all `rows` ids (one block per row) before anything reads them.
    let mut out = unsafe { dev.alloc::<u32>(rows) }
        .map_err(|e| kernel_error(kernel, format!("allocation: {e}")))?;
    let vocab_i = arg_i32(vocab, kernel, "vocab")?;
    let cfg = LaunchConfig {
        grid_dim: (dim(rows, kernel, "rows")?, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(&func);
    b.arg(&mut out);
    b.arg(&view);
    b.arg(&vocab_i);
    // SAFETY: the arguments match argmax_rows_f32 in kernels/argmax.cu; the view holds
    // rows * vocab f32 and `out` rows u32; one block per row.
    unsafe { b.launch(cfg) }.map_err(|e| kernel_error(kernel, e))?;
    drop(storage);
    Ok(Tensor::from_storage(
        Storage::Cuda(CudaStorage::wrap_cuda_slice(out, dev)),
        rows,
        BackpropOp::none(),
        false,
    ))
}
