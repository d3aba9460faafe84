//! The contents of `benchmark_results.json`: one [`BenchmarkReport`] per machine, built
//! from the parts bench-all records as each stage finishes.

use matmul_flops::{BandwidthResult, DeviceInfo, GemmResult};
use metrics::RunManifest;
use serde::{Deserialize, Serialize};

use crate::roofline::RooflineReport;

/// Version of the results layout and of `benchmark_results.json`'s schema. `compare` only
/// merges folders of the same version.
pub const RESULTS_VERSION: u32 = 1;

/// What machine the results come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineFacts {
    /// A short name for tables and plots: the GPU's name, or `CPU <model>`.
    pub label: String,
    /// The device the benchmarks ran on (`cpu`, `cuda:0`).
    pub device: String,
    /// GPU name, when the device is a GPU.
    pub gpu_name: Option<String>,
    /// gpu-probe architecture key of that GPU (`h100-sxm`, `t4`).
    pub gpu_arch: Option<String>,
    /// GPU memory in GB (10⁹ B).
    pub gpu_memory_gb: Option<f64>,
    /// NVIDIA driver version.
    pub driver_version: Option<String>,
    /// Why there is no GPU, when there is none.
    pub gpu_unavailable_reason: Option<String>,
    /// The host's CPU model.
    pub cpu_model: String,
    /// Logical CPU cores.
    pub logical_cores: usize,
    /// Host memory in GB.
    pub host_memory_gb: f64,
    /// Host name.
    pub hostname: String,
}

/// The GEMM stage: device facts and one checked result per (dtype, shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmStage {
    /// The device measured.
    pub device: DeviceInfo,
    /// Results.
    pub results: Vec<GemmResult>,
    /// Precisions skipped, with why.
    pub skipped: Vec<String>,
}

/// The bandwidth stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandwidthStage {
    /// The device measured.
    pub device: DeviceInfo,
    /// Results.
    pub results: Vec<BandwidthResult>,
}

/// One model's offline LLM run: the seed's keys, the main serving and energy figures, and
/// the whole llm-bench report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmEntry {
    /// Model (preset name).
    pub model: String,
    /// Device.
    pub device: String,
    /// Dtype of weights and activations (and the KV cache's with `kv_cache_dtype` auto).
    pub dtype: String,
    /// The KV cache's dtype setting: `auto` or `fp8_e4m3` (absent in older results: auto).
    #[serde(default)]
    pub kv_cache_dtype: llm_engine::KvCacheDtype,
    /// Requests in the timed run.
    pub num_prompts: usize,
    /// Prompt tokens per request.
    pub input_len: usize,
    /// Output tokens per request (the seed's `max_tokens`).
    pub max_tokens: usize,
    /// Seconds to load the model.
    pub load_time_s: f64,
    /// Seconds of the timed run.
    pub inference_time_s: f64,
    /// Output tokens generated.
    pub total_tokens: usize,
    /// Output tokens / second (the seed's throughput).
    pub throughput_tokens_per_sec: f64,
    /// Elapsed / requests, ms (the seed's latency per request).
    pub latency_per_request_ms: f64,
    /// Engine memory in GB.
    pub memory_used_gb: f64,
    /// Of the device's (or host's) memory, %.
    pub memory_utilization_pct: f64,
    /// Mean time to first token, ms.
    pub mean_ttft_ms: Option<f64>,
    /// p99 time to first token, ms.
    pub p99_ttft_ms: Option<f64>,
    /// Mean time per output token, ms.
    pub mean_tpot_ms: Option<f64>,
    /// p99 time per output token, ms.
    pub p99_tpot_ms: Option<f64>,
    /// Mean end-to-end latency, ms.
    pub mean_e2el_ms: Option<f64>,
    /// p99 end-to-end latency, ms.
    pub p99_e2el_ms: Option<f64>,
    /// GPU energy of the timed run, J (`None` without NVML).
    pub energy_j: Option<f64>,
    /// Mean GPU power, W.
    pub avg_power_w: Option<f64>,
    /// Peak GPU power, W.
    pub peak_power_w: Option<f64>,
    /// Joules per output token.
    pub joules_per_output_token: Option<f64>,
    /// Output tokens per joule.
    pub tokens_per_joule: Option<f64>,
    /// Why there is no energy figure, when there is none.
    pub energy_unavailable: Option<String>,
    /// Share of the prefill steps' GPU samples at the board's power limit, `0..=1` (absent
    /// without samples, and in older result files).
    #[serde(default)]
    pub prefill_power_capped_fraction: Option<f64>,
    /// Share of the decode-only steps' GPU samples at the board's power limit, `0..=1`.
    #[serde(default)]
    pub decode_power_capped_fraction: Option<f64>,
    /// The whole llm-bench (offline mode) report.
    pub report: serde_json::Value,
}

