//! Training augmentation on u8 planar images: padded random crop (zero padding, as torchvision's
//! `RandomCrop(size, padding)` before `ToTensor`) and random horizontal flip. Seeded through the
//! caller's RNG, so a (seed, epoch) pair always gives the same batches.

use rand::Rng;

use crate::arch::ImageShape;

/// Augmentation settings; [`super::DatasetKind::default_augment`] gives each dataset's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augment {
    /// Zero padding on each side before a random crop back to the original size (0 = no crop).
    pub pad: usize,
    /// Flip left-right with probability 1/2.
    pub flip: bool,
}

impl Augment {
    /// Write an augmented copy of the planar image `chw` into `out` (cleared first).
    pub fn apply<R: Rng>(&self, shape: ImageShape, chw: &[u8], out: &mut Vec<u8>, rng: &mut R) {
        let ImageShape { h, w, c } = shape;
        let p = self.pad as i64;
        let (dy, dx) = if self.pad > 0 {
            (rng.random_range(-p..=p), rng.random_range(-p..=p))
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.random_bool(0.5);
        out.clear();
        out.resize(c * h * w, 0);
        for ch in 0..c {
            let src = &chw[ch * h * w..(ch + 1) * h * w];
            let dst = &mut out[ch * h * w..(ch + 1) * h * w];
            for y in 0..h {
                let sy = y as i64 + dy;
                if sy < 0 || sy >= h as i64 {
                    continue; // zero padding
                }
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = xx as i64 + dx;
                    if sx >= 0 && sx < w as i64 {
                        dst[y * w + x] = src[sy as usize * w + sx as usize];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const S: ImageShape = ImageShape { h: 4, w: 5, c: 2 };

    fn img() -> Vec<u8> {
        (1..=40).collect()
    }

    #[test]
    fn identity_and_flip() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut out = Vec::new();
        Augment {
            pad: 0,
            flip: false,
        }
        .apply(S, &img(), &mut out, &mut rng);
        assert_eq!(out, img());
        // Flip happens w.p. 1/2: over 64 draws both outcomes occur, and a flip reverses every row.
        let (mut flipped, mut kept) = (0, 0);
        for _ in 0..64 {
            Augment { pad: 0, flip: true }.apply(S, &img(), &mut out, &mut rng);
            if out == img() {
                kept += 1;
            } else {
                flipped += 1;
                assert_eq!(&out[..5], &[5, 4, 3, 2, 1]);
                assert_eq!(&out[20..25], &[25, 24, 23, 22, 21]);
            }
        }
        assert!(flipped > 10 && kept > 10);
    }

    #[test]
    fn crop_shifts_with_zero_fill_and_is_seeded() {
        let aug = Augment {
            pad: 2,
            flip: false,
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        aug.apply(S, &img(), &mut a, &mut ChaCha8Rng::seed_from_u64(5));
        aug.apply(S, &img(), &mut b, &mut ChaCha8Rng::seed_from_u64(5));
        assert_eq!(a, b);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            aug.apply(S, &img(), &mut a, &mut rng);
            assert_eq!(a.len(), 40);
            // Every non-zero output pixel is an input pixel of the same channel, shifted by at most 2.
            for (i, &v) in a.iter().enumerate() {
                if v != 0 {
                    let (ch, y, x) = (i / 20, (i % 20) / 5, i % 5);
                    let j = (v - 1) as usize;
                    let (cj, yj, xj) = (j / 20, (j % 20) / 5, j % 5);
                    assert_eq!(ch, cj);
                    assert!(y.abs_diff(yj) <= 2 && x.abs_diff(xj) <= 2);
                }
            }
        }
    }
}
