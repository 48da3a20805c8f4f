//! Layerwise plots per trained net (the paper's Figs. 3–6): the range of the BN-folded weights,
//! the range of the output activations (absolute, and the clipped quantization range), and the
//! precision measure of [`super::layerwise`], layer by layer, as PNG and SVG side by side; and
//! the paper's Fig. 6 overlay ([`layerwise_overlay`]): the ranges and the precision on one chart
//! with two axes, where a spike in a layer's range and a drop in its precision line up.
//! Files and fonts are `crate::plot`'s.

use std::path::{Path, PathBuf};

use crate::error::{Result, ensure};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::layerwise::LayerStats;
use super::run::RunResult;
use crate::plot::{self, DrawError, Figure};

/// The x axis of every layerwise chart.
const LAYER_AXIS: &str = "layer (conv, depthwise conv or dense, in execution order)";

/// A layer index at integer `x`, nothing between (plotters asks for labels anywhere).
fn layer_label(x: &f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 {
        format!("{i}")
    } else {
        String::new()
    }
}

/// `result`'s layerwise records, or the error of a run that has none (diverged or failed).
fn layers_of(result: &RunResult) -> Result<&[LayerStats]> {
    ensure!(
        !result.layers.is_empty(),
        "{}_{}: no layerwise ranges (diverged or failed run)",
        result.arch,
        result.init
    );
    Ok(&result.layers)
}

/// `<stem>.png` and `<stem>.svg` of `result`'s layers, written atomically.
pub fn layerwise(result: &RunResult, stem: &Path) -> Result<[PathBuf; 2]> {
    let layers = layers_of(result)?;
    let figure = LayerwiseFigure {
        title: format!("{}_{}", result.arch, result.init),
        layers,
    };
    Ok(crate::plot::write(&figure, stem, (900, 960))?)
}

/// `<stem>-overlay.png` and `.svg`: the paper's Fig. 6 for `result` (its overlaid plot for
/// MbNetv2_Conv_With_BN_He_Uni): per layer, the BN-folded weights' range (`max − min`) and the
/// activations' range (widened to contain 0, the range their precision is measured against)
/// on the left axis, the precision of both on the right, so that the finding to test ("spikes
/// in a layer's range coincide with drops in its precision") can be read off one chart;
/// [`crate::range_precision`] puts a number on it.
pub fn layerwise_overlay(result: &RunResult, stem: &Path) -> Result<[PathBuf; 2]> {
    let layers = layers_of(result)?;
    let figure = OverlayFigure {
        title: format!(
            "{}_{}: range (left) and precision (right) per layer",
            result.arch, result.init
        ),
        layers,
    };
    Ok(crate::plot::write(
        &figure,
        &overlay_stem(stem),
        (900, 480),
    )?)
}

/// The overlay's stem beside the layerwise plot's: `<stem>-overlay`.
pub fn overlay_stem(stem: &Path) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push("-overlay");
    PathBuf::from(name)
}

struct OverlayFigure<'a> {
    title: String,
    layers: &'a [LayerStats],
}

