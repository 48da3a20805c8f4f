//! Parameter sources side by side on the same nets: GHN-2's tables put the GHN's prediction
//! beside random initialisation and a net trained by SGD, and a fair comparison needs every
//! source measured on the same nets. Expensive baselines (an epoch of SGD per net) often cover
//! fewer nets than the GHN, so by default a row aggregates only the nets every source has.

use ghnq_core::table::Table;

use super::table::{NetResult, Stat};

/// Why sources cannot be put side by side.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SideBySideError {
    /// A source has two results for one net at one setting (overlapping shards, or one file
    /// given twice).
    #[error("source '{label}' has net {net} of split {split} ({bits} {runtime}) more than once")]
    Duplicate {
        /// The source.
        label: String,
        /// The split.
        split: String,
        /// The net.
        net: String,
        /// Bits.
        bits: String,
        /// Path.
        runtime: String,
    },
    /// A source without any result.
    #[error("source '{0}' has no results")]
    Empty(String),
}

/// The per-net results of one way of obtaining parameters (`ghnq eval --init …`).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    label: String,
    results: Vec<NetResult>,
}

impl Source {
    /// A labelled source; every (split, net, bits, path) must occur once.
    pub fn new(label: &str, results: Vec<NetResult>) -> Result<Source, SideBySideError> {
        if results.is_empty() {
            return Err(SideBySideError::Empty(label.into()));
        }
        for (i, r) in results.iter().enumerate() {
            if results[..i]
                .iter()
                .any(|o| key(o) == key(r) && o.net == r.net)
            {
                return Err(SideBySideError::Duplicate {
                    label: label.into(),
                    split: r.split.clone(),
                    net: r.net.clone(),
                    bits: r.bits.clone(),
                    runtime: r.runtime.clone(),
                });
            }
        }
        Ok(Source {
            label: label.into(),
            results,
        })
    }

    /// The label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Top-1 of `net` at `k`, if this source measured it.
    fn top1(&self, k: Key<'_>, net: &str) -> Option<f64> {
        self.results
            .iter()
            .find(|r| key(r) == k && r.net == net)
            .map(|r| r.top1)
    }

    /// The nets this source measured at `k`, in its order.
    fn nets(&self, k: Key<'_>) -> Vec<&str> {
        self.results
            .iter()
            .filter(|r| key(r) == k)
            .map(|r| r.net.as_str())
            .collect()
    }
}

/// Which nets a row aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nets {
    /// Only the nets every source that has the row measured (the fair comparison).
    Common,
    /// Every net each source measured (sources may then differ in their nets).
    All,
}

/// One source's aggregate in a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// Nets aggregated.
    pub nets: usize,
    /// Top-1 (%).
    pub top1: Stat,
}

/// One split at one bit setting and path, one cell per source (`None`: not measured there).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Split.
    pub split: String,
    /// Bits.
    pub bits: String,
    /// Path.
    pub runtime: String,
    /// One cell per source, in the sources' order.
    pub cells: Vec<Option<Cell>>,
}

impl Row {
    /// How the row is named on an axis or in a table: the split, plus the setting when quantized.
    pub fn name(&self) -> String {
        if self.bits == "float" {
            self.split.clone()
        } else {
            format!("{} {} {}", self.split, self.bits, self.runtime)
        }
    }
}

/// One net at one setting, one top-1 per source.
#[derive(Debug, Clone, PartialEq)]
pub struct NetRow {
    /// Split.
    pub split: String,
    /// Net.
    pub net: String,
    /// Bits.
    pub bits: String,
    /// Path.
    pub runtime: String,
    /// Top-1 (%) per source.
    pub top1: Vec<Option<f64>>,
}

type Key<'a> = (&'a str, &'a str, &'a str);

fn key(r: &NetResult) -> Key<'_> {
    (r.split.as_str(), r.bits.as_str(), r.runtime.as_str())
}

/// Every (split, bits, path) of any source, in first-seen order.
fn keys(sources: &[Source]) -> Vec<Key<'_>> {
    let mut keys = Vec::new();
    for r in sources.iter().flat_map(|s| &s.results) {
        if !keys.contains(&key(r)) {
            keys.push(key(r));
        }
    }
    keys
}

