//! Tables 1 and 2 of the seed paper from the run records of an output directory (CSV with the
//! paper's column names first, and markdown), and the spread of QUINT8 accuracy across
//! initialisers per architecture. Diverged runs are left out of the tables, as the paper does,
//! and listed under them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Result, io};

use super::grid::{FIG1, FIG2};
use super::run::{RunResult, Status};
use ghnq_core::cnn::init::Initializer;
use ghnq_core::table::{Align, Table};

/// The paper's columns, then ours.
pub const COLUMNS: [&str; 10] = [
    "Network Architecture",
    "FP32 Accuracy",
    "QUINT8 Accuracy",
    "QMSE",
    "QCE",
    "Percent Accuracy Decrease",
    "QUINT8 Accuracy (sim)",
    "Percent Accuracy Decrease (sim)",
    "Final Train Loss",
    "Steps",
];

/// Sort key: the architecture's place in Fig. 1/2, then the initialiser's in the paper.
fn order(r: &RunResult) -> (usize, usize, String, String) {
    let a = FIG1
        .iter()
        .chain(&FIG2)
        .position(|n| *n == r.arch)
        .unwrap_or(usize::MAX);
    let i = r
        .init
        .parse::<Initializer>()
        .ok()
        .and_then(|i| Initializer::ALL.iter().position(|j| *j == i))
        .unwrap_or(usize::MAX);
    (a, i, r.arch.clone(), r.init.clone())
}

fn sorted<'a>(results: impl Iterator<Item = &'a RunResult>) -> Vec<&'a RunResult> {
    let mut v: Vec<&RunResult> = results.collect();
    v.sort_by_key(|r| order(r));
    v
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// The cells of one finished run, in [`COLUMNS`] order.
fn cells(r: &RunResult) -> Option<[String; 10]> {
    let e = r.eval.as_ref()?;
    Some([
        format!("{}_{}", r.arch, r.init),
        format!("{:.2}", e.fp32_top1),
        format!("{:.2}", e.quint8_int_top1),
        format!("{:.3e}", e.qmse),
        format!("{:.4}", e.qce),
        opt(e.percent_decrease, 2),
        format!("{:.2}", e.quint8_sim_top1),
        opt(e.percent_decrease_sim, 2),
        opt(r.final_loss, 4),
        r.steps_done.to_string(),
    ])
}

/// The finished runs of table `table` (1 or 2).
pub fn rows(results: &[RunResult], table: u8) -> Vec<&RunResult> {
    sorted(
        results
            .iter()
            .filter(|r| r.table == Some(table) && r.status == Status::Finished && r.eval.is_some()),
    )
}

/// The runs of table `table` left out (diverged) or failed.
fn left_out(results: &[RunResult], table: u8, status: Status) -> Vec<&RunResult> {
    sorted(
        results
            .iter()
            .filter(|r| r.table == Some(table) && r.status == status),
    )
}

/// Table `table`'s finished runs.
fn table_of(results: &[RunResult], table: u8) -> Table {
    let mut t = Table::new(COLUMNS);
    for c in rows(results, table).into_iter().filter_map(cells) {
        t.push(c);
    }
    t
}

/// Table `table` as CSV.
pub fn csv(results: &[RunResult], table: u8) -> String {
    table_of(results, table).csv()
}

