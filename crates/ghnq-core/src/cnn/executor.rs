//! A functional float executor: runs any IR [`Net`] on an NCHW batch with parameters given as
//! tensors. Nothing is a burn module here, so the same code serves GHN-predicted parameters
//! (gradients flow back into the GHN) and plain trainable leaves.
//!
//! Semantics follow the IR contract (`arch::ir`): PyTorch conv geometry with symmetric zero padding,
//! average pooling without counting padding, linear layers on the HWC-flattened input.

use burn::tensor::activation::{relu, relu6};
use burn::tensor::module::{avg_pool2d, batch_norm, batch_norm_train, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Distribution, Tensor, TensorData};

use super::fast_ops;
use super::params::{LayerParams, ParamSet};
use crate::arch::{Net, Op};

/// BatchNorm statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    /// Statistics of the current batch (GHN-2 practice, training and evaluation; GHN_SPEC §3.5).
    Batch,
    /// Stored running statistics (falls back to batch statistics where none are stored).
    Running,
}

/// BatchNorm epsilon (PyTorch default).
pub const BN_EPS: f64 = 1e-5;

#[derive(Debug, Clone)]
enum Act {
    /// `[N, C, H, W]`.
    Map(Tensor<4>),
    /// `[N, F]` (after global pooling or a linear layer).
    Flat(Tensor<2>),
}

impl Act {
    fn map(self) -> Tensor<4> {
        match self {
            Act::Map(t) => t,
            Act::Flat(t) => {
                let [n, f] = t.dims();
                t.reshape([n, f, 1, 1])
            }
        }
    }

    /// HWC flattening (the IR's linear-layer convention).
    fn flat_hwc(self) -> Tensor<2> {
        match self {
            Act::Flat(t) => t,
            Act::Map(t) => {
                let [n, c, h, w] = t.dims();
                t.permute([0, 2, 3, 1]).reshape([n, h * w * c])
            }
        }
    }

    fn apply(self, f: impl Fn(Tensor<4>) -> Tensor<4>, g: impl Fn(Tensor<2>) -> Tensor<2>) -> Act {
        match self {
            Act::Map(t) => Act::Map(f(t)),
            Act::Flat(t) => Act::Flat(g(t)),
        }
    }
}

/// Run `net` on `x` (`[N, C, H, W]`, normalised) and return the logits `[N, classes]`.
/// `train` enables dropout. Dead nodes (not reaching the classifier) are skipped.
pub fn forward(net: &Net, params: &ParamSet, x: Tensor<4>, bn: BnMode, train: bool) -> Tensor<2> {
    forward_seeded(net, params, x, bn, train, None)
}

