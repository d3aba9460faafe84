//! The CUDA attention kernels (`reshape_and_cache`, `paged_decode_*`, `paged_prefill_*`)
//! against references, on the device: run with
//! `cargo test -p llm-engine --features cuda --release --test engine_cuda_attention`
//! on a machine with an NVIDIA GPU (without one every test prints why and passes).
//!
//! - `kernels_match_the_cpu_reference`: for each shape (head_dim 16/64/80/128/256, GQA ratios 1, 2,
//!   4 and 8, block sizes 16 and 32, 1..64 sequences of odd lengths with partial last blocks, a
//!   sliding window, f32/f16/bf16) two steps (prefill from position 0, then a mixed step of
//!   decodes and prefill chunks over a cached prefix) through `PagedAttention::forward` on the
//!   GPU and on the CPU in f32 on the same (dtype-rounded) inputs; outputs within the dtype's
//!   tolerance, caches equal exactly (`reshape_and_cache` only copies). Also over fp8 E4M3
//!   caches (f16/bf16, head_dim 64/128; V scaled past ±448 in two cases), where the reference
//!   stores the same fp8 values (the caches must still be equal) and reads them back exactly.
//! - `kernels_match_the_candle_op_path_on_the_gpu`: the same against the GPU's reference path.
//! - `batched_greedy_tokens_equal_each_request_alone`: the engine on CUDA, 64 requests of mixed
//!   lengths at once vs each alone.
//! - `gpu_logits_match_the_cpu_engine`: golden fixture models, every token's logits, GPU vs CPU.
#![cfg(feature = "cuda")]

mod engine_support;

use candle_core::{DType, Device, Tensor};
use llm_engine::attention::PagedAttention;
use llm_engine::engine::EngineConfig;
use llm_engine::models::{load_model, BatchLayout, LoadFormat, ModelSource, SeqSlice};
use llm_engine::{Engine, ModelConfig, PagedKvStorage, Prompt, SamplingParams};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The GPU, or `None` (with a note) when this machine has none.
fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            None
        }
    }
}

/// One attention shape to test.
#[derive(Debug, Clone, Copy)]
struct Case {
    dtype: DType,
    head_dim: usize,
    kv_heads: usize,
    group: usize,
    block_size: usize,
    seqs: usize,
    window: Option<usize>,
    /// The cache holds fp8 E4M3 (on the GPU and in the reference alike).
    fp8: bool,
    /// V's values are N(0, 1) times this (150: some pass fp8's ±448 and saturate).
    v_scale: f32,
}

impl Case {
    /// The cache's dtype on the GPU: the model's, or fp8.
    fn cache_dtype(&self, dtype: DType) -> DType {
        if self.fp8 {
            DType::F8E4M3
        } else {
            dtype
        }
    }

    /// Allowed |gpu - reference| as `atol + rtol * |reference|`: about two units in the last
    /// place of the dtype (the output's rounding plus f32 summation-order noise), on outputs
    /// that are softmax-weighted averages of N(0,1) values.
    fn tolerance(&self) -> Tolerance {
        // Outputs scale with V: so do their absolute errors (P's rounding times V's values).
        let base = self.base_tolerance();
        Tolerance {
            atol: base.atol * self.v_scale,
            ..base
        }
    }

    fn base_tolerance(&self) -> Tolerance {
        match self.dtype {
            DType::F32 => Tolerance {
                atol: 1e-5,
                rtol: 1e-5,
            },
            DType::F16 => Tolerance {
                atol: 1e-3,
                rtol: 2e-3,
            },
            _ => Tolerance {
                atol: 8e-3,
                rtol: 1.6e-2,
            },
        }
    }

    fn config(&self) -> ModelConfig {
        let mut cfg = llm_engine::presets::preset("tiny-llama").expect("tiny-llama preset");
        cfg.num_layers = 1;
        cfg.num_kv_heads = self.kv_heads;
        cfg.num_heads = self.kv_heads * self.group;
        cfg.head_dim = self.head_dim;
        cfg.hidden_size = cfg.num_heads * self.head_dim;
        cfg.sliding_window = self.window;
        cfg.max_position_embeddings = 1 << 16;
        cfg
    }
}

