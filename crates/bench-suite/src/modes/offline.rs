//! Offline throughput (the seed's `vllm_benchmark.py`, vLLM's `bench throughput`): every
//! request is submitted at once and the engine batches them continuously until all finish.
//! `throughput_tokens_per_sec` keeps the seed's meaning: output tokens / elapsed seconds.

use llm_engine::stats::HostStepMs;
use llm_engine::Engine;
use metrics::serving::{compute, ServingMetrics};
use metrics::DEFAULT_PERCENTILES;
use serde::Serialize;

use super::driver::{drive, SamplingTemplate};
use super::header::RunHeader;
use super::repeat::RunFigures;
use super::WorkloadInfo;
use crate::dataset::DatasetSpec;
use crate::energy::{EnergyMeter, EnergyReport};
use crate::error::{BenchError, Result};

/// What an offline run does.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineSpec {
    /// The workload.
    pub dataset: DatasetSpec,
    /// Requests in the timed run (the seed's 50).
    pub num_prompts: usize,
    /// Warm-up requests run first (other prompts), not timed; 0 = none.
    pub warmup: usize,
    /// Sampling of every request.
    pub sampling: SamplingTemplate,
    /// Seed of the prompts (the timed run uses `seed + 1`, the warm-up `seed + 2`).
    pub seed: u64,
}

/// The result of an offline run: the seed's keys (`num_prompts`, `max_tokens`,
/// `inference_time_s`, `total_tokens`, `throughput_tokens_per_sec`,
/// `latency_per_request_ms`, plus the header's `model`, `load_time_s`, `memory_used_gb`,
/// `memory_utilization_pct`), vLLM's serving keys (flat), energy and engine counters.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineReport {
    /// `"offline"`.
    pub mode: &'static str,
    /// Model, device, configuration, memory, KV cache, manifest.
    #[serde(flatten)]
    pub header: RunHeader,
    /// Requests in the timed run.
    pub num_prompts: usize,
    /// Longest output asked of a request.
    pub max_tokens: usize,
    /// The workload.
    #[serde(flatten)]
    pub workload: WorkloadInfo,
    /// Seconds of the timed run.
    pub inference_time_s: f64,
    /// Output tokens generated.
    pub total_tokens: usize,
    /// Output tokens / `inference_time_s` (the seed's definition).
    pub throughput_tokens_per_sec: f64,
    /// `inference_time_s / num_prompts`, in ms (the seed's definition).
    pub latency_per_request_ms: f64,
    /// Sampling temperature.
    pub temperature: f32,
    /// Preemptions during the timed run.
    pub preemptions: u64,
    /// Engine steps in the timed run.
    pub steps: u64,
    /// The engine thread's time per step in the timed run, by phase (ms; see
    /// [`llm_engine::stats::HostTimes`]): on a GPU, schedule + update is time the device
    /// waits on the host between steps.
    pub host_ms_per_step: HostStepMs,
    /// Decode steps of the timed run replayed from CUDA graphs.
    pub decode_graph_steps: u64,
    /// Most sequences in one batch (engine lifetime).
    pub max_batch_seqs: usize,
    /// Fraction of prefix-cache lookups that hit (engine lifetime).
    pub prefix_cache_hit_rate: f64,
    /// TTFT, TPOT, ITL, E2EL and throughputs with vLLM's keys.
    #[serde(flatten)]
    pub serving: ServingMetrics,
    /// Energy per token and request, power, prefill/decode split (`null`s on a CPU).
    pub energy: EnergyReport,
}