/// Table `table` as markdown, with the left-out runs below it.
pub fn markdown(results: &[RunResult], table: u8) -> String {
    let title = match table {
        1 => "Table 1: weight initialisation and quantized accuracy, simple conv blocks (Fig. 1)",
        _ => "Table 2: weight initialisation and quantized accuracy, complex blocks (Fig. 2)",
    };
    let mut s = format!("### {title}\n\n");
    let recipe = results.iter().find(|r| r.table == Some(table)).map(|r| {
        format!(
            "{} epoch(s) of {} training images of {}, batch {}, lr {} (×{} at {:?} of training); {} test images. QUINT8 = integer runtime; (sim) = fake-quantized simulation. Accuracies and decreases in %.\n\n",
            r.recipe.epochs,
            r.train_images,
            r.recipe.dataset,
            r.recipe.batch,
            r.recipe.lr,
            r.recipe.lr_factor,
            r.recipe.milestones,
            r.eval.as_ref().map_or(r.recipe.test_images, |e| e.test_images)
        )
    });
    s.push_str(&recipe.unwrap_or_default());
    let mut align = [Align::Right; COLUMNS.len()];
    align[0] = Align::Left;
    s.push_str(&table_of(results, table).aligned(&align).markdown());
    let diverged = left_out(results, table, Status::Diverged);
    if !diverged.is_empty() {
        let _ = writeln!(
            s,
            "\nLeft out (diverged): {}",
            diverged
                .iter()
                .map(|r| {
                    let why = r
                        .divergence
                        .as_ref()
                        .map(|d| format!(" (step {}: {})", d.step, d.reason))
                        .unwrap_or_default();
                    format!("{}_{}{why}", r.arch, r.init)
                })
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let failed = left_out(results, table, Status::Failed);
    if !failed.is_empty() {
        let _ = writeln!(
            s,
            "\nFailed to export: {}",
            failed
                .iter()
                .map(|r| format!(
                    "{}_{} ({})",
                    r.arch,
                    r.init,
                    r.error.as_deref().unwrap_or("?")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    s
}

/// The spread of QUINT8 accuracy across initialisers of one architecture.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Spread {
    /// Architecture.
    pub arch: String,
    /// Finished runs.
    pub finished: usize,
    /// Diverged runs.
    pub diverged: usize,
    /// Failed runs.
    pub failed: usize,
    /// Smallest QUINT8 (integer runtime) top-1.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one run).
    pub std: f64,
    /// Initialiser of the largest.
    pub best: String,
    /// Initialiser of the smallest.
    pub worst: String,
    /// Mean FP32 top-1 of the same runs.
    pub fp32_mean: f64,
    /// Mean relative accuracy decrease FP32 → QUINT8 (%), the paper's measure of fragility,
    /// and its standard error over the runs (NaN for fewer than two).
    pub decrease_mean: f64,
    /// See `decrease_mean`.
    pub decrease_se: f64,
}

/// One [`Spread`] per architecture with any record, in figure order.
pub fn spread(results: &[RunResult]) -> Vec<Spread> {
    let mut archs: Vec<&str> = Vec::new();
    for r in sorted(results.iter()) {
        if !archs.contains(&r.arch.as_str()) {
            archs.push(&r.arch);
        }
    }
    archs
        .into_iter()
        .map(|arch| {
            let all: Vec<&RunResult> = results.iter().filter(|r| r.arch == arch).collect();
            let ok: Vec<(&RunResult, f64, f64)> = all
                .iter()
                .filter(|r| r.status == Status::Finished)
                .filter_map(|r| {
                    r.eval
                        .as_ref()
                        .map(|e| (*r, e.quint8_int_top1, e.fp32_top1))
                })
                .collect();
            let count = |s: Status| all.iter().filter(|r| r.status == s).count();
            let n = ok.len() as f64;
            let (mut min, mut max) = (f64::NAN, f64::NAN);
            let (mut best, mut worst) = (String::new(), String::new());
            for &(r, q, _) in &ok {
                if max.is_nan() || q > max {
                    max = q;
                    best = r.init.clone();
                }
                if min.is_nan() || q < min {
                    min = q;
                    worst = r.init.clone();
                }
            }
            let mean = ok.iter().map(|x| x.1).sum::<f64>() / n;
            let std = if ok.len() > 1 {
                (ok.iter().map(|x| (x.1 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else if ok.len() == 1 {
                0.0
            } else {
                f64::NAN
            };
            let decreases: Vec<f64> = ok
                .iter()
                .filter_map(|(r, _, _)| r.eval.as_ref()?.percent_decrease)
                .collect();
            let (decrease_mean, decrease_se) = mean_se(&decreases);
            Spread {
                arch: arch.to_string(),
                finished: ok.len(),
                diverged: count(Status::Diverged),
                failed: count(Status::Failed),
                min,
                max,
                mean,
                std,
                best,
                worst,
                fp32_mean: ok.iter().map(|x| x.2).sum::<f64>() / n,
                decrease_mean,
                decrease_se,
            }
        })
        .collect()
}

/// Mean and standard error of the mean (NaN where undefined).
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let se = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
    } else {
        f64::NAN
    };
    (mean, se)
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "-".into()
    }
}

/// The spread's columns.
const SPREAD_COLUMNS: [&str; 13] = [
    "Network Architecture",
    "Finished",
    "Diverged",
    "Failed",
    "QUINT8 Min",
    "QUINT8 Max",
    "QUINT8 Mean",
    "QUINT8 Std",
    "Best Init",
    "Worst Init",
    "FP32 Mean",
    "Decrease Mean",
    "Decrease SE",
];

/// The spread as a table with the columns `head`.
fn spread_table(spread: &[Spread], head: [&str; 13]) -> Table {
    let mut t = Table::new(head);
    for p in spread {
        t.push([
            p.arch.clone(),
            p.finished.to_string(),
            p.diverged.to_string(),
            p.failed.to_string(),
            num(p.min),
            num(p.max),
            num(p.mean),
            num(p.std),
            p.best.clone(),
            p.worst.clone(),
            num(p.fp32_mean),
            num(p.decrease_mean),
            num(p.decrease_se),
        ]);
    }
    t
}

/// The spread as CSV.
pub fn spread_csv(spread: &[Spread]) -> String {
    spread_table(spread, SPREAD_COLUMNS).csv()
}

/// The spread as markdown.
pub fn spread_markdown(spread: &[Spread]) -> String {
    use Align::{Left, Right};
    let head = [
        "Network Architecture",
        "Finished",
        "Diverged",
        "Failed",
        "Min",
        "Max",
        "Mean",
        "Std",
        "Best",
        "Worst",
        "FP32 Mean",
        "Decrease",
        "± s.e.",
    ];
    let align = [
        Left, Right, Right, Right, Right, Right, Right, Right, Left, Left, Right, Right, Right,
    ];
    format!(
        "### Spread of QUINT8 accuracy (integer runtime, %) across initialisers\n\n\
         Decrease: the mean relative accuracy decrease FP32 → QUINT8 over the finished runs (%), \
         the paper's measure of a block's fragility under quantization.\n\n{}",
        spread_table(spread, head).aligned(&align).markdown()
    )
}

/// Write `table1.{csv,md}`, `table2.{csv,md}` (when they have any record),
/// `spread.{csv,md}` and `range_precision.{csv,md}` into `out`, atomically; returns the paths
/// written.
pub fn write_all(out: &Path, results: &[RunResult]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        let p = out.join(name);
        ghnq_core::atomic::write(&p, text.as_bytes()).map_err(io("writing", &p))?;
        written.push(p);
        Ok(())
    };
    for t in [1u8, 2] {
        if results.iter().any(|r| r.table == Some(t)) {
            put(&format!("table{t}.csv"), csv(results, t))?;
            put(&format!("table{t}.md"), markdown(results, t))?;
        }
    }
    let sp = spread(results);
    put("spread.csv", spread_csv(&sp))?;
    put("spread.md", spread_markdown(&sp))?;
    let archs: Vec<&str> = FIG1.iter().chain(&FIG2).copied().collect();
    let rp = crate::range_precision::rows(results, &archs);
    put("range_precision.csv", crate::range_precision::csv(&rp))?;
    put("range_precision.md", crate::range_precision::markdown(&rp))?;
    Ok(written)
}
