//! Integration tests of the `cost-analysis` binary: the happy path over the shipped
//! examples, and one test per kind of bad input (one-line `error: ...`, non-zero exit,
//! no output file left behind).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cost-analysis"));
    cmd.env_remove("RUST_LOG");
    cmd
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn seed_example() -> PathBuf {
    repo_file("examples/results/example_seed_vllm_benchmark.json")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("cost-analysis runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failure with exactly one stderr line starting with `error:` that contains
/// every string in `expected`.
fn assert_one_line_error(out: &Output, expected: &[&str]) {
    assert!(
        !out.status.success(),
        "should fail; stdout: {}",
        stdout(out)
    );
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for needle in expected {
        assert!(lines[0].contains(needle), "{err} lacks {needle:?}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ------------------------------------------------------------------ happy paths

#[test]
fn shipped_example_prints_a_table_for_every_catalog_instance() {
    let out = run(&[s(&seed_example())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Model: gpt2"), "{text}");
    assert!(text.contains("Model: facebook/opt-1.3b"), "{text}");
    let catalog = pricing::PriceCatalog::builtin().unwrap();
    for offer in catalog.offers() {
        assert_eq!(
            text.matches(&format!("  {}  ", offer.instance_type))
                .count(),
            2,
            "{} should appear once per model",
            offer.instance_type
        );
    }
    // The seed's own numbers for gpt2 on g4dn.xlarge: 200 tok/s -> $0.7306 per 1M tokens.
    assert!(text.contains("$0.7306"), "{text}");
    assert!(text.contains("720,000"), "{text}");
}

#[test]
fn one_instance_as_json_has_hand_checked_figures() {
    let out = run(&[s(&seed_example()), "--instance", "g4dn.xlarge", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let gpt2 = rows.iter().find(|r| r["model"] == "gpt2").unwrap();
    // 0.526 / (200 * 3600) * 1e6 = 0.730555...; 720000 / 0.526 = 1,368,821.29
    let cost = gpt2["cost_per_1m_tokens"].as_f64().unwrap();
    assert!((cost - 0.730_555_6).abs() < 1e-6, "{cost}");
    let tpd = gpt2["tokens_per_dollar"].as_f64().unwrap();
    assert!((tpd - 1_368_821.29).abs() < 0.01, "{tpd}");
}

#[test]
fn csv_to_file_and_gpus_used_scales_the_price() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let out = run(&[
        s(&seed_example()),
        "--instance",
        "aws/p5.48xlarge",
        "--gpus-used",
        "1",
        "--csv",
        "--output",
        s(&path),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let billed = headers
        .iter()
        .position(|h| h == "billed_usd_per_hour")
        .unwrap();
    let list = headers.iter().position(|h| h == "usd_per_hour").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let billed: f64 = row[billed].parse().unwrap();
        let list: f64 = row[list].parse().unwrap();
        assert!((billed - list / 8.0).abs() < 1e-9, "{billed} vs {list}/8");
    }
}

#[test]
fn user_prices_override_and_add_rows() {
    let out = run(&[
        s(&seed_example()),
        "--prices",
        s(&repo_file("examples/prices/example_my_prices.toml")),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    let t4 = rows
        .iter()
        .find(|r| r["instance_type"] == "g4dn.xlarge" && r["model"] == "gpt2")
        .unwrap();
    assert_eq!(t4["usd_per_hour"].as_f64(), Some(0.331));
    assert!(rows.iter().any(|r| r["instance_type"] == "rack3-l40s-x2"));

    let out = run(&[
        s(&seed_example()),
        "--prices",
        s(&repo_file("examples/prices/example_my_prices.json")),
        "--instance",
        "gpu_1x_h100_sxm5",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rows"][0]["usd_per_hour"].as_f64(), Some(2.99));
}

#[test]
fn power_example_reports_tokens_per_joule() {
    let out = run(&[
        s(&repo_file(
            "examples/results/example_gpubench_with_power.json",
        )),
        "--instance",
        "p5.48xlarge",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // 8192 tok/s / 320 W = 25.6 tokens/J; 32768 tokens / 3600 J = 9.102 tokens/J.
    assert!(text.contains("25.600 tokens/J"), "{text}");
    assert!(text.contains("9.102 tokens/J"), "{text}");
    assert!(text.contains("measured on NVIDIA H100 80GB HBM3"), "{text}");
    // p5.48xlarge has the benchmarked GPU model (h100-sxm): its rows are marked.
    let p5_rows: Vec<&str> = text.lines().filter(|l| l.contains("p5.48xlarge")).collect();
    assert_eq!(p5_rows.len(), 2, "{text}");
    assert!(
        p5_rows.iter().all(|l| l.trim_start().starts_with('*')),
        "{text}"
    );
}

#[test]
fn list_instances_shows_dates_and_sources() {
    let out = run(&["--list-instances"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("price date"), "{text}");
    assert!(text.contains("https://"), "{text}");
    assert!(text.contains("p5.48xlarge"), "{text}");
    let out = run(&["--list-instances", "--json"]);
    let offers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(offers.as_array().unwrap().len() >= 20);
}

#[test]
fn sort_by_throughput_puts_the_faster_model_first() {
    let out = run(&[s(&seed_example()), "--sort", "throughput", "--csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let first_data = text.lines().nth(1).unwrap();
    assert!(first_data.starts_with("gpt2,"), "{first_data}");
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("facebook/opt-1.3b,"), "{last}");
}

// ------------------------------------------------------------------ bad inputs

#[test]
fn unknown_instance_suggests_closest_names() {
    let out = run(&[s(&seed_example()), "--instance", "g4dn.xlarg"]);
    assert_one_line_error(
        &out,
        &["unknown instance `g4dn.xlarg`", "did you mean g4dn.xlarge"],
    );
}

#[test]
fn missing_results_file() {
    let out = run(&["/definitely/not/here.json"]);
    assert_one_line_error(&out, &["/definitely/not/here.json"]);
}

#[test]
fn empty_results_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.json", "\n");
    assert_one_line_error(&run(&[s(&path)]), &["empty"]);
}

#[test]
fn malformed_results_file_gives_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.json", "[\n {\"model\": \"gpt2\",\n");
    assert_one_line_error(&run(&[s(&path)]), &["bad.json:3:", "malformed JSON"]);
}

#[test]
fn results_without_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "r.json",
        r#"[{"model": "gpt2", "total_tokens": 5}]"#,
    );
    assert_one_line_error(&run(&[s(&path)]), &["throughput_tokens_per_sec"]);
}

#[test]
fn non_positive_or_non_numeric_throughput_names_the_record() {
    let dir = tempfile::tempdir().unwrap();
    for (value, expected) in [("0", "must be > 0"), ("\"fast\"", "not a number")] {
        let text = format!(r#"[{{"model": "gpt2", "throughput_tokens_per_sec": {value}}}]"#);
        let path = write(dir.path(), "r.json", &text);
        assert_one_line_error(&run(&[s(&path)]), &["record 0 (gpt2)", expected]);
    }
}

const PRICE_ROW: &str = r#"[[instance]]
provider = "aws"
instance_type = "g4dn.xlarge"
gpu_model = "t4"
gpu_count = 1
gpu_memory_gb = 16
usd_per_hour = 0.40
"#;

#[test]
fn negative_or_zero_price_in_user_file() {
    let dir = tempfile::tempdir().unwrap();
    for price in ["-1", "0"] {
        let prices = write(dir.path(), "p.toml", &PRICE_ROW.replace("0.40", price));
        let out = run(&[s(&seed_example()), "--prices", s(&prices)]);
        assert_one_line_error(&out, &["aws/g4dn.xlarge", "`usd_per_hour` must be > 0"]);
    }
}

#[test]
fn unknown_field_in_price_file() {
    let dir = tempfile::tempdir().unwrap();
    let prices = write(
        dir.path(),
        "p.toml",
        &PRICE_ROW.replace("usd_per_hour", "cost"),
    );
    let out = run(&[s(&seed_example()), "--prices", s(&prices)]);
    assert_one_line_error(&out, &["p.toml:", "unknown field `cost`"]);
}

#[test]
fn wrong_field_type_in_price_file_gives_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let prices = write(
        dir.path(),
        "p.toml",
        &PRICE_ROW.replace("gpu_count = 1", "gpu_count = \"one\""),
    );
    let out = run(&[s(&seed_example()), "--prices", s(&prices)]);
    assert_one_line_error(&out, &["p.toml:5:", "invalid type"]);

    let json = write(
        dir.path(),
        "p.json",
        "{\"instance\": [{\"provider\": \"aws\", \"instance_type\": \"x\",\n \"gpu_model\": \"t4\", \"gpu_count\": 1, \"gpu_memory_gb\": 16,\n \"usd_per_hour\": \"cheap\"}]}",
    );
    let out = run(&[s(&seed_example()), "--prices", s(&json)]);
    assert_one_line_error(&out, &["p.json:3:", "invalid type"]);
}

#[test]
fn empty_price_file() {
    let dir = tempfile::tempdir().unwrap();
    let prices = write(dir.path(), "p.toml", "# nothing here\n");
    let out = run(&[s(&seed_example()), "--prices", s(&prices)]);
    assert_one_line_error(&out, &["p.toml", "empty"]);
}

#[test]
fn unwritable_output_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing_dir = dir.path().join("no-such-dir").join("out.json");
    let out = run(&[s(&seed_example()), "--json", "--output", s(&missing_dir)]);
    assert_one_line_error(&out, &["cannot write", "out.json"]);
    assert!(!missing_dir.exists());

    // A directory as the target: the rename fails and no temporary file is left behind.
    let target = dir.path().join("target-dir");
    std::fs::create_dir(&target).unwrap();
    let out = run(&[s(&seed_example()), "--output", s(&target)]);
    assert!(!out.status.success());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("target-dir")]);
}

#[test]
fn bad_input_after_a_good_run_does_not_clobber_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    assert!(run(&[s(&seed_example()), "--json", "-o", s(&path)])
        .status
        .success());
    let before = std::fs::read(&path).unwrap();
    let bad = write(dir.path(), "bad.json", "{");
    let out = run(&[s(&bad), "--json", "-o", s(&path)]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn gpus_used_beyond_the_named_instance_is_an_error() {
    let out = run(&[
        s(&seed_example()),
        "--instance",
        "g4dn.xlarge",
        "--gpus-used",
        "2",
    ]);
    assert_one_line_error(&out, &["g4dn.xlarge has 1 GPU(s)"]);
}
