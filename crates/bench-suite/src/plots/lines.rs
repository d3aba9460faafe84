//! Line and scatter charts: batch size vs throughput and vs latency (one line per model),
//! and the throughput-vs-latency trade-off with its Pareto front.

use plotters::prelude::*;

use super::{
    draw_no_data, max_finite, render_svg, series_color, tidy, title_style, CHART_HEIGHT,
    CHART_WIDTH,
};
use crate::error::Result;

/// One model's batch sweep, for the batch charts.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchFigure {
    /// The series name (the model).
    pub series: String,
    /// `(batch size, output tokens/s, mean batch latency in ms)` of each batch that ran.
    pub points: Vec<(usize, f64, f64)>,
    /// The smallest batch size that ran out of memory, if one did.
    pub out_of_memory_at: Option<usize>,
}

/// One run on the throughput-vs-latency plane.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeoffPoint {
    /// What the point is (`tiny-llama b=8`).
    pub label: String,
    /// Latency in ms (lower is better).
    pub latency_ms: f64,
    /// Output tokens/s (higher is better).
    pub throughput: f64,
}

/// Batch size (log axis) vs output throughput, one line per model; out-of-memory batch
/// sizes are marked on the axis.
///
/// # Errors
/// [`crate::BenchError::Plot`] if drawing fails.
pub fn batch_throughput(figures: &[BatchFigure]) -> Result<String> {
    batch_chart(
        "batch_throughput",
        "Batch size vs throughput",
        "output tokens/s (batch output tokens / mean batch latency)",
        figures,
        |p| p.1,
    )
}

/// Batch size (log axis) vs mean batch latency, one line per model.
///
/// # Errors
/// [`crate::BenchError::Plot`] if drawing fails.
pub fn batch_latency(figures: &[BatchFigure]) -> Result<String> {
    batch_chart(
        "batch_latency",
        "Batch size vs latency",
        "batch latency, ms (all requests added at once until the last finishes)",
        figures,
        |p| p.2,
    )
}

