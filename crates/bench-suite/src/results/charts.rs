//! The SVG charts of one machine's report, under `plots/`.

use super::report::BenchmarkReport;
use crate::error::Result;
use crate::plots::{
    self, BatchFigure, DtypeTflops, LabelledValue, RooflineCeilings, RooflineMark, TradeoffPoint,
};

/// The chart file stems bench-all writes, in order.
pub const CHART_NAMES: [&str; 6] = [
    "tflops_vs_peak",
    "batch_throughput",
    "batch_latency",
    "pareto",
    "cost_per_instance",
    "roofline",
];

fn batch_figures(r: &BenchmarkReport) -> Vec<BatchFigure> {
    r.batch_sweeps
        .iter()
        .map(|s| BatchFigure {
            series: s.model.clone(),
            points: s
                .rows
                .iter()
                .filter_map(|row| {
                    Some((
                        row.batch_size,
                        row.throughput_tokens_per_sec?,
                        row.batch_latency_ms?,
                    ))
                })
                .collect(),
            out_of_memory_at: s.first_out_of_memory,
        })
        .collect()
}

fn roofline_inputs(r: &BenchmarkReport) -> (Option<RooflineCeilings>, Vec<RooflineMark>) {
    let Some(first) = r.roofline.first() else {
        return (None, Vec::new());
    };
    let device = &r.machine.label;
    let dtype_peak = r
        .best_tflops_per_dtype()
        .into_iter()
        .find(|(d, _, _)| first.ceilings.gemm_label.starts_with(d.as_str()))
        .and_then(|(_, _, p)| p);
    let peak_bw = r
        .bandwidth
        .iter()
        .flat_map(|b| &b.results)
        .find_map(|b| b.peak_gb_s);
    let ceilings = RooflineCeilings {
        device: device.clone(),
        gemm_tflops: first.ceilings.gemm_tflops,
        gemm_label: first.ceilings.gemm_label.clone(),
        bandwidth_gb_s: first.ceilings.bandwidth_gb_s,
        peak_tflops: dtype_peak,
        peak_bandwidth_gb_s: peak_bw,
    };
    let mut marks = Vec::new();
    for x in &r.roofline {
        if let Some(p) = &x.prefill {
            marks.push(RooflineMark {
                label: format!("{} prefill", x.model),
                intensity: p.intensity_flop_per_byte,
                tflops: p.achieved_tflops,
            });
        }
        if let Some(d) = &x.decode {
            marks.push(RooflineMark {
                label: format!("{} decode", x.model),
                intensity: d.intensity_flop_per_byte,
                tflops: d.achieved_tflops,
            });
        }
    }
    (Some(ceilings), marks)
}

/// Renders every chart of `r`: `(file stem, SVG)` in [`CHART_NAMES`] order.
///
/// # Errors
/// [`crate::BenchError::Plot`] when a chart cannot be drawn.
pub fn render_charts(r: &BenchmarkReport) -> Result<Vec<(&'static str, String)>> {
    let tflops: Vec<DtypeTflops> = r
        .best_tflops_per_dtype()
        .into_iter()
        .map(|(dtype, t, peak)| DtypeTflops {
            dtype,
            measured_tflops: t,
            peak_tflops: peak,
        })
        .collect();
    let figures = batch_figures(r);
    let tradeoff: Vec<TradeoffPoint> = r
        .batch_sweeps
        .iter()
        .flat_map(|s| {
            s.rows.iter().filter_map(move |row| {
                Some(TradeoffPoint {
                    label: format!("{} b={}", s.model, row.batch_size),
                    latency_ms: row.batch_latency_ms?,
                    throughput: row.throughput_tokens_per_sec?,
                })
            })
        })
        .collect();
    let cost: Vec<LabelledValue> = r
        .cost
        .iter()
        .map(|c| LabelledValue {
            label: format!("{} / {} · {}", c.provider, c.instance_type, c.model),
            value: Some(c.cost_per_1m_tokens),
        })
        .collect();
    let (ceilings, marks) = roofline_inputs(r);
    Ok(vec![
        (
            "tflops_vs_peak",
            plots::tflops_vs_peak(&tflops, &r.machine.label)?,
        ),
        ("batch_throughput", plots::batch_throughput(&figures)?),
        ("batch_latency", plots::batch_latency(&figures)?),
        (
            "pareto",
            plots::pareto_front(&tradeoff, "batch latency, ms (one batch run to completion)")?,
        ),
        ("cost_per_instance", plots::cost_per_instance(&cost)?),
        (
            "roofline",
            plots::roofline_chart(ceilings.as_ref(), &marks)?,
        ),
    ])
}
