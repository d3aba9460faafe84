//! The engine's API on tiny models: seeded sampling, stop conditions, abort, step outputs and
//! timestamps, KV accounting, and every bad input giving its typed error.

mod engine_support;

use engine_support::*;
use llm_engine::engine::EngineConfig;
use llm_engine::{
    EngineError, FinishReason, LoadFormat, Prompt, RequestOutput, RequestOutputKind, SamplingParams,
};

fn sampled(seed: Option<u64>) -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        top_p: 0.95,
        top_k: 50,
        seed,
        max_tokens: 10,
        ignore_eos: true,
        ..SamplingParams::default()
    }
}

#[test]
fn seeded_sampling_is_reproducible_in_any_batch() {
    let ps = prompts(&[5, 30, 12, 50], 4096, 21);
    let target = ps[1].clone();
    let mut e = engine(tiny_config());
    let alone = generate(&mut e, std::slice::from_ref(&target), &sampled(Some(1234)));
    let again = generate(&mut e, std::slice::from_ref(&target), &sampled(Some(1234)));
    assert_eq!(alone[0].output_token_ids, again[0].output_token_ids);
    // In a batch, with chunked prefill and a different seed for the others.
    let mut e = engine(EngineConfig {
        max_num_batched_tokens: 20,
        ..tiny_config()
    });
    let mut ids = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let params = if i == 1 {
            sampled(Some(1234))
        } else {
            sampled(Some(i as u64))
        };
        ids.push(e.add_request(p.clone(), params).expect("add"));
    }
    let mut got = None;
    while e.has_unfinished_requests() {
        for o in e.step().expect("step") {
            if o.request_id == ids[1] && o.finished() {
                got = o.completed.map(|c| c.output_token_ids);
            }
        }
    }
    assert_eq!(got.as_ref(), Some(&alone[0].output_token_ids));
    // A different seed gives a different continuation (10 tokens at temperature 0.8).
    let other = generate(&mut e, std::slice::from_ref(&target), &sampled(Some(99)));
    assert_ne!(other[0].output_token_ids, alone[0].output_token_ids);
    // Without a seed, the engine's seed and the request id decide: reproducible per engine.
    let mut a = engine(tiny_config());
    let mut b = engine(tiny_config());
    assert_eq!(
        outputs(&generate(&mut a, &ps, &sampled(None))),
        outputs(&generate(&mut b, &ps, &sampled(None)))
    );
}

#[test]
fn stop_token_ids_eos_and_max_model_len() {
    let ps = prompts(&[8], 4096, 2);
    let mut e = engine(tiny_config());
    let free_run = generate(&mut e, &ps, &greedy(8))[0]
        .output_token_ids
        .clone();
    // Stop at the third token's id: output ends with it (kept), reason stop.
    let stop = free_run[2];
    let first = free_run.iter().position(|&t| t == stop).unwrap_or(2);
    let params = SamplingParams {
        stop_token_ids: vec![stop],
        ..greedy(8)
    };
    let d = &generate(&mut e, &ps, &params)[0];
    assert_eq!(d.output_token_ids, free_run[..=first].to_vec());
    assert_eq!(d.finish_reason, FinishReason::Stop);
    // max_model_len caps prompt + output.
    let mut e = engine(EngineConfig {
        max_model_len: Some(12),
        ..tiny_config()
    });
    let d = &generate(&mut e, &ps, &greedy(100))[0];
    assert_eq!(d.output_token_ids.len(), 4);
    assert_eq!(d.finish_reason, FinishReason::Length);
    // A prompt of exactly max_model_len still gets one token.
    let full = prompts(&[12], 4096, 3);
    assert_eq!(
        generate(&mut e, &full, &greedy(5))[0]
            .output_token_ids
            .len(),
        1
    );
}

#[test]
fn eos_stops_unless_ignored() {
    // A copy of the llama-tiny fixture whose config names as EOS the third token of a golden
    // greedy run: generation must stop right after its first occurrence, unless ignore_eos.
    let Some(src) = fixture_dir("llama-tiny") else {
        return;
    };
    let golden = golden_prompts(&src);
    let g = &golden[1];
    let eos = g.greedy_token_ids[2];
    let first = g
        .greedy_token_ids
        .iter()
        .position(|&t| t == eos)
        .unwrap_or(2);
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("config"))
            .expect("json");
    cfg["eos_token_id"] = serde_json::json!(eos);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).expect("write");
    let mut e = engine(EngineConfig {
        model: dir.path().to_string_lossy().into_owned(),
        load_format: LoadFormat::Safetensors,
        device: test_device(),
        kv_cache_bytes: Some(8 << 20),
        ..EngineConfig::default()
    });
    let p = Prompt::Tokens(g.token_ids.clone());
    let n = g.greedy_token_ids.len();
    let d = &generate(&mut e, std::slice::from_ref(&p), &SamplingParams::greedy(n))[0];
    assert_eq!(d.output_token_ids, g.greedy_token_ids[..=first].to_vec());
    assert_eq!(d.finish_reason, FinishReason::Stop);
    let d = &generate(&mut e, std::slice::from_ref(&p), &greedy(n))[0];
    assert_eq!(d.output_token_ids, g.greedy_token_ids);
    assert_eq!(d.finish_reason, FinishReason::Length);
}

