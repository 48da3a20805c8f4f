//! The architecture splits (paper §4.1, GHN_SPEC §1.8, §6.1), sized for MCUs.
//!
//! | split | generator | budget |
//! |---|---|---|
//! | `train` | 4..=10 cells, 1..=4 steps (≤ 2 beyond a 7..10 cell threshold), C ∈ {8..32}, BN on w.p. ½ | 250 K |
//! | `test` | same as `train`, unrelated seeds | 250 K |
//! | `deep` | 12..=24 cells, 1..=2 steps, up to 4 reductions | 1 M |
//! | `wide` | `test` with C ×4 (C ∈ {32..128}) | 4 M (params grow ~C²: 16 × 250 K) |
//! | `bn-free` | `test` with no BatchNorm anywhere | 250 K |
//! | `predefined` | hand-written nets of [`super::predefined`] | none |
//!
//! Net `i` of a split is `generate(config, "{split}-{i:06}", input, classes, net_seed(split, seed, i))`.

use std::fmt;
use std::str::FromStr;

use super::generator::{self, BnMode, GenerateError, GeneratorConfig, NetSpec};
use super::ir::{ImageShape, Net};
use super::predefined;

/// Default parameter budget of the in-distribution space: an int8 model fits 256 KB of flash.
pub const DEFAULT_BUDGET: usize = 250_000;

/// A named set of architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// In-distribution training nets.
    Train,
    /// In-distribution test nets (same generator, unrelated seeds).
    Test,
    /// Many more cells.
    Deep,
    /// Many more channels.
    Wide,
    /// No BatchNorm anywhere.
    BnFree,
    /// The hand-written nets of [`predefined::all`].
    Predefined,
}

impl Split {
    /// All splits, in display order.
    pub const ALL: [Split; 6] = [
        Split::Train,
        Split::Test,
        Split::Deep,
        Split::Wide,
        Split::BnFree,
        Split::Predefined,
    ];

    /// The CLI/file name of the split.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::Deep => "deep",
            Split::Wide => "wide",
            Split::BnFree => "bn-free",
            Split::Predefined => "predefined",
        }
    }

    /// Generator settings of the split; `None` for `predefined`.
    pub fn config(self) -> Option<GeneratorConfig> {
        let id = GeneratorConfig {
            cells: (4, 10),
            deep_threshold: vec![7, 8, 9, 10],
            steps: (1, 4),
            medium_steps: 2,
            channels: vec![8, 12, 16, 24, 32],
            stem_mult: vec![1, 2, 3],
            reductions: (1, 3),
            bn: BnMode::Random(0.5),
            hidden_fc: vec![None, None, Some(32), Some(64), Some(128)],
            budget: DEFAULT_BUDGET,
            max_attempts: 10_000,
        };
        Some(match self {
            Split::Train | Split::Test => id,
            Split::Deep => GeneratorConfig {
                cells: (12, 24),
                deep_threshold: vec![12],
                steps: (1, 2),
                reductions: (2, 4),
                budget: 1_000_000,
                ..id
            },
            Split::Wide => GeneratorConfig {
                channels: id.channels.iter().map(|c| c * 4).collect(),
                hidden_fc: vec![None, None, Some(128), Some(256), Some(512)],
                budget: 16 * DEFAULT_BUDGET,
                ..id
            },
            Split::BnFree => GeneratorConfig {
                bn: BnMode::Never,
                ..id
            },
            Split::Predefined => return None,
        })
    }

    /// Net `index` of the split for `input` images and `classes` outputs. For `predefined`, the
    /// `index`-th hand-written net (seed ignored).
    pub fn net(
        self,
        input: ImageShape,
        classes: usize,
        seed: u64,
        index: usize,
    ) -> Result<Net, SplitError> {
        match self.config() {
            None => predefined::all(input, classes)
                .map_err(SplitError::Predefined)?
                .into_iter()
                .nth(index)
                .ok_or(SplitError::OutOfRange {
                    split: self,
                    index,
                    len: predefined::NAMES.len(),
                }),
            Some(cfg) => Ok(self.generated(&cfg, input, classes, seed, index)?.0),
        }
    }

    /// Like [`Split::net`] for a generated split, also returning the sampled spec.
    pub fn generated(
        self,
        cfg: &GeneratorConfig,
        input: ImageShape,
        classes: usize,
        seed: u64,
        index: usize,
    ) -> Result<(Net, NetSpec), GenerateError> {
        let name = format!("{}-{index:06}", self.as_str());
        generator::generate(
            cfg,
            &name,
            input,
            classes,
            generator::net_seed(self.as_str(), seed, index as u64),
        )
    }

    /// The first `count` nets of the split (all predefined nets, at most `count`, for `predefined`).
    pub fn nets(
        self,
        input: ImageShape,
        classes: usize,
        seed: u64,
        count: usize,
    ) -> Result<Vec<Net>, SplitError> {
        match self.config() {
            None => {
                let mut all = predefined::all(input, classes).map_err(SplitError::Predefined)?;
                all.truncate(count);
                Ok(all)
            }
            Some(cfg) => (0..count)
                .map(|i| Ok(self.generated(&cfg, input, classes, seed, i)?.0))
                .collect(),
        }
    }
}

/// Failure to produce a split's net.
#[allow(missing_docs)] // The variants' fields are spelled out by their #[error] messages.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The generator failed.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// A predefined net does not fit the input shape.
    #[error("predefined net: {0}")]
    Predefined(super::ir::ArchError),
    /// Index past the end of a fixed split.
    #[error("split '{split}' has {len} nets; index {index} is out of range")]
    OutOfRange {
        split: Split,
        index: usize,
        len: usize,
    },
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Unknown split name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown split '{0}' (expected one of: train, test, deep, wide, bn-free, predefined)")]
pub struct ParseSplitError(pub String);

