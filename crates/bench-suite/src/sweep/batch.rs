//! The batch-size sweep (`batch-sweep`, the seed's Exercise 5): for each batch size, one
//! batch of that many prompts run to completion, warmed up and then repeated; its throughput
//! and latency; the optimum; where memory ran out; the throughput-vs-latency curve.
//!
//! | figure | definition |
//! |---|---|
//! | `batch_latency_ms` | wall time of one batch, all its requests added at once until the last finishes (vLLM's `benchmark_latency`), over the timed iterations |
//! | `throughput_tokens_per_sec` | output tokens of one batch / mean batch latency (the seed's `total_tokens / elapsed`) |
//! | `latency_per_request_ms` | mean batch latency / batch size (the seed's `latency_ms`) |
//! | optimum | the highest throughput; ties go to the smaller batch |
//! | best under a latency cap | the highest throughput whose mean batch latency is at most the cap |
//!
//! One engine serves every point (same model, dtype, device); its `max_num_seqs` must be at
//! least the largest batch, or a batch would run in waves. A batch whose sequences need more
//! KV blocks than the cache has cannot run as one batch: it is recorded as out of memory
//! without running.

use std::time::Instant;

use llm_engine::engine::workload;
use llm_engine::{Engine, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::sweep::record::{PointRecord, PointStatus};
use crate::sweep::store::SweepPoint;

/// Percentiles reported for the batch latency (the latency mode's p10-p99).
pub const BATCH_LATENCY_PERCENTILES: [f64; 6] = [10.0, 25.0, 50.0, 75.0, 90.0, 99.0];

/// One point: a batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPoint {
    /// Prompts run at once.
    pub batch_size: usize,
}

impl SweepPoint for BatchPoint {
    fn key(&self) -> String {
        format!("batch-{}", self.batch_size)
    }
}

/// What every batch does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchWorkload {
    /// Prompt tokens per request (uniform random token ids, vLLM's random dataset).
    pub input_len: usize,
    /// Tokens generated per request (end-of-sequence ignored).
    pub output_len: usize,
    /// Untimed batches before the timed ones.
    pub warmup_iters: usize,
    /// Timed batches.
    pub iters: usize,
    /// Seed of the prompts.
    pub seed: u64,
}

impl BatchWorkload {
    /// Checks the lengths and counts.
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] naming the flag for a zero length or iteration count.
    pub fn validate(&self) -> Result<()> {
        for (flag, v) in [
            ("--input-len", self.input_len),
            ("--output-len", self.output_len),
            ("--iters", self.iters),
        ] {
            if v == 0 {
                return Err(BenchError::InvalidArgument(format!(
                    "{flag} must be at least 1, got 0"
                )));
            }
        }
        Ok(())
    }
}

/// What one batch size measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchPointResult {
    /// Prompts in the batch.
    pub batch_size: usize,
    /// Timed iterations.
    pub iterations: usize,
    /// Output tokens of one batch.
    pub output_tokens: usize,
    /// Output tokens / mean batch latency.
    pub throughput_tokens_per_sec: f64,
    /// Prompt + output tokens / mean batch latency.
    pub total_token_throughput: f64,
    /// Mean batch latency / batch size (the seed's `latency_ms`).
    pub latency_per_request_ms: f64,
    /// The batch latency over the timed iterations (p10-p99).
    pub batch_latency_ms: metrics::Summary,
    /// Mean time to first token over the requests of the last iteration.
    pub mean_ttft_ms: f64,
    /// Mean time per output token (after the first) over the requests of the last iteration.
    pub mean_tpot_ms: Option<f64>,
    /// Preemptions during the timed iterations (0 when the batch fits).
    pub preemptions: u64,
    /// KV blocks the batch needs at its longest.
    pub kv_blocks_needed: usize,
}

/// KV blocks `batch` sequences of `seq_len` tokens need at once.
pub fn kv_blocks_needed(batch: usize, seq_len: usize, block_size: usize) -> usize {
    batch.saturating_mul(seq_len.div_ceil(block_size.max(1)))
}

