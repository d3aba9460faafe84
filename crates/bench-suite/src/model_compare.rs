//! Model comparison (`compare-models`, the seed's Challenge 2): several models on one
//! device — the memory each needs, its throughput and latency, and which fits best.
//!
//! | figure | definition |
//! |---|---|
//! | weights | the model's parameter count × the dtype's bytes (from its config, before loading) |
//! | KV for the workload | `min(num_prompts, max_num_seqs)` sequences of `input_len + output_len` tokens, in whole KV blocks |
//! | needed | weights + KV (activations are not counted: a small model's are tiny; on a GPU the engine measures them when it loads) |
//! | available | CPU: the host RAM available now; GPU: total memory × `gpu_memory_utilization` |
//! | fits best | the highest output throughput among the models that ran; ties go to the smaller memory need, then to the earlier model in the list |
//!
//! A model whose need exceeds what is available is not loaded: its point is recorded as out
//! of memory with needed vs available, and the comparison goes on.

use llm_engine::engine::{parse_dtype, DeviceSpec, EngineConfig};
use llm_engine::{Engine, KvCacheDtype, LoadFormat, ModelConfig, ModelSource, PagedKvStorage};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::sweep::{PointRecord, SweepPoint};
use crate::tune::{run_offline, OfflineFigures, OfflineWorkload};

/// One point: a model (preset name, folder or cached Hugging Face id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPoint {
    /// The model as given on the command line.
    pub model: String,
}

impl SweepPoint for ModelPoint {
    fn key(&self) -> String {
        self.model.clone()
    }
}

/// The memory a model needs for a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryNeed {
    /// Parameters of the model.
    pub num_parameters: u64,
    /// Bytes of the weights in the run's dtype.
    pub weights_bytes: u64,
    /// Bytes of the KV cache the workload's concurrent sequences fill.
    pub kv_bytes: u64,
    /// Weights + KV.
    pub total_bytes: u64,
}

/// Memory the device offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvailableMemory {
    /// Bytes a model may use; `None` when the device does not say.
    pub bytes: Option<u64>,
    /// Where the figure comes from, in words.
    pub source: String,
}

/// Memory on `device` for the engine: host RAM available now on the CPU; the GPU's total ×
/// `gpu_memory_utilization` (NVML's index is taken as the CUDA ordinal).
pub fn available_memory(device: DeviceSpec, gpu_memory_utilization: f64) -> AvailableMemory {
    match device {
        DeviceSpec::Cpu => {
            let host = gpu_probe::HostInfo::probe();
            AvailableMemory {
                bytes: Some(host.memory_available_bytes),
                source: "host RAM available".into(),
            }
        }
        DeviceSpec::Cuda(n) => {
            let total = match gpu_probe::probe_gpus() {
                gpu_probe::GpuProbe::Available { devices, .. } => devices
                    .iter()
                    .find(|g| g.index as usize == n)
                    .and_then(|g| g.memory_total_bytes),
                _ => None,
            };
            AvailableMemory {
                bytes: total.map(|t| (t as f64 * gpu_memory_utilization) as u64),
                source: format!("GPU {n} total x gpu_memory_utilization {gpu_memory_utilization}"),
            }
        }
    }
}

/// The configuration of `model` without loading its weights: a preset's, or the
/// `config.json` of a folder or of a cached Hugging Face model.
///
/// # Errors
/// The engine's config and cache errors (unknown preset, missing or malformed config, model
/// not in the cache).
pub fn model_config(model: &str) -> Result<ModelConfig> {
    Ok(match llm_engine::resolve_model(model) {
        ModelSource::Preset(name) => llm_engine::presets::preset(&name).ok_or_else(|| {
            llm_engine::EngineError::UnknownPreset {
                name: name.clone(),
                known: llm_engine::presets::preset_names().join(", "),
            }
        })?,
        ModelSource::Dir(dir) => ModelConfig::from_file(&dir.join("config.json"))?,
        ModelSource::HfCache { model_id, revision } => {
            let cached = llm_engine::weights::HfCacheModel::find(&model_id, revision.as_deref())?;
            ModelConfig::from_file(&cached.snapshot_dir.join("config.json"))?
        }
    })
}

