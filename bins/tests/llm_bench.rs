//! The `llm-bench` binary: a small default run reports the seed's keys; bad input gives one
//! `error:` line and a non-zero exit, never a panic or a half-written file.

use std::path::Path;
use std::process::{Command, Output};

/// Flags that keep a run to about a second on a CPU.
const SMALL: &[&str] = &["--num-prompts", "4", "--output-len", "4", "--warmup", "1"];

const SEED_KEYS: &[&str] = &[
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
];

fn llm_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llm-bench"))
        .args(args)
        .output()
        .expect("run llm-bench")
}

/// Asserts a clean failure whose `error:` line contains `needle`, and that `output` (if any)
/// was not created.
fn fails_with(args: &[&str], needle: &str, output: Option<&Path>) {
    let out = llm_bench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} should fail; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: want one error line in {stderr}");
    assert!(
        errors[0].contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        errors[0]
    );
    if let Some(p) = output {
        assert!(!p.exists(), "{args:?} left {}", p.display());
    }
}

#[test]
fn default_run_reports_the_seed_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("result.json");
    let file_s = file.to_string_lossy().into_owned();
    let mut args = SMALL.to_vec();
    args.extend(["--json", "--output", &file_s]);
    let out = llm_bench(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("Benchmarking: tiny-llama"), "{stderr}");
    let stdout: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("result file"))
            .expect("file is JSON");
    for doc in [&stdout, &saved] {
        for k in SEED_KEYS {
            assert!(doc.get(k).is_some(), "missing {k}");
        }
        assert_eq!(doc["model"], "tiny-llama");
        assert_eq!(doc["num_prompts"], 4);
        assert_eq!(doc["max_tokens"], 4);
        assert_eq!(doc["total_tokens"], 16, "4 prompts x 4 tokens, EOS ignored");
        let t = doc["throughput_tokens_per_sec"].as_f64().unwrap_or(0.0);
        let e = doc["inference_time_s"].as_f64().unwrap_or(0.0);
        assert!(t > 0.0 && e > 0.0);
        assert!(
            (t * e - 16.0).abs() < 1e-6 * 16.0,
            "throughput = output tokens / elapsed"
        );
        assert!(doc["kv_cache"]["num_blocks"].as_u64().unwrap_or(0) > 0);
        assert!(doc["median_e2el_ms"].as_f64().is_some());
        assert!(doc["p99_ttft_ms"].as_f64().is_some());
        assert_eq!(doc["device"], "cpu");
        assert!(doc["manifest"].is_object());
        let host = &doc["host_ms_per_step"];
        for k in ["schedule_ms", "forward_ms", "sample_ms", "update_ms"] {
            assert!(
                host[k].as_f64().is_some_and(|v| v >= 0.0),
                "host {k}: {host}"
            );
        }
        assert!(host["forward_ms"].as_f64().unwrap_or(0.0) > 0.0);
        assert_eq!(doc["decode_graph_steps"], 0, "no CUDA graphs on the CPU");
    }
}

/// `--enforce-eager` (no CUDA graphs) is accepted everywhere; on the CPU every step is eager.
#[test]
fn enforce_eager_runs() {
    let mut args = SMALL.to_vec();
    args.extend(["--enforce-eager", "--json"]);
    let out = llm_bench(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["total_tokens"], 16);
    assert_eq!(doc["decode_graph_steps"], 0);
}

/// Top-k / top-p sampling runs end to end and is reproducible (each request's draws are
/// seeded by its id), and the flags reach the engine: top-k 1 is greedy.
#[test]
fn top_k_and_top_p_sampling_run() {
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = SMALL.to_vec();
        args.extend(["--json", "--temperature", "0.8"]);
        args.extend(extra);
        let out = llm_bench(&args);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    for extra in [
        &["--top-k", "5"][..],
        &["--top-p", "0.9"],
        &["--top-k", "1"],
    ] {
        let doc = run(extra);
        assert_eq!(doc["total_tokens"], 16, "{extra:?}");
        assert_eq!(doc["failed"], 0, "{extra:?}");
    }
}

