//! compare-models: several models on one device — the memory each needs, its throughput and
//! latency, and which fits best (the seed tutorial's Challenge 2). The logic lives in
//! `bench_suite::model_compare`; this file parses flags, shows progress and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bench_suite::model_compare::{
    available_memory, best_model, estimate, measure_model, model_config, AvailableMemory,
    BestModel, CompareSettings, MemoryNeed, ModelPoint, ModelResult, TIE_BREAK,
};
use bench_suite::sweep::{run_sweep, PointRecord, PointStatus, StoreMode, SweepHeader, SweepStore};
use bench_suite::tune::OfflineWorkload;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use llm_engine::engine::{parse_dtype, DeviceSpec};
use llm_engine::{KvCacheDtype, LoadFormat};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Compare models on this device (the seed's Challenge 2): memory, throughput, latency, and
/// which fits best.
///
/// For each model of --models, estimates the memory it needs (weights in --dtype + the KV
/// cache of --num-prompts sequences of --input-len + --output-len tokens) against what the
/// device offers (CPU: RAM available now; GPU: total x --gpu-memory-utilization). A model
/// that does not fit is reported with needed vs available and not loaded; the others run one
/// offline benchmark each (all requests at once). The model that fits best is the one with the
/// highest output throughput; ties go to the smaller memory need, then to the earlier model in
/// --models.
#[derive(Debug, Parser)]
#[command(
    name = "compare-models",
    version,
    about,
    long_about,
    args_override_self = true
)]
struct Args {
    /// Models, comma-separated: presets (tiny-llama, gpt2, opt-1.3b, llama-2-7b,
    /// llama-3-8b), Hugging Face folders, or model ids in the local Hugging Face cache.
    /// Default: tiny-llama on the CPU; gpt2,opt-1.3b,llama-2-7b on a GPU.
    #[arg(long, value_name = "LIST")]
    models: Option<String>,

    /// Where weights come from: auto (dummy for presets), safetensors or dummy.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    load_format: String,

    /// Device: cpu, cuda (= cuda:0) or cuda:N (needs a build with --features cuda).
    #[arg(long, short = 'd', default_value = "cpu")]
    device: String,

    /// f32, f16 or bf16. Default: f32 on the CPU, f16 on a GPU.
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<String>,

    /// KV-cache dtype: auto (the model dtype) or fp8 (= fp8_e4m3: K/V as FP8 E4M3, scale 1.0,
    /// half the bytes of f16 so 2x the tokens, E4M3 rounding, saturating at ±448; on CUDA
    /// f16/bf16 models with head_dim 64/128). The memory estimate counts its bytes.
    #[arg(long, default_value = "auto", value_name = "DTYPE")]
    kv_cache_dtype: String,

    /// Requests per model, all added at once.
    #[arg(long, short = 'n', default_value_t = 16)]
    num_prompts: usize,

    /// Prompt length in tokens (uniform random token ids).
    #[arg(long, default_value_t = 32)]
    input_len: usize,

    /// Tokens generated per request.
    #[arg(long, alias = "max-tokens", default_value_t = 32)]
    output_len: usize,

    /// Untimed warm-up requests per model.
    #[arg(long, default_value_t = 2)]
    warmup: usize,

    /// Most requests at once (vLLM's max_num_seqs).
    #[arg(long, default_value_t = 256)]
    max_num_seqs: usize,

    /// GPU: fraction of device memory the engine may use, in (0, 1].
    #[arg(long, default_value_t = 0.9)]
    gpu_memory_utilization: f64,

    /// Tokens per KV block.
    #[arg(long, default_value_t = 16)]
    block_size: usize,

    /// Seed of dummy weights and prompts.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Folder for the comparison: sweep.json and one points/<model>.json per finished model.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,

    /// Continue the comparison in --out-dir (same settings), running only missing models.
    #[arg(long, requires = "out_dir", conflicts_with = "force")]
    resume: bool,

