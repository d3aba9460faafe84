//! Merging several machines' results folders (the seed's Challenge 1: a T4, an L4, an
//! A10G...) into one table and charts of throughput, cost per 1M tokens and tokens per joule.
//!
//! Only folders written with the same [`RESULTS_VERSION`] are merged: figures of different
//! layouts are not comparable row by row, so a mismatch is an error naming each folder and
//! its version.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::folder::RESULTS_FILE;
use super::report::{BenchmarkReport, RESULTS_VERSION};
use super::tables::{num, opt, Table};
use crate::error::{BenchError, Result};
use crate::plots::{self, LabelledValue};

/// One machine's folder, loaded.
#[derive(Debug, Clone)]
pub struct MachineResults {
    /// The folder.
    pub dir: PathBuf,
    /// The machine's name in tables (its label, with the folder name when two machines
    /// share a label).
    pub name: String,
    /// Its report.
    pub report: BenchmarkReport,
}

/// One model on one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    /// The machine's name.
    pub machine: String,
    /// The results folder.
    pub folder: String,
    /// The model.
    pub model: String,
    /// Device and dtype (`cuda:0 f16`).
    pub device: String,
    /// Output tokens/s.
    pub throughput_tokens_per_sec: f64,
    /// Mean TPOT, ms.
    pub mean_tpot_ms: Option<f64>,
    /// p99 E2E latency, ms.
    pub p99_e2el_ms: Option<f64>,
    /// The instance the cost is quoted on.
    pub instance: Option<String>,
    /// $ per 1M output tokens on that instance.
    pub cost_per_1m_tokens: Option<f64>,
    /// Output tokens per joule (GPU energy).
    pub tokens_per_joule: Option<f64>,
    /// Mean GPU power, W.
    pub avg_power_w: Option<f64>,
}

