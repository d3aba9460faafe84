//! The fused CUDA kernels of the models' forward (`kernels/fused_ops.cu`) against candle's op
//! path on the same GPU, and the models' logits with them against the models' logits without
//! them (`LLM_ENGINE_FUSED=0`). Run with
//! `cargo test -p llm-engine --features cuda --release --test engine_cuda_fused -- --test-threads=1`
//! (one thread: `fused_models_match_the_op_path` sets `LLM_ENGINE_FUSED` around its loads)
//! on a machine with an NVIDIA GPU (without one every test prints why and passes).
//!
//! - `add_rms_norm_matches_candle`, `add_layer_norm_matches_candle`: `x + delta` then candle's
//!   `rms_norm` / `layer_norm`, rows 1, 7 and 300, hidden 1, 33, 1000 and 4096 (the kernel's
//!   16-byte vector path), 4099 (element-wise: more than one element per thread, not a
//!   multiple of 32) and 9001 (past what the element-wise path keeps in registers: its sums
//!   are re-read from memory).
//! - `silu_mul_matches_candle`: `silu(gate) * up`, rows 1, 5, 129, intermediate 1, 37, 2755.
//! - `rope_split_qkv_matches_candle`: candle's `rope_thd` on q and k, plain copies of v and, with
//!   no rotary, of all three; head counts (4, 4), (8, 2) (GQA 4), (3, 1); head_dim 6
//!   (element-wise path), 64 and 128 (16-byte vector path).
//! - `rope_qkv_to_cache_matches_split_then_reshape_and_cache`: the fused rotary + cache write
//!   (also into fp8 E4M3 caches, checked against the host's rounding)
//! - `convert_fp8_matches_the_host`: the fp8 conversion kernels against the host's, edge cases included
//!   leaves q and both whole caches exactly as `rope_split_qkv` followed by two
//!   `reshape_and_cache` launches do (same shapes, rows 1, 9 and 200 at scattered slots).
//! - `gemv_matches_candle_matmul`: the small-M linear kernel against `x · wᵀ + b` by cuBLAS,
//!   M = 1..4, (n, k) = (1, 8), (37, 64), (1000, 1376), (4096, 4096), (300, 11008),
//!   (50257, 768), 1, 2 and 4 warps per output column and the default for the shape, with
//!   and without bias; and the cases it must decline (M = 5, k not a whole 16-byte load, a
//!   CPU tensor, another split).
//! - `argmax_rows_matches_the_host`: the device argmax (greedy sampling) against the host's
//!   `sampling::argmax`, vocab 1 to 50,257, with ties, NaN, -inf-only and NaN-only rows.
//! - `topk_rows_draw_what_the_host_sampler_draws`: the device's top-k selection followed by
//!   `sampling::sample_from_candidates` against `sampling::sample_token` on the whole row
//!   (vocab 1 to 50,257, top-k 1..256 with top-p / min-p, temperatures, ties, NaN, ±inf,
//!   signed zeros, greedy rows mixed in).
//! - `fused_models_match_the_op_path`: every golden fixture (GPT-2, OPT, Llama, Llama-3 GQA),
//!   all tokens' logits of a prefill step and a mixed decode/prefill-chunk step.
//!
//! Each kernel case runs in f32, f16 and bf16 on fresh N(0, 1) inputs; tolerances (on
//! |fused − reference| / max(1, |reference|)) are stated per dtype in [`tolerance`].
#![cfg(feature = "cuda")]

mod engine_support;

use candle_core::{DType, Device, Tensor, D};
use llm_engine::cuda::fused::{
    add_layer_norm, add_rms_norm, rope_qkv_to_cache, rope_split_qkv, silu_mul, CacheTarget, Rotary,
};
use llm_engine::cuda::gemv::{small_m_linear, small_m_linear_with, small_m_linear_with_split};
use llm_engine::cuda::{
    argmax_rows, convert_fp8, reshape_and_cache, topk_rows, TopKRow, NO_ARGMAX,
};
use llm_engine::models::{load_model, LoadFormat, ModelSource, SeqSlice};
use llm_engine::sampling::{argmax, sample_from_candidates, sample_token, SamplingParams};
use llm_engine::PagedKvStorage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

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

