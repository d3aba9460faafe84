//! llm-bench: offline LLM inference throughput with gpubench's own engine (the seed
//! tutorial's Exercise 3, `vllm_benchmark.py`, without vLLM). All logic lives in `llm-engine`
//! and `metrics`; this file parses flags, runs warm-up and the timed run, and reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use llm_engine::engine::{parse_dtype, workload, DeviceSpec, EngineConfig};
use llm_engine::{CompletedRequest, Engine, LoadFormat, Prompt, SamplingParams};
use metrics::serving::{compute, RequestTimeline};
use metrics::stats::DEFAULT_PERCENTILES;
use metrics::RunManifest;
use serde_json::{json, Map, Value};

/// Benchmark offline LLM inference (like the seed's vllm_benchmark.py) with gpubench's engine.
///
/// Loads a model (a built-in preset with random "dummy" weights, a local Hugging Face folder,
/// or a model id already in the Hugging Face cache), warms up, then generates for
/// --num-prompts prompts at once with continuous batching and reports load time, throughput,
/// latency, memory and KV-cache figures. `throughput_tokens_per_sec` keeps the seed's meaning:
/// generated (output) tokens / elapsed seconds.
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

    /// Weight, activation and KV dtype: f32, f16, bf16. Default: f32 on the CPU, f16 on a GPU
    /// (the seed's dtype="float16").
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<String>,

    /// Number of prompts in the timed run (the seed uses 50).
    #[arg(long, short = 'n', default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    num_prompts: u64,

    /// Which prompts: random (vLLM's random dataset: --input-len uniform random token ids) or
    /// seed (the tutorial's "Write a story about {i}: "; tokenized, or one token per byte for
    /// dummy models that have no tokenizer).
    #[arg(long, value_enum, default_value_t = PromptKind::Random)]
    prompts: PromptKind,

    /// Prompt length in tokens for --prompts random.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    input_len: u64,

    /// Tokens to generate per prompt (the seed's max_tokens=128).
    #[arg(long, alias = "max-tokens", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    output_len: u64,

    /// Stop a request at the model's end-of-sequence token (default: ignore it and generate
    /// exactly --output-len tokens, as vLLM's throughput benchmark does).
    #[arg(long)]
    stop_at_eos: bool,

    /// Sampling temperature (0 = greedy, the seed's setting).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,

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

    /// Warm-up prompts run (with other random tokens) before the timed run; 0 = none.
    #[arg(long, default_value_t = 5)]
    warmup: usize,

    /// Write the JSON result to FILE (atomically: complete or not at all).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// Print the JSON result to stdout (the human summary goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PromptKind {
    /// Uniform random token ids, --input-len each.
    Random,
    /// "Write a story about {i}: ".
    Seed,
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
    })
}

fn build_prompts(
    args: &Args,
    engine: &Engine,
    n: usize,
    salt: u64,
    first: usize,
) -> Result<Vec<Prompt>> {
    let cfg = engine.model_config();
    match args.prompts {
        PromptKind::Random => {
            let mut exclude: Vec<u32> = cfg.eos_token_ids.clone();
            exclude.extend(cfg.bos_token_id);
            Ok(workload::random_token_prompts(
                n,
                args.input_len as usize,
                cfg.vocab_size,
                &exclude,
                salt,
            )?)
        }
        PromptKind::Seed => workload::seed_text_prompts(first, n)
            .iter()
            .map(|t| {
                Ok(workload::text_prompt(
                    t,
                    engine.tokenizer(),
                    cfg.vocab_size,
                )?)
            })
            .collect(),
    }
}

