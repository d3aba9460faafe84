//! llm-bench: LLM inference benchmarks with gpubench's own engine — offline throughput (the
//! seed tutorial's Exercise 3, `vllm_benchmark.py`), batch latency (`vllm bench latency`) and
//! serving (`vllm bench serve`). All logic lives in `bench_suite::modes`; this file parses
//! flags, builds the engine, shows progress and prints or writes the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bench_suite::arrival::ArrivalProcess;
use bench_suite::dataset::{DatasetSpec, LengthSpec};
use bench_suite::modes::{latency, offline, repeat, serve, Repeated, RunFigures, SamplingTemplate};
use bench_suite::roofline::{ModelFootprint, RooflineReport};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use llm_engine::engine::{parse_dtype, DeviceSpec, EngineConfig};
use llm_engine::{Engine, KvCacheDtype, LoadFormat};
use matmul_flops::BenchDevice;
use metrics::serving::Slo;
use serde::Serialize;

/// Benchmark LLM inference with gpubench's engine: offline throughput (like the seed's
/// vllm_benchmark.py), batch latency (vllm bench latency) or serving (vllm bench serve).
///
/// Loads a model (a built-in preset with random "dummy" weights, a local Hugging Face folder,
/// or a model id already in the Hugging Face cache), then:
/// --mode offline (default) warms up and generates for --num-prompts prompts at once with
/// continuous batching (`throughput_tokens_per_sec` = output tokens / elapsed, the seed's
/// meaning); --mode latency runs one batch of --batch-size requests --num-iters times after
/// --num-iters-warmup untimed ones and reports avg/std/p10-p99 batch latency; --mode serve
/// sends --num-prompts requests arriving at --request-rate per second (Poisson, or gamma with
/// --burstiness) into the running engine, at most --max-concurrency at once, and reports
/// TTFT, TPOT, ITL, E2E latency, throughput and --goodput. Energy per token comes from NVML
/// on a GPU (null on the CPU, with the reason). --repeat N reports each figure's median and
/// spread, and warns when clocks throttled or the spread is over 5%.
#[derive(Debug, Parser)]
#[command(name = "llm-bench", version, about, long_about)]
struct Args {
    /// Model: a preset (tiny-llama, gpt2, opt-1.3b, llama-2-7b, llama-3-8b), a Hugging Face
    /// folder, or a model id in the local Hugging Face cache (never downloaded).
    #[arg(long, short = 'm', default_value = "tiny-llama")]
    model: String,

    /// Where weights come from: auto (dummy for presets, safetensors for folders and ids),
    /// safetensors, or dummy (random weights of the right shapes, vLLM's --load-format dummy).
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    load_format: String,

    /// Device: cpu, cuda (= cuda:0) or cuda:N (needs a build with --features cuda).
    #[arg(long, short = 'd', default_value = "cpu")]
    device: String,

    /// Weight and activation dtype (and the KV cache's, unless --kv-cache-dtype says
    /// otherwise): f32, f16, bf16. Default: f32 on the CPU, f16 on a GPU (the seed's
    /// dtype="float16").
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<String>,

    /// KV-cache dtype (vLLM's flag): auto (the model dtype) or fp8 (= fp8_e4m3). fp8 stores
    /// K/V as FP8 E4M3 with scale 1.0: half the K/V bytes of f16/bf16 (a quarter of f32), so
    /// the cache holds 2x the tokens and decode reads half the K/V bytes, for E4M3 rounding
    /// (3 mantissa bits) and saturation at ±448. On CUDA it needs f16/bf16 and head_dim 64/128.
    #[arg(long, default_value = "auto", value_name = "DTYPE")]
    kv_cache_dtype: String,

    /// What to measure: offline throughput, batch latency, or serving with arrivals.
    #[arg(long, value_enum, default_value_t = Mode::Offline)]
    mode: Mode,

    /// Number of prompts in the timed run (the seed uses 50); offline and serve modes.
    #[arg(long, short = 'n', default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    num_prompts: u64,

