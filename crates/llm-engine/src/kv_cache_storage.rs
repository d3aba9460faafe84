//! The paged KV cache's tensors: for every layer one K and one V tensor holding all blocks.
//!
//! Layout (vLLM's PagedAttention memory design, head-major): each per-layer tensor has shape
//! `[num_kv_heads, num_blocks * block_size, head_dim]`; the row of token position `p` of a
//! sequence is its *slot* `block_table[p / block_size] * block_size + p % block_size`, in
//! every head. A block is thus `block_size` consecutive rows of each head, so writing the new
//! tokens of a sequence is one copy per block they touch, and a gathered context comes out as
//! `[num_kv_heads, len, head_dim]`: per head a plain matrix, which attention multiplies
//! without any transposing copy (the layout choice that matters most on the CPU).
//!
//! Which blocks belong to which sequence is decided elsewhere (the tensor-free block pool);
//! this type only stores, writes and reads rows.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Tensor};

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};

/// Per-layer K and V tensors of shape `[num_kv_heads, num_blocks * block_size, head_dim]`.
#[derive(Debug)]
pub struct PagedKvStorage {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    num_blocks: usize,
    block_size: usize,
    num_kv_heads: usize,
    head_dim: usize,
    dtype: DType,
}

impl PagedKvStorage {
    /// Allocates zeroed storage for `num_blocks` blocks of `block_size` tokens on `device`.
    ///
    /// # Errors
    /// [`EngineError::InvalidConfig`] when `num_blocks` or `block_size` is zero; a candle error
    /// when the allocation fails.
    pub fn new(
        cfg: &ModelConfig,
        num_blocks: usize,
        block_size: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if num_blocks == 0 || block_size == 0 {
            return Err(EngineError::InvalidConfig(format!(
                "KV cache needs at least one block of at least one token (got {num_blocks} blocks of {block_size})"
            )));
        }
        let shape = (cfg.num_kv_heads, num_blocks * block_size, cfg.head_dim);
        let mut keys = Vec::with_capacity(cfg.num_layers);
        let mut values = Vec::with_capacity(cfg.num_layers);
        for _ in 0..cfg.num_layers {
            keys.push(Tensor::zeros(shape, dtype, device)?);
            values.push(Tensor::zeros(shape, dtype, device)?);
        }
        Ok(Self {
            keys,
            values,
            num_blocks,
            block_size,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            dtype,
        })
    }

    /// Bytes one block takes: K and V, all layers.
    pub fn bytes_per_block(cfg: &ModelConfig, block_size: usize, dtype: DType) -> usize {
        2 * cfg.num_layers * block_size * cfg.num_kv_heads * cfg.head_dim * dtype.size_in_bytes()
    }

