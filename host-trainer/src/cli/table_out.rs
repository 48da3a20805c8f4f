//! Where an evaluation table goes besides the terminal (`eval` and `merge` share these flags).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ghnq_quant::table::{self, NetResult, Row};

/// Table outputs.
#[derive(clap::Args, Debug)]
pub struct TableOut {
    /// Also write the per-net results as CSV (atomically; `ghnq merge` reads these).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also write the table as markdown (atomically).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also plot top-1 against bit-width per split: writes `<PLOT>.png` and `<PLOT>.svg`.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl TableOut {
    /// Write every requested output of `results` (aggregated as `rows`).
    pub fn write(&self, results: &[NetResult], rows: &[Row]) -> Result<()> {
        let write = |path: &PathBuf, text: String| {
            ghnq_core::atomic::write(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))
        };
        if let Some(path) = &self.csv {
            write(path, table::csv(results))?;
        }
        if let Some(path) = &self.markdown {
            write(path, table::markdown(rows))?;
        }
        if let Some(stem) = &self.plot {
            let [png, svg] = ghnq_study::plot::accuracy_vs_bits(rows, stem)?;
            eprintln!("plot: {} and {}", png.display(), svg.display());
        }
        Ok(())
    }
}
