//! `llm-bench --mode latency|serve`, datasets, repeats, and their bad inputs (one `error:`
//! line, non-zero exit, no result file).

mod common;

use std::io::Write;

const EXE: &str = env!("CARGO_BIN_EXE_llm-bench");

fn json_of(args: &[&str]) -> serde_json::Value {
    let out = common::run(EXE, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn latency_mode_reports_batch_latency_percentiles() {
    let v = json_of(&[
        "--mode",
        "latency",
        "--batch-size",
        "2",
        "--input-len",
        "8",
        "--output-len",
        "3",
        "--num-iters-warmup",
        "1",
        "--num-iters",
        "3",
        "--json",
    ]);
    assert_eq!(v["mode"], "latency");
    assert_eq!(v["latencies"].as_array().map(Vec::len), Some(3));
    assert!(v["avg_latency"].as_f64().unwrap_or(0.0) > 0.0);
    for p in ["10", "25", "50", "75", "90", "99"] {
        assert!(v["percentiles"][p].is_number(), "p{p}");
    }
    assert!(v["energy"]["energy_j"].is_null());
    assert!(v["energy"]["unavailable"].is_string());
}

#[test]
fn serve_mode_with_rate_cap_goodput_and_repeats() {
    let v = json_of(&[
        "--mode",
        "serve",
        "--num-prompts",
        "5",
        "--input-len",
        "4..12",
        "--output-len",
        "4",
        "--request-rate",
        "50",
        "--burstiness",
        "0.5",
        "--max-concurrency",
        "2",
        "--goodput",
        "ttft:60000",
        "tpot:60000",
        "--metric-percentiles",
        "50,90",
        "--warmup",
        "0",
        "--repeat",
        "2",
        "--json",
    ]);
    assert_eq!(v["mode"], "serve");
    assert_eq!(v["completed"], 5);
    assert_eq!(v["total_output_tokens"], 20);
    assert!(v["max_concurrent_requests"].as_u64().unwrap_or(99) <= 2);
    assert_eq!(v["request_goodput"], v["request_throughput"]);
    assert!(v["p90_ttft_ms"].is_number() && v["median_tpot_ms"].is_number());
    assert!(v.get("p99_ttft_ms").is_none(), "only the asked percentiles");
    assert_eq!(v["burstiness"], 0.5);
    assert_eq!(v["repeat"]["repeats"], 2);
    assert!(v["repeat"]["spread"]["output_throughput"]["median"].is_number());
    assert_eq!(v["runs"].as_array().map(Vec::len), Some(2));
}

#[test]
fn jsonl_dataset_runs_offline() {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    writeln!(
        f,
        r#"{{"conversations":[{{"from":"human","value":"Hello"}},{{"from":"gpt","value":"Hi"}}]}}"#
    )
    .expect("write");
    writeln!(f, r#"{{"prompt":"Tell me more","output_len":3}}"#).expect("write");
    let path = f.path().to_string_lossy().into_owned();
    let v = json_of(&[
        "--dataset-name",
        "jsonl",
        "--dataset-path",
        &path,
        "--num-prompts",
        "4",
        "--output-len",
        "2",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_eq!(v["prompts"], "file");
    assert_eq!(v["num_prompts"], 4);
    // Dummy model, no tokenizer: the reply cannot be counted, so 2 (fallback) or 3.
    let total = v["total_tokens"].as_u64().unwrap_or(0);
    assert!((8..=12).contains(&total), "{total}");
}

#[test]
fn bad_mode_inputs_fail_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.json");
    let out_s = out.to_string_lossy().into_owned();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"prompt\":\"ok\"}\n{\"prompt\":\"ok\"}\n{oops\n").expect("write");
    let bad_s = bad.to_string_lossy().into_owned();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--dataset-name", "jsonl", "--dataset-path", &bad_s],
            "line 3",
        ),
        (&["--dataset-name", "sharegpt"], "--dataset-path"),
        (&["--mode", "serve", "--goodput", "ttft=5"], "--goodput"),
        (&["--mode", "serve", "--goodput", "itl:5"], "unknown metric"),
        (
            &["--mode", "serve", "--request-rate", "0"],
            "--request-rate must be > 0",
        ),
        (
            &["--mode", "serve", "--request-rate", "-2"],
            "--request-rate must be > 0",
        ),
        (
            &["--mode", "serve", "--request-rate", "fast"],
            "--request-rate",
        ),
        (
            &["--mode", "serve", "--burstiness", "0"],
            "--burstiness must be",
        ),
        (
            &["--mode", "serve", "--burstiness", "-1"],
            "--burstiness must be",
        ),
        (
            &["--mode", "serve", "--metric-percentiles", "50,101"],
            "--metric-percentiles",
        ),
        (
            &["--mode", "serve", "--max-concurrency", "0"],
            "--max-concurrency",
        ),
        (&["--mode", "latency", "--batch-size", "0"], "--batch-size"),
        (&["--random-range-ratio", "1.5"], "--random-range-ratio"),
        (&["--input-len", "9..3"], "--input-len"),
        (&["--repeat", "0"], "--repeat"),
    ];
    for (extra, needle) in cases {
        let mut args: Vec<&str> = vec!["--num-prompts", "2", "--output-len", "2", "--warmup", "0"];
        args.extend_from_slice(extra);
        args.extend(["--output", &out_s]);
        common::fails_with(EXE, &args, needle);
        assert!(!out.exists(), "{extra:?} left a result file");
    }
}
