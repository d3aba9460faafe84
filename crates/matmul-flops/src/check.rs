//! Correctness before timing: a GEMM's result rows against an f64 reference.
//!
//! The checker samples rows of C (the first, the last and random ones in between), computes
//! them in f64 from the exact inputs the device received ([`HostOperands`]), and compares with
//! the normwise relative error `‖C − C_ref‖_F / ‖C_ref‖_F` over those rows. Each dtype has a
//! tolerance ([`GemmDtype::tolerance`]); a result over it, or any NaN/inf, is an error
//! ([`MatmulError::CheckFailed`]), never a number. Cost: `rows · N · K` f64 multiply-adds,
//! spread over all cores (8 rows of a 16384³ GEMM: 2·10⁹, well under a second on 16 cores).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{MatmulError, Result};
use crate::operands::HostOperands;

/// Rows of C checked per GEMM when the caller does not say.
pub const DEFAULT_CHECK_ROWS: usize = 8;

/// Distinct row indices in `0..m`, sorted: always row 0 and row `m-1`, then random rows, at
/// most `count` (and at least 1) of them.
pub fn sample_rows(m: usize, count: usize, seed: u64) -> Vec<usize> {
    if m == 0 {
        return Vec::new();
    }
    let count = count.clamp(1, m);
    let mut rows = vec![0];
    if count > 1 {
        rows.push(m - 1);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    while rows.len() < count {
        let r = rng.random_range(0..m);
        if !rows.contains(&r) {
            rows.push(r);
        }
    }
    rows.sort_unstable();
    rows
}

/// The f64 reference values of some rows of C.
#[derive(Debug, Clone)]
pub struct ReferenceRows {
    /// Which rows of C (indices into `0..M`).
    pub rows: Vec<usize>,
    /// `values[r]` is row `rows[r]` of C, `N` values, scales applied.
    pub values: Vec<Vec<f64>>,
}

impl ReferenceRows {
    /// Computes `rows` of `C = s_a·s_b·(A·B)` in f64, on all cores.
    ///
    /// # Errors
    /// [`MatmulError::InvalidSize`] if a row index is not below M.
    pub fn compute(ops: &HostOperands, rows: &[usize]) -> Result<Self> {
        let GemmDims { m, n } = GemmDims::of(ops);
        if let Some(&bad) = rows.iter().find(|&&r| r >= m) {
            return Err(MatmulError::InvalidSize(format!(
                "check row {bad} is outside a GEMM with {m} rows"
            )));
        }
        let scale = f64::from(ops.a_scale) * f64::from(ops.b_scale);
        let mut values: Vec<Vec<f64>> = rows.iter().map(|_| vec![0f64; n]).collect();
        // Work items: (row slot, column block). Columns in blocks so one row uses all cores.
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let block = n.div_ceil(threads).clamp(1, 4096);
        let mut items: Vec<(usize, usize, &mut [f64])> = Vec::new();
        for (slot, row_vals) in values.iter_mut().enumerate() {
            for (b, cols) in row_vals.chunks_mut(block).enumerate() {
                items.push((rows[slot], b * block, cols));
            }
        }
        let per_thread = items.len().div_ceil(threads).max(1);
        let mut groups: Vec<Vec<(usize, usize, &mut [f64])>> = Vec::new();
        let mut it = items.into_iter().peekable();
        while it.peek().is_some() {
            groups.push(it.by_ref().take(per_thread).collect());
        }
        std::thread::scope(|scope| {
            for group in groups {
                scope.spawn(move || {
                    for (row, first_col, cols) in group {
                        let a = ops.a_row(row);
                        for (offset, out) in cols.iter_mut().enumerate() {
                            *out = scale * dot_f64(a, ops.b_col(first_col + offset));
                        }
                    }
                });
            }
        });
        Ok(Self {
            rows: rows.to_vec(),
            values,
        })
    }
}

struct GemmDims {
    m: usize,
    n: usize,
}

impl GemmDims {
    fn of(ops: &HostOperands) -> Self {
        Self {
            m: ops.shape.m,
            n: ops.shape.n,
        }
    }
}

/// An f64 dot product with four partial sums (exact for the small integers of int8).
fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f64; 4];
    let chunks = a.len() / 4 * 4;
    for i in (0..chunks).step_by(4) {
        for l in 0..4 {
            acc[l] += f64::from(a[i + l]) * f64::from(b[i + l]);
        }
    }
    let mut tail = 0f64;
    for i in chunks..a.len() {
        tail += f64::from(a[i]) * f64::from(b[i]);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// What a correctness check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// How many rows of C were compared.
    pub rows_checked: usize,
    /// How many elements were compared.
    pub elements_checked: usize,
    /// Normwise relative error over the compared elements.
    pub rel_error: f64,
    /// Largest absolute difference of one element.
    pub max_abs_error: f64,
    /// The dtype's tolerance for `rel_error`.
    pub tolerance: f64,
}