/// Allowed |fused − reference| / max(1, |reference|) of one element: a few units in the last
/// place of the dtype (the kernels compute in f32 and round once where candle's half ops may
/// round each step; reductions sum in another order).
fn tolerance(dtype: DType) -> f32 {
    match dtype {
        DType::F32 => 1e-5,
        DType::F16 => 4e-3,
        _ => 3e-2,
    }
}

/// N(0, 1) values of `shape` in `dtype` on `dev`.
fn randn(rng: &mut StdRng, shape: &[usize], dtype: DType, dev: &Device) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    Tensor::from_vec(data, shape, dev)
        .and_then(|t| t.to_dtype(dtype))
        .expect("random tensor")
}

/// The worst relative difference of two tensors of the same shape, and where it is.
fn worst(got: &Tensor, want: &Tensor) -> (f32, usize) {
    assert_eq!(got.dims(), want.dims(), "shapes differ");
    let flat = |t: &Tensor| {
        t.flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .expect("to host")
    };
    let (g, w) = (flat(got), flat(want));
    let mut best = (0f32, 0usize);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let d = (a - b).abs() / b.abs().max(1.0);
        let d = if d.is_nan() { f32::INFINITY } else { d };
        if d > best.0 {
            best = (d, i);
        }
    }
    best
}

/// Collects "case: worst difference" lines over the tolerance.
fn check(failures: &mut Vec<String>, case: String, got: &Tensor, want: &Tensor, dtype: DType) {
    let (d, at) = worst(got, want);
    if d > tolerance(dtype) {
        failures.push(format!(
            "{case}: difference {d} at element {at} > {}",
            tolerance(dtype)
        ));
    }
}

fn assert_none(failures: Vec<String>, cases: usize) {
    assert!(cases > 0, "no case ran");
    assert!(
        failures.is_empty(),
        "{} of {cases} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn add_rms_norm_matches_candle() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(1);
    let (mut failures, mut cases) = (Vec::new(), 0);
    for dtype in DTYPES {
        for rows in [1, 7, 300] {
            for hidden in [1, 33, 1000, 4096, 4099, 9001] {
                let x = randn(&mut rng, &[rows, hidden], dtype, &dev);
                let d = randn(&mut rng, &[rows, hidden], dtype, &dev);
                let w = randn(&mut rng, &[hidden], dtype, &dev);
                let (sum, normed) = add_rms_norm(&x, &d, &w, 1e-5).expect("add_rms_norm");
                let want_sum = (&x + &d).expect("add");
                let want = candle_nn::ops::rms_norm(&want_sum, &w, 1e-5).expect("rms_norm");
                let case = format!("{dtype:?} rows {rows} hidden {hidden}");
                check(&mut failures, format!("{case} sum"), &sum, &want_sum, dtype);
                check(&mut failures, format!("{case} norm"), &normed, &want, dtype);
                cases += 2;
            }
        }
    }
    assert_none(failures, cases);
}

#[test]
fn add_layer_norm_matches_candle() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(2);
    let (mut failures, mut cases) = (Vec::new(), 0);
    for dtype in DTYPES {
        for rows in [1, 7, 300] {
            for hidden in [1, 33, 1000, 4096, 4099, 9001] {
                let x = randn(&mut rng, &[rows, hidden], dtype, &dev);
                let d = randn(&mut rng, &[rows, hidden], dtype, &dev);
                let w = randn(&mut rng, &[hidden], dtype, &dev);
                let b = randn(&mut rng, &[hidden], dtype, &dev);
                let (sum, normed) = add_layer_norm(&x, &d, &w, &b, 1e-5).expect("add_layer_norm");
                let want_sum = (&x + &d).expect("add");
                let want = candle_nn::ops::layer_norm(&want_sum, &w, &b, 1e-5).expect("layer_norm");
                let case = format!("{dtype:?} rows {rows} hidden {hidden}");
                check(&mut failures, format!("{case} sum"), &sum, &want_sum, dtype);
                check(&mut failures, format!("{case} norm"), &normed, &want, dtype);
                cases += 2;
            }
        }
    }
    assert_none(failures, cases);
}

