//! A CPU paged-attention kernel for decode slices (vLLM's `paged_attention_v1`, in plain Rust):
//! each sequence's single query attends directly over the cache blocks its block table names,
//! reading every cached K/V row exactly once: no gathered copy of the context, no padding.
//! The cache may be f32, f16, bf16 or fp8 E4M3 (widened to f32 as it is read).

use candle_core::{DType, Storage, Tensor};
use float8::F8E4M3;
use half::{bf16, f16};

use crate::error::{EngineError, Result};

#[cfg(target_arch = "x86_64")]
#[path = "cpu_decode_avx512.rs"]
mod avx512;

/// A cache element that widens to f32.
trait CacheElem: Copy {
    fn f32(self) -> f32;

    /// The slice itself when the elements are f32 (the hand-vectorised kernel's input).
    fn as_f32(_s: &[Self]) -> Option<&[f32]> {
        None
    }
}

impl CacheElem for f32 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self
    }

    fn as_f32(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
}

impl CacheElem for f16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

impl CacheElem for bf16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

impl CacheElem for F8E4M3 {
    #[inline(always)]
    fn f32(self) -> f32 {
        FP8_E4M3_TO_F32[self.to_bits() as usize]
    }
}

/// Every E4M3 value as f32, by bit pattern: one L1-resident load per element instead of
/// `F8E4M3::to_f32`'s software conversion through f16 (exact: both are the same numbers).
static FP8_E4M3_TO_F32: [f32; 256] = {
    let mut table = [0f32; 256];
    let mut bits = 0;
    while bits < 256 {
        table[bits] = F8E4M3::from_bits(bits as u8).to_f32();
        bits += 1;
    }
    table
};

/// Dot product with 16 independent accumulators, so the compiler vectorises it (one zmm, two
/// ymm or four xmm registers, whichever the calling function is compiled for).
#[inline(always)]
fn dot<T: CacheElem>(a: &[f32], b: &[T]) -> f32 {
    let mut acc = [0f32; 16];
    let (a16, a_tail) = a.split_at(a.len() - a.len() % 16);
    let (b16, b_tail) = b.split_at(a16.len());
    for (ca, cb) in a16.chunks_exact(16).zip(b16.chunks_exact(16)) {
        for l in 0..16 {
            acc[l] += ca[l] * cb[l].f32();
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y.f32()).sum();
    acc.iter().sum::<f32>() + tail
}

/// `out[i] = scale * q_i · k` for the `G` query heads of a group (`q`: `[G * d]`), reading the
/// key row once for all of them (one load of each 16 elements, G FMAs).
#[inline(always)]
fn group_dots<T: CacheElem, const G: usize>(q: &[f32], k: &[T], scale: f32, out: &mut [f32]) {
    let d = k.len();
    let mut acc = [[0f32; 16]; G];
    let whole = d - d % 16;
    for c in (0..whole).step_by(16) {
        let mut kc = [0f32; 16];
        for (x, y) in kc.iter_mut().zip(&k[c..c + 16]) {
            *x = y.f32();
        }
        for (i, a) in acc.iter_mut().enumerate() {
            let qc = &q[i * d + c..i * d + c + 16];
            for l in 0..16 {
                a[l] += qc[l] * kc[l];
            }
        }
    }
    for (i, (a, o)) in acc.iter().zip(out.iter_mut()).enumerate() {
        let tail: f32 = (whole..d).map(|e| q[i * d + e] * k[e].f32()).sum();
        *o = (a.iter().sum::<f32>() + tail) * scale;
    }
}

/// Asks the CPU to start loading `s` into its caches (a no-op off x86-64).
#[inline(always)]
fn prefetch<T>(s: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = s.as_ptr().cast::<i8>();
        for off in (0..std::mem::size_of_val(s)).step_by(64) {
            // SAFETY: a prefetch never faults and `p + off` stays inside `s`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = s;
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
                one_sequence_simd(p, q_b, k, v, table, ctx, out_b)
            });
    } else if let Some(&(table, ctx)) = p.seqs.first() {
        one_sequence_simd(p, q, k, v, table, ctx, &mut out);
    }
    out
}

