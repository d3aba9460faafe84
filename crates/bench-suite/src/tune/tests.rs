//! Unit tests of the grid, the objective and the summary (no engine runs).

use super::*;
use crate::sweep::SweepPoint;

fn grid() -> Result<TuneGrid> {
    TuneGrid::parse("0.8,0.9", "512, 2048", "8", "f32,bfloat16", "16")
}

#[test]
fn grid_parses_and_crosses() -> Result<()> {
    let g = grid()?;
    assert_eq!(g.dtype, vec!["f32", "bf16"]);
    let pts = g.points();
    assert_eq!(pts.len(), 2 * 2 * 2);
    let keys: std::collections::HashSet<String> = pts.iter().map(SweepPoint::key).collect();
    assert_eq!(keys.len(), pts.len(), "keys are unique");
    assert_eq!(pts[0].key(), "gmu0.8-mnbt512-mns8-f32-bs16");
    Ok(())
}

#[test]
fn bad_values_name_flag_and_value() {
    let err = |r: Result<TuneGrid>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let e = err(TuneGrid::parse("0.9,1.5", "512", "8", "f32", "16"));
    assert_eq!(e, "--gpu-memory-utilization: 1.5 is out of range (0, 1]");
    let e = err(TuneGrid::parse("0", "512", "8", "f32", "16"));
    assert!(
        e.contains("--gpu-memory-utilization: 0 is out of range"),
        "{e}"
    );
    let e = err(TuneGrid::parse("0.9", "0", "8", "f32", "16"));
    assert!(
        e.starts_with("--max-num-batched-tokens: 0 is out of range"),
        "{e}"
    );
    let e = err(TuneGrid::parse("0.9", "512", "x", "f32", "16"));
    assert_eq!(e, "--max-num-seqs: `x` is not a whole number");
    let e = err(TuneGrid::parse("0.9", "512", "8", "int8", "16"));
    assert!(e.starts_with("--dtype: `int8` is not a dtype"), "{e}");
    let e = err(TuneGrid::parse("0.9", "512", "8", "f16,float16", "16"));
    assert_eq!(e, "--dtype: f16 is listed twice");
    let e = err(TuneGrid::parse("0.9", "512", "8", "f32", "4096"));
    assert!(e.starts_with("--block-size: 4096 is out of range"), "{e}");
    let e = err(TuneGrid::parse("0.9", "512", "8", "f32", ""));
    assert!(e.starts_with("--block-size: `` is not"), "{e}");
}

#[test]
fn objective_flags() {
    assert!(Objective::from_flags("throughput", None, LatencyStat::P99).is_ok());
    assert!(Objective::from_flags("throughput", Some(5.0), LatencyStat::P99).is_err());
    assert!(Objective::from_flags("throughput-under-slo", None, LatencyStat::P99).is_err());
    assert!(Objective::from_flags("throughput-under-slo", Some(-1.0), LatencyStat::P99).is_err());
    assert!(Objective::from_flags("latency", None, LatencyStat::P99).is_err());
    assert_eq!(
        Objective::from_flags("throughput-under-slo", Some(50.0), LatencyStat::Mean).ok(),
        Some(Objective::ThroughputUnderSlo {
            slo_ms: 50.0,
            latency: LatencyStat::Mean
        })
    );
}

fn record(
    mns: usize,
    status: PointStatus,
    tput: f64,
    p99: f64,
) -> PointRecord<TunePoint, TuneResult> {
    let point = TunePoint {
        gpu_memory_utilization: 0.9,
        max_num_batched_tokens: 512,
        max_num_seqs: mns,
        dtype: "f32".into(),
        block_size: 16,
    };
    let result = (status == PointStatus::Ok).then(|| TuneResult {
        figures: OfflineFigures {
            num_prompts: 4,
            output_tokens: 16,
            input_tokens: 16,
            elapsed_s: 1.0,
            throughput_tokens_per_sec: tput,
            total_token_throughput: tput,
            latency_per_request_ms: 1.0,
            mean_e2el_ms: p99 / 2.0,
            median_e2el_ms: p99 / 2.0,
            p99_e2el_ms: p99,
            mean_ttft_ms: 1.0,
            p99_ttft_ms: 1.0,
            preemptions: 0,
        },
        kv_num_blocks: 10,
        kv_total_bytes: 10,
        memory_used_bytes: 10,
        load_time_s: 0.1,
    });
    PointRecord {
        key: point.key(),
        point,
        status,
        error: None,
        result,
        wall_time_s: 0.0,
        finished_at: String::new(),
    }
}

