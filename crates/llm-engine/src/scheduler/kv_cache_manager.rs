//! [`KvCacheManager`]: each request's block table on top of the [`KvBlockPool`]: finds a new
//! request's cached prefix, grows block tables as tokens are scheduled (all or nothing),
//! copies a shared block before it is written (copy-on-write), registers full blocks in the
//! prefix cache, and frees a request's blocks.
//!
//! Copy-on-write: a block in the prefix cache, or held by more than one request, is never
//! written. The one case where a request would write into such a block is a prompt whose full
//! blocks all hit the cache: its last token must still run through the model (its logits give
//! the first output token), and its K/V belongs in the last cached block. That block is then
//! copied into a fresh private block first, and the copy is written.
//!
//! Cost per call: O(blocks touched); a prefix lookup is O(prompt length) for hashing.

use std::collections::HashMap;

use crate::block_pool::{BlockId, KvBlockPool};
use crate::error::Result;
use crate::prefix_cache::BlockHash;
use crate::request::RequestId;

/// A block copy the engine must do before the forward pass: `(source, destination)`.
pub type BlockCopy = (BlockId, BlockId);

/// Blocks of a new request found in the prefix cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachedPrefix {
    /// The cached blocks, in order (not yet referenced by the request).
    pub blocks: Vec<BlockId>,
    /// Their hashes.
    pub hashes: Vec<BlockHash>,
    /// Tokens whose K/V they hold and that need no recompute (at most the prompt length − 1:
    /// the last token is always computed to get logits).
    pub num_computed_tokens: usize,
}

#[derive(Debug, Clone, Default)]
struct SeqBlocks {
    blocks: Vec<BlockId>,
    /// Hashes of the first full blocks (computed lazily).
    hashes: Vec<BlockHash>,
    /// Leading blocks already offered to the prefix cache.
    num_registered: usize,
}

/// Per-request block tables over a shared [`KvBlockPool`].
#[derive(Debug, Clone)]
pub struct KvCacheManager {
    pool: KvBlockPool,
    block_size: usize,
    seqs: HashMap<RequestId, SeqBlocks>,
}

impl KvCacheManager {
    /// A manager over `pool` with blocks of `block_size` tokens.
    pub fn new(pool: KvBlockPool, block_size: usize) -> Self {
        KvCacheManager {
            pool,
            block_size: block_size.max(1),
            seqs: HashMap::new(),
        }
    }