impl Figure for OverlayFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        root.fill(&WHITE)?;
        let layers = self.layers;
        let n = layers.len();
        let col = |f: &dyn Fn(&LayerStats) -> f64| layers.iter().map(f).collect::<Vec<f64>>();
        let w_range = col(&|l| f64::from(l.w_max) - f64::from(l.w_min));
        let a_range = col(&|l| f64::from(l.act_max.max(0.0)) - f64::from(l.act_min.min(0.0)));
        let top = w_range
            .iter()
            .chain(&a_range)
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-6)
            * 1.15;
        let x = -0.5f64..(n as f64 - 0.5).max(0.5);
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(x.clone(), 0.0..top)?
            .set_secondary_coord(x, 0.0..1.3);
        chart
            .configure_mesh()
            .x_labels(n.clamp(1, 30))
            .x_label_formatter(&layer_label)
            .x_desc(LAYER_AXIS)
            .y_desc("range (max − min)")
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("precision (1 = every channel uses the whole grid)")
            .draw()?;
        let points = |v: &[f64]| -> Vec<(f64, f64)> {
            v.iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i as f64, v))
                .collect()
        };
        let blue = RGBColor(31, 119, 180).to_rgba();
        let red = RGBColor(214, 39, 40).to_rgba();
        for (name, color, values) in [
            ("weight range (left)", blue, &w_range),
            ("activation range (left)", red, &a_range),
        ] {
            let pts = points(values);
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        for (name, color, values) in [
            ("weight precision (right)", blue, col(&|l| l.w_precision)),
            (
                "activation precision (right)",
                red,
                col(&|l| l.act_precision),
            ),
        ] {
            let pts = points(&values);
            let faint = color.mix(0.6);
            chart
                .draw_secondary_series(LineSeries::new(pts.clone(), faint.stroke_width(1)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], faint.stroke_width(1))
                });
            chart.draw_secondary_series(
                pts.iter()
                    .map(|&p| TriangleMarker::new(p, 4, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// One panel: `series` (name, colour, values per layer) against the layer index.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    series: &[(&str, RGBColor, Vec<f64>)],
    fixed: Option<(f64, f64)>,
) -> Result<(), DrawError> {
    let n = series.first().map_or(0, |s| s.2.len());
    let (lo, hi) = fixed.unwrap_or_else(|| {
        let (lo, hi) = series
            .iter()
            .flat_map(|s| s.2.iter())
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            return (-1.0, 1.0);
        }
        let pad = ((hi - lo) * 0.08).max(1e-6);
        (lo - pad, hi + pad)
    });
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5).max(0.5), lo..hi)?;
    chart
        .configure_mesh()
        .x_labels(n.clamp(1, 30))
        .x_label_formatter(&layer_label)
        .x_desc(LAYER_AXIS)
        .y_desc(y_desc)
        .draw()?;
    for (name, color, values) in series {
        let color = *color;
        let pts: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| (i as f64, v))
            .collect();
        plot::dotted_line(&mut chart, name, &pts, color.to_rgba())?;
    }
    plot::legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

struct LayerwiseFigure<'a> {
    title: String,
    layers: &'a [LayerStats],
}

impl Figure for LayerwiseFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        draw(root, &self.title, self.layers)
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    layers: &[LayerStats],
) -> Result<(), DrawError> {
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let areas = root.split_evenly((3, 1));
    let col = |f: fn(&LayerStats) -> f64| layers.iter().map(f).collect::<Vec<f64>>();
    let blue = RGBColor(31, 119, 180);
    let red = RGBColor(214, 39, 40);
    let green = RGBColor(44, 160, 44);
    let orange = RGBColor(255, 127, 14);
    panel(
        &areas[0],
        "BN-folded weights: range per layer",
        "weight",
        &[
            ("max", red, col(|l| f64::from(l.w_max))),
            ("min", blue, col(|l| f64::from(l.w_min))),
        ],
        None,
    )?;
    panel(
        &areas[1],
        "output activations: range (calibration images) and 1 %-clipped quantization range",
        "activation",
        &[
            ("max", red, col(|l| f64::from(l.act_max))),
            ("quant. max", orange, col(|l| f64::from(l.act_qmax))),
            ("quant. min", green, col(|l| f64::from(l.act_qmin))),
            ("min", blue, col(|l| f64::from(l.act_min))),
        ],
        None,
    )?;
    panel(
        &areas[2],
        "precision: mean channel range / layer range (1 = every channel uses the whole grid)",
        "precision",
        &[
            ("weights", blue, col(|l| l.w_precision)),
            ("activations", red, col(|l| l.act_precision)),
        ],
        Some((0.0, 1.3)),
    )?;
    root.present()?;
    Ok(())
}