fn run(args: Args) -> Result<()> {
    if let Some(p) = &args.output {
        check_output_path(p)?;
    }
    let config = engine_config(&args)?;
    config.validate()?;
    if args.prompts == PromptKind::Seed {
        eprintln!("prompts: the seed's \"Write a story about {{i}}: \"");
    }
    let mut engine = Engine::new(config).with_context(|| format!("loading {}", args.model))?;
    let info = engine.kv_cache_info();
    let load_time = engine.load_time().as_secs_f64();
    eprintln!(
        "\nBenchmarking: {}\n{}",
        engine.model_name(),
        "=".repeat(70)
    );
    eprintln!("Model load time: {load_time:.2}s");
    if args.prompts == PromptKind::Seed && engine.tokenizer().is_none() {
        eprintln!(
            "note: {} has no tokenizer; text prompts use one token per byte",
            engine.model_name()
        );
    }
    let params = SamplingParams {
        temperature: args.temperature,
        max_tokens: args.output_len as usize,
        ignore_eos: !args.stop_at_eos,
        detokenize: false,
        seed: None,
        ..SamplingParams::default()
    };
    params.validate()?;
    let n = args.num_prompts as usize;
    let prompts = build_prompts(&args, &engine, n, args.seed.wrapping_add(1), 0)?;
    if args.warmup > 0 {
        let warm = build_prompts(&args, &engine, args.warmup, args.seed.wrapping_add(2), n)?;
        let t = Instant::now();
        engine.generate(&warm, &params).context("warm-up")?;
        tracing::info!(seconds = t.elapsed().as_secs_f64(), "warm-up done");
    }
    let stats_before = engine.stats().clone();
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} requests")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start_s = engine.now_s();
    let start = Instant::now();
    let done = engine
        .generate_with_progress(&prompts, &params, |finished, _| {
            bar.set_position(finished as u64)
        })
        .context("benchmark run")?;
    let elapsed = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let stats = engine.stats().clone();

    let total_tokens: usize = done.iter().map(|d| d.output_token_ids.len()).sum();
    let input_tokens: usize = done.iter().map(|d| d.prompt_token_ids.len()).sum();
    let throughput = total_tokens as f64 / elapsed;
    let total_throughput = (total_tokens + input_tokens) as f64 / elapsed;
    let latency_ms = elapsed / n as f64 * 1000.0;
    let memory = engine.memory();
    let manifest = RunManifest::capture();
    let memory_used = memory.used_bytes();
    let memory_total = memory
        .device_total_bytes
        .unwrap_or(manifest.host.memory_total_bytes);
    let memory_used_gb = memory_used as f64 / 1e9;
    let memory_pct = if memory_total > 0 {
        memory_used as f64 / memory_total as f64 * 100.0
    } else {
        0.0
    };
    let serving = serving_metrics(&done, start_s, elapsed)?;
    let preemptions = stats.num_preemptions - stats_before.num_preemptions;

    let mut doc = Map::new();
    // The seed's keys, same meaning.
    doc.insert("model".into(), json!(args.model));
    doc.insert("num_prompts".into(), json!(n));
    doc.insert("max_tokens".into(), json!(args.output_len));
    doc.insert("load_time_s".into(), json!(load_time));
    doc.insert("inference_time_s".into(), json!(elapsed));
    doc.insert("total_tokens".into(), json!(total_tokens));
    doc.insert("throughput_tokens_per_sec".into(), json!(throughput));
    doc.insert("latency_per_request_ms".into(), json!(latency_ms));
    doc.insert("memory_used_gb".into(), json!(memory_used_gb));
    doc.insert("memory_utilization_pct".into(), json!(memory_pct));
    // Ours.
    doc.insert("engine".into(), json!("gpubench llm-engine"));
    doc.insert("model_name".into(), json!(engine.model_name()));
    doc.insert("load_format".into(), json!(args.load_format));
    doc.insert("device".into(), json!(engine.device_spec().to_string()));
    doc.insert(
        "dtype".into(),
        json!(format!("{:?}", engine.dtype()).to_lowercase()),
    );
    doc.insert(
        "prompts".into(),
        json!(format!("{:?}", args.prompts).to_lowercase()),
    );
    doc.insert("input_len".into(), json!(args.input_len));
    doc.insert("output_len".into(), json!(args.output_len));
    doc.insert("total_input_tokens".into(), json!(input_tokens));
    doc.insert("output_throughput".into(), json!(throughput));
    doc.insert("total_token_throughput".into(), json!(total_throughput));
    doc.insert("temperature".into(), json!(args.temperature));
    doc.insert("max_num_seqs".into(), json!(args.max_num_seqs));
    doc.insert(
        "max_num_batched_tokens".into(),
        json!(args.max_num_batched_tokens),
    );
    doc.insert("max_model_len".into(), json!(engine.max_model_len()));
    doc.insert(
        "gpu_memory_utilization".into(),
        json!(args.gpu_memory_utilization),
    );
    doc.insert("prefix_caching".into(), json!(!args.no_prefix_caching));
    doc.insert(
        "kv_cache".into(),
        json!({
            "num_blocks": info.num_blocks,
            "block_size": info.block_size,
            "bytes_per_block": info.bytes_per_block,
            "total_bytes": info.total_bytes,
            "capacity_tokens": info.capacity_tokens,
            "max_concurrency": info.max_concurrency(),
            "peak_usage": stats.peak_kv_usage,
        }),
    );
    doc.insert("memory".into(), serde_json::to_value(memory)?);
    doc.insert("preemptions".into(), json!(preemptions));
    doc.insert(
        "steps".into(),
        json!(stats.num_steps - stats_before.num_steps),
    );
    doc.insert("max_batch_seqs".into(), json!(stats.max_batch_seqs));
    doc.insert(
        "prefix_cache_hit_rate".into(),
        json!(stats.prefix_cache_hit_rate()),
    );
    for (k, v) in serving.to_flat_map() {
        doc.entry(k).or_insert(v);
    }
    doc.insert("manifest".into(), serde_json::to_value(&manifest)?);
    let doc = Value::Object(doc);

    let ms = |k: &str| {
        doc.get(k)
            .and_then(Value::as_f64)
            .map_or("n/a".to_string(), |v| format!("{v:.2}"))
    };
    let mut summary = String::new();
    summary += &format!("Total tokens: {total_tokens} generated ({input_tokens} prompt)\n");
    summary += &format!(
        "Throughput: {throughput:.2} tokens/sec (output tokens / elapsed, the seed's definition)\n"
    );
    summary +=
        &format!("Total token throughput: {total_throughput:.2} tokens/sec (prompt + output)\n");
    summary += &format!("Inference time: {elapsed:.3}s\n");
    summary += &format!("Latency per request: {latency_ms:.2} ms (elapsed / num_prompts)\n");
    for (name, key) in [("E2E latency", "e2el"), ("TTFT", "ttft"), ("TPOT", "tpot")] {
        summary += &format!(
            "{name:<12} mean {} / median {} / p99 {} ms\n",
            ms(&format!("mean_{key}_ms")),
            ms(&format!("median_{key}_ms")),
            ms(&format!("p99_{key}_ms"))
        );
    }
    summary += &format!("Memory used: {memory_used_gb:.2} GB ({memory_pct:.1}%)\n");
    summary += &format!(
        "KV cache: {} blocks x {} tokens, {:.1} KiB/block, {:.2} GiB, peak usage {:.1}%, max concurrency {:.1}\n",
        info.num_blocks,
        info.block_size,
        info.bytes_per_block as f64 / 1024.0,
        info.total_bytes as f64 / (1u64 << 30) as f64,
        stats.peak_kv_usage * 100.0,
        info.max_concurrency()
    );
    summary += &format!("Preemptions: {preemptions}\n{}", "=".repeat(70));
    if args.json {
        eprintln!("{summary}");
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{summary}");
    }
    if let Some(path) = &args.output {
        metrics::writers::write_json_atomic(path, &doc)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("Results saved to: {}", path.display());
    }
    Ok(())
}

fn serving_metrics(
    done: &[CompletedRequest],
    start_s: f64,
    elapsed: f64,
) -> Result<metrics::ServingMetrics> {
    let timelines: Vec<RequestTimeline> = done
        .iter()
        .map(|d| {
            let mut t = RequestTimeline::new(
                d.timings.arrival_s - start_s,
                d.timings
                    .token_times_s
                    .iter()
                    .map(|x| x - start_s)
                    .collect(),
                d.prompt_token_ids.len(),
            );
            t.first_scheduled_s = d.timings.first_scheduled_s.map(|x| x - start_s);
            t
        })
        .collect();
    Ok(compute(
        &timelines,
        elapsed.max(f64::MIN_POSITIVE),
        &DEFAULT_PERCENTILES,
        None,
    )?)
}
