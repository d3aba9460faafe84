//! The `bandwidth` binary: bad input gives one `error:` line and a non-zero exit; a small
//! CPU run reports verified GB/s with copies counted as read + written bytes.

use std::process::Output;

mod common;

fn bandwidth(args: &[&str]) -> Output {
    common::run(env!("CARGO_BIN_EXE_bandwidth"), args)
}

/// Asserts a clean failure whose `error:` line contains `needle`.
fn fails_with(args: &[&str], needle: &str) {
    common::fails_with(env!("CARGO_BIN_EXE_bandwidth"), args, needle)
}

#[test]
fn zero_negative_and_huge_sizes() {
    fails_with(&["--device", "cpu", "--size-mib", "0"], "at least 1");
    fails_with(&["--device", "cpu", "--size-mib", "-5"], "-5");
    fails_with(
        &["--device", "cpu", "--size-mib", "100000000"],
        "GiB is free",
    );
}

#[test]
fn unknown_test_and_gpu_test_on_the_cpu() {
    fails_with(
        &["--device", "cpu", "--tests", "sideways"],
        "unknown bandwidth test",
    );
    fails_with(
        &[
            "--device",
            "cpu",
            "--tests",
            "h2d_pinned",
            "--size-mib",
            "1",
        ],
        "needs a GPU",
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_in_a_cpu_build_says_how_to_rebuild() {
    fails_with(&["--device", "cuda"], "rebuild with --features cuda");
}

#[test]
fn small_cpu_run_reports_verified_bandwidth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bw.json");
    let j = json.to_string_lossy().to_string();
    let out = bandwidth(&[
        "--device",
        "cpu",
        "--size-mib",
        "4",
        "--iters",
        "5",
        "--min-iters",
        "3",
        "--json",
        "--output",
        &j,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("read+written"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    let results = doc["results"].as_array().expect("results");
    let tests: Vec<&str> = results
        .iter()
        .map(|r| r["test"].as_str().unwrap())
        .collect();
    assert_eq!(tests, ["copy", "read", "write"]);
    assert_eq!(results[0]["bytes_per_pass"], 8 << 20);
    assert!(results.iter().all(|r| r["gb_s"].as_f64().unwrap() > 0.0));
}