    /// Which prompts: random (vLLM's random dataset: random token ids of --input-len), seed
    /// (the tutorial's "Write a story about {i}: "; tokenized, or one token per byte for dummy
    /// models that have no tokenizer), sharegpt or jsonl (--dataset-path: ShareGPT
    /// conversations or {"prompt": ..., "output_len": N} lines).
    #[arg(long, visible_alias = "prompts", value_enum, default_value_t = DatasetName::Random)]
    dataset_name: DatasetName,

    /// The ShareGPT / JSONL file for --dataset-name sharegpt|jsonl.
    #[arg(long, value_name = "FILE")]
    dataset_path: Option<PathBuf>,

    /// Prompt length in tokens for --dataset-name random: N, MIN..MAX (uniform) or
    /// normal:MEAN,STD (clamped to >= 1).
    #[arg(long, default_value = "32", value_name = "LEN")]
    input_len: String,

    /// Tokens to generate per prompt (the seed's max_tokens=128): N, MIN..MAX or
    /// normal:MEAN,STD. For files: used when a record gives no length and its reply cannot
    /// be tokenized.
    #[arg(long, alias = "max-tokens", default_value = "128", value_name = "LEN")]
    output_len: String,

    /// vLLM's --random-range-ratio R: fixed --input-len/--output-len N become uniform over
    /// [N(1-R), N(1+R)]; R in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    random_range_ratio: f64,

    /// Latency mode: requests per batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,

    /// Latency mode: untimed iterations first.
    #[arg(long, default_value_t = 3)]
    num_iters_warmup: usize,

    /// Latency mode: timed iterations.
    #[arg(long, default_value_t = 10)]
    num_iters: usize,

    /// Serve mode: requests per second ("inf" = all at once).
    #[arg(
        long,
        default_value = "inf",
        value_name = "RPS",
        allow_negative_numbers = true
    )]
    request_rate: String,

    /// Serve mode: gamma shape of the arrival gaps (1 = Poisson, < 1 burstier).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    burstiness: f64,

    /// Serve mode: most requests in flight at once.
    #[arg(long)]
    max_concurrency: Option<usize>,

    /// Serve mode: SLOs for goodput, e.g. "ttft:200 tpot:50 e2el:2000" (ms).
    #[arg(long, num_args = 1.., value_name = "NAME:MS")]
    goodput: Vec<String>,

    /// Serve mode: latency percentiles to report, e.g. 50,90,99.
    #[arg(long, default_value = "99", value_name = "P,P,...")]
    metric_percentiles: String,

    /// Run the benchmark N times; report the median run and each figure's spread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,

    /// Stop a request at the model's end-of-sequence token (default: ignore it and generate
    /// exactly --output-len tokens, as vLLM's throughput benchmark does).
    #[arg(long)]
    stop_at_eos: bool,

    /// Sampling temperature (0 = greedy, the seed's setting).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,

    /// Sample from the K most likely tokens (0 = off; with a temperature above 0). On a GPU a
    /// batch of top-k (up to 256) and greedy requests selects its candidates on the device.
    #[arg(long, default_value_t = 0)]
    top_k: usize,

    /// Sample from the most likely tokens up to this probability mass (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,

    /// Most requests running at once (vLLM's max_num_seqs).
    #[arg(long, default_value_t = 256)]
    max_num_seqs: usize,

    /// Most tokens in one forward pass, prefill and decode together (vLLM's max_num_batched_tokens).
    #[arg(long, default_value_t = 8192)]
    max_num_batched_tokens: usize,

    /// GPU: fraction of device memory for weights, activations and KV cache, in (0, 1].
    #[arg(long, default_value_t = 0.9)]
    gpu_memory_utilization: f64,

    /// CPU: KV-cache budget in GiB (default 1, raised to one --max-model-len sequence).
    /// GPU: caps the KV cache.
    #[arg(long, value_name = "GIB")]
    kv_cache_gb: Option<f64>,

    /// Longest sequence (prompt + output); default: the model's max positions.
    #[arg(long)]
    max_model_len: Option<usize>,

    /// Tokens per KV block.
    #[arg(long, default_value_t = 16)]
    block_size: usize,

    /// Seed of dummy weights, prompts and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Turn off prefix caching.
    #[arg(long)]
    no_prefix_caching: bool,

    /// Run every decode step eagerly: no CUDA graphs (vLLM's flag). By default greedy decode
    /// steps of 1-4 sequences on a GPU replay a captured graph (one launch per step).
    #[arg(long)]
    enforce_eager: bool,

    /// Warm-up prompts run (with other prompts) before the timed run (offline, serve); 0 = none.
    #[arg(long, default_value_t = 5)]
    warmup: usize,

    /// Write the JSON result to FILE (atomically: complete or not at all).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// Print the JSON result to stdout (the human summary goes to stderr).
    #[arg(long)]
    json: bool,

    /// After the run, hold the engine against this device's measured roofline: measure the
    /// GEMM TFLOP/s (square sweep in the run's dtype) and the memory read bandwidth with
    /// matmul-flops (a few seconds), then time one batch of min(--num-prompts,
    /// --max-num-seqs) random prompts of --input-len tokens and 32 decode steps, prefill-only
    /// and decode-only steps apart. Prints prefill as % of the GEMM ceiling and decode as % of
    /// the bandwidth (weights + KV read per step over step time); adds `roofline` to the JSON.
    #[arg(long)]
    roofline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Throughput: every prompt at once (the seed's benchmark).
    Offline,
    /// One batch, timed over repeated iterations.
    Latency,
    /// Requests arriving over time into the running engine.
    Serve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetName {
    /// Random token ids, --input-len each.
    Random,
    /// "Write a story about {i}: ".
    Seed,
    /// A ShareGPT file (--dataset-path).
    Sharegpt,
    /// A JSONL file of prompts (--dataset-path).
    Jsonl,
}

fn main() -> ExitCode {
    // candle's CPU ops look up the thread count on every call, and without RAYON_NUM_THREADS
    // that reads /proc/cpuinfo each time (about a third of a tiny model's batch-1 decode step).
    // Setting it once here, before any thread exists, removes that cost.
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

fn check_output_path(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "cannot write --output {}: directory {} does not exist",
            path.display(),
            parent.display()
        );
    }
    if path.is_dir() {
        bail!(
            "cannot write --output {}: it is a directory",
            path.display()
        );
    }
    Ok(())
}

