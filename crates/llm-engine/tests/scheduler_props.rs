//! Property tests of the block pool and the scheduler on random request traces (no model).
//!
//! A simulated KV cache stores, for every slot, a fingerprint of the token prefix whose K/V it
//! would hold. Every step checks that each scheduled sequence's cached positions hold exactly
//! its own prefix (so prefix sharing, copy-on-write and preemption never hand a sequence
//! someone else's K/V), that budgets hold, that admission is FCFS, and at the end that every
//! request finished and every block came back.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Instant;

use llm_engine::block_pool::KvBlockPool;
use llm_engine::request::RequestStatus;
use llm_engine::scheduler::{Scheduler, SchedulerConfig};
use llm_engine::{RequestId, SamplingParams};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct TraceRequest {
    arrival_step: usize,
    prompt_len: usize,
    shared_prefix: usize,
    group: u32,
    max_tokens: usize,
    abort_at: Option<usize>,
}

#[derive(Debug, Clone)]
struct Trace {
    block_size: usize,
    max_num_seqs: usize,
    max_num_batched_tokens: usize,
    max_model_len: usize,
    extra_blocks: usize,
    caching: bool,
    requests: Vec<TraceRequest>,
}

fn trace() -> impl Strategy<Value = Trace> {
    (
        1usize..=8,
        1usize..=8,
        1usize..=48,
        4usize..=48,
        0usize..=24,
        any::<bool>(),
    )
        .prop_flat_map(
            |(
                block_size,
                max_num_seqs,
                max_num_batched_tokens,
                max_model_len,
                extra_blocks,
                caching,
            )| {
                let req = (
                    0usize..12,
                    1usize..=max_model_len,
                    0usize..=max_model_len,
                    0u32..3,
                    1usize..=16,
                    prop::option::weighted(0.1, 0usize..30),
                )
                    .prop_map(
                        |(arrival_step, prompt_len, shared, group, max_tokens, abort_at)| {
                            TraceRequest {
                                arrival_step,
                                prompt_len,
                                shared_prefix: shared.min(prompt_len),
                                group,
                                max_tokens,
                                abort_at,
                            }
                        },
                    );
                prop::collection::vec(req, 1..24).prop_map(move |mut requests| {
                    requests.sort_by_key(|r| r.arrival_step);
                    Trace {
                        block_size,
                        max_num_seqs,
                        max_num_batched_tokens,
                        max_model_len,
                        extra_blocks,
                        caching,
                        requests,
                    }
                })
            },
        )
}

fn fingerprint(prefix: &[u32]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    prefix.hash(&mut h);
    h.finish()
}

fn prompt_tokens(r: &TraceRequest, index: usize) -> Vec<u32> {
    (0..r.prompt_len)
        .map(|i| {
            if i < r.shared_prefix {
                r.group * 1000 + i as u32
            } else {
                100_000 + index as u32 * 1000 + i as u32
            }
        })
        .collect()
}