    /// The block pool.
    pub fn pool(&self) -> &KvBlockPool {
        &self.pool
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks needed to hold `num_tokens` tokens.
    pub fn blocks_for(&self, num_tokens: usize) -> usize {
        num_tokens.div_ceil(self.block_size)
    }

    /// The block table of `id` (empty if it holds no blocks).
    pub fn block_table(&self, id: RequestId) -> &[BlockId] {
        self.seqs.get(&id).map_or(&[], |s| s.blocks.as_slice())
    }

    /// Requests holding blocks.
    pub fn num_seqs(&self) -> usize {
        self.seqs.len()
    }

    /// Finds the longest run of leading full blocks of `tokens` in the prefix cache.
    /// Nothing is referenced yet: pass the result to [`KvCacheManager::allocate_slots`].
    pub fn find_cached_prefix(&mut self, tokens: &[u32]) -> CachedPrefix {
        let mut found = CachedPrefix::default();
        if !self.pool.prefix_caching() {
            return found;
        }
        let bs = self.block_size;
        for (i, chunk) in tokens.chunks_exact(bs).enumerate() {
            let parent = i.checked_sub(1).and_then(|p| found.hashes.get(p).copied());
            let h = BlockHash::chain(parent, chunk);
            match self.pool.lookup_cached(h, parent, chunk) {
                Some(b) => {
                    found.blocks.push(b);
                    found.hashes.push(h);
                }
                None => break,
            }
        }
        found.num_computed_tokens = (found.blocks.len() * bs).min(tokens.len().saturating_sub(1));
        found
    }

    /// Makes room for `num_new` tokens of request `id` after its first `num_computed` tokens
    /// (with `prefix`, a new request's cached blocks, taken first). All or nothing: returns
    /// `Ok(None)` and changes nothing when the pool has too few free blocks; otherwise the
    /// block copies to do before the forward pass (a shared block about to be written is
    /// replaced by a private copy).
    ///
    /// # Errors
    /// Pool errors (a bug: never expected after the free-block check).
    pub fn allocate_slots(
        &mut self,
        id: RequestId,
        num_computed: usize,
        num_new: usize,
        prefix: Option<&CachedPrefix>,
    ) -> Result<Option<Vec<BlockCopy>>> {
        let bs = self.block_size;
        let empty = SeqBlocks::default();
        let seq = self.seqs.get(&id).unwrap_or(&empty);
        let prefix_blocks: &[BlockId] = prefix.map_or(&[], |p| p.blocks.as_slice());
        let held = seq.blocks.len() + prefix_blocks.len();
        let needed_total = (num_computed + num_new).div_ceil(bs);
        let new_blocks = needed_total.saturating_sub(held);
        // Prefix blocks nobody holds are in the free queue: taking them uses free blocks.
        let mut revived = 0usize;
        for &b in prefix_blocks {
            if self.pool.ref_count(b)? == 0 {
                revived += 1;
            }
        }
        // Existing blocks the new tokens are written into that are shared with another holder
        // or registered in the prefix cache: cached blocks are immutable (another request may
        // pick one up and read it in this very step), so the writer gets a private copy.
        let mut cow = Vec::new();
        let first_written = num_computed / bs;
        for idx in first_written..held.min(needed_total) {
            let (b, extra) = match seq.blocks.get(idx) {
                Some(&b) => (b, 0),
                None => (prefix_blocks[idx - seq.blocks.len()], 1),
            };
            if self.pool.ref_count(b)? + extra > 1 || self.pool.block_hash(b)?.is_some() {
                cow.push(idx);
            }
        }
        if new_blocks + cow.len() + revived > self.pool.num_free() {
            return Ok(None);
        }
        let seq = self.seqs.entry(id).or_default();
        if let Some(p) = prefix {
            for &b in &p.blocks {
                self.pool.share(b)?;
            }
            seq.blocks.extend_from_slice(&p.blocks);
            seq.hashes = p.hashes.clone();
            seq.num_registered = p.blocks.len();
        }
        let mut copies = Vec::with_capacity(cow.len());
        for idx in cow {
            let src = seq.blocks[idx];
            let dst = self.pool.allocate()?;
            self.pool.free(src)?;
            seq.blocks[idx] = dst;
            // The copy is private and about to be written: not registered.
            seq.num_registered = seq.num_registered.min(idx);
            seq.hashes.truncate(idx);
            copies.push((src, dst));
        }
        for _ in 0..new_blocks {
            let b = self.pool.allocate()?;
            seq.blocks.push(b);
        }
        Ok(Some(copies))
    }

    /// Offers the full blocks among the first `num_computed` tokens of `tokens` (request `id`'s
    /// tokens) to the prefix cache. No-op when caching is off.
    ///
    /// # Errors
    /// Pool errors (a bug).
    pub fn cache_full_blocks(
        &mut self,
        id: RequestId,
        tokens: &[u32],
        num_computed: usize,
    ) -> Result<()> {
        if !self.pool.prefix_caching() {
            return Ok(());
        }
        let bs = self.block_size;
        let Some(seq) = self.seqs.get_mut(&id) else {
            return Ok(());
        };
        let full = (num_computed.min(tokens.len()) / bs).min(seq.blocks.len());
        if full <= seq.num_registered {
            return Ok(());
        }
        BlockHash::extend_full_blocks(&mut seq.hashes, &tokens[..full * bs], bs);
        for i in seq.num_registered..full {
            let parent = i.checked_sub(1).map(|p| seq.hashes[p]);
            self.pool.cache_block(
                seq.blocks[i],
                seq.hashes[i],
                parent,
                &tokens[i * bs..(i + 1) * bs],
            )?;
        }
        seq.num_registered = full;
        Ok(())
    }

    /// Frees every block of request `id` (last block first, so with prefix caching a prompt's
    /// tail is evicted before its head). No-op if it holds none.
    ///
    /// # Errors
    /// Pool errors (a bug, e.g. a double free).
    pub fn free(&mut self, id: RequestId) -> Result<()> {
        if let Some(seq) = self.seqs.remove(&id) {
            for &b in seq.blocks.iter().rev() {
                self.pool.free(b)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;

    fn manager(blocks: usize, caching: bool) -> Result<KvCacheManager> {
        Ok(KvCacheManager::new(KvBlockPool::new(blocks, caching)?, 4))
    }

    #[test]
    fn grows_block_tables_all_or_nothing() -> Result<()> {
        let mut m = manager(4, false)?;
        let a = RequestId(0);
        assert_eq!(m.allocate_slots(a, 0, 6, None)?, Some(vec![]));
        assert_eq!(m.block_table(a).len(), 2);
        assert_eq!(m.allocate_slots(a, 6, 2, None)?, Some(vec![]));
        assert_eq!(m.block_table(a).len(), 2, "8 tokens fit in 2 blocks");
        assert_eq!(m.allocate_slots(a, 8, 1, None)?, Some(vec![]));
        assert_eq!(m.block_table(a).len(), 3);
        let b = RequestId(1);
        assert_eq!(m.allocate_slots(b, 0, 5, None)?, None, "needs 2, 1 free");
        assert_eq!(m.block_table(b).len(), 0);
        m.free(a)?;
        assert_eq!(m.pool().num_free(), 4);
        Ok(())
    }

    #[test]
    fn prefix_hits_share_blocks_and_copy_on_write() -> Result<()> {
        let mut m = manager(8, true)?;
        let prompt: Vec<u32> = (0..8).collect();
        let a = RequestId(0);
        let p = m.find_cached_prefix(&prompt);
        assert_eq!(p.num_computed_tokens, 0);
        m.allocate_slots(a, 0, 8, Some(&p))?;
        m.cache_full_blocks(a, &prompt, 8)?;
        // Same prompt: both blocks hit, the last token is recomputed into the shared last
        // block, so that block is copied first.
        let b = RequestId(1);
        let p = m.find_cached_prefix(&prompt);
        assert_eq!(p.blocks, m.block_table(a).to_vec());
        assert_eq!(p.num_computed_tokens, 7);
        let copies = m
            .allocate_slots(b, 7, 1, Some(&p))?
            .ok_or(EngineError::Stalled {
                waiting: 0,
                running: 0,
            })?;
        let (ta, tb) = (m.block_table(a).to_vec(), m.block_table(b).to_vec());
        assert_eq!(ta[0], tb[0], "first block shared");
        assert_ne!(ta[1], tb[1], "second block copied");
        assert_eq!(copies, vec![(ta[1], tb[1])]);
        assert_eq!(m.pool().ref_count(ta[0])?, 2);
        assert_eq!(m.pool().ref_count(ta[1])?, 1);
        m.free(a)?;
        m.free(b)?;
        assert_eq!(m.pool().num_free(), 8);
        // After both are gone, the cached blocks are still found, and reviving them needs
        // free blocks (they leave the free queue).
        let p = m.find_cached_prefix(&prompt);
        assert_eq!(p.blocks.len(), 2);
        let c = RequestId(2);
        // The last cached block is written (recompute of the last token): it is copied, and
        // the cached original goes back to the free queue, still findable.
        let copies = m.allocate_slots(c, 7, 1, Some(&p))?.unwrap_or_default();
        assert_eq!(copies.len(), 1);
        assert_eq!(copies[0].0, p.blocks[1]);
        assert_eq!(m.pool().num_free(), 6);
        assert_eq!(m.find_cached_prefix(&prompt).blocks, p.blocks);
        m.pool()
            .check_invariants()
            .map_err(EngineError::InvalidConfig)?;
        m.free(c)?;
        Ok(())
    }

    #[test]
    fn partial_prefix_hit() -> Result<()> {
        let mut m = manager(8, true)?;
        let a: Vec<u32> = (0..10).collect();
        m.allocate_slots(RequestId(0), 0, 10, None)?;
        m.cache_full_blocks(RequestId(0), &a, 10)?;
        let mut b = a[..6].to_vec();
        b.extend([99, 98, 97]);
        let p = m.find_cached_prefix(&b);
        assert_eq!(p.blocks.len(), 1);
        assert_eq!(p.num_computed_tokens, 4);
        assert_eq!(
            m.allocate_slots(RequestId(1), 4, 5, Some(&p))?,
            Some(vec![])
        );
        assert_eq!(m.block_table(RequestId(1)).len(), 3);
        Ok(())
    }
}
