//! Human-readable tables of GEMM and bandwidth results (Markdown, via metrics' writer).
//!
//! CPU throughput is shown in GFLOP/s (a CPU does tens to hundreds of them), GPU throughput
//! in TFLOP/s (TOP/s for int8). Each dtype's numerics and each GEMM's algorithm are listed
//! under the table, with the clocks and throttle reasons the sampler saw.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::clocks::ClockTrace;
use crate::result::{BandwidthResult, GemmResult};

/// The GEMM results as a table plus notes on numerics, algorithms and clocks.
pub fn gemm_table(results: &[GemmResult]) -> String {
    let giga = results.iter().all(|r| r.device == "cpu");
    let (scale, unit) = if giga {
        (1e3, "GFLOP/s")
    } else {
        (1.0, "TFLOP/s")
    };
    let headers = [
        "dtype",
        "shape",
        "tokens",
        "M x N x K",
        "median ms",
        unit,
        "best",
        "% peak",
        "cv %",
        "n",
        "check rel err",
        "algo",
    ];
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.dtype.name().to_string(),
                r.label.clone(),
                r.tokens.map_or_else(|| "-".into(), |t| t.to_string()),
                r.shape.to_string(),
                format!("{:.4}", r.time_ms.median),
                format!("{:.1}", r.tflops * scale),
                format!("{:.1}", r.tflops_best * scale),
                r.pct_of_peak
                    .map_or_else(|| "-".into(), |p| format!("{p:.1}")),
                format!("{:.2}", r.time_ms.cv * 100.0),
                r.time_ms.count.to_string(),
                format!("{:.1e}", r.check.rel_error),
                short_algorithm(&r.algorithm),
            ]
        })
        .collect();
    let mut out = metrics::writers::markdown_table(&headers, &rows);
    let mut modes: BTreeMap<&str, &str> = BTreeMap::new();
    for r in results {
        modes.entry(r.dtype.name()).or_insert(&r.mode_summary);
    }
    out.push('\n');
    for (dtype, mode) in modes {
        let _ = writeln!(out, "{dtype}: {mode}");
    }
    if results.iter().any(|r| r.dtype == crate::GemmDtype::Int8) {
        out.push_str("int8 throughput is in TOP/s (integer operations).\n");
    }
    for r in results
        .iter()
        .filter(|r| r.autotune.len() > 1 || r.clocks.is_some())
    {
        let _ = writeln!(
            out,
            "{} {} {}: {}{}",
            r.dtype,
            r.label,
            r.shape,
            r.algorithm,
            clocks_note(r.clocks.as_ref())
        );
    }
    out
}

/// The bandwidth results as a table.
pub fn bandwidth_table(results: &[BandwidthResult]) -> String {
    let headers = [
        "test",
        "MiB",
        "bytes counted",
        "median ms",
        "GB/s",
        "best GB/s",
        "% peak",
        "cv %",
        "n",
        "method",
    ];
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.test.name().to_string(),
                (r.buffer_bytes >> 20).to_string(),
                crate::result::BandwidthCsvRow::from(r).counting,
                format!("{:.3}", r.time_ms.median),
                format!("{:.1}", r.gb_s),
                format!("{:.1}", r.gb_s_best),
                r.pct_of_peak
                    .map_or_else(|| "-".into(), |p| format!("{p:.1}")),
                format!("{:.2}", r.time_ms.cv * 100.0),
                r.time_ms.count.to_string(),
                r.method.clone(),
            ]
        })
        .collect();
    let mut out = metrics::writers::markdown_table(&headers, &rows);
    out.push('\n');
    for r in results {
        let note = clocks_note(r.clocks.as_ref());
        if !note.is_empty() {
            let _ = writeln!(out, "{}:{}", r.test, note.trim_start_matches(';'));
        }
    }
    out
}

/// `#2/8` from `cuBLASLt heuristic #2 of 8: ...`; the whole label otherwise, shortened.
fn short_algorithm(label: &str) -> String {
    if let Some(rest) = label.strip_prefix("cuBLASLt heuristic #") {
        if let Some((idx, tail)) = rest.split_once(" of ") {
            let total = tail.split(':').next().unwrap_or("?");
            return format!("#{idx}/{total}");
        }
    }
    label.split(',').next().unwrap_or(label).to_string()
}

/// `; SM 1755-1980 MHz, 690 W, throttled: sw_power_cap` or empty.
fn clocks_note(clocks: Option<&ClockTrace>) -> String {
    let Some(c) = clocks else {
        return String::new();
    };
    let Some(s) = &c.summary else {
        return c
            .unavailable
            .as_ref()
            .map_or_else(String::new, |u| format!("; clocks not sampled ({u})"));
    };
    let mut note = String::from(";");
    if let (Some(lo), Some(hi)) = (s.min_sm_clock_mhz, s.max_sm_clock_mhz) {
        let _ = write!(note, " SM {lo}-{hi} MHz,");
    }
    if let Some(p) = s.mean_power_w {
        let _ = write!(note, " {p:.0} W mean,");
    }
    if s.throttled {
        let _ = write!(note, " throttled: {}", s.throttle_reasons.join(", "));
    } else {
        note.push_str(" not throttled");
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_labels_shorten() {
        assert_eq!(
            short_algorithm("cuBLASLt heuristic #2 of 8: algo 66, tile 21"),
            "#2/8"
        );
        assert_eq!(
            short_algorithm("gemm crate, rayon over all cores"),
            "gemm crate"
        );
    }
}
