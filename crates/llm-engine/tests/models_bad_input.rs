//! Bad input gives a typed error whose message names the problem: unknown presets, folders
//! without config.json, malformed or unsupported configs, missing or misshapen tensors,
//! uncached Hugging Face ids, and forward batches that do not fit the model or the cache.

mod models_support;

use candle_core::{DType, Device};
use llm_engine::models::{load_model, LoadFormat, ModelSource, SeqSlice};
use llm_engine::weights::HfCacheModel;
use llm_engine::{EngineError, PagedKvStorage};
use models_support::hf_writer::{llama_gqa_config, llama_tensors, write_model};

fn load(source: ModelSource, format: LoadFormat) -> EngineError {
    match load_model(&source, format, DType::F32, &Device::Cpu, 0) {
        Ok(m) => panic!("expected an error, loaded {}", m.name),
        Err(e) => e,
    }
}

fn write_config(dir: &std::path::Path, text: &str) {
    std::fs::write(dir.join("config.json"), text).expect("write config");
}

#[test]
fn unknown_preset_lists_the_known_ones() {
    let e = load(ModelSource::Preset("llama-9-1t".into()), LoadFormat::Dummy);
    assert!(matches!(e, EngineError::UnknownPreset { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("llama-9-1t") && msg.contains("tiny-llama") && msg.contains("opt-1.3b"),
        "{msg}"
    );
    // A bare word that is not cached reads as a mistyped preset.
    let e = load(
        ModelSource::HfCache {
            model_id: "tiny-lama".into(),
            revision: None,
        },
        LoadFormat::Auto,
    );
    assert!(matches!(e, EngineError::UnknownPreset { .. }), "{e:?}");
}

#[test]
fn folder_without_config_json() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let e = load(ModelSource::Dir(tmp.path().to_path_buf()), LoadFormat::Auto);
    assert!(matches!(e, EngineError::MissingModelConfig(_)), "{e:?}");
    assert!(e.to_string().contains("config.json"));
    let e = load(ModelSource::Dir(tmp.path().join("nope")), LoadFormat::Auto);
    assert!(matches!(e, EngineError::Io { .. }), "{e:?}");
}

#[test]
fn malformed_config_json_says_what_is_wrong() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_config(tmp.path(), "{ not json");
    let e = load(
        ModelSource::Dir(tmp.path().to_path_buf()),
        LoadFormat::Dummy,
    );
    assert!(
        matches!(e, EngineError::MalformedModelConfig { .. })
            && e.to_string().contains("not valid JSON"),
        "{e}"
    );
    write_config(tmp.path(), r#"{"model_type": "llama", "vocab_size": 10}"#);
    let e = load(
        ModelSource::Dir(tmp.path().to_path_buf()),
        LoadFormat::Dummy,
    );
    assert!(e.to_string().contains("hidden_size"), "{e}");
    write_config(
        tmp.path(),
        r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": "big"}"#,
    );
    let e = load(
        ModelSource::Dir(tmp.path().to_path_buf()),
        LoadFormat::Dummy,
    );
    assert!(
        e.to_string()
            .contains("`hidden_size` is not a non-negative integer"),
        "{e}"
    );
    write_config(
        tmp.path(),
        r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 3, "vocab_size": 100, "max_position_embeddings": 128}"#,
    );
    let e = load(
        ModelSource::Dir(tmp.path().to_path_buf()),
        LoadFormat::Dummy,
    );
    assert!(
        e.to_string()
            .contains("not a multiple of num_key_value_heads"),
        "{e}"
    );
    write_config(
        tmp.path(),
        r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 128,
            "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}"#,
    );
    let e = load(
        ModelSource::Dir(tmp.path().to_path_buf()),
        LoadFormat::Dummy,
    );
    assert!(
        e.to_string().contains("unsupported rope type `yarn`"),
        "{e}"
    );
}

