//! The f32 decode-attention kernel written with AVX-512 intrinsics, for the shapes LLMs use
//! (`head_dim` 64 or 128, 1, 2, 4 or 8 query heads per KV head).
//!
//! The portable kernel ([`super::one_sequence`], compiled for AVX-512 by the compiler) spends
//! most of its time outside the memory stream it should be bound by: each dot product ends in
//! a 16-step serial horizontal sum that the compiler spills through the stack (a
//! store-forwarding stall per key row), and softmax calls the scalar `expf` once per score.
//! Here a key row is loaded once into registers for all the query heads of its group, each dot
//! product is reduced with a shuffle tree, softmax runs 16 lanes wide with a polynomial `exp`
//! (relative error ~1e-7), and the normalisation is folded into the output (one multiply per
//! output element instead of a pass over the scores).

use std::arch::x86_64::{
    __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_add_ps,
    _mm512_mask_loadu_ps, _mm512_mask_storeu_ps, _mm512_max_ps, _mm512_mul_ps,
    _mm512_reduce_add_ps, _mm512_reduce_max_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps, _mm512_sub_ps, _mm_prefetch, _MM_HINT_T0,
};

use super::{context_rows, DecodeProblem};

/// Runs the kernel when the shape is one it is specialised for; returns `false` (writing
/// nothing) otherwise, so the caller falls back to the portable kernel.
///
/// # Safety
/// The CPU supports AVX-512F. `k` and `v` hold `num_kv_heads * num_slots * head_dim` floats,
/// `q_b` and `out_b` `num_heads * head_dim`, and `table` names blocks below
/// `num_slots / block_size` for the first `ctx` positions (checked: a violation panics, as
/// the portable kernel's slice indexing would).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn one_sequence_f32(
    p: &DecodeProblem<'_>,
    q_b: &[f32],
    k: &[f32],
    v: &[f32],
    table: &[u32],
    ctx: usize,
    out_b: &mut [f32],
) -> bool {
    if p.num_kv_heads == 0 || !p.num_heads.is_multiple_of(p.num_kv_heads) {
        return false;
    }
    let g = p.num_heads / p.num_kv_heads;
    let args = (p, q_b, k, v, table, ctx, out_b);
    match (p.head_dim, g) {
        (64, 1) => group_kernel::<4, 1>(args),
        (64, 2) => group_kernel::<4, 2>(args),
        (64, 4) => group_kernel::<4, 4>(args),
        (64, 8) => group_kernel::<4, 8>(args),
        (128, 1) => group_kernel::<8, 1>(args),
        (128, 2) => group_kernel::<8, 2>(args),
        (128, 4) => group_kernel::<8, 4>(args),
        (128, 8) => group_kernel::<8, 8>(args),
        _ => return false,
    }
    true
}

type Args<'a, 'b> = (
    &'a DecodeProblem<'b>,
    &'a [f32],
    &'a [f32],
    &'a [f32],
    &'a [u32],
    usize,
    &'a mut [f32],
);

/// Prefetches one cache row of `CH` 16-float chunks (a 64-byte line each).
#[inline(always)]
unsafe fn prefetch_row<const CH: usize>(ptr: *const f32) {
    for c in 0..CH {
        _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(c * 16).cast::<i8>());
    }
}

