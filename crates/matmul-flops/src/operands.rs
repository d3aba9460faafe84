//! Random GEMM inputs on the host, already rounded to the dtype the device will store.
//!
//! Layout (the one every backend and the checker share): `a` is `M×K` row-major and `b_t` is
//! B transposed, `N×K` row-major, so both operands are contiguous along K. This is cuBLAS's
//! "TN" layout, the one FP8 and INT8 tensor-core GEMMs require, and it makes every reference
//! dot product a pair of contiguous slices.
//!
//! Values are drawn from N(0, 1) (never zeros), then rounded to the dtype, so the f64
//! reference sees exactly what the device sees. FP8 uses a per-tensor scale
//! `s = amax / 448`: the stored codes are `round(x / s)` and the GEMM is
//! `C = s_a · s_b · (A_q · B_q)`. INT8 inputs are uniform integers in `-127..=127`.
//! Generation runs on all cores in fixed chunks, so a seed gives the same matrices on any host.

use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::dtype::GemmDtype;
use crate::error::{MatmulError, Result};
use crate::fp8;
use crate::shape::GemmShape;

/// Elements generated per independently seeded chunk.
const CHUNK: usize = 1 << 18;

/// The largest K an int8 GEMM may have before `K · 127²` overflows its i32 accumulator.
pub const INT8_MAX_K: usize = (i32::MAX as usize) / (127 * 127);

/// The inputs of one GEMM, on the host, rounded to the dtype.
#[derive(Debug, Clone)]
pub struct HostOperands {
    /// The dtype the values are rounded to.
    pub dtype: GemmDtype,
    /// The GEMM dimensions.
    pub shape: GemmShape,
    /// A, `M×K` row-major, as stored on the device (before `a_scale`).
    pub a: Vec<f32>,
    /// B transposed, `N×K` row-major, as stored on the device (before `b_scale`).
    pub b_t: Vec<f32>,
    /// Per-tensor scale of A (FP8 only; 1 otherwise).
    pub a_scale: f32,
    /// Per-tensor scale of B (FP8 only; 1 otherwise).
    pub b_scale: f32,
}

impl HostOperands {
    /// Bytes the host needs to hold the f32 copies of A and B for `shape`.
    pub fn host_bytes(shape: &GemmShape) -> u64 {
        shape
            .a_elements()
            .saturating_add(shape.b_elements())
            .saturating_mul(4)
    }

    /// Fresh random inputs for `dtype` and `shape` from `seed`.
    ///
    /// # Errors
    /// [`MatmulError::InvalidSize`] if an int8 GEMM's K could overflow the i32 accumulator,
    /// or a matrix has more elements than this host can address.
    pub fn random(dtype: GemmDtype, shape: GemmShape, seed: u64) -> Result<Self> {
        if dtype == GemmDtype::Int8 && shape.k > INT8_MAX_K {
            return Err(MatmulError::InvalidSize(format!(
                "int8 GEMM with K = {} could overflow its i32 accumulator (K must be <= {INT8_MAX_K})",
                shape.k
            )));
        }
        let a_len = checked_len(shape.a_elements())?;
        let b_len = checked_len(shape.b_elements())?;
        let mut a = random_values(dtype, a_len, seed);
        let mut b_t = random_values(dtype, b_len, seed ^ 0x9E37_79B9_7F4A_7C15);
        let (mut a_scale, mut b_scale) = (1.0, 1.0);
        if dtype == GemmDtype::Fp8E4m3 {
            a_scale = quantize_fp8(&mut a);
            b_scale = quantize_fp8(&mut b_t);
        }
        Ok(Self {
            dtype,
            shape,
            a,
            b_t,
            a_scale,
            b_scale,
        })
    }

    /// Row `i` of A (K values).
    pub fn a_row(&self, i: usize) -> &[f32] {
        let k = self.shape.k;
        &self.a[i * k..(i + 1) * k]
    }

    /// Column `j` of B (K values; row `j` of the stored `b_t`).
    pub fn b_col(&self, j: usize) -> &[f32] {
        let k = self.shape.k;
        &self.b_t[j * k..(j + 1) * k]
    }
}

fn checked_len(elements: u64) -> Result<usize> {
    usize::try_from(elements)
        .ok()
        .filter(|&n| n <= isize::MAX as usize / 4)
        .ok_or_else(|| {
            MatmulError::InvalidSize(format!(
                "a matrix of {elements} elements is more than this host can address"
            ))
        })
}