fn cases() -> Vec<Case> {
    let c = |dtype, head_dim, kv_heads, group, block_size, seqs, window| Case {
        dtype,
        head_dim,
        kv_heads,
        group,
        block_size,
        seqs,
        window,
        fp8: false,
        v_scale: 1.0,
    };
    // Over an fp8 cache (head_dims 64 and 128, f16 / bf16).
    let f = |dtype, head_dim, kv_heads, group, block_size, seqs, window, v_scale| Case {
        fp8: true,
        v_scale,
        ..c(dtype, head_dim, kv_heads, group, block_size, seqs, window)
    };
    vec![
        f(DType::F16, 128, 4, 1, 16, 1, None, 1.0),
        f(DType::F16, 128, 4, 1, 16, 64, None, 1.0),
        f(DType::F16, 128, 2, 4, 16, 33, None, 150.0),
        f(DType::F16, 64, 2, 4, 32, 17, None, 1.0),
        f(DType::F16, 128, 8, 1, 32, 64, Some(100), 1.0),
        f(DType::BF16, 128, 4, 1, 32, 9, None, 150.0),
        f(DType::BF16, 64, 1, 8, 16, 20, Some(45), 1.0),
        f(DType::BF16, 64, 3, 2, 16, 5, None, 1.0),
        c(DType::F16, 128, 4, 1, 16, 1, None),
        c(DType::F16, 128, 4, 1, 16, 64, None),
        c(DType::F16, 128, 2, 4, 16, 33, None),
        c(DType::F16, 64, 4, 1, 32, 17, None),
        c(DType::F16, 64, 2, 4, 32, 64, None),
        c(DType::BF16, 128, 4, 1, 32, 9, None),
        c(DType::BF16, 128, 2, 4, 16, 40, None),
        c(DType::BF16, 64, 3, 2, 16, 5, None),
        c(DType::F32, 128, 2, 4, 16, 12, None),
        c(DType::F32, 64, 2, 1, 32, 3, None),
        c(DType::F16, 128, 2, 4, 16, 24, Some(37)),
        c(DType::F16, 128, 8, 1, 32, 64, Some(100)),
        c(DType::BF16, 64, 1, 8, 16, 20, Some(45)),
        c(DType::F32, 64, 1, 8, 16, 6, Some(20)),
        c(DType::F16, 16, 2, 2, 16, 8, None), // the golden fixtures' head_dim
        c(DType::F16, 80, 2, 1, 16, 7, None), // not a multiple of 32: the unaligned path
        c(DType::BF16, 256, 1, 8, 16, 4, None),
        c(DType::F32, 8, 2, 4, 32, 5, None),
    ]
}

/// Random values rounded to `dtype` and back, so the GPU (in `dtype`) and the f32 reference
/// see the same numbers.
fn rounded_randn(rng: &mut StdRng, shape: (usize, usize), dtype: DType, scale: f32) -> Tensor {
    let data: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| {
            // Box-Muller: N(0, 1).
            let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
            scale * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .and_then(|t| t.to_dtype(DType::F32))
        .expect("random tensor")
}

/// Allowed difference `atol + rtol * |reference|`.
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    atol: f32,
    rtol: f32,
}

impl Tolerance {
    fn scaled(self, by: f32) -> Self {
        Self {
            atol: self.atol * by,
            rtol: self.rtol * by,
        }
    }
}

/// The worst element of `got` vs `want` (`[n, H * D]`): its difference over the allowed one
/// (> 1 fails; NaN counts as infinite) and where it is, as a message.
fn worst(got: &Tensor, want: &Tensor, head_dim: usize, tol: Tolerance) -> (f32, String) {
    worst_labelled(got, want, tol, |t, i| {
        format!("token {t}, head {}, element {}", i / head_dim, i % head_dim)
    })
}

