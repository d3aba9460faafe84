//! bench-all's stages (the seed's `run_all_benchmarks.sh`): GEMM TFLOP/s, memory bandwidth,
//! then per model an offline LLM run, a small batch sweep and a roofline run, then cost.
//!
//! Each stage is a point of a [`SweepStore`] under `parts/`: its result is written the
//! moment it finishes, a failed stage (a model out of memory) is recorded and the run goes
//! on, and `--resume` keeps every finished stage. A model's three stages share one loaded
//! engine. Machine facts and cost are recomputed at the end (cheap); the report is then
//! assembled from the parts.

use std::cell::RefCell;
use std::time::Duration;

use llm_engine::engine::{parse_dtype, EngineConfig, KvCacheDtype};
use llm_engine::Engine;
use matmul_flops::bandwidth::mib_to_bytes;
use matmul_flops::{
    open_bandwidth_backend, open_gemm_backend, run_bandwidth, run_gemm, BandwidthTest, BenchDevice,
    GemmDtype, GemmProblem, GemmRunConfig, StopRule,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::folder::ResultsFolder;
use super::report::{
    BandwidthStage, BatchRow, BatchSweepEntry, BenchmarkReport, GemmStage, LlmEntry, MachineFacts,
    StageFailure, RESULTS_VERSION,
};
use crate::dataset::{DatasetSpec, LengthSpec};
use crate::error::{BenchError, Result};
use crate::modes::offline::{self, OfflineSpec};
use crate::modes::SamplingTemplate;
use crate::roofline::{self, Ceilings, ModelFootprint, RooflineReport};
use crate::sweep::batch::{self, BatchPoint, BatchWorkload};
use crate::sweep::{run_sweep, PointStatus, StoreMode, SweepHeader, SweepPoint, SweepStore};

/// What bench-all runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchAllConfig {
    /// The device: `cpu` or `cuda:N`.
    pub device: String,
    /// The model presets to run.
    pub models: Vec<String>,
    /// A seconds-long run with tiny sizes (tests, smoke checks).
    pub quick: bool,
    /// Instances to price (`g4dn.xlarge`, `aws/p5.48xlarge`); empty: the catalog instances
    /// with this GPU, or on a machine without one the seed's five AWS instances.
    pub instances: Vec<String>,
    /// Seed of prompts and inputs.
    pub seed: u64,
    /// The dtype the engine stores K/V in (`Auto`: the model dtype).
    pub kv_cache_dtype: KvCacheDtype,
}

/// The seed tutorial's instances (`cost_analysis.py`), priced when no GPU matches.
pub const SEED_INSTANCES: [&str; 5] = [
    "g4dn.xlarge",
    "g6.2xlarge",
    "g5.xlarge",
    "p3.2xlarge",
    "p4d.24xlarge",
];

impl BenchAllConfig {
    /// The settings a resumed run must share (the parts' fixed settings).
    pub fn settings(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("device".into(), json!(self.device));
        m.insert("models".into(), json!(self.models));
        m.insert("quick".into(), json!(self.quick));
        m.insert("seed".into(), json!(self.seed));
        // Recorded when not auto, so a results folder from before the setting still resumes.
        if self.kv_cache_dtype != KvCacheDtype::Auto {
            m.insert("kv_cache_dtype".into(), json!(self.kv_cache_dtype));
        }
        m
    }

    fn dtype_name(&self) -> &'static str {
        if self.device == "cpu" {
            "f32"
        } else {
            "f16"
        }
    }
}

/// The presets that fit `device` by default: `tiny-llama` on a CPU; on a GPU every preset
/// whose f16 weights take at most 80% of `gpu_memory_bytes`.
pub fn default_models(device: &str, gpu_memory_bytes: Option<u64>) -> Vec<String> {
    if device == "cpu" {
        return vec!["tiny-llama".to_string()];
    }
    let budget = gpu_memory_bytes.map_or(u64::MAX, |b| b / 10 * 8);
    llm_engine::presets::preset_names()
        .iter()
        .filter(|n| {
            llm_engine::presets::preset(n).is_some_and(|c| c.num_parameters() * 2 <= budget)
        })
        .map(|n| n.to_string())
        .collect()
}