#[test]
fn silu_mul_matches_candle() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(3);
    let (mut failures, mut cases) = (Vec::new(), 0);
    for dtype in DTYPES {
        for rows in [1, 5, 129] {
            for inter in [1, 37, 2755] {
                let gu = randn(&mut rng, &[rows, 2 * inter], dtype, &dev);
                let got = silu_mul(&gu).expect("silu_mul");
                let gate = gu.narrow(1, 0, inter).expect("gate");
                let up = gu.narrow(1, inter, inter).expect("up");
                let want = (candle_nn::ops::silu(&gate).expect("silu") * up).expect("mul");
                let case = format!("{dtype:?} rows {rows} intermediate {inter}");
                check(&mut failures, case, &got, &want, dtype);
                cases += 1;
            }
        }
    }
    assert_none(failures, cases);
}

#[test]
fn rope_split_qkv_matches_candle() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(4);
    let (mut failures, mut cases) = (Vec::new(), 0);
    let max_pos = 97;
    for dtype in DTYPES {
        for (heads, kv_heads, hd) in [(4, 4, 64), (8, 2, 128), (3, 1, 6)] {
            // Tables as the models build them: angles p * theta^(-2i/d), in the dtype.
            let half = hd / 2;
            let mut cos = Vec::new();
            let mut sin = Vec::new();
            for p in 0..max_pos {
                for i in 0..half {
                    let a = p as f32 / 10000f32.powf(2.0 * i as f32 / hd as f32);
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
            let table = |v: Vec<f32>| {
                Tensor::from_vec(v, (max_pos, half), &dev)
                    .and_then(|t| t.to_dtype(dtype))
                    .expect("table")
            };
            let (cos, sin) = (table(cos), table(sin));
            let cos_sin = Tensor::cat(&[&cos, &sin], 1).expect("cos_sin");
            for rows in [1, 9, 200] {
                let width = (heads + 2 * kv_heads) * hd;
                let qkv = randn(&mut rng, &[rows, width], dtype, &dev);
                let pos: Vec<u32> = (0..rows)
                    .map(|_| rng.random_range(0..max_pos as u32))
                    .collect();
                let positions = Tensor::new(pos.as_slice(), &dev).expect("positions");
                let rotary = Rotary {
                    cos_sin: &cos_sin,
                    positions: &positions,
                };
                let (qs, kvs) = (heads * hd, kv_heads * hd);
                let part = |start: usize, len: usize| {
                    qkv.narrow(1, start, len)
                        .and_then(|t| t.contiguous())
                        .expect("part")
                };
                let (c, s) = (
                    cos.index_select(&positions, 0).expect("cos rows"),
                    sin.index_select(&positions, 0).expect("sin rows"),
                );
                let rope = |t: Tensor, h: usize| {
                    let t = t.reshape((1, rows, h, hd)).expect("thd");
                    candle_nn::rotary_emb::rope_thd(&t, &c, &s)
                        .and_then(|t| t.reshape((rows, h * hd)))
                        .expect("rope_thd")
                };
                let case = format!("{dtype:?} heads {heads}/{kv_heads} head_dim {hd} rows {rows}");
                let (q, k, v) =
                    rope_split_qkv(&qkv, Some(rotary), heads, kv_heads, hd).expect("rope");
                check(
                    &mut failures,
                    format!("{case} q"),
                    &q,
                    &rope(part(0, qs), heads),
                    dtype,
                );
                check(
                    &mut failures,
                    format!("{case} k"),
                    &k,
                    &rope(part(qs, kvs), kv_heads),
                    dtype,
                );
                check(
                    &mut failures,
                    format!("{case} v"),
                    &v,
                    &part(qs + kvs, kvs),
                    DType::F32,
                );
                let (q, k, v) = rope_split_qkv(&qkv, None, heads, kv_heads, hd).expect("split");
                check(
                    &mut failures,
                    format!("{case} split q"),
                    &q,
                    &part(0, qs),
                    DType::F32,
                );
                check(
                    &mut failures,
                    format!("{case} split k"),
                    &k,
                    &part(qs, kvs),
                    DType::F32,
                );
                check(
                    &mut failures,
                    format!("{case} split v"),
                    &v,
                    &part(qs + kvs, kvs),
                    DType::F32,
                );
                cases += 6;
                // The split outputs are contiguous: attention reads them as plain rows.
                assert!(q.is_contiguous() && k.is_contiguous() && v.is_contiguous());
            }
        }
    }
    assert_none(failures, cases);
}

/// The fused rotary + cache write against the split kernel followed by `reshape_and_cache`
/// for k and v: q and the whole caches (untouched slots included) must be identical. Also
/// over fp8 E4M3 caches (`*_fp8` kernels, qkv scaled so that some values pass ±448), whose
/// written rows must equal the host's conversion (candle / `float8`: round to nearest even,
/// saturated) of the dtype's rows.
#[test]
fn rope_qkv_to_cache_matches_split_then_reshape_and_cache() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(7);
    let (mut failures, mut cases) = (Vec::new(), 0);
    let max_pos = 64;
    let num_slots = 512;
    for dtype in DTYPES {
        for fp8 in [false, true] {
            let (cache_dtype, scale) = if fp8 {
                (DType::F8E4M3, 300.0)
            } else {
                (dtype, 1.0)
            };
            for (heads, kv_heads, hd) in [(4, 4, 64), (8, 2, 128), (3, 1, 6)] {
                let cos_sin = randn(&mut rng, &[max_pos, hd], dtype, &dev);
                for rows in [1, 9, 200] {
                    let width = (heads + 2 * kv_heads) * hd;
                    let qkv = randn(&mut rng, &[rows, width], dtype, &dev)
                        .affine(scale, 0.0)
                        .expect("scaled qkv");
                    let pos: Vec<u32> = (0..rows)
                        .map(|_| rng.random_range(0..max_pos as u32))
                        .collect();
                    let positions = Tensor::new(pos.as_slice(), &dev).expect("positions");
                    // Distinct scattered slots: a stride coprime with num_slots.
                    let slots: Vec<u32> =
                        (0..rows as u32).map(|r| (r * 37 + 5) % num_slots).collect();
                    let slot_mapping = Tensor::new(slots.as_slice(), &dev).expect("slots");
                    // Made on the host: candle 0.11 cannot cast F8E4M3 on CUDA.
                    let cache = |rng: &mut StdRng| {
                        randn(
                            rng,
                            &[kv_heads, num_slots as usize, hd],
                            dtype,
                            &Device::Cpu,
                        )
                        .to_dtype(cache_dtype)
                        .and_then(|t| t.to_device(&dev))
                        .expect("cache")
                    };
                    let (k_a, v_a) = (cache(&mut rng), cache(&mut rng));
                    let (k_b, v_b) = (k_a.copy().expect("copy"), v_a.copy().expect("copy"));
                    for rotary in [true, false] {
                        let rot = rotary.then_some(Rotary {
                            cos_sin: &cos_sin,
                            positions: &positions,
                        });
                        let (q_a, k, v) =
                            rope_split_qkv(&qkv, rot, heads, kv_heads, hd).expect("split");
                        let k = k.reshape((rows, kv_heads, hd)).expect("k rows");
                        let v = v.reshape((rows, kv_heads, hd)).expect("v rows");
                        reshape_and_cache(&k_a, &k, &slot_mapping).expect("k cache");
                        reshape_and_cache(&v_a, &v, &slot_mapping).expect("v cache");
                        let target = CacheTarget {
                            k_cache: &k_b,
                            v_cache: &v_b,
                            slot_mapping: &slot_mapping,
                        };
                        let q_b = rope_qkv_to_cache(&qkv, rot, heads, kv_heads, hd, target)
                            .expect("rope_qkv_to_cache");
                        let case = format!(
                            "{dtype:?} cache {cache_dtype:?} heads {heads}/{kv_heads} head_dim {hd} rows {rows} rotary {rotary}"
                        );
                        // Identical arithmetic: exact equality is expected (f32 tolerance is
                        // far below one unit of any dtype's last place at these magnitudes).
                        check(&mut failures, format!("{case} q"), &q_b, &q_a, DType::F32);
                        for (name, got, want, rows_t) in
                            [("k", &k_b, &k_a, &k), ("v", &v_b, &v_a, &v)]
                        {
                            let as_f32 = |t: &Tensor| {
                                t.to_device(&Device::Cpu)
                                    .and_then(|t| t.to_dtype(DType::F32))
                                    .expect("to f32")
                            };
                            check(
                                &mut failures,
                                format!("{case} {name} cache"),
                                &as_f32(got),
                                &as_f32(want),
                                DType::F32,
                            );
                            if fp8 {
                                let written =
                                    host_fp8_rows(got, &slots).expect("written cache rows");
                                let expected = rows_t
                                    .to_device(&Device::Cpu)
                                    .and_then(|t| t.to_dtype(DType::F32))
                                    .and_then(|t| t.clamp(-448f32, 448f32))
                                    .and_then(|t| t.to_dtype(DType::F8E4M3))
                                    .and_then(|t| t.to_dtype(DType::F32))
                                    .and_then(|t| t.transpose(0, 1))
                                    .expect("host conversion");
                                check(
                                    &mut failures,
                                    format!("{case} {name} fp8 rows vs the host's rounding"),
                                    &written,
                                    &expected,
                                    DType::F32,
                                );
                                cases += 1;
                            }
                        }
                        cases += 3;
                    }
                }
            }
        }
    }
    assert_none(failures, cases);
}