/// The memory `config` needs in `dtype` for `workload` with at most `max_num_seqs`
/// sequences at once and blocks of `block_size` tokens, K/V stored as `kv_cache_dtype` says
/// (one byte per element for fp8).
pub fn memory_need(
    config: &ModelConfig,
    dtype_name: &str,
    kv_cache_dtype: KvCacheDtype,
    block_size: usize,
    max_num_seqs: usize,
    workload: &OfflineWorkload,
) -> Result<MemoryNeed> {
    let dtype = parse_dtype(dtype_name)?;
    let weights_bytes = config.weight_bytes(dtype);
    let kv_dtype = kv_cache_dtype.storage_dtype(dtype);
    let per_block = PagedKvStorage::bytes_per_block(config, block_size, kv_dtype) as u64;
    let concurrent = workload.num_prompts.min(max_num_seqs.max(1)) as u64;
    let blocks_per_seq = workload.seq_len().div_ceil(block_size.max(1)) as u64;
    let kv_bytes = concurrent * blocks_per_seq * per_block;
    Ok(MemoryNeed {
        num_parameters: config.num_parameters(),
        weights_bytes,
        kv_bytes,
        total_bytes: weights_bytes + kv_bytes,
    })
}

/// The settings every model runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareSettings {
    /// `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
    /// The dtype K/V are stored in (`auto`: `dtype`).
    pub kv_cache_dtype: KvCacheDtype,
    /// Where weights come from.
    pub load_format: LoadFormat,
    /// Tokens per KV block.
    pub block_size: usize,
    /// Most requests at once.
    pub max_num_seqs: usize,
    /// Fraction of GPU memory the engine may use.
    pub gpu_memory_utilization: f64,
    /// Seed of dummy weights and prompts.
    pub seed: u64,
    /// The requests.
    pub workload: OfflineWorkload,
}

/// What one model measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// The model's name as the engine reports it.
    pub model_name: String,
    /// The estimate made before loading.
    pub memory_need: MemoryNeed,
    /// Memory the loaded engine used (device allocations on a GPU, weights + KV on the CPU).
    pub memory_used_bytes: u64,
    /// Seconds to load the model.
    pub load_time_s: f64,
    /// The timed run.
    pub figures: OfflineFigures,
}

/// The memory `point` needs under `settings`, before anything is loaded.
///
/// # Errors
/// Model config errors; [`BenchError::InvalidArgument`] when the workload's sequences are
/// longer than the model's positions.
pub fn estimate(settings: &CompareSettings, point: &ModelPoint) -> Result<MemoryNeed> {
    let config = model_config(&point.model)?;
    let seq_len = settings.workload.seq_len();
    if seq_len > config.max_position_embeddings {
        return Err(BenchError::InvalidArgument(format!(
            "{}: input + output length {seq_len} is longer than its {} positions",
            point.model, config.max_position_embeddings
        )));
    }
    memory_need(
        &config,
        &settings.dtype,
        settings.kv_cache_dtype,
        settings.block_size,
        settings.max_num_seqs,
        &settings.workload,
    )
}

