//! A CPU paged-attention kernel for decode slices (vLLM's `paged_attention_v1`, in plain Rust):
//! each sequence's single query attends directly over the cache blocks its block table names,
//! reading every cached K/V row exactly once: no gathered copy of the context, no padding.

use candle_core::{DType, Storage, Tensor};
use half::{bf16, f16};

use crate::error::{EngineError, Result};

/// A cache element that widens to f32.
trait CacheElem: Copy {
    fn f32(self) -> f32;
}

impl CacheElem for f32 {
    #[inline]
    fn f32(self) -> f32 {
        self
    }
}

impl CacheElem for f16 {
    #[inline]
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

impl CacheElem for bf16 {
    #[inline]
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

/// Dot product with 8 independent accumulators, so the compiler vectorises it.
#[inline]
fn dot<T: CacheElem>(a: &[f32], b: &[T]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, a_tail) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_tail) = b.split_at(a8.len());
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l].f32();
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y.f32()).sum();
    acc.iter().sum::<f32>() + tail
}

/// What the kernel needs about the cache and the sequences.
pub(crate) struct DecodeProblem<'a> {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
    /// Rows per head in the cache tensors (`num_blocks * block_size`).
    pub num_slots: usize,
    pub scale: f32,
    pub sliding_window: Option<usize>,
    /// Per sequence: its block table and its context length (its query sits at `ctx - 1`).
    pub seqs: Vec<(&'a [u32], usize)>,
}

/// `q`: f32 `[B, H * D]` (row-major). Returns f32 `[B, H * D]`. Sequences are independent,
/// so they are spread over rayon's threads (the dense layers already use every core; this
/// keeps attention from being the single-threaded part of a batched decode step).
fn run<T: CacheElem + Sync>(p: &DecodeProblem<'_>, q: &[f32], k: &[T], v: &[T]) -> Vec<f32> {
    use rayon::prelude::*;
    let row = p.num_heads * p.head_dim;
    let mut out = vec![0f32; p.seqs.len() * row];
    if p.seqs.len() > 1 {
        out.par_chunks_mut(row)
            .zip(q.par_chunks(row))
            .zip(p.seqs.par_iter())
            .for_each(|((out_b, q_b), &(table, ctx))| {
                one_sequence(p, q_b, k, v, table, ctx, out_b)
            });
    } else if let Some(&(table, ctx)) = p.seqs.first() {
        one_sequence(p, q, k, v, table, ctx, &mut out);
    }
    out
}

/// One sequence's query (`q_b`: `[H * D]`) against its cached context; writes `out_b`.
fn one_sequence<T: CacheElem>(
    p: &DecodeProblem<'_>,
    q_b: &[f32],
    k: &[T],
    v: &[T],
    table: &[u32],
    ctx: usize,
    out_b: &mut [f32],
) {
    let (h, kvh, d, bs) = (p.num_heads, p.num_kv_heads, p.head_dim, p.block_size);
    let g = h / kvh;
    let pos = ctx - 1;
    let first = p.sliding_window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let n = ctx - first;
    let slot = |j: usize| table[j / bs] as usize * bs + j % bs;
    let mut scores = vec![0f32; n * g];
    let mut acc = vec![0f32; g * d];
    for kh in 0..kvh {
        let head_base = kh * p.num_slots * d;
        let q_group = &q_b[kh * g * d..(kh * g + g) * d];
        // scores[j * g + i]: query head i of the group against position first + j.
        for j in 0..n {
            let row = head_base + slot(first + j) * d;
            let k_row = &k[row..row + d];
            for i in 0..g {
                let qi = &q_group[i * d..(i + 1) * d];
                scores[j * g + i] = dot(qi, k_row) * p.scale;
            }
        }
        for i in 0..g {
            let max = (0..n)
                .map(|j| scores[j * g + i])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for j in 0..n {
                let e = (scores[j * g + i] - max).exp();
                scores[j * g + i] = e;
                sum += e;
            }
            for j in 0..n {
                scores[j * g + i] /= sum;
            }
        }
        acc.iter_mut().for_each(|x| *x = 0.0);
        for j in 0..n {
            let row = head_base + slot(first + j) * d;
            let v_row = &v[row..row + d];
            for i in 0..g {
                let w = scores[j * g + i];
                for (a, x) in acc[i * d..(i + 1) * d].iter_mut().zip(v_row) {
                    *a += w * x.f32();
                }
            }
        }
        out_b[kh * g * d..(kh * g + g) * d].copy_from_slice(&acc);
    }
}

/// Decode attention on the CPU: `q` `[B, H * D]` (any float dtype), `k_cache`/`v_cache` the
/// layer's `[KVH, num_slots, D]` tensors. Returns `[B, H * D]` in `q`'s dtype.
///
/// # Errors
/// [`EngineError::InvalidBatch`] when the tensors are not contiguous CPU tensors of a
/// supported dtype; candle errors.
pub(crate) fn paged_decode_attention_cpu(
    p: &DecodeProblem<'_>,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
) -> Result<Tensor> {
    let dtype = q.dtype();
    let b = p.seqs.len();
    let q32 = q.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let (k_guard, k_layout) = k_cache.storage_and_layout();
    let (v_guard, v_layout) = v_cache.storage_and_layout();
    let (Some((k0, k1)), Some((v0, v1))) =
        (k_layout.contiguous_offsets(), v_layout.contiguous_offsets())
    else {
        return Err(EngineError::InvalidBatch(
            "KV cache tensors must be contiguous".into(),
        ));
    };
    let out = match (&*k_guard, &*v_guard) {
        (Storage::Cpu(k), Storage::Cpu(v)) => match k_cache.dtype() {
            DType::F32 => run(
                p,
                &q32,
                &k.as_slice::<f32>()?[k0..k1],
                &v.as_slice::<f32>()?[v0..v1],
            ),
            DType::F16 => run(
                p,
                &q32,
                &k.as_slice::<f16>()?[k0..k1],
                &v.as_slice::<f16>()?[v0..v1],
            ),
            DType::BF16 => run(
                p,
                &q32,
                &k.as_slice::<bf16>()?[k0..k1],
                &v.as_slice::<bf16>()?[v0..v1],
            ),
            other => {
                return Err(EngineError::InvalidBatch(format!(
                    "KV cache dtype {other:?} is not supported"
                )));
            }
        },
        _ => {
            return Err(EngineError::InvalidBatch(
                "the CPU attention kernel needs CPU tensors".into(),
            ))
        }
    };
    drop((k_guard, v_guard));
    Ok(Tensor::from_vec(out, (b, p.num_heads * p.head_dim), q.device())?.to_dtype(dtype)?)
}
