//! Top-1 of several parameter sources per split as grouped bars: the GHN's prediction against
//! its baselines (`ghnq compare`), where the gap is what a reader wants to see.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawError, Figure, PlotError};
use ghnq_quant::side_by_side::{Row, Source};

/// One group per row, one bar per source (mean top-1 with a ± standard-error bar and the number
/// of nets above it). Writes `<stem>.png` and `<stem>.svg` atomically and returns their paths.
pub fn top1_by_source(
    sources: &[Source],
    rows: &[Row],
    stem: &Path,
) -> Result<[PathBuf; 2], PlotError> {
    if rows.iter().all(|r| r.cells.iter().all(Option::is_none)) {
        return Err(PlotError::Empty("no measured cells".into()));
    }
    let labels: Vec<&str> = sources.iter().map(Source::label).collect();
    let width = (160 * rows.len() as u32).clamp(640, 1600);
    super::write(&BarsFigure { labels, rows }, stem, (width, 500))
}

struct BarsFigure<'a> {
    labels: Vec<&'a str>,
    rows: &'a [Row],
}

impl Figure for BarsFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        root.fill(&WHITE)?;
        let n = self.rows.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption("top-1 by source of parameters", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..100f64)?;
        let names: Vec<String> = self.rows.iter().map(Row::name).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(self.rows.len())
            .x_label_formatter(&|x| super::category_label(&names, *x))
            .y_desc("top-1 % (mean ± s.e. over nets; n = nets)")
            .draw()?;
        let k = self.labels.len().max(1) as f64;
        let slot = 0.8 / k;
        for (s, label) in self.labels.iter().enumerate() {
            let color = super::color(s);
            let bars: Vec<(f64, f64, f64, usize)> = self
                .rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    r.cells.get(s).copied().flatten().map(|c| {
                        let x = i as f64 - 0.4 + slot * (s as f64 + 0.5);
                        (x, c.top1.mean, c.top1.se, c.nets)
                    })
                })
                .collect();
            chart
                .draw_series(bars.iter().map(|&(x, y, _, _)| {
                    Rectangle::new(
                        [(x - slot * 0.45, 0.0), (x + slot * 0.45, y)],
                        color.filled(),
                    )
                }))?
                .label(*label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
            chart.draw_series(bars.iter().map(|&(x, y, se, _)| {
                ErrorBar::new_vertical(x, y - se, y, y + se, BLACK.filled(), 6)
            }))?;
            chart.draw_series(bars.iter().map(|&(x, y, se, nets)| {
                Text::new(
                    format!("n={nets}"),
                    (x - slot * 0.4, y + se + 4.0),
                    ("sans-serif", 11),
                )
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
    use ghnq_quant::side_by_side::{Nets, side_by_side};

    #[test]
    fn writes_png_and_svg() {
        super::super::tests::require_font();
        let r = |split: &str, net: &str, top1: f64| {
            super::super::tests::top1_only(split, net, "float", "float", top1)
        };
        let sources = vec![
            Source::new("GHN", vec![r("test", "a", 40.0), r("deep", "b", 20.0)]).unwrap(),
            Source::new(
                "random init",
                vec![r("test", "a", 10.0), r("deep", "b", 9.0)],
            )
            .unwrap(),
            Source::new("SGD", vec![r("test", "a", 80.0)]).unwrap(),
        ];
        let rows = side_by_side(&sources, Nets::Common);
        let dir = tempfile::tempdir().unwrap();
        let files = top1_by_source(&sources, &rows, &dir.path().join("bars")).unwrap();
        super::super::tests::check_files(&files, &["random init", "SGD", "deep", "n=1"]);
        assert!(matches!(
            top1_by_source(&sources, &[], &dir.path().join("x")),
            Err(PlotError::Empty(_))
        ));
    }
}
