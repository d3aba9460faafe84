//! Bar charts: TFLOP/s per dtype against the peak (vertical, grouped), and one value per
//! labelled row (horizontal), used for cost per instance and for machine comparisons.

use plotters::prelude::*;

use super::{
    draw_no_data, max_finite, render_svg, series_color, tidy, title_style, CHART_HEIGHT,
    CHART_WIDTH,
};
use crate::error::Result;

/// One precision's GEMM figure.
#[derive(Debug, Clone, PartialEq)]
pub struct DtypeTflops {
    /// The precision (`fp32`, `bf16`, ...).
    pub dtype: String,
    /// Best measured TFLOP/s over the shapes of that precision (median time of each shape).
    pub measured_tflops: f64,
    /// The architecture's dense peak, when known (no peak on a CPU).
    pub peak_tflops: Option<f64>,
}

/// One bar of a horizontal bar chart: a row label and its value (`None` is drawn as `n/a`).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledValue {
    /// The row's label (an instance, a machine, a model).
    pub label: String,
    /// The value, when there is one.
    pub value: Option<f64>,
}

/// Each category gets this many coordinate units on the category axis.
const SLOT: i32 = 100;

fn slot_centers(n: usize) -> Vec<i32> {
    (0..n as i32).map(|i| i * SLOT + SLOT / 2).collect()
}

fn slot_index(v: i32, n: usize) -> Option<usize> {
    let i = v.div_euclid(SLOT);
    (i >= 0 && (i as usize) < n && v.rem_euclid(SLOT) == SLOT / 2).then_some(i as usize)
}

/// Grouped bars: measured TFLOP/s per dtype beside the architecture's peak.
///
/// # Errors
/// [`crate::BenchError::Plot`] if drawing fails.
pub fn tflops_vs_peak(rows: &[DtypeTflops], device: &str) -> Result<String> {
    let title = format!("GEMM throughput per precision vs peak ({device})");
    let rows: Vec<&DtypeTflops> = rows
        .iter()
        .filter(|r| r.measured_tflops.is_finite())
        .collect();
    render_svg("tflops", (CHART_WIDTH, CHART_HEIGHT), |root| {
        if rows.is_empty() {
            return draw_no_data(root, &title, "no GEMM result was measured");
        }
        let n = rows.len();
        let any_peak = rows.iter().any(|r| r.peak_tflops.is_some());
        let top = max_finite(
            rows.iter()
                .flat_map(|r| [Some(r.measured_tflops), r.peak_tflops])
                .flatten(),
            f64::MIN_POSITIVE,
        ) * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(&title, title_style())
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (0..n as i32 * SLOT).with_key_points(slot_centers(n)),
                0.0..top,
            )?;
        let names: Vec<String> = rows.iter().map(|r| r.dtype.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("precision (dtype)")
            .y_desc("TFLOP/s (median launch time)")
            .x_label_formatter(&|v| slot_index(*v, n).map_or(String::new(), |i| names[i].clone()))
            .y_label_formatter(&|v| tidy(*v))
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 15))
            .draw()?;
        let (w, gap) = if any_peak { (36, 4) } else { (60, 0) };
        let measured_color = series_color(0);
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let c = i as i32 * SLOT + SLOT / 2;
                let (x0, x1) = if any_peak {
                    (c - w - gap, c - gap)
                } else {
                    (c - w / 2, c + w / 2)
                };
                Rectangle::new(
                    [(x0, 0.0), (x1, r.measured_tflops)],
                    measured_color.filled(),
                )
            }))?
            .label("measured")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 14, y + 6)], measured_color.filled())
            });
        chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
            let c = i as i32 * SLOT + SLOT / 2;
            let x = if any_peak { c - gap - w / 2 } else { c };
            Text::new(
                tidy(r.measured_tflops),
                (x - 12, r.measured_tflops + top * 0.04),
                ("sans-serif", 13),
            )
        }))?;
        if any_peak {
            let peak_color = series_color(1);
            chart
                .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
                    let c = i as i32 * SLOT + SLOT / 2;
                    r.peak_tflops.map(|p| {
                        Rectangle::new(
                            [(c + gap, 0.0), (c + gap + w, p)],
                            peak_color.mix(0.55).filled(),
                        )
                    })
                }))?
                .label("architecture peak (dense)")
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], peak_color.mix(0.55).filled())
                });
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 15))
                .draw()?;
        }
        Ok(())
    })
}

/// Horizontal bars of cost per 1M output tokens, one per (instance, model) row.
///
/// # Errors
/// [`crate::BenchError::Plot`] if drawing fails.
pub fn cost_per_instance(rows: &[LabelledValue]) -> Result<String> {
    labelled_bars(
        "cost",
        "Cost per 1M output tokens per instance",
        "US$ per 1M output tokens (instance price / measured throughput)",
        rows,
        "no throughput was measured, or no instance was priced",
    )
}

/// Horizontal bars, one per labelled row; rows without a value show `n/a`. `chart` names the
/// chart in errors, `value_axis` labels the value axis (with its unit), `empty_reason` is
/// shown when no row has a value.
///
/// # Errors
/// [`crate::BenchError::Plot`] if drawing fails.
pub fn labelled_bars(
    chart: &str,
    title: &str,
    value_axis: &str,
    rows: &[LabelledValue],
    empty_reason: &str,
) -> Result<String> {
    let n = rows.len();
    let height = CHART_HEIGHT.max(140 + 34 * n as u32);
    let longest = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_area = (longest as u32 * 8 + 24).clamp(80, 420);
    render_svg(chart, (CHART_WIDTH, height), |root| {
        let values: Vec<f64> = rows
            .iter()
            .filter_map(|r| r.value)
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            return draw_no_data(root, title, empty_reason);
        }
        let top = max_finite(values.iter().copied(), f64::MIN_POSITIVE) * 1.18;
        let mut chart = ChartBuilder::on(root)
            .caption(title, title_style())
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(label_area)
            .build_cartesian_2d(
                0.0..top,
                (0..n as i32 * SLOT).with_key_points(slot_centers(n)),
            )?;
        // Row 0 at the top: row i sits in slot n-1-i.
        let label_of = |v: &i32| {
            slot_index(*v, n).map_or(String::new(), |slot| rows[n - 1 - slot].label.clone())
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(value_axis)
            .x_label_formatter(&|v| tidy(*v))
            .y_label_formatter(&label_of)
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 14))
            .draw()?;
        let color = series_color(0);
        chart.draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            let v = r.value.filter(|v| v.is_finite())?;
            let c = (n - 1 - i) as i32 * SLOT + SLOT / 2;
            Some(Rectangle::new([(0.0, c - 30), (v, c + 30)], color.filled()))
        }))?;
        chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
            let c = (n - 1 - i) as i32 * SLOT + SLOT / 2;
            let (x, text) = match r.value.filter(|v| v.is_finite()) {
                Some(v) => (v + top * 0.01, tidy(v)),
                None => (top * 0.01, "n/a".to_string()),
            };
            Text::new(text, (x, c + 8), ("sans-serif", 13))
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_back_to_rows() {
        assert_eq!(slot_centers(3), vec![50, 150, 250]);
        assert_eq!(slot_index(150, 3), Some(1));
        assert_eq!(slot_index(151, 3), None);
        assert_eq!(slot_index(350, 3), None);
        assert_eq!(slot_index(-50, 3), None);
    }
}
