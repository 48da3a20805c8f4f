//! Top-1 against bit-width, one line per split: the shape of the paper's tables at a glance.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawError, Figure, PlotError};
use ghnq_quant::table::Row;

/// One line per split: top-1 (mean, with ± standard-error bars) against the bit settings in
/// the order the rows give them; quantized settings plot the integer runtime's rows.
/// Writes `<stem>.png` and `<stem>.svg` atomically and returns their paths.
pub fn accuracy_vs_bits(rows: &[Row], stem: &Path) -> Result<[PathBuf; 2], PlotError> {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.runtime == "float" || r.runtime == "int")
        .collect();
    if rows.is_empty() {
        return Err(PlotError::Empty("no float or integer-runtime rows".into()));
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
    let figure = BitsFigure {
        rows: &rows,
        bits: &bits,
        splits: &splits,
    };
    super::write(&figure, stem, (800, 500))
}

struct BitsFigure<'a> {
    rows: &'a [&'a Row],
    bits: &'a [&'a str],
    splits: &'a [&'a str],
}

impl Figure for BitsFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        root.fill(&WHITE)?;
        let n = self.bits.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption("top-1 against bit-width", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..100f64)?;
        let labels: Vec<String> = self.bits.iter().map(|b| b.to_string()).collect();
        chart
            .configure_mesh()
            .x_labels(self.bits.len())
            .x_label_formatter(&|x| super::category_label(&labels, *x))
            .x_desc("weights / activations (float: no quantization; others: integer runtime)")
            .y_desc("top-1 % (mean ± s.e. over nets)")
            .draw()?;
        for (k, split) in self.splits.iter().enumerate() {
            let color = super::color(k);
            let points: Vec<(f64, f64, f64)> = self
                .bits
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    self.rows
                        .iter()
                        .find(|r| r.split == *split && r.bits == *b)
                        .map(|r| (i as f64, r.top1.mean, r.top1.se))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(x, y, _)| (x, y)),
                    color.stroke_width(2),
                ))?
                .label(*split)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|&(x, y, se)| {
                ErrorBar::new_vertical(x, y - se, y, y + se, color.filled(), 8)
            }))?;
        }
        super::legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghnq_quant::table::aggregate;

    #[test]
    fn writes_png_and_svg() {
        super::super::tests::require_font();
        let r = |split: &str, bits: &str, path: &str, top1: f64| {
            super::super::tests::top1_only(split, &format!("{split}{top1}"), bits, path, top1)
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
        let files = accuracy_vs_bits(&rows, &dir.path().join("acc")).unwrap();
        super::super::tests::check_files(&files, &["w4a4", "deep"]);
        assert!(matches!(
            accuracy_vs_bits(&[], &dir.path().join("x")),
            Err(PlotError::Empty(_))
        ));
    }
}
