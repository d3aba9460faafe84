//! The GEMM precisions we measure, their names, storage sizes and check tolerances.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::MatmulError;

/// A GEMM precision: what the inputs are stored as and which tensor-core path runs.
///
/// | dtype  | inputs           | accumulate | output | CLI names              |
/// |--------|------------------|------------|--------|------------------------|
/// | `Fp32` | f32              | f32 (no TF32) | f32 | `fp32`, `f32`, `float32` |
/// | `Tf32` | f32 (rounded to tf32 inside) | f32 | f32 | `tf32`           |
/// | `Fp16` | f16              | f32        | f16    | `fp16`, `f16`, `half`, `float16` |
/// | `Bf16` | bf16             | f32        | bf16   | `bf16`, `bfloat16`     |
/// | `Fp8E4m3` | fp8 e4m3 with f32 scales | f32 | bf16 | `fp8`, `e4m3`, `fp8e4m3` |
/// | `Int8` | i8               | i32        | i32    | `int8`, `i8`           |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmDtype {
    /// IEEE f32 in and out, full f32 math (TF32 tensor cores off).
    Fp32,
    /// f32 in and out, TF32 tensor cores (10-bit mantissa products, f32 accumulate).
    Tf32,
    /// f16 in and out, f32 accumulate.
    Fp16,
    /// bf16 in and out, f32 accumulate.
    Bf16,
    /// fp8 e4m3 in (per-tensor f32 scales), f32 accumulate, bf16 out (torch `_scaled_mm`).
    #[serde(rename = "fp8")]
    Fp8E4m3,
    /// i8 in, i32 accumulate, i32 out.
    Int8,
}

impl GemmDtype {
    /// Every dtype, in the order a sweep reports them.
    pub const ALL: [GemmDtype; 6] = [
        GemmDtype::Fp32,
        GemmDtype::Tf32,
        GemmDtype::Fp16,
        GemmDtype::Bf16,
        GemmDtype::Fp8E4m3,
        GemmDtype::Int8,
    ];

