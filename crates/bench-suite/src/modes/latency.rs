//! Batch latency (vLLM's `bench latency`): one batch of `batch_size` requests submitted
//! together, run `num_iters_warmup` times untimed and `num_iters` times timed; the report
//! gives the mean, standard deviation and p10–p99 of the batch latency. Each iteration draws
//! fresh prompts (another seed), so the prefix cache cannot serve one iteration's prompts
//! to the next.

use llm_engine::Engine;
use metrics::Summary;
use serde::Serialize;

use super::driver::{drive, SamplingTemplate};
use super::header::RunHeader;
use super::repeat::RunFigures;
use super::WorkloadInfo;
use crate::dataset::DatasetSpec;
use crate::energy::{EnergyMeter, EnergyReport, StepWindow};
use crate::error::{BenchError, Result};

/// The percentiles of the batch latency vLLM reports.
pub const LATENCY_PERCENTILES: [f64; 6] = [10.0, 25.0, 50.0, 75.0, 90.0, 99.0];

/// What a latency run does.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySpec {
    /// The workload each batch is drawn from.
    pub dataset: DatasetSpec,
    /// Requests per batch (`--batch-size`).
    pub batch_size: usize,
    /// Untimed iterations first (`--num-iters-warmup`).
    pub num_iters_warmup: usize,
    /// Timed iterations (`--num-iters`).
    pub num_iters: usize,
    /// Sampling of every request.
    pub sampling: SamplingTemplate,
    /// Seed of the prompts (iteration `i` uses `seed + 1 + i`).
    pub seed: u64,
}

/// The result of a latency run (vLLM's `avg_latency`, `latencies`, `percentiles`, in s).
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// `"latency"`.
    pub mode: &'static str,
    /// Model, device, configuration, memory, KV cache, manifest.
    #[serde(flatten)]
    pub header: RunHeader,
    /// The workload.
    #[serde(flatten)]
    pub workload: WorkloadInfo,
    /// Requests per batch.
    pub batch_size: usize,
    /// Untimed iterations.
    pub num_iters_warmup: usize,
    /// Timed iterations.
    pub num_iters: usize,
    /// Each timed iteration's batch latency (s).
    pub latencies: Vec<f64>,
    /// Mean batch latency (s).
    pub avg_latency: f64,
    /// Sample standard deviation of the batch latency (s).
    pub std_latency: f64,
    /// Median batch latency (s).
    pub median_latency: f64,
    /// p10, p25, p50, p75, p90, p99 of the batch latency (s), keyed `"10"` ... `"99"`.
    pub percentiles: std::collections::BTreeMap<String, f64>,
    /// Output tokens of one batch (mean over iterations).
    pub output_tokens_per_batch: f64,
    /// Output tokens per second over the timed iterations.
    pub output_throughput: f64,
    /// Energy over the timed iterations (`null`s on a CPU).
    pub energy: EnergyReport,
}

/// Runs `spec` on a loaded engine; `progress(iteration, total)` after each timed iteration.
///
/// # Errors
/// [`BenchError::InvalidArgument`] for a zero batch size or iteration count; dataset and
/// engine errors.
pub fn run(
    engine: &mut Engine,
    spec: &LatencySpec,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<LatencyReport> {
    if spec.batch_size == 0 {
        return Err(BenchError::InvalidArgument(
            "--batch-size must be at least 1".into(),
        ));
    }
    if spec.num_iters == 0 {
        return Err(BenchError::InvalidArgument(
            "--num-iters must be at least 1".into(),
        ));
    }
    let total = spec.num_iters_warmup + spec.num_iters;
    let batches = (0..total)
        .map(|i| {
            spec.dataset.build(
                spec.batch_size,
                spec.seed.wrapping_add(1 + i as u64),
                i * spec.batch_size,
                &*engine,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    for b in &batches {
        super::driver::validate(engine, b, &spec.sampling)?;
    }
    let at_once = vec![0.0; spec.batch_size];
    for b in &batches[..spec.num_iters_warmup] {
        drive(engine, b, &at_once, None, &spec.sampling, &mut |_, _| {})?;
    }
    let meter = EnergyMeter::start(engine);
    let mut latencies = Vec::with_capacity(spec.num_iters);
    let mut windows: Vec<StepWindow> = Vec::new();
    let mut output_tokens = 0usize;
    for (i, b) in batches[spec.num_iters_warmup..].iter().enumerate() {
        let out = drive(engine, b, &at_once, None, &spec.sampling, &mut |_, _| {})?;
        latencies.push(out.duration_s());
        output_tokens += out.output_tokens();
        windows.extend(out.windows);
        progress(i + 1, spec.num_iters);
    }
    let energy = meter.finish(&windows, output_tokens, spec.batch_size * spec.num_iters);
    let s = Summary::with_percentiles(&latencies, &LATENCY_PERCENTILES)?;
    let busy: f64 = latencies.iter().sum();
    Ok(LatencyReport {
        mode: "latency",
        header: RunHeader::capture(engine),
        workload: WorkloadInfo::of(&spec.dataset),
        batch_size: spec.batch_size,
        num_iters_warmup: spec.num_iters_warmup,
        num_iters: spec.num_iters,
        avg_latency: s.mean,
        std_latency: s.stddev,
        median_latency: s.median,
        percentiles: s
            .percentiles
            .iter()
            .map(|p| (format!("{}", p.p as i64), p.value))
            .collect(),
        latencies,
        output_tokens_per_batch: output_tokens as f64 / spec.num_iters as f64,
        output_throughput: output_tokens as f64 / busy.max(f64::MIN_POSITIVE),
        energy,
    })
}

impl LatencyReport {
    /// The human summary.
    pub fn summary(&self) -> String {
        let mut out = self.header.summary_lines();
        out += &format!(
            "Batch of {} requests, {} timed iterations ({} warm-up)\n",
            self.batch_size, self.num_iters, self.num_iters_warmup
        );
        out += &format!(
            "Avg latency: {:.4} s (std {:.4} s, median {:.4} s)\n",
            self.avg_latency, self.std_latency, self.median_latency
        );
        for p in LATENCY_PERCENTILES {
            let k = format!("{}", p as i64);
            if let Some(v) = self.percentiles.get(&k) {
                out += &format!("{k}% percentile latency: {v:.4} s\n");
            }
        }
        out += &format!(
            "Output throughput: {:.2} tokens/sec ({:.1} tokens per batch)\n",
            self.output_throughput, self.output_tokens_per_batch
        );
        out += &super::energy_lines(&self.energy);
        out
    }
}

impl RunFigures for LatencyReport {
    fn headline(&self) -> &'static str {
        "avg_latency"
    }

    fn figures(&self) -> Vec<(&'static str, f64)> {
        let mut f = vec![
            ("avg_latency", self.avg_latency),
            ("median_latency", self.median_latency),
            ("output_throughput", self.output_throughput),
        ];
        if let Some(&p99) = self.percentiles.get("99") {
            f.push(("p99_latency", p99));
        }
        f.extend(super::energy_figures(&self.energy));
        f
    }

    fn energy(&self) -> &EnergyReport {
        &self.energy
    }
}
