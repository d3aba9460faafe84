//! OPT: learned positions (offset by 2), LayerNorm before (or, for opt-350m, after) each
//! sub-layer, ReLU MLP, tied LM head, optional project_in/out when the embedding is narrower.
//!
//! Weight names (Hugging Face): `[model.]decoder.embed_tokens`, `embed_positions`
//! (`max_position_embeddings + 2` rows), `project_in`/`project_out`,
//! `layers.N.self_attn.{q,k,v,out}_proj`, `layers.N.self_attn_layer_norm`, `layers.N.fc1`,
//! `layers.N.fc2`, `layers.N.final_layer_norm`, `final_layer_norm`.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::LayerNorm;

use super::batch::BatchLayout;
use super::layers::{
    activate, fused_kernels_enabled, fused_linear, layer_norm, linear, Linear, LmHead,
};
use super::{CausalLm, SeqSlice};
use crate::attention::PagedAttention;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kv_cache_storage::PagedKvStorage;
use crate::weights::{Init, Weights};

/// OPT's learned position embedding skips two rows (a fairseq legacy).
const POSITION_OFFSET: u32 = 2;

#[derive(Debug)]
struct OptBlock {
    attn_norm: LayerNorm,
    qkv: Linear,
    out_proj: Linear,
    mlp_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// OPT.
#[derive(Debug)]
pub struct Opt {
    cfg: ModelConfig,
    embed_tokens: Tensor,
    embed_positions: Tensor,
    project_in: Option<Linear>,
    project_out: Option<Linear>,
    blocks: Vec<OptBlock>,
    final_norm: Option<LayerNorm>,
    lm_head: LmHead,
    attention: PagedAttention,
    device: Device,
    dtype: DType,
    /// Whether [`Opt::run`] takes the fused CUDA kernels' path (pre-norm models only).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fused: bool,
}

impl Opt {
    /// Builds the model from `weights` (Hugging Face names, with or without `model.`).
    ///
    /// # Errors
    /// [`crate::EngineError::MissingTensor`] / [`crate::EngineError::TensorShapeMismatch`]
    /// naming the first bad tensor; candle errors.
    pub fn new(cfg: &ModelConfig, w: &Weights) -> Result<Self> {
        let p = if w.has("model.decoder.embed_tokens.weight")
            || !w.has("decoder.embed_tokens.weight")
        {
            "model.decoder"
        } else {
            "decoder"
        };
        let (h, e) = (cfg.hidden_size, cfg.word_embed_proj_dim);
        let embed_tokens = w.get(
            &format!("{p}.embed_tokens.weight"),
            &[cfg.vocab_size, e],
            Init::Normal,
        )?;
        let embed_positions = w.get(
            &format!("{p}.embed_positions.weight"),
            &[cfg.max_position_embeddings + POSITION_OFFSET as usize, h],
            Init::Normal,
        )?;
        let (project_in, project_out) = if e != h {
            (
                Some(linear(w, &format!("{p}.project_in"), e, h, false)?),
                Some(linear(w, &format!("{p}.project_out"), h, e, false)?),
            )
        } else {
            (None, None)
        };
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            let lp = format!("{p}.layers.{l}");
            let attn = |n: &str| format!("{lp}.self_attn.{n}");
            blocks.push(OptBlock {
                attn_norm: layer_norm(w, &format!("{lp}.self_attn_layer_norm"), h, cfg.norm_eps)?,
                qkv: fused_linear(
                    w,
                    &[&attn("q_proj"), &attn("k_proj"), &attn("v_proj")],
                    h,
                    &[h, h, h],
                    cfg.attention_qkv_bias,
                )?,
                out_proj: linear(w, &attn("out_proj"), h, h, cfg.attention_out_bias)?,
                mlp_norm: layer_norm(w, &format!("{lp}.final_layer_norm"), h, cfg.norm_eps)?,
                fc1: linear(
                    w,
                    &format!("{lp}.fc1"),
                    h,
                    cfg.intermediate_size,
                    cfg.mlp_bias,
                )?,
                fc2: linear(
                    w,
                    &format!("{lp}.fc2"),
                    cfg.intermediate_size,
                    h,
                    cfg.mlp_bias,
                )?,
            });
        }
        let final_norm = if cfg.has_final_layer_norm {
            Some(layer_norm(
                w,
                &format!("{p}.final_layer_norm"),
                h,
                cfg.norm_eps,
            )?)
        } else {
            None
        };
        let head = if !cfg.tie_word_embeddings && w.has("lm_head.weight") {
            w.get("lm_head.weight", &[cfg.vocab_size, e], Init::Normal)?
        } else {
            embed_tokens.clone()
        };
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens,
            embed_positions,
            project_in,
            project_out,
            blocks,
            final_norm,
            lm_head: LmHead::new(head)?,
            attention: PagedAttention::new(cfg),
            device: w.device().clone(),
            dtype: w.dtype(),
            fused: cfg.do_layer_norm_before && fused_kernels_enabled(w.device()),
        })
    }

    fn run(&self, batch: &[SeqSlice], kv: &mut PagedKvStorage, all_logits: bool) -> Result<Tensor> {
        let layout = BatchLayout::new(batch, &self.cfg, kv, &self.device, all_logits)?;
        self.run_layout(&layout, kv)
    }

    fn run_layout(&self, layout: &BatchLayout<'_>, kv: &mut PagedKvStorage) -> Result<Tensor> {
        if layout.num_tokens == 0 {
            return Ok(Tensor::zeros(
                (0, self.cfg.vocab_size),
                DType::F32,
                &self.device,
            )?);
        }
        #[cfg(feature = "cuda")]
        if self.fused {
            return self.run_fused(layout, kv);
        }
        let h = self.cfg.hidden_size;
        let pre = self.cfg.do_layer_norm_before;
        let mut x = self.embed_tokens.index_select(&layout.token_ids, 0)?;
        if let Some(p) = &self.project_in {
            x = p.forward(&x)?;
        }
        let positions = (&layout.positions + f64::from(POSITION_OFFSET))?;
        x = (x + self.embed_positions.index_select(&positions, 0)?)?;
        for (l, b) in self.blocks.iter().enumerate() {
            let a_in = if pre {
                b.attn_norm.forward(&x)?
            } else {
                x.clone()
            };
            let qkv = b.qkv.forward(&a_in)?;
            let q = qkv.narrow(1, 0, h)?.contiguous()?;
            let k = qkv.narrow(1, h, h)?.contiguous()?;
            let v = qkv.narrow(1, 2 * h, h)?.contiguous()?;
            let a = self.attention.forward(&q, &k, &v, layout, kv, l)?;
            x = (x + b.out_proj.forward(&a)?)?;
            if !pre {
                x = b.attn_norm.forward(&x)?;
            }
            let m_in = if pre {
                b.mlp_norm.forward(&x)?
            } else {
                x.clone()
            };
            let m = activate(&b.fc1.forward(&m_in)?, self.cfg.activation)?;
            x = (x + b.fc2.forward(&m)?)?;
            if !pre {
                x = b.mlp_norm.forward(&x)?;
            }
        }
        self.lm_head.logits_of_outputs(&x, layout, |mut x| {
            if let Some(n) = &self.final_norm {
                x = n.forward(&x)?;
            }
            if let Some(p) = &self.project_out {
                x = p.forward(&x)?;
            }
            Ok(x)
        })
    }
}

