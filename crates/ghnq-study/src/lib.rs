//! The random-initialisation study of the seed paper's §3 (Figs. 1–6, Tables 1–2) as a
//! reproducible, resumable harness: every (architecture, initialiser) pair is trained with
//! §3.1's recipe on the functional executor, evaluated in float and at QUINT8 (simulation and
//! integer runtime), and written as one record per pair, so a rerun skips finished pairs and the
//! grid splits into shards across processes or machines.
//!
//! Output directory layout:
//! - `recipe.json`: the recipe every record of the directory was made with;
//! - `runs/<Arch>__<Init>.json`: one [`run::RunResult`] per pair (written when the run ends);
//! - `layerwise/<Arch>__<Init>.{csv,png,svg}`: per-layer ranges and precision (Figs. 3–6),
//!   and `layerwise/<Arch>__<Init>-overlay.{png,svg}`: both on one chart (Fig. 6);
//! - `range_precision.{csv,md}`: the Fig. 6 finding as rank correlations ([`range_precision`]);
//! - `table1.{csv,md}`, `table2.{csv,md}`, `spread.{csv,md}`: see [`table`].
//!
//! # Cost and the CPU-scale recipe
//!
//! Training runs on the native engine on the CPU (`run::train`; burn's autodiff elsewhere).
//! Seconds per SGD step at batch 128 on 28x28x1 images, both engines in one process, one pinned
//! core, every other process stopped (`study_training_speed` in this crate's tests, release
//! build, Zen 4), 2026-12-07:
//!
//! | net | native s/step | burn s/step | native faster |
//! |:---|---:|---:|---:|
//! | Regular_Conv_With_BN | 0.233 | 0.685 | 2.94× |
//! | Basic_Residual_With_BN | 0.515 | 1.330 | 2.58× |
//! | MbNetV2_With_BN | 1.534 | 5.651 | 3.68× |
//!
//! The evaluation, measured earlier with the dev profile beside another training run on the
//! other core: milliseconds per test image for QUINT8 (simulation + integer runtime, the latter
//! dominating) — Regular_Conv 28, DWS_Conv 8, Basic_Residual 64, MbNetV2 64–70 — plus about
//! 6–17 s per run for calibration on 1,024 images (BN statistics, 1 % percentiles, a blob) and
//! the layerwise ranges. A run costs `steps · s/step + test images · ms/image + ~15 s`. The
//! default recipe of `ghnq study init` — 2 epochs of the first 10,000 training images (157
//! steps), 2,000 test images — took 1 h 47 min wall for the 48 pairs of Fig. 1 on burn (two
//! shards, one per core); Fig. 2's 48 pairs take about 2.1 h of native training on a free
//! core (24 × 157 × 0.5 s for the residual nets, 24 × 157 × 1.5 s for MbNetV2's) plus their
//! evaluations (36–250 s a pair in the release build beside other work). The paper's recipe
//! (CIFAR-10, 200 epochs of 50,000 images) is 78,200 steps per pair: a GPU's job.
//!
//! [`plot`] draws the figures of the study and of the other `ghnq` commands (PNG and SVG).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod augment;
pub mod error;
pub mod grid;
pub mod layerwise;
pub mod metrics;
pub mod plot;
pub mod plots;
pub mod range_precision;
pub mod run;
pub mod table;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use burn::tensor::Device;

pub use error::{Result, StudyError};

use ghnq_core::cnn::init::Initializer;
use grid::{Pair, Shard};
use run::{Recipe, RunProgress, RunResult, Status, StudyData};

/// What `ghnq study init` runs.
#[derive(Debug, Clone)]
pub struct StudyPlan {
    /// The recipe.
    pub recipe: Recipe,
    /// Architectures.
    pub archs: Vec<String>,
    /// Initialisers.
    pub inits: Vec<Initializer>,
    /// This process's shard of the grid.
    pub shard: Shard,
    /// Output directory.
    pub out: PathBuf,
    /// Data-set directory override.
    pub data_dir: Option<PathBuf>,
}

impl StudyPlan {
    /// This shard's pairs, in grid order.
    pub fn pairs(&self) -> Vec<Pair> {
        self.shard.select(&grid::pairs(&self.archs, &self.inits))
    }
}