fn run_trace(t: &Trace) -> Result<(), TestCaseError> {
    let min_blocks = t.max_model_len.div_ceil(t.block_size);
    let num_blocks = min_blocks + t.extra_blocks;
    let pool =
        KvBlockPool::new(num_blocks, t.caching).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let cfg = SchedulerConfig {
        max_num_seqs: t.max_num_seqs,
        max_num_batched_tokens: t.max_num_batched_tokens,
        max_model_len: t.max_model_len,
        enable_chunked_prefill: true,
    };
    let mut s =
        Scheduler::new(cfg, pool, t.block_size).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut kv: Vec<Option<u64>> = vec![None; num_blocks * t.block_size];
    let mut ids: Vec<RequestId> = Vec::new();
    let mut admitted: HashSet<RequestId> = HashSet::new();
    let mut aborted: HashSet<RequestId> = HashSet::new();
    let mut finished: HashSet<RequestId> = HashSet::new();
    let mut next = 0usize;
    let mut step = 0usize;
    let max_steps = 20_000;
    while next < t.requests.len() || s.has_unfinished() {
        prop_assert!(step < max_steps, "no progress after {max_steps} steps");
        while next < t.requests.len() && t.requests[next].arrival_step <= step {
            let r = &t.requests[next];
            let id = s
                .add_request(
                    prompt_tokens(r, next),
                    SamplingParams::greedy(r.max_tokens),
                    vec![],
                    Instant::now(),
                )
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(id, RequestId(next as u64));
            ids.push(id);
            next += 1;
        }
        for (i, r) in t.requests[..next].iter().enumerate() {
            if r.abort_at == Some(step) {
                let id = ids[i];
                if s.abort(id)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                {
                    aborted.insert(id);
                }
            }
        }
        let out = s
            .schedule()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Budgets.
        prop_assert!(out.num_tokens() <= t.max_num_batched_tokens);
        prop_assert!(out.seqs.len() <= t.max_num_seqs);
        prop_assert!(s.running().len() <= t.max_num_seqs);
        prop_assert!(
            s.running().windows(2).all(|w| w[0] < w[1]),
            "running in arrival order"
        );
        // FCFS: a request is admitted only after every earlier one was admitted or aborted.
        for seq in &out.seqs {
            if admitted.insert(seq.request_id) {
                for earlier in 0..seq.request_id.0 {
                    let e = RequestId(earlier);
                    prop_assert!(
                        admitted.contains(&e) || aborted.contains(&e),
                        "{} admitted before {}",
                        seq.request_id,
                        e
                    );
                }
            }
        }
        prop_assert!(
            !(s.has_unfinished() && out.is_empty()),
            "stalled: unfinished requests but nothing scheduled"
        );
        for &(src, dst) in &out.blocks_to_copy {
            for o in 0..t.block_size {
                kv[dst as usize * t.block_size + o] = kv[src as usize * t.block_size + o];
            }
        }
        let pool = s.kv().pool();
        pool.check_invariants().map_err(TestCaseError::fail)?;
        let mut written: HashSet<u32> = HashSet::new();
        let mut sampled = Vec::with_capacity(out.seqs.len());
        for seq in &out.seqs {
            let req = s
                .request(seq.request_id)
                .ok_or_else(|| TestCaseError::fail("no request"))?;
            let end = seq.start_pos + seq.token_ids.len();
            prop_assert_eq!(&seq.token_ids[..], &req.all_token_ids[seq.start_pos..end]);
            prop_assert!(seq.block_table.len() * t.block_size >= end);
            prop_assert_eq!(seq.want_logits, end == req.num_tokens());
            // Cached positions hold this request's own prefix.
            for p in 0..seq.start_pos {
                let slot =
                    seq.block_table[p / t.block_size] as usize * t.block_size + p % t.block_size;
                prop_assert_eq!(
                    kv[slot],
                    Some(fingerprint(&req.all_token_ids[..=p])),
                    "{} position {} holds wrong K/V",
                    seq.request_id,
                    p
                );
            }
            // Blocks written are private (copy-on-write happened) and not written twice.
            for b in seq.start_pos / t.block_size..end.div_ceil(t.block_size) {
                let block = seq.block_table[b];
                prop_assert_eq!(
                    pool.ref_count(block).unwrap_or(0),
                    1,
                    "writing shared block {}",
                    block
                );
                prop_assert!(
                    written.insert(block),
                    "block {} written by two sequences",
                    block
                );
            }
            for p in seq.start_pos..end {
                let slot =
                    seq.block_table[p / t.block_size] as usize * t.block_size + p % t.block_size;
                kv[slot] = Some(fingerprint(&req.all_token_ids[..=p]));
            }
            sampled.push(
                seq.want_logits
                    .then(|| (seq.request_id.0 as u32 * 7 + end as u32) % 5000),
            );
        }
        let updates = s
            .update_from_output(&out, &sampled, Instant::now())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for u in updates {
            if u.finished.is_some() {
                finished.insert(u.request_id);
            }
        }
        step += 1;
    }
    // Every request finished (or was aborted), every block is free again.
    for (i, &id) in ids.iter().enumerate() {
        let r = s
            .request(id)
            .ok_or_else(|| TestCaseError::fail("request vanished"))?;
        prop_assert!(matches!(r.status, RequestStatus::Finished(_)));
        if !aborted.contains(&id) {
            prop_assert!(finished.contains(&id));
            let want = t.requests[i]
                .max_tokens
                .min(t.max_model_len - t.requests[i].prompt_len)
                .max(1);
            prop_assert_eq!(r.num_output_tokens(), want, "{} output length", id);
        }
    }
    let pool = s.kv().pool();
    prop_assert_eq!(pool.num_free(), pool.num_blocks(), "blocks leaked");
    prop_assert_eq!(s.kv().num_seqs(), 0);
    pool.check_invariants().map_err(TestCaseError::fail)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_traces_finish_without_leaks(t in trace()) {
        run_trace(&t)?;
    }

    #[test]
    fn block_pool_random_ops(ops in prop::collection::vec((0u8..4, 0usize..16), 1..200), caching in any::<bool>()) {
        let mut pool = KvBlockPool::new(16, caching).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut held: HashMap<u32, u32> = HashMap::new();
        for (op, arg) in ops {
            match op {
                0 => {
                    let free = pool.num_free();
                    match pool.allocate() {
                        Ok(b) => { prop_assert_eq!(held.insert(b, 1), None, "allocated a held block"); }
                        Err(_) => prop_assert_eq!(free, 0),
                    }
                }
                1 => {
                    if let Some((&b, _)) = held.iter().nth(arg % held.len().max(1)) {
                        pool.free(b).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        let c = held.get_mut(&b).map(|c| { *c -= 1; *c }).unwrap_or(0);
                        if c == 0 { held.remove(&b); }
                    }
                }
                2 => {
                    if let Some((&b, _)) = held.iter().nth(arg % held.len().max(1)) {
                        pool.share(b).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        *held.entry(b).or_insert(0) += 1;
                    }
                }
                _ => {
                    // Freeing a block nobody holds is always reported.
                    let b = arg as u32;
                    if !held.contains_key(&b) {
                        prop_assert!(pool.free(b).is_err());
                    }
                }
            }
            pool.check_invariants().map_err(TestCaseError::fail)?;
            let used: usize = held.len();
            prop_assert_eq!(pool.num_used(), used);
            for (&b, &c) in &held {
                prop_assert_eq!(pool.ref_count(b).unwrap_or(0), c);
            }
        }
        for (b, c) in held {
            for _ in 0..c {
                pool.free(b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        prop_assert_eq!(pool.num_free(), 16);
    }
}
