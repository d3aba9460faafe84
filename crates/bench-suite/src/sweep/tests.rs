//! Store and runner tests: layout, modes, resume after an interruption, failure records,
//! and one batch point on a miniature model.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map};

use super::*;
use crate::error::{BenchError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Size(usize);

impl SweepPoint for Size {
    fn key(&self) -> String {
        format!("size-{}", self.0)
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn header(points: &[Size], output_len: usize) -> SweepHeader {
    let mut fixed = Map::new();
    fixed.insert("model".into(), json!("tiny"));
    fixed.insert("output_len".into(), json!(output_len));
    SweepHeader::new("test-sweep", &["size"], points, fixed)
}

fn points() -> Vec<Size> {
    (1..=4).map(Size).collect()
}

#[test]
fn resume_after_an_interruption_runs_only_the_rest() -> Result<()> {
    let dir = tmp();
    let pts = points();
    // First run: the process dies while measuring the third point.
    let store = SweepStore::open(dir.path(), header(&pts, 8), StoreMode::New)?;
    let crashed = catch_unwind(AssertUnwindSafe(|| {
        run_sweep(
            Some(&store),
            &pts,
            |p: &Size| {
                if p.0 == 3 {
                    panic!("simulated crash at point 3");
                }
                Ok(p.0 * 10)
            },
            |_: &PointRecord<Size, usize>, _| {},
        )
    }));
    assert!(crashed.is_err());
    let kept: std::collections::BTreeMap<String, PointRecord<Size, usize>> = store.load()?;
    assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["size-1", "size-2"]);

    // Resume: only points 3 and 4 run; 1 and 2 come from disk.
    let store = SweepStore::open(dir.path(), header(&pts, 8), StoreMode::Resume)?;
    let ran = Cell::new(Vec::new());
    let mut resumed = Vec::new();
    let records = run_sweep(
        Some(&store),
        &pts,
        |p: &Size| {
            let mut v = ran.take();
            v.push(p.0);
            ran.set(v);
            Ok(p.0 * 100)
        },
        |r: &PointRecord<Size, usize>, from_disk| {
            if from_disk {
                resumed.push(r.point.0)
            }
        },
    )?;
    assert_eq!(ran.take(), vec![3, 4]);
    assert_eq!(resumed, vec![1, 2]);
    let results: Vec<Option<usize>> = records.iter().map(|r| r.result).collect();
    assert_eq!(results, vec![Some(10), Some(20), Some(300), Some(400)]);
    assert_eq!(store.load::<Size, usize>()?.len(), 4);
    Ok(())
}

#[test]
fn modes_refuse_or_replace_an_existing_sweep() -> Result<()> {
    let dir = tmp();
    let pts = points();
    let store = SweepStore::open(dir.path(), header(&pts, 8), StoreMode::New)?;
    run_sweep(Some(&store), &pts[..1], |p: &Size| Ok(p.0), |_, _| {})?;
    assert!(dir.path().join("sweep.json").is_file());
    assert!(dir.path().join("points/size-1.json").is_file());

    let err = SweepStore::open(dir.path(), header(&pts, 8), StoreMode::New)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("--resume") && err.contains("--force"), "{err}");

    let err = SweepStore::open(dir.path(), header(&pts, 16), StoreMode::Resume)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("output_len=8 (now 16)"), "{err}");

    std::fs::write(dir.path().join("notes.txt"), "keep me").map_err(|e| BenchError::Io {
        path: "notes".into(),
        error: e,
    })?;
    let store = SweepStore::open(dir.path(), header(&pts, 16), StoreMode::Force)?;
    assert!(store.load::<Size, usize>()?.is_empty(), "points removed");
    assert!(dir.path().join("notes.txt").is_file(), "other files kept");

    // A folder of other files is not a sweep to resume.
    let other = tmp();
    std::fs::write(other.path().join("x.txt"), "x").map_err(|e| BenchError::Io {
        path: "x".into(),
        error: e,
    })?;
    let err = SweepStore::open(other.path(), header(&pts, 8), StoreMode::Resume)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("no sweep.json"), "{err}");
    // Resume of a folder that does not exist yet simply starts.
    let fresh = dir.path().join("new");
    SweepStore::open(&fresh, header(&pts, 8), StoreMode::Resume)?;
    assert!(fresh.join("sweep.json").is_file());
    Ok(())
}

