//! The paper's Tables 3–5: per-net accuracies at several bit-widths, aggregated per split and
//! bit-width as mean ± standard error and max, from the float simulation and from the integer
//! runtime, with the per-net quantization errors (QMSE, QCE).

use ghnq_core::table::Table;
use ghnq_core::train::mean_se_max;

/// One net at one bit-width on one path.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NetResult {
    /// Split name.
    pub split: String,
    /// Net name.
    pub net: String,
    /// `float` or a precision (`w4a4`).
    pub bits: String,
    /// `float`, `sim` (quantized float simulation) or `int` (integer runtime).
    pub runtime: String,
    /// Top-1 (%).
    pub top1: f64,
    /// Top-5 (%).
    pub top5: f64,
    /// QMSE against the float net (quantized rows only).
    pub qmse: Option<f64>,
    /// QCE against the float net (quantized rows only).
    pub qce: Option<f64>,
    /// Top-1 agreement of simulation and runtime (%; quantized rows only).
    pub agreement: Option<f64>,
}

#[cfg(test)]
impl NetResult {
    /// A result with only what tables and plots of accuracy read (top-5 90 %, no errors).
    pub(crate) fn top1_only(split: &str, net: &str, bits: &str, path: &str, top1: f64) -> Self {
        NetResult {
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
}

/// Mean, standard error and max.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Standard error of the mean.
    pub se: f64,
    /// Max.
    pub max: f64,
}

impl Stat {
    /// Mean, standard error and max of `v`.
    pub(crate) fn of(v: &[f64]) -> Stat {
        let (mean, se, max) = mean_se_max(v);
        Stat { mean, se, max }
    }
}

/// One row of a table: a split at a bit-width on a path.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// Split.
    pub split: String,
    /// Bits.
    pub bits: String,
    /// Path.
    pub runtime: String,
    /// Nets aggregated.
    pub nets: usize,
    /// Top-1.
    pub top1: Stat,
    /// Top-5.
    pub top5: Stat,
    /// Mean QMSE.
    pub qmse: Option<f64>,
    /// Mean QCE.
    pub qce: Option<f64>,
    /// Mean top-1 agreement of simulation and runtime.
    pub agreement: Option<f64>,
}

