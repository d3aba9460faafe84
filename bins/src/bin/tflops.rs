//! tflops: how many TFLOP/s this device really gives, per precision, checked against an
//! f64 reference and compared with the architecture's peak (replaces the seed tutorial's
//! `tflops_benchmark.py`). All logic lives in the `matmul-flops` crate.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use matmul_flops::backend::{GemmOptions, DEFAULT_AUTOTUNE_CANDIDATES};
use matmul_flops::result::GemmCsvRow;
use matmul_flops::shape::{parse_size_list, DEFAULT_CPU_SQUARE_SIZES, DEFAULT_GPU_SQUARE_SIZES};
use matmul_flops::{
    open_gemm_backend, run_gemm, BenchDevice, DeviceInfo, GemmDtype, GemmProblem, GemmResult,
    GemmRunConfig, NumericsOptions, StopRule, TransformerDims,
};
use serde::Serialize;

/// Measure GEMM throughput per precision: square sweeps and the GEMMs of an LLM layer.
///
/// Every (dtype, shape) is first checked against an f64 CPU reference on sampled rows (a
/// wrong result is an error, not a number); on a GPU, cuBLASLt's heuristic candidates are
/// each checked and timed and the fastest is kept. Timing uses CUDA events (a clock on the
/// CPU), warm-up, inputs rotated through 256 MiB, and repeats until the coefficient of
/// variation is low enough or the time budget ends. Reports median/best TFLOP/s (GFLOP/s on
/// the CPU), % of the architecture's peak, the numerics used, and clocks/throttling seen.
#[derive(Debug, Parser)]
#[command(name = "tflops", version, about, long_about)]
struct Args {
    /// Device: cpu, cuda (= cuda:0) or cuda:N. Default: cuda:0 in a CUDA build, else cpu.
    #[arg(long, short = 'd', value_name = "DEVICE")]
    device: Option<String>,

    /// Comma-separated precisions: fp32, tf32, fp16, bf16, fp8 (e4m3, per-tensor scales),
    /// int8 (int32 accumulate). Default: fp32 on the CPU; on a GPU every one it supports.
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    dtypes: Option<String>,

    /// Comma-separated square sizes N (an NxNxN GEMM each). Default: 1024,2048,4096,8192,16384
    /// on a GPU, 256,512,1024 on the CPU; none when --model-shapes is given alone.
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    sizes: Option<String>,

    /// Also (or only) measure the GEMMs of one layer of MODEL (qkv, attn_out, mlp_up,
    /// mlp_gate, mlp_down, lm_head): tiny-llama, gpt2, opt-1.3b, llama-2-7b, llama-3-8b.
    #[arg(long, value_name = "MODEL")]
    model_shapes: Option<String>,

    /// Token counts (the GEMMs' M) for --model-shapes: decode (1, 8, 64) to prefill (8192).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "1,8,64,512,2048,8192",
        allow_hyphen_values = true
    )]
    tokens: String,

    /// fp16/bf16/fp8: allow reduced-precision (16-bit output type) split-K reductions, as
    /// torch does by default for fp16/bf16. Off: reductions in fp32 only.
    #[arg(long)]
    reduced_precision: bool,

    /// fp8: cuBLASLt fast accumulation (torch `_scaled_mm(use_fast_accum=True)`). Off by default.
    #[arg(long)]
    fp8_fast_accum: bool,

    /// Most timed launches per GEMM (the stop rule may end earlier).
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..))]
    iters: u64,

    /// Fewest timed launches before the noise rule may stop.
    #[arg(long, value_name = "N", default_value_t = 20)]
    min_iters: u64,

    /// Stop once the coefficient of variation of the launch times is at most this (0.02 = 2%).
    #[arg(long, value_name = "CV", default_value_t = 0.02)]
    target_cv: f64,

    /// Seconds of timed launches per GEMM after which timing stops (with >= 3 samples).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    time_budget: f64,

    /// Seconds of warm-up launches before timing (clocks settle).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.2)]
    warmup: f64,

    /// cuBLASLt heuristic candidates to check and time per GEMM (1 = library default only).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_AUTOTUNE_CANDIDATES as u64,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    autotune: u64,

    /// Rows of C checked against the f64 reference per GEMM.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    check_rows: u64,

    /// MiB of input copies consecutive launches rotate through (more than the L2 holds).
    #[arg(long, value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..))]
    rotation_mib: u64,

    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,

    #[command(flatten)]
    out: gpubench::MachineOutput,

    /// Keep going after a failed GEMM (it is reported on stderr and the exit status is 1).
    #[arg(long)]
    keep_going: bool,
}

/// The JSON document `--json` writes.
#[derive(Serialize)]
struct TflopsJson<'a> {
    tool: &'static str,
    device: &'a DeviceInfo,
    manifest: metrics::manifest::RunManifest,
    options: &'a GemmOptions,
    stop_rule: &'a StopRule,
    results: &'a [GemmResult],
    failures: &'a [String],
}

fn main() -> ExitCode {
    gpubench::init_logging();
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => gpubench::fail(&err),
    }
}

/// The GEMM dimensions of a model preset of llm-engine.
fn model_dims(name: &str) -> Result<TransformerDims> {
    let Some(cfg) = llm_engine::presets::preset(name) else {
        bail!(
            "unknown model '{name}' for --model-shapes (expected one of: {})",
            llm_engine::presets::preset_names().join(", ")
        );
    };
    Ok(TransformerDims {
        name: name.to_string(),
        hidden: cfg.hidden_size,
        intermediate: cfg.intermediate_size,
        heads: cfg.num_heads,
        kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        vocab: cfg.vocab_size,
        gated_mlp: cfg.architecture == llm_engine::Architecture::Llama,
    })
}

