//! The study's training images: §3.1's "vertical/horizontal shift, zoom, vertical/horizontal
//! flip and rotation" (Keras `ImageDataGenerator`), applied to normalised planar images, over
//! the first `images` training images of a data set.
//!
//! The paper gives no magnitudes; [`PaperAugment::PAPER`] uses common Keras settings: shifts
//! up to 10 % of the size, zoom in [0.9, 1.1] per axis, rotation up to ±15°, each flip with
//! probability 1/2, bilinear sampling with Keras's default `nearest` fill (edge pixels extend).

use crate::error::{Result, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use ghnq_core::arch::ImageShape;
use ghnq_core::sources::{DataSampler, SyntheticImages};
use ghnq_core::train::{ImageSource, LabeledBatch};

/// Random affine augmentation and flips.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PaperAugment {
    /// Largest shift, as a fraction of the height (vertical) and width (horizontal).
    pub shift: f32,
    /// Zoom factors are drawn from [1 − zoom, 1 + zoom], per axis.
    pub zoom: f32,
    /// Largest rotation in degrees (either way).
    pub rotation_deg: f32,
    /// Flip left-right with probability 1/2.
    pub hflip: bool,
    /// Flip upside-down with probability 1/2.
    pub vflip: bool,
}

impl PaperAugment {
    /// The settings this harness uses for §3.1's list (see the module docs).
    pub const PAPER: PaperAugment = PaperAugment {
        shift: 0.1,
        zoom: 0.1,
        rotation_deg: 15.0,
        hflip: true,
        vflip: true,
    };

    /// No augmentation.
    pub const NONE: PaperAugment = PaperAugment {
        shift: 0.0,
        zoom: 0.0,
        rotation_deg: 0.0,
        hflip: false,
        vflip: false,
    };

    /// True when it changes nothing.
    pub fn is_identity(&self) -> bool {
        *self == Self::NONE
    }

    /// Write an augmented copy of the planar image `chw` (normalised floats) into `out`.
    pub fn apply(&self, shape: ImageShape, chw: &[f32], out: &mut Vec<f32>, rng: &mut impl Rng) {
        let ImageShape { h, w, c } = shape;
        let mut sym = |a: f32| {
            if a > 0.0 {
                rng.random_range(-a..=a)
            } else {
                0.0
            }
        };
        let theta = sym(self.rotation_deg).to_radians();
        let (ty, tx) = (sym(self.shift) * h as f32, sym(self.shift) * w as f32);
        let (zy, zx) = (1.0 + sym(self.zoom), 1.0 + sym(self.zoom));
        let hflip = self.hflip && rng.random_bool(0.5);
        let vflip = self.vflip && rng.random_bool(0.5);
        self.warp(shape, chw, out, [theta, ty, tx, zy, zx], [hflip, vflip]);
        debug_assert_eq!(out.len(), c * h * w);
    }

    /// The deterministic part: output pixel `p` samples the input at
    /// `centre + R(θ)·diag(zy, zx)·(p − centre) + (ty, tx)` (bilinear, coordinates clamped to
    /// the image), then the flips.
    fn warp(
        &self,
        shape: ImageShape,
        chw: &[f32],
        out: &mut Vec<f32>,
        [theta, ty, tx, zy, zx]: [f32; 5],
        [hflip, vflip]: [bool; 2],
    ) {
        let ImageShape { h, w, c } = shape;
        out.clear();
        out.resize(c * h * w, 0.0);
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        let (sin, cos) = theta.sin_cos();
        let identity = theta == 0.0 && ty == 0.0 && tx == 0.0 && zy == 1.0 && zx == 1.0;
        for y in 0..h {
            for x in 0..w {
                let oy = if vflip { h - 1 - y } else { y };
                let ox = if hflip { w - 1 - x } else { x };
                if identity {
                    for ch in 0..c {
                        out[(ch * h + oy) * w + ox] = chw[(ch * h + y) * w + x];
                    }
                    continue;
                }
                let (dy, dx) = ((y as f32 - cy) * zy, (x as f32 - cx) * zx);
                let sy = (cy + cos * dy - sin * dx + ty).clamp(0.0, (h - 1) as f32);
                let sx = (cx + sin * dy + cos * dx + tx).clamp(0.0, (w - 1) as f32);
                let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
                let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                let (fy, fx) = (sy - y0 as f32, sx - x0 as f32);
                for ch in 0..c {
                    let p = |yy: usize, xx: usize| chw[(ch * h + yy) * w + xx];
                    let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
                    let bottom = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
                    out[(ch * h + oy) * w + ox] = top * (1.0 - fy) + bottom * fy;
                }
            }
        }
    }
}

/// Synthetic training images start after this many draws of the test stream.
const SYNTHETIC_TEST_SKIP: usize = 20_000;

/// The study's training stream: a data set's first `images` training images (shuffled per
/// epoch), augmented.
pub struct StudyImages {
    inner: Box<dyn ImageSource>,
    augment: PaperAugment,
    rng: ChaCha8Rng,
}

