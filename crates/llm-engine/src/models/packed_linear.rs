//! f32 linear layers on the CPU with the weight packed once, at load, into the layout the
//! matmul kernel reads.
//!
//! Decode runs a linear layer on a handful of rows (one per running sequence). A general GEMM
//! (candle's CPU matmul, the `gemm` crate) re-packs the weight operand on every call, which at
//! 1-32 rows costs as much memory traffic as the multiplication itself and leaves it at ~25% of
//! the cores' FMA peak. Here the weight `W` (`[in, out]`) is cut once into column panels of
//! [`NR`] = 16 columns, each stored `[in][16]` contiguous, so a call streams every weight byte
//! exactly once per group of rows, straight into a register tile of FMA accumulators: 16 rows
//! × one 16-lane vector with AVX-512, 6 rows × two 8-lane vectors with AVX2 + FMA (the CPU's
//! features are checked at run time), portable code otherwise. Panels are spread over the
//! rayon pool.
//!
//! The result is the same product as `x · W` up to f32 summation order (checked against candle
//! in the tests below).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Columns per panel: two 8-lane f32 vectors.
pub(crate) const NR: usize = 16;
/// Rows per register tile of the AVX2 kernel (6 × 2 accumulators + 2 weight vectors + 1
/// broadcast ≤ 16 ymm registers).
pub(crate) const MR: usize = 6;
/// Rows per register tile of the AVX-512 kernel (16 accumulators + 1 weight vector ≤ 32 zmm
/// registers): a batch of 16 decoding sequences reads each weight panel once, not three times.
pub(crate) const MR_512: usize = 16;
/// How far ahead of the FMAs the SIMD kernels prefetch the weight stream, in panel rows (one
/// 64-byte line each): 4 KiB. Chosen by measurement on the 2-core CI VM (16 / 32 / 64 / 128
/// lines: 64 was the fastest for a 16-row tile, 1.5-2x faster than no software prefetch).
#[cfg(target_arch = "x86_64")]
const PREFETCH_AHEAD: usize = 64;
/// The largest tile any kernel fills.
pub(crate) const MR_MAX: usize = MR_512;

/// Rows per tile of the kernel this CPU runs.
fn rows_per_tile() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return MR_512;
        }
    }
    MR
}

/// A `[in, out]` f32 weight cut into `ceil(out / NR)` panels of `[in][NR]` (the last one
/// zero-padded).
#[derive(Debug, Clone)]
pub(crate) struct PackedWeight {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedWeight {
    /// Packs a row-major `[k, n]` weight (`w[i * n + j]` is input `i`, output `j`).
    pub(crate) fn pack(w: &[f32], k: usize, n: usize) -> Self {
        debug_assert_eq!(w.len(), k * n);
        let num_panels = n.div_ceil(NR);
        let mut panels = vec![0f32; num_panels * k * NR];
        panels
            .par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(p, panel)| {
                let j0 = p * NR;
                let width = NR.min(n - j0);
                for (i, row) in panel.chunks_exact_mut(NR).enumerate() {
                    row[..width].copy_from_slice(&w[i * n + j0..i * n + j0 + width]);
                }
            });
        Self { k, n, panels }
    }