/// `head_dim = 16 * CH`, `G` query heads per KV head.
#[target_feature(enable = "avx512f")]
unsafe fn group_kernel<const CH: usize, const G: usize>(args: Args<'_, '_>) {
    let (p, q_b, k, v, table, ctx, out_b) = args;
    let d = CH * 16;
    let (kvh, bs) = (p.num_kv_heads, p.block_size);
    let head_len = p.num_slots * d;
    assert!(k.len() >= kvh * head_len && v.len() >= kvh * head_len);
    assert!(q_b.len() >= kvh * G * d && out_b.len() >= kvh * G * d);
    let rows = context_rows(p, table, ctx);
    // Every row read below is `head_base + rows[j] .. + d` with head_base + d <= kvh *
    // head_len: bound-check the rows once, not per load.
    assert!(rows.iter().all(|&r| r + d <= head_len));
    let n = rows.len();
    let mut scores = vec![0f32; G * n]; // scores[i * n + j]: head i of the group, position j
    let scale = _mm512_set1_ps(p.scale);
    for kh in 0..kvh {
        let head_base = kh * head_len;
        let kp = k.as_ptr().add(head_base);
        let vp = v.as_ptr().add(head_base);
        let qp = q_b.as_ptr().add(kh * G * d);
        // The group's queries, pre-scaled, in registers for the whole pass over the keys.
        let mut qv = [[_mm512_setzero_ps(); CH]; G];
        for (i, qi) in qv.iter_mut().enumerate() {
            for (c, qc) in qi.iter_mut().enumerate() {
                *qc = _mm512_mul_ps(_mm512_loadu_ps(qp.add(i * d + c * 16)), scale);
            }
        }
        let sp = scores.as_mut_ptr();
        for j in 0..n {
            let row = *rows.get_unchecked(j);
            // Blocks are scattered pages the hardware prefetchers cannot follow: fetch the
            // key one block ahead, and this position's value for the weighted sum below.
            if j + bs < n {
                prefetch_row::<CH>(kp.add(*rows.get_unchecked(j + bs)));
            }
            prefetch_row::<CH>(vp.add(row));
            let mut kc = [_mm512_setzero_ps(); CH];
            for (c, x) in kc.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(kp.add(row + c * 16));
            }
            for (i, qi) in qv.iter().enumerate() {
                let mut acc = _mm512_mul_ps(qi[0], kc[0]);
                for c in 1..CH {
                    acc = _mm512_fmadd_ps(qi[c], kc[c], acc);
                }
                *sp.add(i * n + j) = _mm512_reduce_add_ps(acc);
            }
        }
        let mut inv_sum = [0f32; G];
        for (i, inv) in inv_sum.iter_mut().enumerate() {
            *inv = 1.0 / exp_shifted_in_place(&mut scores[i * n..(i + 1) * n]);
        }
        let mut acc = [[_mm512_setzero_ps(); CH]; G];
        let sp = scores.as_ptr();
        for j in 0..n {
            let row = *rows.get_unchecked(j);
            let mut vc = [_mm512_setzero_ps(); CH];
            for (c, x) in vc.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(vp.add(row + c * 16));
            }
            for (i, ai) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*sp.add(i * n + j));
                for c in 0..CH {
                    ai[c] = _mm512_fmadd_ps(w, vc[c], ai[c]);
                }
            }
        }
        let op = out_b.as_mut_ptr().add(kh * G * d);
        for (i, ai) in acc.iter().enumerate() {
            let inv = _mm512_set1_ps(inv_sum[i]);
            for (c, a) in ai.iter().enumerate() {
                _mm512_storeu_ps(op.add(i * d + c * 16), _mm512_mul_ps(*a, inv));
            }
        }
    }
}

/// `s[j] = exp(s[j] - max(s))`; returns the sum of the new values (softmax without its
/// division, which the caller folds into the weighted sum).
#[target_feature(enable = "avx512f")]
unsafe fn exp_shifted_in_place(s: &mut [f32]) -> f32 {
    let n = s.len();
    let whole = n - n % 16;
    let tail: __mmask16 = ((1u32 << (n % 16)) - 1) as __mmask16;
    let p = s.as_mut_ptr();
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut m = neg_inf;
    for c in (0..whole).step_by(16) {
        m = _mm512_max_ps(m, _mm512_loadu_ps(p.add(c)));
    }
    if tail != 0 {
        m = _mm512_max_ps(m, _mm512_mask_loadu_ps(neg_inf, tail, p.add(whole)));
    }
    let max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    let mut sum = _mm512_setzero_ps();
    for c in (0..whole).step_by(16) {
        let e = crate::cpu_simd::avx512::exp(_mm512_sub_ps(_mm512_loadu_ps(p.add(c)), max));
        _mm512_storeu_ps(p.add(c), e);
        sum = _mm512_add_ps(sum, e);
    }
    if tail != 0 {
        let x = _mm512_mask_loadu_ps(max, tail, p.add(whole));
        let e = crate::cpu_simd::avx512::exp(_mm512_sub_ps(x, max));
        _mm512_mask_storeu_ps(p.add(whole), tail, e);
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
    }
    _mm512_reduce_add_ps(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_tail_lengths_sum_like_the_scalar_code() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        for n in [1usize, 5, 16, 17, 31, 64, 100] {
            let orig: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32) * 0.7 - 4.0).collect();
            let mut s = orig.clone();
            // SAFETY: AVX-512F is present (checked above).
            let sum = unsafe { exp_shifted_in_place(&mut s) };
            let max = orig.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let want: Vec<f32> = orig.iter().map(|x| (x - max).exp()).collect();
            let want_sum: f32 = want.iter().sum();
            assert!(
                (sum - want_sum).abs() < 1e-5 * want_sum,
                "n={n}: {sum} vs {want_sum}"
            );
            for (a, b) in s.iter().zip(&want) {
                assert!((a - b).abs() < 1e-6, "n={n}: {a} vs {b}");
            }
        }
    }
}