    /// Start over in a non-empty --out-dir.
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

fn run(args: Args) -> Result<()> {
    let device: DeviceSpec = args.device.parse()?;
    let models = args.models.clone().unwrap_or_else(|| match device {
        DeviceSpec::Cpu => "tiny-llama".into(),
        DeviceSpec::Cuda(_) => "gpt2,opt-1.3b,llama-2-7b".into(),
    });
    let points: Vec<ModelPoint> = models
        .split(',')
        .map(str::trim)
        .map(|m| ModelPoint {
            model: m.to_string(),
        })
        .collect();
    for p in &points {
        if p.model.is_empty() {
            bail!("--models: an empty name in `{models}`");
        }
        // Unknown names and unreadable configs fail here, before anything runs.
        model_config(&p.model).with_context(|| format!("--models: {}", p.model))?;
    }
    let dtype = match (&args.dtype, device) {
        (Some(d), _) => d.clone(),
        (None, DeviceSpec::Cpu) => "f32".into(),
        (None, DeviceSpec::Cuda(_)) => "f16".into(),
    };
    let dtype = format!("{:?}", parse_dtype(&dtype)?).to_lowercase();
    let kv_cache_dtype: KvCacheDtype = args.kv_cache_dtype.parse()?;
    if !(args.gpu_memory_utilization > 0.0 && args.gpu_memory_utilization <= 1.0) {
        bail!(
            "--gpu-memory-utilization must be in (0, 1], got {}",
            args.gpu_memory_utilization
        );
    }
    for (flag, v) in [
        ("--max-num-seqs", args.max_num_seqs),
        ("--block-size", args.block_size),
    ] {
        if v == 0 {
            bail!("{flag} must be at least 1, got 0");
        }
    }
    let settings = CompareSettings {
        device: args.device.clone(),
        dtype: dtype.clone(),
        kv_cache_dtype,
        load_format: args.load_format.parse::<LoadFormat>()?,
        block_size: args.block_size,
        max_num_seqs: args.max_num_seqs,
        gpu_memory_utilization: args.gpu_memory_utilization,
        seed: args.seed,
        workload: OfflineWorkload {
            num_prompts: args.num_prompts,
            input_len: args.input_len,
            output_len: args.output_len,
            warmup_prompts: args.warmup,
            seed: args.seed,
        },
    };
    settings.workload.validate()?;
    llm_engine::EngineConfig {
        device: args.device.clone(),
        ..Default::default()
    }
    .validate()?;
    let available = available_memory(device, args.gpu_memory_utilization);

    let mut fixed = Map::new();
    fixed.insert("device".into(), json!(args.device));
    fixed.insert("dtype".into(), json!(dtype));
    // Recorded when not auto, so a sweep folder from before the flag still resumes.
    if kv_cache_dtype != KvCacheDtype::Auto {
        fixed.insert("kv_cache_dtype".into(), json!(kv_cache_dtype));
    }
    fixed.insert("load_format".into(), json!(args.load_format));
    fixed.insert("workload".into(), serde_json::to_value(&settings.workload)?);
    fixed.insert("max_num_seqs".into(), json!(args.max_num_seqs));
    fixed.insert(
        "gpu_memory_utilization".into(),
        json!(args.gpu_memory_utilization),
    );
    fixed.insert("block_size".into(), json!(args.block_size));
    fixed.insert("seed".into(), json!(args.seed));
    let store = match &args.out_dir {
        Some(dir) => {
            let mode = match (args.resume, args.force) {
                (true, _) => StoreMode::Resume,
                (_, true) => StoreMode::Force,
                _ => StoreMode::New,
            };
            let header = SweepHeader::new("compare-models", &["model"], &points, fixed.clone());
            Some(SweepStore::open(dir, header, mode)?)
        }
        None => None,
    };
    let bar = ProgressBar::new(points.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} models {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let records = run_sweep(
        store.as_ref(),
        &points,
        |p: &ModelPoint| {
            bar.set_message(p.model.clone());
            measure_model(&settings, &available, p)
        },
        |r, resumed| {
            bar.inc(1);
            if resumed {
                bar.suspend(|| {
                    eprintln!("model {}: {} (kept from the earlier run)", r.key, r.status)
                });
            }
        },
    )
    .context("model comparison")?;
    bar.finish_and_clear();
    if records.iter().all(|r| r.status == PointStatus::Error) {
        if let Some(first) = records.iter().find(|r| r.status == PointStatus::Error) {
            bail!(
                "no model ran; {}",
                first.error.as_deref().unwrap_or("failed")
            );
        }
    }
    let best = best_model(&records);
    // Every model's estimate, also for those that did not run.
    let needs: Vec<Option<MemoryNeed>> =
        points.iter().map(|p| estimate(&settings, p).ok()).collect();
    let doc = json!({
        "tool": "compare-models",
        "settings": Value::Object(fixed),
        "available_memory": available,
        "memory_needed": points
            .iter()
            .zip(&needs)
            .map(|(p, n)| json!({"model": p.model, "need": n}))
            .collect::<Vec<_>>(),
        "best": best,
        "tie_break": TIE_BREAK,
        "points": records,
        "manifest": metrics::RunManifest::capture(),
    });
    if let Some(dir) = &args.out_dir {
        metrics::writers::write_json_atomic(&dir.join("summary.json"), &doc)?;
    }
    let text = table(&records, &needs, best.as_ref(), &available);
    let csv = args.out.wants_csv();
    match &args.out.output {
        Some(path) => {
            if csv {
                metrics::writers::write_csv_atomic(
                    path,
                    &csv_rows(&records, &needs, best.as_ref()),
                )?;
            } else {
                metrics::writers::write_json_atomic(path, &doc)?;
            }
            print!("{text}");
            eprintln!("wrote {}", path.display());
        }
        None if csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            for row in csv_rows(&records, &needs, best.as_ref()) {
                w.serialize(row)?;
            }
            w.flush()?;
        }
        None if args.out.json => println!("{}", serde_json::to_string_pretty(&doc)?),
        None => print!("{text}"),
    }
    Ok(())
}

/// One CSV line per model.
#[derive(Debug, Serialize)]
struct CsvRow {
    model: String,
    status: String,
    num_parameters: Option<u64>,
    weights_gb: Option<f64>,
    kv_gb: Option<f64>,
    memory_needed_gb: Option<f64>,
    memory_used_gb: Option<f64>,
    load_time_s: Option<f64>,
    throughput_tokens_per_sec: Option<f64>,
    total_token_throughput: Option<f64>,
    mean_e2el_ms: Option<f64>,
    p99_e2el_ms: Option<f64>,
    mean_ttft_ms: Option<f64>,
    best: bool,
    error: Option<String>,
}

fn gb(b: u64) -> f64 {
    b as f64 / 1e9
}

fn csv_rows(
    records: &[PointRecord<ModelPoint, ModelResult>],
    needs: &[Option<MemoryNeed>],
    best: Option<&BestModel>,
) -> Vec<CsvRow> {
    records
        .iter()
        .zip(needs)
        .map(|(r, need)| {
            let res = r.ok_result();
            let f = res.map(|x| &x.figures);
            CsvRow {
                model: r.point.model.clone(),
                status: r.status.to_string(),
                num_parameters: need.map(|n| n.num_parameters),
                weights_gb: need.map(|n| gb(n.weights_bytes)),
                kv_gb: need.map(|n| gb(n.kv_bytes)),
                memory_needed_gb: need.map(|n| gb(n.total_bytes)),
                memory_used_gb: res.map(|x| gb(x.memory_used_bytes)),
                load_time_s: res.map(|x| x.load_time_s),
                throughput_tokens_per_sec: f.map(|x| x.throughput_tokens_per_sec),
                total_token_throughput: f.map(|x| x.total_token_throughput),
                mean_e2el_ms: f.map(|x| x.mean_e2el_ms),
                p99_e2el_ms: f.map(|x| x.p99_e2el_ms),
                mean_ttft_ms: f.map(|x| x.mean_ttft_ms),
                best: best.is_some_and(|b| b.model == r.point.model),
                error: r.error.clone(),
            }
        })
        .collect()
}

fn table(
    records: &[PointRecord<ModelPoint, ModelResult>],
    needs: &[Option<MemoryNeed>],
    best: Option<&BestModel>,
    available: &AvailableMemory,
) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .zip(needs)
        .map(|(r, need)| {
            let mut row = vec![
                r.point.model.clone(),
                need.map_or(String::new(), |n| {
                    format!("{:.1}", n.num_parameters as f64 / 1e6)
                }),
                need.map_or(String::new(), |n| format!("{:.3}", gb(n.total_bytes))),
            ];
            match r.ok_result() {
                Some(x) => row.extend([
                    format!("{:.2}", x.figures.throughput_tokens_per_sec),
                    format!("{:.2}", x.figures.mean_e2el_ms),
                    format!("{:.2}", x.figures.p99_e2el_ms),
                    if best.is_some_and(|b| b.model == r.point.model) {
                        "best".into()
                    } else {
                        "ok".into()
                    },
                ]),
                None => row.extend([
                    String::new(),
                    String::new(),
                    String::new(),
                    match (r.status, r.error.as_deref()) {
                        (PointStatus::OutOfMemory, Some(e)) => e.to_string(),
                        (s, Some(e)) => format!("{s}: {e}"),
                        (s, None) => s.to_string(),
                    },
                ]),
            }
            row
        })
        .collect();
    let mut out = metrics::writers::markdown_table(
        &[
            "model",
            "params (M)",
            "needs GB",
            "tok/s",
            "mean e2e ms",
            "p99 e2e ms",
            "status",
        ],
        &rows,
    );
    out += &format!(
        "\nAvailable: {} ({})\n",
        available
            .bytes
            .map_or("unknown".into(), |b| format!("{:.2} GB", gb(b))),
        available.source
    );
    match best {
        Some(b) => {
            out += &format!(
                "Fits best: {} ({:.2} tokens/sec, needs {:.3} GB)\nRule: {TIE_BREAK}\n",
                b.model,
                b.throughput_tokens_per_sec,
                gb(b.memory_needed_bytes)
            )
        }
        None => out += "No model ran.\n",
    }
    out
}
