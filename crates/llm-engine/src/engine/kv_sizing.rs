//! How many KV blocks the engine gets, and what memory it uses.
//!
//! * **CPU**: a byte budget (`kv_cache_bytes`, default 1 GiB, raised to hold one sequence of
//!   `max_model_len` tokens when no budget was given) divided by the bytes of one block.
//! * **GPU** (vLLM's formula): `total × gpu_memory_utilization − memory in use after loading
//!   the weights − peak activation memory`, divided by the bytes of one block. The activation
//!   peak is measured by a profiling forward pass of `max_num_batched_tokens` tokens: candle
//!   allocates through CUDA's stream-ordered pool, whose used-memory high-water mark is reset
//!   before the pass and read after it (see `cuda_memory.rs`).

use serde::Serialize;

use crate::error::{EngineError, Result};

/// The paged KV cache's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KvCacheInfo {
    /// Blocks in the pool.
    pub num_blocks: usize,
    /// Tokens per block.
    pub block_size: usize,
    /// Bytes one block takes (K and V, all layers).
    pub bytes_per_block: usize,
    /// `num_blocks × bytes_per_block`.
    pub total_bytes: u64,
    /// Tokens the cache can hold in all.
    pub capacity_tokens: usize,
    /// Blocks one sequence of `max_model_len` tokens needs.
    pub blocks_per_max_len_seq: usize,
}

impl KvCacheInfo {
    /// The figures for `num_blocks` blocks.
    pub fn new(
        num_blocks: usize,
        block_size: usize,
        bytes_per_block: usize,
        max_model_len: usize,
    ) -> Self {
        KvCacheInfo {
            num_blocks,
            block_size,
            bytes_per_block,
            total_bytes: num_blocks as u64 * bytes_per_block as u64,
            capacity_tokens: num_blocks * block_size,
            blocks_per_max_len_seq: max_model_len.div_ceil(block_size.max(1)),
        }
    }

    /// How many sequences of `max_model_len` tokens fit at once (vLLM's "maximum concurrency").
    pub fn max_concurrency(&self) -> f64 {
        self.num_blocks as f64 / self.blocks_per_max_len_seq.max(1) as f64
    }
}

/// Where the engine's memory goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MemoryReport {
    /// Bytes of model weights (from the config's parameter count and the dtype).
    pub weights_bytes: u64,
    /// Bytes of the KV cache tensors.
    pub kv_cache_bytes: u64,
    /// Peak activation memory of a `max_num_batched_tokens` forward pass (GPU: measured;
    /// CPU: not measured, 0).
    pub activation_peak_bytes: u64,
    /// Device memory in total (GPU only).
    pub device_total_bytes: Option<u64>,
    /// Device memory in use by this process's allocations after start-up (GPU only: the
    /// stream-ordered pool's used bytes, what `torch.cuda.memory_allocated` reports in the seed).
    pub device_used_bytes: Option<u64>,
}

impl MemoryReport {
    /// Memory the engine uses: device allocations on a GPU, weights + KV cache on the CPU.
    pub fn used_bytes(&self) -> u64 {
        self.device_used_bytes
            .unwrap_or(self.weights_bytes + self.kv_cache_bytes)
    }
}

/// CPU: blocks that fit in `budget` bytes.
///
/// # Errors
/// [`EngineError::InvalidConfig`] when `bytes_per_block` is 0.
pub fn cpu_num_blocks(budget: u64, bytes_per_block: usize) -> Result<usize> {
    if bytes_per_block == 0 {
        return Err(EngineError::InvalidConfig(
            "a KV block of 0 bytes: the model has no layers or heads".into(),
        ));
    }
    Ok(usize::try_from(budget / bytes_per_block as u64).unwrap_or(usize::MAX))
}

/// The CPU budget to use: the one given, else the default raised to one `max_model_len`
/// sequence.
pub fn cpu_budget(
    given: Option<u64>,
    default: u64,
    bytes_per_block: usize,
    max_model_len: usize,
    block_size: usize,
) -> u64 {
    given.unwrap_or_else(|| {
        let one_seq = max_model_len.div_ceil(block_size.max(1)) as u64 * bytes_per_block as u64;
        default.max(one_seq)
    })
}

/// GPU: bytes left for the KV cache, `total × utilization − used_after_load − activation_peak`
/// (0 when that is negative).
pub fn gpu_kv_budget(
    total_bytes: u64,
    used_after_load: u64,
    activation_peak: u64,
    utilization: f64,
) -> u64 {
    let allowed = (total_bytes as f64 * utilization).floor() as u64;
    allowed.saturating_sub(used_after_load.saturating_add(activation_peak))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_math() -> Result<()> {
        assert_eq!(cpu_num_blocks(1 << 20, 65536)?, 16);
        assert!(cpu_num_blocks(10, 0).is_err());
        assert_eq!(cpu_budget(Some(5), 100, 10, 64, 16), 5);
        assert_eq!(cpu_budget(None, 100, 10, 64, 16), 100);
        assert_eq!(
            cpu_budget(None, 10, 10, 64, 16),
            40,
            "raised to one sequence"
        );
        let gib = 1u64 << 30;
        assert_eq!(gpu_kv_budget(80 * gib, 20 * gib, 4 * gib, 0.9), 48 * gib);
        assert_eq!(gpu_kv_budget(80 * gib, 70 * gib, 4 * gib, 0.9), 0);
        let info = KvCacheInfo::new(100, 16, 1024, 256);
        assert_eq!(info.total_bytes, 102_400);
        assert_eq!(info.capacity_tokens, 1600);
        assert_eq!(info.blocks_per_max_len_seq, 16);
        assert!((info.max_concurrency() - 6.25).abs() < 1e-12);
        let m = MemoryReport {
            weights_bytes: 10,
            kv_cache_bytes: 5,
            ..MemoryReport::default()
        };
        assert_eq!(m.used_bytes(), 15);
        Ok(())
    }
}
