//! An fp8 (E4M3) KV cache (`kv_cache_dtype: Fp8E4M3`) against the default one on tiny-llama:
//! it holds 4× (f32 model) / 2× (f16 model) the blocks in the same bytes, and its logits and
//! greedy tokens stay close to the model-dtype cache's.

mod engine_support;

use candle_core::{DType, Device, Tensor};
use engine_support::*;
use llm_engine::engine::EngineConfig;
use llm_engine::models::SeqSlice;
use llm_engine::{
    load_model, resolve_model, EngineError, KvCacheDtype, LoadFormat, PagedKvStorage, Result,
};

fn config(dtype: DType, kv_cache_dtype: KvCacheDtype) -> EngineConfig {
    EngineConfig {
        dtype,
        kv_cache_dtype,
        ..tiny_config()
    }
}

/// Whether the engine tests' device can run an fp8 cache for a `dtype` model (the CPU always;
/// CUDA for f16/bf16 only).
fn fp8_supported(dtype: DType) -> bool {
    on_cpu() || matches!(dtype, DType::F16 | DType::BF16)
}

#[test]
fn fp8_cache_holds_more_blocks_in_the_same_bytes() {
    for (dtype, ratio) in [(DType::F32, 4), (DType::F16, 2)] {
        if !fp8_supported(dtype) {
            continue;
        }
        let model = llm_engine::presets::preset("tiny-llama").expect("preset");
        let auto_block = PagedKvStorage::bytes_per_block(&model, 16, dtype);
        // A budget of exactly 300 model-dtype blocks, so the fp8 count is exact too.
        let budget = Some(300 * auto_block as u64);
        let auto = engine(EngineConfig {
            kv_cache_bytes: budget,
            ..config(dtype, KvCacheDtype::Auto)
        });
        let fp8 = engine(EngineConfig {
            kv_cache_bytes: budget,
            ..config(dtype, KvCacheDtype::Fp8E4M3)
        });
        let (a, f) = (auto.kv_cache_info(), fp8.kv_cache_info());
        assert_eq!(a.num_blocks, 300, "{dtype:?}");
        assert_eq!(f.num_blocks, ratio * a.num_blocks, "{dtype:?}");
        assert_eq!(f.bytes_per_block * ratio, a.bytes_per_block);
        assert_eq!(f.capacity_tokens, ratio * a.capacity_tokens);
        assert_eq!(f.total_bytes, a.total_bytes);
        assert_eq!(fp8.memory().kv_cache_bytes, auto.memory().kv_cache_bytes);
        assert_eq!(
            (auto.kv_cache_dtype(), auto.kv_storage_dtype()),
            (KvCacheDtype::Auto, dtype)
        );
        assert_eq!(
            (fp8.kv_cache_dtype(), fp8.kv_storage_dtype()),
            (KvCacheDtype::Fp8E4M3, DType::F8E4M3)
        );
        assert_eq!(
            fp8.dtype(),
            dtype,
            "weights and activations keep the model dtype"
        );
    }
}

/// All-position f32 logits `[len, vocab]` of `tokens` (tiny-llama, dummy weights, CPU), fed
/// in chunks of 16 through a cache of `kv_dtype`, so later chunks read earlier ones from it.
fn logits(dtype: DType, kv_dtype: DType, tokens: &[u32]) -> Result<Tensor> {
    let m = load_model(
        &resolve_model("tiny-llama"),
        LoadFormat::Dummy,
        dtype,
        &Device::Cpu,
        7,
    )?;
    let bs = 16;
    let blocks = tokens.len().div_ceil(bs);
    let mut kv = PagedKvStorage::new(&m.config, blocks, bs, kv_dtype, &Device::Cpu)?;
    let table: Vec<u32> = (0..blocks as u32).rev().collect();
    let mut outs = Vec::new();
    for start in (0..tokens.len()).step_by(16) {
        let end = (start + 16).min(tokens.len());
        let slice = SeqSlice {
            token_ids: tokens[start..end].to_vec(),
            start_pos: start,
            block_table: table.clone(),
            want_logits: true,
        };
        outs.push(m.model.forward_all_logits(&[slice], &mut kv)?);
    }
    Ok(Tensor::cat(&outs, 0)?.to_dtype(DType::F32)?)
}

