//! The roofline chart: attainable TFLOP/s against arithmetic intensity (FLOP per byte moved),
//! log-log, with the measured bandwidth slope and GEMM ceiling, the datasheet peaks when
//! known, and the runs (prefill, decode) placed on it.

use plotters::prelude::*;

use super::{draw_no_data, render_svg, series_color, tidy, title_style, CHART_HEIGHT, CHART_WIDTH};
use crate::error::Result;

/// The roof: what the device was measured to do, and what its datasheet says.
#[derive(Debug, Clone, PartialEq)]
pub struct RooflineCeilings {
    /// The device (`cpu`, `NVIDIA H100 80GB HBM3`).
    pub device: String,
    /// Measured GEMM TFLOP/s (the flat roof).
    pub gemm_tflops: f64,
    /// What the GEMM ceiling is (`fp32 GEMM, best shape`).
    pub gemm_label: String,
    /// Measured memory bandwidth in GB/s (the slope).
    pub bandwidth_gb_s: f64,
    /// Datasheet peak TFLOP/s for the same precision, when known.
    pub peak_tflops: Option<f64>,
    /// Datasheet memory bandwidth in GB/s, when known.
    pub peak_bandwidth_gb_s: Option<f64>,
}

/// One run placed on the roofline.
#[derive(Debug, Clone, PartialEq)]
pub struct RooflineMark {
    /// What it is (`tiny-llama prefill`).
    pub label: String,
    /// FLOP per byte moved.
    pub intensity: f64,
    /// Achieved TFLOP/s.
    pub tflops: f64,
}

/// Attainable TFLOP/s at `intensity` FLOP/byte under `tflops` and `gb_s`.
pub fn attainable_tflops(intensity: f64, tflops: f64, gb_s: f64) -> f64 {
    (gb_s * intensity / 1e3).min(tflops)
}

fn roof_line(tflops: f64, gb_s: f64, lo: f64, hi: f64) -> Vec<(f64, f64)> {
    let ridge = tflops * 1e3 / gb_s;
    let mut xs = vec![lo];
    if ridge > lo && ridge < hi {
        xs.push(ridge);
    }
    xs.push(hi);
    xs.into_iter()
        .map(|x| (x, attainable_tflops(x, tflops, gb_s)))
        .collect()
}

/// The roofline chart (log-log): measured roof, datasheet roof (dashed) when known, and the
/// marks.
///
/// # Errors
/// [`crate::BenchError::Plot`] if drawing fails.
pub fn roofline_chart(
    ceilings: Option<&RooflineCeilings>,
    marks: &[RooflineMark],
) -> Result<String> {
    let device = ceilings.map_or("no device".to_string(), |c| c.device.clone());
    let title = format!("Roofline ({device})");
    render_svg("roofline", (CHART_WIDTH, CHART_HEIGHT), |root| {
        let Some(c) = ceilings.filter(|c| {
            c.gemm_tflops.is_finite()
                && c.gemm_tflops > 0.0
                && c.bandwidth_gb_s.is_finite()
                && c.bandwidth_gb_s > 0.0
        }) else {
            return draw_no_data(root, &title, "no measured GEMM or bandwidth ceiling");
        };
        let marks: Vec<&RooflineMark> = marks
            .iter()
            .filter(|m| {
                m.intensity > 0.0
                    && m.tflops > 0.0
                    && m.intensity.is_finite()
                    && m.tflops.is_finite()
            })
            .collect();
        let peak = c.peak_tflops.unwrap_or(c.gemm_tflops).max(c.gemm_tflops);
        let ridge = c.gemm_tflops * 1e3 / c.bandwidth_gb_s;
        let lo_x = marks
            .iter()
            .map(|m| m.intensity / 3.0)
            .fold(ridge / 100.0, f64::min);
        let hi_x = marks
            .iter()
            .map(|m| m.intensity * 3.0)
            .fold(ridge * 30.0, f64::max);
        let lo_y = marks.iter().map(|m| m.tflops / 3.0).fold(
            attainable_tflops(lo_x, c.gemm_tflops, c.bandwidth_gb_s) / 2.0,
            f64::min,
        );
        let hi_y = peak * 3.0;
        let mut chart = ChartBuilder::on(root)
            .caption(&title, title_style())
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d((lo_x..hi_x).log_scale(), (lo_y..hi_y).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity, FLOP per byte moved (log scale)")
            .y_desc("TFLOP/s (log scale)")
            .x_label_formatter(&|v| tidy(*v))
            .y_label_formatter(&|v| tidy(*v))
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 15))
            .draw()?;
        let roof = series_color(0);
        chart
            .draw_series(LineSeries::new(
                roof_line(c.gemm_tflops, c.bandwidth_gb_s, lo_x, hi_x),
                roof.stroke_width(3),
            ))?
            .label(format!(
                "measured roof: {} GB/s, {} TFLOP/s ({})",
                tidy(c.bandwidth_gb_s),
                tidy(c.gemm_tflops),
                c.gemm_label
            ))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], roof.stroke_width(3)));
        if let (Some(pt), Some(pb)) = (c.peak_tflops, c.peak_bandwidth_gb_s) {
            let sheet = RGBColor(120, 120, 120);
            chart
                .draw_series(DashedLineSeries::new(
                    roof_line(pt, pb, lo_x, hi_x),
                    8,
                    5,
                    sheet.stroke_width(2),
                ))?
                .label(format!(
                    "datasheet roof: {} GB/s, {} TFLOP/s",
                    tidy(pb),
                    tidy(pt)
                ))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], sheet.stroke_width(2))
                });
        }
        for (i, m) in marks.iter().enumerate() {
            let color = series_color(i + 1);
            chart
                .draw_series([Circle::new((m.intensity, m.tflops), 6, color.filled())])?
                .label(format!(
                    "{}: {} TFLOP/s at {} FLOP/B",
                    m.label,
                    tidy(m.tflops),
                    tidy(m.intensity)
                ))
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attainable_is_the_lower_of_slope_and_roof() {
        // 1000 GB/s, 100 TFLOP/s: ridge at 100 FLOP/B.
        assert!((attainable_tflops(10.0, 100.0, 1000.0) - 10.0).abs() < 1e-12);
        assert!((attainable_tflops(1000.0, 100.0, 1000.0) - 100.0).abs() < 1e-12);
        let line = roof_line(100.0, 1000.0, 1.0, 1e4);
        assert_eq!(line.len(), 3);
        assert!((line[1].0 - 100.0).abs() < 1e-9);
    }
}