#[test]
fn seed_prompts_and_presets_run() {
    let mut args = SMALL.to_vec();
    args.extend(["--prompts", "seed", "--json"]);
    let out = llm_bench(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    // "Write a story about 0: " is 23 bytes: one token per byte without a tokenizer.
    assert_eq!(doc["total_input_tokens"], 23 * 4);
}

/// `--roofline` measures the CPU's ceilings and adds prefill and decode against them.
#[test]
fn roofline_holds_the_run_against_measured_ceilings() {
    let mut args = SMALL.to_vec();
    args.extend(["--roofline", "--json"]);
    let out = llm_bench(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("% of the GEMM ceiling"), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let r = &doc["roofline"];
    assert!(r["ceilings"]["gemm_tflops"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(r["ceilings"]["bandwidth_gb_s"].as_f64().unwrap_or(0.0) > 0.0);
    let pct = |phase: &str, key: &str| r[phase][key].as_f64().unwrap_or(f64::NAN);
    assert!(pct("prefill", "pct_of_gemm") > 0.0, "{r}");
    assert!(pct("decode", "pct_of_bandwidth") > 0.0, "{r}");
    // 4 prompts of 32 tokens, 32 decode steps: the decode steps are all timed.
    assert_eq!(r["timings"]["batch_size"], 4);
    assert_eq!(r["timings"]["decode_steps"], 32);
    fails_with(
        &["--roofline", "--input-len", "16..64", "--num-prompts", "2"],
        "fixed --input-len",
        None,
    );
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("out.json");
    let f = file.to_string_lossy().into_owned();
    let with_out = |extra: &[&str]| {
        let mut a: Vec<String> = SMALL.iter().map(|s| s.to_string()).collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--output".to_string(), f.clone()]);
        a
    };
    let run = |extra: &[&str], needle: &str| {
        let a = with_out(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fails_with(&a, needle, Some(&file));
    };
    run(
        &["--model", "no-such-model-anywhere"],
        "no-such-model-anywhere",
    );
    run(
        &["--model", "no-such-preset", "--load-format", "dummy"],
        "no-such-preset",
    );
    run(&["--num-prompts", "0"], "--num-prompts");
    run(&["--max-num-seqs", "0"], "max_num_seqs must be at least 1");
    run(
        &["--gpu-memory-utilization", "1.5"],
        "gpu_memory_utilization must be in (0, 1]",
    );
    run(&["--dtype", "int3"], "unknown dtype");
    run(&["--top-p", "0"], "top_p must be in (0, 1]");
    run(&["--temperature=-1"], "temperature must be >= 0");
    run(&["--load-format", "pickle"], "unknown load format");
    run(&["--device", "tpu"], "unknown device");
    if !cfg!(feature = "cuda") {
        run(&["--device", "cuda"], "rebuild with --features cuda");
    }
    run(&["--kv-cache-gb", "0.0001"], "KV cache needs");
    run(
        &["--input-len", "5000", "--max-model-len", "256"],
        "longer than max_model_len",
    );
    let empty = tempfile::tempdir().expect("tempdir");
    run(&["--model", &empty.path().to_string_lossy()], "config.json");
    fails_with(
        &["--num-prompts", "1", "--output", "/no/such/dir/out.json"],
        "does not exist",
        Some(Path::new("/no/such/dir/out.json")),
    );
}

/// `--kv-cache-dtype fp8` runs on the CPU and the JSON records it: the setting, the cache's
/// storage dtype, and a block of a quarter the bytes of the default f32 cache's.
#[test]
fn kv_cache_dtype_fp8_runs_and_is_recorded() {
    let run = |kv: &str| -> (serde_json::Value, String) {
        let mut args = SMALL.to_vec();
        args.extend(["--json", "--kv-cache-dtype", kv]);
        let out = llm_bench(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{kv}: {stderr}");
        (serde_json::from_slice(&out.stdout).expect("JSON"), stderr)
    };
    let (fp8, stderr) = run("fp8");
    assert_eq!(fp8["kv_cache_dtype"], "fp8_e4m3");
    assert_eq!(fp8["kv_cache"]["dtype"], "f8e4m3");
    assert_eq!(
        fp8["dtype"], "f32",
        "weights and activations keep the model dtype"
    );
    assert_eq!(fp8["total_tokens"], 16);
    assert!(stderr.contains("KV cache (f8e4m3)"), "{stderr}");
    let (auto, _) = run("auto");
    assert_eq!(auto["kv_cache_dtype"], "auto");
    assert_eq!(auto["kv_cache"]["dtype"], "f32");
    let bytes = |d: &serde_json::Value| d["kv_cache"]["bytes_per_block"].as_u64();
    assert_eq!(bytes(&fp8).map(|b| b * 4), bytes(&auto));
}

/// An unsupported or unknown `--kv-cache-dtype` is one error line, before anything runs.
#[test]
fn bad_kv_cache_dtype_is_one_error_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("result.json");
    let file_s = file.to_string_lossy().into_owned();
    fails_with(
        &["--kv-cache-dtype", "fp8_e5m2", "--output", &file_s],
        "only fp8_e4m3",
        Some(&file),
    );
    fails_with(
        &["--kv-cache-dtype", "foo", "--output", &file_s],
        "unknown kv cache dtype `foo` (use auto, fp8, fp8_e4m3)",
        Some(&file),
    );
}
