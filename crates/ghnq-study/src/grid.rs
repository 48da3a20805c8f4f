//! The study's grid: the paper's eight architectures (Fig. 1: the VGG-like net with four conv
//! blocks; Fig. 2: the "complex block" nets) times the twelve initialisers, its file names, and
//! how it is split into shards.

use std::fmt;
use std::str::FromStr;

use ghnq_core::arch::predefined;
use ghnq_core::cnn::init::Initializer;

/// Fig. 1's simple-conv-block nets (Table 1).
pub const FIG1: [&str; 4] = [
    "Regular_Conv_With_BN",
    "Regular_Conv_No_BN",
    "DWS_Conv_With_BN",
    "DWS_Conv_No_BN",
];

/// Fig. 2's complex-block nets (Table 2).
pub const FIG2: [&str; 4] = [
    "Basic_Residual_With_BN",
    "Basic_Residual_No_BN",
    "MbNetV2_With_BN",
    "MbNetV2_No_BN",
];

/// The paper's table an architecture belongs to (1 or 2), `None` for other nets.
pub fn table_of(arch: &str) -> Option<u8> {
    if FIG1.contains(&arch) {
        Some(1)
    } else if FIG2.contains(&arch) {
        Some(2)
    } else {
        None
    }
}

/// Architectures from a list: `all` (both figures), `fig1`, `fig2`, or names of the paper's
/// nets (case-insensitive), comma-separated. Canonical names, in the given order, without
/// repeats.
pub fn parse_archs(items: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
    };
    for item in items.iter().flat_map(|s| s.split(',')) {
        let item = item.trim();
        match item.to_ascii_lowercase().as_str() {
            "" => {}
            "all" => FIG1.iter().chain(&FIG2).for_each(|n| push(n)),
            "fig1" | "table1" => FIG1.iter().for_each(|n| push(n)),
            "fig2" | "table2" => FIG2.iter().for_each(|n| push(n)),
            _ => {
                let name = FIG1
                    .iter()
                    .chain(&FIG2)
                    .find(|n| n.eq_ignore_ascii_case(item))
                    .ok_or_else(|| {
                        let other = if predefined::NAMES
                            .iter()
                            .any(|n| n.eq_ignore_ascii_case(item))
                        {
                            " (a predefined net, but not one of the study's)"
                        } else {
                            ""
                        };
                        format!(
                            "unknown architecture '{item}'{other}: all, fig1, fig2, or one of {}",
                            FIG1.iter()
                                .chain(&FIG2)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?;
                push(name);
            }
        }
    }
    if out.is_empty() {
        return Err("no architecture selected".into());
    }
    Ok(out)
}

/// Initialisers from a list: `all` or names, comma-separated, without repeats.
pub fn parse_inits(items: &[String]) -> Result<Vec<Initializer>, String> {
    let mut out: Vec<Initializer> = Vec::new();
    for item in items.iter().flat_map(|s| s.split(',')) {
        let item = item.trim();
        let add: Vec<Initializer> = match item.to_ascii_lowercase().as_str() {
            "" => Vec::new(),
            "all" => Initializer::ALL.to_vec(),
            _ => vec![item.parse()?],
        };
        for i in add {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    if out.is_empty() {
        return Err("no initialiser selected".into());
    }
    Ok(out)
}

/// One run of the study.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    /// Architecture name (one of [`FIG1`] or [`FIG2`]).
    pub arch: String,
    /// The initialiser of its convs after the first.
    pub init: Initializer,
}

impl Pair {
    /// `Arch__Init`: the run's file stem.
    pub fn id(&self) -> String {
        format!("{}__{}", self.arch, self.init)
    }

    /// `Arch_Init`: the row name of the paper's tables.
    pub fn row_name(&self) -> String {
        format!("{}_{}", self.arch, self.init)
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} × {}", self.arch, self.init)
    }
}

/// Every (architecture, initialiser) pair, architecture-major.
pub fn pairs(archs: &[String], inits: &[Initializer]) -> Vec<Pair> {
    archs
        .iter()
        .flat_map(|a| {
            inits.iter().map(|&init| Pair {
                arch: a.clone(),
                init,
            })
        })
        .collect()
}

/// Shard `index` of `count` (1-based), written `i/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1..=count.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole grid.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// The pairs of this shard: every `count`-th pair starting at `index − 1`, so each shard
    /// gets a mix of architectures (their costs differ) and the shards together cover the grid
    /// exactly once.
    pub fn select<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter(|(k, _)| k % self.count == self.index - 1)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `i/n` with 1 ≤ i ≤ n.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a shard: write i/n with 1 <= i <= n, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn architectures_parse() {
        assert_eq!(parse_archs(&s(&["all"])).unwrap().len(), 8);
        assert_eq!(parse_archs(&s(&["fig1"])).unwrap(), FIG1.to_vec());
        assert_eq!(
            parse_archs(&s(&["mbnetv2_no_bn,Regular_Conv_No_BN", "fig1"])).unwrap(),
            [
                "MbNetV2_No_BN",
                "Regular_Conv_No_BN",
                "Regular_Conv_With_BN",
                "DWS_Conv_With_BN",
                "DWS_Conv_No_BN"
            ]
        );
        let e = parse_archs(&s(&["ResNet8"])).unwrap_err();
        assert!(e.contains("not one of the study's"), "{e}");
        assert!(parse_archs(&s(&["VGG16"])).unwrap_err().contains("fig1"));
        assert!(parse_archs(&s(&[""])).is_err());
        for a in FIG1.iter().chain(&FIG2) {
            assert!(predefined::NAMES.contains(a), "{a} is a predefined net");
        }
    }

    #[test]
    fn initializers_parse() {
        assert_eq!(parse_inits(&s(&["all"])).unwrap().len(), 12);
        assert_eq!(
            parse_inits(&s(&["HeUni,glorotuni", "he_uni"])).unwrap(),
            [Initializer::HeUni, Initializer::GlorotUni]
        );
        assert!(parse_inits(&s(&["Zeros"])).is_err());
    }

    #[test]
    fn shards_cover_the_grid_once() {
        let grid = pairs(&s(&FIG1), &Initializer::ALL);
        assert_eq!(grid.len(), 48);
        assert_eq!(grid[13].id(), "Regular_Conv_No_BN__RandUni_Med");
        assert_eq!(grid[13].row_name(), "Regular_Conv_No_BN_RandUni_Med");
        for n in 1..=7 {
            let mut seen: Vec<Pair> = Vec::new();
            for i in 1..=n {
                let part = Shard { index: i, count: n }.select(&grid);
                assert!(part.len().abs_diff(grid.len() / n) <= 1);
                seen.extend(part);
            }
            assert_eq!(seen.len(), grid.len());
            for p in &grid {
                assert_eq!(seen.iter().filter(|q| *q == p).count(), 1);
            }
        }
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard { index: 2, count: 4 }.to_string(), "2/4");
        for bad in ["0/4", "5/4", "x", "1/0", "1"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
