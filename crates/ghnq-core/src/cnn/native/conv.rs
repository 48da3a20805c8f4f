//! Convolution forward and backward on NHWC buffers: dense convolutions as im2col + GEMM (the
//! pointwise stride-1 case multiplies the activations in place), depthwise ones in the AVX2
//! kernels of `depthwise` where they apply and otherwise as a direct loop vectorised over
//! channels, other grouped ones as a plain direct loop (the generator does not
//! produce them; they are here so every IR net runs).

use super::{buffers, depthwise};
use ghnq_gemm::{View, matmul};

/// Rows of an im2col block: large enough for GEMM to reach its speed, small enough that the
/// block (rows × k·k·cin floats) stays in the outer caches.
const BLOCK_ROWS: usize = 256;

/// The geometry of one convolution (PyTorch semantics, symmetric zero padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Images.
    pub n: usize,
    /// Input height, width, channels.
    pub h: usize,
    /// See `h`.
    pub w: usize,
    /// See `h`.
    pub cin: usize,
    /// Output height, width, channels.
    pub ho: usize,
    /// See `ho`.
    pub wo: usize,
    /// See `ho`.
    pub cout: usize,
    /// Square kernel size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Dilation.
    pub dil: usize,
    /// Channel groups.
    pub groups: usize,
}

impl ConvGeom {
    /// Input row `oh·stride + kh·dil − pad` of output row `oh`, or `None` in the padding.
    #[inline]
    fn src(&self, o: usize, kk: usize, len: usize) -> Option<usize> {
        (o * self.stride + kk * self.dil)
            .checked_sub(self.pad)
            .filter(|&i| i < len)
    }

    /// Kernel columns `lo..hi` of output column `o` that read inside the image, at dilation 1
    /// (input columns `o·stride + kw − pad`): contiguous in an NHWC row, so im2col copies them as
    /// one run of `(hi − lo)·cin` values.
    #[inline]
    fn taps_inside(&self, o: usize) -> (usize, usize) {
        let start = o * self.stride;
        let lo = self.pad.saturating_sub(start).min(self.k);
        let hi = (self.w + self.pad).saturating_sub(start).min(self.k);
        (lo, hi.max(lo))
    }

    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0 && self.groups == 1
    }

    fn depthwise(&self) -> bool {
        self.groups == self.cin && self.groups == self.cout
    }

    /// Length of one im2col row.
    fn patch(&self) -> usize {
        self.k * self.k * self.cin
    }
}

/// PyTorch's weight layout `(cout, cin, k, k)` and the GEMM operand `(k·k·cin) × cout` (rows in
/// the im2col order `(kh, kw, ci)`), one into the other: `to_gemm` picks the direction. With
/// `cin = 1` the GEMM layout of a depthwise weight is its taps, each a channel vector.
fn permute_weight(w: &[f32], k: usize, cin: usize, cout: usize, to_gemm: bool) -> Vec<f32> {
    let kk = k * k;
    let mut out = vec![0.0; kk * cin * cout];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..kk {
                let (torch, gemm) = ((co * cin + ci) * kk + t, (t * cin + ci) * cout + co);
                if to_gemm {
                    out[gemm] = w[torch];
                } else {
                    out[torch] = w[gemm];
                }
            }
        }
    }
    out
}

/// PyTorch's dense weight `(cout, cin, k, k)` as the GEMM operand `(k·k·cin) × cout`.
pub fn dense_weight_to_gemm(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    permute_weight(w, g.k, g.cin, g.cout, true)
}

/// The inverse of [`dense_weight_to_gemm`], for gradients.
pub fn dense_weight_from_gemm(wt: &[f32], g: &ConvGeom) -> Vec<f32> {
    permute_weight(wt, g.k, g.cin, g.cout, false)
}

/// PyTorch's depthwise weight `(c, 1, k, k)` as `(k·k) × c`, so each tap is a channel vector.
pub fn depthwise_weight_to_taps(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    permute_weight(w, g.k, 1, g.cout, true)
}