#[test]
fn stop_strings_cut_the_text() {
    let Some(dir) = fixture_dir("gpt2-tiny") else {
        return;
    };
    let golden = golden_prompts(&dir);
    let cfg = EngineConfig {
        model: dir.to_string_lossy().into_owned(),
        load_format: LoadFormat::Safetensors,
        device: test_device(),
        kv_cache_bytes: Some(8 << 20),
        ..EngineConfig::default()
    };
    let mut e = engine(cfg);
    let p = Prompt::Text(golden[1].text.clone());
    let free = generate(&mut e, std::slice::from_ref(&p), &greedy(24))[0].clone();
    let text = free.text.clone().unwrap_or_default();
    assert!(text.chars().count() > 4, "{text:?}");
    // Stop at a substring that starts after a few characters of output.
    let start = text.char_indices().nth(3).map(|(i, _)| i).unwrap_or(0);
    let stop: String = text[start..].chars().take(2).collect();
    let cut = text.find(stop.as_str()).unwrap_or(start);
    let params = SamplingParams {
        stop: vec![stop.clone()],
        ..greedy(24)
    };
    let d = &generate(&mut e, std::slice::from_ref(&p), &params)[0];
    assert_eq!(d.finish_reason, FinishReason::Stop);
    assert_eq!(d.text.as_deref(), Some(&text[..cut]), "stop {stop:?}");
    assert!(d.output_token_ids.len() <= free.output_token_ids.len());
    assert_eq!(
        d.output_token_ids[..],
        free.output_token_ids[..d.output_token_ids.len()]
    );
}

/// Steps until every request is done, returning each request's outputs in order.
fn step_all(
    e: &mut llm_engine::Engine,
) -> std::collections::HashMap<llm_engine::RequestId, Vec<RequestOutput>> {
    let mut seen: std::collections::HashMap<_, Vec<RequestOutput>> = Default::default();
    while e.has_unfinished_requests() {
        for o in e.step().expect("step") {
            seen.entry(o.request_id).or_default().push(o);
        }
    }
    seen
}

