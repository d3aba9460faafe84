//! `metrics`: turn raw timings into the figures gpubench reports, and write them safely.
//!
//! Statistics over samples, LLM serving metrics with vLLM's definitions (TTFT, TPOT, ITL,
//! E2EL, throughput, goodput), a background GPU sampler for power, energy, clocks and
//! throttling, the run manifest every result carries, and atomic JSON/CSV/Markdown writers.
//! Everything is plain Rust and works on a machine without a GPU (the sampler then records
//! nothing and says why).
//!
//! | Concept | What it is |
//! |---|---|
//! | [`Summary`] | count, mean, **sample** stddev (n − 1) and population stddev, min, max, median, CV, percentiles (numpy's linear interpolation) |
//! | [`percentile`] | one percentile of sorted samples |
//! | [`serving::RequestTimeline`] | one request: arrival and per-token times |
//! | [`serving::compute`] → [`serving::ServingMetrics`] | TTFT / TPOT / ITL / E2EL in ms, throughputs, goodput against an [`serving::Slo`]; serialises with vLLM's keys (`mean_ttft_ms`, `p99_itl_ms`, ...) |
//! | [`sampler::GpuSampler`] → [`sampler::GpuTrace`] | NVML every 100 ms on a thread: power, energy counter, clocks, temperature, utilisation, throttle reasons; summary with energy in J |
//! | [`manifest::RunManifest`] | timestamp, host, GPUs, driver, gpubench version, git commit, command line |
//! | [`writers`] | `write_json_atomic`, `write_csv_atomic`, `write_records_csv_atomic`, `write_text_atomic`, `markdown_table` |
//! | [`MetricsError`] | the crate's one error type |
//!
//! The metric definitions are in the [`serving`] module docs and in `docs/METRICS.md`.
//!
//! ```
//! use std::time::Duration;
//! use metrics::serving::{compute, RequestTimeline, Slo};
//! use metrics::{sampler::GpuSampler, Summary, DEFAULT_PERCENTILES};
//!
//! // Plain statistics (sample stddev, numpy-style percentiles).
//! let s = Summary::from_samples(&[12.0, 15.0, 11.0, 14.0, 13.0])?;
//! assert_eq!((s.mean, s.median), (13.0, 13.0));
//! assert!((s.percentile(90.0).unwrap() - 14.6).abs() < 1e-9);
//!
//! // Serving metrics from two requests (times in seconds).
//! let sampler = GpuSampler::start(0, Duration::from_millis(100)); // no GPU: disabled, not an error
//! let requests = [
//!     RequestTimeline::new(0.0, vec![0.120, 0.150, 0.180], 32), // TTFT 120 ms, TPOT 30 ms
//!     RequestTimeline::new(0.1, vec![0.300, 0.340], 16),        // TTFT 200 ms, TPOT 40 ms
//! ];
//! let slo: Slo = "ttft:150,tpot:50".parse()?;
//! let m = compute(&requests, 0.5, &DEFAULT_PERCENTILES, Some(&slo))?;
//! let trace = sampler.stop();
//! assert_eq!(m.completed, 2);
//! assert!((m.ttft_ms.as_ref().unwrap().mean - 160.0).abs() < 1e-9);
//! assert!((m.request_goodput.unwrap() - 2.0).abs() < 1e-9); // 1 good request / 0.5 s
//!
//! // Results use vLLM's key names.
//! let json = serde_json::to_value(&m).unwrap();
//! assert!(json.get("p99_ttft_ms").is_some() && json.get("mean_tpot_ms").is_some());
//! if let Some(reason) = &trace.unavailable {
//!     println!("no GPU trace: {reason}");
//! }
//!
//! // Markdown for a report.
//! let table = metrics::writers::markdown_table(&["metric", "ms"], &[vec!["TTFT".into(), "160".into()]]);
//! assert!(table.starts_with("| metric |"));
//! # Ok::<(), metrics::MetricsError>(())
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod manifest;
pub mod sampler;
pub mod serving;
pub mod stats;
pub mod writers;

pub use error::{MetricsError, Result};
pub use manifest::RunManifest;
pub use sampler::{GpuSample, GpuSampler, GpuTrace, GpuTraceSummary};
pub use serving::{RequestTimeline, ServingMetrics, Slo};
pub use stats::{percentile, Percentile, Summary, DEFAULT_PERCENTILES};
pub use writers::{
    markdown_table, write_csv_atomic, write_json_atomic, write_records_csv_atomic,
    write_text_atomic,
};
