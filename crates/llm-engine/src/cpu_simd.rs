//! Vectorised f32 math for the CPU kernels: `exp` 16 lanes wide with AVX-512 (the scalar
//! `expf` call per element was a visible share of a batched CPU decode step, in softmax and in
//! SiLU), and SiLU·up over a row built on it. Each entry point checks the CPU's features at
//! run time and falls back to plain Rust.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_div_ps, _mm512_fmadd_ps, _mm512_fnmadd_ps, _mm512_loadu_ps,
        _mm512_max_ps, _mm512_min_ps, _mm512_mul_ps, _mm512_roundscale_ps, _mm512_scalef_ps,
        _mm512_set1_ps, _mm512_storeu_ps, _mm512_sub_ps,
    };

    /// `exp(x)` per lane for `x` in [-87, 88] (clamped to it outside: ~1e-38 below, ~1.6e38
    /// above), relative error ~1e-7: `x = n·ln2 + r` with `|r| <= ln2/2`, `exp(r)` by Cephes'
    /// `expf` polynomial, times `2^n`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) unsafe fn exp(x: __m512) -> __m512 {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        let c = |v: f32| _mm512_set1_ps(v);
        let x = _mm512_min_ps(_mm512_max_ps(x, c(-87.0)), c(88.0));
        // Round to nearest, exceptions suppressed.
        let n = _mm512_roundscale_ps::<0x08>(_mm512_mul_ps(x, c(LOG2E)));
        let r = _mm512_fnmadd_ps(n, c(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, c(LN2_LO), r);
        let mut y = c(1.987_569_1e-4);
        y = _mm512_fmadd_ps(y, r, c(1.398_199_9e-3));
        y = _mm512_fmadd_ps(y, r, c(8.333_452e-3));
        y = _mm512_fmadd_ps(y, r, c(4.166_579_6e-2));
        y = _mm512_fmadd_ps(y, r, c(1.666_666_5e-1));
        y = _mm512_fmadd_ps(y, r, c(0.5));
        // exp(r) = 1 + r + r^2 * y
        let e = _mm512_fmadd_ps(_mm512_mul_ps(r, r), y, _mm512_add_ps(r, c(1.0)));
        _mm512_scalef_ps(e, n)
    }

    /// `out[i] = silu(gate[i]) * up[i]` for the whole 16-element chunks; returns how many
    /// elements it wrote (the caller does the tail).
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) -> usize {
        let n = gate.len().min(up.len()).min(out.len());
        let whole = n - n % 16;
        let one = _mm512_set1_ps(1.0);
        let zero = _mm512_set1_ps(0.0);
        for c in (0..whole).step_by(16) {
            let g = _mm512_loadu_ps(gate.as_ptr().add(c));
            let u = _mm512_loadu_ps(up.as_ptr().add(c));
            let s = _mm512_div_ps(g, _mm512_add_ps(one, exp(_mm512_sub_ps(zero, g))));
            _mm512_storeu_ps(out.as_mut_ptr().add(c), _mm512_mul_ps(s, u));
        }
        whole
    }
}

/// `out[i] = silu(gate[i]) * up[i]` (`silu(g) = g / (1 + exp(-g))`), in f32.
pub(crate) fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above); the kernel stays within
            // the shortest of the three slices.
            done = unsafe { avx512::silu_mul(gate, up, out) };
        }
    }
    for ((o, &g), &u) in out[done..].iter_mut().zip(&gate[done..]).zip(&up[done..]) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp_matches_std() {
        use std::arch::x86_64::{_mm512_loadu_ps, _mm512_storeu_ps};
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return; // never called on this CPU
        }
        let xs: Vec<f32> = (0..=40_000).map(|i| -90.0 + i as f32 * 0.0045).collect(); // -90 .. 90
        for chunk in xs.chunks(16) {
            let mut lanes = [0f32; 16];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let mut got = [0f32; 16];
            // SAFETY: AVX-512F is present (checked above); both arrays hold 16 floats.
            unsafe {
                _mm512_storeu_ps(
                    got.as_mut_ptr(),
                    avx512::exp(_mm512_loadu_ps(lanes.as_ptr())),
                )
            };
            for (&x, &y) in lanes.iter().zip(&got).take(chunk.len()) {
                if (-87.0..=88.0).contains(&x) {
                    let want = x.exp();
                    let rel = ((y - want) / want).abs();
                    assert!(rel < 3e-7, "exp({x}) = {y}, want {want} (rel {rel:e})");
                } else if x < -87.0 {
                    assert!((0.0..2e-38).contains(&y), "exp({x}) = {y}");
                } else {
                    assert!(y > 1e38 && y.is_finite(), "exp({x}) = {y}");
                }
            }
        }
    }

    #[test]
    fn silu_mul_matches_the_scalar_formula_with_a_tail() {
        for n in [1usize, 15, 16, 33, 1376] {
            let gate: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.2)
                .collect();
            let up: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
            let mut out = vec![0f32; n];
            silu_mul(&gate, &up, &mut out);
            for i in 0..n {
                let g = gate[i];
                let want = g / (1.0 + (-g).exp()) * up[i];
                assert!(
                    (out[i] - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "n={n} i={i}: {} vs {want}",
                    out[i]
                );
            }
        }
    }
}
