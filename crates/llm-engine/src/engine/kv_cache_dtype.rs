//! [`KvCacheDtype`]: the dtype K and V are stored in (vLLM's `--kv-cache-dtype`).
//!
//! `auto` stores K/V in the model's dtype. `fp8` (= `fp8_e4m3`) stores them as
//! [`DType::F8E4M3`], one byte per element: the cache holds 2× the tokens of an f16/bf16 cache
//! (4× of an f32 one) in the same bytes, and decode attention reads half the bytes. Weights,
//! activations and queries stay in the model dtype; K/V are widened back when attention reads
//! them.
//!
//! As vLLM without calibration, the scale is 1.0: a value is rounded to the nearest E4M3 number
//! (round-to-nearest-even, 3 mantissa bits, so a relative error of at most 2⁻⁴) and saturates
//! to ±448, the largest finite E4M3 value (CUDA's `__NV_SATFINITE`); NaN stays NaN.

use std::fmt;
use std::str::FromStr;

use candle_core::DType;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// The largest finite [`DType::F8E4M3`] value; K/V saturate to ±this in an fp8 cache.
pub const FP8_E4M3_MAX: f32 = 448.0;

/// Head sizes the CUDA kernels are built for when the cache is fp8.
pub const FP8_CUDA_HEAD_DIMS: [usize; 2] = [64, 128];

/// The dtype K and V are stored in, in the paged KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum KvCacheDtype {
    /// The model's dtype (the default).
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// FP8 E4M3, scale 1.0, saturating to ±448.
    #[serde(rename = "fp8_e4m3", alias = "fp8")]
    Fp8E4M3,
}

impl KvCacheDtype {
    /// The names [`FromStr`] accepts.
    pub const CHOICES: &'static str = "auto, fp8, fp8_e4m3";

    /// The dtype the cache tensors have for a model computing in `model_dtype`.
    pub fn storage_dtype(self, model_dtype: DType) -> DType {
        match self {
            KvCacheDtype::Auto => model_dtype,
            KvCacheDtype::Fp8E4M3 => DType::F8E4M3,
        }
    }

    /// Whether K/V are stored in fp8.
    pub fn is_fp8(self) -> bool {
        matches!(self, KvCacheDtype::Fp8E4M3)
    }

    /// Checks that the CUDA kernels support this cache dtype for a model computing in
    /// `model_dtype` (the part of [`KvCacheDtype::check_cuda_support`] known before the model
    /// is loaded).
    ///
    /// # Errors
    /// [`EngineError::InvalidConfig`] for an fp8 cache with a model dtype other than f16/bf16.
    pub fn check_cuda_dtype(self, model_dtype: DType) -> Result<()> {
        if self.is_fp8() && !matches!(model_dtype, DType::F16 | DType::BF16) {
            return Err(EngineError::InvalidConfig(format!(
                "kv_cache_dtype {self} on CUDA needs an f16 or bf16 model, got {}",
                model_dtype.as_str()
            )));
        }
        Ok(())
    }

    /// Checks that the CUDA kernels support this cache dtype for a model computing in
    /// `model_dtype` with heads of `head_dim` (the CPU supports every combination).
    ///
    /// # Errors
    /// [`EngineError::InvalidConfig`] for an fp8 cache with a model dtype other than f16/bf16 or
    /// a `head_dim` other than 64/128.
    pub fn check_cuda_support(self, model_dtype: DType, head_dim: usize) -> Result<()> {
        self.check_cuda_dtype(model_dtype)?;
        if self.is_fp8() && !FP8_CUDA_HEAD_DIMS.contains(&head_dim) {
            return Err(EngineError::InvalidConfig(format!(
                "kv_cache_dtype {self} on CUDA needs head_dim 64 or 128, the model has {head_dim}"
            )));
        }
        Ok(())
    }
}

impl FromStr for KvCacheDtype {
    type Err = EngineError;

