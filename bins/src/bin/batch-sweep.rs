//! batch-sweep: throughput and latency per batch size (the seed tutorial's Exercise 5,
//! `batch_optimization.py`), the optimum, where memory runs out, and the
//! throughput-vs-latency curve. The logic lives in `bench_suite::sweep`; this file parses
//! flags, shows progress and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bench_suite::sweep::batch::{
    measure_batch, summarize, BatchPoint, BatchPointResult, BatchSweepSummary, BatchWorkload,
};
use bench_suite::sweep::{
    run_sweep, EngineSlot, PointRecord, PointStatus, StoreMode, SweepHeader, SweepStore,
};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use llm_engine::engine::{parse_dtype, DeviceSpec, EngineConfig};
use llm_engine::{KvCacheDtype, LoadFormat};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Find the batch size with the best throughput (the seed's Exercise 5) with gpubench's engine.
///
/// For each --batch-sizes value, runs one batch of that many prompts to completion
/// (--warmup-iters untimed, then --iters timed), and reports throughput (output tokens / mean
/// batch latency), the batch latency (mean, p10-p99) and the seed's latency per request. Then
/// the optimum (highest throughput, and highest under --max-latency-ms), the first batch size
/// that ran out of memory (its sequences need more KV blocks than the cache has, or the device
/// ran out: recorded, and the sweep goes on), and the throughput-vs-latency curve.
///
/// With --out-dir, each finished batch size is written at once to OUT_DIR/points/, so an
/// interrupted sweep keeps its points and --resume runs only the rest.
#[derive(Debug, Parser)]
#[command(
    name = "batch-sweep",
    version,
    about,
    long_about,
    args_override_self = true
)]
struct Args {
    /// Model: a preset (tiny-llama, gpt2, opt-1.3b, llama-2-7b, llama-3-8b), a Hugging Face
    /// folder, or a model id in the local Hugging Face cache.
    #[arg(long, short = 'm', default_value = "tiny-llama")]
    model: String,

    /// Where weights come from: auto, safetensors or dummy (random weights).
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    load_format: String,

    /// Device: cpu, cuda (= cuda:0) or cuda:N (needs a build with --features cuda).
    #[arg(long, short = 'd', default_value = "cpu")]
    device: String,

    /// f32, f16 or bf16. Default: f32 on the CPU, f16 on a GPU.
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<String>,

    /// Batch sizes to try, comma-separated (each 1..=65536).
    #[arg(long, default_value = "1,2,4,8,16", value_name = "LIST")]
    batch_sizes: String,

    /// Prompt length in tokens (uniform random token ids).
    #[arg(long, default_value_t = 32)]
    input_len: usize,

    /// Tokens generated per request (the seed's max_tokens=50).
    #[arg(long, alias = "max-tokens", default_value_t = 50)]
    output_len: usize,

    /// Untimed batches before the timed ones, per batch size.
    #[arg(long, default_value_t = 1)]
    warmup_iters: usize,

    /// Timed batches per batch size.
    #[arg(long, default_value_t = 3)]
    iters: usize,

    /// Also report the best batch size whose mean batch latency is at most this, in ms.
    #[arg(long, value_name = "MS")]
    max_latency_ms: Option<f64>,

    /// Most tokens in one forward pass (vLLM's max_num_batched_tokens).
    #[arg(long, default_value_t = 8192)]
    max_num_batched_tokens: usize,

    /// GPU: fraction of device memory for weights, activations and KV cache, in (0, 1].
    #[arg(long, default_value_t = 0.9)]
    gpu_memory_utilization: f64,

    /// CPU: KV-cache budget in GiB (default 1). GPU: caps the KV cache.
    #[arg(long, value_name = "GIB")]
    kv_cache_gb: Option<f64>,

