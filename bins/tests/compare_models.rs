//! The `compare-models` binary: a model that fits runs, one that does not is reported with
//! needed vs available without running, the best is named, and bad input is one error line.

mod common;

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_compare-models");

/// The engine tests' miniature Llama (2 layers, hidden 64): fast even in a debug build.
const MINI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/llm-engine/tests/fixtures/llama-tiny"
);

const SMALL: &[&str] = &[
    "--load-format",
    "dummy",
    "--num-prompts",
    "3",
    "--input-len",
    "4",
    "--output-len",
    "3",
    "--warmup",
    "0",
];

fn run(extra: &[&str]) -> (bool, String, String) {
    let mut a = SMALL.to_vec();
    a.extend(extra);
    let out = common::run(EXE, &a);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_model_beyond_the_device_is_estimated_not_run() {
    // 4096 sequences of 2,000 tokens: llama-3-8b would need ~2 TB of KV cache (256 KiB per
    // token in f32) on top of 32 GB of weights, beyond any host; the miniature model has only
    // 256 positions. Neither is loaded, and the comparison still finishes.
    let models = format!("{MINI},llama-3-8b");
    let (ok, stdout, stderr) = run(&[
        "--models",
        &models,
        "--json",
        "--num-prompts",
        "4096",
        "--input-len",
        "1000",
        "--output-len",
        "1000",
        "--max-num-seqs",
        "4096",
    ]);
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let points = doc["points"].as_array().expect("points");
    assert_eq!(points[0]["status"], "error", "{}", points[0]);
    let err = points[0]["error"].as_str().unwrap_or("");
    assert!(err.contains("longer than its 256 positions"), "{err}");
    assert_eq!(points[1]["status"], "out_of_memory", "{}", points[1]);
    let err = points[1]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("llama-3-8b needs") && err.contains("GB available") && err.contains("not run"),
        "{err}"
    );
    assert!(doc["best"].is_null());
    // The estimate is reported for the model that was not run.
    let need = &doc["memory_needed"][1]["need"];
    assert!(
        need["total_bytes"].as_u64() > Some(1_000_000_000_000),
        "{need}"
    );
    assert!(doc["memory_needed"][0]["need"].is_null());
    assert!(doc["available_memory"]["bytes"].as_u64() > Some(0));
}

#[test]
fn best_model_is_named() {
    let (ok, stdout, stderr) = run(&["--models", MINI]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Fits best: "), "{stdout}");
    assert!(stdout.contains("ties: smaller memory need"), "{stdout}");
    let (ok, stdout, stderr) = run(&["--models", MINI, "--csv"]);
    assert!(ok, "{stderr}");
    let mut lines = stdout.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("model,status,")),
        "{stdout}"
    );
    let row = lines.next().unwrap_or("");
    assert!(row.contains(",ok,") && row.contains(",true,"), "{row}");
}

#[test]
fn bad_input_is_one_error_line() {
    let mut a = SMALL.to_vec();
    a.extend(["--models", "tiny-llama,no-such-model"]);
    common::fails_with(EXE, &a, "--models: no-such-model");
    let mut a = SMALL.to_vec();
    a.extend(["--models", "tiny-llama,"]);
    common::fails_with(EXE, &a, "--models: an empty name");
    let mut a = SMALL.to_vec();
    a.extend(["--models", MINI, "--dtype", "int8"]);
    common::fails_with(EXE, &a, "int8");
    let mut a = SMALL.to_vec();
    a.extend(["--models", MINI, "--num-prompts", "0"]);
    common::fails_with(EXE, &a, "--num-prompts must be at least 1");
    // Every model failing (not for memory) is a failure of the run.
    let mut a = SMALL.to_vec();
    a.extend(["--models", MINI, "--input-len", "300"]);
    common::fails_with(EXE, &a, "no model ran; ");
}
