//! Where an LLM run sits under the device's roofline: prefill against the measured GEMM
//! throughput, decode against the measured memory bandwidth.
//!
//! | figure | definition |
//! |---|---|
//! | prefill FLOPs | `2 · parameters · prefill tokens` (the usual dense-transformer count; attention's own FLOPs left out) |
//! | prefill achieved TFLOP/s | prefill FLOPs / time of the prefill-only steps |
//! | prefill % of GEMM | achieved TFLOP/s / the **measured** GEMM TFLOP/s (matmul-flops, same device) |
//! | decode bytes per step | weight bytes + KV bytes read (each running sequence's context × KV bytes per token) |
//! | decode achieved GB/s | decode bytes / time of the decode-only steps |
//! | decode % of bandwidth | achieved GB/s / the **measured** memory bandwidth (matmul-flops copy test) |
//! | arithmetic intensity | FLOPs / bytes moved (prefill: weights read once per step plus KV written) |
//!
//! [`measure_phases`] drives an engine step by step with one batch of random prompts and
//! times the steps that are prefill only and decode only (mixed steps are counted and left
//! out); [`analyse`] turns those timings into a [`RooflineReport`]. On a CPU the ceilings are
//! the CPU's own measured GEMM and bandwidth, so the percentages mean the same thing there.

use std::collections::HashMap;
use std::time::Instant;

use llm_engine::engine::workload;
use llm_engine::{Engine, RequestOutputKind, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// The measured ceilings a run is held against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// Measured GEMM TFLOP/s (the best shape of the run's precision).
    pub gemm_tflops: f64,
    /// Which GEMM gave it (`fp32 square 1024x1024x1024`).
    pub gemm_label: String,
    /// Measured memory bandwidth, GB/s (10⁹ B/s).
    pub bandwidth_gb_s: f64,
    /// Which test gave it (`copy`).
    pub bandwidth_label: String,
}

/// What a model moves: its parameters, weight bytes and KV bytes per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFootprint {
    /// Parameters (tied weights once).
    pub num_parameters: u64,
    /// Bytes of the weights in the run's dtype.
    pub weight_bytes: u64,
    /// KV-cache bytes one token takes (K and V, all layers).
    pub kv_bytes_per_token: u64,
}

impl ModelFootprint {
    /// The footprint of the model `engine` runs.
    pub fn of(engine: &Engine) -> Self {
        let info = engine.kv_cache_info();
        ModelFootprint {
            num_parameters: engine.model_config().num_parameters(),
            weight_bytes: engine.memory().weights_bytes,
            kv_bytes_per_token: (info.bytes_per_block / info.block_size.max(1)) as u64,
        }
    }
}

/// Step timings of one batch, split by phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseTimings {
    /// Sequences in the batch.
    pub batch_size: usize,
    /// Prompt tokens per sequence.
    pub prompt_len: usize,
    /// Steps that ran prompt tokens only.
    pub prefill_steps: u64,
    /// Prompt tokens of those steps.
    pub prefill_tokens: u64,
    /// Seconds of those steps.
    pub prefill_seconds: f64,
    /// Steps that ran decode tokens only.
    pub decode_steps: u64,
    /// Decode tokens of those steps.
    pub decode_tokens: u64,
    /// Context tokens (KV entries) those steps read, summed over sequences and steps.
    pub decode_kv_tokens_read: u64,
    /// Seconds of those steps.
    pub decode_seconds: f64,
    /// Steps with both prefill and decode tokens (not used).
    pub mixed_steps: u64,
}

/// Prefill against the GEMM ceiling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefillRoofline {
    /// `2 · parameters · prefill tokens`.
    pub flops: f64,
    /// Weights read once per prefill step plus the KV written.
    pub bytes: f64,
    /// FLOP per byte.
    pub intensity_flop_per_byte: f64,
    /// Achieved TFLOP/s.
    pub achieved_tflops: f64,
    /// Achieved as % of the measured GEMM TFLOP/s.
    pub pct_of_gemm: f64,
}