    /// Packs a row-major `[n, k]` weight stored the PyTorch way (`w[j * k + i]` is output `j`,
    /// input `i`), e.g. a (tied) embedding matrix used as the LM head.
    pub(crate) fn pack_out_in(w: &[f32], n: usize, k: usize) -> Self {
        debug_assert_eq!(w.len(), k * n);
        let num_panels = n.div_ceil(NR);
        let mut panels = vec![0f32; num_panels * k * NR];
        panels
            .par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(p, panel)| {
                let j0 = p * NR;
                for j in 0..NR.min(n - j0) {
                    let src = &w[(j0 + j) * k..(j0 + j + 1) * k];
                    for (i, &v) in src.iter().enumerate() {
                        panel[i * NR + j] = v;
                    }
                }
            });
        Self { k, n, panels }
    }

    /// Packs a 2-D f32 tensor `[in, out]`.
    pub(crate) fn from_tensor(w: &Tensor) -> candle_core::Result<Self> {
        let (k, n) = w.dims2()?;
        let data = w.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self::pack(&data, k, n))
    }

    /// Packs a 2-D f32 tensor `[out, in]` (PyTorch's layout).
    pub(crate) fn from_tensor_out_in(w: &Tensor) -> candle_core::Result<Self> {
        let (n, k) = w.dims2()?;
        let data = w.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self::pack_out_in(&data, n, k))
    }

    /// Input features.
    #[cfg(test)]
    pub(crate) fn in_features(&self) -> usize {
        self.k
    }

    /// Output features.
    #[cfg(test)]
    pub(crate) fn out_features(&self) -> usize {
        self.n
    }

    /// `out[m, n] = x[m, k] · W`, both row-major and contiguous.
    pub(crate) fn matmul_into(&self, x: &[f32], m: usize, out: &mut [f32]) {
        debug_assert_eq!(x.len(), m * self.k);
        debug_assert_eq!(out.len(), m * self.n);
        let num_panels = self.n.div_ceil(NR);
        if m == 0 || num_panels == 0 {
            return;
        }
        let step = rows_per_tile();
        // A single row is its own k-major tile: no copy on batch-1 decode's path.
        let xt = if m == 1 {
            std::borrow::Cow::Borrowed(x)
        } else {
            std::borrow::Cow::Owned(interleave_rows(x, m, self.k, step))
        };
        let out_ptr = SharedOut(out.as_mut_ptr());
        let threads = rayon::current_num_threads().max(1);
        // A few tasks per thread balance the load without splitting panels too finely.
        let per_task = num_panels.div_ceil(threads * 4).max(1);
        let tasks = num_panels.div_ceil(per_task);
        (0..tasks).into_par_iter().for_each(|t| {
            let first = t * per_task;
            let last = (first + per_task).min(num_panels);
            for p in first..last {
                // SAFETY: panel `p` writes only columns `p*NR .. p*NR + NR` (clipped to n) of
                // each output row; tasks own disjoint panel ranges, so writes never overlap,
                // and `out` outlives the parallel loop.
                unsafe { self.panel_product(&xt, m, step, p, &out_ptr) };
            }
        });
    }

    /// All rows of the interleaved input `xt` (see [`interleave_rows`]) times panel `p`,
    /// written into `out`'s columns of that panel.
    ///
    /// # Safety
    /// `out` points to `m * self.n` floats, and no other thread writes this panel's columns.
    unsafe fn panel_product(&self, xt: &[f32], m: usize, step: usize, p: usize, out: &SharedOut) {
        let k = self.k;
        let panel = &self.panels[p * k * NR..(p + 1) * k * NR];
        let j0 = p * NR;
        let width = NR.min(self.n - j0);
        let mut row = 0;
        while row < m {
            let rows = step.min(m - row);
            let mut tile = [[0f32; NR]; MR_MAX];
            tile_product(&xt[row * k..(row + rows) * k], rows, k, panel, &mut tile);
            for (r, acc) in tile.iter().take(rows).enumerate() {
                let dst = out.0.add((row + r) * self.n + j0);
                if width == NR {
                    // A fixed-size copy: two vector moves, not a call to memmove.
                    dst.cast::<[f32; NR]>().write_unaligned(*acc);
                } else {
                    std::ptr::copy_nonoverlapping(acc.as_ptr(), dst, width);
                }
            }
            row += rows;
        }
    }
}