#[test]
fn unsupported_model_type_lists_the_supported_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_config(tmp.path(), r#"{"model_type": "bert", "vocab_size": 10}"#);
    let e = load(ModelSource::Dir(tmp.path().to_path_buf()), LoadFormat::Auto);
    assert!(
        matches!(e, EngineError::UnsupportedModelType { .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("bert") && msg.contains("gpt2, opt, llama, mistral, qwen2"),
        "{msg}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = llama_gqa_config();
    let tensors: Vec<_> = llama_tensors(&cfg)
        .into_iter()
        .filter(|(n, _)| n != "model.layers.1.mlp.up_proj.weight")
        .collect();
    write_model(tmp.path(), &cfg, &tensors, 1, 2);
    let e = load(ModelSource::Dir(tmp.path().to_path_buf()), LoadFormat::Auto);
    assert!(matches!(e, EngineError::MissingTensor { .. }), "{e:?}");
    assert!(
        e.to_string().contains("model.layers.1.mlp.up_proj.weight"),
        "{e}"
    );
}

#[test]
fn wrong_shape_names_the_tensor_and_both_shapes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = llama_gqa_config();
    let tensors: Vec<_> = llama_tensors(&cfg)
        .into_iter()
        .map(|(n, s)| {
            if n == "model.layers.0.self_attn.k_proj.weight" {
                (n, vec![128, 128])
            } else {
                (n, s)
            }
        })
        .collect();
    write_model(tmp.path(), &cfg, &tensors, 1, 1);
    let e = load(ModelSource::Dir(tmp.path().to_path_buf()), LoadFormat::Auto);
    assert!(
        matches!(e, EngineError::TensorShapeMismatch { .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("model.layers.0.self_attn.k_proj.weight")
            && msg.contains("[128, 128]")
            && msg.contains("[32, 128]"),
        "{msg}"
    );
}

#[test]
fn folder_without_weights_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("config.json"),
        llama_gqa_config().to_string(),
    )
    .expect("config");
    let e = load(
        ModelSource::Dir(tmp.path().to_path_buf()),
        LoadFormat::Safetensors,
    );
    assert!(e.to_string().contains("no model.safetensors"), "{e}");
}

#[test]
fn hub_id_not_in_the_cache_is_not_downloaded() {
    let cache = tempfile::tempdir().expect("tempdir");
    let e =
        HfCacheModel::find_in(cache.path(), "some-org/some-model", None).expect_err("not cached");
    assert!(matches!(e, EngineError::NotInHfCache { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("some-org/some-model") && msg.contains("not in the Hugging Face cache"),
        "{msg}"
    );
    assert!(msg.contains(&cache.path().display().to_string()), "{msg}");
    let e = load(
        ModelSource::HfCache {
            model_id: "no-such-org/no-such-model-4242".into(),
            revision: None,
        },
        LoadFormat::Auto,
    );
    assert!(matches!(e, EngineError::NotInHfCache { .. }), "{e:?}");
}

#[test]
fn forward_rejects_batches_that_do_not_fit() {
    let m = load_model(
        &ModelSource::Preset("tiny-llama".into()),
        LoadFormat::Dummy,
        DType::F32,
        &Device::Cpu,
        0,
    )
    .expect("loads");
    let mut kv = PagedKvStorage::new(&m.config, 4, 4, DType::F32, &Device::Cpu).expect("kv");
    let slice = |ids: Vec<u32>, start: usize, table: Vec<u32>| SeqSlice {
        token_ids: ids,
        start_pos: start,
        block_table: table,
        want_logits: true,
    };
    let cases = [
        (slice(vec![1; 6], 0, vec![0]), "block table has 1"),
        (slice(vec![5000], 0, vec![0]), "outside the vocabulary"),
        (
            slice(vec![1], 2048, vec![0; 513]),
            "past the model's max_position_embeddings",
        ),
        (slice(vec![], 0, vec![0]), "has no tokens"),
        (slice(vec![1, 2], 0, vec![7]), "names block 7"),
    ];
    for (s, want) in cases {
        let e = m.model.forward(&[s], &mut kv).expect_err("bad batch");
        assert!(matches!(e, EngineError::InvalidBatch(_)), "{e:?}");
        assert!(e.to_string().contains(want), "{e} should mention {want}");
    }
    let e = PagedKvStorage::new(&m.config, 0, 16, DType::F32, &Device::Cpu).expect_err("no blocks");
    assert!(matches!(e, EngineError::InvalidConfig(_)), "{e:?}");
    let e = load_model(
        &ModelSource::Preset("tiny-llama".into()),
        LoadFormat::Dummy,
        DType::U8,
        &Device::Cpu,
        0,
    )
    .expect_err("u8 model");
    assert!(e.to_string().contains("f32, f16 or bf16"), "{e}");
}
