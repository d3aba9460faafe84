//! Numeric precisions that GPU peaks are quoted for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ProbeError;

/// A numeric precision (data type) a GPU computes in, as used for peak-throughput figures.
///
/// Parses from the names users type (`"fp16"`, `"f16"`, `"half"`, `"bf16"`, `"fp8-e4m3"`,
/// ...; case-insensitive) and displays as the short canonical name (`"fp16"`).
///
/// ```
/// use gpu_probe::Precision;
/// let p: Precision = "F16".parse()?;
/// assert_eq!(p, Precision::Fp16);
/// assert_eq!(p.to_string(), "fp16");
/// assert_eq!(Precision::Int8.unit(), "TOPS");
/// # Ok::<(), gpu_probe::ProbeError>(())
/// ```
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE double precision (64-bit float).
    Fp64,
    /// IEEE single precision (32-bit float), on the CUDA cores (no tensor cores).
    Fp32,
    /// TensorFloat-32: fp32 inputs rounded to a 10-bit mantissa, on tensor cores (Ampere+).
    Tf32,
    /// IEEE half precision (16-bit float), on tensor cores.
    Fp16,
    /// bfloat16 (8-bit exponent, 7-bit mantissa), on tensor cores (Ampere+).
    Bf16,
    /// 8-bit float (E4M3 / E5M2), on tensor cores (Ada, Hopper and later).
    Fp8,
    /// 8-bit integer, on tensor cores (Turing and later); figures are in TOPS.
    Int8,
}

impl Precision {
    /// Every precision, widest first.
    pub const ALL: [Precision; 7] = [
        Precision::Fp64,
        Precision::Fp32,
        Precision::Tf32,
        Precision::Fp16,
        Precision::Bf16,
        Precision::Fp8,
        Precision::Int8,
    ];

    /// The short canonical name (`"fp16"`), as printed and as accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp64 => "fp64",
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
            Precision::Fp8 => "fp8",
            Precision::Int8 => "int8",
        }
    }

    /// The unit peaks are quoted in: `"TOPS"` for integer types, `"TFLOPS"` otherwise.
    pub fn unit(self) -> &'static str {
        match self {
            Precision::Int8 => "TOPS",
            _ => "TFLOPS",
        }
    }

    /// Bytes one element occupies in memory (tf32 is stored as a 4-byte fp32).
    pub fn bytes_per_element(self) -> usize {
        match self {
            Precision::Fp64 => 8,
            Precision::Fp32 | Precision::Tf32 => 4,
            Precision::Fp16 | Precision::Bf16 => 2,
            Precision::Fp8 | Precision::Int8 => 1,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = ProbeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let p = match lower.as_str() {
            "fp64" | "f64" | "float64" | "double" => Precision::Fp64,
            "fp32" | "f32" | "float32" | "float" | "single" => Precision::Fp32,
            "tf32" | "tensorfloat32" => Precision::Tf32,
            "fp16" | "f16" | "float16" | "half" => Precision::Fp16,
            "bf16" | "bfloat16" => Precision::Bf16,
            "fp8" | "f8" | "fp8-e4m3" | "fp8_e4m3" | "e4m3" | "fp8-e5m2" | "fp8_e5m2" | "e5m2" => {
                Precision::Fp8
            }
            "int8" | "i8" | "s8" => Precision::Int8,
            _ => return Err(ProbeError::UnknownPrecision(s.to_string())),
        };
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips_through_from_str() {
        for p in Precision::ALL {
            assert_eq!(p.to_string().parse::<Precision>().ok(), Some(p));
        }
    }

    #[test]
    fn aliases_parse() {
        let cases = [
            ("f16", Precision::Fp16),
            ("FP16", Precision::Fp16),
            ("half", Precision::Fp16),
            ("bfloat16", Precision::Bf16),
            ("fp8-e4m3", Precision::Fp8),
            ("e5m2", Precision::Fp8),
            ("i8", Precision::Int8),
            (" tf32 ", Precision::Tf32),
            ("double", Precision::Fp64),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<Precision>().ok(), Some(want), "{s}");
        }
    }

    #[test]
    fn unknown_precision_is_a_typed_error() {
        let err = "fp4".parse::<Precision>().err();
        assert!(matches!(err, Some(ProbeError::UnknownPrecision(ref s)) if s == "fp4"));
    }

    #[test]
    fn serde_uses_lowercase_names() {
        let json = serde_json::to_string(&Precision::Bf16).ok();
        assert_eq!(json.as_deref(), Some("\"bf16\""));
    }

    #[test]
    fn units_and_sizes() {
        assert_eq!(Precision::Int8.unit(), "TOPS");
        assert_eq!(Precision::Fp8.unit(), "TFLOPS");
        assert_eq!(Precision::Tf32.bytes_per_element(), 4);
        assert_eq!(Precision::Bf16.bytes_per_element(), 2);
    }
}