fn engine_config(args: &Args) -> Result<EngineConfig> {
    let device: DeviceSpec = args.device.parse()?;
    let dtype = match &args.dtype {
        Some(d) => parse_dtype(d)?,
        None if device == DeviceSpec::Cpu => parse_dtype("f32")?,
        None => parse_dtype("f16")?,
    };
    let load_format: LoadFormat = args.load_format.parse()?;
    let kv_cache_bytes = match args.kv_cache_gb {
        Some(g) if !(g.is_finite() && g > 0.0) => bail!("--kv-cache-gb must be positive, got {g}"),
        Some(g) => Some((g * (1u64 << 30) as f64) as u64),
        None => None,
    };
    Ok(EngineConfig {
        model: args.model.clone(),
        load_format,
        dtype,
        kv_cache_dtype: args.kv_cache_dtype.parse::<KvCacheDtype>()?,
        device: args.device.clone(),
        block_size: args.block_size,
        gpu_memory_utilization: args.gpu_memory_utilization,
        kv_cache_bytes,
        num_kv_blocks_override: None,
        max_num_seqs: args.max_num_seqs,
        max_num_batched_tokens: args.max_num_batched_tokens,
        max_model_len: args.max_model_len,
        seed: args.seed,
        enable_prefix_caching: !args.no_prefix_caching,
        enable_chunked_prefill: true,
        enforce_eager: args.enforce_eager,
    })
}

/// A length flag, with --random-range-ratio applied to a fixed length.
fn length(flag: &str, text: &str, ratio: f64) -> Result<LengthSpec> {
    let spec: LengthSpec = text.parse().with_context(|| format!("--{flag}"))?;
    Ok(match spec {
        LengthSpec::Fixed(n) => LengthSpec::with_range_ratio(n, ratio)?,
        other => other,
    })
}

