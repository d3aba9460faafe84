//! Built-in model presets: the shapes of well-known models, for dummy (random) weights.
//!
//! | preset       | params | layers | hidden | heads / kv heads | vocab   | max positions |
//! |--------------|--------|--------|--------|------------------|---------|---------------|
//! | `tiny-llama` | 21.6 M | 6      | 512    | 8 / 4 (GQA)      | 4 096   | 2 048         |
//! | `gpt2`       | 124 M  | 12     | 768    | 12 / 12          | 50 257  | 1 024         |
//! | `opt-1.3b`   | 1.3 B  | 24     | 2 048  | 32 / 32          | 50 272  | 2 048         |
//! | `llama-2-7b` | 6.7 B  | 32     | 4 096  | 32 / 32          | 32 000  | 4 096         |
//! | `llama-3-8b` | 8.0 B  | 32     | 4 096  | 32 / 8 (GQA)     | 128 256 | 8 192         |
//!
//! `tiny-llama` is the CPU default: a real Llama (RoPE, RMSNorm, SwiGLU, grouped-query
//! attention with 2 query heads per KV head, head_dim 64, intermediate 1376) small enough
//! that a CPU runs it at hundreds to thousands of tokens per second. Its f32 weights (~86 MB)
//! are deliberately larger than a CPU's last-level cache, so that its decode is bound by
//! memory like a real LLM's (a model that fits in L3 would make batching look useless). Its
//! vocabulary (4 096) is kept moderate so the LM head does not dominate.

use crate::config::{Activation, Architecture, ModelConfig, RopeScaling};

/// The names [`preset`] knows, CPU default first.
pub fn preset_names() -> &'static [&'static str] {
    &["tiny-llama", "gpt2", "opt-1.3b", "llama-2-7b", "llama-3-8b"]
}

/// The configuration of a built-in preset, or `None` for an unknown name.
pub fn preset(name: &str) -> Option<ModelConfig> {
    match name {
        "tiny-llama" => Some(llama_like(LlamaShape {
            model_type: "llama",
            hidden: 512,
            intermediate: 1376,
            layers: 6,
            heads: 8,
            kv_heads: 4,
            vocab: 4096,
            max_pos: 2048,
            theta: 10_000.0,
            scaling: RopeScaling::Default,
            bos: 1,
            eos: 2,
        })),
        "llama-2-7b" => Some(llama_like(LlamaShape {
            model_type: "llama",
            hidden: 4096,
            intermediate: 11008,
            layers: 32,
            heads: 32,
            kv_heads: 32,
            vocab: 32000,
            max_pos: 4096,
            theta: 10_000.0,
            scaling: RopeScaling::Default,
            bos: 1,
            eos: 2,
        })),
        "llama-3-8b" => Some(llama_like(LlamaShape {
            model_type: "llama",
            hidden: 4096,
            intermediate: 14336,
            layers: 32,
            heads: 32,
            kv_heads: 8,
            vocab: 128_256,
            max_pos: 8192,
            theta: 500_000.0,
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            },
            bos: 128_000,
            eos: 128_001,
        })),
        "gpt2" => Some(ModelConfig {
            architecture: Architecture::Gpt2,
            model_type: "gpt2".into(),
            vocab_size: 50257,
            hidden_size: 768,
            intermediate_size: 3072,
            num_layers: 12,
            num_heads: 12,
            num_kv_heads: 12,
            head_dim: 64,
            max_position_embeddings: 1024,
            eos_token_id: Some(50256),
            eos_token_ids: vec![50256],
            bos_token_id: Some(50256),
            norm_eps: 1e-5,
            activation: Activation::GeluTanh,
            tie_word_embeddings: true,
            attention_qkv_bias: true,
            attention_out_bias: true,
            mlp_bias: true,
            rope_theta: 10_000.0,
            rope_scaling: RopeScaling::Default,
            sliding_window: None,
            do_layer_norm_before: true,
            word_embed_proj_dim: 768,
            has_final_layer_norm: true,
        }),
        "opt-1.3b" => Some(ModelConfig {
            architecture: Architecture::Opt,
            model_type: "opt".into(),
            vocab_size: 50272,
            hidden_size: 2048,
            intermediate_size: 8192,
            num_layers: 24,
            num_heads: 32,
            num_kv_heads: 32,
            head_dim: 64,
            max_position_embeddings: 2048,
            eos_token_id: Some(2),
            eos_token_ids: vec![2],
            bos_token_id: Some(2),
            norm_eps: 1e-5,
            activation: Activation::Relu,
            tie_word_embeddings: true,
            attention_qkv_bias: true,
            attention_out_bias: true,
            mlp_bias: true,
            rope_theta: 10_000.0,
            rope_scaling: RopeScaling::Default,
            sliding_window: None,
            do_layer_norm_before: true,
            word_embed_proj_dim: 2048,
            has_final_layer_norm: true,
        }),
        _ => None,
    }
}

/// The Hugging Face model id of a preset's real weights (looked up in the local cache when a
/// preset is loaded with `LoadFormat::Safetensors`).
pub fn preset_hf_id(name: &str) -> Option<&'static str> {
    match name {
        "gpt2" => Some("gpt2"),
        "opt-1.3b" => Some("facebook/opt-1.3b"),
        "llama-2-7b" => Some("meta-llama/Llama-2-7b-hf"),
        "llama-3-8b" => Some("meta-llama/Meta-Llama-3-8B"),
        _ => None,
    }
}

struct LlamaShape {
    model_type: &'static str,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    vocab: usize,
    max_pos: usize,
    theta: f64,
    scaling: RopeScaling,
    bos: u32,
    eos: u32,
}

fn llama_like(s: LlamaShape) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        model_type: s.model_type.into(),
        vocab_size: s.vocab,
        hidden_size: s.hidden,
        intermediate_size: s.intermediate,
        num_layers: s.layers,
        num_heads: s.heads,
        num_kv_heads: s.kv_heads,
        head_dim: s.hidden / s.heads,
        max_position_embeddings: s.max_pos,
        eos_token_id: Some(s.eos),
        eos_token_ids: vec![s.eos],
        bos_token_id: Some(s.bos),
        norm_eps: 1e-5,
        activation: Activation::Silu,
        tie_word_embeddings: false,
        attention_qkv_bias: false,
        attention_out_bias: false,
        mlp_bias: false,
        rope_theta: s.theta,
        rope_scaling: s.scaling,
        sliding_window: None,
        do_layer_norm_before: true,
        word_embed_proj_dim: s.hidden,
        has_final_layer_norm: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_valid_preset() {
        for name in preset_names() {
            let cfg = preset(name).expect("listed preset exists");
            cfg.validate(name).expect("preset is consistent");
        }
        assert!(preset("gpt-5").is_none());
    }

    #[test]
    fn parameter_counts_match_the_published_sizes() {
        let count = |n: &str| preset(n).map(|c| c.num_parameters()).unwrap_or(0);
        // Published: gpt2 124,439,808; opt-1.3b 1,315,758,080; llama-2-7b 6,738,415,616;
        // llama-3-8b 8,030,261,248.
        assert_eq!(count("gpt2"), 124_439_808);
        assert_eq!(count("opt-1.3b"), 1_315_758_080);
        assert_eq!(count("llama-2-7b"), 6_738_415_616);
        assert_eq!(count("llama-3-8b"), 8_030_261_248);
    }
}
