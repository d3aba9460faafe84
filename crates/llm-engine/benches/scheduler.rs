//! Cost of one scheduling step (no model): 256 running requests decoding, with and without
//! prefix caching, and admission of 256 new 512-token prompts in 8192-token chunks. Shows the
//! scheduler's share of a step is microseconds, far below a forward pass.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use llm_engine::block_pool::KvBlockPool;
use llm_engine::scheduler::{Scheduler, SchedulerConfig};
use llm_engine::SamplingParams;

fn scheduler(caching: bool) -> Scheduler {
    let cfg = SchedulerConfig {
        max_num_seqs: 256,
        max_num_batched_tokens: 8192,
        max_model_len: 2048,
        enable_chunked_prefill: true,
    };
    let pool = KvBlockPool::new(64 * 1024, caching).expect("pool");
    Scheduler::new(cfg, pool, 16).expect("scheduler")
}

fn add(s: &mut Scheduler, n: usize, len: usize) {
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(100_000)
    };
    for i in 0..n {
        let prompt: Vec<u32> = (0..len).map(|k| (i * 7919 + k) as u32 % 30_000).collect();
        s.add_request(prompt, params.clone(), vec![], Instant::now())
            .expect("add");
    }
}

/// One schedule + update with a token for every sequence that wants one.
fn step(s: &mut Scheduler) -> usize {
    let out = s.schedule().expect("schedule");
    let sampled: Vec<Option<u32>> = out
        .seqs
        .iter()
        .map(|q| q.want_logits.then_some(5))
        .collect();
    s.update_from_output(&out, &sampled, Instant::now())
        .expect("update");
    out.seqs.len()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");
    for caching in [false, true] {
        g.throughput(Throughput::Elements(256));
        g.bench_function(format!("decode_step_256_seqs_caching_{caching}"), |b| {
            b.iter_custom(|iters| {
                // Requests finish at max_model_len (1920 decode steps after a 128-token
                // prompt), so time at most 1000 steps per freshly filled scheduler.
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let mut s = scheduler(caching);
                    add(&mut s, 256, 128);
                    while s.running().len() < 256 || s.waiting().next().is_some() {
                        step(&mut s);
                    }
                    let n = left.min(1000);
                    let t = Instant::now();
                    for _ in 0..n {
                        assert_eq!(step(&mut s), 256);
                    }
                    total += t.elapsed();
                    left -= n;
                }
                total
            })
        });
    }
    g.throughput(Throughput::Elements(256 * 512));
    g.bench_function("admit_256x512_prompts_in_chunks", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut s = scheduler(true);
                add(&mut s, 256, 512);
                let t = Instant::now();
                while s.waiting().next().is_some() {
                    step(&mut s);
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