/// `x` (`[m, k]`, row-major) cut into tiles of `step` rows, each stored k-major: the tile of
/// rows `t*step ..` (`rows` of them, the last tile may be shorter) holds `x[t*step + r][i]` at
/// `t*step*k + i*rows + r`. A kernel's `rows` broadcasts for input element `i` then read one
/// run of adjacent floats (one cache line for 16 rows) at a fixed offset from one pointer,
/// instead of `rows` rows a whole input width apart (an address computation each, and a
/// stream per row through the caches).
fn interleave_rows(x: &[f32], m: usize, k: usize, step: usize) -> Vec<f32> {
    let mut xt = vec![0f32; m * k];
    for (t, tile) in xt.chunks_mut(step * k).enumerate() {
        let rows = tile.len() / k.max(1);
        let src = &x[t * step * k..(t * step + rows) * k];
        for (r, xr) in src.chunks_exact(k).enumerate() {
            for (i, &v) in xr.iter().enumerate() {
                tile[i * rows + r] = v;
            }
        }
    }
    xt
}

/// The output pointer shared by the panel tasks (each writes its own columns).
struct SharedOut(*mut f32);
// SAFETY: see `matmul_into`: tasks write disjoint columns of the buffer.
unsafe impl Sync for SharedOut {}

/// `tile[r][j] = Σ_i xt[i*rows + r] * panel[i*NR + j]` for `r < rows` (`rows <=
/// rows_per_tile()`; `xt` one k-major tile of [`interleave_rows`]).
fn tile_product(x: &[f32], rows: usize, k: usize, panel: &[f32], tile: &mut [[f32; NR]; MR_MAX]) {
    #[cfg(target_arch = "x86_64")]
    {
        if rows <= MR_512 && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above); x has rows*k floats and
            // the panel k*NR, so every read is in bounds.
            unsafe { avx512::tile_product(x, rows, k, panel, tile) };
            return;
        }
        if rows <= MR
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above); slices are in bounds
            // by construction (x has rows*k floats, panel k*NR).
            unsafe { avx2::tile_product(x, rows, k, panel, tile) };
            return;
        }
    }
    tile_product_portable(x, rows, k, panel, tile);
}

/// Plain Rust version of [`tile_product`] (vectorised by the compiler where it can).
fn tile_product_portable(
    x: &[f32],
    rows: usize,
    k: usize,
    panel: &[f32],
    tile: &mut [[f32; NR]; MR_MAX],
) {
    debug_assert!(x.len() >= rows * k);
    for (xs, w) in x.chunks_exact(rows).zip(panel.chunks_exact(NR)).take(k) {
        for (acc, xi) in tile.iter_mut().zip(xs) {
            for j in 0..NR {
                acc[j] += xi * w[j];
            }
        }
    }
}

