//! Top-k sampling's selection on the device (`kernels/topk.cu`): each row's `k` largest
//! logits scaled by 1 / temperature, sorted as the host's sampler sorts them, so a batch of
//! top-k (and greedy) requests sends `k` (id, value) pairs per row to the host instead of the
//! whole vocabulary; [`crate::sampling::sample_from_candidates`] draws from them.

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::op::BackpropOp;
use candle_core::{CudaStorage, DType, Storage, Tensor};

use super::{arg_i32, contiguous_view, dim, kernel_error, load, KernelModule};
use crate::error::Result;

const TOPK: KernelModule = KernelModule {
    name: "llm_engine_topk",
    image: include_bytes!(concat!(env!("OUT_DIR"), "/topk.fatbin")),
};

/// The id [`topk_rows`] gives past a row's last candidate.
pub const NO_CANDIDATE: u32 = u32::MAX;

/// The largest `k` [`topk_rows`] takes: the kernel costs `k` passes over each row.
pub const MAX_DEVICE_TOP_K: usize = 256;

/// Threads per row.
const THREADS: u32 = 512;

/// How one row is selected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopKRow {
    /// Candidates to keep (1 for greedy).
    pub k: usize,
    /// The factor applied to the logits before ordering (1 / temperature; 1 for greedy).
    pub inv_temperature: f32,
    /// The rules of [`crate::sampling::argmax`] (greedy: ±inf kept, -0 equal to +0 so the
    /// lower id wins) instead of random sampling's (finite logits only, ordered by
    /// `f32::total_cmp`, -0 below +0). NaN is always skipped.
    pub greedy: bool,
}

/// Each row's candidates, best first: `ids[row * kmax + j]` and `values[..]` for `j < k`,
/// [`NO_CANDIDATE`] once the row has no more.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKCandidates {
    /// Slots per row (the largest `k` asked for).
    pub kmax: usize,
    /// Token ids, `[rows, kmax]`.
    pub ids: Vec<u32>,
    /// Scaled logits, `[rows, kmax]`.
    pub values: Vec<f32>,
}

impl TopKCandidates {
    /// Row `row`'s candidates as `(id, scaled logit)`, best first.
    pub fn row(&self, row: usize) -> Vec<(u32, f32)> {
        let span = row * self.kmax..(row + 1) * self.kmax;
        self.ids[span.clone()]
            .iter()
            .zip(&self.values[span])
            .take_while(|(&id, _)| id != NO_CANDIDATE)
            .map(|(&id, &v)| (id, v))
            .collect()
    }
}