/// Runs one batch size on `engine`: a fit check, warm-up, then the timed batches.
///
/// # Errors
/// [`BenchError::OutOfMemory`] when the batch's sequences need more KV blocks than the cache
/// has; [`BenchError::InvalidArgument`] when the batch is larger than the engine's
/// `max_num_seqs` or a sequence longer than its `max_model_len`; engine errors.
pub fn measure_batch(
    engine: &mut Engine,
    workload: &BatchWorkload,
    batch_size: usize,
) -> Result<BatchPointResult> {
    workload.validate()?;
    if batch_size == 0 {
        return Err(BenchError::InvalidArgument(
            "batch size must be at least 1".into(),
        ));
    }
    let seq_len = workload.input_len + workload.output_len;
    if seq_len > engine.max_model_len() {
        return Err(BenchError::InvalidArgument(format!(
            "input + output length {seq_len} is longer than max_model_len {}",
            engine.max_model_len()
        )));
    }
    let max_seqs = engine.config().max_num_seqs;
    if batch_size > max_seqs {
        return Err(BenchError::InvalidArgument(format!(
            "batch size {batch_size} is larger than max_num_seqs {max_seqs}: it would run in waves"
        )));
    }
    let kv = engine.kv_cache_info();
    let needed = kv_blocks_needed(batch_size, seq_len, kv.block_size);
    if needed > kv.num_blocks {
        let size = |blocks: usize| mib(blocks as u64 * kv.bytes_per_block as u64);
        return Err(BenchError::OutOfMemory(format!(
            "a batch of {batch_size} sequences of {seq_len} tokens needs {needed} KV blocks ({}), the cache has {} ({})",
            size(needed),
            kv.num_blocks,
            size(kv.num_blocks)
        )));
    }
    let cfg = engine.model_config();
    let mut exclude = cfg.eos_token_ids.clone();
    exclude.extend(cfg.bos_token_id);
    let vocab = cfg.vocab_size;
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(workload.output_len)
    };
    let batch = |salt: u64| {
        workload::random_token_prompts(
            batch_size,
            workload.input_len,
            vocab,
            &exclude,
            workload.seed.wrapping_add(salt),
        )
    };
    for i in 0..workload.warmup_iters {
        engine.generate(&batch(1000 + i as u64)?, &params)?;
    }
    let preempt_before = engine.stats().num_preemptions;
    let mut latencies_s = Vec::with_capacity(workload.iters);
    let mut last = Vec::new();
    let mut output_tokens = 0;
    for i in 0..workload.iters {
        let prompts = batch(i as u64)?;
        let start = Instant::now();
        let done = engine.generate(&prompts, &params)?;
        latencies_s.push(start.elapsed().as_secs_f64());
        output_tokens = done.iter().map(|d| d.output_token_ids.len()).sum();
        last = done;
    }
    let preemptions = engine.stats().num_preemptions - preempt_before;
    let ms: Vec<f64> = latencies_s.iter().map(|s| s * 1e3).collect();
    let summary = metrics::Summary::with_percentiles(&ms, &BATCH_LATENCY_PERCENTILES)?;
    let mean_s = summary.mean / 1e3;
    let prompt_tokens = batch_size * workload.input_len;
    let ttfts: Vec<f64> = last.iter().filter_map(|d| d.timings.ttft_s()).collect();
    let tpots: Vec<f64> = last.iter().filter_map(|d| d.timings.tpot_s()).collect();
    let mean =
        |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64 * 1e3);
    Ok(BatchPointResult {
        batch_size,
        iterations: workload.iters,
        output_tokens,
        throughput_tokens_per_sec: output_tokens as f64 / mean_s,
        total_token_throughput: (output_tokens + prompt_tokens) as f64 / mean_s,
        latency_per_request_ms: summary.mean / batch_size as f64,
        batch_latency_ms: summary,
        mean_ttft_ms: mean(&ttfts).unwrap_or(f64::NAN),
        mean_tpot_ms: mean(&tpots),
        preemptions,
        kv_blocks_needed: needed,
    })
}

/// `bytes` in MiB, two decimals.
fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// A batch size picked as an optimum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchChoice {
    /// The batch size.
    pub batch_size: usize,
    /// Its throughput (output tokens per second).
    pub throughput_tokens_per_sec: f64,
    /// Its mean batch latency, ms.
    pub batch_latency_ms: f64,
}

/// One point of the throughput-vs-latency curve (data for a plot).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The batch size (the curve's label).
    pub batch_size: usize,
    /// Mean batch latency, ms (x).
    pub batch_latency_ms: f64,
    /// p99 batch latency, ms.
    pub p99_batch_latency_ms: f64,
    /// Output tokens per second (y).
    pub throughput_tokens_per_sec: f64,
    /// The seed's per-request latency, ms.
    pub latency_per_request_ms: f64,
}

/// What a batch sweep found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSweepSummary {
    /// Highest throughput (ties: the smaller batch).
    pub best_throughput: Option<BatchChoice>,
    /// The latency cap asked for (mean batch latency, ms).
    pub max_latency_ms: Option<f64>,
    /// Highest throughput within the cap (`None` without a cap or when no batch meets it).
    pub best_under_latency: Option<BatchChoice>,
    /// The smallest batch size that ran out of memory.
    pub first_out_of_memory: Option<usize>,
    /// The largest batch size that ran.
    pub largest_fitting: Option<usize>,
    /// Batch sizes that failed for other reasons.
    pub errors: Vec<usize>,
    /// Throughput vs latency of the batches that ran, by batch size.
    pub curve: Vec<CurvePoint>,
}

