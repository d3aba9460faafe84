//! `benchmark_summary.txt`: the human summary the seed's users `cat`.

use std::fmt::Write as _;

use super::report::{BenchmarkReport, LlmEntry};
use crate::energy::is_power_bound_fraction;

fn f(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "n/a".to_string(),
    }
}

fn pct_text(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.1}%"),
        _ => "n/a".to_string(),
    }
}

/// "power-bound: prefill and decode ran at the board's power limit (95% / 100% of samples)"
/// when a phase spent at least [`crate::energy::POWER_BOUND_FRACTION`] of its samples there.
fn power_bound_note(e: &LlmEntry) -> Option<String> {
    let phases = [
        ("prefill", e.prefill_power_capped_fraction),
        ("decode", e.decode_power_capped_fraction),
    ];
    let bound: Vec<(&str, f64)> = phases
        .iter()
        .filter_map(|&(name, f)| f.filter(|_| is_power_bound_fraction(f)).map(|f| (name, f)))
        .collect();
    if bound.is_empty() {
        return None;
    }
    let names: Vec<&str> = bound.iter().map(|(n, _)| *n).collect();
    let shares: Vec<String> = bound
        .iter()
        .map(|(_, f)| format!("{:.0}%", 100.0 * f))
        .collect();
    Some(format!(
        "power-bound: {} ran at the board's power limit ({} of samples); throughput there follows energy per token",
        names.join(" and "),
        shares.join(" / ")
    ))
}

/// Renders the summary: machine, GPU facts, GEMM, bandwidth, LLM throughput and latency per
/// model, energy, batch sweep, roofline, cost per 1M tokens, failures.
pub fn render_summary(r: &BenchmarkReport) -> String {
    let rule = "=".repeat(78);
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "{rule}\ngpubench benchmark summary\n{rule}");
    let _ = writeln!(s, "Machine:   {} ({})", m.label, m.hostname);
    let _ = writeln!(
        s,
        "Host:      {}, {} logical cores, {:.1} GB memory",
        m.cpu_model, m.logical_cores, m.host_memory_gb
    );
    match (&m.gpu_name, &m.gpu_unavailable_reason) {
        (Some(g), _) => {
            let _ = writeln!(
                s,
                "GPU:       {g} (arch {}, {} GB, driver {})",
                m.gpu_arch.as_deref().unwrap_or("unknown"),
                f(m.gpu_memory_gb, 1),
                m.driver_version.as_deref().unwrap_or("unknown")
            );
        }
        (None, Some(reason)) => {
            let _ = writeln!(s, "GPU:       none ({reason})");
        }
        (None, None) => {
            let _ = writeln!(s, "GPU:       none");
        }
    }
    let _ = writeln!(
        s,
        "Device:    {}   gpubench {} (commit {}), {}",
        m.device,
        r.manifest.gpubench_version,
        r.manifest.git_commit.as_deref().unwrap_or("unknown"),
        r.manifest.timestamp_utc
    );

    let _ = writeln!(
        s,
        "\nGEMM throughput (best shape per precision, median launch time)"
    );
    let best = r.best_tflops_per_dtype();
    if best.is_empty() {
        let _ = writeln!(s, "  not measured");
    }
    for (dtype, t, peak) in &best {
        let pct = peak.map(|p| t / p * 100.0);
        let _ = writeln!(
            s,
            "  {dtype:<6} {:>10} TFLOP/s   peak {:>8}   {:>7} of peak",
            format!("{t:.3}"),
            f(*peak, 1),
            pct_text(pct)
        );
    }

    let _ = writeln!(s, "\nMemory bandwidth");
    let bw: Vec<_> = r.bandwidth.iter().flat_map(|b| &b.results).collect();
    if bw.is_empty() {
        let _ = writeln!(s, "  not measured");
    }
    for b in bw {
        let _ = writeln!(
            s,
            "  {:<14} {:>10} GB/s   peak {:>8}   {:>7} of peak",
            b.test.name(),
            format!("{:.1}", b.gb_s),
            f(b.peak_gb_s, 0),
            pct_text(b.pct_of_peak)
        );
    }

    let _ = writeln!(
        s,
        "\nLLM offline throughput (output tokens / elapsed, the seed's definition)"
    );
    if r.llm.is_empty() {
        let _ = writeln!(s, "  no model ran");
    }
    for e in &r.llm {
        let _ = writeln!(
            s,
            "  {:<12} {:>10} tok/s   {} prompts x {} tokens, {} on {}, load {:.2} s",
            e.model,
            format!("{:.2}", e.throughput_tokens_per_sec),
            e.num_prompts,
            e.max_tokens,
            e.dtype,
            e.device,
            e.load_time_s
        );
        let _ = writeln!(
            s,
            "  {:<12} latency/request {:.2} ms   TTFT mean {} / p99 {} ms   TPOT mean {} / p99 {} ms   E2E p99 {} ms",
            "",
            e.latency_per_request_ms,
            f(e.mean_ttft_ms, 2),
            f(e.p99_ttft_ms, 2),
            f(e.mean_tpot_ms, 2),
            f(e.p99_tpot_ms, 2),
            f(e.p99_e2el_ms, 2)
        );
        let _ = writeln!(
            s,
            "  {:<12} memory {:.2} GB ({:.1}%)   energy: {}",
            "",
            e.memory_used_gb,
            e.memory_utilization_pct,
            match (e.joules_per_output_token, &e.energy_unavailable) {
                (Some(j), _) => format!(
                    "{j:.4} J/token, {} tokens/J, avg {} W, peak {} W",
                    f(e.tokens_per_joule, 2),
                    f(e.avg_power_w, 0),
                    f(e.peak_power_w, 0)
                ),
                (None, Some(why)) => format!("n/a ({why})"),
                (None, None) => "n/a".to_string(),
            }
        );
        if let Some(note) = power_bound_note(e) {
            let _ = writeln!(s, "  {:<12} {note}", "");
        }
    }

    if !r.batch_sweeps.is_empty() {
        let _ = writeln!(s, "\nBatch size sweep (throughput / mean batch latency)");
    }
    for b in &r.batch_sweeps {
        let points: Vec<String> = b
            .rows
            .iter()
            .map(|row| match row.throughput_tokens_per_sec {
                Some(t) => format!(
                    "b{}: {t:.0} tok/s {} ms",
                    row.batch_size,
                    f(row.batch_latency_ms, 0)
                ),
                None => format!("b{}: {}", row.batch_size, row.status),
            })
            .collect();
        let _ = writeln!(s, "  {:<12} {}", b.model, points.join(" | "));
        let _ = writeln!(
            s,
            "  {:<12} optimal batch size {}; {}",
            "",
            b.best_batch_size.map_or("n/a".into(), |v| v.to_string()),
            b.first_out_of_memory
                .map_or("every size tried fit in memory".into(), |v| format!(
                    "out of memory from batch {v}"
                ))
        );
    }

    if !r.roofline.is_empty() {
        let _ = writeln!(
            s,
            "\nRoofline (against this machine's measured GEMM and bandwidth)"
        );
    }
    for x in &r.roofline {
        let _ = writeln!(
            s,
            "  {:<12} prefill {} TFLOP/s = {}% of {:.3} TFLOP/s GEMM   decode {} GB/s = {}% of {:.1} GB/s",
            x.model,
            f(x.prefill.as_ref().map(|p| p.achieved_tflops), 3),
            f(x.prefill.as_ref().map(|p| p.pct_of_gemm), 1),
            x.ceilings.gemm_tflops,
            f(x.decode.as_ref().map(|d| d.achieved_gb_s), 1),
            f(x.decode.as_ref().map(|d| d.pct_of_bandwidth), 1),
            x.ceilings.bandwidth_gb_s
        );
    }

    let _ = writeln!(
        s,
        "\nCost per 1M output tokens (instance price / measured throughput)"
    );
    if r.cost.is_empty() {
        let _ = writeln!(s, "  nothing priced");
    }
    for c in &r.cost {
        let mark = if c.measured_gpu_model {
            ""
        } else {
            "  (what-if: other GPU)"
        };
        let _ = writeln!(
            s,
            "  {:<12} {:<26} ${:>7.3}/h   ${:>10.4} per 1M tokens   {:>12.0} tokens/$ {mark}",
            c.model,
            format!("{}/{}", c.provider, c.instance_type),
            c.usd_per_hour,
            c.cost_per_1m_tokens,
            c.tokens_per_dollar
        );
    }

    if !r.failures.is_empty() {
        let _ = writeln!(s, "\nStages that did not finish");
        for x in &r.failures {
            let _ = writeln!(s, "  {:<20} {}: {}", x.stage, x.status, x.error);
        }
    }
    let _ = writeln!(s, "{rule}");
    s
}

