//! Per-step attention metadata for the CUDA kernels: built once per forward pass on the host,
//! uploaded in ONE copy, and shared by every layer (the per-layer work then launches kernels
//! only, with no host-side loops over sequences).
//!
//! | field | what it holds |
//! |---|---|
//! | `slot_mapping` | the cache slot of every new token (where `reshape_and_cache` writes its K/V) |
//! | `block_tables` | each slice's block table, padded to the longest |
//! | `context_lens`, `query_starts` | per slice: positions `0..ctx` to attend over, and where its new tokens start on the flat token axis |
//! | `decode_slices` | the slices with one new token (the decode kernel's grid rows) |
//! | `prefill_tiles` | `[slice, first query row, queries, first position]` per tile of at most `tokens_per_tile` new tokens of a longer slice (the prefill kernel's grid rows) |

use candle_core::{Device, Tensor};

use crate::error::{EngineError, Result};
use crate::models::SeqSlice;

/// Query rows (token × head pairs) one prefill thread block attends at a time; the CUDA
/// kernel's `PREFILL_ROWS`.
pub const PREFILL_ROWS_PER_BLOCK: usize = 16;

/// Query heads one thread block serves: the largest of 8, 4, 2, 1 that divides the group size
/// `num_heads / num_kv_heads` (all of them share one KV head, so its rows are read once).
pub fn query_heads_per_block(num_heads: usize, num_kv_heads: usize) -> usize {
    let group = (num_heads / num_kv_heads.max(1)).max(1);
    [8, 4, 2, 1]
        .into_iter()
        .find(|q| group.is_multiple_of(*q))
        .unwrap_or(1)
}

/// The device-side description of one forward batch that the attention kernels read.
#[derive(Debug, Clone)]
pub struct AttentionMetadata {
    /// New tokens in the batch.
    pub num_tokens: usize,
    /// Slot of each new token, u32 `[num_tokens]`.
    pub slot_mapping: Tensor,
    /// Block tables, u32 `[num_slices, max_blocks]` (padded with block 0).
    pub block_tables: Tensor,
    /// Columns of `block_tables`.
    pub max_blocks: usize,
    /// Per slice, the context length after this step (`start_pos + new tokens`), u32 `[num_slices]`.
    pub context_lens: Tensor,
    /// Per slice, the flat-axis row of its first new token, u32 `[num_slices]`.
    pub query_starts: Tensor,
    /// Slices with exactly one new token, u32 `[num_decodes]`.
    pub decode_slices: Tensor,
    /// Rows of `decode_slices`.
    pub num_decodes: usize,
    /// Prefill tiles, u32 `[num_prefill_tiles, 4]`: slice, first query row, number of queries,
    /// position of the first query.
    pub prefill_tiles: Tensor,
    /// Rows of `prefill_tiles`.
    pub num_prefill_tiles: usize,
    /// New tokens per prefill tile (`PREFILL_ROWS_PER_BLOCK / query_heads_per_block`).
    pub tokens_per_tile: usize,
    /// The longest context in the batch.
    pub max_context_len: usize,
}

/// [`AttentionMetadata`]'s contents on the host, before the upload: one u32 buffer with the
/// six sections in field order, and the sizes the kernels' launches need.
#[derive(Debug, Clone)]
pub struct MetadataHost {
    /// slots, block tables, context lengths, query starts, decode slices, prefill tiles.
    pub buf: Vec<u32>,
    sections: [usize; 6],
    num_tokens: usize,
    num_slices: usize,
    max_blocks: usize,
    num_decodes: usize,
    num_prefill_tiles: usize,
    tokens_per_tile: usize,
    max_context_len: usize,
}