#[test]
fn output_kinds_report_the_same_request_cumulatively_as_deltas_or_once() {
    let Some(dir) = fixture_dir("gpt2-tiny") else {
        return;
    };
    let golden = golden_prompts(&dir);
    let mut e = engine(EngineConfig {
        model: dir.to_string_lossy().into_owned(),
        load_format: LoadFormat::Safetensors,
        device: test_device(),
        kv_cache_bytes: Some(8 << 20),
        // Small chunks: the prompt's prefill takes several steps without a token.
        max_num_batched_tokens: 16,
        ..EngineConfig::default()
    });
    let p = Prompt::Text(golden[1].text.clone());
    let free = generate(&mut e, std::slice::from_ref(&p), &greedy(24))[0].clone();
    let text = free.text.clone().unwrap_or_default();
    // A stop string that cuts the text a few characters in (and so, in a delta stream, text
    // that could begin it must be held back until it cannot), and none.
    let start = text.char_indices().nth(3).map(|(i, _)| i).unwrap_or(0);
    let stop: String = text[start..].chars().take(2).collect();
    for stops in [vec![], vec![stop.clone()]] {
        let params = |kind| SamplingParams {
            stop: stops.clone(),
            output_kind: kind,
            ..greedy(24)
        };
        let ids: Vec<_> = [
            RequestOutputKind::Cumulative,
            RequestOutputKind::Delta,
            RequestOutputKind::FinalOnly,
        ]
        .into_iter()
        .map(|k| e.add_request(p.clone(), params(k)).expect("add"))
        .collect();
        let seen = step_all(&mut e);
        let done = |id| {
            let outs: &Vec<RequestOutput> = &seen[&id];
            let last = outs.last().expect("a final output");
            assert!(last.finished());
            assert!(outs[..outs.len() - 1].iter().all(|o| !o.finished()));
            (outs.clone(), *last.completed.clone().expect("the record"))
        };
        let (cum, cum_done) = done(ids[0]);
        let (delta, delta_done) = done(ids[1]);
        let (once, once_done) = done(ids[2]);
        // The same greedy request three times: the same record.
        for d in [&delta_done, &once_done] {
            assert_eq!(d.output_token_ids, cum_done.output_token_ids);
            assert_eq!(d.text, cum_done.text);
            assert_eq!(d.finish_reason, cum_done.finish_reason);
        }
        if stops.is_empty() {
            assert_eq!(cum_done.text.as_deref(), Some(text.as_str()));
        } else {
            assert_eq!(cum_done.finish_reason, FinishReason::Stop, "stop {stop:?}");
        }
        // Final only: one output, the whole request.
        assert_eq!(once.len(), 1);
        assert_eq!(once[0].output_token_ids, once_done.output_token_ids);
        assert_eq!(once[0].text, once_done.text);
        // Cumulative: every output has everything so far.
        for w in cum.windows(2) {
            let (a, b) = (&w[0].output_token_ids, &w[1].output_token_ids);
            assert_eq!(a[..], b[..a.len()]);
        }
        assert_eq!(cum.last().map(|o| &o.text), Some(&cum_done.text));
        // One output for every step the request ran in (so at least one per token).
        assert!(cum.len() >= cum_done.output_token_ids.len());
        assert!(delta.len() >= delta_done.output_token_ids.len());
        // Delta: the pieces add up to the record, and no text sent is taken back.
        let tokens: Vec<u32> = delta
            .iter()
            .flat_map(|o| o.output_token_ids.clone())
            .collect();
        assert_eq!(tokens, delta_done.output_token_ids);
        assert!(delta.iter().all(|o| o.new_token_ids == o.output_token_ids));
        let streamed: String = delta.iter().filter_map(|o| o.text.clone()).collect();
        assert_eq!(Some(streamed), delta_done.text);
        let times: Vec<f64> = delta
            .iter()
            .flat_map(|o| o.timings.token_times_s.clone())
            .collect();
        assert_eq!(times, delta_done.timings.token_times_s);
    }
}

#[test]
fn abort_frees_blocks_and_step_reports_progress() {
    let mut e = engine(EngineConfig {
        max_num_batched_tokens: 16,
        ..tiny_config()
    });
    let total = e.kv_cache_info().num_blocks;
    let ps = prompts(&[40, 10, 3], 4096, 9);
    let ids: Vec<_> = ps
        .iter()
        .map(|p| e.add_request(p.clone(), greedy(20)).expect("add"))
        .collect();
    // Step 1: only 16 tokens of the first prompt (chunked prefill), no token yet.
    let out = e.step().expect("step");
    assert_eq!(out.len(), 1);
    assert!(out[0].new_token_ids.is_empty());
    assert_eq!(e.last_step_stats().num_scheduled_tokens, 16);
    for _ in 0..4 {
        e.step().expect("step");
    }
    assert!(e.num_free_blocks() < total);
    let aborted = e.abort(ids[0]).expect("abort").expect("was live");
    assert_eq!(aborted.finish_reason, Some(FinishReason::Abort));
    assert!(
        e.abort(ids[0]).expect("abort").is_none(),
        "second abort is a no-op"
    );
    let waiting = e.abort(ids[2]).expect("abort");
    assert!(waiting.is_some());
    let mut times = Vec::new();
    while e.has_unfinished_requests() {
        for o in e.step().expect("step") {
            assert_eq!(o.request_id, ids[1]);
            assert_eq!(o.timings.token_times_s.len(), o.output_token_ids.len());
            if let Some(c) = o.completed {
                times = c.timings.token_times_s.clone();
                assert!(c.timings.arrival_s <= c.timings.first_scheduled_s.unwrap_or(f64::MAX));
                assert!(c.timings.ttft_s().unwrap_or(-1.0) >= 0.0);
                assert_eq!(c.output_token_ids.len(), 20);
            }
        }
    }
    assert_eq!(times.len(), 20);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(e.num_free_blocks(), total);
    assert!(e.step().expect("idle step").is_empty());
}

