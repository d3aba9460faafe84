//! Runs the `gpu-specs` binary: normal output with or without a GPU, JSON that parses, the
//! architecture table, and bad input (one `error:` line, non-zero exit, no output file).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn gpu_specs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpu-specs"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run gpu-specs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn nvidia_driver_present() -> bool {
    Path::new("/proc/driver/nvidia").exists()
}

/// Non-zero exit, exactly one stderr line starting with "error: ", nothing on stdout.
fn assert_one_line_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected failure, got {:?}", o.status);
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "stderr should be one line: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(
        lines[0].contains(needle),
        "{err:?} should mention {needle:?}"
    );
    assert!(
        o.stdout.is_empty(),
        "stdout should be empty: {:?}",
        stdout(o)
    );
}

#[test]
fn default_run_shows_host_and_gpus_or_why_not() {
    let o = gpu_specs(&[]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("Host\n"), "{text}");
    assert!(text.contains("logical"));
    if nvidia_driver_present() {
        assert!(text.contains("GPU 0: "), "{text}");
        assert!(text.contains("dense peaks") || text.contains("matched architecture"));
    } else {
        assert!(text.contains("no NVIDIA GPU: "), "{text}");
    }
}

#[test]
fn json_parses_and_has_report_and_rows() {
    let o = gpu_specs(&["--json"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert!(v["host"]["logical_cores"].as_u64().unwrap_or(0) >= 1);
    assert!(v["host"]["cpu_model"].is_string());
    let status = v["gpus"]["status"].as_str().unwrap_or_default();
    assert!(status == "available" || status == "unavailable", "{status}");
    assert!(v["matched_arch"].is_array());
    assert!(v["tutorial_specs"].is_array());
    if status == "unavailable" {
        let reason = v["gpus"]["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("no NVIDIA GPU: "), "{reason}");
    } else {
        let devices = v["gpus"]["devices"].as_array().expect("devices");
        assert_eq!(
            devices.len(),
            v["tutorial_specs"].as_array().map_or(0, Vec::len)
        );
    }
}

#[test]
fn output_file_is_written_whole_and_stdout_stays_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("specs.json");
    let path_s = path.to_str().expect("utf-8 path");
    let o = gpu_specs(&["--json", "--output", path_s]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert!(o.stdout.is_empty());
    let text = std::fs::read_to_string(&path).expect("output file");
    let v: Value = serde_json::from_str(&text).expect("valid JSON in file");
    assert!(v["host"].is_object());
    let entries = std::fs::read_dir(dir.path()).expect("read dir").count();
    assert_eq!(entries, 1, "no temporary files left behind");
}

#[test]
fn arch_table_text_and_json() {
    let o = gpu_specs(&["--arch-table"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let text = stdout(&o);
    for key in [
        "t4",
        "l4",
        "a10g",
        "v100-sxm2-16gb",
        "a100-sxm-80gb",
        "h100-sxm",
        "h200",
        "l40s",
        "b200",
    ] {
        assert!(text.contains(key), "missing {key}");
    }
    assert!(text.contains("Sources"));

    let o = gpu_specs(&["--arch-table", "--json"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    let rows = v.as_array().expect("array of rows");
    assert!(rows.len() >= 12);
    let h100 = rows
        .iter()
        .find(|r| r["key"] == "h100-sxm")
        .expect("h100-sxm row");
    assert_eq!(h100["peaks"]["bf16"], 989.4);
    assert_eq!(h100["sm_count"], 132);
    assert!(rows
        .iter()
        .all(|r| r["source"].as_str().is_some_and(|s| s.contains("http"))));
}

#[test]
fn one_arch_row_by_key_or_name() {
    let o = gpu_specs(&["--arch", "NVIDIA H100 80GB HBM3"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert!(stdout(&o).contains("H100 SXM (h100-sxm)"));
    let o = gpu_specs(&["--arch", "a10g", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_eq!(v["key"], "a10g");
}

#[test]
fn unknown_arch_is_one_line_error() {
    let o = gpu_specs(&["--arch", "tpu-v5"]);
    assert_one_line_error(&o, "unknown GPU architecture 'tpu-v5'");
}

#[test]
fn device_out_of_range_is_one_line_error() {
    let o = gpu_specs(&["--device", "4096"]);
    assert_one_line_error(&o, "GPU index 4096 is out of range");
}

#[test]
fn bad_flags_and_values_are_one_line_errors() {
    assert_one_line_error(&gpu_specs(&["--no-such-flag"]), "--no-such-flag");
    assert_one_line_error(&gpu_specs(&["--device", "minus-one"]), "minus-one");
    assert_one_line_error(
        &gpu_specs(&["--device", "0", "--arch-table"]),
        "cannot be used",
    );
}

#[test]
fn unwritable_output_is_one_line_error_and_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing-dir").join("specs.json");
    let o = gpu_specs(&["--json", "--output", path.to_str().expect("utf-8 path")]);
    assert_one_line_error(&o, "cannot write");
    assert!(!path.exists());
}

#[test]
fn help_explains_the_flags() {
    let o = gpu_specs(&["--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for flag in ["--json", "--output", "--device", "--arch-table", "--arch"] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
}
