//! Configuration tuning (`config-tune`, the seed's Challenge 3): a grid over
//! `gpu_memory_utilization`, `max_num_batched_tokens`, `max_num_seqs`, dtype and block
//! size; one offline run per configuration; the best one by an objective and the Pareto
//! front of throughput against latency.
//!
//! | concept | what it is |
//! |---|---|
//! | [`TuneGrid`], [`TunePoint`] | the comma lists, validated, and their cross product |
//! | [`Objective`] | `throughput`, or `throughput-under-slo` (p99 or mean request latency at most `--slo-ms`) |
//! | [`measure_point`] | builds the engine for one configuration and runs the workload ([`run_offline`]) |
//! | [`summarize`], [`TuneReport`] | the best configuration and the Pareto front |
//! | [`pareto`] | the front itself, unit- and property-tested |
//!
//! Each configuration gets a fresh engine (the settings change the KV cache and the
//! scheduler). On the CPU the engine ignores `gpu_memory_utilization` (the KV cache is the
//! `kv_cache_bytes` budget), so configurations that differ only in it measure the same thing;
//! the report says so.

mod grid;
mod offline_run;
pub mod pareto;

pub use grid::{
    parse_dtype_list, parse_usize_list, parse_utilization_list, TuneGrid, TunePoint,
    MAX_BATCHED_TOKENS, MAX_BLOCK_SIZE, MAX_NUM_SEQS,
};
pub use offline_run::{run_offline, OfflineFigures, OfflineWorkload};

use llm_engine::engine::{parse_dtype, DeviceSpec, EngineConfig};
use llm_engine::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::sweep::{PointRecord, PointStatus};
use pareto::{pareto_front, TradeOff};

/// Which request latency a constraint and the Pareto front use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyStat {
    /// The 99th percentile of end-to-end request latency.
    P99,
    /// The mean end-to-end request latency.
    Mean,
}

impl LatencyStat {
    /// This statistic of a run, ms.
    pub fn of(self, f: &OfflineFigures) -> f64 {
        match self {
            LatencyStat::P99 => f.p99_e2el_ms,
            LatencyStat::Mean => f.mean_e2el_ms,
        }
    }

    /// `p99` or `mean`.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyStat::P99 => "p99",
            LatencyStat::Mean => "mean",
        }
    }
}

/// What "best" means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Objective {
    /// The highest output throughput.
    Throughput {
        /// The latency the Pareto front and tie-breaks use.
        latency: LatencyStat,
    },
    /// The highest output throughput among configurations whose latency is at most `slo_ms`.
    ThroughputUnderSlo {
        /// The latency bound, ms.
        slo_ms: f64,
        /// Which latency is bounded.
        latency: LatencyStat,
    },
}

impl Objective {
    /// Builds an objective from `config-tune`'s flags: `throughput` or
    /// `throughput-under-slo` (which needs `slo_ms`).
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] for an unknown name, a missing or non-positive
    /// `--slo-ms`, or `--slo-ms` given with `throughput`.
    pub fn from_flags(name: &str, slo_ms: Option<f64>, latency: LatencyStat) -> Result<Objective> {
        match (name, slo_ms) {
            ("throughput", None) => Ok(Objective::Throughput { latency }),
            ("throughput", Some(_)) => Err(BenchError::InvalidArgument(
                "--slo-ms needs --objective throughput-under-slo".into(),
            )),
            ("throughput-under-slo", Some(ms)) if ms.is_finite() && ms > 0.0 => {
                Ok(Objective::ThroughputUnderSlo {
                    slo_ms: ms,
                    latency,
                })
            }
            ("throughput-under-slo", Some(ms)) => Err(BenchError::InvalidArgument(format!(
                "--slo-ms must be a positive number of milliseconds, got {ms}"
            ))),
            ("throughput-under-slo", None) => Err(BenchError::InvalidArgument(
                "--objective throughput-under-slo needs --slo-ms".into(),
            )),
            (other, _) => Err(BenchError::InvalidArgument(format!(
                "--objective: `{other}` is not an objective (throughput, throughput-under-slo)"
            ))),
        }
    }

    /// The latency statistic it uses.
    pub fn latency(&self) -> LatencyStat {
        match *self {
            Objective::Throughput { latency } | Objective::ThroughputUnderSlo { latency, .. } => {
                latency
            }
        }
    }

    /// Whether a run is admissible.
    pub fn admits(&self, f: &OfflineFigures) -> bool {
        match *self {
            Objective::Throughput { .. } => true,
            Objective::ThroughputUnderSlo { slo_ms, latency } => latency.of(f) <= slo_ms,
        }
    }
}

/// What one configuration measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneResult {
    /// The timed run.
    pub figures: OfflineFigures,
    /// KV blocks the engine got.
    pub kv_num_blocks: usize,
    /// Bytes of the KV cache.
    pub kv_total_bytes: u64,
    /// Memory the engine used (device allocations on a GPU, weights + KV on the CPU).
    pub memory_used_bytes: u64,
    /// Seconds to load the model.
    pub load_time_s: f64,
}