impl StudyImages {
    /// `dataset`: `fashion-mnist`, `cifar10`, or `synthetic`/`synthetic-gray` (no files; the
    /// class patterns of `ghn::sources::test_batches`, so the test images are learnable — a
    /// stand-in for tests only; `seed` then only drives the augmentation). `images`: how many training images form an epoch (`None` =
    /// all; synthetic sets have 60,000 / 45,000).
    pub fn new(
        dataset: &str,
        dir: Option<&std::path::Path>,
        images: Option<usize>,
        seed: u64,
        augment: PaperAugment,
    ) -> Result<StudyImages> {
        let inner: Box<dyn ImageSource> = match dataset {
            "synthetic" | "synthetic-gray" => {
                let shape = if dataset == "synthetic" {
                    ImageShape::CIFAR10
                } else {
                    ImageShape::FASHION_MNIST
                };
                let default = if dataset == "synthetic" {
                    45_000
                } else {
                    60_000
                };
                // Seed 1111: the class patterns `test_batches` evaluates on; skip past the
                // images it takes, so training and test images differ.
                let mut s = SyntheticImages::new(shape, 10, images.unwrap_or(default), 1111);
                for _ in 0..SYNTHETIC_TEST_SKIP / 1000 {
                    let _ = s.next_batch(1000);
                }
                Box::new(s)
            }
            name => {
                let kind: ghnq_core::data::DatasetKind = name.parse()?;
                let data = ghnq_core::data::Dataset::load(kind, ghnq_core::data::Part::Train, dir)?;
                let data = match images {
                    Some(n) => data.take(n),
                    None => data,
                };
                ensure!(!data.is_empty(), "{name}: no training images selected");
                Box::new(DataSampler(ghnq_core::data::Sampler::new(data, seed, None)))
            }
        };
        Ok(StudyImages {
            inner,
            augment,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xa5a5_0000),
        })
    }
}

impl ImageSource for StudyImages {
    fn shape(&self) -> ImageShape {
        self.inner.shape()
    }

    fn next_batch(&mut self, batch: usize) -> LabeledBatch {
        let mut b = self.inner.next_batch(batch);
        if self.augment.is_identity() {
            return b;
        }
        let shape = self.inner.shape();
        let n = shape.c * shape.h * shape.w;
        let mut out = Vec::with_capacity(n);
        for img in b.images.chunks_exact_mut(n) {
            self.augment.apply(shape, img, &mut out, &mut self.rng);
            img.copy_from_slice(&out);
        }
        b
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: ImageShape = ImageShape { h: 5, w: 4, c: 2 };

    fn img() -> Vec<f32> {
        (0..40).map(|v| v as f32).collect()
    }

    #[test]
    fn identity_flips_and_integer_shifts() {
        let aug = PaperAugment::NONE;
        let mut out = Vec::new();
        aug.warp(
            S,
            &img(),
            &mut out,
            [0.0, 0.0, 0.0, 1.0, 1.0],
            [false, false],
        );
        assert_eq!(out, img());
        aug.warp(
            S,
            &img(),
            &mut out,
            [0.0, 0.0, 0.0, 1.0, 1.0],
            [true, false],
        );
        assert_eq!(&out[..4], &[3.0, 2.0, 1.0, 0.0]);
        aug.warp(
            S,
            &img(),
            &mut out,
            [0.0, 0.0, 0.0, 1.0, 1.0],
            [false, true],
        );
        assert_eq!(&out[..4], &[16.0, 17.0, 18.0, 19.0]);
        assert_eq!(&out[20..24], &[36.0, 37.0, 38.0, 39.0]);
        // Shift by one row: output row y samples input row y + 1; the last row repeats (nearest).
        aug.warp(
            S,
            &img(),
            &mut out,
            [0.0, 1.0, 0.0, 1.0, 1.0],
            [false, false],
        );
        assert_eq!(&out[..4], &[4.0, 5.0, 6.0, 7.0]);
        assert_eq!(&out[16..20], &[16.0, 17.0, 18.0, 19.0]);
        // A half-pixel shift right interpolates.
        aug.warp(
            S,
            &img(),
            &mut out,
            [0.0, 0.0, 0.5, 1.0, 1.0],
            [false, false],
        );
        assert_eq!(&out[..4], &[0.5, 1.5, 2.5, 3.0]);
    }

    #[test]
    fn a_quarter_turn_of_a_square_image_rotates_it() {
        let s = ImageShape { h: 3, w: 3, c: 1 };
        let v: Vec<f32> = (0..9).map(|x| x as f32).collect();
        let mut out = Vec::new();
        PaperAugment::NONE.warp(
            s,
            &v,
            &mut out,
            [std::f32::consts::FRAC_PI_2, 0.0, 0.0, 1.0, 1.0],
            [false, false],
        );
        let r: Vec<f32> = out.iter().map(|x| x.round()).collect();
        assert_eq!(r, [6.0, 3.0, 0.0, 7.0, 4.0, 1.0, 8.0, 5.0, 2.0]);
    }

    #[test]
    fn random_augmentation_stays_within_the_input_values_and_is_seeded() {
        let aug = PaperAugment::PAPER;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut r1 = ChaCha8Rng::seed_from_u64(3);
        let mut r2 = ChaCha8Rng::seed_from_u64(3);
        let mut changed = 0;
        for _ in 0..50 {
            aug.apply(S, &img(), &mut a, &mut r1);
            aug.apply(S, &img(), &mut b, &mut r2);
            assert_eq!(a, b);
            assert!(a.iter().all(|&x| (0.0..=39.0).contains(&x)));
            // Channels never mix: channel 1 holds 20..40.
            assert!(a[20..].iter().all(|&x| x >= 20.0));
            changed += usize::from(a != img());
        }
        assert!(changed > 40);
    }

    #[test]
    fn the_stream_has_the_requested_size() {
        let mut s =
            StudyImages::new("synthetic-gray", None, Some(64), 1, PaperAugment::PAPER).unwrap();
        assert_eq!(s.len(), 64);
        let b = s.next_batch(8);
        assert_eq!(b.labels.len(), 8);
        assert_eq!(b.images.len(), 8 * 28 * 28);
        assert!(b.images.iter().all(|x| x.is_finite()));
        assert!(StudyImages::new("mnist-3d", None, None, 1, PaperAugment::NONE).is_err());
    }
}
