//! The one loop every mode runs: requests enter the engine at their arrival times (at once
//! for offline and latency runs), the engine steps continuously, and each step's window and
//! each finished request's timeline are recorded.

use std::time::Duration;

use llm_engine::{
    CompletedRequest, Engine, EngineError, RequestId, RequestOutputKind, SamplingParams,
};
use metrics::serving::RequestTimeline;
use serde::{Deserialize, Serialize};

use crate::dataset::RequestSpec;
use crate::energy::StepWindow;
use crate::error::{BenchError, Result};

/// Sampling shared by every request of a run; each request's `max_tokens` is its own
/// `output_len`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingTemplate {
    /// Temperature (0 = greedy, the seed's setting).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0 = off, vLLM's -1).
    #[serde(default)]
    pub top_k: usize,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass (1 = off).
    #[serde(default = "no_top_p")]
    pub top_p: f32,
    /// Generate exactly `output_len` tokens, ignoring EOS (vLLM's benchmarks do).
    pub ignore_eos: bool,
}

impl Default for SamplingTemplate {
    fn default() -> Self {
        SamplingTemplate {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            ignore_eos: true,
        }
    }
}

fn no_top_p() -> f32 {
    1.0
}

impl SamplingTemplate {
    /// The engine's parameters for one request of `output_len` tokens.
    pub fn params(&self, output_len: usize) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            max_tokens: output_len,
            ignore_eos: self.ignore_eos,
            detokenize: false,
            seed: None,
            // The driver reads only finished requests: no per-step copies of every output.
            output_kind: RequestOutputKind::FinalOnly,
            ..SamplingParams::default()
        }
    }
}

/// A finished request and when it arrived (engine clock, seconds).
#[derive(Debug, Clone)]
pub struct FinishedRequest {
    /// What the engine returned.
    pub completed: CompletedRequest,
    /// Its arrival: the scheduled time, or when a `max_concurrency` slot freed for it.
    pub arrival_s: f64,
}

/// What [`drive`] recorded.
#[derive(Debug, Clone)]
pub struct DriveOutcome {
    /// Finished requests in workload order.
    pub requests: Vec<FinishedRequest>,
    /// Every engine step, in order.
    pub windows: Vec<StepWindow>,
    /// Engine-clock start of the run (arrival time 0).
    pub start_s: f64,
    /// Engine-clock end of the run (last request finished).
    pub end_s: f64,
}

impl DriveOutcome {
    /// Seconds from the start to the last finished request.
    pub fn duration_s(&self) -> f64 {
        (self.end_s - self.start_s).max(f64::MIN_POSITIVE)
    }

    /// Output tokens of all requests.
    pub fn output_tokens(&self) -> usize {
        self.requests
            .iter()
            .map(|r| r.completed.output_token_ids.len())
            .sum()
    }

    /// Prompt tokens of all requests.
    pub fn input_tokens(&self) -> usize {
        self.requests
            .iter()
            .map(|r| r.completed.prompt_token_ids.len())
            .sum()
    }

    /// Each request's timeline, seconds from the start.
    pub fn timelines(&self) -> Vec<RequestTimeline> {
        self.requests
            .iter()
            .map(|r| {
                let c = &r.completed;
                let arrival = r.arrival_s - self.start_s;
                let mut t = RequestTimeline::new(
                    arrival,
                    c.timings
                        .token_times_s
                        .iter()
                        .map(|x| x - self.start_s)
                        .collect(),
                    c.prompt_token_ids.len(),
                );
                t.first_scheduled_s = c
                    .timings
                    .first_scheduled_s
                    .map(|x| (x - self.start_s).max(arrival));
                t
            })
            .collect()
    }
}

