//! Batch invariance and the reference decode loop on tiny-llama (dummy weights): a request's
//! greedy output must not depend on what else is in the batch, on prefill chunking, on
//! preemption, or on prefix caching, and must equal a plain full-recompute decode loop.

mod engine_support;

use candle_core::DType;
use engine_support::*;
use llm_engine::engine::EngineConfig;
use llm_engine::models::{load_model, LoadFormat, ModelSource, PagedKvStorage, SeqSlice};
use llm_engine::sampling::argmax;
use llm_engine::Prompt;

const MAX_TOKENS: usize = 12;

/// 32 mixed lengths, several spanning many 16-token blocks.
fn mixed_lens() -> Vec<usize> {
    (0..32).map(|i| 1 + (i * 37) % 90).collect()
}

/// Greedy decode by full recompute: every step runs the whole sequence from position 0 into
/// fresh blocks and takes the argmax of the last row. No cache reuse, no batching.
fn reference_decode(prompt: &[u32], max_tokens: usize, seed: u64) -> Vec<u32> {
    let device = match test_device()
        .parse::<llm_engine::engine::DeviceSpec>()
        .and_then(|d| d.open())
    {
        Ok(d) => d,
        Err(e) => panic!("device: {e}"),
    };
    let loaded = match load_model(
        &ModelSource::Preset("tiny-llama".into()),
        LoadFormat::Dummy,
        DType::F32,
        &device,
        seed,
    ) {
        Ok(l) => l,
        Err(e) => panic!("load: {e}"),
    };
    let mut seq = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..max_tokens {
        let bs = 16;
        let blocks = seq.len().div_ceil(bs);
        let mut kv =
            PagedKvStorage::new(&loaded.config, blocks, bs, DType::F32, &device).expect("kv");
        let slice = SeqSlice {
            token_ids: seq.clone(),
            start_pos: 0,
            block_table: (0..blocks as u32).collect(),
            want_logits: true,
        };
        let logits = loaded.model.forward(&[slice], &mut kv).expect("forward");
        let row = logits
            .squeeze(0)
            .and_then(|r| r.to_vec1::<f32>())
            .expect("logits");
        let t = argmax(&row).expect("argmax");
        out.push(t);
        seq.push(t);
    }
    out
}

#[test]
fn engine_matches_full_recompute_reference() {
    let cfg = tiny_config();
    let vocab = 4096;
    let ps = prompts(&[1, 17, 40], vocab, 3);
    let mut e = engine(cfg.clone());
    let done = generate(&mut e, &ps, &greedy(MAX_TOKENS));
    for (p, d) in ps.iter().zip(&done) {
        let Prompt::Tokens(ids) = p else {
            unreachable!()
        };
        assert_eq!(
            d.output_token_ids,
            reference_decode(ids, MAX_TOKENS, cfg.seed)
        );
    }
}

/// CUDA graphs (on by default for decode steps of 1-4 sequences on a GPU) give the tokens
/// eager steps give: alone (the batch-1 graph captured by the first request and replayed with
/// the others' block tables and positions) and as a batch of 3; for greedy requests (argmax in
/// the graph) and for seeded top-k and temperature sampling (the graph leaves the logits, the
/// engine samples). On the GPU the graph path must have run; on the CPU every step is eager.
#[test]
fn cuda_graph_decode_matches_eager() {
    let ps = prompts(&[5, 23, 40], 4096, 3);
    let sampled = |top_k| llm_engine::SamplingParams {
        temperature: 0.9,
        top_k,
        seed: Some(11),
        ..greedy(MAX_TOKENS)
    };
    for params in [greedy(MAX_TOKENS), sampled(20), sampled(0)] {
        graph_matches_eager(&ps, &params);
    }
}

fn graph_matches_eager(ps: &[Prompt], params: &llm_engine::SamplingParams) {
    let run = |enforce_eager: bool, together: bool| {
        let mut e = engine(EngineConfig {
            enforce_eager,
            ..tiny_config()
        });
        let outs = if together {
            outputs(&generate(&mut e, ps, params))
        } else {
            ps.iter()
                .map(|p| {
                    generate(&mut e, std::slice::from_ref(p), params)[0]
                        .output_token_ids
                        .clone()
                })
                .collect()
        };
        (outs, e.stats().decode_graph_steps)
    };
    for together in [false, true] {
        let (eager, eager_graph_steps) = run(true, together);
        let (graphs, graph_steps) = run(false, together);
        assert_eq!(graphs, eager, "together: {together}, {params:?}");
        assert_eq!(eager_graph_steps, 0);
        if on_cpu() {
            assert_eq!(graph_steps, 0);
        } else {
            assert!(graph_steps > 0, "no decode step went through a CUDA graph");
        }
    }
}

