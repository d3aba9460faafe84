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
//!
//! The storage's dtype is the model's, or [`DType::F8E4M3`] for an fp8 cache
//! ([`crate::engine::KvCacheDtype`]). Rows written into an fp8 cache are clamped to ±448 (the
//! largest finite E4M3 value, "satfinite") and rounded to the nearest E4M3 value, ties to even
//! (`float8::F8E4M3::from_f32`, a port of CUDA's `__nv_cvt_double_to_fp8`, which saturates on
//! its own too; the explicit clamp keeps the result independent of the backend's cast). NaN
//! stays NaN (candle's CPU `maximum`/`minimum` and CUDA's f16/bf16 ones keep a NaN operand).
//! Reads ([`PagedKvStorage::gather`], [`PagedKvStorage::layer`]) return the storage's dtype
//! (except `gather` of an fp8 cache on CUDA: f32, exactly); callers widen.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Tensor};
use float8::F8E4M3;
use half::{bf16, f16};

use crate::config::ModelConfig;
use crate::engine::kv_cache_dtype::FP8_E4M3_MAX;
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

    /// Bytes one block takes: K and V, all layers, of `dtype` (the storage's dtype: one byte
    /// per element for [`DType::F8E4M3`]).
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
        // fp8: no strided copy (candle 0.11's CUDA strided copy of F8E4M3 looks up a kernel it
        // does not have). Each head's block is contiguous: copied head by head into a scratch
        // `[KVH, block_size, D]` (a view of the cache itself cannot be the source of a
        // `slice_set` into it), then written back in one `slice_set`.
        let scratch = match self.keys.first() {
            Some(k) if self.dtype == DType::F8E4M3 => {
                let shape = (self.num_kv_heads, bs, self.head_dim);
                Some(Tensor::zeros(shape, self.dtype, k.device())?)
            }
            _ => None,
        };
        for t in self.keys.iter().chain(self.values.iter()) {
            if let Some(scratch) = &scratch {
                for h in 0..self.num_kv_heads {
                    let rows = t.narrow(0, h, 1)?.narrow(1, src, bs)?;
                    scratch.narrow(0, h, 1)?.slice_set(&rows, 1, 0)?;
                }
                t.slice_set(scratch, 1, dst)?;
            } else {
                let rows = t.narrow(1, src, bs)?.contiguous()?;
                t.slice_set(&rows, 1, dst)?;
            }
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

    /// `rows` in the storage's dtype; into an fp8 storage clamped to ±448 first (see the module
    /// docs).
    fn to_storage_dtype(&self, rows: &Tensor) -> Result<Tensor> {
        if self.dtype == DType::F8E4M3 && rows.dtype() != DType::F8E4M3 {
            let clamped = rows.clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX)?;
            convert_dtype(&clamped, DType::F8E4M3)
        } else {
            Ok(rows.to_dtype(self.dtype)?)
        }
    }

    /// Writes the K and V rows of positions `start_pos .. start_pos + k.dim(0)` of one sequence
    /// into layer `layer`. `k` and `v` have shape `[n, num_kv_heads, head_dim]`, any float
    /// dtype (converted to the storage's, saturating for fp8).
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
        let (k, v) = (k.transpose(0, 1)?, v.transpose(0, 1)?);
        // One run of consecutive slots per block touched, made contiguous before it is
        // converted (candle 0.11 cannot copy strided F8E4M3 on CUDA).
        let mut done = 0;
        while done < n {
            let pos = start_pos + done;
            let slot = self.slot(block_table, pos)?;
            let run = (self.block_size - pos % self.block_size).min(n - done);
            let k_run = self.to_storage_dtype(&k.narrow(1, done, run)?.contiguous()?)?;
            let v_run = self.to_storage_dtype(&v.narrow(1, done, run)?.contiguous()?)?;
            k_cache.slice_set(&k_run, 1, slot)?;
            v_cache.slice_set(&v_run, 1, slot)?;
            done += run;
        }
        Ok(())
    }

    /// Writes the new K and V rows of a whole step into layer `layer` on the CPU, one pass per
    /// tensor: `k` and `v` `[n, num_kv_heads, head_dim]`, row `t` to slot `slots[t]` (from
    /// [`PagedKvStorage::slot`]). Where [`PagedKvStorage::write`] costs a few tensor ops per
    /// block touched, a decode step of 16 sequences costs two here. An fp8 storage takes f32,
    /// f16 or bf16 rows and converts them in the same pass (clamp to ±448, round to nearest
    /// even), as [`PagedKvStorage::write`] does.
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
        // An fp8 cache converts the rows inside the op (one pass, no fp8 copy of the rows).
        let rows = |x: &Tensor| match (self.dtype, x.dtype()) {
            (DType::F8E4M3, DType::F32 | DType::F16 | DType::BF16) => x.contiguous(),
            _ => x.to_dtype(self.dtype)?.contiguous(),
        };
        let (k_cache, v_cache) = self.layer(layer)?;
        k_cache.inplace_op2(&rows(k)?, &op)?;
        v_cache.inplace_op2(&rows(v)?, &op)?;
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
    /// two tensors `[num_kv_heads, len, head_dim]` in the storage's dtype ([`DType::F8E4M3`]
    /// for an fp8 cache: the caller converts).
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
        if self.dtype == DType::F8E4M3 && k_cache.device().is_cuda() {
            // candle 0.11 has no CUDA index_select for F8E4M3: widen the layer (exactly) first.
            return Ok((
                convert_dtype(k_cache, DType::F32)?.index_select(&idx, 1)?,
                convert_dtype(v_cache, DType::F32)?.index_select(&idx, 1)?,
            ));
        }
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

