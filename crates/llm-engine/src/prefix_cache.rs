//! Prefix caching of FULL KV blocks by a chained hash (vLLM v1's automatic prefix caching).
//!
//! A full block's identity is `BlockHash(parent block's hash, the block's token ids)`, so a
//! hash names the whole prefix up to the end of that block: two requests whose first `n`
//! full blocks hold the same tokens get the same `n` hashes, and the second finds the first's
//! blocks in the cache instead of recomputing them.
//!
//! | Operation | Cost |
//! |-----------|------|
//! | [`BlockHash::chain`] | O(block_size) |
//! | [`PrefixCache::lookup`] / [`PrefixCache::insert`] / [`PrefixCache::remove`] | O(block_size) (hash map + token check) |
//!
//! Each entry also keeps its parent hash and token ids and a lookup compares them, so a 64-bit
//! hash collision can never hand out another prefix's K/V (it is reported as a miss). The
//! cache only maps hashes to block ids; which cached blocks are free (and evictable, least
//! recently used first) is [`crate::block_pool::KvBlockPool`]'s business.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::block_pool::BlockId;

/// The chained hash of one full block: parent's hash and this block's token ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockHash(pub u64);

impl BlockHash {
    /// Hash of a block holding `tokens`, following the block whose hash is `parent` (`None`
    /// for a sequence's first block).
    pub fn chain(parent: Option<BlockHash>, tokens: &[u32]) -> BlockHash {
        // SipHash-1-3 with fixed keys: deterministic inside a process and across runs of the
        // same build, which is all a cache needs.
        let mut h = std::hash::DefaultHasher::new();
        parent.map(|p| p.0).hash(&mut h);
        tokens.hash(&mut h);
        BlockHash(h.finish())
    }

    /// Hashes of the full blocks of `tokens` (a trailing partial block has none), appended to
    /// `out` starting after the `out.len()` blocks already hashed.
    pub fn extend_full_blocks(out: &mut Vec<BlockHash>, tokens: &[u32], block_size: usize) {
        if block_size == 0 {
            return;
        }
        let full = tokens.len() / block_size;
        for i in out.len()..full {
            let parent = i.checked_sub(1).and_then(|p| out.get(p).copied());
            let h = BlockHash::chain(parent, &tokens[i * block_size..(i + 1) * block_size]);
            out.push(h);
        }
    }
}

#[derive(Debug, Clone)]
struct CachedBlock {
    block: BlockId,
    parent: Option<BlockHash>,
    tokens: Box<[u32]>,
}

/// Map from full-block hash to the block holding that prefix's K/V.
#[derive(Debug, Clone, Default)]
pub struct PrefixCache {
    entries: HashMap<BlockHash, CachedBlock>,
    queries: u64,
    hits: u64,
}

impl PrefixCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached blocks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The block caching the block with this hash, parent and tokens; counts a query and,
    /// if found, a hit.
    pub fn lookup(
        &mut self,
        hash: BlockHash,
        parent: Option<BlockHash>,
        tokens: &[u32],
    ) -> Option<BlockId> {
        self.queries += 1;
        let e = self.entries.get(&hash)?;
        if e.parent != parent || *e.tokens != *tokens {
            return None;
        }
        self.hits += 1;
        Some(e.block)
    }

    /// Records that `block` holds the block with this hash. Returns `false` (and records
    /// nothing) if the hash is already cached by another block: the first copy stays.
    pub fn insert(
        &mut self,
        hash: BlockHash,
        parent: Option<BlockHash>,
        tokens: &[u32],
        block: BlockId,
    ) -> bool {
        use std::collections::hash_map::Entry;
        match self.entries.entry(hash) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(CachedBlock {
                    block,
                    parent,
                    tokens: tokens.into(),
                });
                true
            }
        }
    }

    /// Forgets `hash` if it is cached by `block` (a block being evicted for reuse).
    pub fn remove(&mut self, hash: BlockHash, block: BlockId) {
        if self.entries.get(&hash).is_some_and(|e| e.block == block) {
            self.entries.remove(&hash);
        }
    }

    /// Block lookups so far.
    pub fn queries(&self) -> u64 {
        self.queries
    }

    /// Lookups that found a block.
    pub fn hits(&self) -> u64 {
        self.hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chained_hash_names_the_whole_prefix() {
        let a = BlockHash::chain(None, &[1, 2]);
        let b = BlockHash::chain(Some(a), &[3, 4]);
        let c = BlockHash::chain(Some(BlockHash::chain(None, &[9, 9])), &[3, 4]);
        assert_ne!(b, c, "same tokens after a different prefix");
        assert_eq!(b, BlockHash::chain(Some(a), &[3, 4]));
        let mut hs = Vec::new();
        BlockHash::extend_full_blocks(&mut hs, &[1, 2, 3, 4, 5], 2);
        assert_eq!(hs, vec![a, b]);
        BlockHash::extend_full_blocks(&mut hs, &[1, 2, 3, 4, 5, 6], 2);
        assert_eq!(hs.len(), 3);
    }

    #[test]
    fn lookup_checks_tokens_and_counts_hits() {
        let mut c = PrefixCache::new();
        let h = BlockHash::chain(None, &[1, 2]);
        assert!(c.insert(h, None, &[1, 2], 7));
        assert!(!c.insert(h, None, &[1, 2], 8), "first copy stays");
        assert_eq!(c.lookup(h, None, &[1, 2]), Some(7));
        assert_eq!(c.lookup(h, None, &[1, 3]), None, "collision is a miss");
        assert_eq!((c.queries(), c.hits()), (2, 1));
        c.remove(h, 8);
        assert_eq!(c.len(), 1, "removing with the wrong block is a no-op");
        c.remove(h, 7);
        assert!(c.is_empty());
    }
}
