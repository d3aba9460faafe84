//! SVG charts of benchmark results, drawn with `plotters` (its SVG backend: no Python, no
//! font files — SVG text is laid out by the viewer).
//!
//! | chart | function | input |
//! |---|---|---|
//! | GEMM TFLOP/s per dtype vs the architecture's peak (bars) | [`tflops_vs_peak`] | [`DtypeTflops`] |
//! | batch size vs output throughput | [`batch_throughput`] | [`BatchFigure`] |
//! | batch size vs batch latency | [`batch_latency`] | [`BatchFigure`] |
//! | throughput vs latency, Pareto front marked | [`pareto_front`] | [`TradeoffPoint`] |
//! | cost per 1M tokens per instance (bars) | [`cost_per_instance`] | [`LabelledValue`] |
//! | any one value per labelled row (bars), e.g. per machine | [`labelled_bars`] | [`LabelledValue`] |
//! | roofline: attainable TFLOP/s vs arithmetic intensity, runs placed on it | [`roofline_chart`] | [`RooflineCeilings`], [`RooflineMark`] |
//!
//! Every chart has a title, axes labelled with their units, and a legend where it shows
//! more than one series. A chart given no data still renders: the image says "no data" and
//! why, so a results folder never has a missing or broken plot. Each function returns the
//! SVG document as a `String`; [`write_svg`] writes one atomically.

mod bars;
mod lines;
mod roofline_chart;
#[cfg(test)]
mod tests;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{BenchError, Result};

pub use bars::{cost_per_instance, labelled_bars, tflops_vs_peak, DtypeTflops, LabelledValue};
pub use lines::{
    batch_latency, batch_throughput, pareto_front, pareto_indices, BatchFigure, TradeoffPoint,
};
pub use roofline_chart::{roofline_chart, RooflineCeilings, RooflineMark};

/// Width of every chart in pixels.
pub const CHART_WIDTH: u32 = 960;
/// Height of every chart in pixels (bar charts with many rows grow taller).
pub const CHART_HEIGHT: u32 = 600;

/// Series colours, in order.
pub(crate) const SERIES_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The colour of series `i` (cycling).
pub(crate) fn series_color(i: usize) -> RGBColor {
    SERIES_COLORS[i % SERIES_COLORS.len()]
}

/// Writes an SVG document to `path`, atomically.
///
/// # Errors
/// [`BenchError::Metrics`] when the file cannot be written.
pub fn write_svg(path: &Path, svg: &str) -> Result<()> {
    metrics::writers::write_text_atomic(path, svg)?;
    Ok(())
}

/// Draws on a fresh SVG canvas of `size` and returns the document. `chart` names the chart
/// in errors.
pub(crate) fn render_svg<F>(chart: &str, size: (u32, u32), draw: F) -> Result<String>
where
    F: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(chart, &e))?;
        draw(&root).map_err(|e| plot_error(chart, &e))?;
        root.present().map_err(|e| plot_error(chart, &e))?;
    }
    Ok(svg)
}

/// The result type of the drawing closures.
pub(crate) type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn plot_error(chart: &str, e: &dyn std::fmt::Display) -> BenchError {
    BenchError::Plot {
        chart: chart.to_string(),
        reason: e.to_string(),
    }
}

/// The title style of every chart.
pub(crate) fn title_style() -> TextStyle<'static> {
    ("sans-serif", 24).into_font().color(&BLACK)
}

/// Draws the "no data" image: the title, then `reason` in the middle.
pub(crate) fn draw_no_data(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    reason: &str,
) -> DrawResult {
    let (w, h) = root.dim_in_pixel();
    let area = root.titled(title, title_style())?;
    let style = ("sans-serif", 20)
        .into_font()
        .color(&RGBColor(90, 90, 90))
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ));
    area.draw(&Text::new(
        format!("no data: {reason}"),
        (w as i32 / 2, h as i32 / 2 - 40),
        style,
    ))?;
    Ok(())
}

/// A tidy number for axis labels: no more than 3 significant decimals, no trailing zeros.
pub(crate) fn tidy(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    let s = if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else if a >= 1e-4 {
        // Two significant digits: 0.026, 0.0051.
        let decimals = (-a.log10().floor()) as usize + 1;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.1e}")
    };
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The largest finite value of `values`, at least `floor`.
pub(crate) fn max_finite(values: impl IntoIterator<Item = f64>, floor: f64) -> f64 {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(floor, f64::max)
}

#[cfg(test)]
mod helper_tests {
    use super::*;

    #[test]
    fn tidy_numbers() {
        assert_eq!(tidy(1500.0), "1500");
        assert_eq!(tidy(12.5), "12.5");
        assert_eq!(tidy(12.0), "12");
        assert_eq!(tidy(0.25), "0.25");
        assert_eq!(tidy(0.0), "0");
        assert_eq!(tidy(0.02598), "0.026");
        assert_eq!(tidy(0.005), "0.005");
        assert!(tidy(0.00001).contains('e'));
    }

    #[test]
    fn max_finite_skips_nan_and_keeps_floor() {
        assert_eq!(max_finite([1.0, f64::NAN, 3.0], 0.0), 3.0);
        assert_eq!(max_finite([], 2.0), 2.0);
    }
}