fn dataset(args: &Args) -> Result<DatasetSpec> {
    let output = length("output-len", &args.output_len, args.random_range_ratio)?;
    match args.dataset_name {
        DatasetName::Random => Ok(DatasetSpec::Random {
            input_len: length("input-len", &args.input_len, args.random_range_ratio)?,
            output_len: output,
        }),
        DatasetName::Seed => Ok(DatasetSpec::Seed { output_len: output }),
        DatasetName::Sharegpt | DatasetName::Jsonl => {
            let Some(path) = args.dataset_path.clone() else {
                bail!("--dataset-name sharegpt/jsonl needs --dataset-path FILE");
            };
            let LengthSpec::Fixed(n) = args
                .output_len
                .parse::<LengthSpec>()
                .context("--output-len")?
            else {
                bail!("--output-len must be one number for a file dataset");
            };
            Ok(DatasetSpec::File {
                path,
                output_len: n,
            })
        }
    }
}

fn request_rate(text: &str) -> Result<f64> {
    let t = text.trim().to_ascii_lowercase();
    if t == "inf" || t == "infinity" {
        return Ok(f64::INFINITY);
    }
    t.parse::<f64>()
        .map_err(|_| anyhow::anyhow!("--request-rate must be a number > 0 or inf, got {text:?}"))
}

fn goodput(parts: &[String]) -> Result<Option<Slo>> {
    if parts.is_empty() {
        return Ok(None);
    }
    let text = parts.join(" ");
    Ok(Some(text.parse::<Slo>().context("--goodput")?))
}

fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {what}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs the mode `repeat` times with a progress bar per run.
fn repeated<R: RunFigures + Clone>(
    args: &Args,
    len: usize,
    what: &str,
    mut once: impl FnMut(&mut dyn FnMut(usize, usize)) -> bench_suite::Result<R>,
) -> Result<Repeated<R>> {
    Ok(repeat::repeat(args.repeat as usize, |i| {
        if args.repeat > 1 {
            eprintln!("run {} of {}", i + 1, args.repeat);
        }
        let bar = progress_bar(len, what);
        let r = once(&mut |done, _| bar.set_position(done as u64));
        bar.finish_and_clear();
        r
    })?)
}

/// Decode steps of the `--roofline` batch.
const ROOFLINE_DECODE_STEPS: usize = 32;

/// The run's engine against the device's measured roofline (`--roofline`).
fn roofline(engine: &mut Engine, args: &Args) -> Result<RooflineReport> {
    let device: BenchDevice = args.device.parse()?;
    let Ok(prompt_len) = args.input_len.trim().parse::<usize>() else {
        bail!(
            "--roofline needs a fixed --input-len (got {:?}); the batch's prompts are that long",
            args.input_len
        );
    };
    let dtype = engine.dtype().as_str();
    eprintln!("Roofline: measuring this device's GEMM ({dtype}) and memory-read ceilings...");
    let ceilings = bench_suite::roofline::measure_ceilings(device, dtype)?;
    let batch = (args.num_prompts as usize).min(args.max_num_seqs);
    eprintln!(
        "Roofline: one batch of {batch} x {prompt_len}-token prompts, {ROOFLINE_DECODE_STEPS} decode steps..."
    );
    let timings = bench_suite::roofline::measure_phases(
        engine,
        batch,
        prompt_len,
        ROOFLINE_DECODE_STEPS,
        args.seed,
    )?;
    Ok(bench_suite::roofline::analyse(
        &args.model,
        dtype,
        ModelFootprint::of(engine),
        &timings,
        &ceilings,
    ))
}

