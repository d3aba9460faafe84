//! The report's tables, each written as CSV (raw numbers, for spreadsheets) and Markdown
//! (rounded, for reading): GEMM, bandwidth, LLM runs, batch sweeps, roofline, cost.

use std::path::Path;

use serde_json::{json, Value};

use super::report::BenchmarkReport;
use crate::error::Result;

/// One table: a name (its file stem), column headers and rows of JSON cells (`null` = empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File stem (`gemm` → `gemm.csv`, `gemm.md`).
    pub name: String,
    /// Column headers (with units).
    pub headers: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    fn new(name: &str, headers: &[&str]) -> Table {
        Table {
            name: name.to_string(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// The table as Markdown, numbers rounded for reading.
    pub fn markdown(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(cell_text).collect())
            .collect();
        let headers: Vec<&str> = self.headers.iter().map(String::as_str).collect();
        metrics::writers::markdown_table(&headers, &rows)
    }

    /// Writes `<name>.csv` and `<name>.md` into `dir`, atomically.
    ///
    /// # Errors
    /// [`crate::BenchError::Metrics`] when a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let records: Vec<Vec<(String, Value)>> = self
            .rows
            .iter()
            .map(|r| {
                self.headers
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect()
            })
            .collect();
        let csv = dir.join(format!("{}.csv", self.name));
        if records.is_empty() {
            metrics::writers::write_text_atomic(&csv, &(self.headers.join(",") + "\n"))?;
        } else {
            metrics::writers::write_records_csv_atomic(&csv, &records)?;
        }
        metrics::writers::write_text_atomic(
            &dir.join(format!("{}.md", self.name)),
            &self.markdown(),
        )?;
        Ok(())
    }
}

/// A cell for reading: numbers with at most 2 decimals (4 below 1), `null` empty.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x.abs() >= 1.0 || x == 0.0 {
                format!("{x:.2}")
            } else {
                format!("{x:.4}")
            }
        }
        other => other.to_string(),
    }
}

/// A finite number, or `null`.
pub(crate) fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// An optional number, `null` when absent or not finite.
pub(crate) fn opt(x: Option<f64>) -> Value {
    x.map_or(Value::Null, num)
}