/// One row per (split, bits, path), aggregating the nets `nets` selects.
pub fn side_by_side(sources: &[Source], nets: Nets) -> Vec<Row> {
    keys(sources)
        .into_iter()
        .map(|k| {
            let per_source: Vec<Vec<&str>> = sources.iter().map(|s| s.nets(k)).collect();
            let common: Vec<&str> = per_source
                .iter()
                .find(|n| !n.is_empty())
                .map(|first| {
                    first
                        .iter()
                        .copied()
                        .filter(|net| {
                            per_source
                                .iter()
                                .all(|other| other.is_empty() || other.contains(net))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let cells = sources
                .iter()
                .zip(&per_source)
                .map(|(s, own)| {
                    let chosen = match nets {
                        Nets::Common => &common,
                        Nets::All => own,
                    };
                    let v: Vec<f64> = chosen.iter().filter_map(|n| s.top1(k, n)).collect();
                    (!v.is_empty()).then(|| Cell {
                        nets: v.len(),
                        top1: Stat::of(&v),
                    })
                })
                .collect();
            Row {
                split: k.0.into(),
                bits: k.1.into(),
                runtime: k.2.into(),
                cells,
            }
        })
        .collect()
}

/// One row per net measured by any source, with each source's top-1.
pub fn per_net(sources: &[Source]) -> Vec<NetRow> {
    let mut rows: Vec<NetRow> = Vec::new();
    for k in keys(sources) {
        let mut nets: Vec<&str> = Vec::new();
        for s in sources {
            for n in s.nets(k) {
                if !nets.contains(&n) {
                    nets.push(n);
                }
            }
        }
        rows.extend(nets.into_iter().map(|net| NetRow {
            split: k.0.into(),
            net: net.into(),
            bits: k.1.into(),
            runtime: k.2.into(),
            top1: sources.iter().map(|s| s.top1(k, net)).collect(),
        }));
    }
    rows
}

fn cell_text(c: &Option<Cell>) -> String {
    c.map_or("-".into(), |c| {
        format!(
            "{:.1} ± {:.1}; {:.1} ({})",
            c.top1.mean, c.top1.se, c.top1.max, c.nets
        )
    })
}

fn top1_text(v: &Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// A table of `head` columns and `body` rows (cells already formatted).
fn table(head: Vec<String>, body: impl Iterator<Item = Vec<String>>) -> Table {
    let mut t = Table::new(head);
    for row in body {
        t.push(row);
    }
    t
}

/// The columns that name a row, then one per source.
fn head(names: &[&str], sources: &[Source], what: &str) -> Vec<String> {
    names
        .iter()
        .map(|n| n.to_string())
        .chain(sources.iter().map(|src| match what {
            "" => src.label.clone(),
            _ => format!("{} {what}", src.label),
        }))
        .collect()
}

/// The rows' cells: the naming columns, then one per source.
fn row_cells(r: &Row) -> Vec<String> {
    [r.split.clone(), r.bits.clone(), r.runtime.clone()]
        .into_iter()
        .chain(r.cells.iter().map(cell_text))
        .collect()
}

/// A per-net row's cells.
fn net_row_cells(r: &NetRow) -> Vec<String> {
    [
        r.split.clone(),
        r.net.clone(),
        r.bits.clone(),
        r.runtime.clone(),
    ]
    .into_iter()
    .chain(r.top1.iter().map(top1_text))
    .collect()
}

/// A markdown table (README-ready): top-1 % as mean ± s.e.; max (nets) per source.
pub fn markdown(sources: &[Source], rows: &[Row]) -> String {
    table(
        head(
            &["split", "bits", "path"],
            sources,
            "top-1 % (mean ± s.e.; max (nets))",
        ),
        rows.iter().map(row_cells),
    )
    .markdown()
}

/// The per-net table as markdown.
pub fn per_net_markdown(sources: &[Source], rows: &[NetRow]) -> String {
    table(
        head(&["split", "net", "bits", "path"], sources, "top-1 %"),
        rows.iter().map(net_row_cells),
    )
    .markdown()
}

/// A plain-text table for the terminal: top-1 % as mean ± s.e.; max (nets) per source.
pub fn text(sources: &[Source], rows: &[Row]) -> String {
    let mut t = table(
        head(&["split", "bits", "path"], sources, ""),
        rows.iter().map(row_cells),
    );
    t = terminal(t, &[10, 6, 7], 26, sources.len());
    format!("top-1 % as mean ± se; max (nets)\n{}", t.text())
}

/// The per-net table for the terminal.
pub fn per_net_text(sources: &[Source], rows: &[NetRow]) -> String {
    let t = table(
        head(&["split", "net", "bits", "path"], sources, ""),
        rows.iter().map(net_row_cells),
    );
    terminal(t, &[10, 16, 6, 7], 10, sources.len()).text()
}

/// Label columns left-aligned at these widths, then one right-aligned column per source.
fn terminal(t: Table, labels: &[usize], width: usize, sources: usize) -> Table {
    let mut widths = labels.to_vec();
    widths.resize(labels.len() + sources, width);
    t.labels_then_numbers(labels.len()).min_widths(&widths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(split: &str, net: &str, top1: f64) -> NetResult {
        NetResult::top1_only(split, net, "float", "float", top1)
    }

    fn sources() -> Vec<Source> {
        let ghn = Source::new(
            "GHN",
            vec![
                r("test", "t0", 40.0),
                r("test", "t1", 20.0),
                r("test", "t2", 60.0),
                r("wide", "w0", 12.0),
            ],
        )
        .unwrap();
        let sgd = Source::new("SGD", vec![r("test", "t0", 80.0), r("test", "t2", 70.0)]).unwrap();
        vec![ghn, sgd]
    }

    #[test]
    fn common_nets_are_the_fair_comparison() {
        let rows = side_by_side(&sources(), Nets::Common);
        assert_eq!(rows.len(), 2);
        let test = &rows[0];
        assert_eq!(test.name(), "test");
        // t1 is missing from SGD, so neither source counts it.
        let ghn = test.cells[0].unwrap();
        assert_eq!((ghn.nets, ghn.top1.mean, ghn.top1.max), (2, 50.0, 60.0));
        let sgd = test.cells[1].unwrap();
        assert_eq!((sgd.nets, sgd.top1.mean), (2, 75.0));
        // SGD never measured wide: the GHN's wide nets stand alone.
        assert_eq!(rows[1].cells[0].unwrap().nets, 1);
        assert_eq!(rows[1].cells[1], None);
        let md = markdown(&sources(), &rows);
        assert!(
            md.contains("| test | float | float | 50.0 ± 10.0; 60.0 (2) | 75.0 ± 5.0; 80.0 (2) |"),
            "{md}"
        );
        assert!(
            md.contains("| wide | float | float | 12.0 ± 0.0; 12.0 (1) | - |"),
            "{md}"
        );
    }

    #[test]
    fn all_nets_keeps_each_sources_own() {
        let rows = side_by_side(&sources(), Nets::All);
        let ghn = rows[0].cells[0].unwrap();
        assert_eq!((ghn.nets, ghn.top1.mean), (3, 40.0));
        assert_eq!(rows[0].cells[1].unwrap().nets, 2);
    }

    #[test]
    fn per_net_rows_show_gaps() {
        let rows = per_net(&sources());
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].net, "t1");
        assert_eq!(rows[1].top1, vec![Some(20.0), None]);
        let md = per_net_markdown(&sources(), &rows);
        assert!(
            md.contains("| test | t1 | float | float | 20.0 | - |"),
            "{md}"
        );
        assert!(per_net_text(&sources(), &rows).contains("t2"));
        assert!(text(&sources(), &side_by_side(&sources(), Nets::Common)).contains("GHN"));
    }

    #[test]
    fn duplicates_and_empty_sources_are_errors() {
        let e = Source::new("SGD", vec![r("test", "t0", 1.0), r("test", "t0", 2.0)]).unwrap_err();
        assert!(e.to_string().contains("net t0 of split test"), "{e}");
        assert_eq!(
            Source::new("x", Vec::new()).unwrap_err(),
            SideBySideError::Empty("x".into())
        );
    }
}
