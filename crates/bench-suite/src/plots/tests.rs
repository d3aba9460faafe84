//! Every chart rendered to a temporary folder, with data and without: axis labels, legend
//! entries and data marks are in the SVG; an empty chart says "no data".

use super::*;

fn written(name: &str, svg: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.svg"));
    write_svg(&path, svg).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
        "{name}"
    );
    text
}

fn has_all(name: &str, svg: &str, needles: &[&str]) {
    for n in needles {
        assert!(svg.contains(n), "{name}.svg lacks {n:?}");
    }
}

fn figure(series: &str, scale: f64, oom: Option<usize>) -> BatchFigure {
    BatchFigure {
        series: series.into(),
        points: vec![
            (1, 100.0 * scale, 50.0),
            (2, 180.0 * scale, 60.0),
            (4, 300.0 * scale, 90.0),
        ],
        out_of_memory_at: oom,
    }
}

#[test]
fn tflops_chart_has_axes_bars_and_legend() {
    let rows = [
        DtypeTflops {
            dtype: "fp16".into(),
            measured_tflops: 700.0,
            peak_tflops: Some(989.4),
        },
        DtypeTflops {
            dtype: "fp32".into(),
            measured_tflops: 50.0,
            peak_tflops: Some(66.9),
        },
    ];
    let svg = written("tflops", &tflops_vs_peak(&rows, "H100").unwrap());
    has_all(
        "tflops",
        &svg,
        &[
            "GEMM throughput",
            "TFLOP/s",
            "precision (dtype)",
            "fp16",
            "fp32",
            "measured",
            "architecture peak",
            "<rect",
        ],
    );
    // Two measured bars + two peak bars, plus background and legend rectangles.
    assert!(svg.matches("<rect").count() >= 4);
}

#[test]
fn batch_charts_have_one_line_per_model_and_mark_oom() {
    let figs = [figure("gpt2", 1.0, Some(8)), figure("opt-1.3b", 0.5, None)];
    for (name, svg, y) in [
        ("thr", batch_throughput(&figs).unwrap(), "output tokens/s"),
        ("lat", batch_latency(&figs).unwrap(), "batch latency, ms"),
    ] {
        let svg = written(name, &svg);
        has_all(
            name,
            &svg,
            &[
                "batch size",
                y,
                "gpt2",
                "opt-1.3b",
                "out of memory",
                "<polyline",
            ],
        );
        assert!(
            svg.matches("<circle").count() >= 6,
            "{name}: a marker per point"
        );
    }
}

#[test]
fn pareto_chart_marks_the_front() {
    let pts = [
        TradeoffPoint {
            label: "b=1".into(),
            latency_ms: 10.0,
            throughput: 100.0,
        },
        TradeoffPoint {
            label: "b=2".into(),
            latency_ms: 20.0,
            throughput: 300.0,
        },
        TradeoffPoint {
            label: "b=3".into(),
            latency_ms: 30.0,
            throughput: 200.0,
        },
    ];
    let svg = written("pareto", &pareto_front(&pts, "batch latency, ms").unwrap());
    has_all(
        "pareto",
        &svg,
        &[
            "Pareto front",
            "output tokens/s",
            "batch latency, ms",
            "b=2",
            "<polyline",
            "<circle",
        ],
    );
}

#[test]
fn bar_rows_show_values_and_missing_ones() {
    let rows = [
        LabelledValue {
            label: "aws / g4dn.xlarge · gpt2".into(),
            value: Some(0.73),
        },
        LabelledValue {
            label: "aws / p3.2xlarge · gpt2".into(),
            value: None,
        },
    ];
    let svg = written("cost", &cost_per_instance(&rows).unwrap());
    has_all(
        "cost",
        &svg,
        &[
            "US$ per 1M output tokens",
            "g4dn.xlarge",
            "0.73",
            "n/a",
            "<rect",
        ],
    );
}

#[test]
fn roofline_chart_has_both_roofs_and_marks() {
    let c = RooflineCeilings {
        device: "H100".into(),
        gemm_tflops: 700.0,
        gemm_label: "fp16 GEMM".into(),
        bandwidth_gb_s: 3000.0,
        peak_tflops: Some(989.4),
        peak_bandwidth_gb_s: Some(3350.0),
    };
    let marks = [
        RooflineMark {
            label: "llama prefill".into(),
            intensity: 800.0,
            tflops: 400.0,
        },
        RooflineMark {
            label: "llama decode".into(),
            intensity: 1.0,
            tflops: 2.5,
        },
    ];
    let svg = written("roofline", &roofline_chart(Some(&c), &marks).unwrap());
    has_all(
        "roofline",
        &svg,
        &[
            "arithmetic intensity",
            "TFLOP/s (log scale)",
            "measured roof",
            "datasheet roof",
            "llama prefill",
            "llama decode",
            "<polyline",
            "<circle",
        ],
    );
}

#[test]
fn every_chart_without_data_says_so() {
    let empty = [
        ("tflops", tflops_vs_peak(&[], "cpu").unwrap()),
        ("thr", batch_throughput(&[]).unwrap()),
        (
            "lat",
            batch_latency(&[figure("m", 1.0, None)][..0]).unwrap(),
        ),
        ("pareto", pareto_front(&[], "ms").unwrap()),
        (
            "cost",
            cost_per_instance(&[LabelledValue {
                label: "x".into(),
                value: None,
            }])
            .unwrap(),
        ),
        ("roofline", roofline_chart(None, &[]).unwrap()),
    ];
    for (name, svg) in empty {
        let svg = written(name, &svg);
        assert!(svg.contains("no data"), "{name}");
    }
}