/// Told what bench-all is doing, for progress bars.
pub trait StageProgress {
    /// A stage starts, with `total` steps.
    fn start(&mut self, stage: &str, total: u64);
    /// `done` of the stage's steps are finished; `message` says which is running.
    fn advance(&mut self, done: u64, message: &str);
    /// A stage ended: `outcome` is `done`, `kept` (from an earlier run), `out_of_memory` or
    /// `error`, with the error where there is one.
    fn finish(&mut self, stage: &str, outcome: &str, error: Option<&str>);
}

/// One stage, the unit `--resume` keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// `gemm`, `bandwidth`, `llm-<model>`, `batch-sweep-<model>`, `roofline-<model>`.
    pub name: String,
}

impl SweepPoint for Stage {
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// The stages of `config`, in run order.
pub fn stages(config: &BenchAllConfig) -> Vec<Stage> {
    let mut names = vec!["gemm".to_string(), "bandwidth".to_string()];
    for m in &config.models {
        for kind in ["llm", "batch-sweep", "roofline"] {
            names.push(format!("{kind}-{m}"));
        }
    }
    names.into_iter().map(|name| Stage { name }).collect()
}

/// What the stages produced so far (fresh or kept).
#[derive(Default)]
struct Collected {
    gemm: Option<GemmStage>,
    bandwidth: Option<BandwidthStage>,
    llm: Vec<LlmEntry>,
    sweeps: Vec<BatchSweepEntry>,
    roofline: Vec<RooflineReport>,
    failures: Vec<StageFailure>,
}

fn decode<T: for<'de> Deserialize<'de>>(stage: &str, v: &Value) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| {
        BenchError::InvalidArgument(format!(
            "parts/{stage}: not a result of this gpubench version ({e}); use --force to start over"
        ))
    })
}

impl Collected {
    fn take(&mut self, stage: &str, v: &Value) -> Result<()> {
        if stage == "gemm" {
            self.gemm = Some(decode(stage, v)?);
        } else if stage == "bandwidth" {
            self.bandwidth = Some(decode(stage, v)?);
        } else if stage.starts_with("llm-") {
            self.llm.push(decode(stage, v)?);
        } else if stage.starts_with("batch-sweep-") {
            self.sweeps.push(decode(stage, v)?);
        } else if stage.starts_with("roofline-") {
            self.roofline.push(decode(stage, v)?);
        }
        Ok(())
    }
}

/// Runs every stage of `config` not yet recorded in `folder` (`mode` says whether earlier
/// parts are kept), then assembles the report. Failed stages are recorded in the report's
/// `failures` and do not stop the run.
///
/// # Errors
/// [`BenchError::InvalidArgument`] when `--resume` meets parts recorded with other
/// settings; file errors of the parts; pricing errors (an unknown `--instance`).
pub fn run_bench_all(
    folder: &ResultsFolder,
    mode: StoreMode,
    config: &BenchAllConfig,
    progress: &mut dyn StageProgress,
) -> Result<BenchmarkReport> {
    // Price lookups fail fast, before anything runs.
    let catalog = pricing::PriceCatalog::builtin()?;
    for name in &config.instances {
        catalog.find(name)?;
    }
    let stages = stages(config);
    let header = SweepHeader::new("bench-all", &["stage"], &stages, config.settings());
    let store = SweepStore::open(&folder.parts_dir(), header, mode)?;
    let progress = RefCell::new(progress);
    let collected = RefCell::new(Collected::default());
    let mut engine: Option<(String, Engine)> = None;
    let records = run_sweep(
        Some(&store),
        &stages,
        |stage: &Stage| -> Result<Value> {
            progress.borrow_mut().start(&stage.name, 1);
            let value = run_stage(
                &stage.name,
                config,
                folder,
                mode,
                &mut engine,
                &collected,
                &progress,
            )?;
            Ok(value)
        },
        |record, kept| {
            // The roofline stages need the ceilings, fresh or kept.
            if let (PointStatus::Ok, Some(v), "gemm" | "bandwidth") =
                (record.status, &record.result, record.key.as_str())
            {
                // A part that does not decode is reported when the report is assembled.
                let _ = collected.borrow_mut().take(&record.key, v);
            }
            let outcome = if kept && record.status == PointStatus::Ok {
                "kept"
            } else {
                record.status.as_str()
            };
            progress
                .borrow_mut()
                .finish(&record.key, outcome, record.error.as_deref());
        },
    )?;
    drop(engine);
    let mut c = Collected::default();
    for r in &records {
        match (&r.status, &r.result) {
            (PointStatus::Ok, Some(v)) => c.take(&r.key, v)?,
            _ => c.failures.push(StageFailure {
                stage: r.key.clone(),
                status: r.status.as_str().to_string(),
                error: r.error.clone().unwrap_or_default(),
            }),
        }
    }
    let manifest = metrics::RunManifest::capture();
    let machine = machine_facts(&manifest, &config.device);
    let (primary_instance, cost) = super::cost::price(&catalog, config, &machine, &c.llm)?;
    Ok(BenchmarkReport {
        results_version: RESULTS_VERSION,
        machine,
        settings: config.settings(),
        manifest,
        gemm: c.gemm,
        bandwidth: c.bandwidth,
        llm: c.llm,
        batch_sweeps: c.sweeps,
        roofline: c.roofline,
        primary_instance,
        cost,
        failures: c.failures,
    })
}