/// Decode against the bandwidth ceiling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeRoofline {
    /// Mean milliseconds per decode step.
    pub mean_step_ms: f64,
    /// Weight bytes + KV bytes read over the decode steps.
    pub bytes: f64,
    /// Achieved GB/s.
    pub achieved_gb_s: f64,
    /// Achieved as % of the measured bandwidth.
    pub pct_of_bandwidth: f64,
    /// `2 · parameters · decode tokens` / bytes.
    pub intensity_flop_per_byte: f64,
    /// Achieved TFLOP/s (for placing the run on the chart).
    pub achieved_tflops: f64,
}

/// One model's run held against the device's measured roofline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RooflineReport {
    /// The model.
    pub model: String,
    /// The run's dtype.
    pub dtype: String,
    /// Its footprint.
    pub footprint: ModelFootprint,
    /// The ceilings used.
    pub ceilings: Ceilings,
    /// The step timings.
    pub timings: PhaseTimings,
    /// Prefill figures (`None` when no step was prefill only).
    pub prefill: Option<PrefillRoofline>,
    /// Decode figures (`None` when no step was decode only).
    pub decode: Option<DecodeRoofline>,
}

/// Holds `timings` of a model with `footprint` against `ceilings`.
pub fn analyse(
    model: &str,
    dtype: &str,
    footprint: ModelFootprint,
    timings: &PhaseTimings,
    ceilings: &Ceilings,
) -> RooflineReport {
    let params = footprint.num_parameters as f64;
    let weights = footprint.weight_bytes as f64;
    let kv_per_token = footprint.kv_bytes_per_token as f64;
    let prefill = (timings.prefill_steps > 0 && timings.prefill_seconds > 0.0).then(|| {
        let flops = 2.0 * params * timings.prefill_tokens as f64;
        let bytes =
            weights * timings.prefill_steps as f64 + kv_per_token * timings.prefill_tokens as f64;
        let achieved = flops / timings.prefill_seconds / 1e12;
        PrefillRoofline {
            flops,
            bytes,
            intensity_flop_per_byte: flops / bytes.max(1.0),
            achieved_tflops: achieved,
            pct_of_gemm: percent(achieved, ceilings.gemm_tflops),
        }
    });
    let decode = (timings.decode_steps > 0 && timings.decode_seconds > 0.0).then(|| {
        let bytes = weights * timings.decode_steps as f64
            + kv_per_token * timings.decode_kv_tokens_read as f64;
        let flops = 2.0 * params * timings.decode_tokens as f64;
        let gb_s = bytes / timings.decode_seconds / 1e9;
        DecodeRoofline {
            mean_step_ms: timings.decode_seconds / timings.decode_steps as f64 * 1e3,
            bytes,
            achieved_gb_s: gb_s,
            pct_of_bandwidth: percent(gb_s, ceilings.bandwidth_gb_s),
            intensity_flop_per_byte: flops / bytes.max(1.0),
            achieved_tflops: flops / timings.decode_seconds / 1e12,
        }
    });
    RooflineReport {
        model: model.to_string(),
        dtype: dtype.to_string(),
        footprint,
        ceilings: ceilings.clone(),
        timings: timings.clone(),
        prefill,
        decode,
    }
}

