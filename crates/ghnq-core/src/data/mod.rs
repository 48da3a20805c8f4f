//! Image classification data, generic over height × width × channels, independent of burn.
//!
//! A [`Dataset`] keeps u8 images **planar (NCHW)**: image `i` is `images[i·c·h·w ..]`, channel-major,
//! each plane row-major. That is CIFAR-10's file layout and what burn's conv layers take; the device
//! runs HWC, so [`Dataset::image_hwc`] converts one image for test vectors. [`Batches`] yields
//! normalised `f32` NCHW batches (optionally augmented, see [`augment`]) that the trainer turns into
//! tensors.

pub mod augment;
pub mod cifar10;
pub mod idx;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::arch::ImageShape;
pub use augment::Augment;

/// Loading failures; each names the file (or folder) and what was wrong.
#[allow(missing_docs)] // The variants' fields are spelled out by their #[error] messages.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The folder or a file of the dataset is not where it was looked for.
    #[error("{dataset} not found: {detail}")]
    NotFound {
        dataset: &'static str,
        detail: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file is shorter (or longer) than its format requires.
    #[error("{path}: truncated or wrong size ({len} bytes): {detail}")]
    Truncated {
        path: PathBuf,
        len: usize,
        detail: String,
    },
    /// A file has a bad header, label or compressed stream.
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// Two files of a pair disagree.
    #[error("{detail}")]
    Mismatch { detail: String },
    /// Unknown dataset name.
    #[error("unknown dataset '{0}' (expected fashion-mnist or cifar10)")]
    UnknownDataset(String),
}

/// The datasets the SDK knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DatasetKind {
    /// Fashion-MNIST, 28x28x1, the built-in default (Debian `dataset-fashion-mnist`).
    #[default]
    FashionMnist,
    /// CIFAR-10, 32x32x3, the paper's dataset (user-supplied binary batches).
    Cifar10,
}

impl DatasetKind {
    /// CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
        }
    }

    /// Image shape.
    pub fn shape(self) -> ImageShape {
        match self {
            DatasetKind::FashionMnist => ImageShape::FASHION_MNIST,
            DatasetKind::Cifar10 => ImageShape::CIFAR10,
        }
    }

    /// Number of classes (10 for both).
    pub fn classes(self) -> usize {
        10
    }

    /// Class names in label order.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            DatasetKind::FashionMnist => &idx::FASHION_CLASSES,
            DatasetKind::Cifar10 => &cifar10::CLASSES,
        }
    }

    /// Per-channel mean and std of pixels scaled to [0, 1]; `x_norm = (p/255 − mean) / std`.
    /// CIFAR-10: the values ppuda's `transforms_cifar` uses (so GHN-2 checkpoints see the inputs they
    /// were trained on); Fashion-MNIST: the training-set statistics.
    pub fn normalization(self) -> (&'static [f32], &'static [f32]) {
        match self {
            DatasetKind::FashionMnist => (&[0.2860], &[0.3530]),
            DatasetKind::Cifar10 => (&[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010]),
        }
    }

    /// Training augmentation default: padded random crop (pad 4 for 32x32, 2 for 28x28) and, for
    /// CIFAR-10 only, horizontal flip (Fashion-MNIST items are centred, upright and mostly
    /// symmetric, so a flip adds little; enable it with [`Augment::flip`] if wanted).
    pub fn default_augment(self) -> Augment {
        match self {
            DatasetKind::FashionMnist => Augment {
                pad: 2,
                flip: false,
            },
            DatasetKind::Cifar10 => Augment { pad: 4, flip: true },
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "fashion-mnist" | "fashionmnist" | "fashion" => Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            _ => Err(DataError::UnknownDataset(s.to_string())),
        }
    }
}

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The training images.
    Train,
    /// The test images.
    Test,
}

/// Images (u8, NCHW) and labels of one part of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Which dataset.
    pub kind: DatasetKind,
    /// Shape of one image.
    pub shape: ImageShape,
    /// `len · c · h · w` bytes, planar per image (NCHW).
    pub images: Vec<u8>,
    /// One label `< classes` per image.
    pub labels: Vec<u8>,
}

