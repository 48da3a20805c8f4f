//! Pointwise and depthwise convolutions and 3x3-style pooling written as a few cheap burn tensor
//! ops, used by the executor instead of burn's fused ops where they measured faster.
//!
//! WHY: on burn 0.22.1's `flex` CPU backend with autodiff, several fused ops cost far more than
//! the arithmetic they stand for. On a `[64, 16, 32, 32]` input (forward / backward, ms):
//! - pointwise `conv2d` 16→16: 2-4 / 15-24. burn's backward runs a transposed conv and a conv of
//!   the input with the output gradient as kernel; here it is one batched matmul each way.
//! - depthwise `conv2d` (groups = channels): 3 / 45 (3x3), 7 / 108 (5x5), 11 / 200 (7x7). burn's
//!   weight gradient is one conv per group and its input gradient a grouped transposed conv.
//! - `max_pool2d` 3x3 s1 p1: 43 / 2.5 — the forward (`max_pool2d_with_indices` under autodiff) is
//!   the slow part; `avg_pool2d`-based exclude-pad average pool 3x3 s1: 18 / 33.
//!
//! The versions here shift with `pad`/`cat` (whose backward is a view of the gradient) into a
//! slightly larger "canvas", combine there element-wise or with a matmul, and crop once at the end.
//! Shifting with `slice` instead would be free forward but cost a zero-filled full-size tensor
//! per tap backward, and `max_pair` (`mask_where` on flex) is ~10x slower than the
//! compare-and-multiply used by [`max_pool2d`]. `fast_ops_profile` (ignored test) prints burn vs
//! these side by side; `cnn::executor` picks per op where each measured faster.

use burn::tensor::ops::PadMode;
use burn::tensor::{Slice, Tensor, TensorData};

/// Output length of a window spanning `span` elements, slid with `stride` over `len + 2*padding`.
fn out_len(len: usize, padding: usize, span: usize, stride: usize) -> usize {
    assert!(
        len + 2 * padding >= span,
        "window {span} larger than the padded input {len} + 2*{padding}"
    );
    (len + 2 * padding - span) / stride + 1
}

/// The `n` elements `start, start + step, …` of dimension `dim` (a view on flex).
fn strided<const D: usize>(
    x: Tensor<D>,
    dim: usize,
    start: usize,
    n: usize,
    step: usize,
) -> Tensor<D> {
    let mut s = [Slice::full(); D];
    s[dim] = Slice::new(
        start as isize,
        Some((start + (n - 1) * step + 1) as isize),
        step as isize,
    );
    x.slice(s)
}

/// Output positions `start + i*stride` of a canvas along H and W.
fn crop(m: Tensor<4>, start: usize, ho: usize, wo: usize, stride: usize) -> Tensor<4> {
    strided(strided(m, 2, start, ho, stride), 3, start, wo, stride)
}

fn zero_pad(x: Tensor<4>, padding: usize) -> Tensor<4> {
    if padding == 0 {
        return x;
    }
    x.pad(
        [(padding, padding), (padding, padding)],
        PadMode::Constant(0.0),
    )
}

/// `x` with `before` / `after` elements of `fill` added along `dim`: a concatenation, whose
/// backward is a view of the gradient.
fn shift(x: Tensor<4>, dim: usize, before: usize, after: usize, fill: f32) -> Tensor<4> {
    if before == 0 && after == 0 {
        return x;
    }
    let (dims, dev) = (x.dims(), x.device());
    let block = |n: usize| {
        let mut d = dims;
        d[dim] = n;
        Tensor::<4>::full(d, fill, &dev)
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(block(before));
    }
    parts.push(x);
    if after > 0 {
        parts.push(block(after));
    }
    Tensor::cat(parts, dim)
}

/// The `kernel` taps of a window along `dim` (dilation 1) as shifted copies of length
/// `len + kernel - 1`: tap `j` holds `x[r - (kernel - 1 - j)]` at canvas index `r`, so the window of
/// stride-1 output `i` (padding `p`) is the column `r = i + kernel - 1 - p` across the taps.
fn window_taps(x: Tensor<4>, dim: usize, kernel: usize, fill: f32) -> Vec<Tensor<4>> {
    (0..kernel)
        .map(|j| shift(x.clone(), dim, kernel - 1 - j, j, fill))
        .collect()
}

