//! GEMM shapes: `C[M×N] = A[M×K] · B[K×N]`, square sweeps, and size-list parsing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{MatmulError, Result};

/// The largest GEMM dimension we accept (cuBLAS takes 32-bit dimensions).
pub const MAX_DIM: usize = i32::MAX as usize;

/// The square sizes a GPU sweep runs when none are given.
pub const DEFAULT_GPU_SQUARE_SIZES: [usize; 5] = [1024, 2048, 4096, 8192, 16384];

/// The square sizes a CPU sweep runs when none are given (a 16384³ GEMM takes minutes on a CPU).
pub const DEFAULT_CPU_SQUARE_SIZES: [usize; 3] = [256, 512, 1024];

/// The dimensions of one GEMM, `C[M×N] = A[M×K] · B[K×N]`, in the row-major terms of a
/// linear layer: `M` tokens, `K` input features, `N` output features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GemmShape {
    /// Rows of A and C (tokens in a linear layer).
    pub m: usize,
    /// Columns of B and C (output features).
    pub n: usize,
    /// The reduction dimension (input features).
    pub k: usize,
}

impl GemmShape {
    /// A shape, checked: every dimension in `1..=MAX_DIM`.
    ///
    /// # Errors
    /// [`MatmulError::InvalidSize`] if a dimension is 0 or larger than [`MAX_DIM`].
    pub fn new(m: usize, n: usize, k: usize) -> Result<Self> {
        for (name, v) in [("M", m), ("N", n), ("K", k)] {
            if v == 0 {
                return Err(MatmulError::InvalidSize(format!(
                    "GEMM dimension {name} is 0; sizes must be at least 1"
                )));
            }
            if v > MAX_DIM {
                return Err(MatmulError::InvalidSize(format!(
                    "GEMM dimension {name} = {v} is larger than {MAX_DIM}"
                )));
            }
        }
        Ok(Self { m, n, k })
    }

    /// The square shape `n×n×n`.
    ///
    /// # Errors
    /// As [`GemmShape::new`].
    pub fn square(n: usize) -> Result<Self> {
        Self::new(n, n, n)
    }

    /// Floating-point operations of one GEMM: `2·M·N·K` (one multiply and one add per term).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// Elements of A (`M·K`), saturating instead of overflowing.
    pub fn a_elements(&self) -> u64 {
        (self.m as u64).saturating_mul(self.k as u64)
    }

    /// Elements of B (`K·N`), saturating instead of overflowing.
    pub fn b_elements(&self) -> u64 {
        (self.k as u64).saturating_mul(self.n as u64)
    }

    /// Elements of C (`M·N`), saturating instead of overflowing.
    pub fn c_elements(&self) -> u64 {
        (self.m as u64).saturating_mul(self.n as u64)
    }
}

impl fmt::Display for GemmShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.m, self.n, self.k)
    }
}

/// A shape with a name saying where it comes from (`square`, `llama-3-8b qkv`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GemmProblem {
    /// Where the shape comes from: `square`, or `<model> <layer>` for a model's layer.
    pub label: String,
    /// Tokens in flight for a model layer (the `M` of the GEMM); `None` for a square sweep.
    pub tokens: Option<usize>,
    /// The GEMM dimensions.
    pub shape: GemmShape,
}

impl GemmProblem {
    /// The problems of a square sweep over `sizes`.
    ///
    /// # Errors
    /// [`MatmulError::InvalidSize`] if a size is 0 or too large.
    pub fn square_sweep(sizes: &[usize]) -> Result<Vec<GemmProblem>> {
        sizes
            .iter()
            .map(|&n| {
                Ok(GemmProblem {
                    label: "square".to_string(),
                    tokens: None,
                    shape: GemmShape::square(n)?,
                })
            })
            .collect()
    }
}

/// Parses a comma-separated list of positive sizes (`"512,1024"`).
///
/// # Errors
/// [`MatmulError::InvalidSize`] for an empty list, a part that is not a non-negative integer
/// (e.g. `-5`), a 0, or a size above [`MAX_DIM`].
pub fn parse_size_list(list: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim) {
        let v: usize = part
            .parse()
            .map_err(|_| MatmulError::InvalidSize(format!("'{part}' is not a positive integer")))?;
        if v == 0 {
            return Err(MatmulError::InvalidSize(
                "a size of 0 makes no GEMM; sizes must be at least 1".to_string(),
            ));
        }
        if v > MAX_DIM {
            return Err(MatmulError::InvalidSize(format!(
                "size {v} is larger than {MAX_DIM}"
            )));
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_are_two_mnk() {
        let s = GemmShape::new(2, 3, 4).unwrap();
        assert_eq!(s.flops(), 48.0);
        assert_eq!(s.to_string(), "2x3x4");
        assert_eq!(
            GemmShape::square(8192).unwrap().flops(),
            2.0 * 8192f64.powi(3)
        );
    }

    #[test]
    fn zero_and_huge_dimensions_are_rejected() {
        assert!(GemmShape::new(0, 1, 1).is_err());
        assert!(GemmShape::new(1, 1, MAX_DIM + 1).is_err());
        assert!(GemmShape::new(1, 1, MAX_DIM).is_ok());
    }

    #[test]
    fn size_lists_parse_and_reject_bad_parts() {
        assert_eq!(parse_size_list("512, 1024").unwrap(), vec![512, 1024]);
        for bad in ["", "0", "-5", "12x", "512,,1024", "99999999999"] {
            assert!(parse_size_list(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn square_sweep_labels_shapes() {
        let p = GemmProblem::square_sweep(&[64, 128]).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].shape, GemmShape::square(128).unwrap());
        assert_eq!(p[0].label, "square");
    }
}