fn version_of(dir: &Path) -> Result<(Value, u64)> {
    let path = dir.join(RESULTS_FILE);
    if !dir.is_dir() {
        return Err(BenchError::InvalidArgument(format!(
            "{}: no such results folder",
            dir.display()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|error| BenchError::Io {
        path: format!("{} (not a bench-all results folder?)", path.display()),
        error,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        BenchError::InvalidArgument(format!("{}: malformed JSON: {e}", path.display()))
    })?;
    let version = v
        .get("results_version")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            BenchError::InvalidArgument(format!(
                "{}: no results_version (not written by bench-all)",
                path.display()
            ))
        })?;
    Ok((v, version))
}

/// Loads the folders, refusing different `results_version`s (naming each folder and its
/// version) and versions this build cannot read.
///
/// # Errors
/// [`BenchError::InvalidArgument`] for fewer than one folder, a missing or malformed
/// `benchmark_results.json`, or mismatched versions; [`BenchError::Io`] when unreadable.
pub fn load_folders(dirs: &[PathBuf]) -> Result<Vec<MachineResults>> {
    if dirs.is_empty() {
        return Err(BenchError::InvalidArgument(
            "compare needs at least one results folder".into(),
        ));
    }
    let loaded: Vec<(PathBuf, Value, u64)> = dirs
        .iter()
        .map(|d| version_of(d).map(|(v, n)| (d.clone(), v, n)))
        .collect::<Result<_>>()?;
    let first = loaded[0].2;
    if loaded.iter().any(|(_, _, n)| *n != first) {
        let list: Vec<String> = loaded
            .iter()
            .map(|(d, _, n)| format!("{} (version {n})", d.display()))
            .collect();
        return Err(BenchError::InvalidArgument(format!(
            "results folders have different results_version: {}; rerun bench-all on each machine with one gpubench version",
            list.join(", ")
        )));
    }
    if first != u64::from(RESULTS_VERSION) {
        return Err(BenchError::InvalidArgument(format!(
            "{} has results_version {first}, this gpubench reads version {RESULTS_VERSION}",
            loaded[0].0.display()
        )));
    }
    let mut out = Vec::new();
    for (dir, v, _) in loaded {
        let report: BenchmarkReport = serde_json::from_value(v).map_err(|e| {
            BenchError::InvalidArgument(format!("{}: {e}", dir.join(RESULTS_FILE).display()))
        })?;
        out.push(MachineResults {
            name: report.machine.label.clone(),
            dir,
            report,
        });
    }
    let names: Vec<String> = out.iter().map(|m| m.name.clone()).collect();
    for m in &mut out {
        if names.iter().filter(|n| **n == m.name).count() > 1 {
            let folder = m.dir.file_name().map_or(m.dir.display().to_string(), |f| {
                f.to_string_lossy().into_owned()
            });
            m.name = format!("{} ({folder})", m.name);
        }
    }
    Ok(out)
}

/// One row per (machine, model), machines in the order given.
pub fn comparison_rows(machines: &[MachineResults]) -> Vec<ComparisonRow> {
    let mut rows = Vec::new();
    for m in machines {
        for e in &m.report.llm {
            let cost = m.report.primary_cost(&e.model);
            rows.push(ComparisonRow {
                machine: m.name.clone(),
                folder: m.dir.display().to_string(),
                model: e.model.clone(),
                device: format!("{} {}", e.device, e.dtype),
                throughput_tokens_per_sec: e.throughput_tokens_per_sec,
                mean_tpot_ms: e.mean_tpot_ms,
                p99_e2el_ms: e.p99_e2el_ms,
                instance: cost.map(|c| format!("{}/{}", c.provider, c.instance_type)),
                cost_per_1m_tokens: cost.map(|c| c.cost_per_1m_tokens),
                tokens_per_joule: e.tokens_per_joule,
                avg_power_w: e.avg_power_w,
            });
        }
    }
    rows
}

/// The comparison as a table (`comparison.csv`, `comparison.md`).
pub fn comparison_table(rows: &[ComparisonRow]) -> Table {
    let mut t = Table {
        name: "comparison".into(),
        headers: [
            "machine",
            "model",
            "device",
            "throughput_tokens_per_sec",
            "mean_tpot_ms",
            "p99_e2el_ms",
            "instance",
            "cost_per_1m_tokens",
            "tokens_per_joule",
            "avg_power_w",
            "folder",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: Vec::new(),
    };
    for r in rows {
        t.rows.push(vec![
            json!(r.machine),
            json!(r.model),
            json!(r.device),
            num(r.throughput_tokens_per_sec),
            opt(r.mean_tpot_ms),
            opt(r.p99_e2el_ms),
            r.instance.as_ref().map_or(Value::Null, |i| json!(i)),
            opt(r.cost_per_1m_tokens),
            opt(r.tokens_per_joule),
            opt(r.avg_power_w),
            json!(r.folder),
        ]);
    }
    t
}

/// The comparison charts: `(file stem, SVG)` for throughput, cost per 1M tokens and tokens
/// per joule, one bar per (machine, model).
///
/// # Errors
/// [`BenchError::Plot`] when a chart cannot be drawn.
pub fn comparison_charts(rows: &[ComparisonRow]) -> Result<Vec<(&'static str, String)>> {
    let bars = |f: &dyn Fn(&ComparisonRow) -> Option<f64>| -> Vec<LabelledValue> {
        rows.iter()
            .map(|r| LabelledValue {
                label: format!("{} · {}", r.machine, r.model),
                value: f(r),
            })
            .collect()
    };
    Ok(vec![
        (
            "compare_throughput",
            plots::labelled_bars(
                "compare_throughput",
                "Throughput per machine",
                "output tokens/s (offline run, the seed's definition)",
                &bars(&|r| Some(r.throughput_tokens_per_sec)),
                "no machine has an LLM run",
            )?,
        ),
        (
            "compare_cost",
            plots::labelled_bars(
                "compare_cost",
                "Cost per 1M output tokens per machine",
                "US$ per 1M output tokens on the machine's instance",
                &bars(&|r| r.cost_per_1m_tokens),
                "no machine has a priced instance (run bench-all with --instance)",
            )?,
        ),
        (
            "compare_tokens_per_joule",
            plots::labelled_bars(
                "compare_tokens_per_joule",
                "Energy efficiency per machine",
                "output tokens per joule (GPU energy counter)",
                &bars(&|r| r.tokens_per_joule),
                "no machine measured GPU energy (NVML; a CPU run has none)",
            )?,
        ),
    ])
}

/// Writes the table (CSV + Markdown) and charts into `out_dir` (created if needed), each
/// file atomically.
///
/// # Errors
/// [`BenchError::Io`] when the folder cannot be created; write and plot errors.
pub fn write_comparison(out_dir: &Path, rows: &[ComparisonRow]) -> Result<()> {
    std::fs::create_dir_all(out_dir).map_err(|error| BenchError::Io {
        path: out_dir.display().to_string(),
        error,
    })?;
    comparison_table(rows).write(out_dir)?;
    for (name, svg) in comparison_charts(rows)? {
        plots::write_svg(&out_dir.join(format!("{name}.svg")), &svg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(version: u64) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(RESULTS_FILE),
            json!({"results_version": version}).to_string(),
        )
        .unwrap();
        d
    }

    #[test]
    fn mismatched_versions_name_each_folder_and_version() {
        let (a, b) = (folder(1), folder(2));
        let e = load_folders(&[a.path().into(), b.path().into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 1") && e.contains("version 2"), "{e}");
        assert!(e.contains(&a.path().display().to_string()));
        assert!(e.contains(&b.path().display().to_string()));
    }

    #[test]
    fn a_folder_without_results_is_one_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let e = load_folders(&[d.path().into()]).unwrap_err().to_string();
        assert!(e.contains(RESULTS_FILE), "{e}");
        let e = load_folders(&[d.path().join("nope")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such results folder"), "{e}");
    }
}
