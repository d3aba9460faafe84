//! Loading models: Hugging Face folders written by the test (single file and sharded with an
//! index), dtypes, dummy presets, the Hugging Face cache layout, config spellings, and the KV
//! storage's block operations.

mod models_support;

use candle_core::{DType, Device, Tensor};
use llm_engine::config::{Architecture, ModelConfig, RopeScaling};
use llm_engine::models::{load_model, resolve_model, LoadFormat, ModelSource, SeqSlice};
use llm_engine::presets::{preset, preset_names};
use llm_engine::weights::HfCacheModel;
use llm_engine::PagedKvStorage;
use models_support::hf_writer::{llama_gqa_config, llama_tensors, write_model};
use models_support::{assert_close, expected, fixture_dir, max_abs_diff, paged_logits_chunked};

fn tokens(n: usize, vocab: u32) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 37 + 11) % vocab).collect()
}

#[test]
fn sharded_checkpoint_with_index_loads_the_same_weights_as_a_single_file() {
    let cfg = llama_gqa_config();
    let single = tempfile::tempdir().expect("tempdir");
    let sharded = tempfile::tempdir().expect("tempdir");
    write_model(single.path(), &cfg, &llama_tensors(&cfg), 5, 1);
    write_model(sharded.path(), &cfg, &llama_tensors(&cfg), 5, 3);
    assert!(sharded
        .path()
        .join("model.safetensors.index.json")
        .is_file());
    let load = |p: &std::path::Path| {
        load_model(
            &ModelSource::Dir(p.to_path_buf()),
            LoadFormat::Safetensors,
            DType::F32,
            &Device::Cpu,
            0,
        )
        .expect("loads")
    };
    let (a, b) = (load(single.path()), load(sharded.path()));
    assert_eq!(a.config, b.config);
    assert_eq!(a.config.architecture, Architecture::Llama);
    assert!(a.tokenizer.is_none());
    assert!(a.load_time.as_nanos() > 0);
    let t = tokens(20, 256);
    let la = paged_logits_chunked(a.model.as_ref(), &t, 4, usize::MAX).expect("forward");
    let lb = paged_logits_chunked(b.model.as_ref(), &t, 4, usize::MAX).expect("forward");
    assert_eq!(max_abs_diff(&la, &lb).expect("diff").0, 0.0);
}

#[test]
fn half_precision_dtypes_track_the_f32_reference() {
    let Some(dir) = fixture_dir("llama3-gqa-tiny") else {
        return;
    };
    let p = &expected(&dir)[1];
    for (dtype, rel) in [(DType::F16, 2e-2), (DType::BF16, 6e-2)] {
        let m = load_model(
            &ModelSource::Dir(dir.clone()),
            LoadFormat::Auto,
            dtype,
            &Device::Cpu,
            0,
        )
        .expect("loads");
        assert_eq!(m.model.dtype(), dtype);
        let logits = paged_logits_chunked(m.model.as_ref(), &p.token_ids, 4, 5).expect("forward");
        assert_eq!(logits.dtype(), DType::F32, "logits are always f32");
        assert_close(&logits, &p.logits, rel, &format!("{dtype:?}"));
    }
}

#[test]
fn dummy_tiny_llama_is_seeded_and_runs() {
    let load = |seed| {
        load_model(
            &ModelSource::Preset("tiny-llama".into()),
            LoadFormat::Auto,
            DType::F32,
            &Device::Cpu,
            seed,
        )
        .expect("tiny-llama loads")
    };
    let (a, a2, b) = (load(1), load(1), load(2));
    assert_eq!(a.name, "tiny-llama");
    assert_eq!(
        a.config.num_kv_heads * 2,
        a.config.num_heads,
        "tiny-llama uses GQA"
    );
    let t = tokens(21, 4096);
    let la = paged_logits_chunked(a.model.as_ref(), &t, 16, 8).expect("forward");
    let la2 = paged_logits_chunked(a2.model.as_ref(), &t, 16, 8).expect("forward");
    let lb = paged_logits_chunked(b.model.as_ref(), &t, 16, 8).expect("forward");
    assert_eq!(la.dims(), [21, 4096]);
    assert_eq!(
        max_abs_diff(&la, &la2).expect("diff").0,
        0.0,
        "same seed, same weights"
    );
    assert!(
        max_abs_diff(&la, &lb).expect("diff").0 > 0.0,
        "other seed, other weights"
    );
    let finite = la
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("values");
    assert!(finite.iter().all(|x| x.is_finite()));
}