/// Summarises a batch sweep's records (any order).
pub fn summarize(
    records: &[PointRecord<BatchPoint, BatchPointResult>],
    max_latency_ms: Option<f64>,
) -> BatchSweepSummary {
    let mut curve: Vec<CurvePoint> = records
        .iter()
        .filter_map(|r| r.ok_result())
        .map(|r| CurvePoint {
            batch_size: r.batch_size,
            batch_latency_ms: r.batch_latency_ms.mean,
            p99_batch_latency_ms: r.batch_latency_ms.percentile(99.0).unwrap_or(f64::NAN),
            throughput_tokens_per_sec: r.throughput_tokens_per_sec,
            latency_per_request_ms: r.latency_per_request_ms,
        })
        .collect();
    curve.sort_by_key(|c| c.batch_size);
    let choice = |c: &CurvePoint| BatchChoice {
        batch_size: c.batch_size,
        throughput_tokens_per_sec: c.throughput_tokens_per_sec,
        batch_latency_ms: c.batch_latency_ms,
    };
    // `curve` is sorted by batch size, so keeping the first of equal maxima picks the smaller.
    let best = |pred: &dyn Fn(&CurvePoint) -> bool| {
        curve
            .iter()
            .filter(|c| pred(c))
            .fold(None::<&CurvePoint>, |acc, c| match acc {
                Some(a) if a.throughput_tokens_per_sec >= c.throughput_tokens_per_sec => Some(a),
                _ => Some(c),
            })
            .map(choice)
    };
    let by_status = |s: PointStatus| {
        let mut v: Vec<usize> = records
            .iter()
            .filter(|r| r.status == s)
            .map(|r| r.point.batch_size)
            .collect();
        v.sort_unstable();
        v
    };
    BatchSweepSummary {
        best_throughput: best(&|_| true),
        max_latency_ms,
        best_under_latency: max_latency_ms.and_then(|cap| best(&|c| c.batch_latency_ms <= cap)),
        first_out_of_memory: by_status(PointStatus::OutOfMemory).first().copied(),
        largest_fitting: curve.last().map(|c| c.batch_size),
        errors: by_status(PointStatus::Error),
        curve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(batch: usize, tput: f64, lat: f64) -> PointRecord<BatchPoint, BatchPointResult> {
        let summary = metrics::Summary::with_percentiles(&[lat], &BATCH_LATENCY_PERCENTILES)
            .unwrap_or_else(|e| panic!("{e}"));
        PointRecord {
            key: BatchPoint { batch_size: batch }.key(),
            point: BatchPoint { batch_size: batch },
            status: PointStatus::Ok,
            error: None,
            result: Some(BatchPointResult {
                batch_size: batch,
                iterations: 1,
                output_tokens: batch * 8,
                throughput_tokens_per_sec: tput,
                total_token_throughput: tput,
                latency_per_request_ms: lat / batch as f64,
                batch_latency_ms: summary,
                mean_ttft_ms: 1.0,
                mean_tpot_ms: Some(1.0),
                preemptions: 0,
                kv_blocks_needed: batch,
            }),
            wall_time_s: 0.0,
            finished_at: String::new(),
        }
    }

    fn failed(batch: usize, status: PointStatus) -> PointRecord<BatchPoint, BatchPointResult> {
        PointRecord {
            key: BatchPoint { batch_size: batch }.key(),
            point: BatchPoint { batch_size: batch },
            status,
            error: Some("x".into()),
            result: None,
            wall_time_s: 0.0,
            finished_at: String::new(),
        }
    }

    #[test]
    fn optimum_cap_and_memory_limit() {
        let records = vec![
            failed(64, PointStatus::OutOfMemory),
            ok(4, 300.0, 40.0),
            ok(1, 100.0, 20.0),
            ok(16, 900.0, 120.0),
            ok(8, 900.0, 80.0),
            failed(32, PointStatus::OutOfMemory),
            failed(2, PointStatus::Error),
        ];
        let s = summarize(&records, Some(50.0));
        let best = s.best_throughput.map(|b| b.batch_size);
        assert_eq!(best, Some(8), "a tie goes to the smaller batch");
        assert_eq!(s.best_under_latency.map(|b| b.batch_size), Some(4));
        assert_eq!(s.first_out_of_memory, Some(32));
        assert_eq!(s.largest_fitting, Some(16));
        assert_eq!(s.errors, vec![2]);
        let sizes: Vec<usize> = s.curve.iter().map(|c| c.batch_size).collect();
        assert_eq!(sizes, vec![1, 4, 8, 16]);
        let none = summarize(&records, Some(1.0));
        assert_eq!(none.best_under_latency, None);
        assert_eq!(summarize(&records, None).best_under_latency, None);
    }

    #[test]
    fn blocks_needed() {
        assert_eq!(kv_blocks_needed(4, 33, 16), 12);
        assert_eq!(kv_blocks_needed(1, 16, 16), 1);
    }
}
