//! The `bench-all` binary: a `--quick` run into a temporary folder writes every file of the
//! results folder; a second run is refused without --resume/--force; --resume keeps the
//! finished stages and redoes the missing ones.

mod common;

use std::path::Path;

const BENCH_ALL: &str = env!("CARGO_BIN_EXE_bench-all");

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn quick(dir: &Path, extra: &[&str]) -> std::process::Output {
    let d = dir.to_str().expect("utf-8 temp path");
    let mut args = vec!["--quick", "--out-dir", d, "--instance", "g4dn.xlarge"];
    args.extend_from_slice(extra);
    common::run(BENCH_ALL, &args)
}

fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "bench-all failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn quick_run_writes_the_whole_folder_refuses_a_rerun_and_resumes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("results");
    let out = quick(&dir, &[]);
    assert_ok(&out);

    // Every file.
    for f in [
        "benchmark_summary.txt",
        "benchmark_results.json",
        "llm_results.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    for t in [
        "gemm",
        "bandwidth",
        "llm",
        "batch_sweep",
        "roofline",
        "cost",
    ] {
        let csv = read(&dir.join(format!("{t}.csv")));
        assert!(csv.lines().count() >= 2, "{t}.csv has no rows:\n{csv}");
        assert!(
            read(&dir.join(format!("{t}.md"))).starts_with('|'),
            "{t}.md"
        );
    }
    let summary = read(&dir.join("benchmark_summary.txt"));
    for needle in [
        "GEMM throughput",
        "Memory bandwidth",
        "tiny-llama",
        "tok/s",
        "Roofline",
        "per 1M tokens",
        "g4dn.xlarge",
    ] {
        assert!(
            summary.contains(needle),
            "summary lacks {needle:?}:\n{summary}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&read(&dir.join("benchmark_results.json"))).unwrap();
    assert_eq!(json["results_version"], 1);
    assert!(json["manifest"]["gpubench_version"].is_string());
    assert!(
        json["llm"][0]["throughput_tokens_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(json["primary_instance"], "g4dn.xlarge");
    let records: serde_json::Value =
        serde_json::from_str(&read(&dir.join("llm_results.json"))).unwrap();
    assert_eq!(records[0]["model"], "tiny-llama");

    // Every chart, with its axis labels and data marks.
    let charts: [(&str, &[&str]); 6] = [
        ("tflops_vs_peak", &["TFLOP/s", "precision", "fp32", "<rect"]),
        (
            "batch_throughput",
            &["batch size", "output tokens/s", "<polyline", "<circle"],
        ),
        (
            "batch_latency",
            &["batch size", "batch latency, ms", "<polyline"],
        ),
        ("pareto", &["output tokens/s", "Pareto front", "<circle"]),
        (
            "cost_per_instance",
            &["US$ per 1M output tokens", "g4dn.xlarge", "<rect"],
        ),
        (
            "roofline",
            &[
                "arithmetic intensity",
                "TFLOP/s",
                "measured roof",
                "prefill",
                "decode",
                "<circle",
            ],
        ),
    ];
    for (name, needles) in charts {
        let svg = read(&dir.join(format!("plots/{name}.svg")));
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(!svg.contains("no data"), "{name} has no data");
        for n in needles {
            assert!(svg.contains(n), "{name}.svg lacks {n:?}");
        }
    }

    // A second run without --resume/--force is refused, and changes nothing.
    let d = dir.to_str().unwrap();
    common::fails_with(BENCH_ALL, &["--quick", "--out-dir", d], "--resume");

    // Resume after an "interruption": the roofline stage and the summary are gone.
    let parts = dir.join("parts/points");
    let gemm_before = read(&parts.join("gemm.json"));
    std::fs::remove_file(parts.join("roofline-tiny-llama.json")).unwrap();
    std::fs::remove_file(dir.join("benchmark_summary.txt")).unwrap();
    let out = quick(&dir, &["--resume"]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gemm") && stderr.contains("kept"),
        "{stderr}"
    );
    assert_eq!(
        read(&parts.join("gemm.json")),
        gemm_before,
        "a kept stage was rerun"
    );
    assert!(parts.join("roofline-tiny-llama.json").is_file());
    assert!(dir.join("benchmark_summary.txt").is_file());

    // Resuming with other settings is refused.
    common::fails_with(
        BENCH_ALL,
        &["--quick", "--out-dir", d, "--resume", "--seed", "7"],
        "seed",
    );

    // --force replaces it.
    assert_ok(&quick(&dir, &["--force"]));
    assert_ne!(read(&parts.join("gemm.json")), gemm_before);
}

#[test]
fn bad_input_is_one_error_line() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let d = tmp.path().join("r");
    let d = d.to_str().unwrap();
    common::fails_with(
        BENCH_ALL,
        &["--quick", "--out-dir", d, "--models", "gpt-5"],
        "unknown model 'gpt-5'",
    );
    common::fails_with(
        BENCH_ALL,
        &["--quick", "--out-dir", d, "--instance", "no-such-instance"],
        "no-such-instance",
    );
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    common::fails_with(
        BENCH_ALL,
        &["--quick", "--out-dir", file.to_str().unwrap()],
        "is a file",
    );
}