/// Machine facts from the manifest, for the device used.
pub fn machine_facts(manifest: &metrics::RunManifest, device: &str) -> MachineFacts {
    let index = device
        .strip_prefix("cuda")
        .map(|s| s.trim_start_matches(':').parse::<usize>().unwrap_or(0));
    let gpu = index.and_then(|i| manifest.gpus.get(i));
    let host = &manifest.host;
    MachineFacts {
        label: match gpu {
            Some(g) => g.name.clone(),
            None => format!("CPU {}", host.cpu_model),
        },
        device: device.to_string(),
        gpu_name: gpu.map(|g| g.name.clone()),
        gpu_arch: gpu.and_then(|g| g.arch()).map(|a| a.key.to_string()),
        gpu_memory_gb: gpu
            .and_then(|g| g.memory_total_bytes)
            .map(|b| b as f64 / 1e9),
        driver_version: manifest.driver_version.clone(),
        gpu_unavailable_reason: manifest.gpu_unavailable_reason.clone(),
        cpu_model: host.cpu_model.clone(),
        logical_cores: host.logical_cores,
        host_memory_gb: host.memory_total_bytes as f64 / 1e9,
        hostname: manifest.hostname.clone(),
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v)
        .map_err(|e| BenchError::InvalidArgument(format!("cannot record a result: {e}")))
}

type Progress<'a, 'b> = RefCell<&'a mut (dyn StageProgress + 'b)>;

fn run_stage(
    name: &str,
    config: &BenchAllConfig,
    folder: &ResultsFolder,
    mode: StoreMode,
    engine: &mut Option<(String, Engine)>,
    collected: &RefCell<Collected>,
    progress: &Progress<'_, '_>,
) -> Result<Value> {
    let device: BenchDevice = config.device.parse()?;
    let value = if name == "gemm" {
        to_value(&gemm_stage(device, config.quick, progress)?)?
    } else if name == "bandwidth" {
        to_value(&bandwidth_stage(device, config.quick, progress)?)?
    } else if let Some(model) = name.strip_prefix("llm-") {
        let e = engine_for(engine, model, config)?;
        to_value(&llm_stage(e, model, config, progress)?)?
    } else if let Some(model) = name.strip_prefix("batch-sweep-") {
        let e = engine_for(engine, model, config)?;
        let dir = folder.parts_dir().join(format!("batch-sweep-{model}"));
        to_value(&sweep_stage(e, model, config, &dir, mode, progress)?)?
    } else if let Some(model) = name.strip_prefix("roofline-") {
        let ceilings = ceilings(&collected.borrow(), config.dtype_name())?;
        let e = engine_for(engine, model, config)?;
        let (batch, prompt, decode) = if config.quick {
            (2, 16, 4)
        } else {
            (8, 128, 32)
        };
        let t = roofline::measure_phases(e, batch, prompt, decode, config.seed)?;
        to_value(&roofline::analyse(
            model,
            config.dtype_name(),
            ModelFootprint::of(e),
            &t,
            &ceilings,
        ))?
    } else {
        return Err(BenchError::InvalidArgument(format!(
            "unknown bench-all stage {name}"
        )));
    };
    Ok(value)
}

