//! The paged path against independent references on the same weights:
//! - Llama (GQA, llama3 rope scaling) against candle-transformers' `llama` with its contiguous
//!   KV cache, prefill then decode, prompts spanning several blocks of 4 and 16 tokens;
//! - GPT-2 and OPT (pre-norm, and post-norm with project_in/out like opt-350m): incremental
//!   paged decoding against a full recompute of the whole sequence without any cached state.

mod models_support;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama as ref_llama;
use llm_engine::models::{load_model, CausalLm, LoadFormat, ModelSource, SeqSlice};
use llm_engine::PagedKvStorage;
use models_support::hf_writer::{
    gpt2_tensors, llama_gqa_config, llama_tensors, opt_tensors, write_model,
};
use models_support::{
    argmax_rows, assert_close, fixture_dir, paged_logits_chunked, test_device, BlockAllocator,
};

fn prompt(len: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % vocab as u64) as u32
        })
        .collect()
}

fn load_dir(dir: &std::path::Path) -> Box<dyn CausalLm> {
    load_model(
        &ModelSource::Dir(dir.to_path_buf()),
        LoadFormat::Auto,
        DType::F32,
        &test_device(),
        0,
    )
    .expect("model loads")
    .model
}

/// Prefill `prompt` then decode `steps` greedy tokens in both models, comparing the
/// last-token logits at every step.
fn compare_with_candle_llama(
    dir: &std::path::Path,
    tokens: &[u32],
    steps: usize,
    block_size: usize,
) {
    let ours = load_dir(dir);
    let cfg_text = std::fs::read_to_string(dir.join("config.json")).expect("config");
    let mut cfg_json: serde_json::Value = serde_json::from_str(&cfg_text).expect("json");
    // candle's LlamaConfig reads the legacy spelling; translate transformers-5 rope_parameters.
    if let Some(rp) = cfg_json.get("rope_parameters").cloned() {
        cfg_json["rope_theta"] = rp["rope_theta"].clone();
        if rp["rope_type"] != "default" {
            cfg_json["rope_scaling"] = rp;
        }
    }
    let ref_cfg = serde_json::from_value::<ref_llama::LlamaConfig>(cfg_json)
        .expect("candle llama config")
        .into_config(false);
    let files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "safetensors")
                && !p.ends_with("expected.safetensors")
        })
        .collect();
    // SAFETY: test files are not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &test_device()) }
        .expect("vb");
    let reference = ref_llama::Llama::load(vb, &ref_cfg).expect("candle llama loads");
    let mut cache =
        ref_llama::Cache::new(true, DType::F32, &ref_cfg, &test_device()).expect("cache");

    let total = tokens.len() + steps;
    let num_blocks = total.div_ceil(block_size) + 3;
    let mut kv = PagedKvStorage::new(
        ours.config(),
        num_blocks,
        block_size,
        DType::F32,
        &test_device(),
    )
    .expect("kv");
    let mut alloc = BlockAllocator::new(num_blocks);
    let mut table = Vec::new();
    let mut pending = tokens.to_vec();
    let mut pos = 0;
    for step in 0..=steps {
        let input = Tensor::new(pending.as_slice(), &test_device())
            .expect("ids")
            .unsqueeze(0)
            .expect("batch");
        let theirs = reference
            .forward(&input, pos, &mut cache)
            .expect("candle forward");
        alloc.cover(&mut table, pos + pending.len(), block_size);
        let slice = SeqSlice {
            token_ids: pending.clone(),
            start_pos: pos,
            block_table: table.clone(),
            want_logits: true,
        };
        let mine = ours.forward(&[slice], &mut kv).expect("paged forward");
        assert_close(
            &mine,
            &theirs,
            1e-4,
            &format!("step {step} (block size {block_size})"),
        );
        let next = argmax_rows(&theirs).expect("argmax")[0];
        pos += pending.len();
        pending = vec![next];
    }
}

#[test]
fn paged_llama_matches_candle_transformers_llama_with_a_contiguous_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = llama_gqa_config();
    write_model(tmp.path(), &cfg, &llama_tensors(&cfg), 11, 1);
    let tokens = prompt(45, 256, 3);
    for block_size in [4, 16] {
        compare_with_candle_llama(tmp.path(), &tokens, 12, block_size);
    }
}

#[test]
fn paged_llama_matches_candle_transformers_on_the_golden_fixtures() {
    for name in ["llama-tiny", "llama3-gqa-tiny"] {
        let Some(dir) = fixture_dir(name) else {
            continue;
        };
        let tokens = prompt(37, 320, 5);
        compare_with_candle_llama(&dir, &tokens, 8, 4);
    }
}

/// Incremental paged decoding (prefill in chunks of 7, then one token per step, block size 4)
/// gives the logits of a full recompute of the whole sequence in a fresh cache.
fn incremental_matches_full_recompute(dir: &std::path::Path, vocab: usize) {
    let model = load_dir(dir);
    let seq = prompt(30, vocab, 9);
    let full = paged_logits_chunked(model.as_ref(), &seq, 64, usize::MAX).expect("full");
    let bs = 4;
    let num_blocks = seq.len().div_ceil(bs) + 1;
    let mut kv = PagedKvStorage::new(model.config(), num_blocks, bs, DType::F32, &test_device())
        .expect("kv");
    let mut alloc = BlockAllocator::new(num_blocks);
    let mut table = Vec::new();
    let mut pos = 0;
    while pos < seq.len() {
        let n = if pos < 14 { 7 } else { 1 };
        alloc.cover(&mut table, pos + n, bs);
        let slice = SeqSlice {
            token_ids: seq[pos..pos + n].to_vec(),
            start_pos: pos,
            block_table: table.clone(),
            want_logits: true,
        };
        let got = model.forward(&[slice], &mut kv).expect("step");
        let want = full.narrow(0, pos + n - 1, 1).expect("row");
        assert_close(
            &got,
            &want,
            1e-4,
            &format!("{} at position {}", dir.display(), pos + n - 1),
        );
        pos += n;
    }
}

