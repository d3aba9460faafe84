//! [`KvBlockPool`]: the paged KV cache's block allocator (vLLM's PagedAttention memory
//! design, with vLLM v1's free-block queue for prefix caching). Plain Rust, no tensors.
//!
//! The KV cache is cut into `num_blocks` fixed-size blocks of `block_size` tokens; a
//! sequence holds a block table (a list of block ids), so memory is handed out one block
//! at a time and never fragments. Each block has a reference count: a block shared by several
//! sequences (a common prefix) is freed when the last one lets go.
//!
//! Free blocks sit in one doubly linked queue (indices into an array, no allocation).
//! Blocks without cached content go to the front, blocks still holding a cached prefix go to
//! the back, and allocation takes from the front: plain free blocks are used first, then cached
//! ones least recently freed first (LRU eviction). A prefix-cache hit on a free block unlinks
//! it from the middle of the queue.
//!
//! | Operation | Cost |
//! |-----------|------|
//! | [`KvBlockPool::allocate`] | O(1) (+ O(block_size) to evict a cached block) |
//! | [`KvBlockPool::free`] | O(1) |
//! | [`KvBlockPool::share`] (take a reference, e.g. on a cache hit) | O(1) |
//! | [`KvBlockPool::num_free`] | O(1) |
//!
//! Freeing a block whose count is already 0, or naming a block outside the pool, is a typed
//! error ([`EngineError::KvBlockDoubleFree`], [`EngineError::UnknownKvBlock`]), never silent.

use crate::error::{EngineError, Result};
use crate::prefix_cache::{BlockHash, PrefixCache};

/// Index of a block in the pool (and in the KV storage tensors).
pub type BlockId = u32;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct BlockMeta {
    ref_count: u32,
    /// Set once the block is full and registered in the prefix cache.
    hash: Option<BlockHash>,
    prev: u32,
    next: u32,
    in_free_queue: bool,
}

/// Fixed-size KV blocks with reference counts, a free queue and an optional prefix cache.
#[derive(Debug, Clone)]
pub struct KvBlockPool {
    blocks: Vec<BlockMeta>,
    head: u32,
    tail: u32,
    num_free: usize,
    cache: Option<PrefixCache>,
    evictions: u64,
}

impl KvBlockPool {
    /// A pool of `num_blocks` free blocks; `enable_prefix_caching` keeps the content of freed
    /// full blocks findable by hash until they are reused.
    ///
    /// # Errors
    /// [`EngineError::InvalidConfig`] if `num_blocks` does not fit block ids (u32).
    pub fn new(num_blocks: usize, enable_prefix_caching: bool) -> Result<Self> {
        if num_blocks >= NIL as usize {
            return Err(EngineError::InvalidConfig(format!(
                "{num_blocks} KV blocks is more than block ids can address"
            )));
        }
        let n = num_blocks as u32;
        let blocks = (0..n)
            .map(|i| BlockMeta {
                ref_count: 0,
                hash: None,
                prev: if i == 0 { NIL } else { i - 1 },
                next: if i + 1 == n { NIL } else { i + 1 },
                in_free_queue: true,
            })
            .collect();
        Ok(KvBlockPool {
            blocks,
            head: if n == 0 { NIL } else { 0 },
            tail: if n == 0 { NIL } else { n - 1 },
            num_free: num_blocks,
            cache: enable_prefix_caching.then(PrefixCache::new),
            evictions: 0,
        })
    }

    /// Blocks in the pool.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks with reference count 0 (including free blocks that still cache a prefix).
    pub fn num_free(&self) -> usize {
        self.num_free
    }

    /// Blocks held by at least one sequence.
    pub fn num_used(&self) -> usize {
        self.blocks.len() - self.num_free
    }

    /// Fraction of blocks in use, in [0, 1].
    pub fn usage(&self) -> f64 {
        if self.blocks.is_empty() {
            0.0
        } else {
            self.num_used() as f64 / self.blocks.len() as f64
        }
    }

    /// Whether prefix caching is on.
    pub fn prefix_caching(&self) -> bool {
        self.cache.is_some()
    }

    /// The prefix cache, if on.
    pub fn prefix_cache(&self) -> Option<&PrefixCache> {
        self.cache.as_ref()
    }