fn seconds(name: &str, v: f64) -> Result<Duration> {
    if !v.is_finite() || v < 0.0 {
        bail!("{name} must be a number of seconds >= 0, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

fn run(args: Args) -> Result<bool> {
    let device: BenchDevice = match &args.device {
        Some(d) => d.parse()?,
        None => BenchDevice::default_for_build(),
    };
    let explicit_dtypes = args.dtypes.is_some();
    let dtypes = match &args.dtypes {
        Some(list) => GemmDtype::parse_list(list)?,
        None if device == BenchDevice::Cpu => vec![GemmDtype::Fp32],
        None => GemmDtype::ALL.to_vec(),
    };
    let mut problems = Vec::new();
    let sizes = match (&args.sizes, &args.model_shapes) {
        (Some(s), _) => parse_size_list(s)?,
        (None, Some(_)) => Vec::new(),
        (None, None) if device == BenchDevice::Cpu => DEFAULT_CPU_SQUARE_SIZES.to_vec(),
        (None, None) => DEFAULT_GPU_SQUARE_SIZES.to_vec(),
    };
    problems.extend(GemmProblem::square_sweep(&sizes)?);
    if let Some(model) = &args.model_shapes {
        let tokens = parse_size_list(&args.tokens).context("--tokens")?;
        problems.extend(model_dims(model)?.sweep(&tokens)?);
    }
    let budget = seconds("--time-budget", args.time_budget)?;
    if budget.is_zero() {
        bail!("--time-budget must be above 0 seconds");
    }
    let rule = StopRule {
        warmup_iters: 10,
        warmup_time: seconds("--warmup", args.warmup)?,
        min_iters: usize::try_from(args.min_iters.min(args.iters))?,
        max_iters: usize::try_from(args.iters)?,
        target_cv: args.target_cv,
        time_budget: budget,
    };
    rule.validate()?;
    let config = GemmRunConfig {
        options: GemmOptions {
            numerics: NumericsOptions {
                reduced_precision_reduction: args.reduced_precision,
                fp8_fast_accum: args.fp8_fast_accum,
            },
            autotune_candidates: usize::try_from(args.autotune)?,
            rotation_bytes: args.rotation_mib << 20,
        },
        rule,
        check_rows: usize::try_from(args.check_rows)?,
        seed: args.seed,
    };

    let mut backend = open_gemm_backend(device)?;
    let info = backend.device().clone();
    eprintln!("device: {} ({}, {})", info.device, info.name, info.library);

    // Every job is validated before the first one runs: dtype support and memory.
    let mut jobs = Vec::new();
    for &dtype in &dtypes {
        if let Err(e) = backend.supports(dtype) {
            if explicit_dtypes {
                return Err(e.into());
            }
            eprintln!("skipping {dtype}: {e}");
            continue;
        }
        for p in &problems {
            backend.ensure_fits(dtype, &p.shape, &config.options)?;
            jobs.push((dtype, p.clone()));
        }
    }
    if jobs.is_empty() {
        bail!("nothing to measure: no dtype of the list runs on {device}");
    }

    let bar = ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for (dtype, problem) in &jobs {
        bar.set_message(format!("{dtype} {} {}", problem.label, problem.shape));
        match run_gemm(backend.as_mut(), problem, *dtype, &config) {
            Ok(r) => {
                tracing::info!(dtype = %r.dtype, shape = %r.shape, tflops = r.tflops, "done");
                results.push(r);
            }
            Err(e) if args.keep_going => {
                bar.suspend(|| {
                    eprintln!("error: {dtype} {} {}: {e}", problem.label, problem.shape)
                });
                failures.push(format!("{dtype} {} {}: {e}", problem.label, problem.shape));
            }
            Err(e) => {
                bar.finish_and_clear();
                return Err(e)
                    .with_context(|| format!("{dtype} {} {}", problem.label, problem.shape));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    write_output(&args, &info, &config, &results, &failures)?;
    Ok(failures.is_empty())
}

fn write_output(
    args: &Args,
    info: &DeviceInfo,
    config: &GemmRunConfig,
    results: &[GemmResult],
    failures: &[String],
) -> Result<()> {
    let csv = args.out.wants_csv();
    let machine = args.out.any();
    let table = matmul_flops::report::gemm_table(results);
    let csv_rows: Vec<GemmCsvRow> = results.iter().map(GemmCsvRow::from).collect();
    let doc = TflopsJson {
        tool: "tflops",
        device: info,
        manifest: metrics::manifest::RunManifest::capture(),
        options: &config.options,
        stop_rule: &config.rule,
        results,
        failures,
    };
    match &args.out.output {
        Some(path) => {
            if csv {
                metrics::writers::write_csv_atomic(path, &csv_rows)?;
            } else {
                metrics::writers::write_json_atomic(path, &doc)?;
            }
            print!("{table}");
            eprintln!("wrote {}", path.display());
        }
        None if machine && csv => {
            let mut w = csv_writer();
            for row in &csv_rows {
                w.serialize(row)?;
            }
            w.flush()?;
        }
        None if machine => println!("{}", serde_json::to_string_pretty(&doc)?),
        None => print!("{table}"),
    }
    Ok(())
}

fn csv_writer() -> csv::Writer<std::io::Stdout> {
    csv::Writer::from_writer(std::io::stdout())
}