#[test]
fn gpt2_incremental_decoding_matches_full_recompute() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = serde_json::json!({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64,
                                 "vocab_size": 200, "layer_norm_epsilon": 1e-5, "eos_token_id": 0});
    // The original `gpt2` checkpoint has no `transformer.` prefix.
    write_model(tmp.path(), &cfg, &gpt2_tensors(&cfg, ""), 21, 1);
    incremental_matches_full_recompute(tmp.path(), 200);
}

#[test]
fn opt_pre_norm_and_post_norm_with_projections_incremental_matches_full_recompute() {
    for (pre, e) in [(true, 64), (false, 32)] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = serde_json::json!({"model_type": "opt", "hidden_size": 64, "ffn_dim": 128, "num_hidden_layers": 2,
                                     "num_attention_heads": 4, "max_position_embeddings": 64, "vocab_size": 200,
                                     "word_embed_proj_dim": e, "do_layer_norm_before": pre, "eos_token_id": 2});
        write_model(tmp.path(), &cfg, &opt_tensors(&cfg), 31, 1);
        incremental_matches_full_recompute(tmp.path(), 200);
    }
}

/// Prefill then greedy decode in our paged model and in `reference` (a candle-transformers
/// model with its own contiguous cache: `(input [1, n], offset) -> logits`), comparing the
/// last-token logits at every step.
fn compare_stepwise(
    ours: &dyn CausalLm,
    mut reference: impl FnMut(&Tensor, usize) -> Tensor,
    tokens: &[u32],
    steps: usize,
    block_size: usize,
) {
    let num_blocks = (tokens.len() + steps).div_ceil(block_size) + 1;
    let mut kv = PagedKvStorage::new(
        ours.config(),
        num_blocks,
        block_size,
        DType::F32,
        &test_device(),
    )
    .expect("kv");
    let mut alloc = BlockAllocator::new(num_blocks);
    let mut table = Vec::new();
    let mut pending = tokens.to_vec();
    let mut pos = 0;
    for step in 0..=steps {
        let input = Tensor::new(pending.as_slice(), &test_device())
            .and_then(|t| t.unsqueeze(0))
            .expect("ids");
        let theirs = reference(&input, pos)
            .flatten_all()
            .and_then(|t| t.unsqueeze(0))
            .expect("logits");
        alloc.cover(&mut table, pos + pending.len(), block_size);
        let slice = SeqSlice {
            token_ids: pending.clone(),
            start_pos: pos,
            block_table: table.clone(),
            want_logits: true,
        };
        let mine = ours.forward(&[slice], &mut kv).expect("paged forward");
        assert_close(
            &mine,
            &theirs,
            1e-4,
            &format!("step {step} (block size {block_size})"),
        );
        let next = argmax_rows(&theirs).expect("argmax")[0];
        pos += pending.len();
        pending = vec![next];
    }
}

fn safetensors_in(dir: &std::path::Path) -> VarBuilder<'static> {
    // SAFETY: test files are not modified while mapped.
    unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[dir.join("model.safetensors")],
            DType::F32,
            &test_device(),
        )
    }
    .expect("vb")
}

#[test]
fn qwen2_with_qkv_biases_matches_candle_transformers_qwen2() {
    use candle_transformers::models::qwen2;
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = serde_json::json!({"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 200, "max_position_embeddings": 256,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true, "use_sliding_window": false,
        "sliding_window": 256, "max_window_layers": 2, "hidden_act": "silu", "eos_token_id": 0});
    let mut tensors: Vec<_> = llama_tensors(&cfg);
    for l in 0..2 {
        for (n, size) in [("q_proj", 64), ("k_proj", 32), ("v_proj", 32)] {
            tensors.push((format!("model.layers.{l}.self_attn.{n}.bias"), vec![size]));
        }
    }
    write_model(tmp.path(), &cfg, &tensors, 41, 1);
    let ours = load_dir(tmp.path());
    let ref_cfg: qwen2::Config = serde_json::from_value(cfg).expect("candle qwen2 config");
    let mut reference =
        qwen2::ModelForCausalLM::new(&ref_cfg, safetensors_in(tmp.path())).expect("qwen2 loads");
    compare_stepwise(
        ours.as_ref(),
        |x, pos| reference.forward(x, pos).expect("qwen2 forward"),
        &prompt(21, 200, 8),
        6,
        4,
    );
}

#[test]
fn mistral_matches_candle_transformers_mistral_inside_its_window() {
    use candle_transformers::models::mistral;
    let tmp = tempfile::tempdir().expect("tempdir");
    // candle's mistral lets a token see `window + 1` positions, transformers `window`; inside the
    // window (context < 64 here) they agree, and our mask follows transformers.
    let cfg = serde_json::json!({"model_type": "mistral", "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 200, "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false, "sliding_window": 64,
        "hidden_act": "silu", "eos_token_id": 2});
    write_model(tmp.path(), &cfg, &llama_tensors(&cfg), 51, 1);
    let ours = load_dir(tmp.path());
    assert_eq!(ours.config().sliding_window, Some(64));
    let ref_cfg: mistral::Config = serde_json::from_value(cfg).expect("candle mistral config");
    let mut reference =
        mistral::Model::new(&ref_cfg, safetensors_in(tmp.path())).expect("mistral loads");
    compare_stepwise(
        ours.as_ref(),
        |x, pos| reference.forward(x, pos).expect("mistral forward"),
        &prompt(30, 200, 4),
        8,
        4,
    );
}
