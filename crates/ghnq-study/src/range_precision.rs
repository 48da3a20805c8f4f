//! The paper's Fig. 6 finding as a number: "spikes in a layer's range coincide with drops in its
//! precision". Per trained net, the Spearman rank correlation across its layers between a
//! layer's range and its precision ([`crate::layerwise`]), for the BN-folded weights and for the
//! output activations (the range widened to contain 0, which their precision is measured
//! against); per architecture, the mean correlation with its standard error and how many nets
//! show a negative one. A finding that holds gives means well below 0 in most nets.

use crate::layerwise::LayerStats;
use crate::run::{RunResult, Status};
use ghnq_core::table::{Align, Table};

/// Spearman's rank correlation of `a` and `b` (average ranks for ties); `None` for fewer than
/// three pairs or a constant side.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 3 || a.iter().chain(b).any(|v| !v.is_finite()) {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = (a.len() as f64 - 1.0) / 2.0;
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        num += (x - mean) * (y - mean);
        da += (x - mean).powi(2);
        db += (y - mean).powi(2);
    }
    (da > 0.0 && db > 0.0).then(|| num / (da * db).sqrt())
}

/// 0-based ranks, ties sharing their average rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut out = vec![0.0; v.len()];
    let mut k = 0;
    while k < order.len() {
        let mut end = k + 1;
        while end < order.len() && v[order[end]] == v[order[k]] {
            end += 1;
        }
        let avg = (k + end - 1) as f64 / 2.0;
        for &i in &order[k..end] {
            out[i] = avg;
        }
        k = end;
    }
    out
}

/// One net's two correlations: weights, activations.
pub fn net(layers: &[LayerStats]) -> (Option<f64>, Option<f64>) {
    let col = |f: &dyn Fn(&LayerStats) -> f64| layers.iter().map(f).collect::<Vec<f64>>();
    let w = spearman(
        &col(&|l| f64::from(l.w_max) - f64::from(l.w_min)),
        &col(&|l| l.w_precision),
    );
    let a = spearman(
        &col(&|l| f64::from(l.act_max.max(0.0)) - f64::from(l.act_min.min(0.0))),
        &col(&|l| l.act_precision),
    );
    (w, a)
}

/// Mean, standard error and count of negatives of some correlations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Nets with a correlation.
    pub nets: usize,
    /// Mean correlation.
    pub mean: f64,
    /// Its standard error (NaN below two nets).
    pub se: f64,
    /// Nets whose correlation is below 0.
    pub negative: usize,
}

impl Summary {
    fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let se = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / n.sqrt()
        } else {
            f64::NAN
        };
        Self {
            nets: values.len(),
            mean,
            se,
            negative: values.iter().filter(|&&v| v < 0.0).count(),
        }
    }

    fn cell(&self) -> String {
        if self.nets == 0 {
            return "-".into();
        }
        format!(
            "{:+.2} ± {:.2} ({} of {} < 0)",
            self.mean, self.se, self.negative, self.nets
        )
    }
}

/// One row: an architecture (or "all"), its weights' and activations' summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Architecture, or `all`.
    pub arch: String,
    /// Weight range against weight precision.
    pub weights: Summary,
    /// Activation range against activation precision.
    pub activations: Summary,
}

/// A row per architecture of the finished runs with layerwise records, in the order of
/// `archs`, then one over all of them.
pub fn rows(results: &[RunResult], archs: &[&str]) -> Vec<Row> {
    let finished: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.status == Status::Finished && !r.layers.is_empty())
        .collect();
    let row = |arch: &str, runs: &[&RunResult]| {
        let (w, a): (Vec<_>, Vec<_>) = runs.iter().map(|r| net(&r.layers)).unzip();
        Row {
            arch: arch.to_string(),
            weights: Summary::of(&w.into_iter().flatten().collect::<Vec<_>>()),
            activations: Summary::of(&a.into_iter().flatten().collect::<Vec<_>>()),
        }
    };
    let mut out: Vec<Row> = archs
        .iter()
        .filter_map(|arch| {
            let runs: Vec<&RunResult> = finished
                .iter()
                .copied()
                .filter(|r| r.arch == *arch)
                .collect();
            (!runs.is_empty()).then(|| row(arch, &runs))
        })
        .collect();
    if !finished.is_empty() {
        out.push(row("all", &finished));
    }
    out
}

fn table(rows: &[Row]) -> Table {
    let mut t = Table::new([
        "Network Architecture",
        "Weights: range vs precision (Spearman)",
        "Activations: range vs precision (Spearman)",
    ]);
    for r in rows {
        t.push([r.arch.clone(), r.weights.cell(), r.activations.cell()]);
    }
    t
}

/// The rows as CSV.
pub fn csv(rows: &[Row]) -> String {
    table(rows).csv()
}

/// The rows as markdown, with what they measure.
pub fn markdown(rows: &[Row]) -> String {
    use Align::{Left, Right};
    format!(
        "### Range against precision across layers (the paper's Fig. 6 finding)\n\n\
         Per net, Spearman's rank correlation across its layers between a layer's range and its \
         precision; the mean over the nets ± its standard error, and how many nets correlate \
         negatively (a spike in range with a drop in precision).\n\n{}",
        table(rows).aligned(&[Left, Right, Right]).markdown()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_tied_and_degenerate_series() {
        let up = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(spearman(&up, &[10.0, 20.0, 30.0, 40.0]), Some(1.0));
        assert_eq!(spearman(&up, &[4.0, 3.0, 2.0, 1.0]), Some(-1.0));
        // Monotone but not linear: still ±1.
        assert_eq!(spearman(&up, &[1.0, 10.0, 100.0, 1e4]), Some(1.0));
        // Ties take their average rank: ranks 0, 1.5, 1.5, 3 against 0, 1, 2, 3.
        let r = spearman(&up, &[1.0, 2.0, 2.0, 3.0]).unwrap();
        assert!((r - 0.9486832980505138).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&up, &[5.0; 4]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[2.0, 1.0]), None);
        assert_eq!(spearman(&up, &[1.0, f64::NAN, 2.0, 3.0]), None);
    }

    #[test]
    fn summary_counts_negatives_and_its_standard_error() {
        let s = Summary::of(&[-0.5, -0.3, 0.2]);
        assert_eq!((s.nets, s.negative), (3, 2));
        assert!((s.mean + 0.2).abs() < 1e-12);
        // Sample std 0.3606, over sqrt(3).
        assert!((s.se - 0.2081665999466133).abs() < 1e-12, "{}", s.se);
        assert_eq!(s.cell(), "-0.20 ± 0.21 (2 of 3 < 0)");
    }
}
