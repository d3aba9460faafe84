//! Serving (vLLM's `bench serve`, in process): the engine runs continuously in one loop and
//! requests enter at the arrival times of an [`ArrivalProcess`] (Poisson at `request_rate`,
//! or gamma with `burstiness`), at most `max_concurrency` in flight. A request's clock
//! starts at its scheduled arrival (or, when held back by `max_concurrency`, when a slot
//! frees — vLLM starts its timer after the semaphore), so queueing behind a busy engine
//! counts in its TTFT. Per-request timelines go through [`metrics::serving::compute`]:
//! TTFT, TPOT, ITL, E2EL with mean/median/std and the chosen percentiles, request and token
//! throughput, and goodput against an [`Slo`].

use llm_engine::Engine;
use metrics::serving::{compute, ServingMetrics, Slo};
use serde::Serialize;

use super::driver::{drive, SamplingTemplate};
use super::header::RunHeader;
use super::repeat::RunFigures;
use super::WorkloadInfo;
use crate::arrival::ArrivalProcess;
use crate::dataset::DatasetSpec;
use crate::energy::{EnergyMeter, EnergyReport};
use crate::error::{BenchError, Result};

/// What a serving run does.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSpec {
    /// The workload.
    pub dataset: DatasetSpec,
    /// Requests sent.
    pub num_prompts: usize,
    /// When they arrive.
    pub arrival: ArrivalProcess,
    /// Most requests in flight (`None` = no cap).
    pub max_concurrency: Option<usize>,
    /// Latency percentiles reported (vLLM's `--metric-percentiles`, default 99).
    pub percentiles: Vec<f64>,
    /// Goodput objectives (`--goodput`).
    pub goodput: Option<Slo>,
    /// Warm-up requests run at once before the timed run; 0 = none.
    pub warmup: usize,
    /// Sampling of every request.
    pub sampling: SamplingTemplate,
    /// Seed of prompts (`seed + 1`), warm-up (`seed + 2`) and arrivals (`seed + 3`).
    pub seed: u64,
}

/// The result of a serving run: vLLM's keys (flat) plus the arrival process.
#[derive(Debug, Clone, Serialize)]
pub struct ServeReport {
    /// `"serve"`.
    pub mode: &'static str,
    /// Model, device, configuration, memory, KV cache, manifest.
    #[serde(flatten)]
    pub header: RunHeader,
    /// The workload.
    #[serde(flatten)]
    pub workload: WorkloadInfo,
    /// Requests sent.
    pub num_prompts: usize,
    /// Requests per second (`null` = all at once, vLLM's `inf`).
    pub request_rate: Option<f64>,
    /// Gamma shape of the inter-arrival gaps (1 = Poisson).
    pub burstiness: f64,
    /// The concurrency cap, if any.
    pub max_concurrency: Option<usize>,
    /// Preemptions during the run.
    pub preemptions: u64,
    /// Engine steps during the run.
    pub steps: u64,
    /// TTFT, TPOT, ITL, E2EL, throughputs, goodput with vLLM's keys.
    #[serde(flatten)]
    pub serving: ServingMetrics,
    /// Energy (`null`s on a CPU).
    pub energy: EnergyReport,
}