/// `match rows { 1 => f::<1>(args), .., _ => f::<LAST>(args) }`: one monomorphised tile
/// kernel per row count, so each keeps its accumulators in registers.
#[cfg(target_arch = "x86_64")]
macro_rules! rows_dispatch {
    ($rows:expr, $f:ident $args:tt, [$($r:literal),*], $last:literal) => {
        match $rows {
            $($r => $f::<$r> $args,)*
            _ => $f::<$last> $args,
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        _mm256_storeu_ps, _mm_prefetch, _MM_HINT_T0,
    };

    use super::{MR_MAX, NR, PREFETCH_AHEAD};

    /// AVX2/FMA [`super::tile_product`]: dispatches on the row count so each case keeps its
    /// accumulators in registers.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_product(
        x: &[f32],
        rows: usize,
        k: usize,
        panel: &[f32],
        tile: &mut [[f32; NR]; MR_MAX],
    ) {
        rows_dispatch!(rows, tile_rows(x, k, panel, tile), [1, 2, 3, 4, 5], 6)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile_rows<const R: usize>(
        x: &[f32],
        k: usize,
        panel: &[f32],
        tile: &mut [[f32; NR]; MR_MAX],
    ) {
        debug_assert!(x.len() >= R * k && panel.len() >= k * NR);
        let mut lo: [__m256; R] = [_mm256_setzero_ps(); R];
        let mut hi: [__m256; R] = [_mm256_setzero_ps(); R];
        let xp = x.as_ptr();
        let mut wp = panel.as_ptr();
        for i in 0..k {
            _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(PREFETCH_AHEAD * NR) as *const i8);
            let w0 = _mm256_loadu_ps(wp);
            let w1 = _mm256_loadu_ps(wp.add(8));
            for r in 0..R {
                let a = _mm256_broadcast_ss(&*xp.add(i * R + r));
                lo[r] = _mm256_fmadd_ps(a, w0, lo[r]);
                hi[r] = _mm256_fmadd_ps(a, w1, hi[r]);
            }
            wp = wp.add(NR);
        }
        for r in 0..R {
            _mm256_storeu_ps(tile[r].as_mut_ptr(), lo[r]);
            _mm256_storeu_ps(tile[r].as_mut_ptr().add(8), hi[r]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps, _mm_prefetch, _MM_HINT_T0,
    };

    use super::{MR_MAX, NR, PREFETCH_AHEAD};

    /// AVX-512 [`super::tile_product`] for up to 16 rows: one 16-lane accumulator per row, the
    /// panel row loaded once per input element for all of them.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_product(
        x: &[f32],
        rows: usize,
        k: usize,
        panel: &[f32],
        tile: &mut [[f32; NR]; MR_MAX],
    ) {
        rows_dispatch!(
            rows,
            tile_rows(x, k, panel, tile),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
            16
        )
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile_rows<const R: usize>(
        x: &[f32],
        k: usize,
        panel: &[f32],
        tile: &mut [[f32; NR]; MR_MAX],
    ) {
        debug_assert!(x.len() >= R * k && panel.len() >= k * NR);
        let mut acc: [__m512; R] = [_mm512_setzero_ps(); R];
        let xp = x.as_ptr();
        let mut wp = panel.as_ptr();
        for i in 0..k {
            // The weight stream comes from memory (or a shared L3) once per call; the hardware
            // prefetchers alone leave a 16-row tile waiting on it (measured: 1.5-2x slower).
            _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(PREFETCH_AHEAD * NR) as *const i8);
            let w = _mm512_loadu_ps(wp);
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(_mm512_set1_ps(*xp.add(i * R + r)), w, *a);
            }
            wp = wp.add(NR);
        }
        for (r, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(tile[r].as_mut_ptr(), *a);
        }
    }
}

/// `x · W` as a candle op over a contiguous or offset f32 input `[.., in]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackedMatmul<'a>(pub(crate) &'a PackedWeight);

