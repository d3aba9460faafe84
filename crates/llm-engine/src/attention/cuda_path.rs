//! The CUDA kernel path of [`PagedAttention::forward`].

use candle_core::Tensor;

use super::{AttentionMetadata, PagedAttention};
use crate::error::Result;
use crate::kv_cache_storage::PagedKvStorage;

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
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let cache_dtype = kv.dtype();
        let k = k.to_dtype(cache_dtype)?.reshape((n, kvh, d))?;
        let v = v.to_dtype(cache_dtype)?.reshape((n, kvh, d))?;
        kv.write_slots(layer, &meta.slot_mapping, &k, &v)?;
        let (k_cache, v_cache) = kv.layer(layer)?;
        let out = crate::cuda::paged_attention(
            self,
            &q.to_dtype(cache_dtype)?,
            k_cache,
            v_cache,
            meta,
            kv.block_size(),
        )?;
        debug_assert_eq!(out.dims(), [n, h * d]);
        Ok(out.to_dtype(q.dtype())?)
    }
}