/// The engine for `model`, loading it (and dropping another model's) when needed.
fn engine_for<'e>(
    slot: &'e mut Option<(String, Engine)>,
    model: &str,
    config: &BenchAllConfig,
) -> Result<&'e mut Engine> {
    if slot.as_ref().is_none_or(|(m, _)| m != model) {
        *slot = None; // free the previous model first
        if config.device == "cpu" {
            if let Some(cfg) = llm_engine::presets::preset(model) {
                // f32 weights on the CPU: 4 bytes a parameter.
                let needed = cfg.num_parameters() * 4;
                check_host_memory(model, needed, matmul_flops::device::host_available_bytes())?;
            }
        }
        let mut c = EngineConfig::for_model(model);
        c.device = config.device.clone();
        c.dtype = parse_dtype(config.dtype_name())?;
        c.kv_cache_dtype = config.kv_cache_dtype;
        c.seed = config.seed;
        if config.quick {
            c.max_model_len = Some(256);
            c.kv_cache_bytes = Some(64 << 20);
        }
        *slot = Some((model.to_string(), Engine::new(c)?));
    }
    match slot {
        Some((_, e)) => Ok(e),
        None => Err(BenchError::InvalidArgument(format!("{model}: no engine"))),
    }
}

/// A model whose weights need more than 80% of the host's available memory is recorded as
/// out of memory instead of being loaded (the process would be killed mid-load).
fn check_host_memory(model: &str, needed: u64, available: u64) -> Result<()> {
    if needed > available / 10 * 8 {
        return Err(BenchError::OutOfMemory(format!(
            "{model} needs {:.1} GB for its f32 weights, the host has {:.1} GB available",
            needed as f64 / 1e9,
            available as f64 / 1e9
        )));
    }
    Ok(())
}

fn stop_rule(quick: bool) -> StopRule {
    StopRule {
        warmup_iters: 2,
        warmup_time: Duration::from_millis(if quick { 5 } else { 100 }),
        min_iters: 3,
        max_iters: if quick { 5 } else { 50 },
        target_cv: 0.03,
        time_budget: Duration::from_millis(if quick { 50 } else { 1000 }),
    }
}

fn gemm_stage(device: BenchDevice, quick: bool, progress: &Progress<'_, '_>) -> Result<GemmStage> {
    let mut backend = open_gemm_backend(device)?;
    let sizes: &[usize] = match (device == BenchDevice::Cpu, quick) {
        (true, true) => &[64, 128],
        (true, false) => &[256, 512, 1024],
        (false, true) => &[1024],
        (false, false) => &[2048, 4096, 8192],
    };
    let problems = GemmProblem::square_sweep(sizes)?;
    let config = GemmRunConfig {
        rule: stop_rule(quick),
        check_rows: 4,
        ..GemmRunConfig::default()
    };
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for dtype in GemmDtype::ALL {
        if let Err(e) = backend.supports(dtype) {
            skipped.push(format!("{dtype}: {e}"));
            continue;
        }
        for p in &problems {
            backend.ensure_fits(dtype, &p.shape, &config.options)?;
            jobs.push((dtype, p.clone()));
        }
    }
    progress.borrow_mut().start("gemm", jobs.len() as u64);
    let mut results = Vec::new();
    for (i, (dtype, p)) in jobs.iter().enumerate() {
        progress
            .borrow_mut()
            .advance(i as u64, &format!("{dtype} {}", p.shape));
        results.push(run_gemm(backend.as_mut(), p, *dtype, &config)?);
    }
    Ok(GemmStage {
        device: backend.device().clone(),
        results,
        skipped,
    })
}

fn bandwidth_stage(
    device: BenchDevice,
    quick: bool,
    progress: &Progress<'_, '_>,
) -> Result<BandwidthStage> {
    let mut backend = open_bandwidth_backend(device)?;
    let mib = match (device == BenchDevice::Cpu, quick) {
        (true, true) => 8,
        (true, false) => 256,
        (false, true) => 256,
        (false, false) => 1024,
    };
    let bytes = mib_to_bytes(mib)?;
    let tests = BandwidthTest::for_device(device);
    for &t in &tests {
        backend.ensure_fits(t, bytes)?;
    }
    progress.borrow_mut().start("bandwidth", tests.len() as u64);
    let rule = stop_rule(quick);
    let mut results = Vec::new();
    for (i, &t) in tests.iter().enumerate() {
        progress.borrow_mut().advance(i as u64, t.name());
        results.push(run_bandwidth(backend.as_mut(), t, bytes, &rule)?);
    }
    Ok(BandwidthStage {
        device: backend.device().clone(),
        results,
    })
}

fn get_f64(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
}

