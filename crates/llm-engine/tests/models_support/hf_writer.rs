//! Writes small random models in Hugging Face layout (config.json + safetensors, optionally
//! sharded with an index), so tests can load real files without any download.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

/// Deterministic values in [-amp, amp] (+ `base`).
fn values(n: usize, seed: u64, base: f32, amp: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            base + amp * (2.0 * u - 1.0)
        })
        .collect()
}

/// One named tensor shape; norms get values around 1.
pub fn random_tensor(name: &str, shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    let is_norm_weight =
        (name.contains("norm") || name.contains("ln_")) && name.ends_with(".weight");
    let (base, amp) = if is_norm_weight {
        (1.0, 0.1)
    } else {
        (0.0, 0.25)
    };
    let h = name
        .bytes()
        .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Tensor::from_vec(values(n, h, base, amp), shape, &Device::Cpu).expect("tensor")
}

/// HF tensor names and shapes of a Llama config (`config` as the JSON written).
pub fn llama_tensors(c: &serde_json::Value) -> Vec<(String, Vec<usize>)> {
    let g = |k: &str| c[k].as_u64().expect(k) as usize;
    let (h, i, v, l) = (
        g("hidden_size"),
        g("intermediate_size"),
        g("vocab_size"),
        g("num_hidden_layers"),
    );
    let heads = g("num_attention_heads");
    let kvh = c["num_key_value_heads"]
        .as_u64()
        .map(|x| x as usize)
        .unwrap_or(heads);
    let d = h / heads;
    let mut t = vec![
        ("model.embed_tokens.weight".to_string(), vec![v, h]),
        ("model.norm.weight".into(), vec![h]),
    ];
    if !c["tie_word_embeddings"].as_bool().unwrap_or(false) {
        t.push(("lm_head.weight".into(), vec![v, h]));
    }
    for n in 0..l {
        let p = format!("model.layers.{n}");
        t.push((format!("{p}.input_layernorm.weight"), vec![h]));
        t.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
        t.push((format!("{p}.self_attn.q_proj.weight"), vec![heads * d, h]));
        t.push((format!("{p}.self_attn.k_proj.weight"), vec![kvh * d, h]));
        t.push((format!("{p}.self_attn.v_proj.weight"), vec![kvh * d, h]));
        t.push((format!("{p}.self_attn.o_proj.weight"), vec![h, heads * d]));
        t.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
        t.push((format!("{p}.mlp.up_proj.weight"), vec![i, h]));
        t.push((format!("{p}.mlp.down_proj.weight"), vec![h, i]));
    }
    t
}

/// HF tensor names and shapes of a GPT-2 config (with the `transformer.` prefix or not).
pub fn gpt2_tensors(c: &serde_json::Value, prefix: &str) -> Vec<(String, Vec<usize>)> {
    let g = |k: &str| c[k].as_u64().expect(k) as usize;
    let (h, v, l, pos) = (g("n_embd"), g("vocab_size"), g("n_layer"), g("n_positions"));
    let mut t = vec![
        (format!("{prefix}wte.weight"), vec![v, h]),
        (format!("{prefix}wpe.weight"), vec![pos, h]),
        (format!("{prefix}ln_f.weight"), vec![h]),
        (format!("{prefix}ln_f.bias"), vec![h]),
    ];
    for n in 0..l {
        let p = format!("{prefix}h.{n}");
        for ln in ["ln_1", "ln_2"] {
            t.push((format!("{p}.{ln}.weight"), vec![h]));
            t.push((format!("{p}.{ln}.bias"), vec![h]));
        }
        for (name, i, o) in [
            ("attn.c_attn", h, 3 * h),
            ("attn.c_proj", h, h),
            ("mlp.c_fc", h, 4 * h),
            ("mlp.c_proj", 4 * h, h),
        ] {
            t.push((format!("{p}.{name}.weight"), vec![i, o]));
            t.push((format!("{p}.{name}.bias"), vec![o]));
        }
    }
    t
}

/// HF tensor names and shapes of an OPT config.
pub fn opt_tensors(c: &serde_json::Value) -> Vec<(String, Vec<usize>)> {
    let g = |k: &str| c[k].as_u64().expect(k) as usize;
    let (h, f, v, l, pos) = (
        g("hidden_size"),
        g("ffn_dim"),
        g("vocab_size"),
        g("num_hidden_layers"),
        g("max_position_embeddings"),
    );
    let e = c["word_embed_proj_dim"]
        .as_u64()
        .map(|x| x as usize)
        .unwrap_or(h);
    let pre = c["do_layer_norm_before"].as_bool().unwrap_or(true);
    let p = "model.decoder";
    let mut t = vec![
        (format!("{p}.embed_tokens.weight"), vec![v, e]),
        (format!("{p}.embed_positions.weight"), vec![pos + 2, h]),
    ];
    if pre {
        t.push((format!("{p}.final_layer_norm.weight"), vec![h]));
        t.push((format!("{p}.final_layer_norm.bias"), vec![h]));
    }
    if e != h {
        t.push((format!("{p}.project_in.weight"), vec![h, e]));
        t.push((format!("{p}.project_out.weight"), vec![e, h]));
    }
    for n in 0..l {
        let lp = format!("{p}.layers.{n}");
        for ln in ["self_attn_layer_norm", "final_layer_norm"] {
            t.push((format!("{lp}.{ln}.weight"), vec![h]));
            t.push((format!("{lp}.{ln}.bias"), vec![h]));
        }
        for (name, i, o) in [
            ("self_attn.q_proj", h, h),
            ("self_attn.k_proj", h, h),
            ("self_attn.v_proj", h, h),
            ("self_attn.out_proj", h, h),
            ("fc1", h, f),
            ("fc2", f, h),
        ] {
            t.push((format!("{lp}.{name}.weight"), vec![o, i]));
            t.push((format!("{lp}.{name}.bias"), vec![o]));
        }
    }
    t
}

/// Writes `config` and random `tensors` into `dir`: one `model.safetensors`, or with
/// `shards > 1` that many `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json`.
pub fn write_model(
    dir: &Path,
    config: &serde_json::Value,
    tensors: &[(String, Vec<usize>)],
    seed: u64,
    shards: usize,
) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(config).expect("json"),
    )
    .expect("config");
    let all: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, s)| (n.clone(), random_tensor(n, s, seed)))
        .collect();
    if shards <= 1 {
        let map: HashMap<String, Tensor> = all.into_iter().collect();
        candle_core::safetensors::save(&map, dir.join("model.safetensors")).expect("save");
        return;
    }
    let mut weight_map = serde_json::Map::new();
    let per = all.len().div_ceil(shards);
    for (s, chunk) in all.chunks(per).enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", s + 1, shards);
        let map: HashMap<String, Tensor> = chunk.iter().cloned().collect();
        candle_core::safetensors::save(&map, dir.join(&file)).expect("save shard");
        for (n, _) in chunk {
            weight_map.insert(n.clone(), serde_json::Value::String(file.clone()));
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).expect("index");
}

/// A small GQA Llama-3-style config (8 query heads over 2 KV heads, llama3 rope scaling).
pub fn llama_gqa_config() -> serde_json::Value {
    serde_json::json!({
        "model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64}
    })
}