/// What the grid reports while it runs (progress bars, logs).
pub trait GridProgress: RunProgress {
    /// The shard has `total` pairs, `done` of them already finished.
    fn grid(&mut self, total: usize, done: usize);
    /// `pair` was finished before and is skipped.
    fn skipped(&mut self, pair: &Pair, result: &RunResult);
    /// `pair` ended now.
    fn finished(&mut self, pair: &Pair, result: &RunResult);
}

/// Counts of one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GridSummary {
    /// Pairs in this shard.
    pub pairs: usize,
    /// Finished before this invocation (skipped).
    pub skipped: usize,
    /// Run now.
    pub ran: usize,
    /// Of those run now: diverged.
    pub diverged: usize,
    /// Of those run now: failed to export.
    pub failed: usize,
    /// Plots that could not be drawn (e.g. the font is missing), one message each.
    pub plot_warnings: Vec<String>,
}

/// Run every unfinished pair of the plan's shard, writing each record as soon as it ends (a
/// crash loses at most the run in progress), then the tables of everything in the directory.
pub fn run_grid(
    plan: &StudyPlan,
    device: &Device,
    progress: &mut dyn GridProgress,
) -> Result<GridSummary> {
    plan.recipe.validate()?;
    run::check_recipe(&plan.out, &plan.recipe)?;
    let pairs = plan.pairs();
    let mut todo = Vec::new();
    let mut summary = GridSummary {
        pairs: pairs.len(),
        ..GridSummary::default()
    };
    let mut done = Vec::new();
    for p in &pairs {
        match run::finished(&plan.out, p, &plan.recipe)? {
            Some(r) => done.push((p.clone(), r)),
            None => todo.push(p.clone()),
        }
    }
    summary.skipped = done.len();
    progress.grid(pairs.len(), done.len());
    for (p, r) in &done {
        progress.skipped(p, r);
    }
    if !todo.is_empty() {
        let data = StudyData::load(&plan.recipe, plan.data_dir.as_deref())?;
        run::write_recipe(&plan.out, &plan.recipe)?;
        for p in &todo {
            let r = run::run_pair(p, &plan.recipe, &data, device, progress)?;
            run::save(&plan.out, &r)?;
            summary.ran += 1;
            summary.diverged += usize::from(r.status == Status::Diverged);
            summary.failed += usize::from(r.status == Status::Failed);
            progress.finished(p, &r);
        }
    }
    let results = write_tables(&plan.out)?;
    summary.plot_warnings = write_plots(&plan.out, &results);
    Ok(summary)
}

/// Assemble the tables from every record in `out`; returns the records.
pub fn write_tables(out: &Path) -> Result<Vec<RunResult>> {
    let results = run::load_results(out)?;
    std::fs::create_dir_all(out).map_err(error::io("creating", out))?;
    table::write_all(out, &results)?;
    Ok(results)
}

/// Draw `layerwise/<Arch>__<Init>.{png,svg}` and its Fig. 6 overlay
/// (`<Arch>__<Init>-overlay.{png,svg}`) for every finished record that lacks them; returns one
/// message per plot that could not be drawn (the tables do not depend on them).
pub fn write_plots(out: &Path, results: &[RunResult]) -> Vec<String> {
    let mut warnings = Vec::new();
    let drawn = |stem: &Path| {
        crate::plot::with_suffix(stem, "png").exists()
            && crate::plot::with_suffix(stem, "svg").exists()
    };
    for r in results.iter().filter(|r| !r.layers.is_empty()) {
        let Some(pair) = r.pair() else { continue };
        let stem = run::layerwise_path(out, &pair).with_extension("");
        if let Some(dir) = stem.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            warnings.push(format!("creating {}: {e}", dir.display()));
            continue;
        }
        if !drawn(&stem)
            && let Err(e) = plots::layerwise(r, &stem)
        {
            warnings.push(format!("{e:#}"));
        }
        if !drawn(&plots::overlay_stem(&stem))
            && let Err(e) = plots::layerwise_overlay(r, &stem)
        {
            warnings.push(format!("{e:#}"));
        }
    }
    warnings
}
