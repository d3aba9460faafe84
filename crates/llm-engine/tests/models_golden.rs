//! Golden fixtures: tiny random GPT-2, OPT, Llama and Llama-3 (GQA, llama3 rope, sharded)
//! models saved by transformers (tests/fixtures/make_fixtures.py) must give transformers'
//! logits and greedy continuations through our paged path, whatever the chunking.

mod models_support;

use candle_core::{DType, Tensor};
use llm_engine::models::{load_model, CausalLm, LoadFormat, ModelSource, SeqSlice};
use llm_engine::PagedKvStorage;
use models_support::{
    argmax_rows, assert_close, expected, fixture_dir, paged_greedy, paged_logits_chunked,
    test_device, BlockAllocator,
};

const FIXTURES: &[&str] = &["gpt2-tiny", "opt-tiny", "llama-tiny", "llama3-gqa-tiny"];
/// f32 logits agree with transformers to this fraction of their magnitude.
const F32_TOL: f32 = 1e-4;

fn load(dir: &std::path::Path) -> Box<dyn CausalLm> {
    load_model(
        &ModelSource::Dir(dir.to_path_buf()),
        LoadFormat::Auto,
        DType::F32,
        &test_device(),
        0,
    )
    .expect("fixture loads")
    .model
}

#[test]
fn all_position_logits_match_transformers_in_one_slice_in_chunks_and_token_by_token() {
    for name in FIXTURES {
        let Some(dir) = fixture_dir(name) else {
            continue;
        };
        let model = load(&dir);
        for (i, p) in expected(&dir).iter().enumerate() {
            for (block_size, chunk) in [(16, usize::MAX), (4, usize::MAX), (4, 5), (16, 5), (4, 1)]
            {
                let ours = paged_logits_chunked(model.as_ref(), &p.token_ids, block_size, chunk)
                    .expect("forward");
                let what = format!("{name} prompt {i} (block {block_size}, chunk {chunk})");
                assert_close(&ours, &p.logits, F32_TOL, &what);
            }
        }
    }
}

#[test]
fn greedy_continuations_match_transformers() {
    for name in FIXTURES {
        let Some(dir) = fixture_dir(name) else {
            continue;
        };
        let model = load(&dir);
        for (i, p) in expected(&dir).iter().enumerate() {
            for block_size in [4, 16] {
                let ours = paged_greedy(
                    model.as_ref(),
                    &p.token_ids,
                    p.greedy_token_ids.len(),
                    block_size,
                )
                .expect("greedy decode");
                assert_eq!(
                    ours, p.greedy_token_ids,
                    "{name} prompt {i} block {block_size}"
                );
            }
        }
    }
}

#[test]
fn all_prompts_in_one_mixed_batch_match_transformers() {
    for name in FIXTURES {
        let Some(dir) = fixture_dir(name) else {
            continue;
        };
        let model = load(&dir);
        let prompts = expected(&dir);
        let bs = 4;
        let total: usize = prompts.iter().map(|p| p.token_ids.len().div_ceil(bs)).sum();
        let mut kv =
            PagedKvStorage::new(model.config(), total, bs, DType::F32, &test_device()).expect("kv");
        let mut alloc = BlockAllocator::new(total);
        // Step 1: the first 5 tokens of each prompt (or all of it); step 2: the rest.
        let mut tables = vec![Vec::new(); prompts.len()];
        let mut got: Vec<Vec<Tensor>> = vec![Vec::new(); prompts.len()];
        for step in 0..2 {
            let mut slices = Vec::new();
            let mut owners = Vec::new();
            for (j, p) in prompts.iter().enumerate() {
                let (from, to) = if step == 0 {
                    (0, p.token_ids.len().min(5))
                } else {
                    (p.token_ids.len().min(5), p.token_ids.len())
                };
                if from == to {
                    continue;
                }
                alloc.cover(&mut tables[j], to, bs);
                slices.push(SeqSlice {
                    token_ids: p.token_ids[from..to].to_vec(),
                    start_pos: from,
                    block_table: tables[j].clone(),
                    want_logits: true,
                });
                owners.push((j, to - from));
            }
            let logits = model
                .forward_all_logits(&slices, &mut kv)
                .expect("batched forward");
            let mut row = 0;
            for (j, n) in owners {
                got[j].push(logits.narrow(0, row, n).expect("rows"));
                row += n;
            }
        }
        for (j, p) in prompts.iter().enumerate() {
            let ours = Tensor::cat(&got[j], 0).expect("cat");
            assert_close(
                &ours,
                &p.logits,
                F32_TOL,
                &format!("{name} prompt {j} in a batch"),
            );
        }
    }
}

#[test]
fn last_token_logits_are_returned_only_for_slices_that_want_them() {
    let Some(dir) = fixture_dir("llama3-gqa-tiny") else {
        return;
    };
    let model = load(&dir);
    let prompts = expected(&dir);
    let (a, b) = (&prompts[1], &prompts[2]);
    let bs = 16;
    let mut kv =
        PagedKvStorage::new(model.config(), 16, bs, DType::F32, &test_device()).expect("kv");
    let mut alloc = BlockAllocator::new(16);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    alloc.cover(&mut ta, a.token_ids.len(), bs);
    alloc.cover(&mut tb, 10, bs);
    let slices = [
        SeqSlice {
            token_ids: a.token_ids.clone(),
            start_pos: 0,
            block_table: ta,
            want_logits: true,
        },
        // a non-final prefill chunk: no logits
        SeqSlice {
            token_ids: b.token_ids[..10].to_vec(),
            start_pos: 0,
            block_table: tb,
            want_logits: false,
        },
    ];
    let logits = model.forward(&slices, &mut kv).expect("forward");
    assert_eq!(logits.dims(), [1, model.config().vocab_size]);
    assert_eq!(logits.dtype(), DType::F32);
    let last = a
        .logits
        .narrow(0, a.token_ids.len() - 1, 1)
        .expect("last row");
    assert_close(&logits, &last, F32_TOL, "last-token logits");
    assert_eq!(
        argmax_rows(&logits).expect("argmax")[0],
        a.greedy_token_ids[0]
    );
}

#[test]
fn fixture_tokenizer_encodes_the_prompts_to_the_expected_ids() {
    for name in FIXTURES {
        let Some(dir) = fixture_dir(name) else {
            continue;
        };
        let loaded = load_model(
            &ModelSource::Dir(dir.clone()),
            LoadFormat::Auto,
            DType::F32,
            &test_device(),
            0,
        )
        .expect("fixture loads");
        let tok = loaded.tokenizer.expect("fixture has tokenizer.json");
        for p in expected(&dir) {
            assert_eq!(
                llm_engine::tokenizer::encode(&tok, &p.text).expect("encode"),
                p.token_ids,
                "{name}"
            );
        }
    }
}