fn llm_stage(
    engine: &mut Engine,
    model: &str,
    config: &BenchAllConfig,
    progress: &Progress<'_, '_>,
) -> Result<LlmEntry> {
    let (n, input_len, output_len, warmup) = if config.quick {
        (4, 8, 8, 1)
    } else {
        (50, 32, 128, 5)
    };
    let spec = OfflineSpec {
        dataset: DatasetSpec::Random {
            input_len: LengthSpec::Fixed(input_len),
            output_len: LengthSpec::Fixed(output_len),
        },
        num_prompts: n,
        warmup,
        sampling: SamplingTemplate::default(),
        seed: config.seed,
    };
    progress
        .borrow_mut()
        .start(&format!("llm-{model}"), n as u64);
    let report = offline::run(engine, &spec, &mut |done, _| {
        progress.borrow_mut().advance(done as u64, "requests")
    })?;
    let e = &report.energy;
    let tokens_per_joule = e
        .joules_per_output_token
        .filter(|j| *j > 0.0)
        .map(|j| 1.0 / j);
    let full = to_value(&report)?;
    Ok(LlmEntry {
        model: model.to_string(),
        device: report.header.device.clone(),
        dtype: report.header.dtype.clone(),
        kv_cache_dtype: report.header.kv_cache_dtype,
        num_prompts: report.num_prompts,
        input_len,
        max_tokens: report.max_tokens,
        load_time_s: report.header.load_time_s,
        inference_time_s: report.inference_time_s,
        total_tokens: report.total_tokens,
        throughput_tokens_per_sec: report.throughput_tokens_per_sec,
        latency_per_request_ms: report.latency_per_request_ms,
        memory_used_gb: report.header.memory_used_gb,
        memory_utilization_pct: report.header.memory_utilization_pct,
        mean_ttft_ms: get_f64(&full, "mean_ttft_ms"),
        p99_ttft_ms: get_f64(&full, "p99_ttft_ms"),
        mean_tpot_ms: get_f64(&full, "mean_tpot_ms"),
        p99_tpot_ms: get_f64(&full, "p99_tpot_ms"),
        mean_e2el_ms: get_f64(&full, "mean_e2el_ms"),
        p99_e2el_ms: get_f64(&full, "p99_e2el_ms"),
        energy_j: e.energy_j,
        avg_power_w: e.avg_power_w,
        peak_power_w: e.peak_power_w,
        joules_per_output_token: e.joules_per_output_token,
        tokens_per_joule,
        energy_unavailable: e.unavailable.clone(),
        prefill_power_capped_fraction: e
            .clocks_by_phase
            .prefill
            .and_then(|p| p.power_capped_fraction),
        decode_power_capped_fraction: e
            .clocks_by_phase
            .decode
            .and_then(|p| p.power_capped_fraction),
        report: full,
    })
}

fn sweep_stage(
    engine: &mut Engine,
    model: &str,
    config: &BenchAllConfig,
    dir: &std::path::Path,
    mode: StoreMode,
    progress: &Progress<'_, '_>,
) -> Result<BatchSweepEntry> {
    let sizes: &[usize] = if config.quick {
        &[1, 2]
    } else {
        &[1, 2, 4, 8, 16, 32]
    };
    let workload = if config.quick {
        BatchWorkload {
            input_len: 8,
            output_len: 4,
            warmup_iters: 0,
            iters: 1,
            seed: config.seed,
        }
    } else {
        BatchWorkload {
            input_len: 32,
            output_len: 32,
            warmup_iters: 1,
            iters: 2,
            seed: config.seed,
        }
    };
    let points: Vec<BatchPoint> = sizes
        .iter()
        .map(|&b| BatchPoint { batch_size: b })
        .collect();
    let mut fixed = Map::new();
    fixed.insert("model".into(), json!(model));
    fixed.insert("workload".into(), to_value(&workload)?);
    let header = SweepHeader::new("batch-sweep", &["batch_size"], &points, fixed);
    // The parts folder was claimed already: a new run here means a new sweep folder.
    let sweep_mode = if mode == StoreMode::Resume {
        StoreMode::Resume
    } else {
        StoreMode::Force
    };
    let store = SweepStore::open(dir, header, sweep_mode)?;
    progress
        .borrow_mut()
        .start(&format!("batch-sweep-{model}"), points.len() as u64);
    let mut done = 0u64;
    let records = run_sweep(
        Some(&store),
        &points,
        |p| batch::measure_batch(engine, &workload, p.batch_size),
        |r, _| {
            done += 1;
            progress.borrow_mut().advance(done, &r.key);
        },
    )?;
    let summary = batch::summarize(&records, None);
    let rows = records
        .iter()
        .map(|r| {
            let ok = r.ok_result();
            BatchRow {
                batch_size: r.point.batch_size,
                status: r.status.as_str().to_string(),
                throughput_tokens_per_sec: ok.map(|x| x.throughput_tokens_per_sec),
                batch_latency_ms: ok.map(|x| x.batch_latency_ms.mean),
                p99_batch_latency_ms: ok.and_then(|x| x.batch_latency_ms.percentile(99.0)),
                latency_per_request_ms: ok.map(|x| x.latency_per_request_ms),
                error: r.error.clone(),
            }
        })
        .collect();
    Ok(BatchSweepEntry {
        model: model.to_string(),
        input_len: workload.input_len,
        output_len: workload.output_len,
        rows,
        best_batch_size: summary.best_throughput.map(|b| b.batch_size),
        first_out_of_memory: summary.first_out_of_memory,
    })
}