/// Compares `got` (the device's values of `reference.rows`, same order) with the reference.
///
/// `context` names what ran (e.g. the cuBLASLt algorithm) for the error message.
///
/// # Errors
/// [`MatmulError::CheckFailed`] if a value is NaN/inf, the row count or a row length is wrong,
/// or the relative error exceeds the dtype's tolerance.
pub fn check_rows(
    ops: &HostOperands,
    reference: &ReferenceRows,
    got: &[Vec<f64>],
    context: &str,
) -> Result<CheckReport> {
    let tolerance = ops.dtype.tolerance();
    let fail = |rel_error: f64, detail: String| MatmulError::CheckFailed {
        dtype: ops.dtype,
        shape: ops.shape.to_string(),
        rel_error,
        tolerance,
        detail: format!("{detail}; {context}"),
    };
    if got.len() != reference.values.len() {
        return Err(fail(
            f64::NAN,
            format!(
                "{} rows came back, {} expected",
                got.len(),
                reference.values.len()
            ),
        ));
    }
    let (mut num, mut den, mut max_abs) = (0f64, 0f64, 0f64);
    let mut worst = (0usize, 0usize, 0f64, 0f64);
    let mut elements = 0usize;
    for ((row, want), have) in reference.rows.iter().zip(&reference.values).zip(got) {
        if have.len() != want.len() {
            return Err(fail(
                f64::NAN,
                format!(
                    "row {row} has {} values, {} expected",
                    have.len(),
                    want.len()
                ),
            ));
        }
        for (col, (&w, &h)) in want.iter().zip(have).enumerate() {
            if !h.is_finite() {
                return Err(fail(f64::NAN, format!("C[{row}][{col}] = {h}")));
            }
            let d = (h - w).abs();
            if d > max_abs {
                max_abs = d;
                worst = (*row, col, h, w);
            }
            num += d * d;
            den += w * w;
            elements += 1;
        }
    }
    let rel_error = if den > 0.0 {
        (num / den).sqrt()
    } else if num == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    if rel_error > tolerance {
        let (r, c, h, w) = worst;
        return Err(fail(
            rel_error,
            format!("worst C[{r}][{c}] = {h} vs reference {w}"),
        ));
    }
    Ok(CheckReport {
        rows_checked: reference.rows.len(),
        elements_checked: elements,
        rel_error,
        max_abs_error: max_abs,
        tolerance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::GemmDtype;
    use crate::shape::GemmShape;

    /// C computed the slow, obvious way in f64 (independent of `ReferenceRows`).
    fn naive_rows(ops: &HostOperands, rows: &[usize]) -> Vec<Vec<f64>> {
        let GemmShape { n, k, .. } = ops.shape;
        rows.iter()
            .map(|&i| {
                (0..n)
                    .map(|j| {
                        let mut s = 0f64;
                        for p in 0..k {
                            s += f64::from(ops.a[i * k + p]) * f64::from(ops.b_t[j * k + p]);
                        }
                        s * f64::from(ops.a_scale) * f64::from(ops.b_scale)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn sampled_rows_are_distinct_sorted_and_include_the_ends() {
        let r = sample_rows(100, 8, 1);
        assert_eq!(r.len(), 8);
        assert_eq!(r[0], 0);
        assert_eq!(r[7], 99);
        assert!(r.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_rows(1, 8, 1), vec![0]);
        assert_eq!(sample_rows(3, 8, 1), vec![0, 1, 2]);
    }

    #[test]
    fn reference_matches_the_naive_product() {
        let ops = HostOperands::random(GemmDtype::Fp8E4m3, GemmShape::new(9, 300, 77).unwrap(), 4)
            .unwrap();
        let rows = [0, 4, 8];
        let r = ReferenceRows::compute(&ops, &rows).unwrap();
        let naive = naive_rows(&ops, &rows);
        for (a, b) in r.values.iter().flatten().zip(naive.iter().flatten()) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0));
        }
        assert!(ReferenceRows::compute(&ops, &[9]).is_err());
    }

    #[test]
    fn exact_result_passes_with_zero_error() {
        let ops =
            HostOperands::random(GemmDtype::Int8, GemmShape::new(5, 6, 40).unwrap(), 2).unwrap();
        let rows = sample_rows(5, 8, 0);
        let r = ReferenceRows::compute(&ops, &rows).unwrap();
        let rep = check_rows(&ops, &r, &naive_rows(&ops, &rows), "naive").unwrap();
        assert_eq!(rep.rel_error, 0.0);
        assert_eq!(rep.elements_checked, 30);
    }

    #[test]
    fn a_deliberately_wrong_result_is_rejected() {
        let ops =
            HostOperands::random(GemmDtype::Fp32, GemmShape::new(16, 32, 64).unwrap(), 5).unwrap();
        let rows = sample_rows(16, 4, 0);
        let r = ReferenceRows::compute(&ops, &rows).unwrap();
        // one element off by 50% of the row's typical magnitude
        let mut wrong = r.values.clone();
        wrong[1][3] += 4.0;
        let e = check_rows(&ops, &r, &wrong, "tampered");
        assert!(matches!(e, Err(MatmulError::CheckFailed { .. })), "{e:?}");
        // all zeros (a kernel that did nothing)
        let zeros: Vec<Vec<f64>> = r.values.iter().map(|v| vec![0.0; v.len()]).collect();
        assert!(check_rows(&ops, &r, &zeros, "zeros").is_err());
        // A·Bᵀ mixed up with A·B: rows of the wrong product
        let mut swapped = r.values.clone();
        swapped.reverse();
        assert!(check_rows(&ops, &r, &swapped, "swapped").is_err());
    }

    #[test]
    fn nan_and_wrong_lengths_are_rejected() {
        let ops =
            HostOperands::random(GemmDtype::Bf16, GemmShape::new(4, 8, 16).unwrap(), 6).unwrap();
        let rows = sample_rows(4, 2, 0);
        let r = ReferenceRows::compute(&ops, &rows).unwrap();
        let mut nan = r.values.clone();
        nan[0][0] = f64::NAN;
        assert!(check_rows(&ops, &r, &nan, "nan").is_err());
        assert!(check_rows(&ops, &r, &r.values[..1], "short").is_err());
        let mut short_row = r.values.clone();
        short_row[0].pop();
        assert!(check_rows(&ops, &r, &short_row, "short row").is_err());
    }

    #[test]
    fn small_rounding_errors_pass_within_tolerance() {
        let ops =
            HostOperands::random(GemmDtype::Bf16, GemmShape::new(8, 64, 256).unwrap(), 7).unwrap();
        let rows = sample_rows(8, 8, 0);
        let r = ReferenceRows::compute(&ops, &rows).unwrap();
        // round each result to bf16, as a bf16-output GEMM does
        let rounded: Vec<Vec<f64>> = r
            .values
            .iter()
            .map(|row| {
                row.iter()
                    .map(|&v| f64::from(half::bf16::from_f64(v).to_f32()))
                    .collect()
            })
            .collect();
        let rep = check_rows(&ops, &r, &rounded, "bf16 rounding").unwrap();
        assert!(rep.rel_error > 0.0 && rep.rel_error < 4e-3, "{rep:?}");
    }
}