fn batch_chart(
    chart: &str,
    title: &str,
    y_desc: &str,
    figures: &[BatchFigure],
    y_of: fn(&(usize, f64, f64)) -> f64,
) -> Result<String> {
    render_svg(chart, (CHART_WIDTH, CHART_HEIGHT), |root| {
        let ys = figures.iter().flat_map(|f| f.points.iter().map(y_of));
        let has_points = figures.iter().any(|f| !f.points.is_empty());
        if !has_points {
            return draw_no_data(
                root,
                title,
                "no batch size ran (none fit, or the sweep was skipped)",
            );
        }
        let mut sizes: Vec<usize> = figures
            .iter()
            .flat_map(|f| f.points.iter().map(|p| p.0).chain(f.out_of_memory_at))
            .filter(|&b| b > 0)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let lo = sizes.first().copied().unwrap_or(1) as f64;
        let hi = sizes.last().copied().unwrap_or(1) as f64;
        let top = max_finite(ys, f64::MIN_POSITIVE) * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(title, title_style())
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(
                ((lo / 1.5)..(hi * 1.5))
                    .log_scale()
                    .with_key_points(sizes.iter().map(|&b| b as f64).collect()),
                0.0..top,
            )?;
        chart
            .configure_mesh()
            .x_desc("batch size (prompts run at once, log scale)")
            .y_desc(y_desc)
            .x_label_formatter(&|v| format!("{}", v.round()))
            .y_label_formatter(&|v| tidy(*v))
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 15))
            .draw()?;
        for (i, f) in figures.iter().enumerate() {
            let color = series_color(i);
            let pts: Vec<(f64, f64)> = f.points.iter().map(|p| (p.0 as f64, y_of(p))).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(f.series.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        let ooms: Vec<usize> = figures.iter().filter_map(|f| f.out_of_memory_at).collect();
        if !ooms.is_empty() {
            let red = RGBColor(214, 39, 40);
            chart
                .draw_series(
                    ooms.iter()
                        .map(|&b| Cross::new((b as f64, top * 0.02), 8, red.stroke_width(3))),
                )?
                .label("out of memory at this batch size")
                .legend(move |(x, y)| Cross::new((x + 8, y), 6, red.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
        Ok(())
    })
}

/// The indices of the Pareto-optimal points (no other point has lower-or-equal latency and
/// higher-or-equal throughput with one of them strictly better), by rising latency.
pub fn pareto_indices(points: &[TradeoffPoint]) -> Vec<usize> {
    let ok = |p: &TradeoffPoint| p.latency_ms.is_finite() && p.throughput.is_finite();
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| ok(&points[i]))
        .filter(|&i| {
            let p = &points[i];
            !points.iter().any(|q| {
                ok(q)
                    && q.latency_ms <= p.latency_ms
                    && q.throughput >= p.throughput
                    && (q.latency_ms < p.latency_ms || q.throughput > p.throughput)
            })
        })
        .collect();
    front.sort_by(|&a, &b| points[a].latency_ms.total_cmp(&points[b].latency_ms));
    front
}

/// Throughput vs latency: every run as a point, the Pareto front (the runs no other run
/// beats on both) joined by a line.
///
/// # Errors
/// [`crate::BenchError::Plot`] if drawing fails.
pub fn pareto_front(points: &[TradeoffPoint], latency_desc: &str) -> Result<String> {
    let title = "Throughput vs latency (Pareto front)";
    render_svg("pareto", (CHART_WIDTH, CHART_HEIGHT), |root| {
        let valid: Vec<&TradeoffPoint> = points
            .iter()
            .filter(|p| p.latency_ms.is_finite() && p.throughput.is_finite())
            .collect();
        if valid.is_empty() {
            return draw_no_data(root, title, "no run with both a latency and a throughput");
        }
        let right = max_finite(valid.iter().map(|p| p.latency_ms), f64::MIN_POSITIVE) * 1.15;
        let top = max_finite(valid.iter().map(|p| p.throughput), f64::MIN_POSITIVE) * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(title, title_style())
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..right, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc(latency_desc)
            .y_desc("output tokens/s")
            .x_label_formatter(&|v| tidy(*v))
            .y_label_formatter(&|v| tidy(*v))
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 15))
            .draw()?;
        let all = series_color(0);
        chart
            .draw_series(
                valid
                    .iter()
                    .map(|p| Circle::new((p.latency_ms, p.throughput), 5, all.filled())),
            )?
            .label("run")
            .legend(move |(x, y)| Circle::new((x + 8, y), 5, all.filled()));
        chart.draw_series(valid.iter().map(|p| {
            Text::new(
                p.label.clone(),
                (p.latency_ms + right * 0.01, p.throughput + top * 0.01),
                ("sans-serif", 12),
            )
        }))?;
        let front: Vec<(f64, f64)> = pareto_indices(points)
            .into_iter()
            .map(|i| (points[i].latency_ms, points[i].throughput))
            .collect();
        let fc = series_color(3);
        chart
            .draw_series(LineSeries::new(front.clone(), fc.stroke_width(2)))?
            .label("Pareto front")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], fc.stroke_width(2)));
        chart.draw_series(front.iter().map(|&p| Circle::new(p, 7, fc.stroke_width(2))))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(l: f64, t: f64) -> TradeoffPoint {
        TradeoffPoint {
            label: format!("{l}/{t}"),
            latency_ms: l,
            throughput: t,
        }
    }

    #[test]
    fn pareto_keeps_only_undominated_points() {
        let pts = [
            p(10.0, 100.0),
            p(20.0, 300.0),
            p(30.0, 250.0),
            p(40.0, 500.0),
            p(15.0, 100.0),
        ];
        assert_eq!(pareto_indices(&pts), vec![0, 1, 3]);
    }

    #[test]
    fn pareto_ignores_non_finite_and_keeps_ties() {
        let pts = [p(10.0, 100.0), p(10.0, 100.0), p(f64::NAN, 1e9)];
        assert_eq!(pareto_indices(&pts), vec![0, 1]);
    }
}