#[cfg(test)]
mod power_bound_tests {
    use super::power_bound_note;
    use crate::results::report::LlmEntry;

    fn entry(prefill: Option<f64>, decode: Option<f64>) -> LlmEntry {
        let mut e: LlmEntry = serde_json::from_value(serde_json::json!({
            "model": "m", "device": "cuda:0", "dtype": "f16", "num_prompts": 1, "input_len": 1,
            "max_tokens": 1, "load_time_s": 0.0, "inference_time_s": 1.0, "total_tokens": 1,
            "throughput_tokens_per_sec": 1.0, "latency_per_request_ms": 1.0,
            "memory_used_gb": 0.0, "memory_utilization_pct": 0.0, "mean_ttft_ms": null,
            "p99_ttft_ms": null, "mean_tpot_ms": null, "p99_tpot_ms": null,
            "mean_e2el_ms": null, "p99_e2el_ms": null, "energy_j": null, "avg_power_w": null,
            "peak_power_w": null, "joules_per_output_token": null, "tokens_per_joule": null,
            "energy_unavailable": null, "report": {}
        }))
        .expect("an entry without the power fields (an older result file) still reads");
        e.prefill_power_capped_fraction = prefill;
        e.decode_power_capped_fraction = decode;
        e
    }

    #[test]
    fn only_phases_mostly_at_the_limit_are_named() {
        assert_eq!(power_bound_note(&entry(None, None)), None);
        assert_eq!(power_bound_note(&entry(Some(0.5), Some(0.1))), None);
        let note = power_bound_note(&entry(Some(0.95), Some(1.0))).expect("both bound");
        assert!(
            note.starts_with("power-bound: prefill and decode ran"),
            "{note}"
        );
        assert!(note.contains("(95% / 100% of samples)"), "{note}");
        let note = power_bound_note(&entry(Some(0.2), Some(0.9))).expect("decode bound");
        assert!(note.starts_with("power-bound: decode ran"), "{note}");
    }
}