/// Every table of `report`, in [`super::folder::TABLES`] order.
pub fn tables(report: &BenchmarkReport) -> Vec<Table> {
    let mut gemm = Table::new(
        "gemm",
        &[
            "device",
            "dtype",
            "shape",
            "m",
            "n",
            "k",
            "median_ms",
            "tflops",
            "tflops_best",
            "peak_tflops",
            "pct_of_peak",
            "cv",
        ],
    );
    for r in report.gemm.iter().flat_map(|g| &g.results) {
        gemm.rows.push(vec![
            json!(r.device),
            json!(r.dtype.name()),
            json!(r.label),
            json!(r.shape.m),
            json!(r.shape.n),
            json!(r.shape.k),
            num(r.time_ms.median),
            num(r.tflops),
            num(r.tflops_best),
            opt(r.peak_tflops),
            opt(r.pct_of_peak),
            num(r.time_ms.cv),
        ]);
    }
    let mut bw = Table::new(
        "bandwidth",
        &[
            "device",
            "test",
            "buffer_mib",
            "median_ms",
            "gb_s",
            "gb_s_best",
            "peak_gb_s",
            "pct_of_peak",
        ],
    );
    for r in report.bandwidth.iter().flat_map(|b| &b.results) {
        bw.rows.push(vec![
            json!(r.device),
            json!(r.test.name()),
            json!(r.buffer_bytes >> 20),
            num(r.time_ms.median),
            num(r.gb_s),
            num(r.gb_s_best),
            opt(r.peak_gb_s),
            opt(r.pct_of_peak),
        ]);
    }
    let mut llm = Table::new(
        "llm",
        &[
            "model",
            "device",
            "dtype",
            "kv_cache_dtype",
            "num_prompts",
            "input_len",
            "max_tokens",
            "load_time_s",
            "inference_time_s",
            "total_tokens",
            "throughput_tokens_per_sec",
            "latency_per_request_ms",
            "mean_ttft_ms",
            "p99_ttft_ms",
            "mean_tpot_ms",
            "p99_tpot_ms",
            "mean_e2el_ms",
            "p99_e2el_ms",
            "memory_used_gb",
            "memory_utilization_pct",
            "avg_power_w",
            "joules_per_output_token",
            "tokens_per_joule",
            "prefill_power_capped_fraction",
            "decode_power_capped_fraction",
        ],
    );
    for e in &report.llm {
        llm.rows.push(vec![
            json!(e.model),
            json!(e.device),
            json!(e.dtype),
            json!(e.kv_cache_dtype),
            json!(e.num_prompts),
            json!(e.input_len),
            json!(e.max_tokens),
            num(e.load_time_s),
            num(e.inference_time_s),
            json!(e.total_tokens),
            num(e.throughput_tokens_per_sec),
            num(e.latency_per_request_ms),
            opt(e.mean_ttft_ms),
            opt(e.p99_ttft_ms),
            opt(e.mean_tpot_ms),
            opt(e.p99_tpot_ms),
            opt(e.mean_e2el_ms),
            opt(e.p99_e2el_ms),
            num(e.memory_used_gb),
            num(e.memory_utilization_pct),
            opt(e.avg_power_w),
            opt(e.joules_per_output_token),
            opt(e.tokens_per_joule),
            opt(e.prefill_power_capped_fraction),
            opt(e.decode_power_capped_fraction),
        ]);
    }
    let mut sweep = Table::new(
        "batch_sweep",
        &[
            "model",
            "batch_size",
            "status",
            "throughput_tokens_per_sec",
            "batch_latency_ms",
            "p99_batch_latency_ms",
            "latency_per_request_ms",
            "error",
        ],
    );
    for s in &report.batch_sweeps {
        for r in &s.rows {
            sweep.rows.push(vec![
                json!(s.model),
                json!(r.batch_size),
                json!(r.status),
                opt(r.throughput_tokens_per_sec),
                opt(r.batch_latency_ms),
                opt(r.p99_batch_latency_ms),
                opt(r.latency_per_request_ms),
                r.error.as_ref().map_or(Value::Null, |e| json!(e)),
            ]);
        }
    }
    let mut roof = Table::new(
        "roofline",
        &[
            "model",
            "dtype",
            "gemm_ceiling_tflops",
            "bandwidth_ceiling_gb_s",
            "prefill_tflops",
            "prefill_pct_of_gemm",
            "prefill_flop_per_byte",
            "decode_gb_s",
            "decode_pct_of_bandwidth",
            "decode_step_ms",
            "decode_flop_per_byte",
        ],
    );
    for r in &report.roofline {
        roof.rows.push(vec![
            json!(r.model),
            json!(r.dtype),
            num(r.ceilings.gemm_tflops),
            num(r.ceilings.bandwidth_gb_s),
            opt(r.prefill.as_ref().map(|p| p.achieved_tflops)),
            opt(r.prefill.as_ref().map(|p| p.pct_of_gemm)),
            opt(r.prefill.as_ref().map(|p| p.intensity_flop_per_byte)),
            opt(r.decode.as_ref().map(|d| d.achieved_gb_s)),
            opt(r.decode.as_ref().map(|d| d.pct_of_bandwidth)),
            opt(r.decode.as_ref().map(|d| d.mean_step_ms)),
            opt(r.decode.as_ref().map(|d| d.intensity_flop_per_byte)),
        ]);
    }
    let mut cost = Table::new(
        "cost",
        &[
            "model",
            "provider",
            "instance_type",
            "gpu_model",
            "gpu_count",
            "usd_per_hour",
            "throughput_tokens_per_sec",
            "cost_per_1m_tokens",
            "tokens_per_dollar",
            "measured_gpu_model",
            "price_date",
        ],
    );
    for c in &report.cost {
        cost.rows.push(vec![
            json!(c.model),
            json!(c.provider),
            json!(c.instance_type),
            json!(c.gpu_model),
            json!(c.gpu_count),
            num(c.usd_per_hour),
            num(c.throughput_tokens_per_sec),
            num(c.cost_per_1m_tokens),
            num(c.tokens_per_dollar),
            json!(c.measured_gpu_model),
            c.price_date.as_ref().map_or(Value::Null, |d| json!(d)),
        ]);
    }
    vec![gemm, bw, llm, sweep, roof, cost]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_for_reading() {
        assert_eq!(cell_text(&json!(1234.5678)), "1234.57");
        assert_eq!(cell_text(&json!(0.012345)), "0.0123");
        assert_eq!(cell_text(&json!(7)), "7");
        assert_eq!(cell_text(&Value::Null), "");
        assert_eq!(cell_text(&json!("t4")), "t4");
        assert_eq!(num(f64::NAN), Value::Null);
    }

    #[test]
    fn tables_write_csv_and_markdown() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Table::new("x", &["a", "b"]);
        t.rows.push(vec![json!("r1"), json!(1.5)]);
        t.write(d.path()).unwrap();
        let csv = std::fs::read_to_string(d.path().join("x.csv")).unwrap();
        assert_eq!(csv.lines().next(), Some("a,b"));
        assert!(csv.contains("r1,1.5"));
        let md = std::fs::read_to_string(d.path().join("x.md")).unwrap();
        assert!(md.starts_with("| a "));
        Table::new("empty", &["a"]).write(d.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("empty.csv")).unwrap(),
            "a\n"
        );
    }
}