/// `t.to_dtype(dtype)`, except conversions to or from fp8 E4M3 on CUDA, which go through
/// [`crate::cuda::convert_fp8`] (candle 0.11's own CUDA casts for F8E4M3 look up kernels under
/// names its kernel library does not have): the same rounding (nearest even, saturating).
///
/// # Errors
/// Candle's, or the conversion kernel's.
pub(crate) fn convert_dtype(t: &Tensor, dtype: DType) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if t.device().is_cuda()
        && t.dtype() != dtype
        && (t.dtype() == DType::F8E4M3 || dtype == DType::F8E4M3)
    {
        return crate::cuda::convert_fp8(t, dtype);
    }
    Ok(t.to_dtype(dtype)?)
}

/// The CPU op behind [`PagedKvStorage::write_rows`]: `cache[h, slots[t], :] = rows[t, h, :]`.
struct WriteRows<'a> {
    slots: &'a [u32],
    num_slots: usize,
    heads: usize,
    head_dim: usize,
}

/// `x` as fp8 E4M3: clamped to ±448 ("satfinite"), rounded to nearest, ties to even. NaN
/// stays NaN (`f32::clamp` returns a NaN input unchanged, `from_f32` keeps it).
#[inline]
pub(crate) fn fp8_e4m3_satfinite(x: f32) -> F8E4M3 {
    F8E4M3::from_f32(x.clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX))
}