#[test]
fn best_and_front() {
    let recs = vec![
        record(1, PointStatus::Ok, 100.0, 10.0),
        record(2, PointStatus::Ok, 180.0, 30.0),
        record(4, PointStatus::Ok, 180.0, 25.0),
        record(8, PointStatus::Ok, 150.0, 40.0),
        record(16, PointStatus::OutOfMemory, 0.0, 0.0),
        record(32, PointStatus::Error, 0.0, 0.0),
    ];
    let obj = Objective::Throughput {
        latency: LatencyStat::P99,
    };
    let r = summarize(&recs, obj, DeviceSpec::Cpu);
    assert_eq!(
        r.best.as_ref().map(|b| b.point.max_num_seqs),
        Some(4),
        "tie -> lower latency"
    );
    let front: Vec<usize> = r
        .pareto_front
        .iter()
        .map(|c| c.point.max_num_seqs)
        .collect();
    assert_eq!(front, vec![1, 4]);
    assert_eq!((r.num_ok, r.num_out_of_memory, r.num_error), (4, 1, 1));
    assert!(r.notes.is_empty(), "one utilization value: nothing to say");

    let slo = Objective::ThroughputUnderSlo {
        slo_ms: 20.0,
        latency: LatencyStat::P99,
    };
    let r = summarize(&recs, slo, DeviceSpec::Cpu);
    assert_eq!(r.best.map(|b| b.point.max_num_seqs), Some(1));
    let mean = Objective::ThroughputUnderSlo {
        slo_ms: 14.0,
        latency: LatencyStat::Mean,
    };
    let r = summarize(&recs, mean, DeviceSpec::Cpu);
    assert_eq!(
        r.best.map(|b| b.point.max_num_seqs),
        Some(4),
        "mean of 25 is 12.5"
    );
    let none = Objective::ThroughputUnderSlo {
        slo_ms: 1.0,
        latency: LatencyStat::P99,
    };
    let r = summarize(&recs, none, DeviceSpec::Cpu);
    assert!(r.best.is_none());
    assert!(r.notes.iter().any(|n| n.contains("no configuration met")));
}

/// The miniature Llama of the engine's golden tests (2 layers, hidden 64, vocab 320).
pub(crate) const MINI_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../llm-engine/tests/fixtures/llama-tiny"
);

#[test]
fn measure_a_small_grid_on_a_miniature_model() -> Result<()> {
    let base = EngineConfig {
        model: MINI_MODEL.into(),
        load_format: llm_engine::LoadFormat::Dummy,
        max_model_len: Some(16),
        kv_cache_bytes: Some(1 << 20),
        ..EngineConfig::default()
    };
    let workload = OfflineWorkload {
        num_prompts: 4,
        input_len: 6,
        output_len: 3,
        warmup_prompts: 1,
        seed: 3,
    };
    let grid = TuneGrid::parse("0.9", "64", "1,4", "f32", "8")?;
    let mut results = Vec::new();
    for p in grid.points() {
        let r = measure_point(&base, &workload, &p)?;
        assert_eq!(r.figures.output_tokens, 12);
        assert_eq!(r.figures.input_tokens, 24);
        assert!(r.figures.p99_e2el_ms >= r.figures.median_e2el_ms);
        assert!(r.figures.mean_ttft_ms <= r.figures.mean_e2el_ms);
        results.push(r);
    }
    // One sequence at a time: the last request waits for the three before it.
    assert!(results[0].figures.p99_e2el_ms > results[0].figures.median_e2el_ms);
    let too_long = OfflineWorkload {
        input_len: 15,
        ..workload
    };
    let e = measure_point(&base, &too_long, &grid.points()[0]);
    assert!(matches!(e, Err(BenchError::InvalidArgument(ref m)) if m.contains("max_model_len")));
    Ok(())
}