/// RMS of `a - b` over the RMS of `a`.
fn relative_rms(a: &Tensor, b: &Tensor) -> Result<f32> {
    let rms = |t: &Tensor| -> Result<f32> { Ok(t.sqr()?.mean_all()?.to_scalar::<f32>()?.sqrt()) };
    Ok(rms(&(a - b)?)? / rms(a)?)
}

/// Logits through an fp8 cache stay close to those through the model-dtype cache.
///
/// The tolerance: every cached K/V element carries up to 2⁻⁴ (6.25%) relative rounding error
/// (~3% RMS), which six layers of attention carry into the logits. Dummy weights give nearly
/// flat logits (RMS ~0.45), so that error is not hidden by a large logit range: measured
/// relative RMS error 4.5% for f32 and f16. We allow 10%, still 10× below the 1.4 between the
/// logits of two different inputs; and ask for more than 0.1%, so the cache really is fp8.
#[test]
fn fp8_cache_logits_stay_close() -> Result<()> {
    let tokens: Vec<u32> = (0..64u32).map(|i| (i * 37 + 11) % 4096).collect();
    let other: Vec<u32> = tokens.iter().map(|t| (t * 7 + 3) % 4096).collect();
    for dtype in [DType::F32, DType::F16] {
        let exact = logits(dtype, dtype, &tokens)?;
        let fp8 = logits(dtype, DType::F8E4M3, &tokens)?;
        let err = relative_rms(&exact, &fp8)?;
        let unrelated = relative_rms(&exact, &logits(dtype, dtype, &other)?)?;
        assert!(
            err < 0.1,
            "{dtype:?}: fp8 cache logits off by {err} (relative RMS)"
        );
        assert!(err > 1e-3, "{dtype:?}: {err}: no fp8 rounding seen");
        assert!(unrelated > 10.0 * err, "{dtype:?}: {unrelated} vs {err}");
    }
    Ok(())
}

/// The engine runs with an fp8 cache (chunked prefill, batched decodes through the CPU decode
/// kernel), every request finishes with its tokens, and the first greedy token of each prompt
/// equals the model-dtype cache's. Later greedy tokens may part: with dummy weights the top two
/// logits are often closer than the fp8 error (see `fp8_cache_logits_stay_close`).
#[test]
fn fp8_cache_engine_generates_like_auto() {
    let ps = prompts(&[5, 30, 12, 50], 4096, 3);
    for dtype in [DType::F32, DType::F16] {
        if !fp8_supported(dtype) {
            let err = llm_engine::Engine::new(config(dtype, KvCacheDtype::Fp8E4M3))
                .expect_err("fp8 cache of an f32 model on CUDA");
            assert!(matches!(err, EngineError::InvalidConfig(_)), "{err}");
            continue;
        }
        let small_batches = |kv| EngineConfig {
            max_num_batched_tokens: 24,
            ..config(dtype, kv)
        };
        let mut auto = engine(small_batches(KvCacheDtype::Auto));
        let mut fp8 = engine(small_batches(KvCacheDtype::Fp8E4M3));
        let a = outputs(&generate(&mut auto, &ps, &greedy(12)));
        let f = outputs(&generate(&mut fp8, &ps, &greedy(12)));
        for (x, y) in a.iter().zip(&f) {
            assert_eq!(y.len(), 12, "{dtype:?}");
            assert_eq!(x[0], y[0], "{dtype:?}: first tokens {x:?} vs {y:?}");
        }
        assert_eq!(fp8.num_free_blocks(), fp8.kv_cache_info().num_blocks);
    }
}
