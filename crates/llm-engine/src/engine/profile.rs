//! GPU KV sizing by a profiling forward pass (vLLM's `determine_num_available_blocks`).
//!
//! After the weights are loaded, one forward pass runs `max_num_batched_tokens` dummy tokens
//! spread over up to `max_num_seqs` sequences (each at most `max_model_len` long), all asking
//! for logits, into a scratch KV storage just big enough for them. The stream-ordered pool's
//! high-water mark over that pass, minus what was allocated before it, is the activation peak.
//! The KV cache then gets `total × gpu_memory_utilization − in use − activation peak`.

use candle_core::Device;

use crate::engine::config::EngineConfig;
use crate::engine::kv_sizing::MemoryReport;
use crate::error::Result;
use crate::models::CausalLm;

/// Dummy sequence lengths for the profiling pass: `tokens` tokens in at most `max_seqs`
/// sequences of at most `max_len` tokens each.
pub fn profile_seq_lens(tokens: usize, max_seqs: usize, max_len: usize) -> Vec<usize> {
    let max_seqs = max_seqs.max(1);
    let max_len = max_len.max(1);
    let tokens = tokens.min(max_seqs.saturating_mul(max_len)).max(1);
    // As many sequences as allowed (vLLM profiles with max_num_seqs), evenly filled: each
    // gets at most ceil(tokens / n) <= max_len tokens.
    let n = max_seqs.min(tokens);
    let (base, extra) = (tokens / n, tokens % n);
    (0..n).map(|i| base + usize::from(i < extra)).collect()
}

/// Number of KV blocks on a CUDA device (see the module docs). Fills in `memory`'s activation
/// peak and device total.
///
/// # Errors
/// [`crate::EngineError::CudaNotCompiled`] without the `cuda` feature; device query and
/// forward-pass errors; [`crate::EngineError::KvCacheTooSmall`] is left to the caller.
#[cfg(feature = "cuda")]
pub fn gpu_num_blocks(
    model: &dyn CausalLm,
    config: &EngineConfig,
    max_model_len: usize,
    bytes_per_block: usize,
    device: &Device,
    memory: &mut MemoryReport,
) -> Result<usize> {
    use crate::engine::cuda_memory;
    use crate::engine::kv_sizing::gpu_kv_budget;
    use crate::models::{PagedKvStorage, SeqSlice};

    let cfg = model.config();
    let bs = config.block_size;
    let lens = profile_seq_lens(
        config.max_num_batched_tokens,
        config.max_num_seqs,
        max_model_len,
    );
    let scratch_blocks: usize = lens.iter().map(|l| l.div_ceil(bs)).sum();
    let mut scratch =
        PagedKvStorage::new(cfg, scratch_blocks, bs, config.kv_storage_dtype(), device)?;
    let mut next_block = 0u32;
    let vocab = cfg.vocab_size as u32;
    let slices: Vec<SeqSlice> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let nb = len.div_ceil(bs) as u32;
            let table: Vec<u32> = (next_block..next_block + nb).collect();
            next_block += nb;
            SeqSlice {
                token_ids: (0..len)
                    .map(|t| ((t * 31 + i * 7) as u32) % vocab)
                    .collect(),
                start_pos: 0,
                block_table: table,
                want_logits: true,
            }
        })
        .collect();
    device.synchronize()?;
    let before = cuda_memory::pool_used(device)?;
    cuda_memory::reset_pool_peak(device)?;
    let logits = model.forward(&slices, &mut scratch)?;
    // Sampling copies the logits to the host: part of the step's peak.
    let _host = logits.flatten_all()?.to_vec1::<f32>()?;
    device.synchronize()?;
    let peak = cuda_memory::pool_peak(device)?;
    drop(logits);
    drop(scratch);
    device.synchronize()?;
    let activation_peak = peak.saturating_sub(before);
    let (free, total) = cuda_memory::mem_info(device)?;
    let in_use = total - free;
    let mut budget = gpu_kv_budget(
        total,
        in_use,
        activation_peak,
        config.gpu_memory_utilization,
    );
    if let Some(cap) = config.kv_cache_bytes {
        budget = budget.min(cap);
    }
    memory.activation_peak_bytes = activation_peak;
    memory.device_total_bytes = Some(total);
    tracing::info!(
        total_gib = total as f64 / (1u64 << 30) as f64,
        in_use_gib = in_use as f64 / (1u64 << 30) as f64,
        activation_peak_gib = activation_peak as f64 / (1u64 << 30) as f64,
        kv_budget_gib = budget as f64 / (1u64 << 30) as f64,
        profile_tokens = lens.iter().sum::<usize>(),
        profile_seqs = lens.len(),
        "profiled GPU memory"
    );
    Ok(usize::try_from(budget / bytes_per_block.max(1) as u64).unwrap_or(usize::MAX))
}

/// Without the `cuda` feature there is no GPU to size for.
///
/// # Errors
/// Always [`crate::EngineError::CudaNotCompiled`].
#[cfg(not(feature = "cuda"))]
pub fn gpu_num_blocks(
    _model: &dyn CausalLm,
    config: &EngineConfig,
    _max_model_len: usize,
    _bytes_per_block: usize,
    _device: &Device,
    _memory: &mut MemoryReport,
) -> Result<usize> {
    Err(crate::EngineError::CudaNotCompiled {
        device: config.device.clone(),
    })
}

/// Records the device's total memory and this process's allocations (GPU only; no-op on
/// the CPU).
///
/// # Errors
/// Device query errors.
pub fn record_device_memory(device: &Device, memory: &mut MemoryReport) -> Result<()> {
    #[cfg(feature = "cuda")]
    if device.is_cuda() {
        use crate::engine::cuda_memory;
        device.synchronize()?;
        let (_, total) = cuda_memory::mem_info(device)?;
        memory.device_total_bytes = Some(total);
        memory.device_used_bytes = Some(cuda_memory::pool_used(device)?);
    }
    let _ = (device, memory);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_lengths_cover_the_budget() {
        assert_eq!(profile_seq_lens(8192, 256, 2048), vec![32; 256]);
        assert_eq!(profile_seq_lens(100, 4, 1000), vec![25; 4]);
        assert_eq!(profile_seq_lens(10, 256, 1024), vec![1; 10]);
        let l = profile_seq_lens(8192, 2, 1024);
        assert_eq!(l, vec![1024, 1024], "capped by seqs × max_len");
        let l = profile_seq_lens(7, 3, 100);
        assert_eq!(l.iter().sum::<usize>(), 7);
        assert!(l.len() <= 3);
    }
}
