//! The CUDA kernel path of [`PagedAttention::forward`], and [`PagedAttention::forward_qkv`]
//! that also fuses the rotary embedding and the cache write.

use candle_core::{DType, Tensor};

use super::{AttentionMetadata, PagedAttention};
use crate::cuda::fused::{rope_qkv_to_cache, rope_split_qkv, CacheTarget, Rotary};
use crate::error::Result;
use crate::kv_cache_storage::PagedKvStorage;
use crate::models::BatchLayout;

impl PagedAttention {
    /// Writes the step's K/V into the cache (one launch each) and attends every new token
    /// with the paged kernels; `q` `[n, H * D]`, `k`/`v` `[n, KVH * D]` → `[n, H * D]`.
    pub(super) fn forward_cuda(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        meta: &AttentionMetadata,
        kv: &mut PagedKvStorage,
        layer: usize,
    ) -> Result<Tensor> {
        let n = meta.num_tokens;
        let (kvh, d) = (self.num_kv_heads, self.head_dim);
        // An fp8 cache is written from the model's dtype by the kernel (one rounding).
        let rows_dtype = kv_rows_dtype(kv.dtype(), k.dtype());
        let k = k.to_dtype(rows_dtype)?.reshape((n, kvh, d))?;
        let v = v.to_dtype(rows_dtype)?.reshape((n, kvh, d))?;
        kv.write_slots(layer, &meta.slot_mapping, &k, &v)?;
        self.attend_cached_cuda(q, meta, kv, layer)
    }

    /// Attention of every new token over the cache, whose K/V rows for this step are already
    /// written; `q` `[n, H * D]` → `[n, H * D]` in `q`'s dtype.
    fn attend_cached_cuda(
        &self,
        q: &Tensor,
        meta: &AttentionMetadata,
        kv: &PagedKvStorage,
        layer: usize,
    ) -> Result<Tensor> {
        let (k_cache, v_cache) = kv.layer(layer)?;
        let out = crate::cuda::paged_attention(
            self,
            &q.to_dtype(kv_rows_dtype(kv.dtype(), q.dtype()))?,
            k_cache,
            v_cache,
            meta,
            kv.block_size(),
        )?;
        debug_assert_eq!(
            out.dims(),
            [meta.num_tokens, self.num_heads * self.head_dim]
        );
        Ok(out.to_dtype(q.dtype())?)
    }

    /// Attention of layer `layer` from a fused qkv projection `[n, (H + 2 * KVH) * D]` of a
    /// CUDA model (`rotary`: the Llama family's rotary embedding; `None` for GPT-2 / OPT).
    ///
    /// On the kernel path, with a cache of the qkv's dtype (or fp8 E4M3), one launch rotates q and k and
    /// writes k and v straight into their cache slots, then the paged kernels attend: two
    /// launches fewer per layer than splitting first and writing with `reshape_and_cache`.
    /// Otherwise it splits (and rotates) with one launch and goes through
    /// [`PagedAttention::forward`].
    ///
    /// # Errors
    /// [`crate::EngineError::CudaKernel`] naming a kernel that failed; as
    /// [`PagedAttention::forward`].
    pub fn forward_qkv(
        &self,
        qkv: &Tensor,
        rotary: Option<Rotary<'_>>,
        batch: &BatchLayout<'_>,
        kv: &mut PagedKvStorage,
        layer: usize,
    ) -> Result<Tensor> {
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let fused_write = self.use_kernels
            && qkv.device().is_cuda()
            && crate::cuda::supports_head_dim(d)
            && (kv.dtype() == qkv.dtype() || kv.dtype() == DType::F8E4M3);
        if let (true, Some(meta)) = (fused_write, &batch.attention) {
            let q = {
                let (k_cache, v_cache) = kv.layer(layer)?;
                let target = CacheTarget {
                    k_cache,
                    v_cache,
                    slot_mapping: &meta.slot_mapping,
                };
                rope_qkv_to_cache(qkv, rotary, h, kvh, d, target)?
            };
            return self.attend_cached_cuda(&q, meta, kv, layer);
        }
        let (q, k, v) = rope_split_qkv(qkv, rotary, h, kvh, d)?;
        self.forward(&q, &k, &v, batch, kv, layer)
    }
}

/// The dtype q and new K/V rows take for the kernels over a `cache` of that dtype: the cache's,
/// except over an fp8 cache, which the kernels read and write from the model's `dtype`.
fn kv_rows_dtype(cache: DType, dtype: DType) -> DType {
    if cache == DType::F8E4M3 {
        dtype
    } else {
        cache
    }
}