/// [`forward`] whose dropout masks come from [`native::dropout_mask`] with `dropout_seed` (drawn
/// in NHWC order, as the native executor draws them) instead of burn's generator, so the burn
/// and native engines of meta-training see the same masks.
///
/// [`native::dropout_mask`]: super::native::dropout_mask
pub fn forward_seeded(
    net: &Net,
    params: &ParamSet,
    x: Tensor<4>,
    bn: BnMode,
    train: bool,
    dropout_seed: Option<u64>,
) -> Tensor<2> {
    let live = net.reaches_output();
    let mut acts: Vec<Option<Act>> = vec![None; net.nodes.len()];
    // Free an activation after its last consumer.
    let mut last_use = vec![0usize; net.nodes.len()];
    for (i, node) in net.nodes.iter().enumerate() {
        for &j in &node.inputs {
            last_use[j] = i;
        }
    }
    let mut input = Some(x);
    for (i, node) in net.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let arg = |k: usize| {
            acts[node.inputs[k]]
                .clone()
                .expect("input computed before use")
        };
        let out = match (&node.op, &params.layers[i]) {
            (Op::Input, _) => Act::Map(input.take().expect("one input node")),
            (
                Op::Conv {
                    stride,
                    dilation,
                    padding,
                    groups,
                    ..
                },
                LayerParams::Conv { weight, bias },
            ) => Act::Map(conv(
                arg(0).map(),
                weight.clone(),
                bias.clone(),
                [*stride, *padding, *dilation, *groups],
            )),
            (
                Op::BatchNorm { .. },
                LayerParams::BatchNorm {
                    gamma,
                    beta,
                    running,
                },
            ) => {
                let a = arg(0);
                let flat = matches!(a, Act::Flat(_));
                let t = a.map();
                let y = match (bn, running) {
                    (BnMode::Running, Some((mean, var))) => batch_norm(
                        t,
                        gamma.clone(),
                        beta.clone(),
                        mean.clone(),
                        var.clone(),
                        BN_EPS,
                    ),
                    _ => batch_norm_train(t, gamma.clone(), beta.clone(), BN_EPS).output,
                };
                if flat {
                    let [n, c, _, _] = y.dims();
                    Act::Flat(y.reshape([n, c]))
                } else {
                    Act::Map(y)
                }
            }
            (Op::Relu { six: false }, _) => arg(0).apply(relu, relu),
            (Op::Relu { six: true }, _) => arg(0).apply(relu6, relu6),
            (
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                },
                _,
            ) => Act::Map(max_pool(arg(0).map(), *kernel, *stride, *padding)),
            (
                Op::AvgPool {
                    kernel,
                    stride,
                    padding,
                },
                _,
            ) => Act::Map(avg_pool_exclude_pad(
                arg(0).map(),
                *kernel,
                *stride,
                *padding,
            )),
            (Op::GlobalAvgPool, _) => {
                let t = arg(0).map();
                let [n, c, _, _] = t.dims();
                Act::Flat(t.mean_dim(3).mean_dim(2).reshape([n, c]))
            }
            (Op::Add, _) => {
                let mut acc = arg(0);
                for k in 1..node.inputs.len() {
                    let b = arg(k);
                    acc = match (acc, b) {
                        (Act::Flat(a), b) => Act::Flat(a + b.flat_hwc()),
                        (Act::Map(a), b) => Act::Map(a + b.map()),
                    };
                }
                acc
            }
            (Op::Concat, _) => {
                let parts: Vec<Act> = (0..node.inputs.len()).map(arg).collect();
                if parts.iter().all(|p| matches!(p, Act::Flat(_))) {
                    Act::Flat(Tensor::cat(
                        parts.into_iter().map(Act::flat_hwc).collect(),
                        1,
                    ))
                } else {
                    Act::Map(Tensor::cat(parts.into_iter().map(Act::map).collect(), 1))
                }
            }
            (Op::Linear { .. }, LayerParams::Linear { weight, bias }) => {
                let h = arg(0).flat_hwc().matmul(weight.clone().transpose());
                Act::Flat(match bias {
                    Some(b) => h + b.clone().unsqueeze_dim(0),
                    None => h,
                })
            }
            (Op::Dropout { p }, _) => {
                let a = arg(0);
                if train && *p > 0.0 {
                    let keep = 1.0 - *p as f64;
                    match dropout_seed {
                        Some(seed) => a.apply(
                            |t| {
                                let [n, c, h, w] = t.dims();
                                let m = super::native::dropout_mask(seed, i, n * h * w * c, keep);
                                let m = Tensor::<4>::from_data(
                                    TensorData::new(m, [n, h, w, c]),
                                    &t.device(),
                                )
                                .permute([0, 3, 1, 2]);
                                t * m
                            },
                            |t| {
                                let m = super::native::dropout_mask(
                                    seed,
                                    i,
                                    t.dims().iter().product(),
                                    keep,
                                );
                                t.clone()
                                    * Tensor::<2>::from_data(
                                        TensorData::new(m, t.dims()),
                                        &t.device(),
                                    )
                            },
                        ),
                        None => {
                            let drop = |t: Tensor<4>| {
                                let m = t.random_like(Distribution::Bernoulli(keep));
                                t * m / keep
                            };
                            let drop2 = |t: Tensor<2>| {
                                let m = t.random_like(Distribution::Bernoulli(keep));
                                t * m / keep
                            };
                            a.apply(drop, drop2)
                        }
                    }
                } else {
                    a
                }
            }
            (op, _) => panic!(
                "node {i} '{}': no parameters given for op {}",
                node.name,
                op.type_name()
            ),
        };
        acts[i] = Some(out);
        for &j in &node.inputs {
            if last_use[j] == i {
                acts[j] = None;
            }
        }
    }
    acts.pop().flatten().expect("classifier output").flat_hwc()
}

// Op choice on burn-flex (why: `cnn::fast_ops`). A replacement is used where it measured faster,
// forward + backward, on both a [64, 16, 32, 32] and a [32, 32, 28, 28] input, and on the smaller
// maps of deeper stages too (`fast_ops_profile`; speed-ups in that order, then [32, 64, 14, 14]
// and [32, 128, 7, 7]):
// - pointwise conv (groups 1, 1x1), any stride: a matmul, x2.2-2.9 (x1.8-2.4, x1.1-1.4);
// - depthwise conv, stride 1, maps of side >= `FAST_DW_MIN_SIDE`: shifted taps for k = 3
//   (x1.2-1.4), banded matmuls for k >= 5 (x1.1-2.0). On 14x14 they tie or lose (dilated ones
//   x0.7) and on 7x7 they lose (x0.3-0.7): the canvas grows by the dilated span on each side;
// - max pool, stride 1, side >= `FAST_MAX_POOL_MIN_SIDE`: x1.1-1.2 (x1.3; x0.9 on 7x7);
// - exclude-pad avg pool, stride 1: x4 (x3.5, x2.4).
// Burn's op is kept for stride-2 pools and depthwise convs (its stride-2 backward is already 3x
// cheaper than its stride-1 one; the replacements were x0.3-0.6, avg pool x0.8-1.3), dense convs
// with k > 1 (a matmul formulation only tied), and grouped convs that are not depthwise.

