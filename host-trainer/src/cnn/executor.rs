//! A functional float executor: runs any IR [`Net`] on an NCHW batch with parameters given as
//! tensors. Nothing is a burn module here, so the same code serves GHN-predicted parameters
//! (gradients flow back into the GHN) and plain trainable leaves.
//!
//! Semantics follow the IR contract (`arch::ir`): PyTorch conv geometry with symmetric zero padding,
//! average pooling without counting padding, linear layers on the HWC-flattened input.

use burn::tensor::activation::{relu, relu6};
use burn::tensor::module::{avg_pool2d, batch_norm, batch_norm_train, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Distribution, Tensor};

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
            ) => {
                let opts = ConvOptions::new([*stride; 2], [*padding; 2], [*dilation; 2], *groups);
                Act::Map(conv2d(arg(0).map(), weight.clone(), bias.clone(), opts))
            }
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
            ) => {
                let o = MaxPoolOptions::new([*kernel; 2])
                    .with_stride([*stride; 2])
                    .with_padding([*padding; 2]);
                Act::Map(max_pool2d(arg(0).map(), o))
            }
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
                    let drop = |t: Tensor<4>| {
                        let m = t.random_like(Distribution::Bernoulli(keep));
                        t * m / keep
                    };
                    let drop2 = |t: Tensor<2>| {
                        let m = t.random_like(Distribution::Bernoulli(keep));
                        t * m / keep
                    };
                    a.apply(drop, drop2)
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

/// Average pooling whose divisor counts only real pixels (`count_include_pad = false`): a
/// zero-padded sum pool divided by the pooled ones-mask, so it is exact on every backend.
pub fn avg_pool_exclude_pad(
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
        let p = ParamSet::init_random(&net, &dev);
        p.check_shapes(&net).unwrap();
        let x: Tensor<4> = Tensor::random([2, 2, 8, 8], Distribution::Normal(0.0, 1.0), &dev);
        let y = forward(&net, &p, x, BnMode::Batch, true);
        assert_eq!(y.dims(), [2, 3]);
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|a| a.is_finite()));
    }
}