/// `convert_fp8` both ways against the host's conversion (clamp to ±448, then candle's /
/// `float8`'s round to nearest even): random values at several scales plus the edge cases
/// (ties, the largest finite value and the next tie above it, subnormals and half the
/// smallest, ±inf, NaN, signed zeros); back from fp8 every value must be exact.
#[test]
fn convert_fp8_matches_the_host() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(8);
    let mut values: Vec<f32> = vec![
        0.0,
        -0.0,
        448.0,
        -448.0,
        464.0,
        480.0,
        1e5,
        -1e5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        2f32.powi(-9),
        2f32.powi(-10),
        3.0 * 2f32.powi(-10),
        1.0625,
        1.1875,
        -2.125,
    ];
    for scale in [1e-3f32, 1.0, 30.0, 600.0] {
        values.extend((0..2000).map(|_| scale * (rng.random::<f32>() * 2.0 - 1.0)));
    }
    let host = Tensor::new(values.as_slice(), &Device::Cpu).expect("values");
    let mut failures = Vec::new();
    for dtype in DTYPES {
        let input = host.to_dtype(dtype).expect("input in dtype");
        let want = input
            .to_dtype(DType::F32)
            .and_then(|t| t.clamp(-448f32, 448f32))
            .and_then(|t| t.to_dtype(DType::F8E4M3))
            .expect("host fp8");
        let on_device = input.to_device(&dev).expect("input on the device");
        let got = convert_fp8(&on_device, DType::F8E4M3).expect("device fp8");
        let back = convert_fp8(&got, dtype).expect("back from fp8");
        let bits = |t: &Tensor| -> Vec<f32> {
            t.to_device(&Device::Cpu)
                .and_then(|t| t.to_dtype(DType::F32))
                .and_then(|t| t.to_vec1::<f32>())
                .expect("to host")
        };
        let (w, g, b) = (bits(&want), bits(&got), bits(&back));
        for (i, x) in values.iter().enumerate() {
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            if !same(g[i], w[i]) || !same(b[i], w[i]) {
                failures.push(format!(
                    "{dtype:?} {x}: device fp8 {} (back {}), host {}",
                    g[i], b[i], w[i]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conversions differ:\n{}",
        failures.len(),
        3 * values.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The rows `slots` of an fp8 cache `[kv_heads, num_slots, head_dim]` as f32 on the host:
/// `[kv_heads, slots.len(), head_dim]`.
fn host_fp8_rows(cache: &Tensor, slots: &[u32]) -> candle_core::Result<Tensor> {
    let idx = Tensor::new(slots, &Device::Cpu)?;
    cache
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .index_select(&idx, 1)
}

/// The small-M linear kernel against cuBLAS (`x · wᵀ + b`), and the cases it declines.
#[test]
fn gemv_matches_candle_matmul() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(8);
    let (mut failures, mut cases) = (Vec::new(), 0);
    for dtype in DTYPES {
        for (n, k) in [
            (1, 8),
            (37, 64),
            (1000, 1376),
            (4096, 4096),
            (300, 11008),
            (50257, 768),
        ] {
            let w = randn(&mut rng, &[n, k], dtype, &dev);
            let b = randn(&mut rng, &[n], dtype, &dev);
            for m in 1..=4 {
                let x = randn(&mut rng, &[m, k], dtype, &dev);
                let plain = x.matmul(&w.t().expect("t")).expect("matmul");
                let with_bias = plain.broadcast_add(&b).expect("bias");
                let variants = [
                    (None, None),
                    (Some(1), Some(4)),
                    (Some(1), Some(8)),
                    (Some(2), None),
                    (Some(4), None),
                ];
                for ((split, depth), (bias, want)) in variants
                    .into_iter()
                    .flat_map(|s| [(s, (None, &plain)), (s, (Some(&b), &with_bias))])
                {
                    let got = small_m_linear_with(&x, &w, bias, split, depth)
                        .expect("gemv")
                        .expect("the kernel takes this shape");
                    // Sums of k products of N(0, 1) values: compare relative to their scale.
                    let scale = (k as f64).sqrt();
                    let case = format!(
                        "{dtype:?} m {m} n {n} k {k} split {split:?} depth {depth:?} bias {}",
                        bias.is_some()
                    );
                    check(
                        &mut failures,
                        case,
                        &(got / scale).expect("scale"),
                        &(want / scale).expect("scale"),
                        dtype,
                    );
                    cases += 1;
                }
            }
        }
    }
    let w = randn(&mut rng, &[16, 64], DType::F16, &dev);
    let x5 = randn(&mut rng, &[5, 64], DType::F16, &dev);
    assert!(small_m_linear(&x5, &w, None).expect("m 5").is_none());
    let w7 = randn(&mut rng, &[16, 7], DType::F16, &dev);
    let x7 = randn(&mut rng, &[1, 7], DType::F16, &dev);
    assert!(small_m_linear(&x7, &w7, None).expect("k 7").is_none());
    let wc = Tensor::zeros((16, 64), DType::F32, &Device::Cpu).expect("cpu w");
    let xc = Tensor::zeros((1, 64), DType::F32, &Device::Cpu).expect("cpu x");
    assert!(small_m_linear(&xc, &wc, None).expect("cpu").is_none());
    let x1 = randn(&mut rng, &[1, 64], DType::F16, &dev);
    assert!(small_m_linear_with_split(&x1, &w, None, Some(3))
        .expect("split 3")
        .is_none());
    assert!(small_m_linear_with(&x1, &w, None, Some(2), Some(8))
        .expect("split 2 depth 8")
        .is_none());
    assert_none(failures, cases);
}

/// The device argmax against the host's `sampling::argmax` on the same f32 rows: random rows,
/// rows with a tied maximum (lowest index wins), NaN in the row (skipped), -inf only (a real
/// answer: index 0) and NaN only (`NO_ARGMAX`, which the host reports as `None`).
#[test]
fn argmax_rows_matches_the_host() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(0xA46);
    let mut cases = 0;
    let mut failures = Vec::new();
    for vocab in [1usize, 3, 8, 1001, 32000, 50257] {
        for rows in [1usize, 7, 256] {
            let mut data = host_logits(&mut rng, rows, vocab);
            for r in 0..rows {
                let row = &mut data[r * vocab..(r + 1) * vocab];
                match r % 5 {
                    1 if vocab > 2 => {
                        // The same maximum twice: the lower index must win.
                        let (a, b) = (rng.random_range(0..vocab), rng.random_range(0..vocab));
                        row[a] = 100.0;
                        row[b] = 100.0;
                    }
                    2 => {
                        row[rng.random_range(0..vocab)] = f32::NAN;
                        row[rng.random_range(0..vocab)] = f32::NAN;
                    }
                    3 => row.fill(f32::NEG_INFINITY),
                    4 if r == 4 => row.fill(f32::NAN),
                    _ => {}
                }
            }
            let logits = Tensor::from_vec(data.clone(), (rows, vocab), &dev).expect("logits");
            let got = argmax_rows(&logits)
                .and_then(|t| Ok(t.to_vec1::<u32>()?))
                .expect("argmax_rows");
            for r in 0..rows {
                cases += 1;
                let want = argmax(&data[r * vocab..(r + 1) * vocab]).unwrap_or(NO_ARGMAX);
                if got[r] != want {
                    failures.push(format!(
                        "vocab {vocab} rows {rows} row {r}: {} != host {want}",
                        got[r]
                    ));
                }
            }
        }
    }
    assert_none(failures, cases);
    let half = Tensor::zeros((2, 4), DType::F16, &dev).expect("f16 logits");
    let e = argmax_rows(&half).expect_err("f16 logits");
    assert!(e.to_string().contains("argmax_rows_f32"), "{e}");
}

/// `rows × vocab` N(0, 1) logits on the host, row-major.
fn host_logits(rng: &mut StdRng, rows: usize, vocab: usize) -> Vec<f32> {
    randn(rng, &[rows, vocab], DType::F32, &Device::Cpu)
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("host rows")
}

/// `topk_rows_f32` + `sample_from_candidates` (the engine's device top-k path) draw the token
/// the host's `sample_token` draws from the whole row, on fresh random rows with ties, NaN,
/// ±inf and signed zeros, top-k 1..256 with and without top-p / min-p, several temperatures;
/// greedy rows (k 1, infinities kept) give the host's argmax. Rows of one launch mix them.
#[test]
fn topk_rows_draw_what_the_host_sampler_draws() {
    let Some(dev) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(0x70C);
    let mut cases = 0;
    let mut failures = Vec::new();
    for vocab in [1usize, 5, 300, 32000, 50257] {
        for rows in [1usize, 9, 64] {
            let mut data = host_logits(&mut rng, rows, vocab);
            for r in 0..rows {
                let row = &mut data[r * vocab..(r + 1) * vocab];
                for _ in 0..(vocab / 20).min(200) {
                    let (a, b) = (rng.random_range(0..vocab), rng.random_range(0..vocab));
                    row[a] = row[b];
                }
                if vocab > 4 {
                    row[rng.random_range(0..vocab)] = f32::NAN;
                    row[rng.random_range(0..vocab)] = f32::INFINITY;
                    row[rng.random_range(0..vocab)] = f32::NEG_INFINITY;
                    row[rng.random_range(0..vocab)] = -0.0;
                    row[rng.random_range(0..vocab)] = 0.0;
                }
            }
            let params: Vec<SamplingParams> = (0..rows)
                .map(|r| {
                    if r % 4 == 3 {
                        return SamplingParams::greedy(1);
                    }
                    SamplingParams {
                        temperature: [0.25f32, 0.8, 1.0, 1.7][r % 4],
                        top_k: [1usize, 2, 50, 256][rng.random_range(0..4usize)],
                        top_p: if r % 3 == 0 {
                            1.0
                        } else {
                            rng.random_range(0.1f32..1.0)
                        },
                        min_p: if r % 5 == 0 { 0.1 } else { 0.0 },
                        ..SamplingParams::default()
                    }
                })
                .collect();
            let specs: Vec<TopKRow> = params
                .iter()
                .map(|p| {
                    if p.is_greedy() {
                        TopKRow {
                            k: 1,
                            inv_temperature: 1.0,
                            greedy: true,
                        }
                    } else {
                        TopKRow {
                            k: p.top_k,
                            inv_temperature: 1.0 / p.temperature,
                            greedy: false,
                        }
                    }
                })
                .collect();
            let logits = Tensor::from_vec(data.clone(), (rows, vocab), &dev).expect("logits");
            let cands = topk_rows(&logits, &specs).expect("topk_rows");
            for (r, p) in params.iter().enumerate() {
                let host_row = &data[r * vocab..(r + 1) * vocab];
                let row = cands.row(r);
                for pos in 0..3 {
                    cases += 1;
                    let (got, want) = if p.is_greedy() {
                        (row.first().map(|c| c.0), argmax(host_row))
                    } else {
                        (
                            sample_from_candidates(&row, p, r as u64, pos),
                            sample_token(host_row, p, r as u64, pos),
                        )
                    };
                    if got != want {
                        failures.push(format!(
                            "vocab {vocab} rows {rows} row {r} ({p:?}) position {pos}: {got:?} != host {want:?}"
                        ));
                    }
                }
            }
        }
    }
    assert_none(failures, cases);
}

/// Bad shapes are a typed error naming the kernel, not a panic or a launch.
#[test]
fn bad_shapes_name_the_kernel() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::zeros((3, 8), DType::F16, &dev).expect("x");
    let d = Tensor::zeros((3, 9), DType::F16, &dev).expect("delta");
    let w = Tensor::zeros(8, DType::F16, &dev).expect("w");
    let e = add_rms_norm(&x, &d, &w, 1e-5).expect_err("mismatched delta");
    assert!(e.to_string().contains("add_rms_norm_f16"), "{e}");
    let e = silu_mul(&d).expect_err("odd width");
    assert!(e.to_string().contains("silu_mul_f16"), "{e}");
    let e = rope_split_qkv(&x, None, 1, 1, 3).expect_err("odd head_dim");
    assert!(e.to_string().contains("rope_split_qkv_f16"), "{e}");
}

/// All tokens' logits of two steps (a prefill, then decodes and a prefill chunk over the
/// cache) of `fixture` in `dtype`, built with `LLM_ENGINE_FUSED` = `fused`.
fn fixture_logits(dir: &std::path::Path, dtype: DType, dev: &Device, fused: bool) -> Vec<Tensor> {
    // Only this test builds models in this binary, so the variable is read by this load alone.
    std::env::set_var("LLM_ENGINE_FUSED", if fused { "1" } else { "0" });
    let model = load_model(
        &ModelSource::Dir(dir.to_path_buf()),
        LoadFormat::Safetensors,
        dtype,
        dev,
        0,
    )
    .expect("load fixture");
    std::env::remove_var("LLM_ENGINE_FUSED");
    let cfg = &model.config;
    let mut kv = PagedKvStorage::new(cfg, 32, 16, dtype, dev).expect("kv");
    let toks = |n: usize, s: u32| -> Vec<u32> {
        (0..n as u32)
            .map(|t| 1 + (t * 31 + s) % (cfg.vocab_size as u32 - 1))
            .collect()
    };
    let slice = |token_ids, start_pos, block_table| SeqSlice {
        token_ids,
        start_pos,
        block_table,
        want_logits: true,
    };
    let first = vec![
        slice(toks(37, 1), 0, vec![4, 9, 2, 30]),
        slice(toks(5, 2), 0, vec![7, 1, 3]),
    ];
    let second = vec![
        slice(toks(1, 3), 37, vec![4, 9, 2, 30]),
        slice(toks(11, 4), 5, vec![7, 1, 3]),
    ];
    [first, second]
        .iter()
        .map(|batch| {
            model
                .model
                .forward_all_logits(batch, &mut kv)
                .expect("forward")
        })
        .collect()
}

#[test]
fn fused_models_match_the_op_path() {
    let Some(dev) = gpu() else { return };
    let (mut failures, mut cases) = (Vec::new(), 0);
    for name in engine_support::FIXTURES {
        let Some(dir) = engine_support::fixture_dir(name) else {
            eprintln!("fixture {name} absent, skipped");
            continue;
        };
        // The bounds the GPU op path meets against the CPU engine (engine_cuda_attention).
        for (dtype, tol) in [
            (DType::F32, 1e-4f32),
            (DType::F16, 3e-2),
            (DType::BF16, 2e-1),
        ] {
            let fused = fixture_logits(&dir, dtype, &dev, true);
            let reference = fixture_logits(&dir, dtype, &dev, false);
            for (step, (f, r)) in fused.iter().zip(&reference).enumerate() {
                let diff = (f - r)
                    .and_then(|d| d.abs())
                    .and_then(|d| d.max(D::Minus1))
                    .and_then(|d| d.max(0))
                    .and_then(|d| d.to_scalar::<f32>())
                    .expect("difference");
                if diff.is_nan() || diff > tol {
                    failures.push(format!(
                        "{name} {dtype:?} step {step}: max |diff| {diff} > {tol}"
                    ));
                }
                cases += 1;
            }
        }
    }
    assert_none(failures, cases);
}
