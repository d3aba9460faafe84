//! What the engine reports: per-step [`RequestOutput`]s and, when a request finishes, its
//! [`CompletedRequest`] with the per-token timestamps benchmarks need (TTFT, TPOT, E2E).
//!
//! Times are seconds since the engine's epoch (the moment [`crate::engine::Engine::new`]
//! returned), on the monotonic clock.

use serde::Serialize;

use crate::request::{FinishReason, RequestId};

/// When things happened to one request, in seconds since the engine's epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestTimings {
    /// When it was added.
    pub arrival_s: f64,
    /// When it was first scheduled (`None` until then).
    pub first_scheduled_s: Option<f64>,
    /// When each output token was produced.
    pub token_times_s: Vec<f64>,
}

impl RequestTimings {
    /// Time to first token: first token time − arrival.
    pub fn ttft_s(&self) -> Option<f64> {
        self.token_times_s.first().map(|t| t - self.arrival_s)
    }

    /// End-to-end latency: last token time − arrival.
    pub fn e2e_s(&self) -> Option<f64> {
        self.token_times_s.last().map(|t| t - self.arrival_s)
    }

    /// Time per output token after the first: (last − first) / (tokens − 1); `None` for
    /// fewer than two tokens.
    pub fn tpot_s(&self) -> Option<f64> {
        let n = self.token_times_s.len();
        if n < 2 {
            return None;
        }
        Some((self.token_times_s[n - 1] - self.token_times_s[0]) / (n - 1) as f64)
    }

    /// Inter-token latencies: the gaps between consecutive tokens.
    pub fn inter_token_latencies_s(&self) -> Vec<f64> {
        self.token_times_s.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Time spent waiting before the first schedule.
    pub fn queue_time_s(&self) -> Option<f64> {
        self.first_scheduled_s.map(|t| t - self.arrival_s)
    }
}

/// One request's progress in one step (vLLM's `RequestOutput`, cumulative).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestOutput {
    /// The request.
    pub request_id: RequestId,
    /// Tokens produced in this step (none for a prefill chunk that is not the last).
    pub new_token_ids: Vec<u32>,
    /// All tokens produced so far.
    pub output_token_ids: Vec<u32>,
    /// The text of the output so far, when the model has a tokenizer and the request asked
    /// for detokenization (cut before a stop string).
    pub text: Option<String>,
    /// Set once the request is done.
    pub finish_reason: Option<FinishReason>,
    /// Arrival, first schedule and every output token's time so far.
    pub timings: RequestTimings,
    /// The full record, on the request's last output only.
    pub completed: Option<Box<CompletedRequest>>,
}

impl RequestOutput {
    /// Whether the request is done.
    pub fn finished(&self) -> bool {
        self.finish_reason.is_some()
    }
}

/// A finished request: everything about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletedRequest {
    /// The request.
    pub request_id: RequestId,
    /// Its prompt's token ids.
    pub prompt_token_ids: Vec<u32>,
    /// The generated token ids.
    pub output_token_ids: Vec<u32>,
    /// The generated text (see [`RequestOutput::text`]).
    pub text: Option<String>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Prompt tokens served from the prefix cache.
    pub num_cached_prompt_tokens: usize,
    /// How many times it was preempted.
    pub num_preemptions: usize,
    /// Its timestamps.
    pub timings: RequestTimings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_figures() {
        let t = RequestTimings {
            arrival_s: 1.0,
            first_scheduled_s: Some(1.5),
            token_times_s: vec![2.0, 2.5, 3.0, 4.0],
        };
        assert_eq!(t.ttft_s(), Some(1.0));
        assert_eq!(t.e2e_s(), Some(3.0));
        assert_eq!(t.tpot_s(), Some(2.0 / 3.0));
        assert_eq!(t.inter_token_latencies_s(), vec![0.5, 0.5, 1.0]);
        assert_eq!(t.queue_time_s(), Some(0.5));
        let one = RequestTimings {
            token_times_s: vec![2.0],
            ..t
        };
        assert_eq!(one.tpot_s(), None);
    }
}
