//! Serving metrics from request timelines, with vLLM's definitions
//! (`vllm/benchmarks/serve.py`, `calculate_metrics`).
//!
//! Each request is a [`RequestTimeline`]: when it arrived, and when each output token
//! was produced (all in seconds on one monotonic clock). [`compute`] turns a slice of
//! them into [`ServingMetrics`].
//!
//! # Definitions
//!
//! | metric | definition | pooled over |
//! |---|---|---|
//! | **TTFT** (time to first token) | `token_times_s[0] − arrival_s` (queueing + prefill + first decode) | completed requests |
//! | **TPOT** (time per output token, excl. the first) | per request `(E2E − TTFT) / (output_tokens − 1)` | completed requests with `output_tokens > 1` only |
//! | **ITL** (inter-token latency) | every gap `token_times_s[i+1] − token_times_s[i]` | all gaps of all requests, pooled |
//! | **E2EL** (end-to-end latency) | `token_times_s[last] − arrival_s` | completed requests |
//! | queue (gpubench extra) | `first_scheduled_s − arrival_s` | requests that report `first_scheduled_s` |
//! | request throughput | `completed / duration_s` | |
//! | output token throughput | `Σ output_tokens / duration_s` | completed requests |
//! | total token throughput | `Σ (prompt_tokens + output_tokens) / duration_s` | completed requests |
//! | **goodput** | `good / duration_s`, where a request is *good* if it meets every SLO that is set: `TTFT ≤ ttft`, `TPOT ≤ tpot`, `E2EL ≤ e2el` (ms). A request with one output token has TPOT 0 for this test, as in vLLM | completed requests |
//! | peak output tokens/s | most tokens produced in one whole-second bucket counted from the first arrival (vLLM's `max_output_tokens_per_s`) | |
//! | peak concurrent requests | most requests in flight at once, intervals `[arrival, last token)` | |
//!
//! Latencies are reported in **milliseconds** as a [`Summary`] each (mean, median, sample
//! and population stddev, min, max, requested percentiles with numpy's linear
//! interpolation). TPOT is the mean over requests of each request's own average, which
//! weights every request equally; ITL pools every gap, which weights long requests more —
//! the two differ on purpose, as in vLLM.
//!
//! A request with no output token (no entry in `token_times_s`) counts as **failed**: it
//! is excluded from every latency and throughput figure and counted in `failed`.
//!
//! # Result keys
//!
//! [`ServingMetrics`] serialises to a flat map with vLLM's key names, so a result file
//! reads like `vllm bench serve --save-result`: `request_throughput`, `request_goodput`,
//! `output_throughput`, `total_token_throughput`, and per metric `m` in `ttft`, `tpot`,
//! `itl`, `e2el` (and `queue`): `mean_m_ms`, `median_m_ms`, `std_m_ms`, `p99_m_ms` (one key
//! per requested percentile; `p99.9_m_ms` for fractional ones). `std_m_ms` is the
//! **population** stddev, exactly as vLLM (numpy `np.std`); gpubench adds
//! `sample_std_m_ms`, `min_m_ms`, `max_m_ms` and `count_m`. A metric with no samples
//! (e.g. TPOT when every request produced one token) is `null` where vLLM writes `0`.
//!
//! # Energy
//!
//! Energy per token is not computed here: pair these figures with a
//! [`GpuTrace`](crate::sampler::GpuTrace) over the same window, whose
//! [`energy_j`](crate::sampler::GpuTraceSummary::energy_j) comes from NVML's total-energy
//! counter (mJ) delta, or the trapezoidal integral of power when the counter is not
//! supported. Joules per output token = `energy_j / total_output_tokens`.

mod compute;
mod record;
mod slo;

pub use compute::{compute, ServingMetrics};
pub use slo::Slo;

#[cfg(doc)]
use crate::stats::Summary;

use serde::{Deserialize, Serialize};

/// One request as the engine saw it. All times in seconds on one monotonic clock
/// (e.g. seconds since the benchmark started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestTimeline {
    /// When the request arrived (was submitted).
    pub arrival_s: f64,
    /// When each output token (or streamed chunk) was produced, ascending. Empty for a
    /// failed request.
    pub token_times_s: Vec<f64>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Output length in tokens. Normally `token_times_s.len()`; may be larger when a
    /// stream bundles several tokens into one chunk, never smaller.
    pub output_tokens: usize,
    /// When the scheduler first ran the request (start of prefill), if known.
    pub first_scheduled_s: Option<f64>,
}

impl RequestTimeline {
    /// A request that produced one output token per entry of `token_times_s`.
    pub fn new(arrival_s: f64, token_times_s: Vec<f64>, prompt_tokens: usize) -> Self {
        let output_tokens = token_times_s.len();
        RequestTimeline {
            arrival_s,
            token_times_s,
            prompt_tokens,
            output_tokens,
            first_scheduled_s: None,
        }
    }
}