#[test]
fn dummy_weights_from_a_folder_config() {
    let Some(dir) = fixture_dir("opt-tiny") else {
        return;
    };
    let m = load_model(
        &ModelSource::Dir(dir),
        LoadFormat::Dummy,
        DType::F32,
        &Device::Cpu,
        3,
    )
    .expect("loads");
    assert_eq!(m.config.architecture, Architecture::Opt);
    let logits = paged_logits_chunked(m.model.as_ref(), &tokens(9, 320), 4, 4).expect("forward");
    assert_eq!(logits.dims(), [9, 320]);
}

#[test]
fn model_names_resolve_to_folders_presets_or_hub_ids() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().to_string_lossy().into_owned();
    assert_eq!(
        resolve_model(&path),
        ModelSource::Dir(tmp.path().to_path_buf())
    );
    for name in preset_names() {
        assert_eq!(
            resolve_model(name),
            ModelSource::Preset((*name).to_string())
        );
    }
    assert_eq!(
        resolve_model("meta-llama/Llama-2-7b-hf"),
        ModelSource::HfCache {
            model_id: "meta-llama/Llama-2-7b-hf".into(),
            revision: None
        }
    );
}

#[test]
fn a_model_in_the_hugging_face_cache_layout_is_found_offline() {
    let Some(fixture) = fixture_dir("gpt2-tiny") else {
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let repo = cache.path().join("models--tiny--gpt2");
    let snap = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(&snap).expect("mkdir");
    std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
    std::fs::write(repo.join("refs").join("main"), "0123abcd").expect("ref");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture.join(f), snap.join(f)).expect("copy");
    }
    let found = HfCacheModel::find_in(cache.path(), "tiny/gpt2", None).expect("found");
    assert_eq!(found.snapshot_dir, snap);
    let m = load_model(
        &ModelSource::Dir(found.snapshot_dir),
        LoadFormat::Auto,
        DType::F32,
        &Device::Cpu,
        0,
    )
    .expect("loads");
    assert!(m.tokenizer.is_some());
}

#[test]
fn both_rope_spellings_parse_to_the_same_config() {
    let legacy = r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 128,
        "rope_theta": 500000.0, "eos_token_id": [7, 9], "bos_token_id": 1,
        "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64}}"#;
    let v5 = r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 128,
        "eos_token_id": [7, 9], "bos_token_id": 1,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}"#;
    let a = ModelConfig::from_json_str(legacy, "legacy").expect("legacy parses");
    let b = ModelConfig::from_json_str(v5, "v5").expect("v5 parses");
    assert_eq!(a, b);
    assert_eq!(a.rope_theta, 500000.0);
    assert!(matches!(
        a.rope_scaling,
        RopeScaling::Llama3 {
            original_max_position_embeddings: 64,
            ..
        }
    ));
    assert_eq!(
        (a.eos_token_id, a.eos_token_ids.clone()),
        (Some(7), vec![7, 9])
    );
    let linear = r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 128,
        "rope_scaling": {"type": "linear", "factor": 2.0}}"#;
    let c = ModelConfig::from_json_str(linear, "linear").expect("linear parses");
    assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 2.0 });
    assert_eq!(c.num_kv_heads, 4, "kv heads default to heads");
}