#[test]
fn greedy_output_is_batch_invariant() {
    let lens = mixed_lens();
    let ps = prompts(&lens, 4096, 11);
    let params = greedy(MAX_TOKENS);

    // Alone: each request in an engine of its own.
    let mut e = engine(tiny_config());
    let mut alone = Vec::new();
    for p in &ps {
        let done = generate(&mut e, std::slice::from_ref(p), &params);
        alone.push(done[0].output_token_ids.clone());
    }

    let cases: Vec<(&str, EngineConfig)> = vec![
        ("one batch of 32", tiny_config()),
        (
            "chunked prefill (24-token budget)",
            EngineConfig {
                max_num_batched_tokens: 24,
                ..tiny_config()
            },
        ),
        (
            "forced preemption (tiny KV cache)",
            EngineConfig {
                num_kv_blocks_override: Some(16),
                max_model_len: Some(128),
                ..tiny_config()
            },
        ),
        (
            "preemption and chunks, no prefix caching",
            EngineConfig {
                num_kv_blocks_override: Some(12),
                max_model_len: Some(128),
                max_num_batched_tokens: 40,
                enable_prefix_caching: false,
                ..tiny_config()
            },
        ),
        (
            "max 5 sequences at once",
            EngineConfig {
                max_num_seqs: 5,
                ..tiny_config()
            },
        ),
    ];
    for (name, cfg) in cases {
        let mut e = engine(cfg);
        let done = generate(&mut e, &ps, &params);
        assert_eq!(outputs(&done), alone, "{name}");
        let stats = e.stats().clone();
        if name.contains("preemption") {
            assert!(
                stats.num_preemptions > 0,
                "{name}: expected preemptions, stats {stats:?}"
            );
            assert!(done.iter().any(|d| d.num_preemptions > 0));
        }
        if name.contains("chunked") {
            assert!(
                stats.num_steps as usize > lens.len(),
                "{name}: chunks take many steps"
            );
        }
        assert_eq!(
            e.num_free_blocks(),
            e.kv_cache_info().num_blocks,
            "{name}: blocks leaked"
        );
        assert_eq!(
            stats.num_generated_tokens,
            (ps.len() * MAX_TOKENS) as u64,
            "{name}"
        );
    }
}

#[test]
fn prefix_caching_reuses_blocks_and_keeps_outputs() {
    // 8 requests sharing a 40-token prefix (2 full blocks + 8 tokens), different tails.
    let shared = match &prompts(&[40], 4096, 5)[0] {
        Prompt::Tokens(t) => t.clone(),
        Prompt::Text(_) => unreachable!(),
    };
    let tails = prompts(&[1, 3, 9, 16, 17, 24, 33, 5], 4096, 6);
    let mut ps: Vec<Prompt> = tails
        .iter()
        .map(|t| match t {
            Prompt::Tokens(t) => Prompt::Tokens([shared.clone(), t.clone()].concat()),
            Prompt::Text(_) => unreachable!(),
        })
        .collect();
    // And the shared prefix itself, twice (a full-block hit must still recompute the last token).
    let exact: Vec<u32> = shared[..32].to_vec();
    ps.push(Prompt::Tokens(exact.clone()));
    ps.push(Prompt::Tokens(exact));
    let params = greedy(MAX_TOKENS);
    let mut off = engine(llm_engine::engine::EngineConfig {
        enable_prefix_caching: false,
        ..tiny_config()
    });
    let want = outputs(&generate(&mut off, &ps, &params));
    // Sequentially, so later requests find earlier ones' blocks.
    let mut on = engine(tiny_config());
    let mut got = Vec::new();
    let mut cached = Vec::new();
    for p in &ps {
        let d = generate(&mut on, std::slice::from_ref(p), &params);
        got.push(d[0].output_token_ids.clone());
        cached.push(d[0].num_cached_prompt_tokens);
    }
    assert_eq!(got, want);
    assert_eq!(cached[0], 0);
    assert!(cached[1..8].iter().all(|&c| c == 32), "{cached:?}");
    assert_eq!(cached[8], 31, "full hit: last token recomputed");
    assert!(on.stats().prefix_cache_hits > 0);
    // All at once too.
    let mut on = engine(tiny_config());
    assert_eq!(outputs(&generate(&mut on, &ps, &params)), want);
    assert_eq!(on.num_free_blocks(), on.kv_cache_info().num_blocks);
}
