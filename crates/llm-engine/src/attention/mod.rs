//! The one attention path every model uses: causal multi-head / grouped-query attention over
//! the paged KV cache.
//!
//! For each slice of the batch, [`PagedAttention::forward`]
//! 1. writes the slice's new K/V rows into the cache blocks its block table names
//!    ([`PagedKvStorage::write`]),
//! 2. gathers the K/V rows of positions `0 .. start_pos + len` back from the cache
//!    ([`PagedKvStorage::gather`], an `index_select` over slot indices, head-major so each
//!    head's context is a plain matrix),
//! 3. computes softmax(q·kᵀ·scale + causal mask)·v for the slice's queries, where the query
//!    at position `p` sees keys at positions `<= p` (and `> p - window` with a sliding window).
//!
//! Grouped-query attention needs no copy of the KV heads: the `G = num_heads / num_kv_heads`
//! query heads of a group are stacked along the query axis, so one batched matmul per KV head
//! serves them all. Scores and softmax run in f32 whatever the model dtype.
//!
//! The cache may hold another dtype than q (an fp8 E4M3 cache, [`crate::engine::KvCacheDtype`]):
//! the CPU decode kernel widens cached rows as it reads them; the other reference paths convert
//! the K/V they read to q's dtype before attending.
//!
//! Decode slices (one new token each) are attended together: their contexts are gathered into
//! one padded `[num_kv_heads, B, T_max, head_dim]` tensor with the padding masked out, so a
//! decode step of B sequences costs a fixed handful of tensor ops, not B times as many.
//!
//! This is the portable reference path (CPU, and correct on CUDA). With the `cuda` feature,
//! CUDA tensors take the kernel path instead ([`crate::cuda`]): one `reshape_and_cache` launch
//! per layer for K and one for V, then one decode and one prefill launch reading K/V in place
//! from the blocks, all driven by the step's [`AttentionMetadata`] (built once per forward
//! pass, shared by all layers). `LLM_ENGINE_ATTENTION=reference` (read when the model is
//! built) or [`PagedAttention::with_reference_path`] keeps CUDA on the reference path, which
//! the kernel tests compare against.

mod cpu_decode;
#[cfg(feature = "cuda")]
mod cuda_path;
mod mask;
pub mod metadata;

use candle_core::{DType, Tensor};

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kv_cache_storage::{convert_dtype, PagedKvStorage};
use crate::models::BatchLayout;
use cpu_decode::{paged_decode_attention_cpu, DecodeProblem};

pub use mask::causal_mask;
pub use metadata::AttentionMetadata;

