//! The flat token layout of a forward batch: all new tokens of all slices concatenated.

use candle_core::{Device, Tensor};

use super::SeqSlice;
use crate::attention::metadata::MetadataHost;
use crate::attention::AttentionMetadata;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kv_cache_storage::PagedKvStorage;

/// A validated batch: the slices, where each one's tokens sit on the flat token axis, and
/// the index tensors every model needs (token ids, positions, rows to compute logits for).
#[derive(Debug)]
pub struct BatchLayout<'a> {
    /// The slices, in order.
    pub slices: &'a [SeqSlice],
    /// Offset of each slice's first token on the flat token axis.
    pub offsets: Vec<usize>,
    /// Total number of new tokens.
    pub num_tokens: usize,
    /// Token ids, u32 `[num_tokens]`.
    pub token_ids: Tensor,
    /// Absolute positions, u32 `[num_tokens]`.
    pub positions: Tensor,
    /// Rows of the flat token axis whose logits are returned, u32 `[num_outputs]`.
    pub output_rows: Tensor,
    /// Number of rows in `output_rows`.
    pub num_outputs: usize,
    /// The attention kernels' per-step metadata (slot mapping, block tables, context lengths,
    /// decode and prefill work lists), built and uploaded once for all layers; `Some` on CUDA
    /// devices only.
    pub attention: Option<AttentionMetadata>,
}