/// Measures the two ceilings of `device` for a run in `dtype` (`f32`, `f16`, `bf16`): the
/// best of a short square-GEMM sweep in that precision (2,048–8,192 on a GPU, 256–1,024 on a
/// CPU) and the device-memory read bandwidth (1 GiB on a GPU, 256 MiB on a CPU), both
/// checked against references by matmul-flops. What `llm-bench --roofline` holds a run
/// against when no bench-all results are at hand.
///
/// # Errors
/// matmul-flops errors (device not available, out of memory, a result failing its check);
/// [`BenchError::InvalidArgument`] when the device has no GEMM in that precision.
pub fn measure_ceilings(device: matmul_flops::BenchDevice, dtype: &str) -> Result<Ceilings> {
    use matmul_flops::bandwidth::mib_to_bytes;
    use matmul_flops::{
        open_bandwidth_backend, open_gemm_backend, run_bandwidth, run_gemm, BandwidthTest,
        BenchDevice, GemmDtype, GemmProblem, GemmRunConfig, StopRule,
    };
    let cpu = device == BenchDevice::Cpu;
    let rule = StopRule {
        warmup_iters: 2,
        warmup_time: std::time::Duration::from_millis(100),
        min_iters: 3,
        max_iters: 50,
        target_cv: 0.03,
        time_budget: std::time::Duration::from_millis(1000),
    };
    let want = match dtype {
        "f32" => GemmDtype::Fp32,
        "bf16" => GemmDtype::Bf16,
        _ => GemmDtype::Fp16,
    };
    let mut gemm = open_gemm_backend(device)?;
    gemm.supports(want)?;
    let sizes: &[usize] = if cpu {
        &[256, 512, 1024]
    } else {
        &[2048, 4096, 8192]
    };
    let config = GemmRunConfig {
        rule: rule.clone(),
        check_rows: 4,
        ..GemmRunConfig::default()
    };
    let mut best: Option<matmul_flops::GemmResult> = None;
    for p in GemmProblem::square_sweep(sizes)? {
        gemm.ensure_fits(want, &p.shape, &config.options)?;
        let r = run_gemm(gemm.as_mut(), &p, want, &config)?;
        if best.as_ref().is_none_or(|b| r.tflops > b.tflops) {
            best = Some(r);
        }
    }
    let g = best.ok_or_else(|| BenchError::InvalidArgument("no GEMM shape ran".into()))?;
    drop(gemm);
    let mut bw = open_bandwidth_backend(device)?;
    let bytes = mib_to_bytes(if cpu { 256 } else { 1024 })?;
    bw.ensure_fits(BandwidthTest::Read, bytes)?;
    let b = run_bandwidth(bw.as_mut(), BandwidthTest::Read, bytes, &rule)?;
    Ok(Ceilings {
        gemm_tflops: g.tflops,
        gemm_label: format!("{} GEMM {}", g.dtype.name(), g.shape),
        bandwidth_gb_s: b.gb_s,
        bandwidth_label: b.test.name().to_string(),
    })
}

impl RooflineReport {
    /// A few lines for a human: each phase's achieved rate against its ceiling.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "Roofline ({} {}; ceilings measured on this device: {:.1} TFLOP/s {}, {:.0} GB/s {}):\n",
            self.model,
            self.dtype,
            self.ceilings.gemm_tflops,
            self.ceilings.gemm_label,
            self.ceilings.bandwidth_gb_s,
            self.ceilings.bandwidth_label
        );
        match &self.prefill {
            Some(p) => {
                s += &format!(
                    "  prefill: {:.2} TFLOP/s = {:.1}% of the GEMM ceiling ({} steps, {} tokens)\n",
                    p.achieved_tflops,
                    p.pct_of_gemm,
                    self.timings.prefill_steps,
                    self.timings.prefill_tokens
                )
            }
            None => s += "  prefill: no prefill-only step\n",
        }
        match &self.decode {
            Some(d) => {
                s += &format!(
                    "  decode:  {:.0} GB/s = {:.1}% of the bandwidth ceiling ({:.2} ms a step, batch {})\n",
                    d.achieved_gb_s, d.pct_of_bandwidth, d.mean_step_ms, self.timings.batch_size
                )
            }
            None => s += "  decode: no decode-only step\n",
        }
        s
    }
}

fn percent(achieved: f64, ceiling: f64) -> f64 {
    if ceiling > 0.0 && ceiling.is_finite() {
        achieved / ceiling * 100.0
    } else {
        f64::NAN
    }
}