fn ceilings(c: &Collected, dtype: &str) -> Result<Ceilings> {
    let want = match dtype {
        "f32" => GemmDtype::Fp32,
        "bf16" => GemmDtype::Bf16,
        _ => GemmDtype::Fp16,
    };
    let results = c.gemm.as_ref().map(|g| g.results.as_slice()).unwrap_or(&[]);
    let best = |pred: &dyn Fn(&matmul_flops::GemmResult) -> bool| {
        results
            .iter()
            .filter(|r| pred(r))
            .max_by(|a, b| a.tflops.total_cmp(&b.tflops))
    };
    let gemm = best(&|r| r.dtype == want).or_else(|| best(&|_| true));
    // Decode reads (weights, KV): the read test is its ceiling; else the best device test.
    let device_tests = || {
        c.bandwidth
            .iter()
            .flat_map(|b| &b.results)
            .filter(|r| r.test.is_device_memory())
    };
    let bw = device_tests()
        .find(|r| r.test == BandwidthTest::Read)
        .or_else(|| device_tests().max_by(|a, b| a.gb_s.total_cmp(&b.gb_s)));
    match (gemm, bw) {
        (Some(g), Some(b)) => Ok(Ceilings {
            gemm_tflops: g.tflops,
            gemm_label: format!("{} GEMM {}", g.dtype.name(), g.shape),
            bandwidth_gb_s: b.gb_s,
            bandwidth_label: b.test.name().to_string(),
        }),
        _ => Err(BenchError::InvalidArgument(
            "the roofline needs the GEMM and bandwidth stages, and one of them has no result"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_run_machine_stages_first_then_each_model() {
        let c = BenchAllConfig {
            device: "cpu".into(),
            models: vec!["tiny-llama".into(), "gpt2".into()],
            quick: true,
            instances: vec![],
            seed: 0,
            kv_cache_dtype: KvCacheDtype::Auto,
        };
        assert!(
            !c.settings().contains_key("kv_cache_dtype"),
            "auto: as before"
        );
        let fp8 = BenchAllConfig {
            kv_cache_dtype: KvCacheDtype::Fp8E4M3,
            ..c.clone()
        };
        assert_eq!(fp8.settings()["kv_cache_dtype"], "fp8_e4m3");
        let names: Vec<String> = stages(&c).into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "gemm",
                "bandwidth",
                "llm-tiny-llama",
                "batch-sweep-tiny-llama",
                "roofline-tiny-llama",
                "llm-gpt2",
                "batch-sweep-gpt2",
                "roofline-gpt2"
            ]
        );
    }

    #[test]
    fn a_model_larger_than_host_memory_is_out_of_memory() {
        let e = check_host_memory("llama-3-8b", 32_000_000_000, 16_000_000_000).unwrap_err();
        assert!(matches!(e, BenchError::OutOfMemory(_)));
        assert!(e.to_string().contains("llama-3-8b needs 32.0 GB"), "{e}");
        assert!(check_host_memory("tiny-llama", 86_000_000, 16_000_000_000).is_ok());
    }

    #[test]
    fn default_models_fit_the_device() {
        assert_eq!(default_models("cpu", None), ["tiny-llama"]);
        // 16 GB card: llama-2-7b (13.5 GB of f16 weights) exceeds 80% of it.
        let t4 = default_models("cuda:0", Some(16_000_000_000));
        assert!(t4.contains(&"opt-1.3b".to_string()));
        assert!(!t4.contains(&"llama-2-7b".to_string()));
        let h100 = default_models("cuda:0", Some(80_000_000_000));
        assert!(h100.contains(&"llama-3-8b".to_string()));
    }
}
