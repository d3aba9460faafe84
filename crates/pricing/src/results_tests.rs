use super::*;
use approx::assert_relative_eq;

fn parse(text: &str) -> Result<BenchmarkResults> {
    BenchmarkResults::parse(text, Path::new("r.json"))
}

const SEED_RECORD: &str = r#"{
  "model": "gpt2", "num_prompts": 50, "max_tokens": 128, "load_time_s": 12.5,
  "inference_time_s": 2.0, "total_tokens": 6400, "throughput_tokens_per_sec": 3200.0,
  "latency_per_request_ms": 40.0, "memory_used_gb": 0.5, "memory_utilization_pct": 2.1
}"#;

#[test]
fn single_object_is_one_record() {
    let r = parse(SEED_RECORD).unwrap();
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.records[0].model, "gpt2");
    assert_relative_eq!(r.records[0].throughput.value(), 3200.0);
    assert_eq!(r.records[0].total_tokens, Some(6400.0));
    assert!(r.records[0].tokens_per_joule().is_none());
}

#[test]
fn array_with_extra_keys_and_rich_fields() {
    let text = format!(
        r#"[{SEED_RECORD}, {{"model": "facebook/opt-1.3b", "throughput_tokens_per_sec": 900,
        "output_throughput": 850.5, "avg_power_w": 300, "gpu": {{"name": "NVIDIA H100"}},
        "device": "cuda:0", "whatever": [1, 2]}}]"#
    );
    let r = parse(&text).unwrap();
    assert_eq!(r.records.len(), 2);
    let opt = &r.records[1];
    assert_eq!(opt.output_throughput, Some(850.5));
    assert_eq!(opt.gpu.as_deref(), Some("NVIDIA H100"));
    // "NVIDIA H100" alone does not say SXM or PCIe; gpu-probe may or may not decide.
    assert!(matches!(
        opt.gpu_arch.as_deref(),
        None | Some("h100-sxm" | "h100-pcie")
    ));
    assert_eq!(opt.device.as_deref(), Some("cuda:0"));
    // 900 tok/s / 300 W = 3 tokens/J.
    assert_relative_eq!(opt.tokens_per_joule().unwrap().0, 3.0);
}

#[test]
fn energy_with_total_tokens_or_time() {
    // 6400 tokens / 1600 J = 4 tokens/J.
    let with_tokens = SEED_RECORD.replace("\"model\"", "\"energy_j\": 1600, \"model\"");
    assert_relative_eq!(
        parse(&with_tokens).unwrap().records[0]
            .tokens_per_joule()
            .unwrap()
            .0,
        4.0
    );
    // Without total_tokens: 3200 tok/s * 2 s = 6400 tokens -> same.
    let text = r#"{"model": "m", "throughput_tokens_per_sec": 3200, "inference_time_s": 2,
                   "energy_j": 1600}"#;
    assert_relative_eq!(
        parse(text).unwrap().records[0]
            .tokens_per_joule()
            .unwrap()
            .0,
        4.0
    );
    // Power wins over energy when both are given: 3200 / 400 = 8.
    let both = r#"{"model": "m", "throughput_tokens_per_sec": 3200, "avg_power_w": 400,
                   "energy_j": 1600, "total_tokens": 6400}"#;
    assert_relative_eq!(
        parse(both).unwrap().records[0]
            .tokens_per_joule()
            .unwrap()
            .0,
        8.0
    );
}

#[test]
fn manifest_gpu_is_read() {
    let text = r#"{"model": "m", "throughput_tokens_per_sec": 1,
                   "manifest": {"gpu": "NVIDIA L4"}}"#;
    assert_eq!(
        parse(text).unwrap().records[0].gpu.as_deref(),
        Some("NVIDIA L4")
    );
}

#[test]
fn comment_objects_and_records_without_throughput_are_skipped() {
    let text = r#"[{"_note": "example numbers"},
                   {"model": "a", "error": "OOM"},
                   {"model": "b", "throughput_tokens_per_sec": 10}]"#;
    let r = parse(text).unwrap();
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].model, "a");
    assert_eq!(r.skipped[0].index, 1);
}

#[test]
fn empty_inputs_are_errors() {
    for text in ["", "  \n", "[]"] {
        assert!(
            matches!(parse(text), Err(PricingError::EmptyResults { .. })),
            "{text:?}"
        );
    }
}

#[test]
fn malformed_json_reports_line_and_column() {
    let err =
        parse("[\n  {\"model\": \"gpt2\",\n  \"throughput_tokens_per_sec\": }\n]").unwrap_err();
    let PricingError::MalformedResults {
        line, ref message, ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(line, 3);
    assert!(!message.contains(" at line "), "{message}");
    assert!(err.to_string().starts_with("r.json:3:"), "{err}");
}

#[test]
fn no_throughput_anywhere_is_an_error() {
    let err = parse(r#"[{"model": "a"}, {"model": "b", "tokens": 5}]"#).unwrap_err();
    assert!(matches!(err, PricingError::NoThroughput { .. }), "{err:?}");
    assert!(err.to_string().contains("throughput_tokens_per_sec"));
}

#[test]
fn bad_throughput_names_the_record() {
    for (value, expected) in [
        ("0", "must be > 0"),
        ("-5.5", "must be > 0"),
        ("\"fast\"", "not a number"),
        ("true", "not a number"),
    ] {
        let text = format!(
            r#"[{{"model": "ok", "throughput_tokens_per_sec": 1}},
                {{"model": "facebook/opt-1.3b", "throughput_tokens_per_sec": {value}}}]"#
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("record 1 (facebook/opt-1.3b)"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn bad_power_or_missing_model_is_an_error() {
    let err = parse(r#"{"model": "m", "throughput_tokens_per_sec": 1, "avg_power_w": -3}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("avg_power_w"), "{err}");
    let err = parse(r#"{"throughput_tokens_per_sec": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model"), "{err}");
    let err = parse("[1, 2]").unwrap_err().to_string();
    assert!(err.contains("not a JSON object"), "{err}");
}

#[test]
fn load_reports_missing_file() {
    let err = BenchmarkResults::load(Path::new("/no/such/results.json")).unwrap_err();
    assert!(matches!(err, PricingError::Io { .. }));
}

#[test]
fn gpu_arch_key_from_name_or_explicit_key() {
    let by_name = r#"{"model": "m", "throughput_tokens_per_sec": 1, "gpu": "Tesla T4"}"#;
    assert_eq!(
        parse(by_name).unwrap().records[0].gpu_arch.as_deref(),
        Some("t4")
    );
    let explicit = r#"{"model": "m", "throughput_tokens_per_sec": 1,
                       "gpu": {"name": "some card", "arch": "l40s"}}"#;
    assert_eq!(
        parse(explicit).unwrap().records[0].gpu_arch.as_deref(),
        Some("l40s")
    );
    let unknown = r#"{"model": "m", "throughput_tokens_per_sec": 1, "gpu": "Voodoo 2"}"#;
    assert_eq!(parse(unknown).unwrap().records[0].gpu_arch, None);
}