    /// Cached blocks evicted (reused for other content) so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn meta(&self, block: BlockId) -> Result<&BlockMeta> {
        self.blocks
            .get(block as usize)
            .ok_or(EngineError::UnknownKvBlock {
                block,
                num_blocks: self.blocks.len(),
            })
    }

    /// The reference count of `block`.
    ///
    /// # Errors
    /// [`EngineError::UnknownKvBlock`] for an id outside the pool.
    pub fn ref_count(&self, block: BlockId) -> Result<u32> {
        Ok(self.meta(block)?.ref_count)
    }

    /// The prefix hash `block` is cached under, if any.
    ///
    /// # Errors
    /// [`EngineError::UnknownKvBlock`] for an id outside the pool.
    pub fn block_hash(&self, block: BlockId) -> Result<Option<BlockHash>> {
        Ok(self.meta(block)?.hash)
    }

    fn unlink(&mut self, b: u32) {
        let (prev, next) = {
            let m = &self.blocks[b as usize];
            (m.prev, m.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.blocks[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.blocks[next as usize].prev = prev;
        }
        let m = &mut self.blocks[b as usize];
        m.prev = NIL;
        m.next = NIL;
        m.in_free_queue = false;
        self.num_free -= 1;
    }

    fn push_back(&mut self, b: u32) {
        let tail = self.tail;
        {
            let m = &mut self.blocks[b as usize];
            m.prev = tail;
            m.next = NIL;
            m.in_free_queue = true;
        }
        if tail == NIL {
            self.head = b;
        } else {
            self.blocks[tail as usize].next = b;
        }
        self.tail = b;
        self.num_free += 1;
    }

    fn push_front(&mut self, b: u32) {
        let head = self.head;
        {
            let m = &mut self.blocks[b as usize];
            m.prev = NIL;
            m.next = head;
            m.in_free_queue = true;
        }
        if head == NIL {
            self.tail = b;
        } else {
            self.blocks[head as usize].prev = b;
        }
        self.head = b;
        self.num_free += 1;
    }

    /// Takes a free block (reference count 1, no cached content). A block that was caching a
    /// prefix is evicted from the cache.
    ///
    /// # Errors
    /// [`EngineError::OutOfKvBlocks`] when no block is free.
    pub fn allocate(&mut self) -> Result<BlockId> {
        let b = self.head;
        if b == NIL {
            return Err(EngineError::OutOfKvBlocks { needed: 1, free: 0 });
        }
        self.unlink(b);
        let m = &mut self.blocks[b as usize];
        m.ref_count = 1;
        if let Some(h) = m.hash.take() {
            self.evictions += 1;
            if let Some(c) = self.cache.as_mut() {
                c.remove(h, b);
            }
        }
        Ok(b)
    }

    /// Takes `n` free blocks, all or none.
    ///
    /// # Errors
    /// [`EngineError::OutOfKvBlocks`] when fewer than `n` are free (nothing is taken).
    pub fn allocate_n(&mut self, n: usize) -> Result<Vec<BlockId>> {
        if n > self.num_free {
            return Err(EngineError::OutOfKvBlocks {
                needed: n,
                free: self.num_free,
            });
        }
        (0..n).map(|_| self.allocate()).collect()
    }

    /// Takes one more reference to `block` (a sequence starts sharing it). A free block (a
    /// prefix-cache hit on content nobody holds) leaves the free queue.
    ///
    /// # Errors
    /// [`EngineError::UnknownKvBlock`] for an id outside the pool.
    pub fn share(&mut self, block: BlockId) -> Result<()> {
        let in_queue = self.meta(block)?.in_free_queue;
        if in_queue {
            self.unlink(block);
        }
        self.blocks[block as usize].ref_count += 1;
        Ok(())
    }

    /// Drops one reference to `block`. At 0 the block becomes free: at the back of the queue
    /// if it caches a prefix (evicted last, least recently used first), else at the front.
    ///
    /// # Errors
    /// [`EngineError::KvBlockDoubleFree`] if its count is already 0;
    /// [`EngineError::UnknownKvBlock`] for an id outside the pool.
    pub fn free(&mut self, block: BlockId) -> Result<()> {
        let m = self.meta(block)?;
        if m.ref_count == 0 {
            return Err(EngineError::KvBlockDoubleFree { block });
        }
        let cached = m.hash.is_some();
        let m = &mut self.blocks[block as usize];
        m.ref_count -= 1;
        if m.ref_count == 0 {
            if cached {
                self.push_back(block);
            } else {
                self.push_front(block);
            }
        }
        Ok(())
    }

    /// Looks up a full block by its chained hash; `None` if caching is off or it is not cached.
    pub fn lookup_cached(
        &mut self,
        hash: BlockHash,
        parent: Option<BlockHash>,
        tokens: &[u32],
    ) -> Option<BlockId> {
        self.cache.as_mut()?.lookup(hash, parent, tokens)
    }

    /// Registers the full block `block` (held by the caller) under `hash`. Does nothing if
    /// caching is off, the block is already registered, or another block already caches this
    /// hash (then this block stays uncached and is reused first once freed).
    ///
    /// # Errors
    /// [`EngineError::UnknownKvBlock`] for an id outside the pool.
    pub fn cache_block(
        &mut self,
        block: BlockId,
        hash: BlockHash,
        parent: Option<BlockHash>,
        tokens: &[u32],
    ) -> Result<()> {
        if self.meta(block)?.hash.is_some() {
            return Ok(());
        }
        if let Some(c) = self.cache.as_mut() {
            if c.insert(hash, parent, tokens, block) {
                self.blocks[block as usize].hash = Some(hash);
            }
        }
        Ok(())
    }

    /// Checks the pool's internal invariants (for tests): the free queue links are consistent,
    /// it holds exactly the blocks with count 0, and every cached hash points back at its block.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let mut seen = 0usize;
        let mut prev = NIL;
        let mut b = self.head;
        while b != NIL {
            let m = self
                .blocks
                .get(b as usize)
                .ok_or_else(|| format!("free queue names block {b} outside the pool"))?;
            if m.prev != prev {
                return Err(format!("block {b}: prev link {} != {prev}", m.prev));
            }
            if m.ref_count != 0 || !m.in_free_queue {
                return Err(format!(
                    "block {b} in free queue with count {}",
                    m.ref_count
                ));
            }
            seen += 1;
            if seen > self.blocks.len() {
                return Err("free queue has a cycle".into());
            }
            prev = b;
            b = m.next;
        }
        if prev != self.tail {
            return Err("tail does not end the free queue".into());
        }
        let zero = self.blocks.iter().filter(|m| m.ref_count == 0).count();
        if seen != self.num_free || zero != self.num_free {
            return Err(format!(
                "free count {} but {seen} queued and {zero} with count 0",
                self.num_free
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_free_and_double_free() -> Result<()> {
        let mut p = KvBlockPool::new(3, false)?;
        let a = p.allocate_n(3)?;
        assert_eq!(p.num_free(), 0);
        assert!(matches!(
            p.allocate(),
            Err(EngineError::OutOfKvBlocks { needed: 1, free: 0 })
        ));
        p.free(a[1])?;
        assert!(matches!(
            p.free(a[1]),
            Err(EngineError::KvBlockDoubleFree { block }) if block == a[1]
        ));
        assert!(matches!(
            p.free(99),
            Err(EngineError::UnknownKvBlock { .. })
        ));
        assert_eq!(p.allocate()?, a[1]);
        p.check_invariants().map_err(EngineError::InvalidConfig)?;
        assert!(p.allocate_n(1).is_err());
        Ok(())
    }

    #[test]
    fn shared_blocks_are_freed_by_the_last_holder() -> Result<()> {
        let mut p = KvBlockPool::new(2, false)?;
        let b = p.allocate()?;
        p.share(b)?;
        assert_eq!(p.ref_count(b)?, 2);
        p.free(b)?;
        assert_eq!(p.num_free(), 1);
        p.free(b)?;
        assert_eq!(p.num_free(), 2);
        assert!((p.usage() - 0.0).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn cached_blocks_are_evicted_last_and_lru_first() -> Result<()> {
        let mut p = KvBlockPool::new(4, true)?;
        let blocks = p.allocate_n(4)?;
        let hashes: Vec<BlockHash> = (0..2)
            .map(|i| BlockHash::chain(None, &[i as u32]))
            .collect();
        p.cache_block(blocks[0], hashes[0], None, &[0])?;
        p.cache_block(blocks[1], hashes[1], None, &[1])?;
        for &b in &blocks {
            p.free(b)?;
        }
        p.check_invariants().map_err(EngineError::InvalidConfig)?;
        // Uncached blocks 2 and 3 come first, then cached 0 (freed before 1).
        let x = p.allocate()?;
        let y = p.allocate()?;
        assert!([blocks[2], blocks[3]].contains(&x) && [blocks[2], blocks[3]].contains(&y));
        // A hit on cached block 1 revives it without eviction.
        assert_eq!(p.lookup_cached(hashes[1], None, &[1]), Some(blocks[1]));
        p.share(blocks[1])?;
        assert_eq!(p.allocate()?, blocks[0]);
        assert_eq!(p.evictions(), 1);
        assert_eq!(p.lookup_cached(hashes[0], None, &[0]), None, "evicted");
        assert_eq!(p.num_free(), 0);
        p.check_invariants().map_err(EngineError::InvalidConfig)?;
        Ok(())
    }
}