/// The `rows[i].k` largest values of row `i` of f32 `logits` `[rows, vocab]` on CUDA after
/// scaling by `rows[i].inv_temperature` (an f32 multiply, as the host does), ordered by value
/// (descending) then by lower id, under the row's rules ([`TopKRow::greedy`]); NaN skipped.
/// Copies back `rows × max k` pairs.
///
/// # Errors
/// [`EngineError::CudaKernel`](crate::EngineError::CudaKernel) naming `topk_rows_f32` for
/// logits that are not a 2-D f32 CUDA tensor, a row count or `k` that does not fit
/// (`1..=`[`MAX_DEVICE_TOP_K`]), or a failed launch or copy.
pub fn topk_rows(logits: &Tensor, rows: &[TopKRow]) -> Result<TopKCandidates> {
    let kernel = "topk_rows_f32";
    let (n, vocab) = logits
        .dims2()
        .map_err(|e| kernel_error(kernel, format!("logits: {e}")))?;
    if logits.dtype() != DType::F32 || n != rows.len() {
        return Err(kernel_error(
            kernel,
            format!(
                "logits {:?} {:?} for {} rows",
                logits.dims(),
                logits.dtype(),
                rows.len()
            ),
        ));
    }
    let kmax = rows.iter().map(|r| r.k).max().unwrap_or(0);
    if let Some(r) = rows.iter().find(|r| r.k == 0 || r.k > MAX_DEVICE_TOP_K) {
        return Err(kernel_error(
            kernel,
            format!("k = {} is outside 1..={MAX_DEVICE_TOP_K}", r.k),
        ));
    }
    if n == 0 {
        return Ok(TopKCandidates {
            kmax,
            ids: Vec::new(),
            values: Vec::new(),
        });
    }
    let device = logits.device();
    let dev = device
        .as_cuda_device()
        .cloned()
        .map_err(|e| kernel_error(kernel, format!("the logits must be on CUDA: {e}")))?;
    let inv_t = Tensor::from_vec(
        rows.iter().map(|r| r.inv_temperature).collect::<Vec<f32>>(),
        n,
        device,
    )?;
    let ks = Tensor::from_vec(
        rows.iter().map(|r| r.k as u32).collect::<Vec<u32>>(),
        n,
        device,
    )?;
    let greedy = Tensor::from_vec(
        rows.iter()
            .map(|r| u32::from(r.greedy))
            .collect::<Vec<u32>>(),
        n,
        device,
    )?;
    let logits = logits.contiguous()?;
    let func = load(&dev, &TOPK, kernel)?;
    // SAFETY: the kernel writes all rows * kmax slots (thread 0 of each row's block, every
    // round) before anything reads them.
    let mut ids = unsafe { dev.alloc::<u32>(n * kmax) }
        .map_err(|e| kernel_error(kernel, format!("allocation: {e}")))?;
    let mut values = unsafe { dev.alloc::<f32>(n * kmax) }
        .map_err(|e| kernel_error(kernel, format!("allocation: {e}")))?;
    {
        let (l_g, l_l) = logits.storage_and_layout();
        let (t_g, t_l) = inv_t.storage_and_layout();
        let (k_g, k_l) = ks.storage_and_layout();
        let (f_g, f_l) = greedy.storage_and_layout();
        let (Storage::Cuda(l_s), Storage::Cuda(t_s), Storage::Cuda(k_s), Storage::Cuda(f_s)) =
            (&*l_g, &*t_g, &*k_g, &*f_g)
        else {
            return Err(kernel_error(kernel, "the logits are not on CUDA"));
        };
        let l_v = contiguous_view::<f32>(l_s, l_l, kernel, "logits")?;
        let t_v = contiguous_view::<f32>(t_s, t_l, kernel, "inv_t")?;
        let k_v = contiguous_view::<u32>(k_s, k_l, kernel, "k")?;
        let f_v = contiguous_view::<u32>(f_s, f_l, kernel, "greedy")?;
        let vocab_i = arg_i32(vocab, kernel, "vocab")?;
        let kmax_i = arg_i32(kmax, kernel, "kmax")?;
        let cfg = LaunchConfig {
            grid_dim: (dim(n, kernel, "rows")?, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&func);
        b.arg(&mut ids);
        b.arg(&mut values);
        b.arg(&l_v);
        b.arg(&vocab_i);
        b.arg(&t_v);
        b.arg(&k_v);
        b.arg(&f_v);
        b.arg(&kmax_i);
        // SAFETY: the arguments match topk_rows_f32 in kernels/topk.cu; the views hold
        // n * vocab logits and n entries of each row parameter, `ids`/`values` n * kmax.
        unsafe { b.launch(cfg) }.map_err(|e| kernel_error(kernel, e))?;
    }
    let ids = Tensor::from_storage(
        Storage::Cuda(CudaStorage::wrap_cuda_slice(ids, dev.clone())),
        n * kmax,
        BackpropOp::none(),
        false,
    )
    .to_vec1::<u32>()?;
    let values = Tensor::from_storage(
        Storage::Cuda(CudaStorage::wrap_cuda_slice(values, dev)),
        n * kmax,
        BackpropOp::none(),
        false,
    )
    .to_vec1::<f32>()?;
    Ok(TopKCandidates { kmax, ids, values })
}