/// Train and test parts together.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainTest {
    /// Training part.
    pub train: Dataset,
    /// Test part.
    pub test: Dataset,
}

impl Dataset {
    /// Load one part. `dir` overrides the default location (`GHNQ_CIFAR_DIR` is required for
    /// CIFAR-10 when `dir` is `None`; Fashion-MNIST falls back to `GHNQ_FASHION_DIR`, then the Debian
    /// package's folder).
    pub fn load(kind: DatasetKind, part: Part, dir: Option<&Path>) -> Result<Dataset, DataError> {
        let train = part == Part::Train;
        let (images, labels) = match kind {
            DatasetKind::Cifar10 => cifar10::load(&cifar10::resolve_dir(dir)?, train)?,
            DatasetKind::FashionMnist => {
                let (img, labels) = idx::load_fashion(&idx::resolve_fashion_dir(dir)?, train)?;
                (img.data, labels) // one channel: HW == CHW
            }
        };
        Ok(Dataset {
            kind,
            shape: kind.shape(),
            images,
            labels,
        })
    }

    /// Both parts of the dataset called `name` (`"fashion-mnist"` or `"cifar10"`).
    pub fn by_name(name: &str, dir: Option<&Path>) -> Result<TrainTest, DataError> {
        let kind: DatasetKind = name.parse()?;
        Ok(TrainTest {
            train: Self::load(kind, Part::Train, dir)?,
            test: Self::load(kind, Part::Test, dir)?,
        })
    }

    /// A dataset from raw planar images, e.g. a partial CIFAR-10 batch read with
    /// [`cifar10::read_batch`]. Panics if the lengths disagree.
    pub fn from_raw(kind: DatasetKind, images: Vec<u8>, labels: Vec<u8>) -> Dataset {
        let shape = kind.shape();
        assert_eq!(
            images.len(),
            labels.len() * shape.h * shape.w * shape.c,
            "images/labels length mismatch"
        );
        Dataset {
            kind,
            shape,
            images,
            labels,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.shape.h * self.shape.w * self.shape.c
    }

    /// Image `i`, planar CHW.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Image `i` interleaved HWC (the device layout).
    pub fn image_hwc(&self, i: usize) -> Vec<u8> {
        let ImageShape { h, w, c } = self.shape;
        let chw = self.image(i);
        let mut out = vec![0u8; h * w * c];
        for ch in 0..c {
            for p in 0..h * w {
                out[p * c + ch] = chw[ch * h * w + p];
            }
        }
        out
    }

    /// The first `n` images (or all), e.g. for a quick evaluation.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            kind: self.kind,
            shape: self.shape,
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Append image `i`, normalised, planar, to `out`.
    pub fn push_normalized(&self, i: usize, out: &mut Vec<f32>) {
        normalize_into(self.kind, self.shape, self.image(i), out);
    }

    /// Iterate over batches of `batch_size`. `shuffle_seed`: shuffle the order with this seed (use a
    /// different seed per epoch, e.g. `hash(seed, epoch)`); `augment`: random crop/flip from the same
    /// seeded stream. The last batch may be smaller.
    pub fn batches(
        &self,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        augment: Option<Augment>,
    ) -> Batches<'_> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        let rng = ChaCha8Rng::seed_from_u64(shuffle_seed.unwrap_or(0));
        let mut rng = rng;
        if shuffle_seed.is_some() {
            order.shuffle(&mut rng);
        }
        Batches {
            data: self,
            order,
            pos: 0,
            batch_size: batch_size.max(1),
            augment,
            rng,
        }
    }
}

/// `(p/255 − mean[c]) / std[c]` for a planar image, appended to `out`.
pub fn normalize_into(kind: DatasetKind, shape: ImageShape, chw: &[u8], out: &mut Vec<f32>) {
    let (mean, std) = kind.normalization();
    let plane = shape.h * shape.w;
    for (ch, pixels) in chw.chunks_exact(plane).enumerate() {
        let (m, s) = (mean[ch], std[ch]);
        out.extend(pixels.iter().map(|&p| (f32::from(p) / 255.0 - m) / s));
    }
}

