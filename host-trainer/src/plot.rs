//! Plots people would rather look at than read, written as PNG and SVG side by side with
//! plotters. Labels are drawn with DejaVu Sans, loaded at run time from Debian's
//! `fonts-dejavu-core` (which `cargo xtask setup` installs), so nothing needs system libraries.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::quant::table::Row;

/// Where the label font is read from.
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The label font is missing.
    #[error(
        "plot labels need {FONT} (Debian package fonts-dejavu-core; `cargo xtask setup` installs it)"
    )]
    Font,
    /// Drawing or writing failed.
    #[error("drawing {path}: {reason}")]
    Draw {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Nothing to plot.
    #[error("no rows to plot")]
    Empty,
}

fn register_font() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        let Ok(bytes) = std::fs::read(FONT) else {
            return false;
        };
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// One line per split: top-1 (mean, with ± standard-error bars) against the bit settings in
/// the order the rows give them; quantized settings plot the integer runtime's rows.
/// Writes `<stem>.png` and `<stem>.svg` atomically and returns their paths.
pub fn accuracy_vs_bits(rows: &[Row], stem: &Path) -> Result<[PathBuf; 2], PlotError> {
    register_font()?;
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.runtime == "float" || r.runtime == "int")
        .collect();
    if rows.is_empty() {
        return Err(PlotError::Empty);
    }
    let mut bits: Vec<&str> = Vec::new();
    let mut splits: Vec<&str> = Vec::new();
    for r in &rows {
        if !bits.contains(&r.bits.as_str()) {
            bits.push(&r.bits);
        }
        if !splits.contains(&r.split.as_str()) {
            splits.push(&r.split);
        }
    }
    let out = [stem.with_extension("png"), stem.with_extension("svg")];
    for path in &out {
        let tmp = crate::atomic::tmp_path(path);
        let err = |e: String| PlotError::Draw {
            path: path.clone(),
            reason: e,
        };
        let size = (800, 500);
        if path.extension().is_some_and(|e| e == "png") {
            draw(
                BitMapBackend::new(&tmp, size).into_drawing_area(),
                &rows,
                &bits,
                &splits,
            )
            .map_err(err)?;
        } else {
            draw(
                SVGBackend::new(&tmp, size).into_drawing_area(),
                &rows,
                &bits,
                &splits,
            )
            .map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(|e| PlotError::Draw {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(out)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[&Row],
    bits: &[&str],
    splits: &[&str],
) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let n = bits.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("top-1 against bit-width", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..100f64)
        .map_err(|x| e(&x))?;
    let labels: Vec<String> = bits.iter().map(|b| b.to_string()).collect();
    chart
        .configure_mesh()
        .x_labels(bits.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc("weights / activations (float: no quantization; others: integer runtime)")
        .y_desc("top-1 % (mean ± s.e. over nets)")
        .draw()
        .map_err(|x| e(&x))?;
    for (k, split) in splits.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let points: Vec<(f64, f64, f64)> = bits
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                rows.iter()
                    .find(|r| r.split == *split && r.bits == *b)
                    .map(|r| (i as f64, r.top1.mean, r.top1.se))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(x, y, _)| (x, y)),
                color.stroke_width(2),
            ))
            .map_err(|x| e(&x))?
            .label(*split)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points.iter().map(|&(x, y, se)| {
                    ErrorBar::new_vertical(x, y - se, y, y + se, color.filled(), 8)
                }),
            )
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::table::{NetResult, aggregate};

    #[test]
    fn writes_png_and_svg() {
        if !Path::new(FONT).exists() {
            // Not a silent pass: the error says what is missing.
            let err = accuracy_vs_bits(&[], Path::new("/nonexistent/x")).unwrap_err();
            assert!(err.to_string().contains("fonts-dejavu-core"), "{err}");
            panic!("{FONT} is missing: run `cargo xtask setup`");
        }
        let r = |split: &str, bits: &str, path: &str, top1: f64| NetResult {
            split: split.into(),
            net: format!("{split}{top1}"),
            bits: bits.into(),
            runtime: path.into(),
            top1,
            top5: 90.0,
            qmse: None,
            qce: None,
            agreement: None,
        };
        let rows = aggregate(&[
            r("test", "float", "float", 60.0),
            r("test", "float", "float", 64.0),
            r("test", "w8a8", "int", 59.0),
            r("test", "w4a4", "int", 40.0),
            r("deep", "float", "float", 50.0),
            r("deep", "w8a8", "int", 48.0),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let [png, svg] = accuracy_vs_bits(&rows, &dir.path().join("acc")).unwrap();
        let png = std::fs::read(png).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        let svg = std::fs::read_to_string(svg).unwrap();
        assert!(svg.contains("<svg") && svg.contains("w4a4") && svg.contains("deep"));
        assert!(matches!(
            accuracy_vs_bits(&[], &dir.path().join("x")),
            Err(PlotError::Empty)
        ));
    }
}
