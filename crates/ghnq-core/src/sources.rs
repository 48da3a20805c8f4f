//! Built-in stand-ins for the training inputs, used by tests, `--dataset synthetic` and benchmarks
//! when no data set is at hand: a class-conditional synthetic image source and a small random-net
//! sampler. Real runs use `data` loaders and the `arch::splits` generator through the same traits.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::arch::{ImageShape, Net, NetBuilder, Op};
use crate::train::{ImageSource, LabeledBatch};

/// Images = a fixed random pattern per class + Gaussian-ish noise: learnable, but not trivially.
#[derive(Debug, Clone)]
pub struct SyntheticImages {
    shape: ImageShape,
    classes: usize,
    patterns: Vec<Vec<f32>>,
    rng: StdRng,
    len: usize,
}

impl SyntheticImages {
    /// `len` images per epoch of `shape`, `classes` classes.
    pub fn new(shape: ImageShape, classes: usize, len: usize, seed: u64) -> SyntheticImages {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = shape.c * shape.h * shape.w;
        let patterns = (0..classes)
            .map(|_| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect())
            .collect();
        SyntheticImages {
            shape,
            classes,
            patterns,
            rng,
            len,
        }
    }
}

impl ImageSource for SyntheticImages {
    fn shape(&self) -> ImageShape {
        self.shape
    }

