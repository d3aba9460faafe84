//! GPT-2: learned absolute positions, pre-norm LayerNorm, GELU (tanh) MLP, tied LM head.
//!
//! Weight names (Hugging Face, Conv1D so matrices are stored `[in, out]`):
//! `[transformer.]wte`, `wpe`, `h.N.ln_1`, `h.N.attn.c_attn` (fused q/k/v), `h.N.attn.c_proj`,
//! `h.N.ln_2`, `h.N.mlp.c_fc`, `h.N.mlp.c_proj`, `ln_f`. The `transformer.` prefix is absent in
//! some checkpoints (the original `gpt2` one); both are accepted.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::LayerNorm;

use super::batch::BatchLayout;
use super::layers::{activate, conv1d, fused_kernels_enabled, layer_norm, Linear, LmHead};
use super::{CausalLm, SeqSlice};
use crate::attention::PagedAttention;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kv_cache_storage::PagedKvStorage;
use crate::weights::{Init, Weights};

#[derive(Debug)]
struct Gpt2Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// GPT-2.
#[derive(Debug)]
pub struct Gpt2 {
    cfg: ModelConfig,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Gpt2Block>,
    ln_f: LayerNorm,
    lm_head: LmHead,
    attention: PagedAttention,
    device: Device,
    dtype: DType,
    /// Whether [`Gpt2::run`] takes the fused CUDA kernels' path.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fused: bool,
}

impl Gpt2 {
    /// Builds the model from `weights` (Hugging Face names, with or without `transformer.`).
    ///
    /// # Errors
    /// [`crate::EngineError::MissingTensor`] / [`crate::EngineError::TensorShapeMismatch`]
    /// naming the first bad tensor; candle errors.
    pub fn new(cfg: &ModelConfig, w: &Weights) -> Result<Self> {
        let prefix = if w.has("transformer.wte.weight") || !w.has("wte.weight") {
            "transformer."
        } else {
            ""
        };
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let wte = w.get(
            &format!("{prefix}wte.weight"),
            &[cfg.vocab_size, h],
            Init::Normal,
        )?;
        let wpe = w.get(
            &format!("{prefix}wpe.weight"),
            &[cfg.max_position_embeddings, h],
            Init::Normal,
        )?;
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            let p = format!("{prefix}h.{l}");
            blocks.push(Gpt2Block {
                ln_1: layer_norm(w, &format!("{p}.ln_1"), h, cfg.norm_eps)?,
                c_attn: conv1d(w, &format!("{p}.attn.c_attn"), h, 3 * h)?,
                attn_proj: conv1d(w, &format!("{p}.attn.c_proj"), h, h)?,
                ln_2: layer_norm(w, &format!("{p}.ln_2"), h, cfg.norm_eps)?,
                c_fc: conv1d(w, &format!("{p}.mlp.c_fc"), h, i)?,
                mlp_proj: conv1d(w, &format!("{p}.mlp.c_proj"), i, h)?,
            });
        }
        let ln_f = layer_norm(w, &format!("{prefix}ln_f"), h, cfg.norm_eps)?;
        Ok(Self {
            cfg: cfg.clone(),
            lm_head: LmHead::new(wte.clone())?,
            wte,
            wpe,
            blocks,
            ln_f,
            attention: PagedAttention::new(cfg),
            device: w.device().clone(),
            dtype: w.dtype(),
            fused: fused_kernels_enabled(w.device()),
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
        let mut x = (self.wte.index_select(&layout.token_ids, 0)?
            + self.wpe.index_select(&layout.positions, 0)?)?;
        for (l, b) in self.blocks.iter().enumerate() {
            let qkv = b.c_attn.forward(&b.ln_1.forward(&x)?)?;
            let q = qkv.narrow(1, 0, h)?.contiguous()?;
            let k = qkv.narrow(1, h, h)?.contiguous()?;
            let v = qkv.narrow(1, 2 * h, h)?.contiguous()?;
            let a = self.attention.forward(&q, &k, &v, layout, kv, l)?;
            x = (x + b.attn_proj.forward(&a)?)?;
            let m = activate(&b.c_fc.forward(&b.ln_2.forward(&x)?)?, self.cfg.activation)?;
            x = (x + b.mlp_proj.forward(&m)?)?;
        }
        self.lm_head
            .logits_of_outputs(&x, layout, |x| Ok(self.ln_f.forward(&x)?))
    }
}

#[cfg(feature = "cuda")]
impl Gpt2 {
    /// [`Gpt2::run`] with the fused CUDA kernels: residual add + LayerNorm and the q/k/v split
    /// in one launch each. The MLP's residual add is carried into the next layer's first norm.
    fn run_fused(&self, layout: &BatchLayout<'_>, kv: &mut PagedKvStorage) -> Result<Tensor> {
        use super::layers::fused_add_layer_norm;
        let mut x = (self.wte.index_select(&layout.token_ids, 0)?
            + self.wpe.index_select(&layout.positions, 0)?)?;
        // The previous layer's MLP output, not yet added to `x`.
        let mut pending: Option<Tensor> = None;
        for (l, b) in self.blocks.iter().enumerate() {
            let a_in = match pending.take() {
                None => b.ln_1.forward(&x)?,
                Some(d) => {
                    let (sum, normed) = fused_add_layer_norm(&x, &d, &b.ln_1)?;
                    x = sum;
                    normed
                }
            };
            let qkv = b.c_attn.forward(&a_in)?;
            let a = self.attention.forward_qkv(&qkv, None, layout, kv, l)?;
            let (sum, m_in) = fused_add_layer_norm(&x, &b.attn_proj.forward(&a)?, &b.ln_2)?;
            x = sum;
            let m = activate(&b.c_fc.forward(&m_in)?, self.cfg.activation)?;
            pending = Some(b.mlp_proj.forward(&m)?);
        }
        if let Some(d) = pending {
            x = (x + d)?;
        }
        self.lm_head
            .logits_of_outputs(&x, layout, |x| Ok(self.ln_f.forward(&x)?))
    }
}

impl CausalLm for Gpt2 {
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