/// Runs one batch of `batch_size` random prompts of `prompt_len` tokens, each generating
/// `decode_tokens + 1` tokens, step by step on `engine`, and times the prefill-only and
/// decode-only steps. A short untimed request runs first (warm-up).
///
/// # Errors
/// [`BenchError::InvalidArgument`] for a zero size or a batch larger than the engine's
/// `max_num_seqs`; [`BenchError::OutOfMemory`] when the batch does not fit in the KV cache;
/// engine errors.
pub fn measure_phases(
    engine: &mut Engine,
    batch_size: usize,
    prompt_len: usize,
    decode_tokens: usize,
    seed: u64,
) -> Result<PhaseTimings> {
    if batch_size == 0 || prompt_len == 0 || decode_tokens == 0 {
        return Err(BenchError::InvalidArgument(format!(
            "roofline batch, prompt length and decode tokens must be at least 1, got {batch_size}, {prompt_len}, {decode_tokens}"
        )));
    }
    if engine.has_unfinished_requests() {
        return Err(BenchError::InvalidArgument(
            "the roofline run needs an idle engine (requests are still running)".into(),
        ));
    }
    if batch_size > engine.config().max_num_seqs {
        return Err(BenchError::InvalidArgument(format!(
            "roofline batch {batch_size} is larger than max_num_seqs {}",
            engine.config().max_num_seqs
        )));
    }
    let info = engine.kv_cache_info();
    let seq_len = prompt_len + decode_tokens + 1;
    let needed = batch_size * seq_len.div_ceil(info.block_size.max(1));
    if needed > engine.num_free_blocks() {
        return Err(BenchError::OutOfMemory(format!(
            "roofline batch of {batch_size} x {seq_len} tokens needs {needed} KV blocks, {} free",
            engine.num_free_blocks()
        )));
    }
    let cfg = engine.model_config();
    let mut exclude = cfg.eos_token_ids.clone();
    exclude.extend(cfg.bos_token_id);
    let vocab = cfg.vocab_size;
    let params = |max_tokens| SamplingParams {
        temperature: 0.0,
        max_tokens,
        ignore_eos: true,
        detokenize: false,
        output_kind: RequestOutputKind::Delta,
        ..SamplingParams::default()
    };
    // Warm-up: one short request, untimed.
    let warm = workload::random_token_prompts(1, prompt_len, vocab, &exclude, seed ^ 0x5eed)?;
    engine.generate(&warm, &params(2))?;

    let prompts = workload::random_token_prompts(batch_size, prompt_len, vocab, &exclude, seed)?;
    let mut generated: HashMap<llm_engine::RequestId, usize> = HashMap::new();
    for p in prompts {
        let id = engine.add_request(p, params(decode_tokens + 1))?;
        generated.insert(id, 0);
    }
    let mut t = PhaseTimings {
        batch_size,
        prompt_len,
        ..PhaseTimings::default()
    };
    while engine.has_unfinished_requests() {
        let context: u64 = generated.values().map(|g| (prompt_len + g) as u64).sum();
        let start = Instant::now();
        let outputs = engine.step()?;
        let seconds = start.elapsed().as_secs_f64();
        let step = engine.last_step_stats();
        match (step.num_prefill_tokens, step.num_decode_tokens) {
            (0, 0) => {}
            (p, 0) => {
                t.prefill_steps += 1;
                t.prefill_tokens += p as u64;
                t.prefill_seconds += seconds;
            }
            (0, d) => {
                t.decode_steps += 1;
                t.decode_tokens += d as u64;
                t.decode_kv_tokens_read += context;
                t.decode_seconds += seconds;
            }
            _ => t.mixed_steps += 1,
        }
        for out in outputs {
            if out.finished() {
                generated.remove(&out.request_id);
            } else if let Some(g) = generated.get_mut(&out.request_id) {
                *g += out.new_token_ids.len();
            }
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ceilings() -> Ceilings {
        Ceilings {
            gemm_tflops: 100.0,
            gemm_label: "test".into(),
            bandwidth_gb_s: 1000.0,
            bandwidth_label: "copy".into(),
        }
    }

    #[test]
    fn prefill_and_decode_figures_follow_the_definitions() {
        let fp = ModelFootprint {
            num_parameters: 1_000_000_000,
            weight_bytes: 2_000_000_000,
            kv_bytes_per_token: 1_000,
        };
        let t = PhaseTimings {
            batch_size: 4,
            prompt_len: 500,
            prefill_steps: 1,
            prefill_tokens: 2_000,
            prefill_seconds: 0.1,
            decode_steps: 10,
            decode_tokens: 40,
            decode_kv_tokens_read: 1_000_000,
            decode_seconds: 0.05,
            mixed_steps: 0,
        };
        let r = analyse("m", "f16", fp, &t, &ceilings());
        let p = r.prefill.as_ref().unwrap();
        // 2 * 1e9 * 2000 = 4e12 FLOPs in 0.1 s = 40 TFLOP/s = 40% of 100.
        assert!((p.achieved_tflops - 40.0).abs() < 1e-9);
        assert!((p.pct_of_gemm - 40.0).abs() < 1e-9);
        assert!((p.bytes - (2e9 + 2e6)).abs() < 1.0);
        let d = r.decode.as_ref().unwrap();
        // 10 steps x 2e9 weight bytes + 1e6 x 1e3 KV bytes = 2.1e10 B in 0.05 s = 420 GB/s.
        assert!((d.achieved_gb_s - 420.0).abs() < 1e-9);
        assert!((d.pct_of_bandwidth - 42.0).abs() < 1e-9);
        assert!((d.mean_step_ms - 5.0).abs() < 1e-12);
    }

    #[test]
    fn phases_without_steps_have_no_figures() {
        let fp = ModelFootprint {
            num_parameters: 10,
            weight_bytes: 40,
            kv_bytes_per_token: 8,
        };
        let r = analyse("m", "f32", fp, &PhaseTimings::default(), &ceilings());
        assert!(r.prefill.is_none() && r.decode.is_none());
    }

    fn tiny_engine(kv_bytes: u64) -> Engine {
        let mut c = llm_engine::EngineConfig::for_model("tiny-llama");
        c.max_model_len = Some(32);
        c.kv_cache_bytes = Some(kv_bytes);
        Engine::new(c).unwrap()
    }

    #[test]
    fn phases_are_split_and_the_kv_read_counted_per_step() {
        let mut engine = tiny_engine(16 << 20);
        let t = measure_phases(&mut engine, 2, 8, 3, 7).unwrap();
        assert_eq!((t.prefill_steps, t.prefill_tokens), (1, 16));
        // 3 decode steps of 2 sequences; contexts 9, 10, 11 tokens each.
        assert_eq!((t.decode_steps, t.decode_tokens), (3, 6));
        assert_eq!(t.decode_kv_tokens_read, 2 * (9 + 10 + 11));
        assert_eq!(t.mixed_steps, 0);
        assert!(t.prefill_seconds > 0.0 && t.decode_seconds > 0.0);
        let fp = ModelFootprint::of(&engine);
        assert_eq!(fp.num_parameters, engine.model_config().num_parameters());
        let r = analyse("tiny-llama", "f32", fp, &t, &ceilings());
        assert!(r.prefill.is_some() && r.decode.is_some());
    }

    #[test]
    fn a_batch_larger_than_the_cache_is_out_of_memory() {
        let mut engine = tiny_engine(1 << 20);
        let e = measure_phases(&mut engine, 8, 16, 4, 0).unwrap_err();
        assert!(matches!(e, BenchError::OutOfMemory(_)), "{e}");
        assert!(matches!(
            measure_phases(&mut engine, 0, 16, 4, 0),
            Err(BenchError::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_zero_ceiling_gives_nan_not_infinity() {
        assert!(percent(5.0, 0.0).is_nan());
    }
}