impl MetadataHost {
    /// Builds the metadata of `slices` (whose new tokens start at `offsets` on the flat token
    /// axis) for a cache of `block_size`-token blocks and a model whose KV heads each serve
    /// `group` query heads. Block tables are padded to the longest slice's, or to
    /// `min_max_blocks` columns if that is more (a fixed width keeps the kernels' arguments
    /// the same from step to step, as a replayed CUDA graph needs).
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] when a block table does not cover its slice or a value
    /// does not fit in u32.
    pub fn new(
        slices: &[SeqSlice],
        offsets: &[usize],
        block_size: usize,
        num_heads: usize,
        num_kv_heads: usize,
        min_max_blocks: usize,
    ) -> Result<Self> {
        let u32_of = |x: usize, what: &str| {
            u32::try_from(x).map_err(|_| {
                EngineError::InvalidBatch(format!("{what} {x} does not fit the kernels' u32"))
            })
        };
        let num_slices = slices.len();
        let num_tokens: usize = slices.iter().map(|s| s.token_ids.len()).sum();
        let tokens_per_tile =
            PREFILL_ROWS_PER_BLOCK / query_heads_per_block(num_heads, num_kv_heads);
        let ctx_of = |s: &SeqSlice| s.start_pos + s.token_ids.len();
        let max_context_len = slices.iter().map(ctx_of).max().unwrap_or(0);
        let max_blocks = slices
            .iter()
            .map(|s| ctx_of(s).div_ceil(block_size))
            .max()
            .unwrap_or(0)
            .max(min_max_blocks)
            .max(1);

        let mut slots = Vec::with_capacity(num_tokens);
        let mut tables = vec![0u32; num_slices * max_blocks];
        let mut ctx_lens = Vec::with_capacity(num_slices);
        let mut starts = Vec::with_capacity(num_slices);
        let mut decodes = Vec::new();
        let mut tiles = Vec::new();
        for (i, (s, &off)) in slices.iter().zip(offsets).enumerate() {
            let ctx = ctx_of(s);
            let needed = ctx.div_ceil(block_size);
            let table = s.block_table.get(..needed).ok_or_else(|| {
                EngineError::InvalidBatch(format!(
                    "slice {i} spans {ctx} positions = {needed} blocks, its block table has {}",
                    s.block_table.len()
                ))
            })?;
            tables[i * max_blocks..i * max_blocks + needed].copy_from_slice(table);
            for p in s.start_pos..ctx {
                let slot = table[p / block_size] as usize * block_size + p % block_size;
                slots.push(u32_of(slot, "slot")?);
            }
            ctx_lens.push(u32_of(ctx, "context length")?);
            starts.push(u32_of(off, "token offset")?);
            let len = s.token_ids.len();
            if len == 1 {
                decodes.push(u32_of(i, "slice index")?);
            } else {
                for first in (0..len).step_by(tokens_per_tile) {
                    let n = tokens_per_tile.min(len - first);
                    tiles.extend([
                        u32_of(i, "slice index")?,
                        u32_of(off + first, "token offset")?,
                        n as u32,
                        u32_of(s.start_pos + first, "position")?,
                    ]);
                }
            }
        }
        let num_decodes = decodes.len();
        let num_prefill_tiles = tiles.len() / 4;
        let sections = [
            slots.len(),
            tables.len(),
            ctx_lens.len(),
            starts.len(),
            decodes.len(),
            tiles.len(),
        ];
        let mut buf = Vec::with_capacity(sections.iter().sum());
        for part in [slots, tables, ctx_lens, starts, decodes, tiles] {
            buf.extend_from_slice(&part);
        }
        Ok(Self {
            buf,
            sections,
            num_tokens,
            num_slices,
            max_blocks,
            num_decodes,
            num_prefill_tiles,
            tokens_per_tile,
            max_context_len,
        })
    }

    /// The metadata whose buffer was uploaded to `all` starting at element `at`: the fields
    /// are views into it (no copy).
    ///
    /// # Errors
    /// candle errors when `all` is too short.
    pub fn views(&self, all: &Tensor, at: usize) -> Result<AttentionMetadata> {
        let mut at = at;
        let mut next = |len: usize| -> Result<Tensor> {
            let t = all.narrow(0, at, len)?;
            at += len;
            Ok(t)
        };
        let s = &self.sections;
        Ok(AttentionMetadata {
            num_tokens: self.num_tokens,
            slot_mapping: next(s[0])?,
            block_tables: next(s[1])?.reshape((self.num_slices, self.max_blocks))?,
            max_blocks: self.max_blocks,
            context_lens: next(s[2])?,
            query_starts: next(s[3])?,
            decode_slices: next(s[4])?,
            num_decodes: self.num_decodes,
            prefill_tiles: next(s[5])?.reshape((self.num_prefill_tiles, 4))?,
            num_prefill_tiles: self.num_prefill_tiles,
            tokens_per_tile: self.tokens_per_tile,
            max_context_len: self.max_context_len,
        })
    }
}