/// Runs `spec` on an already loaded engine (so sweeps can reuse one model): warm-up, then
/// the timed run with `progress(finished, total)` as requests finish.
///
/// # Errors
/// [`BenchError::InvalidArgument`] for `num_prompts == 0`; dataset errors; engine errors
/// (nothing runs if a prompt does not fit the model).
pub fn run(
    engine: &mut Engine,
    spec: &OfflineSpec,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<OfflineReport> {
    if spec.num_prompts == 0 {
        return Err(BenchError::InvalidArgument(
            "--num-prompts must be at least 1".into(),
        ));
    }
    let requests = spec
        .dataset
        .build(spec.num_prompts, spec.seed.wrapping_add(1), 0, &*engine)?;
    if spec.warmup > 0 {
        let warm = spec.dataset.build(
            spec.warmup,
            spec.seed.wrapping_add(2),
            spec.num_prompts,
            &*engine,
        )?;
        let t = std::time::Instant::now();
        drive(
            engine,
            &warm,
            &vec![0.0; warm.len()],
            None,
            &spec.sampling,
            &mut |_, _| {},
        )?;
        tracing::info!(seconds = t.elapsed().as_secs_f64(), "warm-up done");
    } else {
        super::driver::validate(engine, &requests, &spec.sampling)?;
    }
    let before = engine.stats().clone();
    let meter = EnergyMeter::start(engine);
    let outcome = drive(
        engine,
        &requests,
        &vec![0.0; requests.len()],
        None,
        &spec.sampling,
        progress,
    )?;
    let elapsed = outcome.duration_s();
    let total_tokens = outcome.output_tokens();
    let energy = meter.finish(&outcome.windows, total_tokens, requests.len());
    let serving = compute(&outcome.timelines(), elapsed, &DEFAULT_PERCENTILES, None)?;
    let stats = engine.stats().clone();
    Ok(OfflineReport {
        mode: "offline",
        header: RunHeader::capture(engine),
        num_prompts: requests.len(),
        max_tokens: requests.iter().map(|r| r.output_len).max().unwrap_or(0),
        workload: WorkloadInfo::of(&spec.dataset),
        inference_time_s: elapsed,
        total_tokens,
        throughput_tokens_per_sec: total_tokens as f64 / elapsed,
        latency_per_request_ms: elapsed / requests.len() as f64 * 1000.0,
        temperature: spec.sampling.temperature,
        preemptions: stats.num_preemptions - before.num_preemptions,
        steps: stats.num_steps - before.num_steps,
        host_ms_per_step: stats
            .host
            .since(&before.host)
            .per_step_ms(stats.num_steps - before.num_steps),
        decode_graph_steps: stats.decode_graph_steps - before.decode_graph_steps,
        max_batch_seqs: stats.max_batch_seqs,
        prefix_cache_hit_rate: stats.prefix_cache_hit_rate(),
        serving,
        energy,
    })
}

impl OfflineReport {
    /// The human summary (the seed's lines, then TTFT/TPOT/E2E, memory, KV cache, energy).
    pub fn summary(&self) -> String {
        let s = &self.serving;
        let mut out = self.header.summary_lines();
        out += &format!(
            "Total tokens: {} generated ({} prompt)\n",
            self.total_tokens, s.total_input_tokens
        );
        out += &format!(
            "Throughput: {:.2} tokens/sec (output tokens / elapsed, the seed's definition)\n",
            self.throughput_tokens_per_sec
        );
        out += &format!(
            "Total token throughput: {:.2} tokens/sec (prompt + output)\n",
            s.total_token_throughput
        );
        out += &format!("Inference time: {:.3}s\n", self.inference_time_s);
        out += &format!(
            "Latency per request: {:.2} ms (elapsed / num_prompts)\n",
            self.latency_per_request_ms
        );
        out += &super::latency_lines(s, &["e2el", "ttft", "tpot"]);
        out += &format!("Preemptions: {}\n", self.preemptions);
        let h = &self.host_ms_per_step;
        out += &format!(
            "Host time per step: schedule {:.3} ms, forward {:.3} ms, sample {:.3} ms, update {:.3} ms ({} steps, {} from CUDA graphs)\n",
            h.schedule_ms, h.forward_ms, h.sample_ms, h.update_ms, self.steps, self.decode_graph_steps
        );
        out += &super::energy_lines(&self.energy);
        out
    }
}

impl RunFigures for OfflineReport {
    fn headline(&self) -> &'static str {
        "throughput_tokens_per_sec"
    }

    fn figures(&self) -> Vec<(&'static str, f64)> {
        let mut f = vec![
            ("throughput_tokens_per_sec", self.throughput_tokens_per_sec),
            (
                "total_token_throughput",
                self.serving.total_token_throughput,
            ),
            ("inference_time_s", self.inference_time_s),
            ("latency_per_request_ms", self.latency_per_request_ms),
        ];
        f.extend(super::latency_figures(&self.serving));
        f.extend(super::energy_figures(&self.energy));
        f
    }

    fn energy(&self) -> &EnergyReport {
        &self.energy
    }
}