/// The inverse of [`depthwise_weight_to_taps`].
pub fn depthwise_weight_from_taps(taps: &[f32], g: &ConvGeom) -> Vec<f32> {
    permute_weight(taps, g.k, 1, g.cout, false)
}

/// Images per im2col block.
fn block_images(g: &ConvGeom) -> usize {
    (BLOCK_ROWS / (g.ho * g.wo).max(1)).clamp(1, g.n.max(1))
}

/// `dst = src` for the short segments of im2col: a `copy_from_slice` of a length known only at
/// run time becomes a `memcpy` call per segment, which costs more than the copy.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 16] = s.try_into().expect("chunks of 16");
        let d: &mut [f32; 16] = d.try_into().expect("chunks of 16");
        *d = *s;
    }
    let (d, s) = (d.into_remainder(), s.remainder());
    let mut d8 = d.chunks_exact_mut(8);
    let mut s8 = s.chunks_exact(8);
    for (d, s) in (&mut d8).zip(&mut s8) {
        let s: &[f32; 8] = s.try_into().expect("chunks of 8");
        let d: &mut [f32; 8] = d.try_into().expect("chunks of 8");
        *d = *s;
    }
    for (d, s) in d8.into_remainder().iter_mut().zip(s8.remainder()) {
        *d = *s;
    }
}

/// Zeros `dst` (usually empty: the borders of im2col rows), without a `memset` call for the
/// empty case.
#[inline(always)]
fn zero_short(dst: &mut [f32]) {
    for d in dst {
        *d = 0.0;
    }
}