/// As [`worst`], with `label(row, column)` naming the place.
fn worst_labelled(
    got: &Tensor,
    want: &Tensor,
    tol: Tolerance,
    label: impl Fn(usize, usize) -> String,
) -> (f32, String) {
    let g = got
        .to_dtype(DType::F32)
        .and_then(|t| t.to_device(&Device::Cpu))
        .and_then(|t| t.to_vec2::<f32>())
        .expect("gpu output");
    let w = want.to_vec2::<f32>().expect("reference output");
    let mut best = (0f32, String::from("all equal"));
    for (t, (gr, wr)) in g.iter().zip(&w).enumerate() {
        for (i, (a, b)) in gr.iter().zip(wr).enumerate() {
            let d = (a - b).abs();
            let score = d / (tol.atol + tol.rtol * b.abs());
            if score > best.0 || score.is_nan() {
                best = (
                    if score.is_nan() { f32::INFINITY } else { score },
                    format!("{}: gpu {a}, reference {b}, |diff| {d:.3e}", label(t, i)),
                );
            }
        }
    }
    best
}

/// The two steps of one case: (slices, q, k, v) per step, f32 on the CPU.
type Step = (Vec<SeqSlice>, Tensor, Tensor, Tensor);

fn steps(case: &Case, cfg: &ModelConfig, num_blocks: usize, rng: &mut StdRng) -> Vec<Step> {
    let bs = case.block_size;
    let mut free: Vec<u32> = (0..num_blocks as u32).collect();
    free.shuffle(rng);
    let mut first = Vec::new();
    let mut second = Vec::new();
    for i in 0..case.seqs {
        // Odd totals, partial last blocks, one-token prefixes; every third sequence ends with a
        // prefill chunk over its cached prefix, the others with a decode.
        let total = (1 + rng.random_range(1..260usize)) | 1;
        let new = if i % 3 == 2 {
            rng.random_range(2..=total.min(70))
        } else {
            1
        };
        let prefix = total - new;
        let table: Vec<u32> = (0..total.div_ceil(bs))
            .map(|_| free.pop().expect("enough blocks"))
            .collect();
        if prefix > 0 {
            first.push(SeqSlice {
                token_ids: vec![1; prefix],
                start_pos: 0,
                block_table: table.clone(),
                want_logits: false,
            });
        }
        second.push(SeqSlice {
            token_ids: vec![1; new],
            start_pos: prefix,
            block_table: table,
            want_logits: true,
        });
    }
    [first, second]
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|slices| {
            let n: usize = slices.iter().map(|s| s.token_ids.len()).sum();
            let kv_width = cfg.num_kv_heads * cfg.head_dim;
            let q = rounded_randn(rng, (n, cfg.num_heads * cfg.head_dim), case.dtype, 1.0);
            let k = rounded_randn(rng, (n, kv_width), case.dtype, 1.0);
            let v = rounded_randn(rng, (n, kv_width), case.dtype, case.v_scale);
            (slices, q, k, v)
        })
        .collect()
}

