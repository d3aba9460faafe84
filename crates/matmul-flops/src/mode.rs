//! What precision a GEMM really ran in, said out loud.
//!
//! torch lets fp16/bf16 GEMMs use reduced-precision reductions by default (split-K partial
//! sums stored in the 16-bit output type); cuBLASLt calls that the `OUTPUT_TYPE` (and
//! `INPLACE`) reduction scheme. We offer both and say which ran, so a figure is never compared
//! with one taken under other numerics.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dtype::GemmDtype;

/// Options that change the numerics (and the speed) of a GEMM. Both off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumericsOptions {
    /// fp16/bf16/fp8: allow split-K reductions in the 16-bit output type (torch's default for
    /// fp16/bf16). Off: only f32 (compute type) reductions.
    pub reduced_precision_reduction: bool,
    /// fp8: cuBLASLt fast accumulation (no periodic promotion to f32; torch's
    /// `_scaled_mm(use_fast_accum=True)`). Off by default, as in torch.
    pub fp8_fast_accum: bool,
}

/// The numerics a GEMM ran with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GemmMode {
    /// Input element type (`bf16`, `fp8 e4m3 (per-tensor f32 scales)`).
    pub inputs: String,
    /// How products are formed and summed (`fp32 accumulate`, `tf32 tensor cores, fp32 accumulate`).
    pub compute: String,
    /// Output element type.
    pub output: String,
    /// Whether reduced-precision (output-type) split-K reductions were allowed; `None` where
    /// the question does not arise (f32 or i32 outputs, or a backend without split-K).
    pub reduced_precision_reduction: Option<bool>,
    /// FP8 fast accumulation; `None` for other dtypes.
    pub fp8_fast_accum: Option<bool>,
    /// The library that ran the GEMM (`cuBLASLt`, `gemm crate`).
    pub library: String,
}

impl GemmMode {
    /// The mode cuBLASLt runs `dtype` in under `options`.
    pub fn cublaslt(dtype: GemmDtype, options: NumericsOptions) -> Self {
        let sixteen_bit_out = matches!(
            dtype,
            GemmDtype::Fp16 | GemmDtype::Bf16 | GemmDtype::Fp8E4m3
        );
        let (inputs, compute, output) = match dtype {
            GemmDtype::Fp32 => ("fp32", "fp32 accumulate (TF32 off)", "fp32"),
            GemmDtype::Tf32 => ("fp32", "tf32 tensor cores, fp32 accumulate", "fp32"),
            GemmDtype::Fp16 => ("fp16", "fp32 accumulate", "fp16"),
            GemmDtype::Bf16 => ("bf16", "fp32 accumulate", "bf16"),
            GemmDtype::Fp8E4m3 => (
                "fp8 e4m3 (per-tensor f32 scales)",
                "fp32 accumulate",
                "bf16",
            ),
            GemmDtype::Int8 => ("int8", "int32 accumulate", "int32"),
        };
        Self {
            inputs: inputs.into(),
            compute: compute.into(),
            output: output.into(),
            reduced_precision_reduction: sixteen_bit_out
                .then_some(options.reduced_precision_reduction),
            fp8_fast_accum: (dtype == GemmDtype::Fp8E4m3).then_some(options.fp8_fast_accum),
            library: "cuBLASLt".into(),
        }
    }

    /// The mode of the CPU backend (the `gemm` crate) for `dtype`.
    pub fn cpu(dtype: GemmDtype) -> Self {
        let (inputs, output) = match dtype {
            GemmDtype::Fp16 => ("fp16", "fp16"),
            _ => ("fp32", "fp32"),
        };
        Self {
            inputs: inputs.into(),
            compute: "fp32 accumulate".into(),
            output: output.into(),
            reduced_precision_reduction: None,
            fp8_fast_accum: None,
            library: "gemm crate (CPU, all cores)".into(),
        }
    }
}

impl fmt::Display for GemmMode {
    /// `bf16 in, fp32 accumulate, bf16 out, reduced-precision reductions off`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in, {}, {} out",
            self.inputs, self.compute, self.output
        )?;
        if let Some(r) = self.reduced_precision_reduction {
            write!(
                f,
                ", reduced-precision reductions {}",
                if r { "on" } else { "off" }
            )?;
        }
        if let Some(fa) = self.fp8_fast_accum {
            write!(f, ", fast accumulation {}", if fa { "on" } else { "off" })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_mode_reads_like_the_issue_asks() {
        let m = GemmMode::cublaslt(GemmDtype::Bf16, NumericsOptions::default());
        assert_eq!(
            m.to_string(),
            "bf16 in, fp32 accumulate, bf16 out, reduced-precision reductions off"
        );
        let on = NumericsOptions {
            reduced_precision_reduction: true,
            fp8_fast_accum: true,
        };
        assert!(GemmMode::cublaslt(GemmDtype::Fp16, on)
            .to_string()
            .ends_with("reductions on"));
        assert!(GemmMode::cublaslt(GemmDtype::Fp8E4m3, on)
            .to_string()
            .ends_with("fast accumulation on"));
        assert_eq!(
            GemmMode::cublaslt(GemmDtype::Tf32, on).to_string(),
            "fp32 in, tf32 tensor cores, fp32 accumulate, fp32 out"
        );
    }
}
