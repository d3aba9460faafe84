//! config-tune: find the engine configuration with the best throughput, or the best under a
//! latency SLO, over a grid of gpu_memory_utilization, max_num_batched_tokens, max_num_seqs,
//! dtype and block size (the seed tutorial's Challenge 3), with the Pareto front of
//! throughput against latency. The logic lives in `bench_suite::tune`; this file parses
//! flags, shows progress and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bench_suite::sweep::{run_sweep, PointRecord, PointStatus, StoreMode, SweepHeader, SweepStore};
use bench_suite::tune::{
    measure_point, summarize, LatencyStat, Objective, OfflineWorkload, TuneGrid, TunePoint,
    TuneReport, TuneResult,
};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use llm_engine::engine::{DeviceSpec, EngineConfig};
use llm_engine::{KvCacheDtype, LoadFormat};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Tune the engine's configuration for a workload (the seed's Challenge 3).
///
/// Every combination of the comma lists (--gpu-memory-utilization, --max-num-batched-tokens,
/// --max-num-seqs, --dtype, --block-size) gets a fresh engine and one offline run of
/// --num-prompts requests. The best configuration is the highest output throughput
/// (--objective throughput) or the highest whose request latency (--latency-stat p99 or mean,
/// end to end) is at most --slo-ms (--objective throughput-under-slo). The Pareto front lists
/// the configurations no other beats in both throughput and latency. A configuration that runs
/// out of memory is recorded and the grid goes on. With --out-dir each finished configuration
/// is written at once and --resume runs only the rest.
#[derive(Debug, Parser)]
#[command(
    name = "config-tune",
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

    /// GPU memory fractions to try, each in (0, 1] (the CPU ignores it).
    #[arg(long, default_value = "0.9", value_name = "LIST")]
    gpu_memory_utilization: String,

    /// Most tokens per forward pass, each in 1..=1048576.
    #[arg(long, default_value = "2048,8192", value_name = "LIST")]
    max_num_batched_tokens: String,

    /// Most requests at once, each in 1..=65536.
    #[arg(long, default_value = "16,256", value_name = "LIST")]
    max_num_seqs: String,

    /// Dtypes: f32, f16, bf16. Default: f32 on the CPU, f16,bf16 on a GPU.
    #[arg(long, value_name = "LIST")]
    dtype: Option<String>,

    /// Tokens per KV block, each in 1..=1024.
    #[arg(long, default_value = "16", value_name = "LIST")]
    block_size: String,

    /// What "best" means.
    #[arg(long, default_value = "throughput", value_parser = ["throughput", "throughput-under-slo"])]
    objective: String,

    /// The latency bound of throughput-under-slo, in ms.
    #[arg(long, value_name = "MS")]
    slo_ms: Option<f64>,

    /// Which request latency the SLO and the Pareto front use.
    #[arg(long, value_enum, default_value_t = Stat::P99)]
    latency_stat: Stat,

    /// Requests per run, all added at once.
    #[arg(long, short = 'n', default_value_t = 32)]
    num_prompts: usize,

    /// Prompt length in tokens (uniform random token ids).
    #[arg(long, default_value_t = 32)]
    input_len: usize,

    /// Tokens generated per request.
    #[arg(long, alias = "max-tokens", default_value_t = 32)]
    output_len: usize,

    /// Untimed warm-up requests per configuration.
    #[arg(long, default_value_t = 2)]
    warmup: usize,

    /// CPU: KV-cache budget in GiB (default 1). GPU: caps the KV cache.
    #[arg(long, value_name = "GIB")]
    kv_cache_gb: Option<f64>,

    /// KV-cache dtype: auto (the model dtype) or fp8 (= fp8_e4m3: K/V as FP8 E4M3, scale 1.0,
    /// half the bytes of f16 so 2x the tokens, E4M3 rounding, saturating at ±448; on CUDA
    /// f16/bf16 models with head_dim 64/128).
    #[arg(long, default_value = "auto", value_name = "DTYPE")]
    kv_cache_dtype: String,

    /// Seed of dummy weights and prompts.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Folder for the sweep: sweep.json and one points/<configuration>.json per finished one.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,

    /// Continue the sweep in --out-dir (same fixed settings), running only what is missing.
    #[arg(long, requires = "out_dir", conflicts_with = "force")]
    resume: bool,

    /// Start over in a non-empty --out-dir.
    #[arg(long, requires = "out_dir")]
    force: bool,

    #[command(flatten)]
    out: gpubench::MachineOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Stat {
    /// 99th percentile of end-to-end request latency.
    P99,
    /// Mean end-to-end request latency.
    Mean,
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

fn run(args: Args) -> Result<()> {
    let device: DeviceSpec = args.device.parse()?;
    let dtypes = args.dtype.clone().unwrap_or_else(|| match device {
        DeviceSpec::Cpu => "f32".into(),
        DeviceSpec::Cuda(_) => "f16,bf16".into(),
    });
    let grid = TuneGrid::parse(
        &args.gpu_memory_utilization,
        &args.max_num_batched_tokens,
        &args.max_num_seqs,
        &dtypes,
        &args.block_size,
    )?;
    let latency = match args.latency_stat {
        Stat::P99 => LatencyStat::P99,
        Stat::Mean => LatencyStat::Mean,
    };
    let objective = Objective::from_flags(&args.objective, args.slo_ms, latency)?;
    let workload = OfflineWorkload {
        num_prompts: args.num_prompts,
        input_len: args.input_len,
        output_len: args.output_len,
        warmup_prompts: args.warmup,
        seed: args.seed,
    };
    workload.validate()?;
    let kv_cache_bytes = match args.kv_cache_gb {
        Some(g) if !(g.is_finite() && g > 0.0) => bail!("--kv-cache-gb must be positive, got {g}"),
        Some(g) => Some((g * (1u64 << 30) as f64) as u64),
        None => None,
    };
    let base = EngineConfig {
        model: args.model.clone(),
        load_format: args.load_format.parse::<LoadFormat>()?,
        device: args.device.clone(),
        kv_cache_bytes,
        kv_cache_dtype: args.kv_cache_dtype.parse::<KvCacheDtype>()?,
        max_model_len: Some(workload.seq_len()),
        seed: args.seed,
        ..EngineConfig::default()
    };
    base.validate()?;
    // A bad model name fails here, once, instead of once per configuration.
    bench_suite::model_compare::model_config(&args.model)
        .with_context(|| format!("model {}", args.model))?;
    let points = grid.points();

    let mut fixed = Map::new();
    fixed.insert("model".into(), json!(args.model));
    fixed.insert("load_format".into(), json!(args.load_format));
    fixed.insert("device".into(), json!(args.device));
    fixed.insert("workload".into(), serde_json::to_value(&workload)?);
    fixed.insert("kv_cache_gb".into(), json!(args.kv_cache_gb));
    // Recorded when not auto, so a sweep folder from before the flag still resumes.
    if base.kv_cache_dtype != KvCacheDtype::Auto {
        fixed.insert("kv_cache_dtype".into(), json!(base.kv_cache_dtype));
    }
    fixed.insert("seed".into(), json!(args.seed));
    let store = match &args.out_dir {
        Some(dir) => {
            let mode = match (args.resume, args.force) {
                (true, _) => StoreMode::Resume,
                (_, true) => StoreMode::Force,
                _ => StoreMode::New,
            };
            let swept = [
                "gpu_memory_utilization",
                "max_num_batched_tokens",
                "max_num_seqs",
                "dtype",
                "block_size",
            ];
            let header = SweepHeader::new("config-tune", &swept, &points, fixed.clone());
            Some(SweepStore::open(dir, header, mode)?)
        }
        None => None,
    };
    let bar = ProgressBar::new(points.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} configurations {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let records = run_sweep(
        store.as_ref(),
        &points,
        |p: &TunePoint| {
            bar.set_message(bench_suite::sweep::SweepPoint::key(p));
            measure_point(&base, &workload, p)
        },
        |r, resumed| {
            bar.inc(1);
            if resumed {
                bar.suspend(|| {
                    eprintln!(
                        "configuration {}: {} (kept from the earlier run)",
                        r.key, r.status
                    )
                });
            }
        },
    )
    .context("config tuning")?;
    bar.finish_and_clear();
    if records.iter().all(|r| r.status == PointStatus::Error) {
        if let Some(first) = records.iter().find(|r| r.status == PointStatus::Error) {
            bail!(
                "no configuration ran; {}: {}",
                first.key,
                first.error.as_deref().unwrap_or("failed")
            );
        }
    }
    let report = summarize(&records, objective, device);
    let doc = json!({
        "tool": "config-tune",
        "settings": Value::Object(fixed),
        "grid": grid,
        "report": report,
        "points": records,
        "manifest": metrics::RunManifest::capture(),
    });
    if let Some(dir) = &args.out_dir {
        metrics::writers::write_json_atomic(&dir.join("summary.json"), &doc)?;
    }
    let text = table(&records, &report);
    let csv = args.out.wants_csv();
    match &args.out.output {
        Some(path) => {
            if csv {
                metrics::writers::write_csv_atomic(path, &csv_rows(&records, &report))?;
            } else {
                metrics::writers::write_json_atomic(path, &doc)?;
            }
            print!("{text}");
            eprintln!("wrote {}", path.display());
        }
        None if csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            for row in csv_rows(&records, &report) {
                w.serialize(row)?;
            }
            w.flush()?;
        }
        None if args.out.json => println!("{}", serde_json::to_string_pretty(&doc)?),
        None => print!("{text}"),
    }
    Ok(())
}

/// One CSV line per configuration.
#[derive(Debug, Serialize)]
struct CsvRow {
    key: String,
    gpu_memory_utilization: f64,
    max_num_batched_tokens: usize,
    max_num_seqs: usize,
    dtype: String,
    block_size: usize,
    status: String,
    throughput_tokens_per_sec: Option<f64>,
    total_token_throughput: Option<f64>,
    mean_e2el_ms: Option<f64>,
    p99_e2el_ms: Option<f64>,
    mean_ttft_ms: Option<f64>,
    p99_ttft_ms: Option<f64>,
    preemptions: Option<u64>,
    kv_cache_bytes: Option<u64>,
    best: bool,
    pareto: bool,
    error: Option<String>,
}

fn csv_rows(records: &[PointRecord<TunePoint, TuneResult>], report: &TuneReport) -> Vec<CsvRow> {
    records
        .iter()
        .map(|r| {
            let res = r.ok_result();
            let f = res.map(|x| &x.figures);
            CsvRow {
                key: r.key.clone(),
                gpu_memory_utilization: r.point.gpu_memory_utilization,
                max_num_batched_tokens: r.point.max_num_batched_tokens,
                max_num_seqs: r.point.max_num_seqs,
                dtype: r.point.dtype.clone(),
                block_size: r.point.block_size,
                status: r.status.to_string(),
                throughput_tokens_per_sec: f.map(|x| x.throughput_tokens_per_sec),
                total_token_throughput: f.map(|x| x.total_token_throughput),
                mean_e2el_ms: f.map(|x| x.mean_e2el_ms),
                p99_e2el_ms: f.map(|x| x.p99_e2el_ms),
                mean_ttft_ms: f.map(|x| x.mean_ttft_ms),
                p99_ttft_ms: f.map(|x| x.p99_ttft_ms),
                preemptions: f.map(|x| x.preemptions),
                kv_cache_bytes: res.map(|x| x.kv_total_bytes),
                best: report.best.as_ref().is_some_and(|b| b.key == r.key),
                pareto: report.pareto_front.iter().any(|c| c.key == r.key),
                error: r.error.clone(),
            }
        })
        .collect()
}

fn table(records: &[PointRecord<TunePoint, TuneResult>], report: &TuneReport) -> String {
    let stat = report.objective.latency();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let p = &r.point;
            let mut row = vec![
                p.gpu_memory_utilization.to_string(),
                p.max_num_batched_tokens.to_string(),
                p.max_num_seqs.to_string(),
                p.dtype.clone(),
                p.block_size.to_string(),
            ];
            let mark = |on: bool, s: &str| if on { s.to_string() } else { String::new() };
            match r.ok_result() {
                Some(x) => {
                    row.push(format!("{:.2}", x.figures.throughput_tokens_per_sec));
                    row.push(format!("{:.2}", stat.of(&x.figures)));
                    let best = report.best.as_ref().is_some_and(|b| b.key == r.key);
                    let front = report.pareto_front.iter().any(|c| c.key == r.key);
                    row.push(
                        format!("{}{}", mark(best, "best "), mark(front, "pareto"))
                            .trim()
                            .to_string(),
                    );
                }
                None => {
                    row.push(String::new());
                    row.push(String::new());
                    row.push(format!(
                        "{}: {}",
                        r.status,
                        r.error.as_deref().unwrap_or("")
                    ));
                }
            }
            row
        })
        .collect();
    let latency_header = format!("{} e2e ms", stat.as_str());
    let mut out = metrics::writers::markdown_table(
        &[
            "gpu_mem_util",
            "max_batched_tokens",
            "max_seqs",
            "dtype",
            "block",
            "tok/s",
            &latency_header,
            "",
        ],
        &rows,
    );
    match &report.best {
        Some(b) => {
            out += &format!(
                "\nBest configuration ({}): {} ({:.2} tokens/sec, {} request latency {:.2} ms)\n",
                objective_name(&report.objective),
                b.key,
                b.throughput_tokens_per_sec,
                stat.as_str(),
                b.latency_ms
            )
        }
        None => out += "\nNo configuration qualifies.\n",
    }
    out += &format!(
        "Pareto front (throughput vs {} latency): {}\n",
        stat.as_str(),
        report
            .pareto_front
            .iter()
            .map(|c| c.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for note in &report.notes {
        out += &format!("note: {note}\n");
    }
    out
}

fn objective_name(o: &Objective) -> String {
    match o {
        Objective::Throughput { .. } => "highest throughput".into(),
        Objective::ThroughputUnderSlo { slo_ms, latency } => {
            format!(
                "highest throughput with {} latency <= {slo_ms} ms",
                latency.as_str()
            )
        }
    }
}
