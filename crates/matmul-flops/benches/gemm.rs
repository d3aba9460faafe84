//! Criterion benches of the GEMM backends, throughput in FLOPs (criterion's `Elements`).
//!
//! CPU always (fp32, fp16); CUDA with `--features cuda` (bf16, fp16, tf32, fp8 on device 0).
//! Each iteration is one GEMM launch timed by the backend itself (device events and a
//! stream synchronize on the GPU), through `iter_custom`.
//!
//!     cargo bench -p matmul-flops
//!     cargo bench -p matmul-flops --features cuda

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use matmul_flops::backend::{GemmOptions, PreparedGemm};
use matmul_flops::{
    open_gemm_backend, BenchDevice, GemmBackend, GemmDtype, GemmShape, HostOperands,
};

/// Total time of `iters` launches as the backend measured them.
fn timed(gemm: &mut dyn PreparedGemm, iters: u64) -> Duration {
    let mut left = iters;
    let mut total_ms = 0.0;
    while left > 0 {
        let n = left.min(64);
        match gemm.time_launches(n as usize) {
            Ok(t) => total_ms += t.iter().sum::<f64>(),
            Err(e) => {
                eprintln!("error: {e}");
                return Duration::ZERO;
            }
        }
        left -= n;
    }
    Duration::from_secs_f64(total_ms / 1e3)
}

fn bench_device(c: &mut Criterion, device: BenchDevice, cases: &[(GemmDtype, usize)]) {
    let mut backend: Box<dyn GemmBackend> = match open_gemm_backend(device) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipping {device}: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group(format!("gemm/{device}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let options = GemmOptions {
        autotune_candidates: 1,
        ..GemmOptions::default()
    };
    for &(dtype, n) in cases {
        let Ok(shape) = GemmShape::square(n) else {
            continue;
        };
        let Ok(ops) = HostOperands::random(dtype, shape, 1) else {
            continue;
        };
        let mut gemm = match backend.prepare(&ops, &options) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("skipping {dtype} {shape}: {e}");
                continue;
            }
        };
        group.throughput(Throughput::Elements(shape.flops() as u64));
        group.bench_with_input(BenchmarkId::new(dtype.name(), n), &n, |b, _| {
            b.iter_custom(|iters| timed(gemm.as_mut(), iters))
        });
    }
    group.finish();
}

fn cpu(c: &mut Criterion) {
    bench_device(
        c,
        BenchDevice::Cpu,
        &[
            (GemmDtype::Fp32, 128),
            (GemmDtype::Fp32, 256),
            (GemmDtype::Fp16, 256),
        ],
    );
}

#[cfg(feature = "cuda")]
fn cuda(c: &mut Criterion) {
    bench_device(
        c,
        BenchDevice::Cuda(0),
        &[
            (GemmDtype::Bf16, 4096),
            (GemmDtype::Fp16, 4096),
            (GemmDtype::Tf32, 4096),
            (GemmDtype::Fp8E4m3, 4096),
        ],
    );
}

#[cfg(not(feature = "cuda"))]
fn cuda(_c: &mut Criterion) {}

criterion_group!(benches, cpu, cuda);
criterion_main!(benches);
