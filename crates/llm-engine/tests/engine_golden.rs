//! The engine end to end against the golden fixtures (tiny GPT-2, OPT, Llama, Llama-3 GQA made
//! by transformers): greedy continuations through scheduling, paged cache and sampling must
//! equal transformers' `generate`, alone, batched, and with small prefill chunks.
//! `LLM_ENGINE_TEST_DEVICE=cuda` runs them on a GPU (build with `--features cuda`).

mod engine_support;

use engine_support::*;
use llm_engine::engine::EngineConfig;
use llm_engine::{FinishReason, LoadFormat, Prompt};

fn fixture_engine(dir: &std::path::Path, budget: usize, block_size: usize) -> llm_engine::Engine {
    engine(EngineConfig {
        model: dir.to_string_lossy().into_owned(),
        load_format: LoadFormat::Safetensors,
        device: test_device(),
        block_size,
        max_num_batched_tokens: budget,
        kv_cache_bytes: Some(8 << 20),
        ..EngineConfig::default()
    })
}

#[test]
fn greedy_continuations_match_transformers() {
    let mut checked = 0;
    for name in FIXTURES {
        let Some(dir) = fixture_dir(name) else {
            eprintln!("skipping {name}: fixture not present");
            continue;
        };
        let golden = golden_prompts(&dir);
        let max_new = golden[0].greedy_token_ids.len();
        let prompts: Vec<Prompt> = golden
            .iter()
            .map(|g| Prompt::Tokens(g.token_ids.clone()))
            .collect();
        let want: Vec<Vec<u32>> = golden.iter().map(|g| g.greedy_token_ids.clone()).collect();
        // (token budget, block size): one step per prompt; small chunks across blocks.
        for (budget, bs) in [(8192, 16), (7, 4)] {
            // Each prompt alone.
            for (i, p) in prompts.iter().enumerate() {
                let mut e = fixture_engine(&dir, budget, bs);
                let done = generate(&mut e, std::slice::from_ref(p), &greedy(max_new));
                assert_eq!(
                    done[0].output_token_ids, want[i],
                    "{name} prompt {i} alone (budget {budget}, block {bs})"
                );
                assert_eq!(done[0].finish_reason, FinishReason::Length);
            }
            // All prompts in one batch.
            let mut e = fixture_engine(&dir, budget, bs);
            let done = generate(&mut e, &prompts, &greedy(max_new));
            assert_eq!(
                outputs(&done),
                want,
                "{name} batched (budget {budget}, block {bs})"
            );
            assert_eq!(
                e.num_free_blocks(),
                e.kv_cache_info().num_blocks,
                "{name}: blocks leaked"
            );
        }
        // Text prompts go through the fixture's tokenizer to the same ids and outputs.
        let mut e = fixture_engine(&dir, 8192, 16);
        let texts: Vec<Prompt> = golden
            .iter()
            .map(|g| Prompt::Text(g.text.clone()))
            .collect();
        let done = generate(&mut e, &texts, &greedy(max_new));
        for (d, g) in done.iter().zip(&golden) {
            assert_eq!(d.prompt_token_ids, g.token_ids, "{name}: tokenizer");
            assert_eq!(
                d.output_token_ids, g.greedy_token_ids,
                "{name}: text prompt"
            );
            assert!(
                d.text.as_deref().is_some_and(|t| !t.is_empty()),
                "{name}: detokenized text"
            );
        }
        checked += 1;
    }
    assert!(
        checked > 0 || std::env::var_os("ALLOW_MISSING_FIXTURES").is_some(),
        "no golden fixture found"
    );
}