impl<'a> BatchLayout<'a> {
    /// Validates `slices` against the model and the cache and builds the index tensors.
    /// With `all_logits`, every token's row is an output row; otherwise the last token of each
    /// slice with `want_logits`.
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] for an empty slice, a token id outside the vocabulary, a
    /// position past `max_position_embeddings`, or a block table that does not cover the slice.
    pub fn new(
        slices: &'a [SeqSlice],
        cfg: &ModelConfig,
        kv: &PagedKvStorage,
        device: &Device,
        all_logits: bool,
    ) -> Result<Self> {
        Self::build(slices, cfg, kv, device, all_logits, None)
    }

    /// [`BatchLayout::new`] (last-token logits) with the index data written into `fixed`'s
    /// persistent device buffer instead of a fresh upload, block tables padded to its width:
    /// the tensors then live at the same addresses every step, so a CUDA graph captured over
    /// a forward pass reads each step's data when replayed. `fixed.buffer` must hold exactly
    /// [`FixedLayout::len`] u32 elements for this batch's shape.
    ///
    /// # Errors
    /// As [`BatchLayout::new`]; [`EngineError::InvalidBatch`] when the batch does not fit the
    /// buffer (another token count or a longer block table); candle errors.
    pub fn new_fixed(
        slices: &'a [SeqSlice],
        cfg: &ModelConfig,
        kv: &PagedKvStorage,
        fixed: &FixedLayout<'_>,
    ) -> Result<Self> {
        let device = fixed.buffer.device().clone();
        Self::build(slices, cfg, kv, &device, false, Some(fixed))
    }

    fn build(
        slices: &'a [SeqSlice],
        cfg: &ModelConfig,
        kv: &PagedKvStorage,
        device: &Device,
        all_logits: bool,
        fixed: Option<&FixedLayout<'_>>,
    ) -> Result<Self> {
        if kv.num_layers() != cfg.num_layers {
            return Err(EngineError::InvalidBatch(format!(
                "KV storage has {} layers, the model {}",
                kv.num_layers(),
                cfg.num_layers
            )));
        }
        let mut offsets = Vec::with_capacity(slices.len());
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut rows = Vec::new();
        for (i, s) in slices.iter().enumerate() {
            let n = s.token_ids.len();
            if n == 0 {
                return Err(EngineError::InvalidBatch(format!(
                    "slice {i} has no tokens"
                )));
            }
            let end = s.start_pos + n;
            if end > cfg.max_position_embeddings {
                return Err(EngineError::InvalidBatch(format!(
                    "slice {i} reaches position {end}, past the model's max_position_embeddings {}",
                    cfg.max_position_embeddings
                )));
            }
            if let Some(&bad) = s.token_ids.iter().find(|&&t| t as usize >= cfg.vocab_size) {
                return Err(EngineError::InvalidBatch(format!(
                    "slice {i} has token id {bad}, outside the vocabulary of {}",
                    cfg.vocab_size
                )));
            }
            let needed = end.div_ceil(kv.block_size());
            if s.block_table.len() < needed {
                return Err(EngineError::InvalidBatch(format!(
                    "slice {i} spans {end} positions = {needed} blocks of {}, but its block table has {}",
                    kv.block_size(),
                    s.block_table.len()
                )));
            }
            if let Some(&bad) = s.block_table[..needed]
                .iter()
                .find(|&&b| b as usize >= kv.num_blocks())
            {
                return Err(EngineError::InvalidBatch(format!(
                    "slice {i} names block {bad}, but the KV storage has {} blocks",
                    kv.num_blocks()
                )));
            }
            let offset = ids.len();
            offsets.push(offset);
            ids.extend_from_slice(&s.token_ids);
            positions.extend((s.start_pos..end).map(|p| p as u32));
            if all_logits {
                rows.extend((offset..offset + n).map(|r| r as u32));
            } else if s.want_logits {
                rows.push((offset + n - 1) as u32);
            }
        }
        let num_tokens = ids.len();
        let num_outputs = rows.len();
        if !device.is_cuda() {
            return Ok(Self {
                slices,
                offsets,
                num_tokens,
                token_ids: Tensor::from_vec(ids, num_tokens, device)?,
                positions: Tensor::from_vec(positions, num_tokens, device)?,
                output_rows: Tensor::from_vec(rows, num_outputs, device)?,
                num_outputs,
                attention: None,
            });
        }
        let meta = MetadataHost::new(
            slices,
            &offsets,
            kv.block_size(),
            cfg.num_heads,
            cfg.num_kv_heads,
            fixed.map_or(0, |f| f.max_blocks),
        )?;
        // One host-to-device copy per step for everything: ids, positions, output rows, then
        // the attention metadata.
        let mut all = ids;
        all.extend_from_slice(&positions);
        all.extend_from_slice(&rows);
        let meta_at = all.len();
        all.extend_from_slice(&meta.buf);
        let all = match fixed {
            None => Tensor::from_vec(all, meta_at + meta.buf.len(), device)?,
            Some(f) => {
                if f.buffer.dims1()? != all.len() {
                    return Err(EngineError::InvalidBatch(format!(
                        "the batch's index data is {} values, the fixed buffer {}",
                        all.len(),
                        f.buffer.dims1()?
                    )));
                }
                let staged = Tensor::from_vec(all, f.buffer.dims1()?, device)?;
                f.buffer.slice_set(&staged, 0, 0)?;
                f.buffer.clone()
            }
        };
        let attention = Some(meta.views(&all, meta_at)?);
        let (token_ids, positions, output_rows) = (
            all.narrow(0, 0, num_tokens)?,
            all.narrow(0, num_tokens, num_tokens)?,
            all.narrow(0, 2 * num_tokens, num_outputs)?,
        );
        Ok(Self {
            slices,
            offsets,
            num_tokens,
            token_ids,
            positions,
            output_rows,
            num_outputs,
            attention,
        })
    }
}

/// A persistent device buffer for [`BatchLayout::new_fixed`]: a decode batch of a fixed size
/// whose block tables are padded to `max_blocks` columns.
#[derive(Debug, Clone, Copy)]
pub struct FixedLayout<'t> {
    /// u32 `[FixedLayout::len(..)]` on the device.
    pub buffer: &'t Tensor,
    /// Block-table width (blocks of the longest sequence the engine allows).
    pub max_blocks: usize,
}

impl FixedLayout<'_> {
    /// Elements the buffer needs for a decode step of `batch` sequences (one new token and
    /// one logits row each) with `max_blocks`-wide block tables.
    pub fn len(batch: usize, max_blocks: usize) -> usize {
        // ids, positions, output rows; slots, tables, context lengths, query starts, decodes.
        3 * batch + batch + batch * max_blocks.max(1) + 3 * batch
    }
}
