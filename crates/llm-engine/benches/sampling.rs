//! Cost of drawing one token from a 32,000-wide row of logits on the host (Llama's vocabulary),
//! per sampling mode: what a batch of 256 sampled requests pays per step, divided by the cores.
//! "flat" rows are what dummy weights give (logits ~ N(0, 1): top-p keeps most of the
//! vocabulary); "peaked" rows look like a trained model's (a few tokens hold most of the mass).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use llm_engine::sampling::sample_token;
use llm_engine::SamplingParams;
use rand::{Rng, SeedableRng};

const VOCAB: usize = 32_000;

fn row(peaked: bool) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    (0..VOCAB)
        .map(|i| {
            // Box-Muller-free normal-ish noise: the sum of 4 uniforms, centred.
            let n: f32 = (0..4).map(|_| rng.random::<f32>()).sum::<f32>() - 2.0;
            if peaked && i % 997 == 0 {
                12.0 + n
            } else if peaked {
                4.0 * n
            } else {
                n
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sample_token_32000");
    g.throughput(Throughput::Elements(VOCAB as u64));
    let modes = [
        ("greedy", SamplingParams::greedy(1)),
        (
            "temperature_0.8",
            SamplingParams {
                temperature: 0.8,
                ..SamplingParams::default()
            },
        ),
        (
            "top_k_50",
            SamplingParams {
                temperature: 0.8,
                top_k: 50,
                ..SamplingParams::default()
            },
        ),
        (
            "top_p_0.9",
            SamplingParams {
                temperature: 0.8,
                top_p: 0.9,
                ..SamplingParams::default()
            },
        ),
        (
            "min_p_0.05",
            SamplingParams {
                temperature: 0.8,
                min_p: 0.05,
                ..SamplingParams::default()
            },
        ),
    ];
    for peaked in [false, true] {
        let logits = row(peaked);
        let kind = if peaked { "peaked" } else { "flat" };
        for (name, params) in &modes {
            let mut pos = 0usize;
            g.bench_with_input(BenchmarkId::new(*name, kind), &logits, |b, l| {
                b.iter(|| {
                    pos += 1;
                    sample_token(l, params, 42, pos)
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
