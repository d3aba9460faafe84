use std::collections::BTreeMap;

use metrics::serving::{compute, RequestTimeline, ServingMetrics, Slo};
use metrics::writers::{markdown_table, write_json_atomic, write_records_csv_atomic};
use metrics::{MetricsError, DEFAULT_PERCENTILES};

/// 20 requests arriving every 50 ms, request i producing i+1 tokens 10 ms apart after a
/// 100 ms first token.
fn run() -> Vec<RequestTimeline> {
    (0..20)
        .map(|i| {
            let arrival = i as f64 * 0.05;
            let times = (0..=i).map(|k| arrival + 0.1 + 0.01 * k as f64).collect();
            RequestTimeline::new(arrival, times, 64)
        })
        .collect()
}

#[test]
fn metrics_survive_a_json_file() {
    let slo: Slo = "ttft:150,e2el:200".parse().unwrap();
    let m = compute(&run(), 2.0, &DEFAULT_PERCENTILES, Some(&slo)).unwrap();
    assert_eq!(m.completed, 20);
    assert_eq!(m.total_output_tokens, 210); // 1 + 2 + ... + 20
                                            // Every TTFT is 100 ms, every ITL and TPOT 10 ms (up to float rounding).
    for s in [&m.ttft_ms, &m.itl_ms, &m.tpot_ms] {
        let s = s.as_ref().unwrap();
        assert!(s.stddev < 1e-9 * s.mean.max(1.0) + 1e-9, "{s:?}");
    }
    assert!((m.ttft_ms.as_ref().unwrap().mean - 100.0).abs() < 1e-6);
    assert!((m.itl_ms.as_ref().unwrap().mean - 10.0).abs() < 1e-6);
    // E2EL = 100 + 10·i ms ≤ 200 for i ≤ 10: 11 good requests over 2 s.
    assert!((m.request_goodput.unwrap() - 5.5).abs() < 1e-9);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serving.json");
    write_json_atomic(&path, &m).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(raw["completed"], 20);
    assert!(raw.contains_key("p99_e2el_ms"));
    let back: ServingMetrics = serde_json::from_str(&text).unwrap();
    assert_eq!(back.completed, m.completed);
    assert_eq!(back.percentiles, m.percentiles);
    assert_eq!(back.slo, m.slo);
}

#[test]
fn runs_tabulate_as_csv_and_markdown() {
    let a = compute(&run(), 2.0, &[50.0, 99.0], None).unwrap();
    let b = compute(&run()[..5], 1.0, &[50.0, 99.0], None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.csv");
    write_records_csv_atomic(&path, &[a.to_flat_map(), b.to_flat_map()]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "duration");
    assert!(header.contains(&"p99_ttft_ms"));
    assert_eq!(lines.count(), 2);

    let rows: Vec<Vec<String>> = [&a, &b]
        .iter()
        .map(|m| {
            vec![
                m.completed.to_string(),
                format!("{:.1}", m.output_throughput),
                format!(
                    "{:.2}",
                    m.ttft_ms.as_ref().unwrap().percentile(99.0).unwrap()
                ),
            ]
        })
        .collect();
    let table = markdown_table(&["requests", "tok/s", "p99 TTFT ms"], &rows);
    assert_eq!(table.lines().count(), 4);
    assert!(table.contains("| -------: |"), "{table}");
}

#[test]
fn bad_requests_are_named() {
    let mut requests = run();
    requests[7].token_times_s[0] = requests[7].arrival_s - 1.0;
    let e = compute(&requests, 2.0, &[], None).unwrap_err();
    assert!(
        matches!(e, MetricsError::InvalidTimeline { index: 7, .. }),
        "{e}"
    );
    assert!(e.to_string().starts_with("request 7:"), "{e}");
}