#[test]
fn mistral_and_qwen2_configs_map_onto_the_llama_architecture() {
    let mistral = r#"{"model_type": "mistral", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 100, "max_position_embeddings": 128,
        "sliding_window": 32}"#;
    let qwen2 = r#"{"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 128,
        "rope_theta": 1000000.0, "tie_word_embeddings": true, "use_sliding_window": false, "sliding_window": 32}"#;
    let m = ModelConfig::from_json_str(mistral, "m").expect("mistral");
    let q = ModelConfig::from_json_str(qwen2, "q").expect("qwen2");
    assert_eq!(
        (m.architecture, m.sliding_window),
        (Architecture::Llama, Some(32))
    );
    assert_eq!(
        (q.attention_qkv_bias, q.attention_out_bias, q.sliding_window),
        (true, false, None)
    );
    assert!(q.tie_word_embeddings);
}

#[test]
fn presets_report_parameters_and_weight_bytes() {
    let Some(l2) = preset("llama-2-7b") else {
        panic!("preset")
    };
    assert_eq!(l2.weight_bytes(DType::BF16), 2 * l2.num_parameters());
    assert_eq!(
        PagedKvStorage::bytes_per_block(&l2, 16, DType::BF16),
        2 * 32 * 16 * 32 * 128 * 2
    );
    let Some(l3) = preset("llama-3-8b") else {
        panic!("preset")
    };
    // GQA: a quarter of the KV bytes of Llama-2-7B.
    assert_eq!(
        PagedKvStorage::bytes_per_block(&l3, 16, DType::BF16) * 4,
        PagedKvStorage::bytes_per_block(&l2, 16, DType::BF16)
    );
}

#[test]
fn copy_block_duplicates_a_block_in_every_layer() {
    let Some(cfg) = preset("tiny-llama") else {
        panic!("preset")
    };
    let mut kv = PagedKvStorage::new(&cfg, 4, 4, DType::F32, &Device::Cpu).expect("kv");
    let rows = |seed: f32| {
        Tensor::arange(0f32, (3 * cfg.kv_size()) as f32, &Device::Cpu)
            .and_then(|t| (t + f64::from(seed))?.reshape((3, cfg.num_kv_heads, cfg.head_dim)))
            .expect("rows")
    };
    for layer in 0..cfg.num_layers {
        kv.write(
            layer,
            &[2],
            0,
            &rows(layer as f32),
            &rows(100.0 + layer as f32),
        )
        .expect("write");
    }
    kv.copy_block(2, 0).expect("copy");
    for layer in 0..cfg.num_layers {
        let (k_src, v_src) = kv.gather(layer, &[2], 3).expect("gather");
        let (k_dst, v_dst) = kv.gather(layer, &[0], 3).expect("gather");
        assert_eq!(max_abs_diff(&k_src, &k_dst).expect("diff").0, 0.0);
        assert_eq!(max_abs_diff(&v_src, &v_dst).expect("diff").0, 0.0);
        // gather returns the storage's head-major [KVH, len, D].
        let written = rows(layer as f32).transpose(0, 1).expect("transpose");
        assert_eq!(max_abs_diff(&k_dst, &written).expect("diff").0, 0.0);
    }
    assert_eq!(
        kv.total_bytes(),
        4 * PagedKvStorage::bytes_per_block(&cfg, 4, DType::F32)
    );
    assert!(kv.copy_block(4, 0).is_err(), "block 4 of 4 is out of range");
}

#[test]
fn an_empty_batch_returns_no_logits() {
    let m = load_model(
        &ModelSource::Preset("tiny-llama".into()),
        LoadFormat::Dummy,
        DType::F32,
        &Device::Cpu,
        0,
    )
    .expect("loads");
    let mut kv = PagedKvStorage::new(&m.config, 2, 16, DType::F32, &Device::Cpu).expect("kv");
    let logits = m.model.forward(&[], &mut kv).expect("empty batch");
    assert_eq!(logits.dims(), [0, m.config.vocab_size]);
    let none = [SeqSlice {
        token_ids: vec![1, 2, 3],
        start_pos: 0,
        block_table: vec![1],
        want_logits: false,
    }];
    assert_eq!(
        m.model
            .forward(&none, &mut kv)
            .expect("no logits wanted")
            .dims(),
        [0, m.config.vocab_size]
    );
}
