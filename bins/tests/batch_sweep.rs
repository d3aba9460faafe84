//! The `batch-sweep` binary on a miniature model: per-batch figures and the optimum, a batch
//! that does not fit recorded as out of memory, the sweep folder with --resume / --force, and
//! one-line errors for bad input.

mod common;

use std::path::Path;

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_batch-sweep");

/// The engine tests' miniature Llama (2 layers, hidden 64): fast even in a debug build.
const MINI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/llm-engine/tests/fixtures/llama-tiny"
);

fn small(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--model",
        MINI,
        "--load-format",
        "dummy",
        "--input-len",
        "4",
        "--output-len",
        "4",
        "--iters",
        "1",
        "--warmup-iters",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run_ok(args: &[String]) -> (String, String) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::run(EXE, &a);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    (stdout, stderr)
}

fn json_of(args: &[String]) -> Value {
    let (stdout, _) = run_ok(args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn sweep_reports_points_optimum_and_curve() {
    let doc = json_of(&small(&[
        "--batch-sizes",
        "1,2,4",
        "--max-latency-ms",
        "100000",
        "--json",
    ]));
    let points = doc["points"].as_array().expect("points");
    assert_eq!(points.len(), 3);
    for (p, b) in points.iter().zip([1, 2, 4]) {
        assert_eq!(p["status"], "ok", "{p}");
        assert_eq!(p["point"]["batch_size"], b);
        assert_eq!(p["result"]["output_tokens"], 4 * b);
        assert!(p["result"]["throughput_tokens_per_sec"].as_f64() > Some(0.0));
        assert!(p["result"]["batch_latency_ms"]["percentiles"].is_array());
    }
    let s = &doc["summary"];
    assert!(s["best_throughput"]["batch_size"].is_u64(), "{s}");
    assert!(s["best_under_latency"]["batch_size"].is_u64(), "{s}");
    assert!(s["first_out_of_memory"].is_null());
    assert_eq!(s["curve"].as_array().map(Vec::len), Some(3));
    assert_eq!(doc["settings"]["output_len"], 4);
    assert!(
        doc["settings"].get("kv_cache_dtype").is_none(),
        "auto: not recorded"
    );
}

/// `--kv-cache-dtype fp8` runs a sweep on the CPU and is recorded in its settings.
#[test]
fn sweep_with_an_fp8_kv_cache() {
    let doc = json_of(&small(&[
        "--batch-sizes",
        "2",
        "--kv-cache-dtype",
        "fp8",
        "--json",
    ]));
    assert_eq!(doc["settings"]["kv_cache_dtype"], "fp8_e4m3");
    assert_eq!(doc["points"][0]["status"], "ok", "{doc}");
    assert_eq!(doc["points"][0]["result"]["output_tokens"], 8);
}

#[test]
fn a_batch_too_large_for_the_kv_cache_is_out_of_memory_and_the_sweep_goes_on() {
    // One KV block of this model holds 16 tokens in 16 KiB; 3 blocks' worth of budget.
    let gib = format!("{}", 3.5 * 16384.0 / (1u64 << 30) as f64);
    let (table, _) = run_ok(&small(&["--batch-sizes", "1,4,2", "--kv-cache-gb", &gib]));
    assert!(
        table.contains("out of memory: a batch of 4 sequences"),
        "{table}"
    );
    assert!(table.contains("Out of memory from batch size 4"), "{table}");
    let doc = json_of(&small(&[
        "--batch-sizes",
        "1,4,2",
        "--kv-cache-gb",
        &gib,
        "--json",
    ]));
    let status: Vec<&str> = doc["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(status, vec!["ok", "out_of_memory", "ok"]);
    assert_eq!(doc["summary"]["first_out_of_memory"], 4);
    assert_eq!(doc["summary"]["largest_fitting"], 2);
    let err = doc["points"][1]["error"].as_str().unwrap_or("");
    assert!(err.contains("needs 4 KV blocks"), "{err}");
}

fn modified(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn sweep_folder_resume_and_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let out_s = out.to_string_lossy().into_owned();
    run_ok(&small(&["--batch-sizes", "1,2", "--out-dir", &out_s]));
    let first = out.join("points/batch-1.json");
    assert!(first.is_file() && out.join("points/batch-2.json").is_file());
    assert!(out.join("sweep.json").is_file() && out.join("summary.json").is_file());
    let before = modified(&first);

    // Again without --resume or --force: refused.
    let a = small(&["--batch-sizes", "1,2", "--out-dir", &out_s]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    common::fails_with(EXE, &a, "--resume");
    // --resume with another seed: refused, naming the setting.
    let a = small(&[
        "--batch-sizes",
        "1,2",
        "--out-dir",
        &out_s,
        "--resume",
        "--seed",
        "5",
    ]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    common::fails_with(EXE, &a, "seed=0 (now 5)");

    // --resume with one more batch size runs only that one.
    let (_, stderr) = run_ok(&small(&[
        "--batch-sizes",
        "1,2,4",
        "--out-dir",
        &out_s,
        "--resume",
    ]));
    assert!(
        stderr.contains("batch 1: ok (kept from the earlier run)"),
        "{stderr}"
    );
    assert!(stderr.contains("batch 2: ok (kept"), "{stderr}");
    assert!(!stderr.contains("batch 4: ok (kept"), "{stderr}");
    assert_eq!(modified(&first), before, "a kept point is not rewritten");
    assert!(out.join("points/batch-4.json").is_file());

    // --force starts over.
    run_ok(&small(&[
        "--batch-sizes",
        "2",
        "--out-dir",
        &out_s,
        "--force",
    ]));
    assert!(!first.exists());
    assert!(out.join("points/batch-2.json").is_file());
}

#[test]
fn csv_has_one_line_per_batch_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sweep.csv");
    let file_s = file.to_string_lossy().into_owned();
    let (table, _) = run_ok(&small(&["--batch-sizes", "1,2", "--output", &file_s]));
    assert!(table.contains("Optimal batch size"), "{table}");
    let mut r = csv::Reader::from_path(&file).expect("csv");
    let headers = r.headers().expect("headers").clone();
    assert_eq!(&headers[0], "batch_size");
    assert!(headers.iter().any(|h| h == "throughput_tokens_per_sec"));
    assert_eq!(r.records().count(), 2);
}

#[test]
fn bad_input_is_one_error_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--batch-sizes", "0,2"],
            "--batch-sizes: 0 is out of range",
        ),
        (
            &["--batch-sizes", "2,2"],
            "--batch-sizes: 2 is listed twice",
        ),
        (
            &["--batch-sizes", "two"],
            "--batch-sizes: `two` is not a whole number",
        ),
        (
            &["--batch-sizes", "1", "--max-latency-ms=-5"],
            "--max-latency-ms",
        ),
        (
            &["--batch-sizes", "1", "--iters", "0"],
            "--iters must be at least 1",
        ),
        (
            &["--batch-sizes", "1", "--gpu-memory-utilization", "1.5"],
            "gpu_memory_utilization",
        ),
        (
            &["--batch-sizes", "1", "--kv-cache-dtype", "fp8_e5m2"],
            "only fp8_e4m3",
        ),
    ];
    for (extra, needle) in cases {
        let a = small(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        common::fails_with(EXE, &a, needle);
    }
    common::fails_with(
        EXE,
        &["--model", "no-such-model", "--batch-sizes", "1"],
        "no-such-model",
    );
}