/// Checks every request against the engine before any is added: its prompt encodes, is not
/// empty, and fits `max_model_len`.
///
/// # Errors
/// The engine's error for the first bad request.
pub fn validate(
    engine: &Engine,
    requests: &[RequestSpec],
    template: &SamplingTemplate,
) -> Result<()> {
    for r in requests {
        template.params(r.output_len).validate()?;
        let ids = engine.encode(&r.prompt)?;
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt.into());
        }
        if ids.len() > engine.max_model_len() {
            return Err(EngineError::PromptTooLong {
                len: ids.len(),
                max_model_len: engine.max_model_len(),
            }
            .into());
        }
    }
    Ok(())
}

/// Runs `requests` through `engine`: request `i` enters at `arrivals[i]` seconds after the
/// start (ascending), at most `max_concurrency` in flight; the engine steps whenever it has
/// work and the loop sleeps until the next arrival when it has none. `progress(finished,
/// total)` is called as requests finish.
///
/// # Errors
/// [`BenchError::InvalidArgument`] when `arrivals` and `requests` differ in length or
/// `max_concurrency` is 0; the engine's errors (nothing is added if a request is invalid).
pub fn drive(
    engine: &mut Engine,
    requests: &[RequestSpec],
    arrivals: &[f64],
    max_concurrency: Option<usize>,
    template: &SamplingTemplate,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<DriveOutcome> {
    if arrivals.len() != requests.len() {
        return Err(BenchError::InvalidArgument(format!(
            "{} arrival times for {} requests",
            arrivals.len(),
            requests.len()
        )));
    }
    if max_concurrency == Some(0) {
        return Err(BenchError::InvalidArgument(
            "--max-concurrency must be at least 1".into(),
        ));
    }
    validate(engine, requests, template)?;
    let n = requests.len();
    let start_s = engine.now_s();
    let mut slots: std::collections::HashMap<RequestId, (usize, f64)> =
        std::collections::HashMap::with_capacity(n);
    let mut done: Vec<Option<FinishedRequest>> = vec![None; n];
    let mut windows = Vec::new();
    let (mut next, mut finished) = (0usize, 0usize);
    // Whether request `next` was due while every concurrency slot was taken.
    let mut held_back = false;
    while finished < n {
        let now = engine.now_s() - start_s;
        while next < n && arrivals[next] <= now {
            if max_concurrency.is_some_and(|c| slots.len() >= c) {
                held_back = true;
                break;
            }
            let arrival = if held_back {
                engine.now_s()
            } else {
                start_s + arrivals[next]
            };
            held_back = false;
            let r = &requests[next];
            let id = engine.add_request(r.prompt.clone(), template.params(r.output_len))?;
            slots.insert(id, (next, arrival));
            next += 1;
        }
        if !engine.has_unfinished_requests() {
            if next < n {
                let wait = start_s + arrivals[next] - engine.now_s();
                if wait > 0.0 {
                    std::thread::sleep(Duration::from_secs_f64(wait));
                }
                continue;
            }
            // Nothing in flight and nothing left to add, yet not all finished: a bug.
            return Err(EngineError::Stalled {
                waiting: n - finished,
                running: 0,
            }
            .into());
        }
        let t0 = engine.now_s();
        let outputs = engine.step()?;
        let t1 = engine.now_s();
        let st = engine.last_step_stats();
        windows.push(StepWindow {
            start_s: t0,
            end_s: t1,
            prefill_tokens: st.num_prefill_tokens,
            decode_tokens: st.num_decode_tokens,
        });
        let before = finished;
        for o in outputs {
            if let Some(c) = o.completed {
                if let Some((i, arrival_s)) = slots.remove(&o.request_id) {
                    done[i] = Some(FinishedRequest {
                        completed: *c,
                        arrival_s,
                    });
                    finished += 1;
                }
            }
        }
        if finished != before {
            progress(finished, n);
        }
    }
    let end_s = engine.now_s();
    let requests = done
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.ok_or_else(|| {
                BenchError::Engine(EngineError::Stalled {
                    waiting: n - i,
                    running: 0,
                })
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DriveOutcome {
        requests,
        windows,
        start_s,
        end_s,
    })
}