/// Smallest map side (min of H, W) where the fast depthwise conv measured faster.
const FAST_DW_MIN_SIDE: usize = 24;
/// Smallest map side where the fast max pool measured faster.
const FAST_MAX_POOL_MIN_SIDE: usize = 12;

/// `conv2d` with the IR's geometry (`[stride, padding, dilation, groups]`, symmetric), through
/// the formulation that measured fastest (see above).
pub fn conv(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    [stride, padding, dilation, groups]: [usize; 4],
) -> Tensor<4> {
    let [cout, cin_per_group, k, _] = weight.dims();
    let [_, cin, h, w] = x.dims();
    if groups == 1 && k == 1 {
        return fast_ops::conv1x1(x, weight, bias, stride, padding);
    }
    let depthwise = groups == cin && cin_per_group == 1 && cout == cin;
    if depthwise && stride == 1 && k >= 3 && h.min(w) >= FAST_DW_MIN_SIDE {
        if k >= 5 {
            return fast_ops::depthwise_conv2d_banded(x, weight, bias, stride, padding, dilation);
        }
        if padding <= dilation * (k - 1) {
            return fast_ops::depthwise_conv2d_taps(x, weight, bias, stride, padding, dilation);
        }
    }
    let opts = ConvOptions::new([stride; 2], [padding; 2], [dilation; 2], groups);
    conv2d(x, weight, bias, opts)
}

/// Max pooling, square window, symmetric padding.
pub fn max_pool(x: Tensor<4>, kernel: usize, stride: usize, padding: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if stride == 1 && h.min(w) >= FAST_MAX_POOL_MIN_SIDE {
        return fast_ops::max_pool2d(x, kernel, stride, padding);
    }
    let o = MaxPoolOptions::new([kernel; 2])
        .with_stride([stride; 2])
        .with_padding([padding; 2]);
    max_pool2d(x, o)
}

/// Average pooling whose divisor counts only real pixels (`count_include_pad = false`).
pub fn avg_pool_exclude_pad(
    x: Tensor<4>,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    if stride == 1 {
        return fast_ops::avg_pool2d_exclude_pad(x, kernel, stride, padding);
    }
    avg_pool_exclude_pad_burn(x, kernel, stride, padding)
}