    /// KV-cache dtype: auto (the model dtype) or fp8 (= fp8_e4m3: K/V as FP8 E4M3, scale 1.0,
    /// half the bytes of f16 so 2x the tokens, E4M3 rounding, saturating at ±448; on CUDA
    /// f16/bf16 models with head_dim 64/128).
    #[arg(long, default_value = "auto", value_name = "DTYPE")]
    kv_cache_dtype: String,

    /// Tokens per KV block.
    #[arg(long, default_value_t = 16)]
    block_size: usize,

    /// Seed of dummy weights and prompts.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Folder for the sweep: sweep.json and one points/batch-N.json per finished batch size.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,

    /// Continue the sweep in --out-dir: keep its finished points, run the rest (the fixed
    /// settings must match).
    #[arg(long, requires = "out_dir", conflicts_with = "force")]
    resume: bool,

    /// Start over in a non-empty --out-dir (its earlier sweep files are removed).
    #[arg(long, requires = "out_dir")]
    force: bool,

    #[command(flatten)]
    out: gpubench::MachineOutput,
}

fn main() -> ExitCode {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    gpubench::init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => gpubench::fail(&err),
    }
}

fn engine_config(args: &Args, max_batch: usize) -> Result<EngineConfig> {
    let device: DeviceSpec = args.device.parse()?;
    let dtype = match (&args.dtype, device) {
        (Some(d), _) => parse_dtype(d)?,
        (None, DeviceSpec::Cpu) => parse_dtype("f32")?,
        (None, DeviceSpec::Cuda(_)) => parse_dtype("f16")?,
    };
    let kv_cache_bytes = match args.kv_cache_gb {
        Some(g) if !(g.is_finite() && g > 0.0) => bail!("--kv-cache-gb must be positive, got {g}"),
        Some(g) => Some((g * (1u64 << 30) as f64) as u64),
        None => None,
    };
    let config = EngineConfig {
        model: args.model.clone(),
        load_format: args.load_format.parse::<LoadFormat>()?,
        dtype,
        kv_cache_dtype: args.kv_cache_dtype.parse::<KvCacheDtype>()?,
        device: args.device.clone(),
        block_size: args.block_size,
        gpu_memory_utilization: args.gpu_memory_utilization,
        kv_cache_bytes,
        max_num_seqs: max_batch,
        max_num_batched_tokens: args.max_num_batched_tokens,
        max_model_len: Some(args.input_len + args.output_len),
        seed: args.seed,
        ..EngineConfig::default()
    };
    config.validate()?;
    Ok(config)
}