/// Runs every case on the GPU (kernels, or the reference path when `gpu_reference`) and
/// compares each step's output with the CPU's f32 reference, or with the GPU's candle-op path.
fn check_cases(compare_with_gpu_reference: bool) {
    let Some(dev) = gpu() else { return };
    let mut failures = Vec::new();
    for (ci, case) in cases().into_iter().enumerate() {
        let cfg = case.config();
        let mut rng = StdRng::seed_from_u64(1000 + ci as u64);
        let num_blocks = case.seqs * 270usize.div_ceil(case.block_size) + 1;
        let attn = PagedAttention::new(&cfg);
        let (ref_dev, ref_dtype, ref_attn) = if compare_with_gpu_reference {
            (dev.clone(), case.dtype, attn.with_reference_path())
        } else {
            (Device::Cpu, DType::F32, attn)
        };
        let new_kv = |d: &Device, dt| {
            PagedKvStorage::new(&cfg, num_blocks, case.block_size, dt, d).expect("kv storage")
        };
        let mut kv_gpu = new_kv(&dev, case.cache_dtype(case.dtype));
        let mut kv_ref = new_kv(&ref_dev, case.cache_dtype(ref_dtype));
        for (si, (slices, q, k, v)) in steps(&case, &cfg, num_blocks, &mut rng).iter().enumerate() {
            let on = |t: &Tensor, d: &Device, dt| t.to_dtype(dt).and_then(|t| t.to_device(d));
            let run = |d: &Device, dt, a: &PagedAttention, kv: &mut PagedKvStorage| {
                let layout = BatchLayout::new(slices, &cfg, kv, d, false)?;
                a.forward(
                    &on(q, d, dt)?,
                    &on(k, d, dt)?,
                    &on(v, d, dt)?,
                    &layout,
                    kv,
                    0,
                )
            };
            let got = match run(&dev, case.dtype, &attn, &mut kv_gpu) {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("{case:?} step {si}: kernel path failed: {e}"));
                    break;
                }
            };
            let want = run(&ref_dev, ref_dtype, &ref_attn, &mut kv_ref)
                .and_then(|t| Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?))
                .expect("reference path");
            // The GPU reference itself rounds probabilities to the dtype: allow twice as much.
            let tol = case
                .tolerance()
                .scaled(if compare_with_gpu_reference { 2.0 } else { 1.0 });
            let (score, at) = worst(&got, &want, cfg.head_dim, tol);
            let kinds = format!(
                "{} slices ({} decodes)",
                slices.len(),
                slices.iter().filter(|s| s.token_ids.len() == 1).count()
            );
            if score > 1.0 {
                failures.push(format!(
                    "{case:?} step {si} [{kinds}]: {score:.2}x the tolerance {tol:?} at {at}"
                ));
            } else {
                eprintln!(
                    "ok {case:?} step {si} [{kinds}]: worst {score:.2}x the tolerance ({at})"
                );
            }
        }
        // reshape_and_cache copies: the caches must be equal (the inputs were rounded); into
        // fp8 caches both sides round the same dtype-exact values to nearest even, saturated.
        for (name, i) in [("K", 0), ("V", 1)] {
            let pick = |kv: &PagedKvStorage| -> Tensor {
                let (k, v) = kv.layer(0).expect("layer 0");
                let t = if i == 0 { k } else { v };
                // To the host first: candle 0.11 cannot cast F8E4M3 on CUDA.
                t.to_device(&Device::Cpu)
                    .and_then(|t| t.to_dtype(DType::F32))
                    .expect("cache to host")
            };
            let diff = (pick(&kv_gpu) - pick(&kv_ref))
                .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
                .expect("cache diff");
            if diff != 0.0 {
                failures.push(format!(
                    "{case:?}: {name} cache differs from the reference by up to {diff:e}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn kernels_match_the_cpu_reference() {
    check_cases(false);
}

#[test]
fn kernels_match_the_candle_op_path_on_the_gpu() {
    check_cases(true);
}

fn cuda_engine(max_num_seqs: usize) -> Option<Engine> {
    gpu()?;
    let cfg = EngineConfig {
        model: "tiny-llama".into(),
        device: "cuda".into(),
        load_format: LoadFormat::Dummy,
        dtype: DType::F32,
        max_model_len: Some(512),
        kv_cache_bytes: Some(256 << 20),
        max_num_seqs,
        seed: 11,
        ..EngineConfig::default()
    };
    Some(engine_support::engine(cfg))
}

/// f32, so that the dense layers' results do not depend on the batch's row count through
/// cuBLAS's choice of algorithm (the attention kernels are per row in any dtype).
#[test]
fn batched_greedy_tokens_equal_each_request_alone() {
    let Some(mut batched) = cuda_engine(64) else {
        return;
    };
    let prompts: Vec<Prompt> = (0..64)
        .map(|i| {
            Prompt::Tokens(
                (0..1 + (i * 53) % 200)
                    .map(|t| 3 + ((t * 7 + i) % 4000) as u32)
                    .collect(),
            )
        })
        .collect();
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(16)
    };
    let together = batched
        .generate(&prompts, &params)
        .expect("batched generate");
    let Some(mut alone) = cuda_engine(1) else {
        return;
    };
    let mut mismatches = Vec::new();
    for (i, (p, b)) in prompts.iter().zip(&together).enumerate() {
        let one = alone
            .generate(std::slice::from_ref(p), &params)
            .expect("single generate");
        if one[0].output_token_ids != b.output_token_ids {
            mismatches.push(format!(
                "request {i}: batched {:?} alone {:?}",
                b.output_token_ids, one[0].output_token_ids
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of 64 requests differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Every token's logits of the golden fixture models (real safetensors weights, so identical
/// on both devices), GPU kernels vs the CPU engine, for a mixed batch (prefill, then a decode
/// and a prefill chunk over the cache).
#[test]
fn gpu_logits_match_the_cpu_engine() {
    let Some(dev) = gpu() else { return };
    let mut failures = Vec::new();
    let mut ran = 0;
    for name in engine_support::FIXTURES {
        let Some(dir) = engine_support::fixture_dir(name) else {
            eprintln!("fixture {name} absent, skipped");
            continue;
        };
        for (dtype, tol) in [
            // Whole models: errors of every layer add up, so looser than the kernels' own.
            (
                DType::F32,
                Tolerance {
                    atol: 1e-3,
                    rtol: 1e-3,
                },
            ),
            (
                DType::F16,
                Tolerance {
                    atol: 3e-2,
                    rtol: 2e-2,
                },
            ),
            (
                DType::BF16,
                Tolerance {
                    atol: 1.5e-1,
                    rtol: 8e-2,
                },
            ),
        ] {
            let load = |d: &Device, dt| {
                load_model(
                    &ModelSource::Dir(dir.clone()),
                    LoadFormat::Safetensors,
                    dt,
                    d,
                    0,
                )
                .expect("load fixture")
            };
            let gpu_model = load(&dev, dtype);
            let cpu_model = load(&Device::Cpu, DType::F32);
            let cfg = &cpu_model.config;
            let bs = 16;
            let mut kv_gpu = PagedKvStorage::new(cfg, 32, bs, dtype, &dev).expect("kv");
            let mut kv_cpu =
                PagedKvStorage::new(cfg, 32, bs, DType::F32, &Device::Cpu).expect("kv");
            let toks = |n: usize, s: u32| -> Vec<u32> {
                (0..n as u32)
                    .map(|t| 1 + (t * 31 + s) % (cfg.vocab_size as u32 - 1))
                    .collect()
            };
            let first = vec![
                SeqSlice {
                    token_ids: toks(37, 1),
                    start_pos: 0,
                    block_table: vec![4, 9, 2, 30],
                    want_logits: true,
                },
                SeqSlice {
                    token_ids: toks(5, 2),
                    start_pos: 0,
                    block_table: vec![7, 1, 3],
                    want_logits: true,
                },
            ];
            let second = vec![
                SeqSlice {
                    token_ids: toks(1, 3),
                    start_pos: 37,
                    block_table: vec![4, 9, 2, 30],
                    want_logits: true,
                },
                SeqSlice {
                    token_ids: toks(23, 4),
                    start_pos: 5,
                    block_table: vec![7, 1, 3],
                    want_logits: true,
                },
            ];
            for (si, batch) in [first, second].iter().enumerate() {
                let g = gpu_model
                    .model
                    .forward_all_logits(batch, &mut kv_gpu)
                    .expect("gpu forward");
                let c = cpu_model
                    .model
                    .forward_all_logits(batch, &mut kv_cpu)
                    .expect("cpu forward");
                let (score, at) =
                    worst_labelled(&g, &c, tol, |t, i| format!("token {t}, vocab id {i}"));
                ran += 1;
                if score > 1.0 {
                    failures.push(format!(
                        "{name} {dtype:?} step {si}: logits {score:.2}x the tolerance {tol:?} at {at}"
                    ));
                } else {
                    eprintln!("ok {name} {dtype:?} step {si}: logits worst {score:.2}x the tolerance ({at})");
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{ran} fixture steps compared");
}
