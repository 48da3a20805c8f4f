//! Max and average pooling (square windows, symmetric padding) and global average pooling on
//! NHWC buffers, forward and backward. Padded cells never win a max and never count in an
//! average (`count_include_pad = false`, the IR's and TFLM's rule).

/// Pooling geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeom {
    /// Images.
    pub n: usize,
    /// Input height, width; channels.
    pub h: usize,
    /// See `h`.
    pub w: usize,
    /// See `h`.
    pub c: usize,
    /// Output height and width.
    pub ho: usize,
    /// See `ho`.
    pub wo: usize,
    /// Window, stride, padding.
    pub k: usize,
    /// See `k`.
    pub stride: usize,
    /// See `k`.
    pub pad: usize,
}

impl PoolGeom {
    /// Input rows (or columns) of output row `o`'s window: `lo..hi`, clipped to the image.
    #[inline]
    fn window(&self, o: usize, len: usize) -> (usize, usize) {
        let start = o * self.stride;
        let lo = start.saturating_sub(self.pad);
        let hi = (start + self.k).saturating_sub(self.pad).min(len);
        (lo, hi)
    }

    /// Real (unpadded) input pixels in the window of output pixel `(oh, ow)`.
    #[inline]
    pub fn taps(&self, oh: usize, ow: usize) -> usize {
        let (h0, h1) = self.window(oh, self.h);
        let (w0, w1) = self.window(ow, self.w);
        (h1 - h0) * (w1 - w0)
    }
}

/// Max pooling: the output and, per output element, the input element that won (the first
/// maximum in window order on ties, like burn's).
#[inline(always)]
pub fn max_forward(x: &[f32], g: &PoolGeom) -> (Vec<f32>, Vec<u32>) {
    let c = g.c;
    let mut out = super::buffers::with_capacity(g.n * g.ho * g.wo * c);
    out.resize(g.n * g.ho * g.wo * c, f32::NEG_INFINITY);
    let mut arg = vec![0u32; out.len()];
    for n in 0..g.n {
        for oh in 0..g.ho {
            let (h0, h1) = g.window(oh, g.h);
            for ow in 0..g.wo {
                let (w0, w1) = g.window(ow, g.w);
                let o = ((n * g.ho + oh) * g.wo + ow) * c;
                let (best, idx) = (&mut out[o..o + c], &mut arg[o..o + c]);
                for ih in h0..h1 {
                    for iw in w0..w1 {
                        let i = ((n * g.h + ih) * g.w + iw) * c;
                        let xs = &x[i..i + c];
                        for j in 0..c {
                            // A NaN wins, so a diverging net shows up in the loss. Branch-free
                            // (`|`, `&`), so the loop vectorises.
                            let (v, b) = (xs[j], best[j]);
                            let take = (v > b) | (v.is_nan() & !b.is_nan());
                            best[j] = if take { v } else { b };
                            idx[j] = if take { (i + j) as u32 } else { idx[j] };
                        }
                    }
                }
            }
        }
    }
    (out, arg)
}

/// Routes each output gradient to the input element that won.
#[inline(always)]
pub fn max_backward(arg: &[u32], dy: &[f32], dx: &mut [f32]) {
    for (&i, &d) in arg.iter().zip(dy) {
        dx[i as usize] += d;
    }
}

/// Average pooling whose divisor counts only real pixels.
#[inline(always)]
pub fn avg_forward(x: &[f32], g: &PoolGeom) -> Vec<f32> {
    let c = g.c;
    let mut out = super::buffers::zeros(g.n * g.ho * g.wo * c);
    for n in 0..g.n {
        for oh in 0..g.ho {
            let (h0, h1) = g.window(oh, g.h);
            for ow in 0..g.wo {
                let (w0, w1) = g.window(ow, g.w);
                let o = &mut out[((n * g.ho + oh) * g.wo + ow) * c..][..c];
                for ih in h0..h1 {
                    for iw in w0..w1 {
                        let i = &x[((n * g.h + ih) * g.w + iw) * c..][..c];
                        for (o, v) in o.iter_mut().zip(i) {
                            *o += v;
                        }
                    }
                }
                let inv = 1.0 / ((h1 - h0) * (w1 - w0)).max(1) as f32;
                o.iter_mut().for_each(|v| *v *= inv);
            }
        }
    }
    out
}

/// Spreads each output gradient evenly over its window's real pixels.
#[inline(always)]
pub fn avg_backward(g: &PoolGeom, dy: &[f32], dx: &mut [f32]) {
    let c = g.c;
    for n in 0..g.n {
        for oh in 0..g.ho {
            let (h0, h1) = g.window(oh, g.h);
            for ow in 0..g.wo {
                let (w0, w1) = g.window(ow, g.w);
                let inv = 1.0 / ((h1 - h0) * (w1 - w0)).max(1) as f32;
                let d = &dy[((n * g.ho + oh) * g.wo + ow) * c..][..c];
                for ih in h0..h1 {
                    for iw in w0..w1 {
                        let i = &mut dx[((n * g.h + ih) * g.w + iw) * c..][..c];
                        for (i, d) in i.iter_mut().zip(d) {
                            *i += d * inv;
                        }
                    }
                }
            }
        }
    }
}

/// Mean over each image's `hw` pixels: `(n, hw, c) → (n, c)`.
#[inline(always)]
pub fn global_avg_forward(x: &[f32], n: usize, hw: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; n * c];
    for (img, o) in x.chunks_exact(hw * c).zip(out.chunks_exact_mut(c)) {
        for px in img.chunks_exact(c) {
            for (o, v) in o.iter_mut().zip(px) {
                *o += v;
            }
        }
        o.iter_mut().for_each(|v| *v /= hw as f32);
    }
    out
}

/// Backward of [`global_avg_forward`].
#[inline(always)]
pub fn global_avg_backward(dy: &[f32], hw: usize, c: usize, dx: &mut [f32]) {
    for (img, d) in dx.chunks_exact_mut(hw * c).zip(dy.chunks_exact(c)) {
        for px in img.chunks_exact_mut(c) {
            for (p, d) in px.iter_mut().zip(d) {
                *p += d / hw as f32;
            }
        }
    }
}