/// Runs `spec` on a loaded engine; `progress(finished, total)` as requests finish.
///
/// # Errors
/// [`BenchError::InvalidArgument`] for zero prompts, a zero concurrency cap or a bad
/// percentile; arrival, dataset and engine errors (nothing runs if a prompt does not fit).
pub fn run(
    engine: &mut Engine,
    spec: &ServeSpec,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ServeReport> {
    if spec.num_prompts == 0 {
        return Err(BenchError::InvalidArgument(
            "--num-prompts must be at least 1".into(),
        ));
    }
    if let Some(&p) = spec
        .percentiles
        .iter()
        .find(|p| !(0.0..=100.0).contains(*p))
    {
        return Err(BenchError::InvalidArgument(format!(
            "--metric-percentiles: {p} is not in [0, 100]"
        )));
    }
    let arrivals = spec
        .arrival
        .arrival_times(spec.num_prompts, spec.seed.wrapping_add(3))?;
    let requests = spec
        .dataset
        .build(spec.num_prompts, spec.seed.wrapping_add(1), 0, &*engine)?;
    super::driver::validate(engine, &requests, &spec.sampling)?;
    if spec.warmup > 0 {
        let warm = spec.dataset.build(
            spec.warmup,
            spec.seed.wrapping_add(2),
            spec.num_prompts,
            &*engine,
        )?;
        drive(
            engine,
            &warm,
            &vec![0.0; warm.len()],
            spec.max_concurrency,
            &spec.sampling,
            &mut |_, _| {},
        )?;
    }
    let before = engine.stats().clone();
    let meter = EnergyMeter::start(engine);
    let outcome = drive(
        engine,
        &requests,
        &arrivals,
        spec.max_concurrency,
        &spec.sampling,
        progress,
    )?;
    let energy = meter.finish(&outcome.windows, outcome.output_tokens(), requests.len());
    let serving = compute(
        &outcome.timelines(),
        outcome.duration_s(),
        &spec.percentiles,
        spec.goodput.as_ref(),
    )?;
    let stats = engine.stats().clone();
    Ok(ServeReport {
        mode: "serve",
        header: RunHeader::capture(engine),
        workload: WorkloadInfo::of(&spec.dataset),
        num_prompts: requests.len(),
        request_rate: spec
            .arrival
            .request_rate
            .is_finite()
            .then_some(spec.arrival.request_rate),
        burstiness: spec.arrival.burstiness,
        max_concurrency: spec.max_concurrency,
        preemptions: stats.num_preemptions - before.num_preemptions,
        steps: stats.num_steps - before.num_steps,
        serving,
        energy,
    })
}

impl ServeReport {
    /// The human summary, laid out like `vllm bench serve`'s result table.
    pub fn summary(&self) -> String {
        let s = &self.serving;
        let line = |k: &str, v: String| format!("{k:<40}{v:<10}\n");
        let mut out = self.header.summary_lines();
        out += &format!("{:=^50}\n", " Serving Benchmark Result ");
        out += &line("Successful requests:", s.completed.to_string());
        out += &line(
            "Request rate configured (RPS):",
            self.request_rate
                .map_or("inf".to_string(), |r| format!("{r:.2}")),
        );
        out += &line("Burstiness:", format!("{:.2}", self.burstiness));
        if let Some(c) = self.max_concurrency {
            out += &line("Maximum request concurrency:", c.to_string());
        }
        out += &line("Benchmark duration (s):", format!("{:.2}", s.duration_s));
        out += &line("Total input tokens:", s.total_input_tokens.to_string());
        out += &line("Total generated tokens:", s.total_output_tokens.to_string());
        out += &line(
            "Request throughput (req/s):",
            format!("{:.2}", s.request_throughput),
        );
        if let Some(g) = s.request_goodput {
            out += &line("Request goodput (req/s):", format!("{g:.2}"));
        }
        out += &line(
            "Output token throughput (tok/s):",
            format!("{:.2}", s.output_throughput),
        );
        out += &line(
            "Total Token throughput (tok/s):",
            format!("{:.2}", s.total_token_throughput),
        );
        for (m, title) in [
            ("ttft", "Time to First Token"),
            ("tpot", "Time per Output Token (excl. 1st token)"),
            ("itl", "Inter-token Latency"),
            ("e2el", "End-to-end Latency"),
        ] {
            out += &format!("{:-^50}\n", format!(" {title} "));
            let name = m.to_uppercase();
            match s.latency(m) {
                Some(x) => {
                    out += &line(&format!("Mean {name} (ms):"), format!("{:.2}", x.mean));
                    out += &line(&format!("Median {name} (ms):"), format!("{:.2}", x.median));
                    for p in &x.percentiles {
                        out += &line(&format!("P{} {name} (ms):", p.p), format!("{:.2}", p.value));
                    }
                }
                None => out += &line(&format!("{name}:"), "n/a (no samples)".into()),
            }
        }
        out += &"=".repeat(50);
        out += "\n";
        out += &super::energy_lines(&self.energy);
        out
    }
}

impl RunFigures for ServeReport {
    fn headline(&self) -> &'static str {
        "output_throughput"
    }

    fn figures(&self) -> Vec<(&'static str, f64)> {
        let s = &self.serving;
        let mut f = vec![
            ("output_throughput", s.output_throughput),
            ("request_throughput", s.request_throughput),
            ("total_token_throughput", s.total_token_throughput),
        ];
        if let Some(g) = s.request_goodput {
            f.push(("request_goodput", g));
        }
        f.extend(super::latency_figures(s));
        f.extend(super::energy_figures(&self.energy));
        f
    }

    fn energy(&self) -> &EnergyReport {
        &self.energy
    }
}

/// Parses vLLM's `--metric-percentiles` (`"50,90,99"`).
///
/// # Errors
/// [`BenchError::InvalidArgument`] naming the bad entry.
pub fn parse_percentiles(text: &str) -> Result<Vec<f64>> {
    let ps = text
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=100.0).contains(v))
                .ok_or_else(|| {
                    BenchError::InvalidArgument(format!(
                        "--metric-percentiles: {:?} is not a number in [0, 100]",
                        p.trim()
                    ))
                })
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(ps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_parse_like_vllm() -> Result<()> {
        assert_eq!(parse_percentiles("50, 90,99.9")?, vec![50.0, 90.0, 99.9]);
        for bad in ["", "50,,90", "101", "-1", "p99"] {
            assert!(parse_percentiles(bad).is_err(), "{bad:?}");
        }
        Ok(())
    }
}