    /// Copies block `src` into block `dst` in every layer (copy-on-write of a shared block).
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] when a block id is out of range.
    pub fn copy_block(&mut self, src: u32, dst: u32) -> Result<()> {
        self.check_block(src)?;
        self.check_block(dst)?;
        if src == dst {
            return Ok(());
        }
        let bs = self.block_size;
        let (src, dst) = (src as usize * bs, dst as usize * bs);
        for t in self.keys.iter().chain(self.values.iter()) {
            let rows = t.narrow(1, src, bs)?.contiguous()?;
            t.slice_set(&rows, 1, dst)?;
        }
        Ok(())
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Number of layers stored.
    pub fn num_layers(&self) -> usize {
        self.keys.len()
    }

    /// The storage's dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Total bytes of all K and V tensors.
    pub fn total_bytes(&self) -> usize {
        2 * self.num_layers()
            * self.num_blocks
            * self.block_size
            * self.num_kv_heads
            * self.head_dim
            * self.dtype.size_in_bytes()
    }

    /// Layer `layer`'s K and V tensors, `[num_kv_heads, num_blocks * block_size, head_dim]`.
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] when `layer` is out of range.
    pub fn layer(&self, layer: usize) -> Result<(&Tensor, &Tensor)> {
        match (self.keys.get(layer), self.values.get(layer)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(EngineError::InvalidBatch(format!(
                "layer {layer} out of range: the KV storage has {} layers",
                self.keys.len()
            ))),
        }
    }

    /// The slot (row) of token position `pos` for a sequence with `block_table`.
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] when the block table is too short or names a block out of range.
    pub fn slot(&self, block_table: &[u32], pos: usize) -> Result<usize> {
        let block = *block_table.get(pos / self.block_size).ok_or_else(|| {
            EngineError::InvalidBatch(format!(
                "position {pos} needs block {} but the block table has {} blocks",
                pos / self.block_size,
                block_table.len()
            ))
        })?;
        self.check_block(block)?;
        Ok(block as usize * self.block_size + pos % self.block_size)
    }

    /// The slots of positions `0..len` for a sequence with `block_table`.
    ///
    /// # Errors
    /// As [`PagedKvStorage::slot`].
    pub fn slots(&self, block_table: &[u32], len: usize) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(len);
        for (b, &block) in block_table.iter().enumerate() {
            if b * self.block_size >= len {
                break;
            }
            self.check_block(block)?;
            let first = block as usize * self.block_size;
            let n = self.block_size.min(len - b * self.block_size);
            out.extend((first..first + n).map(|s| s as u32));
        }
        if out.len() < len {
            return Err(EngineError::InvalidBatch(format!(
                "{len} positions need {} blocks but the block table has {}",
                len.div_ceil(self.block_size),
                block_table.len()
            )));
        }
        Ok(out)
    }

    /// Writes the K and V rows of positions `start_pos .. start_pos + k.dim(0)` of one sequence
    /// into layer `layer`. `k` and `v` have shape `[n, num_kv_heads, head_dim]`.
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] for a short block table; a candle error for a shape or
    /// dtype mismatch.
    pub fn write(
        &mut self,
        layer: usize,
        block_table: &[u32],
        start_pos: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<()> {
        let (k_cache, v_cache) = self.layer(layer)?;
        let n = k.dim(0)?;
        // [n, KVH, D] -> [KVH, n, D], the storage's head-major order.
        let k = k.to_dtype(self.dtype)?.transpose(0, 1)?;
        let v = v.to_dtype(self.dtype)?.transpose(0, 1)?;
        // One run of consecutive slots per block touched.
        let mut done = 0;
        while done < n {
            let pos = start_pos + done;
            let slot = self.slot(block_table, pos)?;
            let run = (self.block_size - pos % self.block_size).min(n - done);
            k_cache.slice_set(&k.narrow(1, done, run)?.contiguous()?, 1, slot)?;
            v_cache.slice_set(&v.narrow(1, done, run)?.contiguous()?, 1, slot)?;
            done += run;
        }
        Ok(())
    }

    /// Writes the new K and V rows of a whole step into layer `layer` on the CPU, one pass per
    /// tensor: `k` and `v` `[n, num_kv_heads, head_dim]`, row `t` to slot `slots[t]` (from
    /// [`PagedKvStorage::slot`]). Where [`PagedKvStorage::write`] costs a few tensor ops per
    /// block touched, a decode step of 16 sequences costs two here.
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] for a layer out of range, rows that do not match `slots`
    /// or a slot out of range; candle errors for tensors not on the CPU.
    pub fn write_rows(
        &mut self,
        layer: usize,
        slots: &[u32],
        k: &Tensor,
        v: &Tensor,
    ) -> Result<()> {
        let expect = [slots.len(), self.num_kv_heads, self.head_dim];
        if k.dims() != expect || v.dims() != expect {
            return Err(EngineError::InvalidBatch(format!(
                "K/V rows {:?} / {:?} do not fit {} slots of {} heads of {}",
                k.dims(),
                v.dims(),
                slots.len(),
                self.num_kv_heads,
                self.head_dim
            )));
        }
        let num_slots = self.num_blocks * self.block_size;
        if let Some(bad) = slots.iter().find(|&&s| s as usize >= num_slots) {
            return Err(EngineError::InvalidBatch(format!(
                "slot {bad} out of range: the KV storage has {num_slots} slots"
            )));
        }
        let op = WriteRows {
            slots,
            num_slots,
            heads: self.num_kv_heads,
            head_dim: self.head_dim,
        };
        let (k_cache, v_cache) = self.layer(layer)?;
        k_cache.inplace_op2(&k.to_dtype(self.dtype)?.contiguous()?, &op)?;
        v_cache.inplace_op2(&v.to_dtype(self.dtype)?.contiguous()?, &op)?;
        Ok(())
    }

    /// Writes the new K and V rows of a whole step into layer `layer` in one kernel launch
    /// each: `k` and `v` `[n, num_kv_heads, head_dim]` in the storage's dtype, row `t` to slot
    /// `slot_mapping[t]` (u32 `[n]`, from [`crate::attention::AttentionMetadata`]).
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] for a layer out of range;
    /// [`EngineError::CudaKernel`] for tensors not on CUDA or of the wrong shape or dtype.
    #[cfg(feature = "cuda")]
    pub fn write_slots(
        &mut self,
        layer: usize,
        slot_mapping: &Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<()> {
        let (k_cache, v_cache) = self.layer(layer)?;
        crate::cuda::reshape_and_cache(k_cache, k, slot_mapping)?;
        crate::cuda::reshape_and_cache(v_cache, v, slot_mapping)
    }

    /// Reads the K and V rows of positions `0..len` of one sequence from layer `layer`:
    /// two tensors `[num_kv_heads, len, head_dim]`.
    ///
    /// # Errors
    /// As [`PagedKvStorage::slots`].
    pub fn gather(
        &self,
        layer: usize,
        block_table: &[u32],
        len: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (k_cache, v_cache) = self.layer(layer)?;
        let slots = self.slots(block_table, len)?;
        let idx = Tensor::from_vec(slots, len, k_cache.device())?;
        Ok((
            k_cache.index_select(&idx, 1)?,
            v_cache.index_select(&idx, 1)?,
        ))
    }

    fn check_block(&self, block: u32) -> Result<()> {
        if (block as usize) < self.num_blocks {
            Ok(())
        } else {
            Err(EngineError::InvalidBatch(format!(
                "block id {block} out of range: the KV storage has {} blocks",
                self.num_blocks
            )))
        }
    }
}