#[test]
fn failures_are_recorded_and_the_sweep_goes_on() -> Result<()> {
    let dir = tmp();
    let pts = points();
    let store = SweepStore::open(dir.path(), header(&pts, 8), StoreMode::New)?;
    let records = run_sweep(
        Some(&store),
        &pts,
        |p: &Size| match p.0 {
            2 => Err(BenchError::OutOfMemory(
                "batch of 2 needs 9 blocks, have 4".into(),
            )),
            3 => Err(BenchError::InvalidArgument("broken".into())),
            n => Ok(n),
        },
        |_, _| {},
    )?;
    let status: Vec<PointStatus> = records.iter().map(|r| r.status).collect();
    assert_eq!(
        status,
        vec![
            PointStatus::Ok,
            PointStatus::OutOfMemory,
            PointStatus::Error,
            PointStatus::Ok
        ]
    );
    let text = std::fs::read_to_string(store.point_path("size-2")).map_err(|e| BenchError::Io {
        path: "p".into(),
        error: e,
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BenchError::InvalidArgument(e.to_string()))?;
    assert_eq!(v["status"], "out_of_memory");
    assert!(v["error"]
        .as_str()
        .is_some_and(|e| e.contains("needs 9 blocks")));
    assert!(v.get("result").is_none());

    // On resume the error point runs again; the out-of-memory one is kept.
    let store = SweepStore::open(dir.path(), header(&pts, 8), StoreMode::Resume)?;
    let mut ran = Vec::new();
    run_sweep(
        Some(&store),
        &pts,
        |p: &Size| {
            ran.push(p.0);
            Ok(p.0)
        },
        |_, _| {},
    )?;
    assert_eq!(ran, vec![3]);
    Ok(())
}

#[test]
fn duplicate_points_are_refused() {
    let pts = vec![Size(1), Size(1)];
    let r = run_sweep(None, &pts, |p: &Size| Ok(p.0), |_, _| {});
    assert!(matches!(r, Err(BenchError::InvalidArgument(m)) if m.contains("listed twice")));
}

/// The miniature Llama of the engine's golden tests (2 layers, hidden 64, vocab 320).
fn mini_engine(kv_blocks: usize) -> Result<llm_engine::Engine> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../llm-engine/tests/fixtures/llama-tiny"
    );
    Ok(llm_engine::Engine::new(llm_engine::EngineConfig {
        model: dir.into(),
        load_format: llm_engine::LoadFormat::Dummy,
        max_model_len: Some(16),
        num_kv_blocks_override: Some(kv_blocks),
        max_num_seqs: 8,
        ..llm_engine::EngineConfig::default()
    })?)
}

#[test]
fn batch_points_measure_and_run_out_of_memory() -> Result<()> {
    use batch::{measure_batch, BatchWorkload};
    let mut engine = mini_engine(4)?;
    let w = BatchWorkload {
        input_len: 6,
        output_len: 4,
        warmup_iters: 1,
        iters: 2,
        seed: 1,
    };
    let r = measure_batch(&mut engine, &w, 2)?;
    assert_eq!(r.output_tokens, 8);
    assert_eq!(r.batch_latency_ms.count, 2);
    assert!(r.throughput_tokens_per_sec > 0.0);
    assert!((r.latency_per_request_ms * 2.0 - r.batch_latency_ms.mean).abs() < 1e-9);
    // 10 tokens = 1 block of 16 per sequence: 5 sequences need 5 of the 4 blocks.
    let oom = measure_batch(&mut engine, &w, 5);
    assert!(matches!(oom, Err(BenchError::OutOfMemory(ref m)) if m.contains("needs 5 KV blocks")));
    let waves = measure_batch(&mut engine, &w, 9);
    assert!(matches!(waves, Err(BenchError::InvalidArgument(ref m)) if m.contains("max_num_seqs")));
    Ok(())
}

#[test]
fn engine_slot_keeps_one_engine_and_reloads_after_a_broken_run() -> Result<()> {
    use batch::{measure_batch, BatchWorkload};
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../llm-engine/tests/fixtures/llama-tiny"
    );
    let mut slot = EngineSlot::new(llm_engine::EngineConfig {
        model: dir.into(),
        load_format: llm_engine::LoadFormat::Dummy,
        max_model_len: Some(16),
        num_kv_blocks_override: Some(8),
        max_num_seqs: 4,
        ..llm_engine::EngineConfig::default()
    });
    assert_eq!(slot.loads(), 0, "nothing loaded before the first point");
    let w = BatchWorkload {
        input_len: 4,
        output_len: 2,
        warmup_iters: 0,
        iters: 1,
        seed: 0,
    };
    for b in [1, 2, 4] {
        slot.run(|e| measure_batch(e, &w, b))?;
    }
    assert_eq!(slot.loads(), 1, "one engine for every point");
    // A failure that leaves the engine clean keeps it.
    assert!(slot.run(|e| measure_batch(e, &w, 5)).is_err());
    assert_eq!(slot.loads(), 1);
    // A failure with requests left inside drops it; the next point loads a fresh one.
    let r: Result<()> = slot.run(|e| {
        e.add_request(
            llm_engine::Prompt::Tokens(vec![3, 4, 5]),
            llm_engine::SamplingParams::greedy(2),
        )?;
        Err(BenchError::OutOfMemory(
            "simulated device out of memory mid-batch".into(),
        ))
    });
    assert!(r.is_err());
    let fresh = slot.run(|e| measure_batch(e, &w, 2))?;
    assert_eq!(fresh.output_tokens, 4);
    assert_eq!(slot.loads(), 2);
    Ok(())
}