fn report<R: Serialize>(
    args: &Args,
    r: &Repeated<R>,
    summary: String,
    roofline: Option<RooflineReport>,
) -> Result<()> {
    let mut text = summary;
    if let Some(roof) = &roofline {
        text += &roof.summary();
    }
    if r.repeat.repeats > 1 {
        text += &format!(
            "Repeats: {} (the median run is shown; spread per figure in the JSON)\n",
            r.repeat.repeats
        );
        for (k, s) in &r.repeat.spread {
            text += &format!(
                "  {k:<28} median {:.4}  min {:.4}  max {:.4}  CV {:.1}%\n",
                s.median,
                s.min,
                s.max,
                s.cv * 100.0
            );
        }
    }
    for w in &r.repeat.warnings {
        text += &format!("warning: {w}\n");
    }
    text += &"=".repeat(70);
    let mut doc = serde_json::to_value(r)?;
    if let (Some(roof), Some(obj)) = (roofline, doc.as_object_mut()) {
        obj.insert("roofline".into(), serde_json::to_value(roof)?);
    }
    if args.json {
        eprintln!("{text}");
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{text}");
    }
    if let Some(path) = &args.output {
        metrics::writers::write_json_atomic(path, &doc)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("Results saved to: {}", path.display());
    }
    Ok(())
}

fn run(args: Args) -> Result<()> {
    if let Some(p) = &args.output {
        check_output_path(p)?;
    }
    // Every flag is checked before the model loads.
    let config = engine_config(&args)?;
    config.validate()?;
    let dataset = dataset(&args)?;
    let arrival = ArrivalProcess::new(request_rate(&args.request_rate)?, args.burstiness)?;
    let slo = goodput(&args.goodput)?;
    let percentiles = serve::parse_percentiles(&args.metric_percentiles)?;
    if args.max_concurrency == Some(0) {
        bail!("--max-concurrency must be at least 1");
    }
    if args.roofline && args.input_len.trim().parse::<usize>().is_err() {
        bail!(
            "--roofline needs a fixed --input-len (got {:?}); the batch's prompts are that long",
            args.input_len
        );
    }
    if let DatasetSpec::File { path, .. } = &dataset {
        bench_suite::dataset::read_records(path)?;
    }
    let sampling = SamplingTemplate {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        ignore_eos: !args.stop_at_eos,
    };
    sampling.params(1).validate()?;
    if args.dataset_name == DatasetName::Seed {
        eprintln!("prompts: the seed's \"Write a story about {{i}}: \"");
    }
    let mut engine = Engine::new(config).with_context(|| format!("loading {}", args.model))?;
    eprintln!(
        "\nBenchmarking: {}\n{}",
        engine.model_name(),
        "=".repeat(70)
    );
    eprintln!("Model load time: {:.2}s", engine.load_time().as_secs_f64());
    if args.dataset_name != DatasetName::Random && engine.tokenizer().is_none() {
        eprintln!(
            "note: {} has no tokenizer; text prompts use one token per byte",
            engine.model_name()
        );
    }
    let n = args.num_prompts as usize;
    match args.mode {
        Mode::Offline => {
            let spec = offline::OfflineSpec {
                dataset,
                num_prompts: n,
                warmup: args.warmup,
                sampling,
                seed: args.seed,
            };
            let r = repeated(&args, n, "requests", |p| {
                offline::run(&mut engine, &spec, p)
            })?;
            let s = r.report.summary();
            let roof = args
                .roofline
                .then(|| roofline(&mut engine, &args))
                .transpose()?;
            report(&args, &r, s, roof)
        }
        Mode::Latency => {
            let spec = latency::LatencySpec {
                dataset,
                batch_size: args.batch_size,
                num_iters_warmup: args.num_iters_warmup,
                num_iters: args.num_iters,
                sampling,
                seed: args.seed,
            };
            let r = repeated(&args, args.num_iters, "iterations", |p| {
                latency::run(&mut engine, &spec, p)
            })?;
            let s = r.report.summary();
            let roof = args
                .roofline
                .then(|| roofline(&mut engine, &args))
                .transpose()?;
            report(&args, &r, s, roof)
        }
        Mode::Serve => {
            let spec = serve::ServeSpec {
                dataset,
                num_prompts: n,
                arrival,
                max_concurrency: args.max_concurrency,
                percentiles,
                goodput: slo,
                warmup: args.warmup,
                sampling,
                seed: args.seed,
            };
            let r = repeated(&args, n, "requests", |p| serve::run(&mut engine, &spec, p))?;
            let s = r.report.summary();
            let roof = args
                .roofline
                .then(|| roofline(&mut engine, &args))
                .transpose()?;
            report(&args, &r, s, roof)
        }
    }
}