    /// Parses `auto`, `fp8` or `fp8_e4m3` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(KvCacheDtype::Auto),
            "fp8" | "fp8_e4m3" => Ok(KvCacheDtype::Fp8E4M3),
            "fp8_e5m2" => Err(EngineError::InvalidConfig(
                "kv cache dtype `fp8_e5m2` is not supported: only fp8_e4m3 (`fp8`) is".into(),
            )),
            _ => Err(EngineError::InvalidConfig(format!(
                "unknown kv cache dtype `{s}` (use {})",
                Self::CHOICES
            ))),
        }
    }
}

impl fmt::Display for KvCacheDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KvCacheDtype::Auto => "auto",
            KvCacheDtype::Fp8E4M3 => "fp8_e4m3",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() -> Result<()> {
        assert_eq!("auto".parse::<KvCacheDtype>()?, KvCacheDtype::Auto);
        assert_eq!("fp8".parse::<KvCacheDtype>()?, KvCacheDtype::Fp8E4M3);
        assert_eq!(" FP8_E4M3 ".parse::<KvCacheDtype>()?, KvCacheDtype::Fp8E4M3);
        assert_eq!(KvCacheDtype::default(), KvCacheDtype::Auto);
        for d in [KvCacheDtype::Auto, KvCacheDtype::Fp8E4M3] {
            assert_eq!(d.to_string().parse::<KvCacheDtype>()?, d);
        }
        assert_eq!(KvCacheDtype::Fp8E4M3.to_string(), "fp8_e4m3");
        Ok(())
    }

    #[test]
    fn bad_names_say_what_is_supported() {
        let e5 = "fp8_e5m2".parse::<KvCacheDtype>().expect_err("e5m2");
        assert!(matches!(e5, EngineError::InvalidConfig(_)));
        assert!(e5.to_string().contains("only fp8_e4m3"), "{e5}");
        let foo = "foo".parse::<KvCacheDtype>().expect_err("foo");
        let msg = foo.to_string();
        assert!(
            msg.contains("`foo`") && msg.contains(KvCacheDtype::CHOICES),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn storage_dtypes() {
        for model in [DType::F32, DType::F16, DType::BF16] {
            assert_eq!(KvCacheDtype::Auto.storage_dtype(model), model);
            assert_eq!(KvCacheDtype::Fp8E4M3.storage_dtype(model), DType::F8E4M3);
        }
        assert_eq!(DType::F8E4M3.size_in_bytes(), 1);
    }

    #[test]
    fn serde_uses_the_cli_names() -> std::result::Result<(), serde_json::Error> {
        assert_eq!(
            serde_json::to_string(&KvCacheDtype::Fp8E4M3)?,
            "\"fp8_e4m3\""
        );
        assert_eq!(serde_json::to_string(&KvCacheDtype::Auto)?, "\"auto\"");
        let d: KvCacheDtype = serde_json::from_str("\"fp8\"")?;
        assert_eq!(d, KvCacheDtype::Fp8E4M3);
        let d: KvCacheDtype = serde_json::from_str("\"fp8_e4m3\"")?;
        assert_eq!(d, KvCacheDtype::Fp8E4M3);
        assert!(serde_json::from_str::<KvCacheDtype>("\"fp8_e5m2\"").is_err());
        Ok(())
    }

    #[test]
    fn cuda_support_rules() {
        let fp8 = KvCacheDtype::Fp8E4M3;
        assert!(fp8.check_cuda_support(DType::F16, 128).is_ok());
        assert!(fp8.check_cuda_support(DType::BF16, 64).is_ok());
        let e = fp8.check_cuda_support(DType::F32, 128).expect_err("f32");
        assert!(e.to_string().contains("f16 or bf16"), "{e}");
        let e = fp8
            .check_cuda_support(DType::BF16, 80)
            .expect_err("head 80");
        assert!(e.to_string().contains("head_dim 64 or 128"), "{e}");
        assert!(KvCacheDtype::Auto
            .check_cuda_support(DType::F32, 80)
            .is_ok());
    }
}