fn run(args: Args) -> Result<()> {
    let sizes =
        bench_suite::tune::parse_usize_list("--batch-sizes", &args.batch_sizes, 1..=65_536)?;
    if let Some(ms) = args.max_latency_ms {
        if !(ms.is_finite() && ms > 0.0) {
            bail!("--max-latency-ms must be a positive number, got {ms}");
        }
    }
    let workload = BatchWorkload {
        input_len: args.input_len,
        output_len: args.output_len,
        warmup_iters: args.warmup_iters,
        iters: args.iters,
        seed: args.seed,
    };
    workload.validate()?;
    let max_batch = sizes.iter().copied().max().unwrap_or(1);
    let config = engine_config(&args, max_batch)?;
    let points: Vec<BatchPoint> = sizes
        .iter()
        .map(|&b| BatchPoint { batch_size: b })
        .collect();

    let mut fixed = Map::new();
    fixed.insert("model".into(), json!(args.model));
    fixed.insert("load_format".into(), json!(args.load_format));
    fixed.insert("device".into(), json!(args.device));
    fixed.insert(
        "dtype".into(),
        json!(format!("{:?}", config.dtype).to_lowercase()),
    );
    fixed.insert("input_len".into(), json!(args.input_len));
    fixed.insert("output_len".into(), json!(args.output_len));
    fixed.insert("warmup_iters".into(), json!(args.warmup_iters));
    fixed.insert("iters".into(), json!(args.iters));
    fixed.insert(
        "max_num_batched_tokens".into(),
        json!(args.max_num_batched_tokens),
    );
    fixed.insert(
        "gpu_memory_utilization".into(),
        json!(args.gpu_memory_utilization),
    );
    fixed.insert("kv_cache_gb".into(), json!(args.kv_cache_gb));
    // Recorded when not auto, so a sweep folder from before the flag still resumes.
    if config.kv_cache_dtype != KvCacheDtype::Auto {
        fixed.insert("kv_cache_dtype".into(), json!(config.kv_cache_dtype));
    }
    fixed.insert("block_size".into(), json!(args.block_size));
    fixed.insert("seed".into(), json!(args.seed));
    let store = match &args.out_dir {
        Some(dir) => {
            let mode = match (args.resume, args.force) {
                (true, _) => StoreMode::Resume,
                (_, true) => StoreMode::Force,
                _ => StoreMode::New,
            };
            let header = SweepHeader::new("batch-sweep", &["batch_size"], &points, fixed.clone());
            Some(SweepStore::open(dir, header, mode)?)
        }
        None => None,
    };

    // One engine for every point (its max_num_seqs is the largest batch), loaded here so a
    // bad model fails once; reloaded only after a run that failed half-way.
    let mut slot = EngineSlot::new(config);
    slot.engine()
        .with_context(|| format!("loading {}", args.model))?;
    let bar = progress_bar(points.len());
    let records = run_sweep(
        store.as_ref(),
        &points,
        |p: &BatchPoint| {
            bar.set_message(format!("batch {}", p.batch_size));
            slot.run(|e| measure_batch(e, &workload, p.batch_size))
        },
        |r, resumed| {
            bar.inc(1);
            if resumed {
                bar.suspend(|| {
                    eprintln!(
                        "batch {}: {} (kept from the earlier run)",
                        r.point.batch_size, r.status
                    )
                });
            }
        },
    )
    .context("batch sweep")?;
    bar.finish_and_clear();
    if let Some(first) = records.iter().find(|r| r.status == PointStatus::Error) {
        if records.iter().all(|r| r.status == PointStatus::Error) {
            bail!(
                "no batch size ran; batch {}: {}",
                first.point.batch_size,
                first.error.as_deref().unwrap_or("failed")
            );
        }
    }
    let summary = summarize(&records, args.max_latency_ms);
    let doc = json!({
        "tool": "batch-sweep",
        "settings": Value::Object(fixed),
        "points": records,
        "summary": summary,
        "manifest": metrics::RunManifest::capture(),
    });
    if let Some(dir) = &args.out_dir {
        metrics::writers::write_json_atomic(&dir.join("summary.json"), &doc)?;
    }
    write_output(&args, &records, &summary, &doc)
}

