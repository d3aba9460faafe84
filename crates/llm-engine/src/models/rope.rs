//! Rotary position embedding tables (Llama family), with linear and Llama-3 frequency scaling.

use candle_core::{DType, Device, Tensor};

use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

/// Precomputed cos/sin tables `[max_position_embeddings, head_dim / 2]` in the model dtype.
#[derive(Debug, Clone)]
pub(crate) struct RotaryTables {
    cos: Tensor,
    sin: Tensor,
    /// On CUDA: `[max_position_embeddings, head_dim]`, cos then sin of each position, the table
    /// of the fused rotary kernel (`crate::cuda::fused::rope_split_qkv`).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    cos_sin: Option<Tensor>,
}

/// The inverse frequencies `1 / theta^(2i/d)`, scaled as the config says. Computed in f32 the
/// way transformers does, so long positions round the same.
pub(crate) fn inverse_frequencies(cfg: &ModelConfig) -> Vec<f32> {
    let d = cfg.head_dim;
    let base = cfg.rope_theta as f32;
    let inv: Vec<f32> = (0..d)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / d as f32))
        .collect();
    match cfg.rope_scaling {
        RopeScaling::Default => inv,
        RopeScaling::Linear { factor } => inv.iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let (factor, low, high) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
            );
            let old = original_max_position_embeddings as f32;
            let low_freq_wavelen = old / low;
            let high_freq_wavelen = old / high;
            inv.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    if wavelen < high_freq_wavelen {
                        f
                    } else if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    }
}

impl RotaryTables {
    pub(crate) fn new(cfg: &ModelConfig, dtype: DType, device: &Device) -> Result<Self> {
        let inv = inverse_frequencies(cfg);
        let half = inv.len();
        let n = cfg.max_position_embeddings;
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for p in 0..n {
            for &f in &inv {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (n, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (n, half), device)?.to_dtype(dtype)?;
        let cos_sin = if device.is_cuda() {
            Some(Tensor::cat(&[&cos, &sin], 1)?)
        } else {
            None
        };
        Ok(Self { cos, sin, cos_sin })
    }

    /// The fused kernel's table `[max_position_embeddings, head_dim]` (cos, then sin), built on
    /// CUDA devices only.
    #[cfg(feature = "cuda")]
    pub(crate) fn cos_sin(&self) -> Option<&Tensor> {
        self.cos_sin.as_ref()
    }

    /// cos and sin rows `[n, head_dim / 2]` for the u32 `positions` `[n]`.
    pub(crate) fn at(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.cos.index_select(positions, 0)?,
            self.sin.index_select(positions, 0)?,
        ))
    }

    /// Rotates `x` `[n, heads, head_dim]` (the non-interleaved "rotate half" layout of HF
    /// Llama checkpoints) by the given cos/sin rows `[n, head_dim / 2]`.
    pub(crate) fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?.unsqueeze(0)?;
        Ok(candle_nn::rotary_emb::rope_thd(&x, cos, sin)?.squeeze(0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::preset;

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let Some(cfg) = preset("llama-3-8b") else {
            panic!("preset exists");
        };
        let mut plain = cfg.clone();
        plain.rope_scaling = RopeScaling::Default;
        let scaled = inverse_frequencies(&cfg);
        let base = inverse_frequencies(&plain);
        assert_eq!(scaled[0], base[0]);
        let last = base.len() - 1;
        assert!((scaled[last] - base[last] / 8.0).abs() < 1e-12);
        assert!(scaled.iter().zip(&base).all(|(s, b)| s <= b));
    }
}