/// Estimates `point`'s memory, refuses (out of memory, needed vs available) a model that
/// cannot fit, else loads it and runs the workload.
///
/// # Errors
/// [`BenchError::OutOfMemory`] for a model that does not fit; [`estimate`]'s errors; engine
/// and run errors.
pub fn measure_model(
    settings: &CompareSettings,
    available: &AvailableMemory,
    point: &ModelPoint,
) -> Result<ModelResult> {
    let need = estimate(settings, point)?;
    let seq_len = settings.workload.seq_len();
    if let Some(avail) = available.bytes {
        if need.total_bytes > avail {
            return Err(BenchError::OutOfMemory(format!(
                "{} needs {:.2} GB (weights {:.2} GB + KV {:.2} GB), {:.2} GB available ({}): not run",
                point.model,
                need.total_bytes as f64 / 1e9,
                need.weights_bytes as f64 / 1e9,
                need.kv_bytes as f64 / 1e9,
                avail as f64 / 1e9,
                available.source
            )));
        }
    }
    let device: DeviceSpec = settings.device.parse()?;
    let engine_config = EngineConfig {
        model: point.model.clone(),
        load_format: settings.load_format,
        dtype: parse_dtype(&settings.dtype)?,
        kv_cache_dtype: settings.kv_cache_dtype,
        device: settings.device.clone(),
        block_size: settings.block_size,
        gpu_memory_utilization: settings.gpu_memory_utilization,
        // The CPU gets exactly the workload's KV; a GPU sizes its cache the vLLM way.
        kv_cache_bytes: (device == DeviceSpec::Cpu).then_some(need.kv_bytes.max(1)),
        max_num_seqs: settings.max_num_seqs,
        max_model_len: Some(seq_len),
        seed: settings.seed,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(engine_config)?;
    let figures = run_offline(&mut engine, &settings.workload)?;
    Ok(ModelResult {
        model_name: engine.model_name().to_string(),
        memory_need: need,
        memory_used_bytes: engine.memory().used_bytes(),
        load_time_s: engine.load_time().as_secs_f64(),
        figures,
    })
}

/// The model that fits best.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestModel {
    /// The model as given.
    pub model: String,
    /// Its output throughput.
    pub throughput_tokens_per_sec: f64,
    /// Its memory need, bytes.
    pub memory_needed_bytes: u64,
}

/// Tie-break rule of [`best_model`], as the report states it.
pub const TIE_BREAK: &str =
    "highest output throughput among the models that ran; ties: smaller memory need, then the earlier model in --models";

