//! Top-1 against training steps, one line per starting point: how many steps of a user's own
//! training a GHN prediction is worth (`ghnq finetune`).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawError, Figure, PlotError};

/// One named curve: (step, top-1 %) points in step order.
pub type Curve = (String, Vec<(usize, f64)>);

/// Draws `curves` under `title`, the y axis saying what measured the top-1 (`measured_by`, e.g.
/// "integer runtime"), and writes `<stem>.png` and `<stem>.svg` atomically.
pub fn top1_vs_steps(
    curves: &[Curve],
    title: &str,
    measured_by: &str,
    stem: &Path,
) -> Result<[PathBuf; 2], PlotError> {
    if curves.iter().all(|(_, points)| points.is_empty()) {
        return Err(PlotError::Empty("no evaluated steps".into()));
    }
    let y_desc = format!("top-1 % ({measured_by})");
    super::write(
        &CurvesFigure {
            curves,
            title,
            y_desc: &y_desc,
        },
        stem,
        (800, 500),
    )
}

struct CurvesFigure<'a> {
    curves: &'a [Curve],
    title: &'a str,
    y_desc: &'a str,
}

impl Figure for CurvesFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        root.fill(&WHITE)?;
        let last = self
            .curves
            .iter()
            .flat_map(|(_, p)| p.iter().map(|&(s, _)| s))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        // Up to the next 10 % above the highest point: a curve that moves from 20 to 26 %
        // should not be a flat line at the bottom of a 0–100 axis.
        let highest = self
            .curves
            .iter()
            .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
            .fold(0f64, f64::max);
        let top = (((highest + 5.0) / 10.0).ceil() * 10.0).clamp(10.0, 100.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..last, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("training steps")
            .y_desc(self.y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        for (k, (name, points)) in self.curves.iter().enumerate() {
            let color = super::color(k);
            let points: Vec<(f64, f64)> =
                points.iter().map(|&(s, top1)| (s as f64, top1)).collect();
            super::dotted_line(&mut chart, name, &points, color)?;
        }
        super::legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg() {
        super::super::tests::require_font();
        let curves = vec![
            (
                "from GHN".to_string(),
                vec![(0, 40.0), (50, 60.0), (100, 70.0)],
            ),
            (
                "from random".to_string(),
                vec![(0, 10.0), (50, 35.0), (100, 55.0)],
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let files = top1_vs_steps(
            &curves,
            "net w4a4",
            "integer runtime",
            &dir.path().join("c"),
        )
        .unwrap();
        super::super::tests::check_files(&files, &["from GHN", "from random", "training steps"]);
        let empty = vec![("x".to_string(), Vec::new())];
        assert!(matches!(
            top1_vs_steps(&empty, "t", "integer runtime", &dir.path().join("e")),
            Err(PlotError::Empty(_))
        ));
    }
}
