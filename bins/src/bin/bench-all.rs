//! bench-all: the whole suite into one results folder (the seed tutorial's
//! `run_all_benchmarks.sh` + `cat results/benchmark_summary.txt`). All logic lives in
//! `bench_suite::results`; this file parses flags, shows progress and prints the summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use bench_suite::results::bench_all::{
    default_models, run_bench_all, BenchAllConfig, StageProgress,
};
use bench_suite::results::{render_summary, write_results, ResultsFolder};
use bench_suite::sweep::StoreMode;
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Run every benchmark and write the results folder: GPU/host facts, GEMM TFLOP/s per
/// precision, memory bandwidth, offline LLM throughput for each model that fits the device
/// (tiny-llama on a CPU), a batch-size sweep, prefill/decode against the measured roofline,
/// and cost per 1M tokens.
///
/// Writes benchmark_summary.txt (the human summary), benchmark_results.json (everything,
/// with results_version and the run manifest), llm_results.json (seed-style records for
/// cost-analysis), one CSV and one Markdown file per table, and SVG charts in plots/.
/// Each stage is recorded under parts/ as it finishes: after an interruption, --resume
/// continues where it stopped.
#[derive(Debug, Parser)]
#[command(name = "bench-all", version, about, long_about)]
struct Args {
    /// The results folder. It must be absent or empty unless --resume or --force is given.
    #[arg(long, short = 'o', default_value = "results", value_name = "DIR")]
    out_dir: PathBuf,

    /// Continue the run recorded in --out-dir: finished stages are kept, the rest run.
    #[arg(long, conflicts_with = "force")]
    resume: bool,

    /// Replace the results in --out-dir (only files bench-all writes are deleted; a folder
    /// holding anything else is refused).
    #[arg(long)]
    force: bool,

    /// Device: cpu, or cuda:N in a build with --features cuda. Default: cuda:0 in a CUDA
    /// build, else cpu.
    #[arg(long, short = 'd', value_name = "DEVICE")]
    device: Option<String>,

    /// Comma-separated model presets (tiny-llama, gpt2, opt-1.3b, llama-2-7b, llama-3-8b).
    /// Default: tiny-llama on a CPU; on a GPU every preset whose f16 weights fit in 80% of
    /// its memory.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    models: Option<Vec<String>>,

    /// Instance to price (g4dn.xlarge, aws/p5.48xlarge); repeat for several. The first is
    /// this machine's instance in `compare`. Default: the catalog instances with this GPU,
    /// or the seed's five AWS instances on a machine without one.
    #[arg(long, short = 'i', value_name = "NAME")]
    instance: Vec<String>,

    /// Tiny sizes everywhere: a smoke run of a few seconds (tests use it).
    #[arg(long)]
    quick: bool,

    /// Seed of prompts and GEMM inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// KV-cache dtype of the LLM runs: auto (the model dtype) or fp8 (= fp8_e4m3: K/V as FP8
    /// E4M3, scale 1.0, half the bytes of f16 so 2x the tokens, E4M3 rounding, saturating at
    /// ±448; on CUDA f16/bf16 models with head_dim 64/128).
    #[arg(long, default_value = "auto", value_name = "DTYPE")]
    kv_cache_dtype: String,
}

/// Progress bars: one per stage, under one multi-bar.
struct Bars {
    multi: MultiProgress,
    current: Option<(String, ProgressBar)>,
}

impl StageProgress for Bars {
    fn start(&mut self, stage: &str, total: u64) {
        if let Some((name, bar)) = &self.current {
            if name == stage {
                bar.set_length(total);
                return;
            }
            bar.finish_and_clear();
        }
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:<26} {bar:30} {pos}/{len} {elapsed_precise} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(stage.to_string());
        self.current = Some((stage.to_string(), bar));
    }

    fn advance(&mut self, done: u64, message: &str) {
        if let Some((_, bar)) = &self.current {
            bar.set_position(done);
            bar.set_message(message.to_string());
        }
    }

    fn finish(&mut self, stage: &str, outcome: &str, error: Option<&str>) {
        if let Some((_, bar)) = self.current.take() {
            bar.finish_and_clear();
        }
        let line = match error {
            Some(e) => format!("{stage:<26} {outcome}: {e}"),
            None => format!("{stage:<26} {outcome}"),
        };
        // Printed even when stderr is not a terminal (bars are hidden there, lines are not).
        self.multi.suspend(|| eprintln!("{line}"));
    }
}

fn main() -> ExitCode {
    // See llm-bench: set once so candle's CPU ops do not re-read /proc/cpuinfo per call.
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
    let started = Instant::now();
    let kv_cache_dtype: llm_engine::KvCacheDtype = args.kv_cache_dtype.parse()?;
    let device = args.device.clone().unwrap_or_else(|| {
        if matmul_flops::CUDA_COMPILED {
            "cuda:0".to_string()
        } else {
            "cpu".to_string()
        }
    });
    let gpu_memory = if device == "cpu" {
        None
    } else {
        let index = device.trim_start_matches("cuda").trim_start_matches(':');
        let index: usize = if index.is_empty() {
            0
        } else {
            index
                .parse()
                .with_context(|| format!("bad --device {device}"))?
        };
        gpu_probe::probe()
            .gpus
            .devices()
            .get(index)
            .and_then(|g| g.memory_total_bytes)
    };
    let models = args
        .models
        .clone()
        .unwrap_or_else(|| default_models(&device, gpu_memory));
    for m in &models {
        if llm_engine::presets::preset(m).is_none() {
            anyhow::bail!(
                "unknown model '{m}' in --models (presets: {})",
                llm_engine::presets::preset_names().join(", ")
            );
        }
    }
    let mode = match (args.resume, args.force) {
        (true, _) => StoreMode::Resume,
        (_, true) => StoreMode::Force,
        _ => StoreMode::New,
    };
    let folder = ResultsFolder::open(&args.out_dir, mode)?;
    let config = BenchAllConfig {
        device,
        models,
        quick: args.quick,
        instances: args.instance.clone(),
        seed: args.seed,
        kv_cache_dtype,
    };
    eprintln!(
        "bench-all: {} on {}, models {} -> {}/",
        if config.quick {
            "quick run"
        } else {
            "full run"
        },
        config.device,
        config.models.join(", "),
        folder.dir().display()
    );
    let mut bars = Bars {
        multi: MultiProgress::new(),
        current: None,
    };
    let report = run_bench_all(&folder, mode, &config, &mut bars)?;
    write_results(&folder, &report).context("writing the results folder")?;
    print!("{}", render_summary(&report));
    eprintln!(
        "results in {}/ ({:.1} s): benchmark_summary.txt, benchmark_results.json, *.csv, *.md, plots/*.svg",
        folder.dir().display(),
        started.elapsed().as_secs_f64()
    );
    if !report.failures.is_empty() {
        eprintln!(
            "warning: {} stage(s) did not finish (see the summary); rerun with --resume to retry errors",
            report.failures.len()
        );
    }
    Ok(())
}