impl CustomOp1 for PackedMatmul<'_> {
    fn name(&self) -> &'static str {
        "packed-matmul-f32"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let w = self.0;
        let dims = layout.shape().dims();
        let (&last, lead) = dims
            .split_last()
            .ok_or_else(|| candle_core::Error::Msg("packed matmul of a scalar".into()))?;
        if last != w.k {
            return Err(candle_core::Error::ShapeMismatchBinaryOp {
                lhs: layout.shape().clone(),
                rhs: Shape::from((w.k, w.n)),
                op: "packed-matmul",
            });
        }
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("packed matmul needs a contiguous input".into())
        })?;
        let x = match storage {
            CpuStorage::F32(v) => &v[start..end],
            other => {
                return Err(candle_core::Error::UnsupportedDTypeForOp(
                    other.dtype(),
                    "packed-matmul",
                ))
            }
        };
        let m: usize = lead.iter().product();
        let mut out = vec![0f32; m * w.n];
        w.matmul_into(x, m, &mut out);
        let mut out_dims = lead.to_vec();
        out_dims.push(w.n);
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    fn check(m: usize, k: usize, n: usize) {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (m, k), &dev).unwrap();
        let w = Tensor::randn(0f32, 1., (k, n), &dev).unwrap();
        let want = x.matmul(&w).unwrap();
        let packed = PackedWeight::from_tensor(&w).unwrap();
        let got = x.apply_op1_no_bwd(&PackedMatmul(&packed)).unwrap();
        assert_eq!(got.dims(), want.dims());
        let err = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // Sums of k products of N(0,1) values: |value| ~ sqrt(k); f32 order differences stay
        // far below 1e-3 of that.
        assert!(
            err < 1e-4 * (k as f32).sqrt() * 10.0,
            "m={m} k={k} n={n}: max abs error {err}"
        );
    }

    #[test]
    fn matches_candle_matmul_at_odd_shapes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 64, 16),
            (2, 37, 15),
            (5, 64, 33),
            (6, 128, 64),
            (7, 100, 17),
            (16, 512, 1376),
            (13, 48, 250),
            (40, 96, 80),
        ] {
            check(m, k, n);
        }
    }

    #[test]
    fn out_in_packing_matches_transposed_matmul() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (9, 40), &dev).unwrap();
        let w = Tensor::randn(0f32, 1., (35, 40), &dev).unwrap();
        let packed = PackedWeight::from_tensor_out_in(&w).unwrap();
        assert_eq!((packed.in_features(), packed.out_features()), (40, 35));
        let got = x.apply_op1_no_bwd(&PackedMatmul(&packed)).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let err = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(err < 1e-4, "max abs error {err}");
    }

    /// Every kernel this CPU has (AVX-512 up to 16 rows, AVX2 up to 6, the dispatcher up to
    /// its tile height) against the portable one.
    #[test]
    fn portable_and_simd_tiles_agree() {
        let k = 19;
        let x: Vec<f32> = (0..MR_MAX * k)
            .map(|i| ((i * 7 % 13) as f32) - 6.0)
            .collect();
        let panel: Vec<f32> = (0..k * NR).map(|i| ((i * 5 % 11) as f32) * 0.5).collect();
        type Kernel = fn(&[f32], usize, usize, &[f32], &mut [[f32; NR]; MR_MAX]);
        let mut kernels: Vec<(&str, usize, Kernel)> =
            vec![("dispatched", rows_per_tile(), tile_product)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push(("avx512", MR_512, |x, rows, k, p, t| unsafe {
                    avx512::tile_product(x, rows, k, p, t)
                }));
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                kernels.push(("avx2", MR, |x, rows, k, p, t| unsafe {
                    avx2::tile_product(x, rows, k, p, t)
                }));
            }
        }
        for (name, max_rows, kernel) in kernels {
            for rows in 1..=max_rows {
                let mut a = [[0f32; NR]; MR_MAX];
                let mut b = [[0f32; NR]; MR_MAX];
                kernel(&x, rows, k, &panel, &mut a);
                tile_product_portable(&x, rows, k, &panel, &mut b);
                for r in 0..rows {
                    for j in 0..NR {
                        assert!(
                            (a[r][j] - b[r][j]).abs() < 1e-3,
                            "{name}: rows {rows} r {r} j {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rank3_input_and_offset_view() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (3, 4, 24), &dev).unwrap();
        let w = Tensor::randn(0f32, 1., (24, 20), &dev).unwrap();
        let packed = PackedWeight::from_tensor(&w).unwrap();
        let view = x.narrow(0, 1, 2).unwrap();
        let got = view.apply_op1_no_bwd(&PackedMatmul(&packed)).unwrap();
        let want = view.broadcast_matmul(&w).unwrap();
        let err = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(err < 1e-4, "max abs error {err}");
    }

    #[test]
    fn wrong_input_width_is_an_error() {
        let w = Tensor::zeros((8, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let packed = PackedWeight::from_tensor(&w).unwrap();
        let x = Tensor::zeros((2, 7), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(x.apply_op1_no_bwd(&PackedMatmul(&packed)).is_err());
    }
}
