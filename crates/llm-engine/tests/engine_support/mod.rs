//! Helpers shared by the engine tests.
#![allow(dead_code)]

use std::path::PathBuf;

use llm_engine::engine::EngineConfig;
use llm_engine::{CompletedRequest, Engine, LoadFormat, Prompt, SamplingParams};

/// A golden fixture folder, if it exists.
pub fn fixture_dir(name: &str) -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    d.join("config.json").is_file().then_some(d)
}

/// The golden fixture names.
pub const FIXTURES: &[&str] = &["gpt2-tiny", "opt-tiny", "llama-tiny", "llama3-gqa-tiny"];

/// One prompt of a fixture's expected.json.
#[derive(Debug, Clone)]
pub struct GoldenPrompt {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub greedy_token_ids: Vec<u32>,
}

/// The prompts of a fixture's expected.json.
pub fn golden_prompts(dir: &std::path::Path) -> Vec<GoldenPrompt> {
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("expected.json parses");
    let ids = |x: &serde_json::Value| -> Vec<u32> {
        x.as_array()
            .expect("array")
            .iter()
            .map(|t| t.as_u64().expect("id") as u32)
            .collect()
    };
    v["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| GoldenPrompt {
            text: p["text"].as_str().expect("text").to_string(),
            token_ids: ids(&p["token_ids"]),
            greedy_token_ids: ids(&p["greedy_token_ids"]),
        })
        .collect()
}

/// The device the engine tests run on: `LLM_ENGINE_TEST_DEVICE` (e.g. `cuda`), else `cpu`.
pub fn test_device() -> String {
    std::env::var("LLM_ENGINE_TEST_DEVICE").unwrap_or_else(|_| "cpu".into())
}

/// Whether the tests run on the CPU.
pub fn on_cpu() -> bool {
    test_device() == "cpu"
}

/// A tiny-llama engine with dummy weights on the test device, small KV budget.
pub fn tiny_config() -> EngineConfig {
    EngineConfig {
        model: "tiny-llama".into(),
        device: test_device(),
        load_format: LoadFormat::Dummy,
        max_model_len: Some(256),
        kv_cache_bytes: Some(64 << 20),
        seed: 7,
        ..EngineConfig::default()
    }
}

/// Builds an engine, panicking with the error's message on failure.
pub fn engine(cfg: EngineConfig) -> Engine {
    match Engine::new(cfg) {
        Ok(e) => e,
        Err(e) => panic!("engine: {e}"),
    }
}

/// Deterministic pseudo-random prompts of the given lengths (token ids in 3..vocab).
pub fn prompts(lens: &[usize], vocab: usize, salt: u64) -> Vec<Prompt> {
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut x = salt
                .wrapping_mul(6364136223846793005)
                .wrapping_add((i as u64).wrapping_mul(1442695040888963407) + 1);
            Prompt::Tokens(
                (0..len)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        3 + ((x >> 33) % (vocab as u64 - 3)) as u32
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Greedy generation of `max_tokens` tokens, EOS ignored.
pub fn greedy(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(max_tokens)
    }
}

/// Generates, panicking with the error's message on failure.
pub fn generate(
    e: &mut Engine,
    prompts: &[Prompt],
    params: &SamplingParams,
) -> Vec<CompletedRequest> {
    match e.generate(prompts, params) {
        Ok(r) => r,
        Err(err) => panic!("generate: {err}"),
    }
}

/// The output token ids of each completed request.
pub fn outputs(done: &[CompletedRequest]) -> Vec<Vec<u32>> {
    done.iter().map(|c| c.output_token_ids.clone()).collect()
}