#[cfg(feature = "cuda")]
impl Opt {
    /// [`Opt::run`] of a pre-norm model with the fused CUDA kernels: residual add + LayerNorm
    /// and the q/k/v split in one launch each. The MLP's residual add is carried into the next
    /// layer's first norm.
    fn run_fused(&self, layout: &BatchLayout<'_>, kv: &mut PagedKvStorage) -> Result<Tensor> {
        use super::layers::fused_add_layer_norm;
        let mut x = self.embed_tokens.index_select(&layout.token_ids, 0)?;
        if let Some(p) = &self.project_in {
            x = p.forward(&x)?;
        }
        let positions = (&layout.positions + f64::from(POSITION_OFFSET))?;
        x = (x + self.embed_positions.index_select(&positions, 0)?)?;
        // The previous layer's MLP output, not yet added to `x`.
        let mut pending: Option<Tensor> = None;
        for (l, b) in self.blocks.iter().enumerate() {
            let a_in = match pending.take() {
                None => b.attn_norm.forward(&x)?,
                Some(d) => {
                    let (sum, normed) = fused_add_layer_norm(&x, &d, &b.attn_norm)?;
                    x = sum;
                    normed
                }
            };
            let qkv = b.qkv.forward(&a_in)?;
            let a = self.attention.forward_qkv(&qkv, None, layout, kv, l)?;
            let (sum, m_in) = fused_add_layer_norm(&x, &b.out_proj.forward(&a)?, &b.mlp_norm)?;
            x = sum;
            let m = activate(&b.fc1.forward(&m_in)?, self.cfg.activation)?;
            pending = Some(b.fc2.forward(&m)?);
        }
        if let Some(d) = pending {
            x = (x + d)?;
        }
        self.lm_head.logits_of_outputs(&x, layout, |mut x| {
            if let Some(n) = &self.final_norm {
                x = n.forward(&x)?;
            }
            if let Some(p) = &self.project_out {
                x = p.forward(&x)?;
            }
            Ok(x)
        })
    }
}

impl CausalLm for Opt {
    fn forward(&self, batch: &[SeqSlice], kv: &mut PagedKvStorage) -> Result<Tensor> {
        self.run(batch, kv, false)
    }

    fn forward_all_logits(&self, batch: &[SeqSlice], kv: &mut PagedKvStorage) -> Result<Tensor> {
        self.run(batch, kv, true)
    }

    fn forward_layout(&self, layout: &BatchLayout<'_>, kv: &mut PagedKvStorage) -> Result<Tensor> {
        self.run_layout(layout, kv)
    }

    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}