fn mean_of(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = v.flatten().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Aggregate per (split, bits, runtime), in first-seen order.
pub fn aggregate(results: &[NetResult]) -> Vec<Row> {
    let mut keys: Vec<(&str, &str, &str)> = Vec::new();
    for r in results {
        let k = (r.split.as_str(), r.bits.as_str(), r.runtime.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(split, bits, runtime)| {
            let rs: Vec<&NetResult> = results
                .iter()
                .filter(|r| r.split == split && r.bits == bits && r.runtime == runtime)
                .collect();
            let t1: Vec<f64> = rs.iter().map(|r| r.top1).collect();
            let t5: Vec<f64> = rs.iter().map(|r| r.top5).collect();
            Row {
                split: split.into(),
                bits: bits.into(),
                runtime: runtime.into(),
                nets: rs.len(),
                top1: Stat::of(&t1),
                top5: Stat::of(&t5),
                qmse: mean_of(rs.iter().map(|r| r.qmse)),
                qce: mean_of(rs.iter().map(|r| r.qce)),
                agreement: mean_of(rs.iter().map(|r| r.agreement)),
            }
        })
        .collect()
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// The columns of the aggregated table in the README.
const MARKDOWN_HEAD: [&str; 9] = [
    "split",
    "bits",
    "path",
    "nets",
    "top-1 % (mean ± s.e.; max)",
    "top-5 % (mean ± s.e.; max)",
    "sim/int top-1 agreement %",
    "QMSE",
    "QCE",
];
/// The per-net CSV's header (`ghnq eval --csv`, read back by [`parse_csv`]).
const CSV_HEAD: [&str; 9] = [
    "split",
    "net",
    "bits",
    "path",
    "top1",
    "top5",
    "qmse",
    "qce",
    "agreement",
];

/// One aggregated row's cells; accuracies with `digits` decimals.
fn cells(r: &Row, digits: usize) -> [String; 9] {
    let stat = |s: &Stat| {
        format!(
            "{:.digits$} ± {:.digits$}; {:.digits$}",
            s.mean, s.se, s.max
        )
    };
    [
        r.split.clone(),
        r.bits.clone(),
        r.runtime.clone(),
        r.nets.to_string(),
        stat(&r.top1),
        stat(&r.top5),
        opt(r.agreement, digits),
        opt(r.qmse, 4),
        opt(r.qce, 3),
    ]
}

/// A plain-text table for the terminal (minimum column widths, so tables of several runs line
/// up).
pub fn text(rows: &[Row]) -> String {
    let stat = |s: &Stat| format!("{:>6.2} ± {:>4.2}; {:>6.2}", s.mean, s.se, s.max);
    let mut t = Table::new([
        "split",
        "bits",
        "path",
        "nets",
        "top-1 % (mean ± se; max)",
        "top-5 % (mean ± se; max)",
        "agree %",
        "QMSE",
        "QCE",
    ])
    .labels_then_numbers(3)
    .min_widths(&[10, 6, 7, 4, 22, 22, 7, 8, 6]);
    for r in rows {
        t.push([
            r.split.clone(),
            r.bits.clone(),
            r.runtime.clone(),
            r.nets.to_string(),
            stat(&r.top1),
            stat(&r.top5),
            opt(r.agreement, 2),
            opt(r.qmse, 4),
            opt(r.qce, 3),
        ]);
    }
    t.text()
}

/// The same as a markdown table (README-ready).
pub fn markdown(rows: &[Row]) -> String {
    let mut t = Table::new(MARKDOWN_HEAD);
    for r in rows {
        t.push(cells(r, 1));
    }
    t.markdown()
}

/// Per-net results as CSV.
pub fn csv(results: &[NetResult]) -> String {
    let mut t = Table::new(CSV_HEAD);
    for r in results {
        t.push([
            r.split.clone(),
            r.net.clone(),
            r.bits.clone(),
            r.runtime.clone(),
            format!("{:.4}", r.top1),
            format!("{:.4}", r.top5),
            opt(r.qmse, 6),
            opt(r.qce, 6),
            opt(r.agreement, 4),
        ]);
    }
    t.csv()
}

/// Read back [`csv`] output (one shard of an evaluation), for merging shards.
pub fn parse_csv(text: &str) -> Result<Vec<NetResult>, String> {
    let (head, rows) = ghnq_core::table::parse_csv(text)?;
    if head != CSV_HEAD {
        return Err(format!(
            "not a `ghnq eval --csv` file (header '{}')",
            head.join(",")
        ));
    }
    let num = |v: &str, line: usize| -> Result<Option<f64>, String> {
        if v == "-" {
            return Ok(None);
        }
        v.parse::<f64>()
            .map(Some)
            .map_err(|_| format!("line {line}: '{v}' is not a number"))
    };
    rows.iter()
        .enumerate()
        .map(|(k, f)| {
            let line = k + 2;
            let req = |v: &str| num(v, line)?.ok_or(format!("line {line}: missing accuracy"));
            Ok(NetResult {
                split: f[0].clone(),
                net: f[1].clone(),
                bits: f[2].clone(),
                runtime: f[3].clone(),
                top1: req(&f[4])?,
                top5: req(&f[5])?,
                qmse: num(&f[6], line)?,
                qce: num(&f[7], line)?,
                agreement: num(&f[8], line)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(split: &str, bits: &str, path: &str, top1: f64) -> NetResult {
        NetResult {
            split: split.into(),
            net: "n".into(),
            bits: bits.into(),
            runtime: path.into(),
            top1,
            top5: top1 + 10.0,
            qmse: (bits != "float").then_some(0.5),
            qce: None,
            agreement: None,
        }
    }

    #[test]
    fn rows_group_by_split_bits_and_path_in_order() {
        let res = [
            r("test", "float", "float", 50.0),
            r("test", "w4a4", "int", 30.0),
            r("test", "float", "float", 60.0),
            r("deep", "float", "float", 40.0),
        ];
        let rows = aggregate(&res);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].nets, rows[0].top1.mean, rows[0].top1.max),
            (2, 55.0, 60.0)
        );
        assert_eq!(rows[1].bits, "w4a4");
        assert_eq!(rows[1].qmse, Some(0.5));
        assert_eq!(rows[0].qmse, None);
        assert_eq!(rows[2].split, "deep");
        let md = markdown(&rows);
        assert_eq!(md.lines().count(), 5);
        assert!(
            md.contains("| test | float | float | 2 | 55.0 ± 5.0; 60.0 |"),
            "{md}"
        );
        assert_eq!(csv(&res).lines().count(), 5);
        let back = parse_csv(&csv(&res)).unwrap();
        assert_eq!(aggregate(&back), rows);
        assert!(
            parse_csv("a,b\n")
                .unwrap_err()
                .contains("not a `ghnq eval --csv` file")
        );
    }
}