/// The im2col rows of images `n0..n1`: row `(n, oh, ow)` holds the `(kh, kw, ci)` patch. At
/// dilation 1 the `(kw, ci)` part of a kernel row is one contiguous run of the input row.
#[inline(always)]
fn im2col(x: &[f32], g: &ConvGeom, n0: usize, n1: usize, col: &mut [f32]) {
    let p = g.patch();
    let kc = g.k * g.cin;
    let mut row = 0;
    for n in n0..n1 {
        for oh in 0..g.ho {
            for ow in 0..g.wo {
                let dst = &mut col[row * p..(row + 1) * p];
                if g.dil == 1 {
                    let (lo, hi) = g.taps_inside(ow);
                    for kh in 0..g.k {
                        let seg = &mut dst[kh * kc..][..kc];
                        match g.src(oh, kh, g.h) {
                            Some(ih) if lo < hi => {
                                let iw = ow * g.stride + lo - g.pad;
                                let (head, rest) = seg.split_at_mut(lo * g.cin);
                                let (run, tail) = rest.split_at_mut((hi - lo) * g.cin);
                                zero_short(head);
                                copy_short(
                                    run,
                                    &x[((n * g.h + ih) * g.w + iw) * g.cin..][..run.len()],
                                );
                                zero_short(tail);
                            }
                            _ => seg.fill(0.0),
                        }
                    }
                } else {
                    for kh in 0..g.k {
                        let ih = g.src(oh, kh, g.h);
                        for kw in 0..g.k {
                            let seg = &mut dst[(kh * g.k + kw) * g.cin..][..g.cin];
                            match (ih, g.src(ow, kw, g.w)) {
                                (Some(ih), Some(iw)) => copy_short(
                                    seg,
                                    &x[((n * g.h + ih) * g.w + iw) * g.cin..][..g.cin],
                                ),
                                _ => seg.fill(0.0),
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Adds the im2col-shaped gradient `col` of images `n0..n1` back onto the input gradient `dx`
/// (at dilation 1, each kernel row's inside run in one loop).
#[inline(always)]
fn col2im_add(col: &[f32], g: &ConvGeom, n0: usize, n1: usize, dx: &mut [f32]) {
    let p = g.patch();
    let kc = g.k * g.cin;
    let mut row = 0;
    for n in n0..n1 {
        for oh in 0..g.ho {
            for ow in 0..g.wo {
                let src = &col[row * p..(row + 1) * p];
                if g.dil == 1 {
                    let (lo, hi) = g.taps_inside(ow);
                    if lo < hi {
                        let iw = ow * g.stride + lo - g.pad;
                        let len = (hi - lo) * g.cin;
                        for kh in 0..g.k {
                            let Some(ih) = g.src(oh, kh, g.h) else {
                                continue;
                            };
                            let d = &mut dx[((n * g.h + ih) * g.w + iw) * g.cin..][..len];
                            let s = &src[kh * kc + lo * g.cin..][..len];
                            for (d, s) in d.iter_mut().zip(s) {
                                *d += s;
                            }
                        }
                    }
                } else {
                    for kh in 0..g.k {
                        let Some(ih) = g.src(oh, kh, g.h) else {
                            continue;
                        };
                        for kw in 0..g.k {
                            let Some(iw) = g.src(ow, kw, g.w) else {
                                continue;
                            };
                            let d = &mut dx[((n * g.h + ih) * g.w + iw) * g.cin..][..g.cin];
                            let s = &src[(kh * g.k + kw) * g.cin..][..g.cin];
                            for (d, s) in d.iter_mut().zip(s) {
                                *d += s;
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

#[inline(always)]
/// Adds a per-channel bias to every pixel (row) of an NHWC (or `[n, features]`) buffer.
/// Adds a per-channel bias to every pixel of an NHWC buffer.
pub fn add_bias(out: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        for px in out.chunks_exact_mut(b.len()) {
            for (o, b) in px.iter_mut().zip(b) {
                *o += b;
            }
        }
    }
}

/// The bias gradient: the per-channel sum of an output gradient over its pixels (rows).
pub fn bias_grad(dy: &[f32], channels: usize) -> Vec<f32> {
    let mut db = vec![0.0; channels];
    for px in dy.chunks_exact(channels) {
        for (d, v) in db.iter_mut().zip(px) {
            *d += v;
        }
    }
    db
}

/// Forward: `out` (NHWC, `n·ho·wo·cout`) from `x` (NHWC) and the weight in PyTorch layout.
#[inline(always)]
pub fn forward(x: &[f32], g: &ConvGeom, weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let len = g.n * g.ho * g.wo * g.cout;
    // The GEMMs write every output (no accumulation); the other loops add onto zeros.
    let mut out = if g.groups == 1 {
        buffers::scratch(len)
    } else {
        buffers::zeros(len)
    };
    if g.groups == 1 {
        let wt = dense_weight_to_gemm(weight, g);
        let b = View::new(&wt, g.patch(), g.cout);
        if g.pointwise() {
            matmul(&mut out, View::new(x, g.n * g.h * g.w, g.cin), b, false);
        } else {
            let per = block_images(g);
            let rows_per_image = g.ho * g.wo;
            let mut col = buffers::scratch(per * rows_per_image * g.patch());
            for n0 in (0..g.n).step_by(per) {
                let n1 = (n0 + per).min(g.n);
                let rows = (n1 - n0) * rows_per_image;
                im2col(x, g, n0, n1, &mut col);
                let dst = &mut out[n0 * rows_per_image * g.cout..][..rows * g.cout];
                matmul(dst, View::new(&col, rows, g.patch()), b, false);
            }
            buffers::recycle(col);
        }
    } else if let Some(v3) = g.depthwise().then(|| depthwise::supported(g)).flatten() {
        depthwise::forward(v3, x, g, &depthwise_weight_to_taps(weight, g), &mut out);
    } else if g.depthwise() {
        depthwise_forward(x, g, &depthwise_weight_to_taps(weight, g), &mut out);
    } else {
        grouped_forward(x, g, weight, &mut out);
    }
    add_bias(&mut out, bias);
    out
}

/// Gradients of one convolution.
pub struct ConvGrads {
    /// d loss / d weight, PyTorch layout.
    pub weight: Vec<f32>,
    /// d loss / d bias (when the conv has one).
    pub bias: Option<Vec<f32>>,
}

/// Backward: adds d loss / d x to `dx` (when given) and returns the parameter gradients.
#[inline(always)]
pub fn backward(
    x: &[f32],
    g: &ConvGeom,
    weight: &[f32],
    has_bias: bool,
    dy: &[f32],
    dx: Option<&mut [f32]>,
) -> ConvGrads {
    backward_with(x, g, weight, has_bias, dy, dx, false)
}

/// [`backward`], with `dx_fresh`: `dx`'s values are unspecified (a [`buffers::scratch`]) and
/// are overwritten with d loss / d x instead of added to. WHY: a pointwise convolution's input
/// gradient is then one GEMM that neither reads `dx` nor needs it zeroed first.
#[inline(always)]
pub fn backward_with(
    x: &[f32],
    g: &ConvGeom,
    weight: &[f32],
    has_bias: bool,
    dy: &[f32],
    mut dx: Option<&mut [f32]>,
    dx_fresh: bool,
) -> ConvGrads {
    let overwrite = dx_fresh && g.groups == 1 && g.pointwise();
    if dx_fresh
        && !overwrite
        && let Some(dx) = dx.as_deref_mut()
    {
        dx.fill(0.0);
    }
    let bias = has_bias.then(|| bias_grad(dy, g.cout));
    let weight = if g.groups == 1 {
        let wt = dense_weight_to_gemm(weight, g);
        let mut dwt = vec![0.0; wt.len()];
        let p = g.patch();
        if g.pointwise() {
            let rows = g.n * g.h * g.w;
            matmul(
                &mut dwt,
                View::new(x, rows, g.cin).t(),
                View::new(dy, rows, g.cout),
                false,
            );
            if let Some(dx) = dx {
                matmul(
                    dx,
                    View::new(dy, rows, g.cout),
                    View::new(&wt, p, g.cout).t(),
                    !overwrite,
                );
            }
        } else {
            let per = block_images(g);
            let rows_per_image = g.ho * g.wo;
            let mut col = buffers::scratch(per * rows_per_image * p);
            let mut dcol = buffers::scratch(if dx.is_some() { col.len() } else { 0 });
            for n0 in (0..g.n).step_by(per) {
                let n1 = (n0 + per).min(g.n);
                let rows = (n1 - n0) * rows_per_image;
                let dyb = View::new(
                    &dy[n0 * rows_per_image * g.cout..][..rows * g.cout],
                    rows,
                    g.cout,
                );
                im2col(x, g, n0, n1, &mut col);
                matmul(&mut dwt, View::new(&col, rows, p).t(), dyb, true);
                if let Some(dx) = dx.as_deref_mut() {
                    matmul(&mut dcol, dyb, View::new(&wt, p, g.cout).t(), false);
                    col2im_add(&dcol, g, n0, n1, dx);
                }
            }
            buffers::recycle(col);
            buffers::recycle(dcol);
        }
        dense_weight_from_gemm(&dwt, g)
    } else if g.depthwise() {
        let taps = depthwise_weight_to_taps(weight, g);
        let mut dtaps = vec![0.0; taps.len()];
        match depthwise::supported(g) {
            Some(v3) => depthwise::backward(v3, x, g, &taps, dy, dx, &mut dtaps),
            None => depthwise_backward(x, g, &taps, dy, dx, &mut dtaps),
        }
        depthwise_weight_from_taps(&dtaps, g)
    } else {
        grouped_backward(x, g, weight, dy, dx)
    };
    ConvGrads { weight, bias }
}

/// Calls `f(out_pixel, in_pixel, tap)` for every valid (output pixel, tap) pair of image `n`;
/// pixels are NHWC pixel indices.
#[inline]
fn for_each_tap(g: &ConvGeom, n: usize, mut f: impl FnMut(usize, usize, usize)) {
    for oh in 0..g.ho {
        for ow in 0..g.wo {
            let o = (n * g.ho + oh) * g.wo + ow;
            for kh in 0..g.k {
                let Some(ih) = g.src(oh, kh, g.h) else {
                    continue;
                };
                for kw in 0..g.k {
                    let Some(iw) = g.src(ow, kw, g.w) else {
                        continue;
                    };
                    f(o, (n * g.h + ih) * g.w + iw, kh * g.k + kw);
                }
            }
        }
    }
}

impl ConvGeom {
    /// The output columns `lo..hi` whose input column `ow·stride + kw·dil − pad` lies in the
    /// image, for kernel column `kw`.
    #[inline]
    fn valid_cols(&self, kw: usize) -> (usize, usize) {
        let off = kw * self.dil;
        let lo = self.pad.saturating_sub(off).div_ceil(self.stride);
        let hi = (self.w + self.pad)
            .saturating_sub(off)
            .div_ceil(self.stride)
            .min(self.wo);
        (lo, hi.max(lo))
    }
}

/// Each `c`-long vector of `v` repeated `times` times in place: a per-channel vector laid over a
/// row of pixels, so a whole row is one multiply-add loop with no per-pixel overhead.
#[inline(always)]
pub(super) fn tile(v: &[f32], c: usize, times: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.len() * times);
    for vec in v.chunks_exact(c) {
        for _ in 0..times {
            out.extend_from_slice(vec);
        }
    }
    out
}

/// `o[j] += a[j] * b[j]` over three equal-length slices.
#[inline(always)]
fn fma_rows(o: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
        *o += a * b;
    }
}

/// Depthwise forward, one output row and kernel tap at a time: the valid output columns are
/// computed once per tap. At stride 1 the columns a tap reads are contiguous, so the row is one
/// loop against the tap's weights tiled along the row; at other strides it is one loop per
/// pixel over the channels.
#[inline(always)]
pub(super) fn depthwise_forward(x: &[f32], g: &ConvGeom, taps: &[f32], out: &mut [f32]) {
    let c = g.cout;
    let wide = g.wo * c;
    let tiled = if g.stride == 1 {
        tile(taps, c, g.wo)
    } else {
        Vec::new()
    };
    for n in 0..g.n {
        for oh in 0..g.ho {
            let orow = &mut out[(n * g.ho + oh) * wide..][..wide];
            for kh in 0..g.k {
                let Some(ih) = g.src(oh, kh, g.h) else {
                    continue;
                };
                let xrow = &x[(n * g.h + ih) * g.w * c..][..g.w * c];
                for kw in 0..g.k {
                    let t = kh * g.k + kw;
                    let (lo, hi) = g.valid_cols(kw);
                    if g.stride == 1 {
                        if lo < hi {
                            let iw0 = lo + kw * g.dil - g.pad;
                            let len = (hi - lo) * c;
                            fma_rows(
                                &mut orow[lo * c..hi * c],
                                &xrow[iw0 * c..][..len],
                                &tiled[t * wide..][..len],
                            );
                        }
                        continue;
                    }
                    let w = &taps[t * c..][..c];
                    for ow in lo..hi {
                        let iw = ow * g.stride + kw * g.dil - g.pad;
                        fma_rows(&mut orow[ow * c..][..c], &xrow[iw * c..][..c], w);
                    }
                }
            }
        }
    }
}

/// Depthwise backward with [`depthwise_forward`]'s loop order; at stride 1 the weight gradient
/// accumulates per (tap, column, channel) and is folded over the columns at the end.
#[inline(always)]
pub(super) fn depthwise_backward(
    x: &[f32],
    g: &ConvGeom,
    taps: &[f32],
    dy: &[f32],
    mut dx: Option<&mut [f32]>,
    dtaps: &mut [f32],
) {
    let c = g.cout;
    let wide = g.wo * c;
    let unit = g.stride == 1;
    let (tiled, mut acc) = if unit {
        (tile(taps, c, g.wo), vec![0.0; taps.len() * g.wo])
    } else {
        (Vec::new(), Vec::new())
    };
    for n in 0..g.n {
        for oh in 0..g.ho {
            let drow = &dy[(n * g.ho + oh) * wide..][..wide];
            for kh in 0..g.k {
                let Some(ih) = g.src(oh, kh, g.h) else {
                    continue;
                };
                let base = (n * g.h + ih) * g.w * c;
                let xrow = &x[base..][..g.w * c];
                for kw in 0..g.k {
                    let t = kh * g.k + kw;
                    let (lo, hi) = g.valid_cols(kw);
                    if unit {
                        if lo < hi {
                            let iw0 = lo + kw * g.dil - g.pad;
                            let len = (hi - lo) * c;
                            let d = &drow[lo * c..hi * c];
                            fma_rows(
                                &mut acc[t * wide + lo * c..][..len],
                                &xrow[iw0 * c..][..len],
                                d,
                            );
                            if let Some(dx) = dx.as_deref_mut() {
                                fma_rows(
                                    &mut dx[base + iw0 * c..][..len],
                                    &tiled[t * wide..][..len],
                                    d,
                                );
                            }
                        }
                        continue;
                    }
                    let dw = &mut dtaps[t * c..][..c];
                    for ow in lo..hi {
                        let iw = ow * g.stride + kw * g.dil - g.pad;
                        fma_rows(dw, &xrow[iw * c..][..c], &drow[ow * c..][..c]);
                    }
                    if let Some(dx) = dx.as_deref_mut() {
                        let w = &taps[t * c..][..c];
                        let dxrow = &mut dx[base..][..g.w * c];
                        for ow in lo..hi {
                            let iw = ow * g.stride + kw * g.dil - g.pad;
                            fma_rows(&mut dxrow[iw * c..][..c], w, &drow[ow * c..][..c]);
                        }
                    }
                }
            }
        }
    }
    if unit {
        for (t, dw) in dtaps.chunks_exact_mut(c).enumerate() {
            for px in acc[t * wide..][..wide].chunks_exact(c) {
                for (d, v) in dw.iter_mut().zip(px) {
                    *d += v;
                }
            }
        }
    }
}

#[inline(always)]
fn grouped_forward(x: &[f32], g: &ConvGeom, w: &[f32], out: &mut [f32]) {
    let (cpg, opg, kk) = (g.cin / g.groups, g.cout / g.groups, g.k * g.k);
    for n in 0..g.n {
        for_each_tap(g, n, |o, i, t| {
            for co in 0..g.cout {
                let first = (co / opg) * cpg;
                let xs = &x[i * g.cin + first..][..cpg];
                let acc: f32 = (0..cpg)
                    .map(|ci| w[(co * cpg + ci) * kk + t] * xs[ci])
                    .sum();
                out[o * g.cout + co] += acc;
            }
        });
    }
}

#[inline(always)]
fn grouped_backward(
    x: &[f32],
    g: &ConvGeom,
    w: &[f32],
    dy: &[f32],
    mut dx: Option<&mut [f32]>,
) -> Vec<f32> {
    let (cpg, opg, kk) = (g.cin / g.groups, g.cout / g.groups, g.k * g.k);
    let mut dw = vec![0.0; w.len()];
    for n in 0..g.n {
        for_each_tap(g, n, |o, i, t| {
            for co in 0..g.cout {
                let d = dy[o * g.cout + co];
                let first = (co / opg) * cpg;
                for ci in 0..cpg {
                    dw[(co * cpg + ci) * kk + t] += x[i * g.cin + first + ci] * d;
                    if let Some(dx) = dx.as_deref_mut() {
                        dx[i * g.cin + first + ci] += w[(co * cpg + ci) * kk + t] * d;
                    }
                }
            }
        });
    }
    dw
}
