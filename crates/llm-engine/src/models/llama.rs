//! Llama (Llama-2, Llama-3 with grouped-query attention and its rope scaling; Mistral and
//! Qwen2 share it): RMSNorm, rotary positions, SwiGLU MLP.
//!
//! Weight names (Hugging Face): `model.embed_tokens`, `model.layers.N.input_layernorm`,
//! `model.layers.N.self_attn.{q,k,v,o}_proj`, `model.layers.N.post_attention_layernorm`,
//! `model.layers.N.mlp.{gate,up,down}_proj`, `model.norm`, `lm_head` (absent when tied).
//! q/k/v and gate/up are fused into one matmul each at load.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::RmsNorm;

use super::batch::BatchLayout;
use super::layers::{
    fused_kernels_enabled, fused_linear, gated_activation, linear, rms_norm, Linear, LmHead,
};
use super::rope::RotaryTables;
use super::{CausalLm, SeqSlice};
use crate::attention::PagedAttention;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kv_cache_storage::PagedKvStorage;
use crate::weights::{Init, Weights};

#[derive(Debug)]
struct LlamaBlock {
    input_norm: RmsNorm,
    qkv: Linear,
    o_proj: Linear,
    post_norm: RmsNorm,
    gate_up: Linear,
    down: Linear,
}

/// A Llama-family model.
#[derive(Debug)]
pub struct Llama {
    cfg: ModelConfig,
    embed: Tensor,
    blocks: Vec<LlamaBlock>,
    norm: RmsNorm,
    lm_head: LmHead,
    rope: RotaryTables,
    attention: PagedAttention,
    device: Device,
    dtype: DType,
    /// Whether [`Llama::run`] takes the fused CUDA kernels' path.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fused: bool,
}

impl Llama {
    /// Builds the model from `weights` (Hugging Face names).
    ///
    /// # Errors
    /// [`crate::EngineError::MissingTensor`] / [`crate::EngineError::TensorShapeMismatch`]
    /// naming the first bad tensor; candle errors.
    pub fn new(cfg: &ModelConfig, w: &Weights) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let embed = w.get(
            "model.embed_tokens.weight",
            &[cfg.vocab_size, h],
            Init::Normal,
        )?;
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            let p = format!("model.layers.{l}");
            let attn = |n: &str| format!("{p}.self_attn.{n}");
            let mlp = |n: &str| format!("{p}.mlp.{n}");
            blocks.push(LlamaBlock {
                input_norm: rms_norm(w, &format!("{p}.input_layernorm"), h, cfg.norm_eps)?,
                qkv: fused_linear(
                    w,
                    &[&attn("q_proj"), &attn("k_proj"), &attn("v_proj")],
                    h,
                    &[cfg.q_size(), cfg.kv_size(), cfg.kv_size()],
                    cfg.attention_qkv_bias,
                )?,
                o_proj: linear(w, &attn("o_proj"), cfg.q_size(), h, cfg.attention_out_bias)?,
                post_norm: rms_norm(w, &format!("{p}.post_attention_layernorm"), h, cfg.norm_eps)?,
                gate_up: fused_linear(
                    w,
                    &[&mlp("gate_proj"), &mlp("up_proj")],
                    h,
                    &[i, i],
                    cfg.mlp_bias,
                )?,
                down: linear(w, &mlp("down_proj"), i, h, cfg.mlp_bias)?,
            });
        }
        let norm = rms_norm(w, "model.norm", h, cfg.norm_eps)?;
        let head = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            w.get("lm_head.weight", &[cfg.vocab_size, h], Init::Normal)?
        };
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            blocks,
            norm,
            lm_head: LmHead::new(head)?,
            rope: RotaryTables::new(cfg, w.dtype(), w.device())?,
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
        let n = layout.num_tokens;
        let (qs, kvs, hd) = (self.cfg.q_size(), self.cfg.kv_size(), self.cfg.head_dim);
        let (cos, sin) = self.rope.at(&layout.positions)?;
        let mut x = self.embed.index_select(&layout.token_ids, 0)?;
        for (l, b) in self.blocks.iter().enumerate() {
            let h = b.input_norm.forward(&x)?;
            let qkv = b.qkv.forward(&h)?;
            let q = qkv.narrow(1, 0, qs)?.reshape((n, self.cfg.num_heads, hd));
            let k = qkv
                .narrow(1, qs, kvs)?
                .reshape((n, self.cfg.num_kv_heads, hd));
            let q = RotaryTables::apply(&q?, &cos, &sin)?.reshape((n, qs))?;
            let k = RotaryTables::apply(&k?, &cos, &sin)?.reshape((n, kvs))?;
            let v = qkv.narrow(1, qs + kvs, kvs)?.contiguous()?;
            let a = self.attention.forward(&q, &k, &v, layout, kv, l)?;
            x = (x + b.o_proj.forward(&a)?)?;
            let h = b.post_norm.forward(&x)?;
            let gu = b.gate_up.forward(&h)?;
            let i = self.cfg.intermediate_size;
            let act = gated_activation(&gu, i, self.cfg.activation)?;
            x = (x + b.down.forward(&act)?)?;
        }
        self.lm_head
            .logits_of_outputs(&x, layout, |x| Ok(self.norm.forward(&x)?))
    }
}

#[cfg(feature = "cuda")]
impl Llama {
    /// [`Llama::run`] with the fused CUDA kernels: residual add + RMSNorm, rotary embedding
    /// with the q/k/v split, SiLU·up — same maths, four to six fewer launches per layer. The
    /// MLP's residual add is carried into the next layer's input norm.
    fn run_fused(&self, layout: &BatchLayout<'_>, kv: &mut PagedKvStorage) -> Result<Tensor> {
        use crate::config::Activation;
        use crate::cuda::fused::{add_rms_norm, silu_mul, Rotary};
        let cos_sin = self
            .rope
            .cos_sin()
            .ok_or_else(|| crate::EngineError::CudaKernel {
                kernel: "rope_split_qkv".into(),
                reason: "the rotary table was not built on this device".into(),
            })?;
        let rotary = Rotary {
            cos_sin,
            positions: &layout.positions,
        };
        let i = self.cfg.intermediate_size;
        let mut x = self.embed.index_select(&layout.token_ids, 0)?;
        // The previous layer's MLP output, not yet added to `x`.
        let mut pending: Option<Tensor> = None;
        for (l, b) in self.blocks.iter().enumerate() {
            let h = match pending.take() {
                None => b.input_norm.forward(&x)?,
                Some(d) => {
                    let (sum, h) = add_rms_norm(&x, &d, b.input_norm.weight(), b.input_norm.eps())?;
                    x = sum;
                    h
                }
            };
            let qkv = b.qkv.forward(&h)?;
            let a = self
                .attention
                .forward_qkv(&qkv, Some(rotary), layout, kv, l)?;
            let o = b.o_proj.forward(&a)?;
            let (sum, h) = add_rms_norm(&x, &o, b.post_norm.weight(), b.post_norm.eps())?;
            x = sum;
            let gu = b.gate_up.forward(&h)?;
            let act = match self.cfg.activation {
                Activation::Silu => silu_mul(&gu)?,
                other => gated_activation(&gu, i, other)?,
            };
            pending = Some(b.down.forward(&act)?);
        }
        if let Some(d) = pending {
            x = (x + d)?;
        }
        self.lm_head
            .logits_of_outputs(&x, layout, |x| Ok(self.norm.forward(&x)?))
    }
}

impl CausalLm for Llama {
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