/// The CPU op behind [`PagedKvStorage::write_rows`]: `cache[h, slots[t], :] = rows[t, h, :]`.
struct WriteRows<'a> {
    slots: &'a [u32],
    num_slots: usize,
    heads: usize,
    head_dim: usize,
}

impl WriteRows<'_> {
    fn copy<T: Copy>(
        &self,
        cache: &mut [T],
        cache_l: &Layout,
        rows: &[T],
        rows_l: &Layout,
    ) -> candle_core::Result<()> {
        let (Some((c0, c1)), Some((r0, r1))) =
            (cache_l.contiguous_offsets(), rows_l.contiguous_offsets())
        else {
            candle_core::bail!("paged KV write: the cache and the rows must be contiguous")
        };
        let (d, h) = (self.head_dim, self.heads);
        let (cache, rows) = (&mut cache[c0..c1], &rows[r0..r1]);
        if cache.len() != h * self.num_slots * d || rows.len() != self.slots.len() * h * d {
            candle_core::bail!("paged KV write: cache or rows of the wrong size")
        }
        for (t, &slot) in self.slots.iter().enumerate() {
            for head in 0..h {
                let src = &rows[(t * h + head) * d..][..d];
                let dst = (head * self.num_slots + slot as usize) * d;
                cache[dst..dst + d].copy_from_slice(src);
            }
        }
        Ok(())
    }
}

impl InplaceOp2 for WriteRows<'_> {
    fn name(&self) -> &'static str {
        "paged-kv-write-rows"
    }

    fn cpu_fwd(
        &self,
        cache: &mut CpuStorage,
        cache_l: &Layout,
        rows: &CpuStorage,
        rows_l: &Layout,
    ) -> candle_core::Result<()> {
        match (cache, rows) {
            (CpuStorage::F32(c), CpuStorage::F32(r)) => self.copy(c, cache_l, r, rows_l),
            (CpuStorage::F16(c), CpuStorage::F16(r)) => self.copy(c, cache_l, r, rows_l),
            (CpuStorage::BF16(c), CpuStorage::BF16(r)) => self.copy(c, cache_l, r, rows_l),
            (c, r) => candle_core::bail!(
                "paged KV write: cache {:?} and rows {:?} dtypes not supported",
                c.dtype(),
                r.dtype()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> PagedKvStorage {
        let cfg = crate::presets::preset("tiny-llama").expect("preset");
        PagedKvStorage::new(&cfg, 6, 4, DType::F32, &Device::Cpu).expect("storage")
    }

    /// `write_rows` leaves the cache exactly as per-slice `write` calls do, for a decode row
    /// and a prefill chunk that crosses blocks, in scattered blocks.
    #[test]
    fn write_rows_matches_per_slice_writes() -> Result<()> {
        let (mut a, mut b) = (storage(), storage());
        let (kvh, d) = (a.num_kv_heads, a.head_dim);
        let rows = |n: usize, seed: f32| {
            let data: Vec<f32> = (0..n * kvh * d).map(|i| seed + i as f32).collect();
            Tensor::from_vec(data, (n, kvh, d), &Device::Cpu)
        };
        // Slice 0: one token at position 5 of blocks [3, 1]; slice 1: 6 tokens from
        // position 2 of blocks [4, 0, 5].
        let (t0, t1) = ([3u32, 1], [4u32, 0, 5]);
        let (k, v) = (rows(7, 0.0)?, rows(7, 1e5)?);
        a.write(2, &t0, 5, &k.narrow(0, 0, 1)?, &v.narrow(0, 0, 1)?)?;
        a.write(2, &t1, 2, &k.narrow(0, 1, 6)?, &v.narrow(0, 1, 6)?)?;
        let mut slots = vec![a.slot(&t0, 5)? as u32];
        for p in 2..8 {
            slots.push(a.slot(&t1, p)? as u32);
        }
        b.write_rows(2, &slots, &k, &v)?;
        for (x, y) in [(&a.keys[2], &b.keys[2]), (&a.values[2], &b.values[2])] {
            let diff = (x - y)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(diff, 0.0);
        }
        Ok(())
    }

    #[test]
    fn write_rows_rejects_bad_slots_and_shapes() -> Result<()> {
        let mut s = storage();
        let (kvh, d) = (s.num_kv_heads, s.head_dim);
        let k = Tensor::zeros((2, kvh, d), DType::F32, &Device::Cpu)?;
        let err = s
            .write_rows(0, &[1, 24], &k, &k)
            .expect_err("slot 24 of 24");
        assert!(err.to_string().contains("slot 24 out of range"), "{err}");
        let err = s.write_rows(0, &[1], &k, &k).expect_err("2 rows, 1 slot");
        assert!(err.to_string().contains("do not fit 1 slots"), "{err}");
        assert!(s.write_rows(9, &[1, 2], &k, &k).is_err(), "layer 9 of 6");
        Ok(())
    }
}
