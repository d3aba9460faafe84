//! The one attention path every model uses: causal multi-head / grouped-query attention over
//! the paged KV cache.
//!
//! For each slice of the batch, [`PagedAttention::forward`]
//! 1. writes the slice's new K/V rows into the cache blocks its block table names
//!    ([`PagedKvStorage::write`]),
//! 2. gathers the K/V rows of positions `0 .. start_pos + len` back from the cache
//!    ([`PagedKvStorage::gather`], an `index_select` over slot indices),
//! 3. computes softmax(q·kᵀ·scale + causal mask)·v for the slice's queries, where the query
//!    at position `p` sees keys at positions `<= p` (and `> p - window` with a sliding window).
//!
//! Grouped-query attention needs no copy of the KV heads: the `G = num_heads / num_kv_heads`
//! query heads of a group are stacked along the query axis, so one batched matmul per KV head
//! serves them all. Scores and softmax run in f32 whatever the model dtype.
//!
//! This is the portable reference path (CPU, and correct on CUDA); a fused CUDA kernel can
//! replace [`PagedAttention::forward`] behind the same signature.

mod mask;

use candle_core::{DType, Tensor};

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kv_cache_storage::PagedKvStorage;
use crate::models::BatchLayout;

pub use mask::causal_mask;

/// Attention shape and scaling of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PagedAttention {
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f64,
    sliding_window: Option<usize>,
}

impl PagedAttention {
    /// Attention for `cfg`'s heads, scaled by `1/sqrt(head_dim)`.
    pub fn new(cfg: &ModelConfig) -> Self {
        Self {
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            scale: 1.0 / (cfg.head_dim as f64).sqrt(),
            sliding_window: cfg.sliding_window,
        }
    }

    /// Attention of layer `layer` for a whole batch.
    ///
    /// `q` is `[num_tokens, num_heads * head_dim]`, `k` and `v` are
    /// `[num_tokens, num_kv_heads * head_dim]` (position encoding already applied), all on the
    /// flat token axis of `batch`. Returns `[num_tokens, num_heads * head_dim]`.
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] when the shapes do not match the batch; candle errors.
    pub fn forward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        batch: &BatchLayout<'_>,
        kv: &mut PagedKvStorage,
        layer: usize,
    ) -> Result<Tensor> {
        let n = batch.num_tokens;
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        if q.dims() != [n, h * d] || k.dims() != [n, kvh * d] || v.dims() != [n, kvh * d] {
            return Err(EngineError::InvalidBatch(format!(
                "attention inputs q {:?} k {:?} v {:?} do not fit {n} tokens of {h} heads / {kvh} kv heads of {d}",
                q.dims(),
                k.dims(),
                v.dims()
            )));
        }
        let q = q.reshape((n, h, d))?;
        let k = k.reshape((n, kvh, d))?;
        let v = v.reshape((n, kvh, d))?;
        for (s, &off) in batch.slices.iter().zip(&batch.offsets) {
            let len = s.token_ids.len();
            kv.write(
                layer,
                &s.block_table,
                s.start_pos,
                &k.narrow(0, off, len)?,
                &v.narrow(0, off, len)?,
            )?;
        }
        let mut outs = Vec::with_capacity(batch.slices.len());
        for (s, &off) in batch.slices.iter().zip(&batch.offsets) {
            let len = s.token_ids.len();
            let ctx = s.start_pos + len;
            let (kc, vc) = kv.gather(layer, &s.block_table, ctx)?;
            outs.push(self.attend(&q.narrow(0, off, len)?, &kc, &vc, s.start_pos)?);
        }
        Ok(Tensor::cat(&outs, 0)?)
    }

    /// Causal attention of `len` queries at positions `start_pos ..` over `ctx` keys at
    /// positions `0 .. ctx`: `q` `[len, H, D]`, `k`/`v` `[ctx, KVH, D]` → `[len, H * D]`.
    ///
    /// # Errors
    /// Candle errors on inconsistent shapes.
    pub fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, start_pos: usize) -> Result<Tensor> {
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let g = h / kvh;
        let len = q.dim(0)?;
        let ctx = k.dim(0)?;
        let dtype = q.dtype();
        // [len, KVH, G, D] -> [KVH, G, len, D] -> [KVH, G*len, D]
        let q = q
            .reshape((len, kvh, g, d))?
            .permute((1, 2, 0, 3))?
            .contiguous()?
            .reshape((kvh, g * len, d))?;
        let k_t = k.permute((1, 2, 0))?.contiguous()?; // [KVH, D, ctx]
        let v = v.transpose(0, 1)?.contiguous()?; // [KVH, ctx, D]
        let scores = (q.matmul(&k_t)?.to_dtype(DType::F32)? * self.scale)?; // [KVH, G*len, ctx]
        let needs_mask = len > 1 || self.sliding_window.is_some_and(|w| w < ctx);
        let scores = if needs_mask {
            let mask = causal_mask(len, start_pos, ctx, self.sliding_window, q.device())?;
            scores
                .reshape((kvh, g, len, ctx))?
                .broadcast_add(&mask)?
                .reshape((kvh, g * len, ctx))?
        } else {
            scores
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dtype)?;
        let out = probs.matmul(&v)?; // [KVH, G*len, D]
        Ok(out
            .reshape((kvh, g, len, d))?
            .permute((2, 0, 1, 3))?
            .contiguous()?
            .reshape((len, h * d))?)
    }
}