/// [`avg_pool_exclude_pad`] with burn's `avg_pool2d`: a zero-padded sum pool divided by the pooled
/// ones-mask, so it is exact on every backend.
pub fn avg_pool_exclude_pad_burn(
    x: Tensor<4>,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    let opts = AvgPoolOptions::new([kernel; 2])
        .with_stride([stride; 2])
        .with_padding([padding; 2])
        .with_count_include_pad(true);
    if padding == 0 {
        return avg_pool2d(x, opts);
    }
    let [_, _, h, w] = x.dims();
    let ones: Tensor<4> = Tensor::ones([1, 1, h, w], &x.device());
    let frac = avg_pool2d(ones, opts.clone());
    avg_pool2d(x, opts) / frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{ImageShape, NetBuilder};
    use burn::tensor::Device;

    #[test]
    fn avg_pool_excludes_padding() {
        let dev = Device::flex();
        let x: Tensor<4> = Tensor::ones([1, 1, 4, 4], &dev);
        let y = avg_pool_exclude_pad(x, 3, 1, 1);
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|&a| (a - 1.0).abs() < 1e-6), "{v:?}");
        // corner of a ramp: mean of the 2x2 real pixels only.
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], &dev)
            .reshape([1, 1, 3, 3]);
        let y: Vec<f32> = avg_pool_exclude_pad(x, 3, 1, 1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!((y[0] - (1.0 + 2.0 + 4.0 + 5.0) / 4.0).abs() < 1e-5, "{y:?}");
    }

    /// A net whose maps are large enough for every fast path (`fast_ops`) gives the logits and
    /// input gradient of the same chain written with burn's ops. The max pool comes first, on an
    /// input without ties: after a conv the two chains' values differ by rounding, and a window
    /// whose two largest values are that close would route the gradient differently (seen once
    /// in about 2,000 random draws).
    #[test]
    fn fast_paths_equal_burn_ops() {
        let dev = Device::flex().autodiff();
        let side = FAST_DW_MIN_SIDE.max(FAST_MAX_POOL_MIN_SIDE);
        let mut b = NetBuilder::new(
            "fast",
            ImageShape {
                h: side,
                w: side,
                c: 2,
            },
            3,
        );
        let mp = b
            .push(
                "mp",
                Op::MaxPool {
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
                vec![0],
            )
            .unwrap();
        let pw = b.conv("pw", mp, 4, 1, 1).unwrap();
        let d3 = b.dw_conv("dw3", pw, 3, 1, 1).unwrap();
        let d5 = b.dw_conv("dw5", d3, 5, 1, 2).unwrap();
        let ap = b
            .push(
                "ap",
                Op::AvgPool {
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
                vec![d5],
            )
            .unwrap();
        let g = b.push("gap", Op::GlobalAvgPool, vec![ap]).unwrap();
        b.linear("fc", g, 3).unwrap();
        let net = b.finish().unwrap();
        let p = ParamSet::init_random_seeded(&net, 1, &dev);
        let conv_w = |i: usize| match &p.layers[i] {
            LayerParams::Conv { weight, .. } => weight.clone(),
            _ => unreachable!(),
        };
        let x = fast_ops::tests::distinct_values([2, 2, side, side], 1);

        let fast = forward(&net, &p, x.clone(), BnMode::Batch, false);
        let mpo = MaxPoolOptions::new([3, 3])
            .with_stride([1, 1])
            .with_padding([1, 1]);
        let opts = |pad, dil, groups| ConvOptions::new([1, 1], [pad; 2], [dil; 2], groups);
        let h = conv2d(max_pool2d(x.clone(), mpo), conv_w(pw), None, opts(0, 1, 1));
        let h = conv2d(h, conv_w(d3), None, opts(1, 1, 4));
        let h = conv2d(h, conv_w(d5), None, opts(4, 2, 4));
        let h = avg_pool_exclude_pad_burn(h, 3, 1, 1);
        let h = h.mean_dim(3).mean_dim(2).reshape([2, 4]);
        let LayerParams::Linear { weight, bias } = &p.layers[net.nodes.len() - 1] else {
            unreachable!()
        };
        let reference =
            h.matmul(weight.clone().transpose()) + bias.clone().unwrap().unsqueeze_dim(0);

        let close = |a: Vec<f32>, b: Vec<f32>, what: &str| {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-4 * y.abs() + 1e-6 * scale,
                    "{what}: {x} vs {y}"
                );
            }
        };
        let r: Tensor<2> = Tensor::random([2, 3], Distribution::Normal(0.0, 1.0), &dev);
        let gf = (fast.clone() * r.clone()).sum().backward();
        let gr = (reference.clone() * r).sum().backward();
        close(
            fast.into_data().try_to_vec().unwrap(),
            reference.into_data().try_to_vec().unwrap(),
            "logits",
        );
        close(
            x.grad(&gf).unwrap().into_data().try_to_vec().unwrap(),
            x.grad(&gr).unwrap().into_data().try_to_vec().unwrap(),
            "input gradient",
        );
    }

    #[test]
    fn runs_every_op_with_hwc_linear() {
        let dev = Device::flex();
        let mut b = NetBuilder::new("ops", ImageShape { h: 8, w: 8, c: 2 }, 3);
        let c = b.conv("c", 0, 4, 3, 1).unwrap();
        let n = b.bn("bn", c).unwrap();
        let r = b.relu("r", n, true).unwrap();
        let d = b.dw_conv("dw", r, 3, 2, 2).unwrap();
        let m = b
            .push(
                "mp",
                Op::MaxPool {
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                },
                vec![r],
            )
            .unwrap();
        let a = b
            .push(
                "ap",
                Op::AvgPool {
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
                vec![d],
            )
            .unwrap();
        let s = b.push("add", Op::Add, vec![a, m]).unwrap();
        let k = b.push("cat", Op::Concat, vec![s, d]).unwrap();
        let f = b.linear("fc1", k, 5).unwrap();
        let dr = b.push("drop", Op::Dropout { p: 0.5 }, vec![f]).unwrap();
        b.linear("fc", dr, 3).unwrap();
        let net = b.finish().unwrap();
        let p = ParamSet::init_random_seeded(&net, 2, &dev);
        p.check_shapes(&net).unwrap();
        let x: Tensor<4> = Tensor::random([2, 2, 8, 8], Distribution::Normal(0.0, 1.0), &dev);
        let y = forward(&net, &p, x, BnMode::Batch, true);
        assert_eq!(y.dims(), [2, 3]);
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|a| a.is_finite()));
    }
}
