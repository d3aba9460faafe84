//! One timed offline run (all prompts added at once, continuous batching) reduced to the
//! figures `config-tune` and `compare-models` rank by: throughput and request latency.

use std::time::Instant;

use llm_engine::engine::workload;
use llm_engine::{Engine, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// The requests of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineWorkload {
    /// Requests, all added at once.
    pub num_prompts: usize,
    /// Prompt tokens per request (uniform random token ids).
    pub input_len: usize,
    /// Output tokens per request (end-of-sequence ignored).
    pub output_len: usize,
    /// Untimed requests run first (other random tokens); 0 for none.
    pub warmup_prompts: usize,
    /// Seed of the prompts.
    pub seed: u64,
}

impl OfflineWorkload {
    /// Checks the counts and lengths.
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] naming the flag of a zero value.
    pub fn validate(&self) -> Result<()> {
        for (flag, v) in [
            ("--num-prompts", self.num_prompts),
            ("--input-len", self.input_len),
            ("--output-len", self.output_len),
        ] {
            if v == 0 {
                return Err(BenchError::InvalidArgument(format!(
                    "{flag} must be at least 1, got 0"
                )));
            }
        }
        Ok(())
    }

    /// Tokens of one sequence at its longest.
    pub fn seq_len(&self) -> usize {
        self.input_len + self.output_len
    }
}

/// What one offline run measured. Latencies are per request, from its arrival (all arrive
/// at the start) to its first / last token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineFigures {
    /// Requests run.
    pub num_prompts: usize,
    /// Output tokens generated.
    pub output_tokens: usize,
    /// Prompt tokens.
    pub input_tokens: usize,
    /// Wall time of the run, s.
    pub elapsed_s: f64,
    /// Output tokens / elapsed (the seed's `throughput_tokens_per_sec`).
    pub throughput_tokens_per_sec: f64,
    /// Prompt + output tokens / elapsed.
    pub total_token_throughput: f64,
    /// Elapsed / requests (the seed's `latency_per_request_ms`).
    pub latency_per_request_ms: f64,
    /// Mean end-to-end request latency, ms.
    pub mean_e2el_ms: f64,
    /// Median end-to-end request latency, ms.
    pub median_e2el_ms: f64,
    /// p99 end-to-end request latency, ms.
    pub p99_e2el_ms: f64,
    /// Mean time to first token, ms.
    pub mean_ttft_ms: f64,
    /// p99 time to first token, ms.
    pub p99_ttft_ms: f64,
    /// Preemptions during the run.
    pub preemptions: u64,
}

/// Warms up, then runs `workload` on `engine` and measures it.
///
/// # Errors
/// [`BenchError::InvalidArgument`] for a bad workload or a sequence longer than the engine's
/// `max_model_len`; engine errors (out-of-memory ones included).
pub fn run_offline(engine: &mut Engine, workload: &OfflineWorkload) -> Result<OfflineFigures> {
    workload.validate()?;
    if workload.seq_len() > engine.max_model_len() {
        return Err(BenchError::InvalidArgument(format!(
            "input + output length {} is longer than max_model_len {}",
            workload.seq_len(),
            engine.max_model_len()
        )));
    }
    let cfg = engine.model_config();
    let mut exclude = cfg.eos_token_ids.clone();
    exclude.extend(cfg.bos_token_id);
    let vocab = cfg.vocab_size;
    let prompts = |n: usize, salt: u64| {
        workload::random_token_prompts(
            n,
            workload.input_len,
            vocab,
            &exclude,
            workload.seed.wrapping_add(salt),
        )
    };
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(workload.output_len)
    };
    if workload.warmup_prompts > 0 {
        engine.generate(&prompts(workload.warmup_prompts, 2)?, &params)?;
    }
    let timed = prompts(workload.num_prompts, 1)?;
    let preempt_before = engine.stats().num_preemptions;
    let start = Instant::now();
    let done = engine.generate(&timed, &params)?;
    let elapsed_s = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let output_tokens: usize = done.iter().map(|d| d.output_token_ids.len()).sum();
    let input_tokens: usize = done.iter().map(|d| d.prompt_token_ids.len()).sum();
    let e2el: Vec<f64> = done
        .iter()
        .filter_map(|d| d.timings.e2e_s())
        .map(|s| s * 1e3)
        .collect();
    let ttft: Vec<f64> = done
        .iter()
        .filter_map(|d| d.timings.ttft_s())
        .map(|s| s * 1e3)
        .collect();
    let e2el = metrics::Summary::from_samples(&e2el)?;
    let ttft = metrics::Summary::from_samples(&ttft)?;
    Ok(OfflineFigures {
        num_prompts: workload.num_prompts,
        output_tokens,
        input_tokens,
        elapsed_s,
        throughput_tokens_per_sec: output_tokens as f64 / elapsed_s,
        total_token_throughput: (output_tokens + input_tokens) as f64 / elapsed_s,
        latency_per_request_ms: elapsed_s * 1e3 / workload.num_prompts as f64,
        mean_e2el_ms: e2el.mean,
        median_e2el_ms: e2el.median,
        p99_e2el_ms: e2el.percentile(99.0).unwrap_or(e2el.max),
        mean_ttft_ms: ttft.mean,
        p99_ttft_ms: ttft.percentile(99.0).unwrap_or(ttft.max),
        preemptions: engine.stats().num_preemptions - preempt_before,
    })
}
