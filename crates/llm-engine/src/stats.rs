//! Engine statistics: what one scheduler step did ([`StepStats`]) and running totals
//! ([`EngineStats`]), vLLM's `SchedulerStats` in spirit.

use serde::Serialize;

/// What one scheduling step did, and the state it left.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepStats {
    /// Requests in the running set after scheduling.
    pub num_running: usize,
    /// Requests waiting (new or preempted) after scheduling.
    pub num_waiting: usize,
    /// Sequences in this step's batch.
    pub num_scheduled_seqs: usize,
    /// Tokens in this step's batch (prefill + decode).
    pub num_scheduled_tokens: usize,
    /// Of those, prompt (or recompute) tokens.
    pub num_prefill_tokens: usize,
    /// Of those, decode tokens (one per decoding sequence).
    pub num_decode_tokens: usize,
    /// Requests preempted in this step.
    pub num_preempted: usize,
    /// Fraction of KV blocks in use after scheduling, in [0, 1].
    pub kv_usage: f64,
    /// Free KV blocks after scheduling.
    pub num_free_blocks: usize,
    /// Prefix-cache block lookups so far.
    pub prefix_cache_queries: u64,
    /// Prefix-cache lookups that hit so far.
    pub prefix_cache_hits: u64,
}

/// Totals over an engine's life.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EngineStats {
    /// Steps run (forward passes).
    pub num_steps: u64,
    /// Requests added.
    pub num_requests: u64,
    /// Requests finished (including aborted ones).
    pub num_finished: u64,
    /// Prompt and recompute tokens run through the model.
    pub num_prefill_tokens: u64,
    /// Decode tokens run through the model.
    pub num_decode_tokens: u64,
    /// Tokens generated.
    pub num_generated_tokens: u64,
    /// Preemptions (each one makes a request recompute its tokens later).
    pub num_preemptions: u64,
    /// Prompt tokens served from the prefix cache.
    pub num_cached_prompt_tokens: u64,
    /// Highest KV usage seen after a scheduling step, in [0, 1].
    pub peak_kv_usage: f64,
    /// Most sequences in one batch.
    pub max_batch_seqs: usize,
    /// Prefix-cache block lookups.
    pub prefix_cache_queries: u64,
    /// Prefix-cache lookups that hit.
    pub prefix_cache_hits: u64,
    /// Where the engine's own thread spent the steps' time.
    pub host: HostTimes,
    /// Decode steps run by replaying (or capturing) a CUDA graph.
    pub decode_graph_steps: u64,
}

/// Seconds the engine's thread spent in each phase of its steps, summed over the steps. On a
/// GPU the forward pass only enqueues kernels, so `forward_s` is the host's launch cost and
/// `sample_s` includes the wait for the GPU to finish the step; `schedule_s + update_s` (and
/// the start of `forward_s`, before its first kernel) is time the GPU waits on the host
/// between two steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HostTimes {
    /// Scheduling (queues, KV blocks, prefix cache) and block copies.
    pub schedule_s: f64,
    /// The model's forward pass as the host sees it (batch layout, uploads, kernel launches).
    pub forward_s: f64,
    /// Sampling, including the device-to-host copy of the tokens or logits.
    pub sample_s: f64,
    /// Updating the requests with their new tokens, detokenizing, building the outputs.
    pub update_s: f64,
}

impl HostTimes {
    /// The phase-wise difference `self - earlier` (the time spent between two snapshots).
    pub fn since(&self, earlier: &HostTimes) -> HostTimes {
        HostTimes {
            schedule_s: self.schedule_s - earlier.schedule_s,
            forward_s: self.forward_s - earlier.forward_s,
            sample_s: self.sample_s - earlier.sample_s,
            update_s: self.update_s - earlier.update_s,
        }
    }

    /// Each phase divided by `steps`, in milliseconds (all zero for no steps).
    pub fn per_step_ms(&self, steps: u64) -> HostStepMs {
        let k = if steps == 0 { 0.0 } else { 1e3 / steps as f64 };
        HostStepMs {
            schedule_ms: self.schedule_s * k,
            forward_ms: self.forward_s * k,
            sample_ms: self.sample_s * k,
            update_ms: self.update_s * k,
        }
    }
}

/// [`HostTimes`] per step, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HostStepMs {
    /// Scheduling and block copies.
    pub schedule_ms: f64,
    /// The forward pass as the host sees it.
    pub forward_ms: f64,
    /// Sampling, including the wait for the device.
    pub sample_ms: f64,
    /// Request updates, detokenizing, outputs.
    pub update_ms: f64,
}

impl EngineStats {
    /// Adds one step's figures.
    pub fn record_step(&mut self, step: &StepStats) {
        self.num_steps += 1;
        self.num_prefill_tokens += step.num_prefill_tokens as u64;
        self.num_decode_tokens += step.num_decode_tokens as u64;
        self.num_preemptions += step.num_preempted as u64;
        self.peak_kv_usage = self.peak_kv_usage.max(step.kv_usage);
        self.max_batch_seqs = self.max_batch_seqs.max(step.num_scheduled_seqs);
        self.prefix_cache_queries = step.prefix_cache_queries;
        self.prefix_cache_hits = step.prefix_cache_hits;
    }

    /// Fraction of prefix-cache lookups that hit (0 when there were none).
    pub fn prefix_cache_hit_rate(&self) -> f64 {
        if self.prefix_cache_queries == 0 {
            0.0
        } else {
            self.prefix_cache_hits as f64 / self.prefix_cache_queries as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_accumulate() {
        let mut t = EngineStats::default();
        let s = StepStats {
            num_scheduled_seqs: 3,
            num_prefill_tokens: 10,
            num_decode_tokens: 2,
            num_preempted: 1,
            kv_usage: 0.5,
            prefix_cache_queries: 4,
            prefix_cache_hits: 1,
            ..StepStats::default()
        };
        t.record_step(&s);
        t.record_step(&StepStats {
            kv_usage: 0.25,
            ..s.clone()
        });
        assert_eq!(t.num_steps, 2);
        let later = HostTimes {
            schedule_s: 0.5,
            forward_s: 2.0,
            sample_s: 1.0,
            update_s: 0.25,
        };
        let per_step = later.since(&HostTimes::default()).per_step_ms(4);
        assert_eq!(
            (
                per_step.schedule_ms,
                per_step.forward_ms,
                per_step.sample_ms,
                per_step.update_ms
            ),
            (125.0, 500.0, 250.0, 62.5)
        );
        assert_eq!(later.per_step_ms(0), HostStepMs::default());
        assert_eq!(t.num_prefill_tokens, 20);
        assert_eq!(t.num_preemptions, 2);
        assert!((t.peak_kv_usage - 0.5).abs() < 1e-12);
        assert!((t.prefix_cache_hit_rate() - 0.25).abs() < 1e-12);
    }
}
