//! The `compare` binary: two machines' results folders merge into one table and charts;
//! folders of different results versions are refused, naming each.

mod common;

use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn merges_two_folders_and_refuses_mismatched_versions() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let a = tmp.path().join("t4");
    let out = common::run(
        env!("CARGO_BIN_EXE_bench-all"),
        &[
            "--quick",
            "--out-dir",
            a.to_str().unwrap(),
            "--instance",
            "g4dn.xlarge",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = tmp.path().join("l4");
    copy_dir(&a, &b);

    let cmp = tmp.path().join("cmp");
    let compare = env!("CARGO_BIN_EXE_compare");
    let out = common::run(
        compare,
        &[
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out-dir",
            cmp.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("(t4)") && table.contains("(l4)"), "{table}");
    let csv = std::fs::read_to_string(cmp.join("comparison.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().next().unwrap().contains("cost_per_1m_tokens"));
    for chart in [
        "compare_throughput",
        "compare_cost",
        "compare_tokens_per_joule",
    ] {
        let svg = std::fs::read_to_string(cmp.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{chart}");
    }
    let thr = std::fs::read_to_string(cmp.join("compare_throughput.svg")).unwrap();
    assert!(thr.contains("output tokens/s") && thr.contains("<rect"));
    // A CPU has no energy counter: the chart says so instead of failing.
    let tpj = std::fs::read_to_string(cmp.join("compare_tokens_per_joule.svg")).unwrap();
    assert!(tpj.contains("no data"));

    // Another results version in b.
    let path = b.join("benchmark_results.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["results_version"] = serde_json::json!(99);
    std::fs::write(&path, v.to_string()).unwrap();
    common::fails_with(
        compare,
        &[
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out-dir",
            cmp.to_str().unwrap(),
        ],
        "version 99",
    );
    common::fails_with(
        compare,
        &[tmp.path().join("nowhere").to_str().unwrap()],
        "no such results folder",
    );
}