fn progress_bar(n: usize) -> ProgressBar {
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} batch sizes {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// One CSV line per batch size.
#[derive(Debug, Serialize)]
struct CsvRow {
    batch_size: usize,
    status: String,
    throughput_tokens_per_sec: Option<f64>,
    total_token_throughput: Option<f64>,
    mean_batch_latency_ms: Option<f64>,
    p50_batch_latency_ms: Option<f64>,
    p99_batch_latency_ms: Option<f64>,
    latency_per_request_ms: Option<f64>,
    mean_ttft_ms: Option<f64>,
    mean_tpot_ms: Option<f64>,
    preemptions: Option<u64>,
    error: Option<String>,
}

fn csv_rows(records: &[PointRecord<BatchPoint, BatchPointResult>]) -> Vec<CsvRow> {
    records
        .iter()
        .map(|r| {
            let res = r.ok_result();
            CsvRow {
                batch_size: r.point.batch_size,
                status: r.status.to_string(),
                throughput_tokens_per_sec: res.map(|x| x.throughput_tokens_per_sec),
                total_token_throughput: res.map(|x| x.total_token_throughput),
                mean_batch_latency_ms: res.map(|x| x.batch_latency_ms.mean),
                p50_batch_latency_ms: res.map(|x| x.batch_latency_ms.median),
                p99_batch_latency_ms: res.and_then(|x| x.batch_latency_ms.percentile(99.0)),
                latency_per_request_ms: res.map(|x| x.latency_per_request_ms),
                mean_ttft_ms: res.map(|x| x.mean_ttft_ms),
                mean_tpot_ms: res.and_then(|x| x.mean_tpot_ms),
                preemptions: res.map(|x| x.preemptions),
                error: r.error.clone(),
            }
        })
        .collect()
}

/// A failed point's status cell: the error (which says "out of memory" when it is that).
fn failure(r: &PointRecord<BatchPoint, BatchPointResult>) -> String {
    match (r.status, r.error.as_deref()) {
        (PointStatus::OutOfMemory, Some(e)) => e.to_string(),
        (_, Some(e)) => format!("{}: {e}", r.status),
        (_, None) => r.status.to_string(),
    }
}

fn table(
    records: &[PointRecord<BatchPoint, BatchPointResult>],
    summary: &BatchSweepSummary,
) -> String {
    let mut rows = Vec::new();
    for r in records {
        let f = |v: f64| format!("{v:.2}");
        match r.ok_result() {
            Some(x) => rows.push(vec![
                r.point.batch_size.to_string(),
                f(x.throughput_tokens_per_sec),
                f(x.batch_latency_ms.mean),
                x.batch_latency_ms.percentile(99.0).map_or("n/a".into(), f),
                f(x.latency_per_request_ms),
                "ok".into(),
            ]),
            None => rows.push(vec![
                r.point.batch_size.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                failure(r),
            ]),
        }
    }
    let mut out = metrics::writers::markdown_table(
        &[
            "batch",
            "tok/s",
            "batch ms (mean)",
            "batch ms (p99)",
            "ms/request",
            "status",
        ],
        &rows,
    );
    match summary.best_throughput {
        Some(b) => {
            out += &format!(
                "\nOptimal batch size: {} ({:.2} tokens/sec, {:.2} ms per batch)\n",
                b.batch_size, b.throughput_tokens_per_sec, b.batch_latency_ms
            )
        }
        None => out += "\nNo batch size ran.\n",
    }
    if let Some(cap) = summary.max_latency_ms {
        match summary.best_under_latency {
            Some(b) => {
                out += &format!(
                    "Best under {cap} ms per batch: {} ({:.2} tokens/sec, {:.2} ms)\n",
                    b.batch_size, b.throughput_tokens_per_sec, b.batch_latency_ms
                )
            }
            None => out += &format!("No batch size ran within {cap} ms per batch.\n"),
        }
    }
    match summary.first_out_of_memory {
        Some(b) => {
            out += &format!(
                "Out of memory from batch size {b} (largest that ran: {}).\n",
                summary
                    .largest_fitting
                    .map_or("none".to_string(), |x| x.to_string())
            )
        }
        None => out += "No batch size ran out of memory.\n",
    }
    out
}

fn write_output(
    args: &Args,
    records: &[PointRecord<BatchPoint, BatchPointResult>],
    summary: &BatchSweepSummary,
    doc: &Value,
) -> Result<()> {
    let text = table(records, summary);
    let csv = args.out.wants_csv();
    match &args.out.output {
        Some(path) => {
            if csv {
                metrics::writers::write_csv_atomic(path, &csv_rows(records))?;
            } else {
                metrics::writers::write_json_atomic(path, doc)?;
            }
            print!("{text}");
            eprintln!("wrote {}", path.display());
        }
        None if csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            for row in csv_rows(records) {
                w.serialize(row)?;
            }
            w.flush()?;
        }
        None if args.out.json => println!("{}", serde_json::to_string_pretty(doc)?),
        None => print!("{text}"),
    }
    Ok(())
}