/// Attention shape and scaling of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PagedAttention {
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f64,
    sliding_window: Option<usize>,
    /// Whether CUDA tensors go through the CUDA kernels (false: the reference tensor ops).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    use_kernels: bool,
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
            use_kernels: std::env::var("LLM_ENGINE_ATTENTION").map_or(true, |v| v != "reference"),
        }
    }

    /// The same attention on the reference path (tensor ops) on every device, also on CUDA.
    pub fn with_reference_path(self) -> Self {
        Self {
            use_kernels: false,
            ..self
        }
    }

    /// Query heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// Key/value heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_kv_heads
    }

    /// Elements per head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The softmax scale, `1/sqrt(head_dim)`.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The sliding window, if the model has one: a query at `p` sees keys `> p - window`.
    pub fn sliding_window(&self) -> Option<usize> {
        self.sliding_window
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
        #[cfg(feature = "cuda")]
        if self.use_kernels && q.device().is_cuda() && crate::cuda::supports_head_dim(d) {
            if let Some(meta) = &batch.attention {
                return self.forward_cuda(q, k, v, meta, kv, layer);
            }
        }
        let q = q.reshape((n, h, d))?;
        let k = k.reshape((n, kvh, d))?;
        let v = v.reshape((n, kvh, d))?;
        if q.device().is_cpu() {
            // Every new row of the step in one pass per tensor.
            let mut slots = Vec::with_capacity(n);
            for s in batch.slices {
                for p in s.start_pos..s.start_pos + s.token_ids.len() {
                    slots.push(kv.slot(&s.block_table, p)? as u32);
                }
            }
            kv.write_rows(layer, &slots, &k, &v)?;
        } else {
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
        }
        // Decode slices (one new token) are attended together in one padded batch; prefill
        // chunks one by one. `parts` are concatenated, then `order` puts rows back in token order.
        let decodes: Vec<usize> = (0..batch.slices.len())
            .filter(|&i| batch.slices[i].token_ids.len() == 1)
            .collect();
        let mut parts = Vec::new();
        let mut part_row_of_token = vec![0u32; n];
        let mut next_row = 0u32;
        if !decodes.is_empty() {
            let out = if q.device().is_cpu() {
                self.attend_decodes_cpu(&q, batch, &decodes, kv, layer)?
            } else {
                self.attend_decodes(&q, batch, &decodes, kv, layer)?
            };
            parts.push(out);
            for &i in &decodes {
                part_row_of_token[batch.offsets[i]] = next_row;
                next_row += 1;
            }
        }
        for (i, (s, &off)) in batch.slices.iter().zip(&batch.offsets).enumerate() {
            let len = s.token_ids.len();
            if len == 1 && decodes.binary_search(&i).is_ok() {
                continue;
            }
            let (kc, vc) = kv.gather(layer, &s.block_table, s.start_pos + len)?;
            let (kc, vc) = (
                convert_dtype(&kc, q.dtype())?,
                convert_dtype(&vc, q.dtype())?,
            );
            parts.push(self.attend(&q.narrow(0, off, len)?, &kc, &vc, s.start_pos)?);
            for t in 0..len {
                part_row_of_token[off + t] = next_row;
                next_row += 1;
            }
        }
        let out = if parts.len() == 1 {
            parts.remove(0)
        } else {
            Tensor::cat(&parts, 0)?
        };
        let in_order = part_row_of_token
            .iter()
            .enumerate()
            .all(|(t, &r)| r as usize == t);
        if in_order {
            Ok(out)
        } else {
            let order = Tensor::from_vec(part_row_of_token, n, out.device())?;
            Ok(out.index_select(&order, 0)?)
        }
    }

    /// Attention of the decode slices `which` with the CPU paged-attention kernel (reads each
    /// cached row once, straight from the blocks). Returns `[B, H * D]`.
    fn attend_decodes_cpu(
        &self,
        q: &Tensor,
        batch: &BatchLayout<'_>,
        which: &[usize],
        kv: &PagedKvStorage,
        layer: usize,
    ) -> Result<Tensor> {
        let rows: Vec<u32> = which.iter().map(|&i| batch.offsets[i] as u32).collect();
        let rows = Tensor::from_vec(rows, which.len(), q.device())?;
        let q = q.index_select(&rows, 0)?;
        let (k_cache, v_cache) = kv.layer(layer)?;
        let problem = DecodeProblem {
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
            block_size: kv.block_size(),
            num_slots: kv.num_blocks() * kv.block_size(),
            scale: self.scale as f32,
            sliding_window: self.sliding_window,
            seqs: which
                .iter()
                .map(|&i| {
                    let s = &batch.slices[i];
                    (s.block_table.as_slice(), s.start_pos + 1)
                })
                .collect(),
        };
        paged_decode_attention_cpu(&problem, &q, k_cache, v_cache)
    }

    /// Attention of the decode slices `which` (one query each) in one padded batch: their
    /// contexts are gathered into `[B, T_max]` (padding masked out), so a step of B decodes
    /// costs a handful of tensor ops instead of B times as many. Returns `[B, H * D]`.
    fn attend_decodes(
        &self,
        q: &Tensor,
        batch: &BatchLayout<'_>,
        which: &[usize],
        kv: &PagedKvStorage,
        layer: usize,
    ) -> Result<Tensor> {
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let g = h / kvh;
        let b = which.len();
        let ctxs: Vec<usize> = which
            .iter()
            .map(|&i| batch.slices[i].start_pos + 1)
            .collect();
        let t = ctxs.iter().copied().max().unwrap_or(1);
        let mut slots = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        let mut rows = Vec::with_capacity(b);
        for (&i, &ctx) in which.iter().zip(&ctxs) {
            let s = &batch.slices[i];
            let own = kv.slots(&s.block_table, ctx)?;
            let pad = own.first().copied().unwrap_or(0);
            slots.extend_from_slice(&own);
            slots.resize(slots.len() + (t - ctx), pad);
            let p = ctx - 1;
            mask.extend((0..t).map(|j| {
                let visible = j <= p && self.sliding_window.is_none_or(|w| j + w > p);
                if visible {
                    0f32
                } else {
                    f32::NEG_INFINITY
                }
            }));
            rows.push(batch.offsets[i] as u32);
        }
        let device = q.device();
        let (k_cache, v_cache) = kv.layer(layer)?;
        // A cache of another dtype (fp8) is converted whole before the `index_select`, which
        // candle's CUDA backend does not have for fp8: a full copy per layer, acceptable on
        // this reference path (the kernels read fp8 in place).
        let (k_cache, v_cache) = (
            convert_dtype(k_cache, q.dtype())?,
            convert_dtype(v_cache, q.dtype())?,
        );
        let slots = Tensor::from_vec(slots, b * t, device)?;
        // [KVH, B*T, D] -> [KVH, B, T, D]: per (head, sequence) a plain [T, D] matrix.
        let k = k_cache.index_select(&slots, 1)?.reshape((kvh, b, t, d))?;
        let v = v_cache.index_select(&slots, 1)?.reshape((kvh, b, t, d))?;
        let rows = Tensor::from_vec(rows, b, device)?;
        // [B, H, D] = [B, KVH, G, D] -> [KVH, B, G, D]
        let q = q
            .index_select(&rows, 0)?
            .reshape((b, kvh, g, d))?
            .transpose(0, 1)?
            .contiguous()?;
        let scores = (q.matmul(&k.transpose(2, 3)?)?.to_dtype(DType::F32)? * self.scale)?; // [KVH, B, G, T]
        let mask = Tensor::from_vec(mask, (1, b, 1, t), device)?;
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?.to_dtype(q.dtype())?;
        let out = probs.matmul(&v)?; // [KVH, B, G, D]
        Ok(out.transpose(0, 1)?.contiguous()?.reshape((b, h * d))?)
    }

    /// Causal attention of `len` queries at positions `start_pos ..` over `ctx` keys at
    /// positions `0 .. ctx`: `q` `[len, H, D]`, `k`/`v` `[KVH, ctx, D]` → `[len, H * D]`.
    ///
    /// # Errors
    /// Candle errors on inconsistent shapes.
    pub fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, start_pos: usize) -> Result<Tensor> {
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let g = h / kvh;
        let len = q.dim(0)?;
        let ctx = k.dim(1)?;
        let dtype = q.dtype();
        // [len, KVH, G, D] -> [KVH, G, len, D] -> [KVH, G*len, D]
        let q = q
            .reshape((len, kvh, g, d))?
            .permute((1, 2, 0, 3))?
            .contiguous()?
            .reshape((kvh, g * len, d))?;
        let k_t = k.transpose(1, 2)?; // [KVH, D, ctx], a strided view
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
        let out = probs.matmul(v)?; // [KVH, G*len, D]
        Ok(out
            .reshape((kvh, g, len, d))?
            .permute((2, 0, 1, 3))?
            .contiguous()?
            .reshape((len, h * d))?)
    }
}

#[cfg(test)]
mod tests;