/// The engine configuration of `point` on top of `base` (model, device, budget, seed).
///
/// # Errors
/// [`BenchError::InvalidArgument`] for a dtype the engine does not know.
pub fn engine_config(base: &EngineConfig, point: &TunePoint) -> Result<EngineConfig> {
    let dtype = parse_dtype(&point.dtype)
        .map_err(|e| BenchError::InvalidArgument(format!("--dtype: {e}")))?;
    Ok(EngineConfig {
        gpu_memory_utilization: point.gpu_memory_utilization,
        max_num_batched_tokens: point.max_num_batched_tokens,
        max_num_seqs: point.max_num_seqs,
        dtype,
        block_size: point.block_size,
        ..base.clone()
    })
}

/// Builds a fresh engine for `point` and runs `workload` on it.
///
/// # Errors
/// Engine construction errors (a KV cache too small for one sequence is an out-of-memory
/// error) and [`run_offline`]'s.
pub fn measure_point(
    base: &EngineConfig,
    workload: &OfflineWorkload,
    point: &TunePoint,
) -> Result<TuneResult> {
    let mut engine = Engine::new(engine_config(base, point)?)?;
    let figures = run_offline(&mut engine, workload)?;
    let kv = engine.kv_cache_info();
    Ok(TuneResult {
        figures,
        kv_num_blocks: kv.num_blocks,
        kv_total_bytes: kv.total_bytes,
        memory_used_bytes: engine.memory().used_bytes(),
        load_time_s: engine.load_time().as_secs_f64(),
    })
}

/// A configuration with its figures, as the report names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneChoice {
    /// The point's key.
    pub key: String,
    /// The configuration.
    pub point: TunePoint,
    /// Output tokens per second.
    pub throughput_tokens_per_sec: f64,
    /// The objective's latency statistic, ms.
    pub latency_ms: f64,
}

/// What a tuning run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneReport {
    /// The objective.
    pub objective: Objective,
    /// The best admissible configuration: highest throughput; ties go to the lower latency,
    /// then to the earlier point of the grid. `None` when no configuration ran or none met
    /// the SLO.
    pub best: Option<TuneChoice>,
    /// The configurations no other beats in both throughput and latency, by latency.
    pub pareto_front: Vec<TuneChoice>,
    /// Configurations that ran.
    pub num_ok: usize,
    /// Configurations that ran out of memory.
    pub num_out_of_memory: usize,
    /// Configurations that failed otherwise.
    pub num_error: usize,
    /// Things a reader should know (e.g. a setting the device ignores).
    pub notes: Vec<String>,
}

/// The best configuration and the Pareto front of `records` (in grid order) under
/// `objective`; `device` adds the note about settings the CPU ignores.
pub fn summarize(
    records: &[PointRecord<TunePoint, TuneResult>],
    objective: Objective,
    device: DeviceSpec,
) -> TuneReport {
    let stat = objective.latency();
    let ok: Vec<(&PointRecord<TunePoint, TuneResult>, &TuneResult)> = records
        .iter()
        .filter_map(|r| r.ok_result().map(|res| (r, res)))
        .collect();
    let choice = |r: &PointRecord<TunePoint, TuneResult>, res: &TuneResult| TuneChoice {
        key: r.key.clone(),
        point: r.point.clone(),
        throughput_tokens_per_sec: res.figures.throughput_tokens_per_sec,
        latency_ms: stat.of(&res.figures),
    };
    let mut best: Option<TuneChoice> = None;
    for (r, res) in ok.iter().filter(|(_, res)| objective.admits(&res.figures)) {
        let c = choice(r, res);
        let better = match &best {
            None => true,
            Some(b) => {
                c.throughput_tokens_per_sec > b.throughput_tokens_per_sec
                    || (c.throughput_tokens_per_sec == b.throughput_tokens_per_sec
                        && c.latency_ms < b.latency_ms)
            }
        };
        if better {
            best = Some(c);
        }
    }
    let trade: Vec<TradeOff> = ok
        .iter()
        .map(|(_, res)| TradeOff {
            throughput: res.figures.throughput_tokens_per_sec,
            latency: stat.of(&res.figures),
        })
        .collect();
    let pareto = pareto_front(&trade)
        .into_iter()
        .map(|i| choice(ok[i].0, ok[i].1))
        .collect();
    let count = |s: PointStatus| records.iter().filter(|r| r.status == s).count();
    let mut notes = Vec::new();
    let gmus: std::collections::BTreeSet<String> = records
        .iter()
        .map(|r| r.point.gpu_memory_utilization.to_string())
        .collect();
    if device == DeviceSpec::Cpu && gmus.len() > 1 {
        notes.push(
            "on the CPU the engine ignores gpu_memory_utilization (the KV cache is the --kv-cache-gb budget): configurations that differ only in it are the same configuration, measured again".into(),
        );
    }
    if let (None, Objective::ThroughputUnderSlo { slo_ms, latency }) = (&best, objective) {
        if !ok.is_empty() {
            notes.push(format!(
                "no configuration met the SLO ({} request latency <= {slo_ms} ms)",
                latency.as_str()
            ));
        }
    }
    TuneReport {
        objective,
        best,
        pareto_front: pareto,
        num_ok: count(PointStatus::Ok),
        num_out_of_memory: count(PointStatus::OutOfMemory),
        num_error: count(PointStatus::Error),
        notes,
    }
}

#[cfg(test)]
pub(crate) mod tests;
