//! The modes on the engine's miniature Llama fixture (2 layers, hidden 64): fast in debug.

use std::path::PathBuf;

use llm_engine::{Engine, EngineConfig, LoadFormat};

use super::driver::SamplingTemplate;
use super::{latency, offline, serve};
use crate::arrival::ArrivalProcess;
use crate::dataset::{DatasetSpec, LengthSpec};
use crate::error::Result;

fn tiny_engine() -> Result<Engine> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../llm-engine/tests/fixtures/llama-tiny");
    Ok(Engine::new(EngineConfig {
        model: dir.display().to_string(),
        load_format: LoadFormat::Safetensors,
        max_model_len: Some(128),
        kv_cache_bytes: Some(4 << 20),
        ..EngineConfig::default()
    })?)
}

fn random(input: usize, output: usize) -> DatasetSpec {
    DatasetSpec::Random {
        input_len: LengthSpec::Fixed(input),
        output_len: LengthSpec::Fixed(output),
    }
}

fn json(v: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(v).expect("report serialises")
}

#[test]
fn offline_counts_tokens_and_keeps_the_seed_keys() -> Result<()> {
    let mut engine = tiny_engine()?;
    let spec = offline::OfflineSpec {
        dataset: random(8, 4),
        num_prompts: 4,
        warmup: 1,
        sampling: SamplingTemplate::default(),
        seed: 0,
    };
    let mut calls = 0;
    let r = offline::run(&mut engine, &spec, &mut |_, total| {
        assert_eq!(total, 4);
        calls += 1;
    })?;
    assert!(calls >= 1);
    assert_eq!(r.total_tokens, 16);
    assert_eq!(r.serving.total_input_tokens, 32);
    approx::assert_relative_eq!(
        r.throughput_tokens_per_sec * r.inference_time_s,
        16.0,
        max_relative = 1e-9
    );
    assert!(r.energy.energy_j.is_none() && r.energy.unavailable.is_some());
    let v = json(&r);
    for k in [
        "model",
        "num_prompts",
        "max_tokens",
        "load_time_s",
        "inference_time_s",
        "total_tokens",
        "throughput_tokens_per_sec",
        "latency_per_request_ms",
        "memory_used_gb",
        "memory_utilization_pct",
        "median_e2el_ms",
        "p99_ttft_ms",
    ] {
        assert!(v.get(k).is_some_and(|x| !x.is_null()), "missing {k}");
    }
    assert_eq!(v["max_tokens"], 4);
    assert_eq!(v["input_len"], 8);
    assert!(v["energy"]["joules_per_output_token"].is_null());
    assert!(r.summary().contains("Throughput:"));
    Ok(())
}

#[test]
fn latency_times_each_iteration() -> Result<()> {
    let mut engine = tiny_engine()?;
    let spec = latency::LatencySpec {
        dataset: random(6, 3),
        batch_size: 2,
        num_iters_warmup: 1,
        num_iters: 3,
        sampling: SamplingTemplate::default(),
        seed: 1,
    };
    let r = latency::run(&mut engine, &spec, &mut |_, _| {})?;
    assert_eq!(r.latencies.len(), 3);
    assert!(r.latencies.iter().all(|&l| l > 0.0));
    assert_eq!(r.output_tokens_per_batch, 6.0);
    let p: Vec<&str> = r.percentiles.keys().map(String::as_str).collect();
    assert_eq!(p, ["10", "25", "50", "75", "90", "99"]);
    assert!(r.percentiles["10"] <= r.percentiles["99"]);
    let mut bad = spec.clone();
    bad.batch_size = 0;
    assert!(latency::run(&mut engine, &bad, &mut |_, _| {}).is_err());
    Ok(())
}

#[test]
fn serve_respects_arrivals_and_the_concurrency_cap() -> Result<()> {
    let mut engine = tiny_engine()?;
    let spec = serve::ServeSpec {
        dataset: random(6, 4),
        num_prompts: 6,
        arrival: ArrivalProcess::new(200.0, 1.0)?,
        max_concurrency: Some(2),
        percentiles: vec![50.0, 90.0, 99.0],
        goodput: Some("ttft:60000,tpot:60000".parse()?),
        warmup: 0,
        sampling: SamplingTemplate::default(),
        seed: 3,
    };
    let last_arrival = *spec.arrival.arrival_times(6, 3 + 3)?.last().unwrap_or(&0.0);
    let r = serve::run(&mut engine, &spec, &mut |_, _| {})?;
    let s = &r.serving;
    assert_eq!((s.completed, s.failed, s.total_output_tokens), (6, 0, 24));
    assert!(
        s.max_concurrent_requests <= 2,
        "{}",
        s.max_concurrent_requests
    );
    assert!(s.duration_s >= last_arrival);
    // Generous SLOs: every request is good.
    approx::assert_relative_eq!(
        s.request_goodput.unwrap_or(0.0),
        s.request_throughput,
        max_relative = 1e-9
    );
    let v = json(&r);
    assert!(v["p90_tpot_ms"].is_number() && v["p99_itl_ms"].is_number());
    assert_eq!(v["request_rate"], 200.0);
    assert!(r.summary().contains("Serving Benchmark Result"));
    Ok(())
}

#[test]
fn phase_clock_lines_name_a_power_bound_phase() {
    use crate::energy::{ClocksByPhase, PhaseClocks};
    let phase = |clock, capped| PhaseClocks {
        samples: 10,
        median_sm_clock_mhz: Some(clock),
        mean_power_w: Some(690.0),
        power_capped_fraction: Some(capped),
    };
    let none = super::phase_clock_lines(&ClocksByPhase::default());
    assert_eq!(none, "", "no samples, no line");
    let calm = super::phase_clock_lines(&ClocksByPhase {
        prefill: Some(phase(1980, 0.0)),
        decode: Some(phase(1980, 0.1)),
    });
    assert!(
        calm.starts_with("Clocks by phase: prefill SM clock median 1980 MHz"),
        "{calm}"
    );
    assert!(!calm.contains("Power-bound"), "{calm}");
    let capped = super::phase_clock_lines(&ClocksByPhase {
        prefill: Some(phase(1485, 1.0)),
        decode: Some(phase(1755, 0.5)),
    });
    assert!(
        capped.contains("at the power limit in 100% of samples"),
        "{capped}"
    );
    assert!(capped.contains("Power-bound: prefill ran at"), "{capped}");
    assert!(!capped.contains("prefill and decode"), "{capped}");
}