/// The model that fits best among `records` (in `--models` order), see [`TIE_BREAK`].
pub fn best_model(records: &[PointRecord<ModelPoint, ModelResult>]) -> Option<BestModel> {
    let mut best: Option<BestModel> = None;
    for r in records {
        let Some(res) = r.ok_result() else { continue };
        let c = BestModel {
            model: r.point.model.clone(),
            throughput_tokens_per_sec: res.figures.throughput_tokens_per_sec,
            memory_needed_bytes: res.memory_need.total_bytes,
        };
        let better = match &best {
            None => true,
            Some(b) => {
                c.throughput_tokens_per_sec > b.throughput_tokens_per_sec
                    || (c.throughput_tokens_per_sec == b.throughput_tokens_per_sec
                        && c.memory_needed_bytes < b.memory_needed_bytes)
            }
        };
        if better {
            best = Some(c);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::PointStatus;

    fn workload(n: usize) -> OfflineWorkload {
        OfflineWorkload {
            num_prompts: n,
            input_len: 24,
            output_len: 8,
            warmup_prompts: 0,
            seed: 0,
        }
    }

    #[test]
    fn memory_need_of_presets() -> Result<()> {
        let cfg = model_config("llama-2-7b")?;
        let need = memory_need(&cfg, "f16", KvCacheDtype::Auto, 16, 256, &workload(4))?;
        assert_eq!(need.weights_bytes, cfg.num_parameters() * 2);
        // llama-2-7b: 32 layers x 2 (K, V) x 4096 x 2 bytes = 512 KiB per token; 32 tokens
        // per sequence = 2 blocks of 16; 4 sequences.
        assert_eq!(need.kv_bytes, 4 * 2 * 16 * 512 * 1024);
        assert_eq!(need.total_bytes, need.weights_bytes + need.kv_bytes);
        let capped = memory_need(&cfg, "f16", KvCacheDtype::Auto, 16, 2, &workload(4))?;
        assert_eq!(
            capped.kv_bytes * 2,
            need.kv_bytes,
            "max_num_seqs caps concurrency"
        );
        let f32 = memory_need(&cfg, "f32", KvCacheDtype::Auto, 16, 256, &workload(4))?;
        assert_eq!(f32.weights_bytes, 2 * need.weights_bytes);
        // An fp8 cache: 1 byte per element, whatever the model dtype; weights unchanged.
        for dtype in ["f16", "f32"] {
            let fp8 = memory_need(&cfg, dtype, KvCacheDtype::Fp8E4M3, 16, 256, &workload(4))?;
            assert_eq!(fp8.kv_bytes * 2, need.kv_bytes, "{dtype}");
        }
        assert!(model_config("no-such-model").is_err());
        Ok(())
    }

    #[test]
    fn a_model_too_big_is_not_run() {
        let settings = CompareSettings {
            device: "cpu".into(),
            dtype: "f32".into(),
            kv_cache_dtype: KvCacheDtype::Auto,
            load_format: LoadFormat::Dummy,
            block_size: 16,
            max_num_seqs: 8,
            gpu_memory_utilization: 0.9,
            seed: 0,
            workload: workload(2),
        };
        let tiny = AvailableMemory {
            bytes: Some(1 << 20),
            source: "test".into(),
        };
        let err = measure_model(
            &settings,
            &tiny,
            &ModelPoint {
                model: "llama-2-7b".into(),
            },
        );
        let msg = err
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(matches!(err, Err(BenchError::OutOfMemory(_))), "{msg}");
        assert!(
            msg.contains("llama-2-7b needs 27.02 GB") && msg.contains("0.00 GB available"),
            "{msg}"
        );
    }

    #[test]
    fn best_model_and_tie_breaks() {
        let rec = |m: &str, status, tput: f64, need: u64| PointRecord {
            key: m.to_string(),
            point: ModelPoint { model: m.into() },
            status,
            error: None,
            result: (status == PointStatus::Ok).then(|| ModelResult {
                model_name: m.into(),
                memory_need: MemoryNeed {
                    num_parameters: 1,
                    weights_bytes: need,
                    kv_bytes: 0,
                    total_bytes: need,
                },
                memory_used_bytes: need,
                load_time_s: 0.0,
                figures: OfflineFigures {
                    num_prompts: 1,
                    output_tokens: 1,
                    input_tokens: 1,
                    elapsed_s: 1.0,
                    throughput_tokens_per_sec: tput,
                    total_token_throughput: tput,
                    latency_per_request_ms: 1.0,
                    mean_e2el_ms: 1.0,
                    median_e2el_ms: 1.0,
                    p99_e2el_ms: 1.0,
                    mean_ttft_ms: 1.0,
                    p99_ttft_ms: 1.0,
                    preemptions: 0,
                },
            }),
            wall_time_s: 0.0,
            finished_at: String::new(),
        };
        let recs = vec![
            rec("a", PointStatus::Ok, 100.0, 50),
            rec("b", PointStatus::Ok, 200.0, 80),
            rec("c", PointStatus::Ok, 200.0, 60),
            rec("d", PointStatus::Ok, 200.0, 60),
            rec("e", PointStatus::OutOfMemory, 0.0, 0),
        ];
        assert_eq!(best_model(&recs).map(|b| b.model), Some("c".to_string()));
        assert_eq!(best_model(&recs[4..]), None);
    }

    #[test]
    fn a_model_that_fits_runs() -> Result<()> {
        let settings = CompareSettings {
            device: "cpu".into(),
            dtype: "f32".into(),
            kv_cache_dtype: KvCacheDtype::Auto,
            load_format: LoadFormat::Dummy,
            block_size: 16,
            max_num_seqs: 8,
            gpu_memory_utilization: 0.9,
            seed: 0,
            workload: OfflineWorkload {
                num_prompts: 3,
                input_len: 5,
                output_len: 3,
                warmup_prompts: 0,
                seed: 0,
            },
        };
        let enough = AvailableMemory {
            bytes: Some(1 << 30),
            source: "test".into(),
        };
        let model = crate::tune::tests::MINI_MODEL.to_string();
        let r = measure_model(&settings, &enough, &ModelPoint { model })?;
        assert_eq!(r.figures.output_tokens, 9);
        // 2 layers x (K, V) x 4 heads x 16 dims x 4 bytes x 16 tokens per block, 3 sequences.
        assert_eq!(r.memory_need.kv_bytes, 3 * 2 * 2 * 4 * 16 * 4 * 16);
        assert_eq!(
            r.memory_need.weights_bytes,
            r.memory_need.num_parameters * 4
        );
        Ok(())
    }
}