/// One batch: normalised images and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `len · c · h · w` floats, NCHW.
    pub images: Vec<f32>,
    /// `len` labels.
    pub labels: Vec<u8>,
    /// `[len, c, h, w]`, ready for a tensor shape.
    pub dims: [usize; 4],
}

/// Iterator over [`Batch`]es of a [`Dataset`].
#[derive(Debug)]
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
    augment: Option<Augment>,
    rng: ChaCha8Rng,
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let ImageShape { h, w, c } = self.data.shape;
        let n = end - self.pos;
        let mut images = Vec::with_capacity(n * c * h * w);
        let mut labels = Vec::with_capacity(n);
        let mut scratch = Vec::new();
        for &i in &self.order[self.pos..end] {
            let img = self.data.image(i);
            match self.augment {
                Some(aug) => {
                    aug.apply(self.data.shape, img, &mut scratch, &mut self.rng);
                    normalize_into(self.data.kind, self.data.shape, &scratch, &mut images);
                }
                None => normalize_into(self.data.kind, self.data.shape, img, &mut images),
            }
            labels.push(self.data.labels[i]);
        }
        self.pos = end;
        Some(Batch {
            images,
            labels,
            dims: [n, c, h, w],
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.pos).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

impl Batch {
    /// `(images, labels)`: normalised NCHW floats and labels.
    pub fn into_parts(self) -> (Vec<f32>, Vec<u8>) {
        (self.images, self.labels)
    }
}

/// An endless, seeded stream of training batches over epochs: each epoch is a fresh shuffle (seeded
/// by `(seed, epoch)`), and augmentation draws from the same stream; a batch may straddle two epochs.
/// This is what a meta-training loop consumes (`ghn` adapts it to its `ImageSource`).
#[derive(Debug, Clone)]
pub struct Sampler {
    data: Dataset,
    seed: u64,
    augment: Option<Augment>,
    epoch: u64,
    order: Vec<usize>,
    pos: usize,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler over `data` (shuffled from epoch 0, `augment` applied when `Some`).
    pub fn new(data: Dataset, seed: u64, augment: Option<Augment>) -> Sampler {
        let mut s = Sampler {
            data,
            seed,
            augment,
            epoch: 0,
            order: Vec::new(),
            pos: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        s.reshuffle();
        s
    }

    fn reshuffle(&mut self) {
        self.rng = ChaCha8Rng::seed_from_u64(crate::arch::generator::net_seed(
            "data-epoch",
            self.seed,
            self.epoch,
        ));
        self.order = (0..self.data.len()).collect();
        self.order.shuffle(&mut self.rng);
        self.pos = 0;
    }

    /// Shape of one image.
    pub fn shape(&self) -> ImageShape {
        self.data.shape
    }

    /// Images per epoch.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if the dataset is empty ([`Sampler::next_batch`] then returns empty batches).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Epochs started so far (0-based index of the current one).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The next `n` images, normalised NCHW, augmented if configured.
    pub fn next_batch(&mut self, n: usize) -> Batch {
        let ImageShape { h, w, c } = self.data.shape;
        let mut images = Vec::with_capacity(n * c * h * w);
        let mut labels = Vec::with_capacity(n);
        let mut scratch = Vec::new();
        while labels.len() < n && !self.data.is_empty() {
            if self.pos == self.order.len() {
                self.epoch += 1;
                self.reshuffle();
            }
            let i = self.order[self.pos];
            self.pos += 1;
            match self.augment {
                Some(aug) => {
                    aug.apply(
                        self.data.shape,
                        self.data.image(i),
                        &mut scratch,
                        &mut self.rng,
                    );
                    normalize_into(self.data.kind, self.data.shape, &scratch, &mut images);
                }
                None => self.data.push_normalized(i, &mut images),
            }
            labels.push(self.data.labels[i]);
        }
        let len = labels.len();
        Batch {
            images,
            labels,
            dims: [len, c, h, w],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Dataset {
        // 5 CIFAR-shaped images, image i filled with i, label i.
        let n = 5;
        let mut images = Vec::new();
        for i in 0..n {
            images.extend(std::iter::repeat_n(i as u8 * 50, 3072));
        }
        Dataset::from_raw(DatasetKind::Cifar10, images, (0..n as u8).collect())
    }

    #[test]
    fn batches_cover_everything_once_and_normalise() {
        let d = toy();
        let batches: Vec<Batch> = d.batches(2, None, None).collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].dims, [1, 3, 32, 32]);
        assert_eq!(batches[0].labels, vec![0, 1]);
        let (m, s) = DatasetKind::Cifar10.normalization();
        assert!((batches[0].images[0] - (0.0 - m[0]) / s[0]).abs() < 1e-6);
        // Channel 1 of image 1 (value 50) starts at 3072 + 1024.
        assert!((batches[0].images[3072 + 1024] - (50.0 / 255.0 - m[1]) / s[1]).abs() < 1e-6);

        let a: Vec<u8> = d.batches(2, Some(9), None).flat_map(|b| b.labels).collect();
        let b: Vec<u8> = d.batches(2, Some(9), None).flat_map(|b| b.labels).collect();
        assert_eq!(a, b, "same seed, same order");
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        let aug: Vec<Batch> = d
            .batches(5, Some(1), Some(DatasetKind::Cifar10.default_augment()))
            .collect();
        assert_eq!(aug[0].images.len(), 5 * 3072);
    }

    #[test]
    fn sampler_wraps_epochs_deterministically() {
        let d = toy();
        let mut a = Sampler::new(d.clone(), 3, Some(DatasetKind::Cifar10.default_augment()));
        let mut b = Sampler::new(d, 3, Some(DatasetKind::Cifar10.default_augment()));
        let first: Vec<u8> = a.next_batch(5).labels;
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4], "one epoch = a permutation");
        assert_eq!(b.next_batch(5).labels, first, "same seed, same stream");
        let straddle = a.next_batch(7);
        assert_eq!(straddle.dims, [7, 3, 32, 32]);
        assert_eq!(a.epoch(), 2);
        assert_eq!(b.next_batch(7), straddle);
    }

    #[test]
    fn hwc_layout_and_names() {
        let mut images = vec![0u8; 3 * 32 * 32];
        images[0] = 1; // R(0,0)
        images[1024] = 2; // G(0,0)
        images[2048 + 1] = 3; // B(0,1)
        let d = Dataset::from_raw(DatasetKind::Cifar10, images, vec![0]);
        let hwc = d.image_hwc(0);
        assert_eq!(&hwc[..6], &[1, 2, 0, 0, 0, 3]);
        assert_eq!(
            "CIFAR-10".parse::<DatasetKind>().unwrap(),
            DatasetKind::Cifar10
        );
        assert_eq!(
            "fashion_mnist".parse::<DatasetKind>().unwrap(),
            DatasetKind::FashionMnist
        );
        assert!(
            "mnist"
                .parse::<DatasetKind>()
                .unwrap_err()
                .to_string()
                .contains("unknown dataset 'mnist'")
        );
    }

    #[test]
    fn fashion_by_name_loads_both_parts() {
        let tt = Dataset::by_name("fashion-mnist", None)
            .unwrap_or_else(|e| panic!("{e} (run `cargo xtask setup`)"));
        assert_eq!((tt.train.len(), tt.test.len()), (60_000, 10_000));
        assert_eq!(tt.test.shape, ImageShape::FASHION_MNIST);
        let b = tt.test.batches(32, None, None).next().unwrap();
        assert_eq!(b.dims, [32, 1, 28, 28]);
        // Normalised training pixels have mean ≈ 0 and std ≈ 1.
        let mut v = Vec::new();
        for i in 0..2000 {
            tt.train.push_normalized(i, &mut v);
        }
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var.sqrt() - 1.0).abs() < 0.05,
            "mean {mean} std {}",
            var.sqrt()
        );
    }
}