impl AttentionMetadata {
    /// Builds the metadata of `slices` (see [`MetadataHost::new`]) and uploads it to `device`
    /// in one copy.
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] when a block table does not cover its slice or a value
    /// does not fit in u32; candle errors from the upload.
    pub fn new(
        slices: &[SeqSlice],
        offsets: &[usize],
        block_size: usize,
        num_heads: usize,
        num_kv_heads: usize,
        device: &Device,
    ) -> Result<Self> {
        let host = MetadataHost::new(slices, offsets, block_size, num_heads, num_kv_heads, 0)?;
        let all = Tensor::new(host.buf.as_slice(), device)?;
        host.views(&all, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(len: usize, start_pos: usize, table: Vec<u32>) -> SeqSlice {
        SeqSlice {
            token_ids: vec![1; len],
            start_pos,
            block_table: table,
            want_logits: true,
        }
    }

    #[test]
    fn group_size_picks_the_heads_per_block() {
        assert_eq!(query_heads_per_block(32, 32), 1);
        assert_eq!(query_heads_per_block(32, 8), 4);
        assert_eq!(query_heads_per_block(28, 4), 1); // group 7
        assert_eq!(query_heads_per_block(12, 2), 2); // group 6
        assert_eq!(query_heads_per_block(64, 4), 8); // group 16
    }

    #[test]
    fn slots_tiles_and_decodes_follow_the_slices() -> Result<()> {
        // block size 4; slice 0: decode at position 5 (blocks 7, 3); slice 1: 20 new tokens
        // from position 2 (blocks 1, 0, 5, 6, 2, 4) with 8 query heads per KV head -> 2 tokens
        // per tile.
        let slices = [
            slice(1, 5, vec![7, 3]),
            slice(20, 2, vec![1, 0, 5, 6, 2, 4, 9]),
        ];
        let m = AttentionMetadata::new(&slices, &[0, 1], 4, 8, 1, &Device::Cpu)?;
        assert_eq!(m.num_tokens, 21);
        assert_eq!(m.tokens_per_tile, 2);
        let slots = m.slot_mapping.to_vec1::<u32>()?;
        assert_eq!(slots[0], 3 * 4 + 1);
        assert_eq!(&slots[1..4], &[4 + 2, 4 + 3, 0]);
        assert_eq!(slots[20], 4 * 4 + 1); // position 21: block 4 of the table = 4, row 1
        assert_eq!(m.max_blocks, 6);
        assert_eq!(m.block_tables.to_vec2::<u32>()?[0], vec![7, 3, 0, 0, 0, 0]);
        assert_eq!(m.block_tables.to_vec2::<u32>()?[1], vec![1, 0, 5, 6, 2, 4]);
        assert_eq!(m.context_lens.to_vec1::<u32>()?, vec![6, 22]);
        assert_eq!(m.query_starts.to_vec1::<u32>()?, vec![0, 1]);
        assert_eq!(m.decode_slices.to_vec1::<u32>()?, vec![0]);
        let tiles = m.prefill_tiles.to_vec2::<u32>()?;
        assert_eq!(tiles.len(), 10);
        assert_eq!(tiles[0], vec![1, 1, 2, 2]);
        assert_eq!(tiles[9], vec![1, 19, 2, 20]);
        assert_eq!(m.max_context_len, 22);
        Ok(())
    }

    #[test]
    fn a_short_block_table_is_an_error() {
        let slices = [slice(9, 0, vec![0, 1])];
        let err = AttentionMetadata::new(&slices, &[0], 4, 4, 4, &Device::Cpu);
        assert!(matches!(err, Err(EngineError::InvalidBatch(_))));
    }
}
