//! The results folder bench-all produces (the seed's `results/`), and merging several
//! machines' folders (`compare`).
//!
//! | file | what it holds |
//! |---|---|
//! | `benchmark_summary.txt` | the human summary ([`render_summary`]) |
//! | `benchmark_results.json` | everything: a [`BenchmarkReport`] with `results_version` and the run manifest |
//! | `llm_results.json` | the LLM runs as a list of seed-style records (`cost-analysis results/llm_results.json`) |
//! | `<table>.csv`, `<table>.md` | one per table ([`tables`]): gemm, bandwidth, llm, batch_sweep, roofline, cost |
//! | `plots/*.svg` | the charts ([`charts::CHART_NAMES`]) |
//! | `parts/` | each stage's result, written as it finishes, so `--resume` continues an interrupted run |
//!
//! Every file is written atomically (a temporary file renamed into place): a reader sees a
//! whole file or none. [`ResultsFolder`] claims the folder (new, `--resume`, `--force`),
//! [`bench_all`] runs the stages, [`write_results`] writes the files, [`compare`] merges
//! folders of the same [`RESULTS_VERSION`].

pub mod bench_all;
pub mod charts;
pub mod compare;
pub mod cost;
pub mod folder;
pub mod report;
pub mod summary;
pub mod tables;

pub use folder::ResultsFolder;
pub use report::{BenchmarkReport, RESULTS_VERSION};
pub use summary::render_summary;

use crate::error::Result;

/// Writes every file of `report` into `folder`: summary, JSON, LLM records, tables, charts.
///
/// # Errors
/// [`crate::BenchError::Metrics`] when a file cannot be written; [`crate::BenchError::Plot`]
/// when a chart cannot be drawn.
pub fn write_results(folder: &ResultsFolder, report: &BenchmarkReport) -> Result<()> {
    for t in tables::tables(report) {
        t.write(folder.dir())?;
    }
    for (name, svg) in charts::render_charts(report)? {
        crate::plots::write_svg(&folder.plot(name), &svg)?;
    }
    let records: Vec<&serde_json::Value> = report.llm.iter().map(|e| &e.report).collect();
    metrics::write_json_atomic(&folder.file(folder::LLM_RESULTS_FILE), &records)?;
    metrics::write_json_atomic(&folder.file(folder::RESULTS_FILE), report)?;
    metrics::write_text_atomic(&folder.file(folder::SUMMARY_FILE), &render_summary(report))?;
    Ok(())
}