/// [`one_sequence`] compiled for the widest vector unit this CPU has. The crate is built for
/// baseline x86-64 (SSE2), where the dot products and weighted sums run 4 lanes wide without
/// FMA; AVX-512 runs them 16 wide.
fn one_sequence_simd<T: CacheElem>(
    p: &DecodeProblem<'_>,
    q_b: &[f32],
    k: &[T],
    v: &[T],
    table: &[u32],
    ctx: usize,
    out_b: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            if let (Some(k32), Some(v32)) = (T::as_f32(k), T::as_f32(v)) {
                // SAFETY: the CPU supports AVX-512F (checked just above); the slices are the
                // layer's whole cache tensors and the sequence's query/output rows, and the
                // kernel checks the block table's rows against them.
                if unsafe { avx512::one_sequence_f32(p, q_b, k32, v32, table, ctx, out_b) } {
                    return;
                }
            }
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { simd::one_sequence_avx512(p, q_b, k, v, table, ctx, out_b) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { simd::one_sequence_avx2(p, q_b, k, v, table, ctx, out_b) };
            return;
        }
    }
    one_sequence(p, q_b, k, v, table, ctx, out_b)
}

/// The same Rust code as [`one_sequence`], compiled with wider vector units enabled.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{one_sequence, CacheElem, DecodeProblem};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn one_sequence_avx512<T: CacheElem>(
        p: &DecodeProblem<'_>,
        q_b: &[f32],
        k: &[T],
        v: &[T],
        table: &[u32],
        ctx: usize,
        out_b: &mut [f32],
    ) {
        one_sequence(p, q_b, k, v, table, ctx, out_b)
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn one_sequence_avx2<T: CacheElem>(
        p: &DecodeProblem<'_>,
        q_b: &[f32],
        k: &[T],
        v: &[T],
        table: &[u32],
        ctx: usize,
        out_b: &mut [f32],
    ) {
        one_sequence(p, q_b, k, v, table, ctx, out_b)
    }
}

/// The cache row (slot × `head_dim`, within one head's `[num_slots, head_dim]` matrix) of each
/// position the query at `ctx - 1` sees, in position order: computed once per sequence, not a
/// division per key per head. With a sliding window the first visible position is
/// `ctx - window`.
#[inline(always)]
fn context_rows(p: &DecodeProblem<'_>, table: &[u32], ctx: usize) -> Vec<usize> {
    let (bs, d) = (p.block_size, p.head_dim);
    let first = p.sliding_window.map_or(0, |w| ctx.saturating_sub(w));
    (first / bs..ctx.div_ceil(bs))
        .flat_map(|b| {
            let base = table[b] as usize * bs;
            let (lo, hi) = ((b * bs).max(first), ((b + 1) * bs).min(ctx));
            (lo..hi).map(move |p| (base + p - b * bs) * d)
        })
        .collect()
}

