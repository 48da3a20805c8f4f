//! Distribution statistics over a set of nets: parameters, MACs, depth, node count and op mix, printed
//! as a compact min / median / mean / max table.

use std::collections::BTreeMap;
use std::fmt;

use super::ir::{Net, OP_KINDS};

/// min / median / mean / max of one quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Smallest value.
    pub min: f64,
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// Summary of `values`; all zeros for an empty slice.
    pub fn of(values: &[f64]) -> Summary {
        if values.is_empty() {
            return Summary {
                min: 0.0,
                median: 0.0,
                mean: 0.0,
                max: 0.0,
            };
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Summary {
            min: v[0],
            median,
            mean: v.iter().sum::<f64>() / n as f64,
            max: v[n - 1],
        }
    }
}

/// Statistics of a set of nets.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Number of nets.
    pub count: usize,
    /// Trained parameters per net.
    pub params: Summary,
    /// Multiply-accumulates per inference.
    pub macs: Summary,
    /// Conv + linear layers on the longest path.
    pub depth: Summary,
    /// Nodes per net.
    pub nodes: Summary,
    /// Nets with BatchNorm.
    pub with_bn: usize,
    /// Op kind ([`crate::Op::kind`]) → (total nodes over all nets, nets containing it).
    pub op_mix: BTreeMap<&'static str, (usize, usize)>,
}

impl Stats {
    /// Statistics over `nets`.
    pub fn of(nets: &[Net]) -> Stats {
        let col = |f: &dyn Fn(&Net) -> f64| nets.iter().map(f).collect::<Vec<f64>>();
        let mut op_mix: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
        for net in nets {
            let mut seen = BTreeMap::new();
            for node in &net.nodes {
                *seen.entry(node.op.kind()).or_insert(0usize) += 1;
            }
            for (k, n) in seen {
                let e = op_mix.entry(k).or_default();
                e.0 += n;
                e.1 += 1;
            }
        }
        Stats {
            count: nets.len(),
            params: Summary::of(&col(&|n| n.param_count() as f64)),
            macs: Summary::of(&col(&|n| n.macs() as f64)),
            depth: Summary::of(&col(&|n| n.depth() as f64)),
            nodes: Summary::of(&col(&|n| n.nodes.len() as f64)),
            with_bn: nets.iter().filter(|n| n.has_batch_norm()).count(),
            op_mix,
        }
    }
}

/// 1234567 → "1.23M", 25000 → "25.0K".
fn human(x: f64) -> String {
    match x.abs() {
        a if a >= 1e9 => format!("{:.2}G", x / 1e9),
        a if a >= 1e6 => format!("{:.2}M", x / 1e6),
        a if a >= 1e4 => format!("{:.1}K", x / 1e3),
        _ if x.fract() == 0.0 => format!("{x:.0}"),
        _ => format!("{x:.1}"),
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} nets, {} with BatchNorm", self.count, self.with_bn)?;
        writeln!(
            f,
            "{:<8} {:>9} {:>9} {:>9} {:>9}",
            "", "min", "median", "mean", "max"
        )?;
        for (name, s) in [
            ("params", self.params),
            ("MACs", self.macs),
            ("depth", self.depth),
            ("nodes", self.nodes),
        ] {
            writeln!(
                f,
                "{:<8} {:>9} {:>9} {:>9} {:>9}",
                name,
                human(s.min),
                human(s.median),
                human(s.mean),
                human(s.max)
            )?;
        }
        writeln!(f, "op mix (nodes per net, share of nets):")?;
        let n = self.count.max(1) as f64;
        for kind in OP_KINDS {
            if let Some(&(total, nets)) = self.op_mix.get(kind) {
                writeln!(
                    f,
                    "  {kind:<16} {:>7.1}  {:>5.1}%",
                    total as f64 / n,
                    100.0 * nets as f64 / n
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImageShape, predefined};

    #[test]
    fn summary_and_table() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(
            s,
            Summary {
                min: 1.0,
                median: 2.5,
                mean: 2.5,
                max: 4.0
            }
        );
        let nets = predefined::all(ImageShape::CIFAR10, 10).unwrap();
        let stats = Stats::of(&nets);
        assert_eq!(stats.count, nets.len());
        assert_eq!(stats.with_bn, 6);
        assert_eq!(stats.op_mix["linear"].1, nets.len());
        let table = stats.to_string();
        assert!(
            table.contains("params") && table.contains("dw_conv") && table.contains("median"),
            "{table}"
        );
        assert_eq!(human(78_042.0), "78.0K");
        assert_eq!(human(12_501_632.0), "12.50M");
    }
}
