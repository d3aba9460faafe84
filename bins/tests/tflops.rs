//! The `tflops` binary: bad input gives one `error:` line and a non-zero exit, never a
//! panic or a half-written file; a small CPU run gives checked GFLOP/s.

use std::process::Output;

mod common;

fn tflops(args: &[&str]) -> Output {
    common::run(env!("CARGO_BIN_EXE_tflops"), args)
}

/// Asserts a clean failure whose `error:` line contains `needle`.
fn fails_with(args: &[&str], needle: &str) {
    common::fails_with(env!("CARGO_BIN_EXE_tflops"), args, needle)
}

#[test]
fn unknown_dtype() {
    fails_with(
        &["--device", "cpu", "--dtypes", "fp12"],
        "unknown dtype 'fp12'",
    );
}

#[test]
fn size_zero_negative_and_garbage() {
    fails_with(&["--device", "cpu", "--sizes", "0"], "at least 1");
    fails_with(
        &["--device", "cpu", "--sizes", "-5"],
        "'-5' is not a positive integer",
    );
    fails_with(
        &["--device", "cpu", "--sizes", "512,abc"],
        "'abc' is not a positive integer",
    );
}

#[test]
fn size_too_large_for_memory_says_needed_and_free() {
    fails_with(
        &["--device", "cpu", "--sizes", "200000", "--dtypes", "fp32"],
        "GiB is free",
    );
    fails_with(
        &["--device", "cpu", "--sizes", "200000", "--dtypes", "fp32"],
        "needs",
    );
}

#[test]
fn unknown_device_and_model() {
    fails_with(&["--device", "tpu:0"], "unknown device 'tpu:0'");
    fails_with(
        &["--device", "cpu", "--model-shapes", "gpt-9"],
        "unknown model 'gpt-9'",
    );
}

#[test]
fn gpu_only_dtype_on_the_cpu() {
    fails_with(
        &["--device", "cpu", "--dtypes", "bf16"],
        "not supported on cpu",
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_in_a_cpu_build_says_how_to_rebuild() {
    fails_with(&["--device", "cuda"], "rebuild with --features cuda");
    fails_with(&["--device", "cuda:7"], "rebuild with --features cuda");
}

#[cfg(feature = "cuda")]
#[test]
fn a_missing_gpu_is_an_error_not_a_panic() {
    // cuda:7 on a host with fewer GPUs (or none): "no CUDA device 7: this host has N" or a
    // driver error, always one error line.
    let out = tflops(&["--device", "cuda:7", "--sizes", "64"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("error:") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn output_into_a_missing_directory_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("nope").join("r.json");
    let t = target.to_string_lossy().to_string();
    fails_with(
        &[
            "--device", "cpu", "--sizes", "32", "--iters", "3", "--output", &t,
        ],
        "does not exist",
    );
    assert!(!target.exists());
}

#[test]
fn small_cpu_run_writes_checked_gflops_as_json_and_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("r.json");
    let j = json.to_string_lossy().to_string();
    let args = [
        "--device",
        "cpu",
        "--sizes",
        "64,96",
        "--dtypes",
        "f32",
        "--iters",
        "5",
        "--min-iters",
        "3",
        "--json",
        "--output",
        &j,
    ];
    let out = tflops(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("GFLOP/s"), "{table}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    let results = doc["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for r in results {
        assert!(r["tflops"].as_f64().unwrap() > 0.0);
        assert!(r["check"]["rel_error"].as_f64().unwrap() <= 1e-4);
        assert_eq!(r["dtype"], "fp32");
    }
    assert_eq!(doc["manifest"]["built_with_cuda"], cfg!(feature = "cuda"));

    let csv_path = dir.path().join("r.csv");
    let c = csv_path.to_string_lossy().to_string();
    let out = tflops(&[
        "--device",
        "cpu",
        "--sizes",
        "32",
        "--iters",
        "3",
        "--min-iters",
        "3",
        "--output",
        &c,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv_path).expect("csv");
    assert!(text.starts_with("device,dtype,label"), "{text}");
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn model_shapes_measure_each_layer_gemm() {
    let out = tflops(&[
        "--device",
        "cpu",
        "--model-shapes",
        "tiny-llama",
        "--tokens",
        "1,4",
        "--iters",
        "3",
        "--min-iters",
        "3",
        "--csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    // 6 GEMMs (qkv, attn_out, mlp_up, mlp_gate, mlp_down, lm_head) x 2 token counts + header
    assert_eq!(csv.lines().count(), 13, "{csv}");
    assert!(csv.contains("tiny-llama mlp_gate"));
}