#[test]
fn kv_cache_and_memory_figures() {
    let e = engine(tiny_config());
    let info = e.kv_cache_info();
    // tiny-llama: 6 layers, 4 KV heads of 64, f32, 16 tokens: 2*6*16*4*64*4 bytes.
    assert_eq!(info.bytes_per_block, 2 * 6 * 16 * 4 * 64 * 4);
    assert_eq!(info.num_blocks, (64 << 20) / info.bytes_per_block);
    assert_eq!(info.blocks_per_max_len_seq, 16);
    let m = e.memory();
    assert_eq!(m.kv_cache_bytes, info.total_bytes);
    assert!(m.weights_bytes > 1_000_000);
    if on_cpu() {
        assert_eq!(m.used_bytes(), m.weights_bytes + m.kv_cache_bytes);
    } else {
        assert!(m.used_bytes() >= m.weights_bytes + m.kv_cache_bytes);
        assert!(m.device_total_bytes.is_some());
    }
    assert_eq!(e.max_model_len(), 256);
    assert!(e.load_time().as_secs_f64() > 0.0);
}

fn err_of(cfg: EngineConfig) -> EngineError {
    match llm_engine::Engine::new(cfg) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn bad_configs_are_typed_errors() {
    let e = err_of(EngineConfig {
        max_num_seqs: 0,
        ..tiny_config()
    });
    assert!(
        matches!(e, EngineError::InvalidConfig(ref m) if m.contains("max_num_seqs")),
        "{e}"
    );
    let e = err_of(EngineConfig {
        gpu_memory_utilization: 1.5,
        ..tiny_config()
    });
    assert!(e.to_string().contains("gpu_memory_utilization"), "{e}");
    let e = err_of(EngineConfig {
        model: "no-such-preset-or-model".into(),
        load_format: LoadFormat::Dummy,
        ..tiny_config()
    });
    assert!(!e.to_string().is_empty());
    // Exactly one max_model_len sequence fits (16 blocks of 192 KiB): fine; fewer: an error.
    let one_seq = 16 * 2 * 6 * 16 * 4 * 64 * 4;
    if let Err(e) = llm_engine::Engine::new(EngineConfig {
        kv_cache_bytes: Some(one_seq),
        ..tiny_config()
    }) {
        panic!("one max_model_len sequence should fit: {e}");
    }
    let e = err_of(EngineConfig {
        kv_cache_bytes: Some(500_000),
        ..tiny_config()
    });
    assert_eq!(
        e.to_string(),
        "KV cache needs 16 blocks for one sequence of max_model_len (256) tokens, have 2; lower --max-model-len or raise the budget"
    );
    let e = err_of(EngineConfig {
        max_model_len: Some(1 << 20),
        ..tiny_config()
    });
    assert!(e.to_string().contains("max_position_embeddings"), "{e}");
    if !cfg!(feature = "cuda") {
        let e = err_of(EngineConfig {
            device: "cuda".into(),
            ..tiny_config()
        });
        assert!(
            e.to_string().contains("rebuild with --features cuda"),
            "{e}"
        );
    }
    let e = err_of(EngineConfig {
        device: "tpu".into(),
        ..tiny_config()
    });
    assert!(matches!(e, EngineError::UnknownDevice(_)));
    let dir = tempfile::tempdir().expect("tempdir");
    let e = err_of(EngineConfig {
        model: dir.path().to_string_lossy().into_owned(),
        ..tiny_config()
    });
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn bad_requests_are_typed_errors() {
    let mut e = engine(tiny_config());
    let too_long = prompts(&[257], 4096, 1);
    let err = e.add_request(too_long[0].clone(), greedy(1)).err();
    assert!(
        matches!(
            err,
            Some(EngineError::PromptTooLong {
                len: 257,
                max_model_len: 256
            })
        ),
        "{err:?}"
    );
    assert!(matches!(
        e.add_request(Prompt::Tokens(vec![]), greedy(1)),
        Err(EngineError::EmptyPrompt)
    ));
    assert!(matches!(
        e.add_request(Prompt::Tokens(vec![5, 4096]), greedy(1)),
        Err(EngineError::TokenOutOfVocab { token: 4096, .. })
    ));
    assert!(matches!(
        e.add_request("hello", greedy(1)),
        Err(EngineError::NoTokenizer { .. })
    ));
    let stop = SamplingParams {
        stop: vec!["x".into()],
        ..greedy(1)
    };
    assert!(matches!(
        e.add_request(Prompt::Tokens(vec![5]), stop),
        Err(EngineError::NoTokenizer { .. })
    ));
    let bad = SamplingParams {
        top_p: 0.0,
        ..greedy(1)
    };
    assert!(matches!(
        e.add_request(Prompt::Tokens(vec![5]), bad),
        Err(EngineError::InvalidSamplingParams(_))
    ));
    // generate validates every prompt before adding any.
    let mixed = vec![Prompt::Tokens(vec![5]), too_long[0].clone()];
    assert!(e.generate(&mixed, &greedy(1)).is_err());
    assert!(!e.has_unfinished_requests());
}