    fn next_batch(&mut self, batch: usize) -> LabeledBatch {
        let n = self.shape.c * self.shape.h * self.shape.w;
        let mut images = Vec::with_capacity(batch * n);
        let mut labels = Vec::with_capacity(batch);
        for _ in 0..batch {
            let y = self.rng.random_range(0..self.classes);
            labels.push(y);
            images.extend(
                self.patterns[y]
                    .iter()
                    .map(|&p| p + self.rng.random_range(-1.0f32..1.0)),
            );
        }
        LabeledBatch { images, labels }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// A small random CNN (stem conv, 1–3 blocks of conv / separable / pooling with optional residual
/// adds, BN on or off, GAP or flatten head): a stand-in generator for tests and benchmarks.
pub fn random_small_net(rng: &mut impl Rng, input: ImageShape, classes: usize, name: &str) -> Net {
    let bn = rng.random_bool(0.7);
    let mut b = NetBuilder::new(name, input, classes);
    let c0 = [8, 16, 24, 32][rng.random_range(0..4)];
    let k0 = [3, 5][rng.random_range(0..2)];
    let mut x = b.conv("stem", 0, c0, k0, 1).expect("valid stem");
    if bn {
        x = b.bn("stem.bn", x).expect("bn");
    }
    let blocks = rng.random_range(1..=3);
    for i in 0..blocks {
        let stride = if i > 0 && b.shape(x)[0] > 4 { 2 } else { 1 };
        let y = b.relu(format!("b{i}.relu"), x, false).expect("relu");
        let c = b.channels(x);
        let y = match rng.random_range(0..4) {
            0 => b
                .conv(
                    format!("b{i}.conv"),
                    y,
                    c,
                    [1, 3, 5][rng.random_range(0..3)],
                    stride,
                )
                .expect("conv"),
            1 => {
                let d = b
                    .dw_conv(
                        format!("b{i}.dw"),
                        y,
                        [3, 5, 7][rng.random_range(0..3)],
                        stride,
                        1,
                    )
                    .expect("dw");
                b.conv(format!("b{i}.pw"), d, c, 1, 1).expect("pw")
            }
            2 => {
                let d = b
                    .dw_conv(format!("b{i}.dil"), y, 3, stride, 2)
                    .expect("dil");
                b.conv(format!("b{i}.pw"), d, c, 1, 1).expect("pw")
            }
            _ => {
                let op = if rng.random_bool(0.5) {
                    Op::MaxPool {
                        kernel: 3,
                        stride,
                        padding: 1,
                    }
                } else {
                    Op::AvgPool {
                        kernel: 3,
                        stride,
                        padding: 1,
                    }
                };
                b.push(format!("b{i}.pool"), op, vec![y]).expect("pool")
            }
        };
        let y = if bn && b.net().nodes[y].op.has_params() {
            b.bn(format!("b{i}.bn"), y).expect("bn")
        } else {
            y
        };
        x = if stride == 1 && rng.random_bool(0.5) {
            b.push(format!("b{i}.add"), Op::Add, vec![x, y])
                .expect("add")
        } else {
            y
        };
    }
    let x = b.relu("head.relu", x, false).expect("relu");
    let x = b.push("gap", Op::GlobalAvgPool, vec![x]).expect("gap");
    b.linear("fc", x, classes).expect("fc");
    b.finish().expect("random small net is valid")
}

/// Adapter: the `data` module's endless seeded [`crate::data::Sampler`] as an [`ImageSource`].
pub struct DataSampler(pub crate::data::Sampler);

impl ImageSource for DataSampler {
    fn shape(&self) -> ImageShape {
        self.0.shape()
    }

    fn next_batch(&mut self, batch: usize) -> LabeledBatch {
        let b = self.0.next_batch(batch);
        LabeledBatch {
            images: b.images,
            labels: b.labels.into_iter().map(usize::from).collect(),
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Why a named image or architecture source could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An unknown data-set name, or its files missing or unreadable.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A split name that is neither an `arch::splits` split nor `tiny`.
    #[error("unknown split '{0}' (train, test, deep, wide, bn-free, predefined or tiny)")]
    UnknownSplit(String),
    /// A split that cannot produce nets for this input shape and class count.
    #[error("split '{split}': {source}")]
    Split {
        /// The split's name.
        split: String,
        /// What the split could not do.
        #[source]
        source: crate::arch::splits::SplitError,
    },
}

fn parse_split(split: &str) -> Result<crate::arch::splits::Split, SourceError> {
    split
        .parse()
        .map_err(|_| SourceError::UnknownSplit(split.to_string()))
}

/// Training images by data-set name: `fashion-mnist` / `cifar10` (the `data` loaders, shuffled per
/// epoch, with the data set's default augmentation), or `synthetic` / `synthetic-gray` (no files).
pub fn image_source(
    dataset: &str,
    dir: Option<&std::path::Path>,
    seed: u64,
) -> Result<Box<dyn ImageSource>, SourceError> {
    match dataset {
        "synthetic" => Ok(Box::new(SyntheticImages::new(
            ImageShape::CIFAR10,
            10,
            45_000,
            seed,
        ))),
        "synthetic-gray" => Ok(Box::new(SyntheticImages::new(
            ImageShape::FASHION_MNIST,
            10,
            60_000,
            seed,
        ))),
        name => {
            let kind: crate::data::DatasetKind = name.parse()?;
            let data = crate::data::Dataset::load(kind, crate::data::Part::Train, dir)?;
            Ok(Box::new(DataSampler(crate::data::Sampler::new(
                data,
                seed,
                Some(kind.default_augment()),
            ))))
        }
    }
}

/// The fixed-order test images of a data set (the first `count`), in batches of `batch`.
pub fn test_batches(
    dataset: &str,
    dir: Option<&std::path::Path>,
    count: usize,
    batch: usize,
) -> Result<(ImageShape, Vec<LabeledBatch>), SourceError> {
    match dataset {
        "synthetic" | "synthetic-gray" => {
            // Same class patterns as training (the patterns are the task).
            let mut src = image_source(dataset, dir, 1111)?;
            let shape = src.shape();
            let mut out = Vec::new();
            let mut left = count;
            while left > 0 {
                let b = left.min(batch);
                out.push(src.next_batch(b));
                left -= b;
            }
            Ok((shape, out))
        }
        name => {
            let kind: crate::data::DatasetKind = name.parse()?;
            let data = crate::data::Dataset::load(kind, crate::data::Part::Test, dir)?;
            let data = data.take(count.min(data.len()));
            let out = data
                .batches(batch, None, None)
                .map(|b| LabeledBatch {
                    images: b.images,
                    labels: b.labels.into_iter().map(usize::from).collect(),
                })
                .collect();
            Ok((data.shape, out))
        }
    }
}

/// Calibration images: `count` training images in a seeded random order, without augmentation,
/// in batches of `batch` (the last one may be smaller).
pub fn calibration_batches(
    dataset: &str,
    dir: Option<&std::path::Path>,
    count: usize,
    batch: usize,
    seed: u64,
) -> Result<(ImageShape, Vec<LabeledBatch>), SourceError> {
    let take = |src: &mut dyn ImageSource| {
        let mut out = Vec::new();
        let mut left = count.min(src.len().max(1));
        while left > 0 {
            let b = left.min(batch.max(1));
            out.push(src.next_batch(b));
            left -= b;
        }
        out
    };
    match dataset {
        "synthetic" | "synthetic-gray" => {
            let mut src = image_source(dataset, dir, seed)?;
            Ok((src.shape(), take(src.as_mut())))
        }
        name => {
            let kind: crate::data::DatasetKind = name.parse()?;
            let data = crate::data::Dataset::load(kind, crate::data::Part::Train, dir)?;
            let mut src = DataSampler(crate::data::Sampler::new(data, seed, None));
            Ok((src.shape(), take(&mut src)))
        }
    }
}

/// Training architectures by split name: an `arch::splits` split (`train`, `test`, `deep`, `wide`,
/// `bn-free`; net `k` of the split for `k = 0, 1, …`), or `tiny` = [`random_small_net`].
pub fn arch_source(
    split: &str,
    input: ImageShape,
    classes: usize,
    seed: u64,
) -> Result<Box<dyn crate::train::ArchSource>, SourceError> {
    if split == "tiny" {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut k = 0usize;
        return Ok(Box::new(move || {
            k += 1;
            random_small_net(&mut rng, input, classes, &format!("tiny-{k}"))
        }));
    }
    let sp = parse_split(split)?;
    // Fail early on a split that cannot produce nets for this input.
    sp.net(input, classes, seed, 0)
        .map_err(|source| SourceError::Split {
            split: split.to_string(),
            source,
        })?;
    let mut k = 0usize;
    Ok(Box::new(move || {
        loop {
            let i = k;
            k += 1;
            if let Ok(net) = sp.net(input, classes, seed, i) {
                return net;
            }
        }
    }))
}

/// The first `count` nets of an evaluation split (`tiny` = seeded [`random_small_net`]s).
pub fn eval_nets(
    split: &str,
    input: ImageShape,
    classes: usize,
    count: usize,
    seed: u64,
) -> Result<Vec<Net>, SourceError> {
    if split == "tiny" {
        let mut src = arch_source(split, input, classes, seed)?;
        return Ok((0..count).map(|_| src.sample()).collect());
    }
    parse_split(split)?
        .nets(input, classes, seed, count)
        .map_err(|source| SourceError::Split {
            split: split.to_string(),
            source,
        })
}