/// One batch size of a model's sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRow {
    /// Prompts run at once.
    pub batch_size: usize,
    /// `ok`, `out_of_memory` or `error`.
    pub status: String,
    /// Output tokens / mean batch latency.
    pub throughput_tokens_per_sec: Option<f64>,
    /// Mean batch latency, ms.
    pub batch_latency_ms: Option<f64>,
    /// p99 batch latency, ms.
    pub p99_batch_latency_ms: Option<f64>,
    /// Mean batch latency / batch size, ms (the seed's latency per request).
    pub latency_per_request_ms: Option<f64>,
    /// The error, for a failed point.
    pub error: Option<String>,
}

/// One model's batch sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSweepEntry {
    /// Model.
    pub model: String,
    /// Prompt tokens per request.
    pub input_len: usize,
    /// Output tokens per request.
    pub output_len: usize,
    /// Every batch size, in order.
    pub rows: Vec<BatchRow>,
    /// The batch size with the highest throughput.
    pub best_batch_size: Option<usize>,
    /// The smallest batch size that ran out of memory.
    pub first_out_of_memory: Option<usize>,
}

/// One model's throughput priced on one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEntry {
    /// Model.
    pub model: String,
    /// Provider.
    pub provider: String,
    /// Instance type.
    pub instance_type: String,
    /// GPU model key of the instance.
    pub gpu_model: String,
    /// GPUs in the instance.
    pub gpu_count: u32,
    /// Instance price, $/hour.
    pub usd_per_hour: f64,
    /// Measured throughput, tokens/s.
    pub throughput_tokens_per_sec: f64,
    /// $ per 1M output tokens.
    pub cost_per_1m_tokens: f64,
    /// Tokens per $.
    pub tokens_per_dollar: f64,
    /// Whether the instance has the GPU the run was measured on (otherwise a what-if).
    pub measured_gpu_model: bool,
    /// Date of the price.
    pub price_date: Option<String>,
}

/// A stage that failed (its error), so the folder says what is missing and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageFailure {
    /// The stage (`gemm`, `llm-opt-1.3b`).
    pub stage: String,
    /// `out_of_memory` or `error`.
    pub status: String,
    /// The error message.
    pub error: String,
}

/// Everything one bench-all run measured on one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkReport {
    /// [`RESULTS_VERSION`].
    pub results_version: u32,
    /// The machine.
    pub machine: MachineFacts,
    /// The settings bench-all ran with (quick, models, seed, ...).
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// When and where: host, GPUs, driver, gpubench version, git commit, command line.
    pub manifest: RunManifest,
    /// GEMM TFLOP/s per dtype and shape.
    pub gemm: Option<GemmStage>,
    /// Memory bandwidth per test.
    pub bandwidth: Option<BandwidthStage>,
    /// Offline LLM throughput per model.
    pub llm: Vec<LlmEntry>,
    /// Batch sweeps per model.
    pub batch_sweeps: Vec<BatchSweepEntry>,
    /// Prefill and decode held against the measured roofline, per model.
    pub roofline: Vec<RooflineReport>,
    /// The instance this machine's cost is quoted on (the `--instance` given, or the first
    /// catalog instance with this GPU).
    pub primary_instance: Option<String>,
    /// Cost per 1M tokens per model and instance.
    pub cost: Vec<CostEntry>,
    /// Stages that failed.
    pub failures: Vec<StageFailure>,
}

impl BenchmarkReport {
    /// The cost of `model` on the primary instance, when there is one.
    pub fn primary_cost(&self, model: &str) -> Option<&CostEntry> {
        let inst = self.primary_instance.as_deref()?;
        self.cost
            .iter()
            .find(|c| c.model == model && c.instance_type == inst)
    }

    /// The best measured TFLOP/s per dtype (over shapes), in dtype order of first appearance,
    /// with the dense peak where known.
    pub fn best_tflops_per_dtype(&self) -> Vec<(String, f64, Option<f64>)> {
        let mut out: Vec<(String, f64, Option<f64>)> = Vec::new();
        for r in self.gemm.iter().flat_map(|g| &g.results) {
            let name = r.dtype.name().to_string();
            match out.iter_mut().find(|(d, _, _)| *d == name) {
                Some(row) if r.tflops > row.1 => row.1 = r.tflops,
                Some(_) => {}
                None => out.push((name, r.tflops, r.peak_tflops)),
            }
        }
        out
    }
}