impl WriteRows<'_> {
    /// Copies each row into its slots.
    fn copy<T: Copy>(
        &self,
        cache: &mut [T],
        cache_l: &Layout,
        rows: &[T],
        rows_l: &Layout,
    ) -> candle_core::Result<()> {
        self.each_row(cache, cache_l, rows, rows_l, |dst, src| {
            dst.copy_from_slice(src)
        })
    }

    /// Converts each row into its slots, element by element.
    fn convert<T: Copy, U>(
        &self,
        cache: &mut [U],
        cache_l: &Layout,
        rows: &[T],
        rows_l: &Layout,
        f: impl Fn(T) -> U,
    ) -> candle_core::Result<()> {
        self.each_row(cache, cache_l, rows, rows_l, |dst, src| {
            for (c, &r) in dst.iter_mut().zip(src) {
                *c = f(r);
            }
        })
    }

    /// Calls `put(cache row, source row)` for every (token, head).
    fn each_row<T, U>(
        &self,
        cache: &mut [U],
        cache_l: &Layout,
        rows: &[T],
        rows_l: &Layout,
        mut put: impl FnMut(&mut [U], &[T]),
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
                put(&mut cache[dst..dst + d], src);
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
            (CpuStorage::F8E4M3(c), CpuStorage::F8E4M3(r)) => self.copy(c, cache_l, r, rows_l),
            (CpuStorage::F8E4M3(c), CpuStorage::F32(r)) => {
                self.convert(c, cache_l, r, rows_l, fp8_e4m3_satfinite)
            }
            (CpuStorage::F8E4M3(c), CpuStorage::F16(r)) => {
                self.convert(c, cache_l, r, rows_l, |x: f16| {
                    fp8_e4m3_satfinite(x.to_f32())
                })
            }
            (CpuStorage::F8E4M3(c), CpuStorage::BF16(r)) => {
                self.convert(c, cache_l, r, rows_l, |x: bf16| {
                    fp8_e4m3_satfinite(x.to_f32())
                })
            }
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

    fn fp8_storage() -> Result<PagedKvStorage> {
        let cfg = crate::presets::preset("tiny-llama")
            .ok_or_else(|| EngineError::InvalidConfig("preset".into()))?;
        PagedKvStorage::new(&cfg, 6, 4, DType::F8E4M3, &Device::Cpu)
    }

    /// Rows `[n, KVH, D]` of random values scaled to ±`4 * scale`-ish, with values past the
    /// E4M3 range (±449, ±464, ±1000, 1e30) and tiny ones (fp8 subnormals) at fixed places.
    fn wide_rows(n: usize, kvh: usize, d: usize, scale: f64) -> Result<Tensor> {
        let mut data =
            (Tensor::randn(0f32, 1.0, n * kvh * d, &Device::Cpu)? * scale)?.to_vec1::<f32>()?;
        let special = [
            449.0, -449.0, 464.0, -470.0, 1000.0, -1e30, 1e-3, -3e-3, 0.0,
        ];
        for (x, s) in data.iter_mut().step_by(5).zip(special) {
            *x = s;
        }
        Ok(Tensor::from_vec(data, (n, kvh, d), &Device::Cpu)?)
    }

    /// What the fp8 cache should hold for `rows`: clamp(±448), then candle's cast.
    fn expected_fp8(rows: &Tensor) -> Result<Vec<f32>> {
        Ok(rows
            .to_dtype(DType::F32)?
            .clamp(-448f32, 448f32)?
            .to_dtype(DType::F8E4M3)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    /// `gather`'s K (or V) of one sequence, `[KVH, len, D]` back to `[len, KVH, D]` f32 values.
    fn gathered(t: &Tensor) -> Result<Vec<f32>> {
        assert_eq!(t.dtype(), DType::F8E4M3, "gather returns the storage dtype");
        Ok(t.to_dtype(DType::F32)?
            .transpose(0, 1)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    /// `write` and `write_rows` into an fp8 cache, read back with `gather`, give exactly
    /// clamp(±448) + the E4M3 cast of the rows (for f32, f16 and bf16 rows), and values past
    /// 448 saturate to ±448.
    #[test]
    fn fp8_writes_saturate_and_round_like_the_cast() -> Result<()> {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let (mut a, mut b) = (fp8_storage()?, fp8_storage()?);
            let (kvh, d) = (a.num_kv_heads, a.head_dim);
            let table = [5u32, 0, 3];
            let k = wide_rows(10, kvh, d, 40.0)?.to_dtype(dtype)?;
            let v = wide_rows(10, kvh, d, 0.05)?.to_dtype(dtype)?;
            a.write(1, &table, 0, &k, &v)?;
            b.write_rows(1, &a.slots(&table, 10)?, &k, &v)?;
            for s in [&a, &b] {
                let (kc, vc) = s.gather(1, &table, 10)?;
                assert_eq!(gathered(&kc)?, expected_fp8(&k)?, "{dtype:?} K");
                assert_eq!(gathered(&vc)?, expected_fp8(&v)?, "{dtype:?} V");
                let kc = gathered(&kc)?;
                let max = kc.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert_eq!(max, 448.0, "{dtype:?}: saturated, finite");
                // The special values sit at every 5th element: 449 -> 448, -470 -> -448.
                assert_eq!(
                    (kc[0], kc[5], kc[10], kc[15]),
                    (448.0, -448.0, 448.0, -448.0)
                );
                assert_eq!((kc[20], kc[25]), (448.0, -448.0));
            }
        }
        Ok(())
    }

    /// The E4M3 rounding itself: nearest, ties to even, 3 mantissa bits, subnormals down to
    /// 2^-9, NaN kept.
    #[test]
    fn fp8_rounding_is_nearest_even_and_satfinite() {
        let r = |x: f32| fp8_e4m3_satfinite(x).to_f32();
        assert_eq!(r(1.0625), 1.0, "tie between 1.0 and 1.125 goes to even 1.0");
        assert_eq!(
            r(1.1875),
            1.25,
            "tie between 1.125 and 1.25 goes to even 1.25"
        );
        assert_eq!(r(1.07), 1.125);
        assert_eq!(r(300.0), 288.0);
        assert_eq!(r(456.0), 448.0);
        assert_eq!(r(f32::INFINITY), 448.0);
        assert_eq!(r(f32::NEG_INFINITY), -448.0);
        assert_eq!(r(2f32.powi(-9)), 2f32.powi(-9), "smallest subnormal");
        assert_eq!(r(2f32.powi(-11)), 0.0);
        assert!(r(f32::NAN).is_nan());
    }

    /// A NaN row stays NaN through both write paths (it is not clamped into a finite value).
    #[test]
    fn fp8_writes_keep_nan() -> Result<()> {
        let mut s = fp8_storage()?;
        let (kvh, d) = (s.num_kv_heads, s.head_dim);
        let nan = Tensor::full(f32::NAN, (1, kvh, d), &Device::Cpu)?;
        s.write(0, &[2], 0, &nan, &nan)?;
        s.write_rows(0, &[9], &nan, &nan)?;
        for slot in [8u32, 9] {
            let (k, _) = s.layer(0)?;
            let row = k.narrow(1, slot as usize, 1)?.to_dtype(DType::F32)?;
            let row = row.flatten_all()?.to_vec1::<f32>()?;
            assert!(row.iter().all(|x| x.is_nan()), "slot {slot}");
        }
        Ok(())
    }

    /// `copy_block` copies fp8 blocks byte for byte; sizes count one byte per element.
    #[test]
    fn fp8_copy_block_and_sizes() -> Result<()> {
        let mut s = fp8_storage()?;
        let (kvh, d) = (s.num_kv_heads, s.head_dim);
        let k = wide_rows(4, kvh, d, 3.0)?;
        s.write(3, &[1], 0, &k, &k)?;
        s.copy_block(1, 4)?;
        let (a, _) = s.gather(3, &[1], 4)?;
        let (b, _) = s.gather(3, &[4], 4)?;
        assert_eq!(gathered(&a)?, gathered(&b)?);
        assert_eq!(gathered(&a)?, expected_fp8(&k)?);
        let cfg = crate::presets::preset("tiny-llama")
            .ok_or_else(|| EngineError::InvalidConfig("preset".into()))?;
        let f16 = PagedKvStorage::bytes_per_block(&cfg, 4, DType::F16);
        assert_eq!(
            PagedKvStorage::bytes_per_block(&cfg, 4, DType::F8E4M3) * 2,
            f16
        );
        assert_eq!(s.total_bytes(), 6 * f16 / 2);
        Ok(())
    }
}