/// Exact element-wise maximum with the gradient on `a` for ties (like `max_pair`):
/// `a*[a >= b] + b*[b > a]`, the masks being constants.
fn max2(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let ma = a.clone().greater_equal(b.clone()).float();
    let mb = b.clone().greater(a.clone()).float();
    a * ma + b * mb
}

/// `max_pool2d` with a square window, symmetric padding (`2*padding <= kernel`, as the IR
/// requires) and dilation 1: a separable maximum (rows, then columns) over shifted copies filled
/// with `f32::MIN`, cropped with the stride. Every window holds a real pixel, so the fill never
/// wins. The gradient goes to one maximum per window; on exact ties the pick may differ from
/// burn's (it takes the first maximum of the first column holding one).
pub fn max_pool2d(x: Tensor<4>, kernel: usize, stride: usize, padding: usize) -> Tensor<4> {
    assert!(
        2 * padding <= kernel,
        "max pool padding {padding} > {kernel}/2"
    );
    let [_, _, h, w] = x.dims();
    let (ho, wo) = (
        out_len(h, padding, kernel, stride),
        out_len(w, padding, kernel, stride),
    );
    let fold = |t: Vec<Tensor<4>>| t.into_iter().reduce(max2).expect("kernel >= 1");
    let m = fold(window_taps(x, 2, kernel, f32::MIN));
    let m = fold(window_taps(m, 3, kernel, f32::MIN));
    crop(m, kernel - 1 - padding, ho, wo, stride)
}

/// Number of real (non-padding) elements in each window along one dimension.
fn window_counts(len: usize, padding: usize, kernel: usize, stride: usize) -> Vec<f32> {
    (0..out_len(len, padding, kernel, stride))
        .map(|i| {
            let lo = (i * stride).max(padding);
            let hi = (i * stride + kernel).min(padding + len);
            hi.saturating_sub(lo) as f32
        })
        .collect()
}

/// Average pooling whose divisor counts only real pixels (`count_include_pad = false`), square
/// window, symmetric padding: a separable sum over zero-filled shifted copies, cropped with the
/// stride, times a constant `1 / count` map.
pub fn avg_pool2d_exclude_pad(
    x: Tensor<4>,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    assert!(padding < kernel, "avg pool padding {padding} >= {kernel}");
    let [_, _, h, w] = x.dims();
    let ch = window_counts(h, padding, kernel, stride);
    let cw = window_counts(w, padding, kernel, stride);
    let inv: Vec<f32> = ch
        .iter()
        .flat_map(|a| cw.iter().map(move |b| 1.0 / (a * b)))
        .collect();
    let (ho, wo) = (ch.len(), cw.len());
    let inv: Tensor<4> = Tensor::from_data(TensorData::new(inv, [1, 1, ho, wo]), &x.device());
    let fold = |t: Vec<Tensor<4>>| t.into_iter().reduce(|a, b| a + b).expect("kernel >= 1");
    let m = fold(window_taps(x, 2, kernel, 0.0));
    let m = fold(window_taps(m, 3, kernel, 0.0));
    crop(m, kernel - 1 - padding, ho, wo, stride) * inv
}

/// Pointwise `conv2d` (groups 1, weight `[Cout, Cin, 1, 1]`, optional bias `[Cout]`): the weight
/// `[1, Cout, Cin]` times the (zero-padded, strided) input `[N, Cin, H*W]`, one batched matmul.
pub fn conv1x1(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    let [n, cin, h, w] = x.dims();
    let [cout, cin_w, kh, kw] = weight.dims();
    assert!(
        cin_w == cin && kh == 1 && kw == 1,
        "1x1 conv weight {:?} for {cin} channels",
        weight.dims()
    );
    let (ho, wo) = (
        out_len(h, padding, 1, stride),
        out_len(w, padding, 1, stride),
    );
    let xs = zero_pad(x, padding);
    let xs = if stride > 1 {
        crop(xs, 0, ho, wo, stride)
    } else {
        xs
    };
    let w2: Tensor<3> = weight.reshape([1, cout, cin]);
    let y = w2
        .matmul(xs.reshape([n, cin, ho * wo]))
        .reshape([n, cout, ho, wo]);
    match bias {
        Some(b) => y + b.reshape([1, cout, 1, 1]),
        None => y,
    }
}