/// One sequence's query (`q_b`: `[H * D]`) against its cached context; writes `out_b`.
/// Always inlined, so that each `simd` entry point compiles it for its own vector unit.
#[inline(always)]
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
    let rows = context_rows(p, table, ctx);
    let n = rows.len();
    let mut scores = vec![0f32; n * g];
    let mut acc = vec![0f32; g * d];
    for kh in 0..kvh {
        let head_base = kh * p.num_slots * d;
        let q_group = &q_b[kh * g * d..(kh * g + g) * d];
        // scores[j * g + i]: query head i of the group against position first + j.
        for j in 0..n {
            let row = head_base + rows[j];
            let k_row = &k[row..row + d];
            // Cache blocks are scattered pages the hardware prefetchers cannot follow: fetch the
            // key one block ahead, and this key's value for the weighted sum below.
            if j + bs < n {
                let ahead = head_base + rows[j + bs];
                prefetch(&k[ahead..ahead + d]);
            }
            prefetch(&v[row..row + d]);
            let out = &mut scores[j * g..(j + 1) * g];
            match g {
                1 => group_dots::<T, 1>(q_group, k_row, p.scale, out),
                2 => group_dots::<T, 2>(q_group, k_row, p.scale, out),
                4 => group_dots::<T, 4>(q_group, k_row, p.scale, out),
                8 => group_dots::<T, 8>(q_group, k_row, p.scale, out),
                _ => {
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = dot(&q_group[i * d..(i + 1) * d], k_row) * p.scale;
                    }
                }
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
            let row = head_base + rows[j];
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
/// layer's `[KVH, num_slots, D]` tensors (f32, f16, bf16 or F8E4M3, independent of `q`'s dtype). Returns `[B, H * D]` in `q`'s dtype.
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
            DType::F8E4M3 => run(
                p,
                &q32,
                &k.as_slice::<F8E4M3>()?[k0..k1],
                &v.as_slice::<F8E4M3>()?[v0..v1],
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The lookup table is `F8E4M3::to_f32` for all 256 bit patterns (NaN included).
    #[test]
    fn fp8_table_matches_the_conversion() {
        for bits in 0..=255u8 {
            let (x, want) = (F8E4M3::from_bits(bits), F8E4M3::from_bits(bits).to_f32());
            let got = x.f32();
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{bits:#04x}: {got} vs {want}"
            );
        }
        assert_eq!(F8E4M3::from_bits(0x7E).f32(), 448.0);
        assert!(F8E4M3::from_bits(0x7F).f32().is_nan());
    }

    /// The SIMD entry point (the hand-written AVX-512 f32 kernel for head_dim 64/128, the
    /// compiler-vectorised one otherwise) and the plain one give the same result, over a
    /// scattered block table, partial last blocks, a head_dim with a scalar tail, GQA ratios
    /// 1, 2, 4 and 8, and a sliding window.
    #[test]
    fn simd_and_plain_sequences_agree() {
        let (bs, blocks) = (4, 12);
        for (h, kvh) in [(8, 2), (8, 8), (8, 4), (8, 1)] {
            for d in [64, 72, 128] {
                for window in [None, Some(5)] {
                    for ctx in [1, 7, 18] {
                        check_sequence(h, kvh, d, bs, blocks, window, ctx);
                    }
                }
            }
        }
    }

    fn check_sequence(
        h: usize,
        kvh: usize,
        d: usize,
        bs: usize,
        blocks: usize,
        window: Option<usize>,
        ctx: usize,
    ) {
        let slots = blocks * bs;
        let val = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 504.0;
        let k: Vec<f32> = (0..kvh * slots * d).map(val).collect();
        let v: Vec<f32> = (0..kvh * slots * d).map(|i| val(i + 13)).collect();
        let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
        let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        let k8: Vec<F8E4M3> = k.iter().map(|&x| F8E4M3::from_f32(x)).collect();
        let v8: Vec<F8E4M3> = v.iter().map(|&x| F8E4M3::from_f32(x)).collect();
        let q: Vec<f32> = (0..h * d).map(|i| val(i + 101)).collect();
        let table = [7u32, 2, 11, 0, 5];
        let p = DecodeProblem {
            num_heads: h,
            num_kv_heads: kvh,
            head_dim: d,
            block_size: bs,
            num_slots: slots,
            scale: 0.125,
            sliding_window: window,
            seqs: vec![(&table[..], ctx)],
        };
        let case = format!("h={h} kvh={kvh} d={d} window={window:?} ctx={ctx}");
        let mut plain = vec![0f32; h * d];
        let mut simd = vec![0f32; h * d];
        one_sequence(&p, &q, &k, &v, &table, ctx, &mut plain);
        one_sequence_simd(&p, &q, &k, &v, &table, ctx, &mut simd);
        for (a, b) in plain.iter().zip(&simd) {
            assert!((a - b).abs() < 1e-5, "f32 {case}: {a} vs {b}");
        }
        one_sequence(&p, &q, &k16, &v16, &table, ctx, &mut plain);
        one_sequence_simd(&p, &q, &k16, &v16, &table, ctx, &mut simd);
        for (a, b) in plain.iter().zip(&simd) {
            assert!((a - b).abs() < 1e-4, "f16 {case}: {a} vs {b}");
        }
        one_sequence(&p, &q, &k8, &v8, &table, ctx, &mut plain);
        one_sequence_simd(&p, &q, &k8, &v8, &table, ctx, &mut simd);
        for (a, b) in plain.iter().zip(&simd) {
            assert!((a - b).abs() < 1e-4, "fp8 {case}: {a} vs {b}");
        }
    }
}
