//! [`RunHeader`]: what every mode's report starts with — model, device, dtype, engine
//! configuration, load time, memory, KV cache, run manifest.

use llm_engine::{Engine, KvCacheDtype};
use metrics::RunManifest;
use serde::Serialize;

/// The KV cache as sized at start-up, plus its peak usage so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KvCacheSummary {
    /// The dtype of the cache's tensors: the model's, or `f8e4m3` for an fp8 cache.
    pub dtype: &'static str,
    /// KV blocks.
    pub num_blocks: usize,
    /// Tokens per block.
    pub block_size: usize,
    /// Bytes per block (all layers, K and V).
    pub bytes_per_block: usize,
    /// Bytes of the whole cache.
    pub total_bytes: u64,
    /// Tokens the cache holds.
    pub capacity_tokens: usize,
    /// Sequences of `max_model_len` tokens that fit at once.
    pub max_concurrency: f64,
    /// Highest fraction of blocks in use seen so far, in [0, 1].
    pub peak_usage: f64,
}

/// The shared head of every mode's report. Serialises flat (these keys sit at the top level
/// of a result, as the seed's `model`, `load_time_s`, `memory_used_gb` do).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunHeader {
    /// The model as asked for (preset, folder or model id; the seed's `model`).
    pub model: String,
    /// The model's display name.
    pub model_name: String,
    /// Which engine ran it.
    pub engine: String,
    /// Where the weights came from: auto, safetensors or dummy.
    pub load_format: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Weight/activation dtype (and the KV cache's with `kv_cache_dtype` auto).
    pub dtype: String,
    /// The KV cache's dtype setting (vLLM's `kv_cache_dtype`): `auto` or `fp8_e4m3`.
    pub kv_cache_dtype: KvCacheDtype,
    /// Tokens per KV block.
    pub block_size: usize,
    /// Most requests running at once.
    pub max_num_seqs: usize,
    /// Most tokens in one forward pass.
    pub max_num_batched_tokens: usize,
    /// Longest sequence (prompt + output).
    pub max_model_len: usize,
    /// GPU: fraction of device memory the engine may use.
    pub gpu_memory_utilization: f64,
    /// Whether prefix caching is on.
    pub prefix_caching: bool,
    /// Whether chunked prefill is on.
    pub chunked_prefill: bool,
    /// Seconds to load the model (the seed's `load_time_s`).
    pub load_time_s: f64,
    /// Memory the engine uses, GB (10⁹ bytes; the seed's `memory_used_gb`).
    pub memory_used_gb: f64,
    /// `memory_used_gb` as a percentage of the device's (GPU) or host's (CPU) memory.
    pub memory_utilization_pct: f64,
    /// KV-cache sizing and peak usage.
    pub kv_cache: KvCacheSummary,
    /// Where the memory goes (weights, KV, activations, device totals).
    pub memory: llm_engine::engine::MemoryReport,
    /// Host, GPUs, driver, gpubench version, git commit, command line.
    pub manifest: RunManifest,
}

impl RunHeader {
    /// The header of `engine` now (the manifest is captured here; KV peak usage is the
    /// engine's so far).
    pub fn capture(engine: &Engine) -> RunHeader {
        let manifest = RunManifest::capture();
        Self::with_manifest(engine, manifest)
    }

    /// As [`RunHeader::capture`] with a manifest the caller already has.
    pub fn with_manifest(engine: &Engine, manifest: RunManifest) -> RunHeader {
        let config = engine.config();
        let info = engine.kv_cache_info();
        let memory = engine.memory();
        let used = memory.used_bytes();
        let total = memory
            .device_total_bytes
            .unwrap_or(manifest.host.memory_total_bytes);
        RunHeader {
            model: config.model.clone(),
            model_name: engine.model_name().to_string(),
            engine: "gpubench llm-engine".into(),
            load_format: format!("{:?}", config.load_format).to_lowercase(),
            device: engine.device_spec().to_string(),
            dtype: format!("{:?}", engine.dtype()).to_lowercase(),
            kv_cache_dtype: engine.kv_cache_dtype(),
            block_size: info.block_size,
            max_num_seqs: config.max_num_seqs,
            max_num_batched_tokens: config.max_num_batched_tokens,
            max_model_len: engine.max_model_len(),
            gpu_memory_utilization: config.gpu_memory_utilization,
            prefix_caching: config.enable_prefix_caching,
            chunked_prefill: config.enable_chunked_prefill,
            load_time_s: engine.load_time().as_secs_f64(),
            memory_used_gb: used as f64 / 1e9,
            memory_utilization_pct: if total > 0 {
                used as f64 / total as f64 * 100.0
            } else {
                0.0
            },
            kv_cache: KvCacheSummary {
                dtype: engine.kv_storage_dtype().as_str(),
                num_blocks: info.num_blocks,
                block_size: info.block_size,
                bytes_per_block: info.bytes_per_block,
                total_bytes: info.total_bytes,
                capacity_tokens: info.capacity_tokens,
                max_concurrency: info.max_concurrency(),
                peak_usage: engine.stats().peak_kv_usage,
            },
            memory,
            manifest,
        }
    }

    /// Two lines for a human summary: model, device, load time; memory and KV cache.
    pub fn summary_lines(&self) -> String {
        let kv = &self.kv_cache;
        format!(
            "Model: {} ({}, {}, {}), load time {:.2}s\n\
             Memory used: {:.2} GB ({:.1}%); KV cache ({}): {} blocks x {} tokens, {:.1} KiB/block, {:.2} GiB, peak usage {:.1}%, max concurrency {:.1}\n",
            self.model_name,
            self.device,
            self.dtype,
            self.load_format,
            self.load_time_s,
            self.memory_used_gb,
            self.memory_utilization_pct,
            kv.dtype,
            kv.num_blocks,
            kv.block_size,
            kv.bytes_per_block as f64 / 1024.0,
            kv.total_bytes as f64 / (1u64 << 30) as f64,
            kv.peak_usage * 100.0,
            kv.max_concurrency,
        )
    }
}