    /// The canonical short name (`fp32`, `tf32`, `fp16`, `bf16`, `fp8`, `int8`), as torch_peers.py spells it.
    pub fn name(self) -> &'static str {
        match self {
            GemmDtype::Fp32 => "fp32",
            GemmDtype::Tf32 => "tf32",
            GemmDtype::Fp16 => "fp16",
            GemmDtype::Bf16 => "bf16",
            GemmDtype::Fp8E4m3 => "fp8",
            GemmDtype::Int8 => "int8",
        }
    }

    /// Bytes per element of an input matrix (A or B) as stored on the device.
    pub fn input_bytes(self) -> u64 {
        match self {
            GemmDtype::Fp32 | GemmDtype::Tf32 => 4,
            GemmDtype::Fp16 | GemmDtype::Bf16 => 2,
            GemmDtype::Fp8E4m3 | GemmDtype::Int8 => 1,
        }
    }

    /// Bytes per element of the output matrix.
    pub fn output_bytes(self) -> u64 {
        match self {
            GemmDtype::Fp32 | GemmDtype::Tf32 | GemmDtype::Int8 => 4,
            GemmDtype::Fp16 | GemmDtype::Bf16 | GemmDtype::Fp8E4m3 => 2,
        }
    }

    /// The largest normwise relative error `‖C − C_ref‖ / ‖C_ref‖` (Frobenius norm over the
    /// checked rows) that still counts as a correct result, for inputs drawn from N(0, 1).
    ///
    /// The reference is computed in f64 from exactly the values the device received (inputs
    /// are rounded to the dtype before upload), so the error comes only from the product
    /// rounding inside the kernel, the accumulation and the rounding of the output:
    /// f32 ~1e-6 (limit 1e-4), TF32's 10-bit products ~5e-4 (limit 5e-3), f16 output rounding
    /// ~2e-4 (limit 2e-3), bf16 / fp8→bf16 output rounding ~2e-3 (limit 1.6e-2 / 2e-2, room
    /// for reduced-precision split-K and fast accumulation). Int8 with i32 accumulation is
    /// exact: the limit is 0.
    pub fn tolerance(self) -> f64 {
        match self {
            GemmDtype::Fp32 => 1e-4,
            GemmDtype::Tf32 => 5e-3,
            GemmDtype::Fp16 => 2e-3,
            GemmDtype::Bf16 => 1.6e-2,
            GemmDtype::Fp8E4m3 => 2e-2,
            GemmDtype::Int8 => 0.0,
        }
    }

    /// The precision key of gpu-probe's architecture table whose peak applies to this dtype.
    pub fn precision(self) -> gpu_probe::Precision {
        match self {
            GemmDtype::Fp32 => gpu_probe::Precision::Fp32,
            GemmDtype::Tf32 => gpu_probe::Precision::Tf32,
            GemmDtype::Fp16 => gpu_probe::Precision::Fp16,
            GemmDtype::Bf16 => gpu_probe::Precision::Bf16,
            GemmDtype::Fp8E4m3 => gpu_probe::Precision::Fp8,
            GemmDtype::Int8 => gpu_probe::Precision::Int8,
        }
    }

    /// The oldest CUDA compute capability with tensor cores for this dtype, where one is
    /// needed: fp8 needs 8.9 (Ada, Hopper), bf16 and tf32 need 8.0 (Ampere).
    pub fn min_compute_capability(self) -> Option<(u32, u32)> {
        match self {
            GemmDtype::Fp8E4m3 => Some((8, 9)),
            GemmDtype::Bf16 | GemmDtype::Tf32 => Some((8, 0)),
            _ => None,
        }
    }

    /// The unit of the throughput: `TFLOP/s` for floating point, `TOP/s` for int8.
    pub fn throughput_unit(self) -> &'static str {
        match self {
            GemmDtype::Int8 => "TOP/s",
            _ => "TFLOP/s",
        }
    }

    /// Parses a comma-separated list (`"fp16,bf16"`), keeping order and dropping repeats.
    ///
    /// # Errors
    /// [`MatmulError::UnknownDtype`] for the first name that is not a dtype, or for an empty list.
    pub fn parse_list(list: &str) -> Result<Vec<GemmDtype>, MatmulError> {
        let mut out = Vec::new();
        for part in list.split(',').map(str::trim) {
            let d: GemmDtype = part.parse()?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for GemmDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GemmDtype {
    type Err = MatmulError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" | "float" => Ok(GemmDtype::Fp32),
            "tf32" => Ok(GemmDtype::Tf32),
            "fp16" | "f16" | "half" | "float16" => Ok(GemmDtype::Fp16),
            "bf16" | "bfloat16" => Ok(GemmDtype::Bf16),
            "fp8" | "e4m3" | "fp8e4m3" | "fp8_e4m3" | "float8_e4m3fn" => Ok(GemmDtype::Fp8E4m3),
            "int8" | "i8" => Ok(GemmDtype::Int8),
            _ => Err(MatmulError::UnknownDtype(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in GemmDtype::ALL {
            assert_eq!(d.name().parse::<GemmDtype>().ok(), Some(d));
        }
        assert_eq!("BF16".parse::<GemmDtype>().ok(), Some(GemmDtype::Bf16));
        assert_eq!("e4m3".parse::<GemmDtype>().ok(), Some(GemmDtype::Fp8E4m3));
    }

    #[test]
    fn unknown_name_is_an_error() {
        let e = "fp12".parse::<GemmDtype>();
        assert!(matches!(e, Err(MatmulError::UnknownDtype(ref s)) if s == "fp12"));
        assert!(GemmDtype::parse_list("fp16,,bf16").is_err());
        assert!(GemmDtype::parse_list("").is_err());
    }

    #[test]
    fn list_keeps_order_and_drops_repeats() {
        let l = GemmDtype::parse_list("bf16, fp16,bf16").ok();
        assert_eq!(l, Some(vec![GemmDtype::Bf16, GemmDtype::Fp16]));
    }

    #[test]
    fn fp8_needs_ada_or_hopper() {
        let cc = GemmDtype::Fp8E4m3.min_compute_capability().unwrap();
        assert!((8, 0) < cc, "A100 has no fp8 tensor cores");
        assert!((8, 9) >= cc, "L4/L40S (and so H100) do");
        assert_eq!(GemmDtype::Fp16.min_compute_capability(), None);
    }

    #[test]
    fn serde_uses_short_names() {
        let s = serde_json::to_string(&GemmDtype::Fp8E4m3).ok();
        assert_eq!(s.as_deref(), Some("\"fp8\""));
    }
}
