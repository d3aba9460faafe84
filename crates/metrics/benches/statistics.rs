//! Cost of the statistics on benchmark-sized inputs: `Summary` over many latencies, and
//! `serving::compute` over a run of requests. Throughput is in samples / tokens.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use metrics::serving::{compute, RequestTimeline};
use metrics::{Summary, DEFAULT_PERCENTILES};

/// Deterministic pseudo-random latencies (LCG), no zeros.
fn latencies(n: usize) -> Vec<f64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            0.010 + (x >> 11) as f64 / (1u64 << 53) as f64 * 0.090
        })
        .collect()
}

fn summary(c: &mut Criterion) {
    let mut group = c.benchmark_group("summary");
    for n in [1_000usize, 100_000, 1_000_000] {
        let xs = latencies(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &xs, |b, xs| {
            b.iter(|| Summary::from_samples(xs))
        });
    }
    group.finish();
}

fn serving(c: &mut Criterion) {
    let (requests, tokens) = (1_000usize, 256usize);
    let gaps = latencies(requests * tokens);
    let timelines: Vec<RequestTimeline> = (0..requests)
        .map(|r| {
            let arrival = r as f64 * 0.01;
            let mut t = arrival;
            let times = gaps[r * tokens..(r + 1) * tokens]
                .iter()
                .map(|g| {
                    t += g;
                    t
                })
                .collect();
            RequestTimeline::new(arrival, times, 128)
        })
        .collect();
    let mut group = c.benchmark_group("serving_compute");
    group.throughput(Throughput::Elements((requests * tokens) as u64));
    group.bench_function("1000x256_tokens", |b| {
        b.iter(|| compute(&timelines, 60.0, &DEFAULT_PERCENTILES, None))
    });
    group.finish();
}

criterion_group!(benches, summary, serving);
criterion_main!(benches);
