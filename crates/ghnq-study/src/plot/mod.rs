//! Plots people would rather look at than read, written as PNG and SVG side by side with
//! plotters. Labels are drawn with DejaVu Sans, loaded at run time from Debian's
//! `fonts-dejavu-core` (which `cargo xtask setup` installs), so nothing needs system libraries.

mod bits;
mod curves;
mod sources;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

pub use bits::accuracy_vs_bits;
pub use curves::{Curve, top1_vs_steps};
pub use sources::top1_by_source;

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
    /// plotters could not draw the picture or save it to the temporary file (the backends
    /// write files themselves); the temporary file is removed.
    #[error("drawing {}: {source}", path.display())]
    Draw {
        /// The file that was being drawn.
        path: PathBuf,
        /// plotters' reason.
        #[source]
        source: DrawError,
    },
    /// The drawn picture could not be moved into place (the previous file, if any, is kept).
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file that was being written.
        path: PathBuf,
        /// The rename's error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing to plot.
    #[error("nothing to plot: {0}")]
    Empty(String),
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

/// Why plotters could not draw a figure.
///
/// plotters' error type is generic over the backend (PNG and SVG differ), and [`Figure::draw`]
/// is generic over the backend too, so one error type for every backend keeps plotters' message
/// as text; a figure's drawing code converts with plain `?`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DrawError {
    message: String,
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawError {
            message: e.to_string(),
        }
    }
}

/// A picture that can be drawn on any plotters backend, so one description gives both files.
pub trait Figure {
    /// Draws the whole picture on `root`.
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), DrawError>;
}

/// Writes `<stem>.png` and `<stem>.svg` of `figure` at `size` pixels, each atomically (a crash
/// leaves the previous files or none, never half a picture), and returns their paths.
pub fn write(
    figure: &impl Figure,
    stem: &Path,
    size: (u32, u32),
) -> Result<[PathBuf; 2], PlotError> {
    register_font()?;
    let out = [with_suffix(stem, "png"), with_suffix(stem, "svg")];
    for path in &out {
        let tmp = ghnq_core::atomic::tmp_path(path);
        let drawn = if path.extension().is_some_and(|e| e == "png") {
            figure.draw(BitMapBackend::new(&tmp, size).into_drawing_area())
        } else {
            figure.draw(SVGBackend::new(&tmp, size).into_drawing_area())
        };
        let done = drawn
            .map_err(|source| PlotError::Draw {
                path: path.clone(),
                source,
            })
            .and_then(|()| {
                std::fs::rename(&tmp, path).map_err(|source| PlotError::Write {
                    path: path.clone(),
                    source,
                })
            });
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    Ok(out)
}

/// `stem` plus `.ext`: a stem may contain dots (`curves-lr0.001`), which `with_extension` would
/// take for an extension and replace.
pub fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// The colour of series `k`: matplotlib's "tab10" palette, distinct and readable on white
/// (plotters' default palette puts yellow third).
pub(crate) fn color(k: usize) -> RGBAColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = TAB10[k % TAB10.len()];
    RGBColor(r, g, b).to_rgba()
}

/// The label of category axis position `x`: `labels[i]` exactly at integer `i`, nothing
/// between (plotters asks for labels at arbitrary positions).
pub(crate) fn category_label(labels: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

/// A chart with numeric axes, as every figure here draws.
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws `points` as a line with a dot on each point, named `name` in the legend.
pub(crate) fn dotted_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    name: &str,
    points: &[(f64, f64)],
    color: RGBAColor,
) -> Result<(), DrawError> {
    chart
        .draw_series(LineSeries::new(points.to_vec(), color.stroke_width(2)))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    Ok(())
}

/// The legend box every figure uses, at `position`.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
) -> Result<(), DrawError> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Panics (never passes silently) when the font the plots need is missing.
    pub(crate) fn require_font() {
        if !Path::new(FONT).exists() {
            panic!("{FONT} is missing: run `cargo xtask setup`");
        }
    }

    /// A result with only what plots of accuracy read (top-5 90 %, no errors).
    pub(crate) fn top1_only(
        split: &str,
        net: &str,
        bits: &str,
        path: &str,
        top1: f64,
    ) -> ghnq_quant::table::NetResult {
        ghnq_quant::table::NetResult {
            split: split.into(),
            net: net.into(),
            bits: bits.into(),
            runtime: path.into(),
            top1,
            top5: 90.0,
            qmse: None,
            qce: None,
            agreement: None,
        }
    }

    /// The files `write` returned: a PNG signature and an SVG holding every `needle`.
    pub(crate) fn check_files([png, svg]: &[PathBuf; 2], needles: &[&str]) {
        let png = std::fs::read(png).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        let svg = std::fs::read_to_string(svg).unwrap();
        assert!(svg.contains("<svg"));
        for n in needles {
            assert!(svg.contains(n), "the SVG lacks {n}");
        }
    }

    #[test]
    fn a_dotted_stem_keeps_its_dots() {
        assert_eq!(
            with_suffix(Path::new("out/curves-lr0.001"), "png"),
            Path::new("out/curves-lr0.001.png")
        );
        assert_eq!(with_suffix(Path::new("acc"), "svg"), Path::new("acc.svg"));
    }

    #[test]
    fn missing_font_is_named() {
        assert!(PlotError::Font.to_string().contains("fonts-dejavu-core"));
    }

    /// A white picture: enough to reach the backend's file write and the rename.
    struct Blank;

    impl Figure for Blank {
        fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), DrawError> {
            root.fill(&WHITE)?;
            root.present()?;
            Ok(())
        }
    }

    #[test]
    fn plotters_errors_keep_their_message_and_the_path() {
        let e = DrawError::from(DrawingAreaErrorKind::<std::io::Error>::LayoutError);
        assert_eq!(e.to_string(), "Bad layout");
        let e = PlotError::Draw {
            path: PathBuf::from("out/acc.png"),
            source: e,
        };
        assert_eq!(e.to_string(), "drawing out/acc.png: Bad layout");
        assert!(std::error::Error::source(&e).is_some_and(|s| s.is::<DrawError>()));
    }

    #[test]
    fn a_backend_failure_is_a_draw_error() {
        require_font();
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("missing").join("blank");
        let err = write(&Blank, &stem, (16, 16)).unwrap_err();
        let png = with_suffix(&stem, "png");
        assert!(
            matches!(&err, PlotError::Draw { path, .. } if *path == png),
            "{err:?}"
        );
        assert!(err.to_string().contains("blank.png"), "{err}");
    }

    #[test]
    fn a_failed_rename_is_a_write_error_and_leaves_no_temporary_file() {
        require_font();
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("blank");
        let png = with_suffix(&stem, "png");
        // A directory where the picture goes: drawing succeeds, the rename cannot.
        std::fs::create_dir(&png).unwrap();
        let err = write(&Blank, &stem, (16, 16)).unwrap_err();
        assert!(
            matches!(&err, PlotError::Write { path, source } if *path == png
                && source.kind() != std::io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert!(err.to_string().contains("blank.png"), "{err}");
        assert!(!ghnq_core::atomic::tmp_path(&png).exists());
        assert!(png.is_dir());
    }
}