/// Checks a depthwise weight `[C, 1, k, k]` against `x` and returns `(k, span, ho, wo)`.
fn depthwise_geometry(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> (usize, usize, usize, usize) {
    let [_, c, h, w] = x.dims();
    let [cw, one, kh, kw] = weight.dims();
    assert!(
        cw == c && one == 1 && kh == kw,
        "depthwise weight {:?} for {c} channels",
        weight.dims()
    );
    let span = dilation * (kh - 1);
    (
        kh,
        span,
        out_len(h, padding, span + 1, stride),
        out_len(w, padding, span + 1, stride),
    )
}

/// Depthwise `conv2d` (`groups == channels`, weight `[C, 1, k, k]`, optional bias `[C]`),
/// symmetric zero padding `<= dilation*(k-1)`: per tap the input times the tap's per-channel
/// weight, zero-padded into place on a `[H + D, W + D]` canvas (`D = dilation*(k-1)`), summed
/// and cropped with the stride. Costs `k²` element-wise passes each way; see
/// [`depthwise_conv2d_banded`] for large kernels.
pub fn depthwise_conv2d_taps(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Tensor<4> {
    let (k, span, ho, wo) = depthwise_geometry(&x, &weight, stride, padding, dilation);
    assert!(padding <= span, "padding {padding} > dilated span {span}");
    let c = x.dims()[1];
    let wt = weight.reshape([c, k * k]);
    let mut acc: Option<Tensor<4>> = None;
    for ky in 0..k {
        for kx in 0..k {
            let t = ky * k + kx;
            let wk = wt.clone().slice([0..c, t..t + 1]).reshape([1, c, 1, 1]);
            let term = (x.clone() * wk).pad(
                [
                    (span - ky * dilation, ky * dilation),
                    (span - kx * dilation, kx * dilation),
                ],
                PadMode::Constant(0.0),
            );
            acc = Some(match acc {
                None => term,
                Some(a) => a + term,
            });
        }
    }
    let y = crop(acc.expect("k >= 1"), span - padding, ho, wo, stride);
    match bias {
        Some(b) => y + b.reshape([1, c, 1, 1]),
        None => y,
    }
}

/// Depthwise `conv2d` as in [`depthwise_conv2d_taps`] (any symmetric padding), with each kernel
/// row's column taps as a banded matrix per channel: `Z_ky = Xpad · T_ky`, where
/// `T_ky[c] = Σ_kx w[c, ky, kx] · E_kx` and `E_kx` is the constant 0/1 matrix picking padded column
/// `i*stride + kx*dilation` for output column `i`. One batched matmul per kernel row (cost grows
/// with `k`, not `k²`); the `k` row products are shifted along H, added and cropped.
pub fn depthwise_conv2d_banded(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Tensor<4> {
    let (k, span, ho, wo) = depthwise_geometry(&x, &weight, stride, padding, dilation);
    let [_, c, _, w] = x.dims();
    let wp = w + 2 * padding;
    let mut e = vec![0f32; k * wp * wo];
    for kx in 0..k {
        for i in 0..wo {
            e[(kx * wp + i * stride + kx * dilation) * wo + i] = 1.0;
        }
    }
    let e: Tensor<2> = Tensor::from_data(TensorData::new(e, [k, wp * wo]), &x.device());
    // [C*ky, kx] x [kx, Wp*Wo] -> the banded matrices [C, ky, Wp, Wo].
    let t: Tensor<4> = weight.reshape([c * k, k]).matmul(e).reshape([c, k, wp, wo]);
    let xp = zero_pad(x, padding);
    let mut acc: Option<Tensor<4>> = None;
    for ky in 0..k {
        let tk = t
            .clone()
            .slice([0..c, ky..ky + 1, 0..wp, 0..wo])
            .reshape([1, c, wp, wo]);
        // Row r of Z_ky (padded coordinates) moves to canvas row r + span - ky*dilation.
        let z = shift(
            xp.clone().matmul(tk),
            2,
            span - ky * dilation,
            ky * dilation,
            0.0,
        );
        acc = Some(match acc {
            None => z,
            Some(a) => a + z,
        });
    }
    // Output row i sums Z_ky[i*stride + ky*dilation] = canvas row span + i*stride.
    let y = strided(acc.expect("k >= 1"), 2, span, ho, stride);
    match bias {
        Some(b) => y + b.reshape([1, c, 1, 1]),
        None => y,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use burn::tensor::module::{conv2d, max_pool2d as burn_max_pool2d};
    use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
    use burn::tensor::{Device, Distribution};

    use crate::cnn::executor::avg_pool_exclude_pad_burn;

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    /// `|a - b| <= 1e-4 * |b| + 1e-6 * max|b|` element-wise.
    fn assert_close(what: &str, a: Tensor<4>, b: Tensor<4>) {
        assert_eq!(a.dims(), b.dims(), "{what}: shape");
        let a = a.into_data().try_to_vec::<f32>().unwrap();
        let b = b.into_data().try_to_vec::<f32>().unwrap();
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * y.abs() + 1e-6 * scale,
                "{what}[{i}]: {x} vs {y} (max |ref| {scale})"
            );
        }
    }

    fn rand(shape: [usize; 4], std: f64) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, std), &dev()).require_grad()
    }

    /// A shuffled ramp over [-2, 2) (trainable): every element differs, so each max-pool window
    /// has one maximum and the gradient's route cannot depend on how ties are broken, which is
    /// allowed to differ from burn's (`max_pool2d`). Normal draws tie in a window about once in
    /// a few thousand runs. Seeded locally: burn's generator is shared by tests running at once.
    pub(crate) fn distinct_values(shape: [usize; 4], seed: u64) -> Tensor<4> {
        use rand::{SeedableRng, seq::SliceRandom};
        let n = shape.iter().product::<usize>();
        let mut v: Vec<f32> = (0..n).map(|i| 4.0 * i as f32 / n as f32 - 2.0).collect();
        v.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        Tensor::<4>::from_data(TensorData::new(v, shape), &dev()).require_grad()
    }

    /// Forward values, and the gradients w.r.t. every input of `sum(out * r)` (random `r`, so
    /// every output element weighs differently), agree between `fast` and `reference`.
    fn check(
        what: &str,
        inputs: &[Tensor<4>],
        fast: &dyn Fn(&[Tensor<4>]) -> Tensor<4>,
        reference: &dyn Fn(&[Tensor<4>]) -> Tensor<4>,
    ) {
        let yr = reference(inputs);
        let yf = fast(inputs);
        let r: Tensor<4> = Tensor::random(yr.dims(), Distribution::Normal(0.0, 1.0), &dev());
        assert_close(&format!("{what} forward"), yf.clone(), yr.clone());
        let gf = (yf * r.clone()).sum().backward();
        let gr = (yr * r).sum().backward();
        for (k, t) in inputs.iter().enumerate() {
            assert_close(
                &format!("{what} grad of input {k}"),
                t.grad(&gf).expect("fast grad"),
                t.grad(&gr).expect("reference grad"),
            );
        }
    }

    const SIZES: [(usize, usize); 3] = [(7, 7), (8, 6), (5, 9)];

    #[test]
    fn max_pool_matches_burn() {
        for (h, w) in SIZES {
            for (k, s, p) in [
                (3, 1, 1),
                (3, 2, 1),
                (2, 2, 0),
                (3, 3, 0),
                (5, 2, 2),
                (5, 1, 2),
            ] {
                check(
                    &format!("max_pool k{k} s{s} p{p} {h}x{w}"),
                    &[distinct_values([2, 3, h, w], (h * w) as u64)],
                    &|t| max_pool2d(t[0].clone(), k, s, p),
                    &|t| {
                        let o = MaxPoolOptions::new([k, k])
                            .with_stride([s, s])
                            .with_padding([p, p]);
                        burn_max_pool2d(t[0].clone(), o)
                    },
                );
            }
        }
    }

    #[test]
    fn avg_pool_matches_burn() {
        for (h, w) in SIZES {
            for (k, s, p) in [(3, 1, 1), (3, 2, 1), (2, 2, 0), (5, 2, 2), (5, 1, 2)] {
                check(
                    &format!("avg_pool k{k} s{s} p{p} {h}x{w}"),
                    &[rand([2, 3, h, w], 1.0)],
                    &|t| avg_pool2d_exclude_pad(t[0].clone(), k, s, p),
                    &|t| avg_pool_exclude_pad_burn(t[0].clone(), k, s, p),
                );
            }
        }
    }

    #[test]
    fn conv1x1_matches_burn() {
        for (h, w) in SIZES {
            for (s, p) in [(1, 0), (2, 0), (1, 1), (2, 1)] {
                let (x, wt, b) = (
                    rand([2, 3, h, w], 1.0),
                    rand([5, 3, 1, 1], 0.5),
                    rand([5, 1, 1, 1], 1.0),
                );
                check(
                    &format!("conv1x1 s{s} p{p} {h}x{w}"),
                    &[x, wt, b],
                    &|t| {
                        conv1x1(
                            t[0].clone(),
                            t[1].clone(),
                            Some(t[2].clone().reshape([5])),
                            s,
                            p,
                        )
                    },
                    &|t| {
                        let o = ConvOptions::new([s, s], [p, p], [1, 1], 1);
                        conv2d(
                            t[0].clone(),
                            t[1].clone(),
                            Some(t[2].clone().reshape([5])),
                            o,
                        )
                    },
                );
            }
        }
    }

    type DepthwiseFn =
        fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, usize, usize, usize) -> Tensor<4>;

    fn check_depthwise(name: &str, f: DepthwiseFn) {
        let c = 4;
        for (h, w) in SIZES {
            for (k, d) in [(3, 1), (5, 1), (7, 1), (3, 2), (5, 2), (7, 2)] {
                let p = d * (k - 1) / 2;
                if h + 2 * p < d * (k - 1) + 1 || w + 2 * p < d * (k - 1) + 1 {
                    continue;
                }
                for s in [1, 2] {
                    let x = rand([2, c, h, w], 1.0);
                    let (wt, b) = (rand([c, 1, k, k], 0.3), rand([c, 1, 1, 1], 1.0));
                    check(
                        &format!("{name} k{k} d{d} s{s} {h}x{w}"),
                        &[x, wt, b],
                        &|t| {
                            f(
                                t[0].clone(),
                                t[1].clone(),
                                Some(t[2].clone().reshape([c])),
                                s,
                                p,
                                d,
                            )
                        },
                        &|t| {
                            let o = ConvOptions::new([s, s], [p, p], [d, d], c);
                            conv2d(
                                t[0].clone(),
                                t[1].clone(),
                                Some(t[2].clone().reshape([c])),
                                o,
                            )
                        },
                    );
                }
            }
        }
    }

    #[test]
    fn depthwise_taps_matches_burn() {
        check_depthwise("dw taps", depthwise_conv2d_taps);
    }

    #[test]
    fn depthwise_banded_matches_burn() {
        check_depthwise("dw banded", depthwise_conv2d_banded);
        // Padding other than "same" (the banded form takes any).
        let (x, wt) = (rand([2, 3, 6, 7], 1.0), rand([3, 1, 3, 3], 0.3));
        check(
            "dw banded k3 p0",
            &[x, wt],
            &|t| depthwise_conv2d_banded(t[0].clone(), t[1].clone(), None, 1, 0, 1),
            &|t| {
                let o = ConvOptions::new([1, 1], [0, 0], [1, 1], 3);
                conv2d(t[0].clone(), t[1].clone(), None, o)
            },
        );
    }

    type UnaryOp = Box<dyn Fn(Tensor<4>) -> Tensor<4>>;

    /// Burn's op vs the fast op(s): forward and backward wall time, best of 5 interleaved runs
    /// (the machine may be shared: compare the columns of one run, not absolute numbers). Stride-2
    /// rows are there to show why the executor keeps burn's op for them; the third, smaller input
    /// is the deeper end of a Fashion-MNIST net.
    /// `cargo test -p ghnq-core --lib fast_ops_profile -- --ignored --nocapture`; set
    /// `FAST_OPS_FILTER=dw` to time only the ops whose name contains `dw`, and
    /// `FAST_OPS_SHAPES=32x128x7x7,8x16x32x32` for other inputs (N x C x H x W).
    #[test]
    #[ignore]
    fn fast_ops_profile() {
        let filter = std::env::var("FAST_OPS_FILTER").unwrap_or_default();
        let time = |f: &UnaryOp, x: &Tensor<4>| {
            let t = std::time::Instant::now();
            let l = f(x.clone()).sum();
            let _ = l.clone().into_scalar::<f32>();
            let tf = t.elapsed().as_secs_f64() * 1e3;
            let g = l.backward();
            let _ = x.grad(&g).unwrap().sum().into_scalar::<f32>();
            (tf, t.elapsed().as_secs_f64() * 1e3 - tf)
        };
        let shapes: Vec<[usize; 4]> = match std::env::var("FAST_OPS_SHAPES") {
            Ok(v) => v
                .split(',')
                .map(|s| {
                    let d: Vec<usize> = s.split('x').map(|n| n.parse().unwrap()).collect();
                    [d[0], d[1], d[2], d[3]]
                })
                .collect(),
            Err(_) => vec![[64, 16, 32, 32], [32, 32, 28, 28], [32, 64, 14, 14]],
        };
        for [n, c, h, w] in shapes {
            eprintln!("input [{n}, {c}, {h}, {w}]: best of 5, ms forward + backward = total");
            let x = rand([n, c, h, w], 1.0);
            let mut ops: Vec<(String, Vec<(&str, UnaryOp)>)> = Vec::new();
            for (co, s) in [(c, 1), (c, 2), (2 * c, 1)] {
                let wt = rand([co, c, 1, 1], 0.1);
                let (w1, w2) = (wt.clone(), wt);
                ops.push((
                    format!("conv 1x1 {c}->{co} s{s}"),
                    vec![
                        (
                            "burn",
                            Box::new(move |x| {
                                let o = ConvOptions::new([s, s], [0, 0], [1, 1], 1);
                                conv2d(x, w1.clone(), None, o)
                            }),
                        ),
                        (
                            "matmul",
                            Box::new(move |x| conv1x1(x, w2.clone(), None, s, 0)),
                        ),
                    ],
                ));
            }
            for (k, d, s) in [
                (3, 1, 1),
                (5, 1, 1),
                (7, 1, 1),
                (3, 2, 1),
                (5, 2, 1),
                (7, 2, 1),
                (3, 1, 2),
                (5, 2, 2),
            ] {
                let wt = rand([c, 1, k, k], 0.3);
                let p = d * (k - 1) / 2;
                let (w1, w2, w3) = (wt.clone(), wt.clone(), wt);
                ops.push((
                    format!("dw {k}x{k} d{d} s{s}"),
                    vec![
                        (
                            "burn",
                            Box::new(move |x| {
                                let o = ConvOptions::new([s, s], [p, p], [d, d], c);
                                conv2d(x, w1.clone(), None, o)
                            }),
                        ),
                        (
                            "taps",
                            Box::new(move |x| depthwise_conv2d_taps(x, w2.clone(), None, s, p, d)),
                        ),
                        (
                            "banded",
                            Box::new(move |x| {
                                depthwise_conv2d_banded(x, w3.clone(), None, s, p, d)
                            }),
                        ),
                    ],
                ));
            }
            for s in [1, 2] {
                ops.push((
                    format!("max_pool 3x3 s{s}"),
                    vec![
                        (
                            "burn",
                            Box::new(move |x| {
                                let o = MaxPoolOptions::new([3, 3])
                                    .with_stride([s, s])
                                    .with_padding([1, 1]);
                                burn_max_pool2d(x, o)
                            }),
                        ),
                        ("fast", Box::new(move |x| max_pool2d(x, 3, s, 1))),
                    ],
                ));
                ops.push((
                    format!("avg_pool 3x3 s{s}"),
                    vec![
                        (
                            "burn",
                            Box::new(move |x| avg_pool_exclude_pad_burn(x, 3, s, 1)),
                        ),
                        (
                            "fast",
                            Box::new(move |x| avg_pool2d_exclude_pad(x, 3, s, 1)),
                        ),
                    ],
                ));
            }
            for (name, fs) in ops.iter().filter(|(n, _)| n.contains(&filter)) {
                let mut best = vec![(f64::MAX, 0.0); fs.len()];
                for _ in 0..5 {
                    for (b, (_, f)) in best.iter_mut().zip(fs) {
                        let (tf, tb) = time(f, &x);
                        if tf + tb < b.0 + b.1 {
                            *b = (tf, tb);
                        }
                    }
                }
                let mut line = format!("  {name:20}");
                for ((label, _), (tf, tb)) in fs.iter().zip(&best) {
                    line += &format!(" {label} {tf:5.1}+{tb:5.1}={:6.1} ", tf + tb);
                }
                let base = best[0].0 + best[0].1;
                for (tf, tb) in &best[1..] {
                    line += &format!(" x{:.2}", base / (tf + tb));
                }
                eprintln!("{line}");
            }
        }
    }
}