/// Draws `len` values for `dtype` in parallel, in chunks seeded from `seed` and the chunk index.
fn random_values(dtype: GemmDtype, len: usize, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; len];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<(usize, &mut [f32])> = out.chunks_mut(CHUNK).enumerate().collect();
    let per_thread = chunks.len().div_ceil(threads.max(1)).max(1);
    let mut groups: Vec<Vec<(usize, &mut [f32])>> = Vec::new();
    let mut it = chunks.into_iter().peekable();
    while it.peek().is_some() {
        groups.push(it.by_ref().take(per_thread).collect());
    }
    std::thread::scope(|scope| {
        for group in groups {
            scope.spawn(move || {
                for (index, chunk) in group {
                    let mut rng = StdRng::seed_from_u64(
                        seed.wrapping_add((index as u64).wrapping_mul(0xA24B_AED4_963E_E407)),
                    );
                    fill_chunk(dtype, chunk, &mut rng);
                }
            });
        }
    });
    out
}

fn fill_chunk(dtype: GemmDtype, chunk: &mut [f32], rng: &mut StdRng) {
    for v in chunk.iter_mut() {
        *v = match dtype {
            GemmDtype::Int8 => f32::from(rng.random_range(-127i8..=127)),
            GemmDtype::Fp32 | GemmDtype::Tf32 | GemmDtype::Fp8E4m3 => rng.sample(StandardNormal),
            GemmDtype::Fp16 => f16::from_f32(rng.sample(StandardNormal)).to_f32(),
            GemmDtype::Bf16 => bf16::from_f32(rng.sample(StandardNormal)).to_f32(),
        };
    }
}

/// Replaces `values` by their FP8 codes' values under a per-tensor scale `amax / 448`, and
/// returns that scale.
fn quantize_fp8(values: &mut [f32]) -> f32 {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if amax > 0.0 { amax / 448.0 } else { 1.0 };
    for v in values.iter_mut() {
        *v = fp8::round_to_e4m3(*v / scale);
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_rounded_to_the_dtype_and_not_zero() {
        let shape = GemmShape::new(7, 5, 33).unwrap();
        for dtype in GemmDtype::ALL {
            let ops = HostOperands::random(dtype, shape, 1).unwrap();
            assert_eq!(ops.a.len(), 7 * 33);
            assert_eq!(ops.b_t.len(), 5 * 33);
            assert!(ops.a.iter().any(|&v| v != 0.0), "{dtype}: all zeros");
            for &v in ops.a.iter().chain(&ops.b_t) {
                let rounded = match dtype {
                    GemmDtype::Fp16 => f16::from_f32(v).to_f32(),
                    GemmDtype::Bf16 => bf16::from_f32(v).to_f32(),
                    GemmDtype::Fp8E4m3 => fp8::round_to_e4m3(v),
                    GemmDtype::Int8 => v.round().clamp(-127.0, 127.0),
                    _ => v,
                };
                assert_eq!(rounded, v, "{dtype}: {v} not representable");
            }
        }
    }

    #[test]
    fn fp8_uses_the_full_range_under_its_scale() {
        let shape = GemmShape::new(64, 64, 64).unwrap();
        let ops = HostOperands::random(GemmDtype::Fp8E4m3, shape, 3).unwrap();
        let amax = ops.a.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(amax, 448.0);
        assert!(ops.a_scale > 0.0 && ops.a_scale < 0.1);
    }

    #[test]
    fn same_seed_same_values_different_seed_different_values() {
        let shape = GemmShape::new(300, 700, 1000).unwrap(); // several chunks
        let x = HostOperands::random(GemmDtype::Fp32, shape, 9).unwrap();
        let y = HostOperands::random(GemmDtype::Fp32, shape, 9).unwrap();
        let z = HostOperands::random(GemmDtype::Fp32, shape, 10).unwrap();
        assert_eq!(x.a, y.a);
        assert_ne!(x.a, z.a);
        assert_ne!(x.a, x.b_t[..x.a.len()].to_vec());
    }

    #[test]
    fn int8_k_that_could_overflow_is_rejected() {
        let shape = GemmShape::new(1, 1, INT8_MAX_K + 1).unwrap();
        assert!(HostOperands::random(GemmDtype::Int8, shape, 0).is_err());
    }
}
