//! The run modes of `llm-bench`, each a function over an already loaded [`Engine`] (so a
//! sweep loads a model once) and a spec, returning a serialisable report:
//!
//! | mode | what it measures | vLLM's counterpart |
//! |---|---|---|
//! | [`offline`] | throughput: every request at once, continuous batching until all finish | `vllm bench throughput`, the seed's `vllm_benchmark.py` |
//! | [`latency`] | one batch of `batch_size` requests, timed over repeated iterations | `vllm bench latency` |
//! | [`serve`] | requests arriving by a Poisson/gamma process into the running engine: TTFT, TPOT, ITL, E2E, goodput | `vllm bench serve` |
//!
//! Every report starts with a [`RunHeader`] (flattened: model, device, dtype, engine
//! configuration, load time, memory, KV cache, manifest) and carries an
//! [`EnergyReport`](crate::energy::EnergyReport). [`repeat`] runs a mode N times and reports
//! each figure's median and spread, with warnings when clocks throttled or the spread is
//! large. All modes drive the engine through one loop, [`driver::drive`].
//!
//! [`Engine`]: llm_engine::Engine

pub mod driver;
pub mod header;
pub mod latency;
pub mod offline;
pub mod repeat;
pub mod serve;

use metrics::ServingMetrics;
use serde::Serialize;

use crate::dataset::{DatasetSpec, LengthSpec};
use crate::energy::{ClocksByPhase, EnergyReport};

pub use driver::SamplingTemplate;
pub use header::RunHeader;
pub use repeat::{Repeated, RunFigures, Spread};

/// The workload of a run as its report shows it (keys `prompts`, `input_len`,
/// `output_len`, `dataset_path`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadInfo {
    /// `random`, `seed` or `file`.
    pub prompts: &'static str,
    /// Prompt lengths of a random workload (a number when fixed).
    pub input_len: Option<LengthSpec>,
    /// Output lengths (for a file: the fallback length).
    pub output_len: LengthSpec,
    /// The dataset file, for a file workload.
    pub dataset_path: Option<String>,
}

impl WorkloadInfo {
    /// How `spec` is shown in a report.
    pub fn of(spec: &DatasetSpec) -> WorkloadInfo {
        match spec {
            DatasetSpec::Random {
                input_len,
                output_len,
            } => WorkloadInfo {
                prompts: spec.name(),
                input_len: Some(*input_len),
                output_len: *output_len,
                dataset_path: None,
            },
            DatasetSpec::Seed { output_len } => WorkloadInfo {
                prompts: spec.name(),
                input_len: None,
                output_len: *output_len,
                dataset_path: None,
            },
            DatasetSpec::File { path, output_len } => WorkloadInfo {
                prompts: spec.name(),
                input_len: None,
                output_len: LengthSpec::Fixed(*output_len),
                dataset_path: Some(path.display().to_string()),
            },
        }
    }
}

/// One summary line per latency metric (`"ttft"`, `"tpot"`, `"itl"`, `"e2el"`): mean,
/// median and the highest reported percentile, in ms.
pub(crate) fn latency_lines(s: &ServingMetrics, metrics: &[&str]) -> String {
    let name = |m: &str| match m {
        "ttft" => "TTFT",
        "tpot" => "TPOT",
        "itl" => "ITL",
        "e2el" => "E2E latency",
        _ => "queue",
    };
    metrics
        .iter()
        .map(|m| match s.latency(m) {
            Some(x) => {
                let top = x
                    .percentiles
                    .last()
                    .map_or(String::new(), |p| format!(" / p{} {:.2}", p.p, p.value));
                format!(
                    "{:<12} mean {:.2} / median {:.2}{top} ms\n",
                    name(m),
                    x.mean,
                    x.median
                )
            }
            None => format!("{:<12} n/a (no samples)\n", name(m)),
        })
        .collect()
}

/// The energy lines of a summary (one line saying why when there are no figures).
pub(crate) fn energy_lines(e: &EnergyReport) -> String {
    let Some(j) = e.energy_j else {
        return format!(
            "Energy: n/a ({})\n",
            e.unavailable.as_deref().unwrap_or("not measured")
        );
    };
    let f = |x: Option<f64>, unit: &str| x.map_or("n/a".to_string(), |v| format!("{v:.3} {unit}"));
    let mut out = format!(
        "Energy: {j:.1} J, {} per output token, {} per request; power avg {} peak {}\n",
        f(e.joules_per_output_token, "J"),
        f(e.joules_per_request, "J"),
        f(e.avg_power_w, "W"),
        f(e.peak_power_w, "W"),
    );
    if let Some(p) = &e.phases {
        out += &format!(
            "Energy by phase: prefill {:.1} J ({} per prompt token), decode {:.1} J ({} per decode token), idle {:.1} J\n",
            p.prefill_j,
            f(e.prefill_joules_per_token, "J"),
            p.decode_j,
            f(e.decode_joules_per_token, "J"),
            p.idle_j
        );
    }
    out + &phase_clock_lines(&e.clocks_by_phase)
}

/// "Clocks by phase: ..." and, for a phase held at the power limit, what that means.
fn phase_clock_lines(c: &ClocksByPhase) -> String {
    let phases = [("prefill", c.prefill), ("decode", c.decode)];
    let parts: Vec<String> = phases
        .iter()
        .filter_map(|(name, p)| p.map(|p| (name, p)))
        .map(|(name, p)| {
            let clock = p
                .median_sm_clock_mhz
                .map_or("n/a".to_string(), |m| format!("{m} MHz"));
            let capped = p.power_capped_fraction.map_or("n/a".to_string(), |f| {
                format!("{:.0}% of samples", 100.0 * f)
            });
            format!("{name} SM clock median {clock}, at the power limit in {capped}")
        })
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "Clocks by phase: {}
",
        parts.join("; ")
    );
    let bound: Vec<&str> = phases
        .iter()
        .filter(|(_, p)| p.is_some_and(|p| p.is_power_bound()))
        .map(|(name, _)| *name)
        .collect();
    if !bound.is_empty() {
        out += &format!(
            "Power-bound: {} ran at the board's power limit; there throughput follows energy per \
             token (less work or fewer bytes per token), not kernel speed alone\n",
            bound.join(" and ")
        );
    }
    out
}

/// Mean and median of each latency metric, for repeat statistics.
pub(crate) fn latency_figures(s: &ServingMetrics) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    for (m, mean, median) in [
        ("ttft", "mean_ttft_ms", "median_ttft_ms"),
        ("tpot", "mean_tpot_ms", "median_tpot_ms"),
        ("itl", "mean_itl_ms", "median_itl_ms"),
        ("e2el", "mean_e2el_ms", "median_e2el_ms"),
    ] {
        if let Some(x) = s.latency(m) {
            out.push((mean, x.mean));
            out.push((median, x.median));
        }
    }
    out
}

/// Energy figures, for repeat statistics.
pub(crate) fn energy_figures(e: &EnergyReport) -> Vec<(&'static str, f64)> {
    [
        ("energy_j", e.energy_j),
        ("joules_per_output_token", e.joules_per_output_token),
        ("avg_power_w", e.avg_power_w),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect()
}

#[cfg(test)]
mod tests;