impl FromStr for Split {
    type Err = ParseSplitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        match norm.as_str() {
            "train" => Ok(Split::Train),
            "test" | "id" => Ok(Split::Test),
            "deep" => Ok(Split::Deep),
            "wide" => Ok(Split::Wide),
            "bn-free" | "bnfree" => Ok(Split::BnFree),
            "predefined" => Ok(Split::Predefined),
            _ => Err(ParseSplitError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for s in Split::ALL {
            assert_eq!(s.to_string().parse::<Split>().unwrap(), s);
        }
        assert_eq!("BN_free".parse::<Split>().unwrap(), Split::BnFree);
        let err = "tiny".parse::<Split>().unwrap_err();
        assert!(err.to_string().contains("unknown split 'tiny'"));
    }

    fn check_split(split: Split, input: ImageShape, count: usize) {
        let cfg = split.config().unwrap();
        for i in 0..count {
            let (net, spec) = split.generated(&cfg, input, 10, 0, i).unwrap();
            net.validate(Some(cfg.budget))
                .unwrap_or_else(|e| panic!("{split} #{i}: {e}"));
            let shapes = net.shapes().unwrap();
            assert!(shapes.iter().all(|s| s[0] >= 1 && s[1] >= 1));
            assert_eq!(net.has_batch_norm(), spec.batch_norm, "{split} #{i}");
            if split == Split::BnFree {
                assert!(!net.has_batch_norm());
            }
            if split == Split::Deep {
                assert!(spec.cells.len() >= 12);
            }
        }
    }

    #[test]
    fn every_generated_split_validates_cifar_and_fashion() {
        for split in [
            Split::Train,
            Split::Test,
            Split::Deep,
            Split::Wide,
            Split::BnFree,
        ] {
            check_split(split, ImageShape::CIFAR10, 40);
            check_split(split, ImageShape::FASHION_MNIST, 40);
        }
    }

    #[test]
    fn reproducible_by_seed() {
        let a = Split::Test.nets(ImageShape::CIFAR10, 10, 3, 5).unwrap();
        let b = Split::Test.nets(ImageShape::CIFAR10, 10, 3, 5).unwrap();
        let ja: Vec<String> = a.iter().map(Net::to_json).collect();
        let jb: Vec<String> = b.iter().map(Net::to_json).collect();
        assert_eq!(ja, jb);
        let c = Split::Test.nets(ImageShape::CIFAR10, 10, 4, 5).unwrap();
        let train = Split::Train.nets(ImageShape::CIFAR10, 10, 3, 5).unwrap();
        for i in 0..5 {
            assert_ne!(a[i].nodes, c[i].nodes, "seed 3 vs 4, net {i}");
            assert_ne!(a[i].nodes, train[i].nodes, "test vs train, net {i}");
        }
        // Nets within a split differ from each other.
        for i in 0..5 {
            for j in 0..i {
                assert_ne!(a[i].nodes, a[j].nodes);
            }
        }
    }

    #[test]
    fn ood_splits_differ_from_id_as_designed() {
        let n = 60;
        let mean = |split: Split, f: &dyn Fn(&Net) -> f64| {
            let nets = split.nets(ImageShape::CIFAR10, 10, 0, n).unwrap();
            nets.iter().map(f).sum::<f64>() / n as f64
        };
        let depth = |n: &Net| n.depth() as f64;
        let params = |n: &Net| n.param_count() as f64;
        assert!(mean(Split::Deep, &depth) > 1.5 * mean(Split::Test, &depth));
        assert!(mean(Split::Wide, &params) > 4.0 * mean(Split::Test, &params));
        let bn_share = Split::Test
            .nets(ImageShape::CIFAR10, 10, 0, n)
            .unwrap()
            .iter()
            .filter(|n| n.has_batch_norm())
            .count();
        assert!(
            (15..=45).contains(&bn_share),
            "BN in {bn_share}/{n} test nets"
        );
    }

    /// In-distribution test nets are not training nets (seeds are disjoint; check the nets too).
    #[test]
    fn test_nets_are_not_training_nets() {
        use std::collections::HashSet;
        let key = |n: &Net| serde_json::to_string(&n.nodes).unwrap();
        let train: HashSet<String> = Split::Train
            .nets(ImageShape::FASHION_MNIST, 10, 0, 1000)
            .unwrap()
            .iter()
            .map(key)
            .collect();
        assert!(
            train.len() > 990,
            "training nets repeat: {} distinct",
            train.len()
        );
        let test = Split::Test
            .nets(ImageShape::FASHION_MNIST, 10, 0, 300)
            .unwrap();
        assert!(test.iter().all(|n| !train.contains(&key(n))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any seed, any split, either dataset shape (and odd shapes): valid, within budget,
        /// reproducible, JSON round-trips.
        #[test]
        fn generated_nets_are_valid(seed in any::<u64>(), index in 0usize..1_000_000, split_i in 0usize..5,
                                    shape_i in 0usize..4, classes in 2usize..20) {
            let split = Split::ALL[split_i];
            let input = [ImageShape::CIFAR10, ImageShape::FASHION_MNIST, ImageShape { h: 9, w: 13, c: 2 },
                         ImageShape { h: 64, w: 48, c: 3 }][shape_i];
            let cfg = split.config().unwrap();
            let (net, _) = split.generated(&cfg, input, classes, seed, index).unwrap();
            prop_assert!(net.validate(Some(cfg.budget)).is_ok());
            prop_assert!(net.shapes().is_ok());
            let again = split.generated(&cfg, input, classes, seed, index).unwrap().0;
            prop_assert_eq!(&again, &net);
            prop_assert_eq!(Net::from_json(&net.to_json()).unwrap(), net);
        }
    }
}
