//! The native executor against burn's autodiff through `cnn::executor`: the same loss and the
//! same gradient for every parameter, on hand-built nets that hold every op and geometry and on
//! nets from the generator. Values come from a local seeded generator (burn's is shared by tests
//! running at once), so every run draws the same numbers.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::arch::{ImageShape, NetBuilder};
use crate::cnn::{BnMode, forward};
use crate::train::cross_entropy;

fn dev() -> Device {
    Device::flex().autodiff()
}

/// Uniform values in `centre ± scale`, as a trainable leaf.
fn leaf_around<const D: usize>(
    rng: &mut ChaCha8Rng,
    shape: [usize; D],
    centre: f32,
    scale: f32,
) -> Tensor<D> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| centre + rng.random_range(-scale..scale))
        .collect();
    Tensor::<D>::from_data(TensorData::new(v, shape), &dev()).require_grad()
}

fn leaf<const D: usize>(rng: &mut ChaCha8Rng, shape: [usize; D], scale: f32) -> Tensor<D> {
    leaf_around(rng, shape, 0.0, scale)
}

/// Random parameters of the right shapes, γ around 1 and β around 0 so BN is not the identity.
fn random_params(net: &Net, rng: &mut ChaCha8Rng) -> ParamSet {
    let layers = net
        .nodes
        .iter()
        .map(|node| match node.op {
            Op::Conv {
                kernel,
                groups,
                cin,
                cout,
                bias,
                ..
            } => {
                let fan = (cin / groups) * kernel * kernel;
                let s = (3.0 / fan as f32).sqrt();
                LayerParams::Conv {
                    weight: leaf(rng, [cout, cin / groups, kernel, kernel], s),
                    bias: bias.then(|| leaf(rng, [cout], s)),
                }
            }
            Op::Linear { cin, cout, bias } => {
                let s = (3.0 / cin as f32).sqrt();
                LayerParams::Linear {
                    weight: leaf(rng, [cout, cin], s),
                    bias: bias.then(|| leaf(rng, [cout], s)),
                }
            }
            Op::BatchNorm { channels } => LayerParams::BatchNorm {
                gamma: leaf_around(rng, [channels], 1.0, 0.5),
                beta: leaf(rng, [channels], 0.5),
                running: None,
            },
            _ => LayerParams::None,
        })
        .collect();
    ParamSet { layers }
}

fn grads_of(p: &ParamSet, g: &burn::tensor::Gradients) -> Vec<Vec<f32>> {
    let v = |t: Option<Tensor<1>>| -> Vec<f32> { t.map(|t| host(&t)).unwrap_or_default() };
    let mut out = Vec::new();
    for l in &p.layers {
        match l {
            LayerParams::None => {}
            LayerParams::Conv { weight, bias } => {
                out.push(weight.grad(g).map(|t| host(&t)).unwrap_or_default());
                out.push(v(bias.as_ref().and_then(|b| b.grad(g))));
            }
            LayerParams::Linear { weight, bias } => {
                out.push(weight.grad(g).map(|t| host(&t)).unwrap_or_default());
                out.push(v(bias.as_ref().and_then(|b| b.grad(g))));
            }
            LayerParams::BatchNorm { gamma, beta, .. } => {
                out.push(v(gamma.grad(g)));
                out.push(v(beta.grad(g)));
            }
        }
    }
    out
}

fn flatten(v: &NetValues) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for l in &v.layers {
        match l {
            LayerValues::None => {}
            LayerValues::Conv { weight, bias } | LayerValues::Linear { weight, bias } => {
                out.push(weight.clone());
                out.push(bias.clone().unwrap_or_default());
            }
            LayerValues::BatchNorm { gamma, beta } => {
                out.push(gamma.clone());
                out.push(beta.clone());
            }
        }
    }
    out
}

/// Loss and every parameter gradient agree with burn's (relative 1e-3 of each tensor's largest
/// gradient: the two sum in different orders, through up to ~50 layers).
fn check(net: &Net, batch: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let p = random_params(net, &mut rng);
    let ImageShape { h, w, c } = net.input;
    let x: Vec<f32> = (0..batch * c * h * w)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let labels: Vec<usize> = (0..batch)
        .map(|_| rng.random_range(0..net.classes))
        .collect();

    let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [batch, c, h, w]), &dev());
    let yt = Tensor::<1, Int>::from_data(
        TensorData::new(
            labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
            [batch],
        ),
        &dev(),
    );
    let loss = cross_entropy(forward(net, &p, xt, BnMode::Batch, false), yt);
    let want_loss: f32 = loss.clone().into_scalar();
    let want = grads_of(&p, &loss.backward());

    let values = NetValues::from_params(&p);
    let got = loss_and_grads(
        net,
        &values,
        &nchw_to_nhwc(&x, batch, c, h, w),
        &labels,
        Options {
            train: false,
            dropout_seed: 0,
            grad_scale: 1.0,
        },
    )
    .expect("native run");
    assert!(
        (got.loss - want_loss).abs() <= 1e-4 * want_loss.abs().max(1.0),
        "{}: loss {} vs burn {want_loss}",
        net.name,
        got.loss
    );
    let got = flatten(&got.grads);
    assert_eq!(got.len(), want.len(), "{}: tensor count", net.name);
    for (t, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.len(), w.len(), "{} tensor {t}: length", net.name);
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-3 * scale + 1e-6,
                "{} tensor {t}: native {a} vs burn {b} (largest {scale})",
                net.name
            );
        }
    }
}

/// Every op and geometry the IR has: strided, dilated, padded, depthwise and grouped convs with and
/// without bias, BN on maps and on flat features, ReLU and ReLU6, padded max and average pools,
/// add, concat, GAP, a linear layer on a map (HWC flattening) and dropout.
fn every_op_net() -> Net {
    let mut b = NetBuilder::new("every-op", ImageShape { h: 9, w: 9, c: 3 }, 4);
    let stem = b.conv("stem", 0, 8, 3, 1).unwrap();
    let bn = b.bn("bn", stem).unwrap();
    let r = b.relu("relu", bn, false).unwrap();
    let dw = b.dw_conv("dw", r, 3, 2, 2).unwrap();
    let mp = b
        .push(
            "mp",
            Op::MaxPool {
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            vec![dw],
        )
        .unwrap();
    let ap = b
        .push(
            "ap",
            Op::AvgPool {
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            vec![dw],
        )
        .unwrap();
    let add = b.push("add", Op::Add, vec![mp, ap]).unwrap();
    let grouped = b
        .push(
            "grouped",
            Op::Conv {
                kernel: 3,
                stride: 2,
                dilation: 1,
                padding: 1,
                groups: 2,
                cin: 8,
                cout: 6,
                bias: true,
            },
            vec![add],
        )
        .unwrap();
    let pw = b
        .push(
            "pw",
            Op::Conv {
                kernel: 1,
                stride: 1,
                dilation: 1,
                padding: 0,
                groups: 1,
                cin: 8,
                cout: 6,
                bias: true,
            },
            vec![add],
        )
        .unwrap();
    let pw2 = b
        .push(
            "pw-s2",
            Op::Conv {
                kernel: 1,
                stride: 2,
                dilation: 1,
                padding: 0,
                groups: 1,
                cin: 6,
                cout: 6,
                bias: false,
            },
            vec![pw],
        )
        .unwrap();
    let r6 = b.relu("relu6", pw2, true).unwrap();
    let cat = b.push("cat", Op::Concat, vec![grouped, r6]).unwrap();
    let mp2 = b
        .push(
            "mp-s2",
            Op::MaxPool {
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            vec![cat],
        )
        .unwrap();
    let gap = b.push("gap", Op::GlobalAvgPool, vec![cat]).unwrap();
    let bn_flat = b.bn("bn-flat", gap).unwrap();
    let fc_map = b.linear("fc-map", mp2, 12).unwrap();
    let sum = b.push("add-flat", Op::Add, vec![bn_flat, fc_map]).unwrap();
    let drop = b.push("drop", Op::Dropout { p: 0.5 }, vec![sum]).unwrap();
    b.linear("fc", drop, 4).unwrap();
    b.finish().unwrap()
}

#[test]
fn every_op_matches_burn_autodiff() {
    let net = every_op_net();
    for seed in 0..3 {
        check(&net, 3, seed);
    }
}

#[test]
fn generated_nets_match_burn_autodiff() {
    let shape = ImageShape { h: 16, w: 16, c: 3 };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for k in 0..6 {
        let net = crate::sources::random_small_net(&mut rng, shape, 10, &format!("tiny-{k}"));
        check(&net, 4, 100 + k);
    }
    let mut archs =
        crate::sources::arch_source("train", ImageShape::CIFAR10, 10, 3).expect("train split");
    for k in 0..2 {
        check(&archs.sample(), 2, 200 + k);
    }
}

#[test]
fn dropout_masks_are_seeded_and_scaled() {
    let a = dropout_mask(7, 3, 10_000, 0.5);
    assert_eq!(a, dropout_mask(7, 3, 10_000, 0.5));
    assert_ne!(a, dropout_mask(7, 4, 10_000, 0.5));
    let kept = a.iter().filter(|&&m| m == 2.0).count();
    assert!(a.iter().all(|&m| m == 0.0 || m == 2.0));
    assert!(
        (4_500..5_500).contains(&kept),
        "{kept} of 10,000 kept at p 0.5"
    );
}

#[test]
fn wrong_input_size_is_an_error() {
    let net = every_op_net();
    let values = NetValues {
        layers: vec![LayerValues::None; net.nodes.len()],
    };
    let err = loss_and_grads(
        &net,
        &values,
        &[0.0; 5],
        &[0],
        Options {
            train: false,
            dropout_seed: 0,
            grad_scale: 1.0,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("5 input values"), "{err}");
}

/// The forward-only path evaluation uses gives burn's logits (it frees activations as soon as
/// their last consumer ran, so it is a different walk from the training one).
#[test]
fn logits_match_burn_forward() {
    let net = every_op_net();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let p = random_params(&net, &mut rng);
    let ImageShape { h, w, c } = net.input;
    let batch = 5;
    let x: Vec<f32> = (0..batch * c * h * w)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [batch, c, h, w]), &dev());
    let want = host(&forward(&net, &p, xt, BnMode::Batch, false));
    let got = logits(
        &net,
        &NetValues::from_params(&p),
        &nchw_to_nhwc(&x, batch, c, h, w),
        batch,
    )
    .expect("native logits");
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4 * scale, "native {a} vs burn {b}");
    }
}

/// With stored running statistics (a calibrated net's float reference) the native logits are
/// burn's `BnMode::Running` ones; a BatchNorm without stored statistics falls back to the batch's,
/// as in burn's executor.
#[test]
fn running_statistics_logits_match_burn_forward() {
    let net = every_op_net();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut p = random_params(&net, &mut rng);
    let mut first = true;
    for layer in &mut p.layers {
        if let LayerParams::BatchNorm { gamma, running, .. } = layer
            && std::mem::take(&mut first)
        {
            let [c] = gamma.dims();
            let mean: Vec<f32> = (0..c).map(|_| rng.random_range(-1.0..1.0)).collect();
            let var: Vec<f32> = (0..c).map(|_| rng.random_range(0.2..3.0)).collect();
            *running = Some((
                Tensor::from_data(TensorData::new(mean, [c]), &dev()),
                Tensor::from_data(TensorData::new(var, [c]), &dev()),
            ));
        }
    }
    assert!(!first, "the net has a BatchNorm");
    let ImageShape { h, w, c } = net.input;
    let batch = 4;
    let x: Vec<f32> = (0..batch * c * h * w)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [batch, c, h, w]), &dev());
    let want = host(&forward(&net, &p, xt, BnMode::Running, false));
    let got = logits_running(
        &net,
        &NetValues::from_params(&p),
        &RunningStats::from_params(&p),
        &nchw_to_nhwc(&x, batch, c, h, w),
        batch,
    )
    .expect("native logits");
    let batch_stats = logits(
        &net,
        &NetValues::from_params(&p),
        &nchw_to_nhwc(&x, batch, c, h, w),
        batch,
    )
    .expect("native logits");
    assert_ne!(got, batch_stats, "the stored statistics are used");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4 * scale, "native {a} vs burn {b}");
    }
}

/// Direct convolution (PyTorch semantics, NHWC, PyTorch weight layout), the definition the
/// im2col + GEMM path must equal: output, weight gradient and input gradient of `Σ out·dy`.
fn direct_conv(
    x: &[f32],
    g: &conv::ConvGeom,
    w: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut out = vec![0.0f64; g.n * g.ho * g.wo * g.cout];
    let mut dw = vec![0.0f64; w.len()];
    let mut dx = vec![0.0f64; x.len()];
    for n in 0..g.n {
        for oh in 0..g.ho {
            for ow in 0..g.wo {
                for kh in 0..g.k {
                    for kw in 0..g.k {
                        let ih = (oh * g.stride + kh * g.dil) as isize - g.pad as isize;
                        let iw = (ow * g.stride + kw * g.dil) as isize - g.pad as isize;
                        if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                            continue;
                        }
                        let i = ((n * g.h + ih as usize) * g.w + iw as usize) * g.cin;
                        let o = ((n * g.ho + oh) * g.wo + ow) * g.cout;
                        for co in 0..g.cout {
                            for ci in 0..g.cin {
                                let wi = ((co * g.cin + ci) * g.k + kh) * g.k + kw;
                                out[o + co] += f64::from(w[wi]) * f64::from(x[i + ci]);
                                dw[wi] += f64::from(x[i + ci]) * f64::from(dy[o + co]);
                                dx[i + ci] += f64::from(w[wi]) * f64::from(dy[o + co]);
                            }
                        }
                    }
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (f(out), f(dw), f(dx))
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * scale, "{what}[{i}]: {g} vs {w}");
    }
}

/// Dense convolutions of random geometries (kernels 1–7, strides 1–3, dilations 1–3, paddings
/// up to past the kernel's reach, so whole kernel rows and columns fall outside) through
/// `conv::forward` and `conv::backward_with` (both input-gradient modes) against the direct
/// definition.
#[test]
fn dense_convolutions_match_the_direct_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for case in 0..120 {
        let k: usize = [1, 3, 5, 7][rng.random_range(0..4)];
        let (stride, dil): (usize, usize) = (rng.random_range(1..=3), rng.random_range(1..=3));
        let pad = rng.random_range(0..=(k - 1) * dil / 2 + 1);
        // The first cases are pointwise (the GEMM on the activations themselves).
        let (k, stride, pad) = if case < 4 {
            (1, 1, 0)
        } else {
            (k, stride, pad)
        };
        let reach = (k - 1) * dil + 1;
        let (h, w) = (
            rng.random_range(reach.saturating_sub(2 * pad).max(1)..reach + 9),
            rng.random_range(reach.saturating_sub(2 * pad).max(1)..reach + 9),
        );
        let (cin, cout) = (rng.random_range(1..20), rng.random_range(1..12));
        let n = rng.random_range(1..4);
        let size = |len: usize| (len + 2 * pad - reach) / stride + 1;
        let g = conv::ConvGeom {
            n,
            h,
            w,
            cin,
            ho: size(h),
            wo: size(w),
            cout,
            k,
            stride,
            pad,
            dil,
            groups: 1,
        };
        let mut draw =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
        let x = draw(n * h * w * cin);
        let wt = draw(cout * cin * k * k);
        let bias = draw(cout);
        let dy = draw(n * g.ho * g.wo * cout);
        let (out_want, dw_want, dx_want) = direct_conv(&x, &g, &wt, &dy);
        let what = format!("case {case}: {g:?}");
        let out = conv::forward(&x, &g, &wt, Some(&bias));
        let with_bias: Vec<f32> = out_want
            .chunks_exact(cout)
            .flat_map(|px| px.iter().zip(&bias).map(|(v, b)| v + b))
            .collect();
        assert_close(&out, &with_bias, &format!("{what} output"));
        // Input gradient written into stale values, and added onto an existing one.
        let mut dx = vec![f32::NAN; x.len()];
        let grads = conv::backward_with(&x, &g, &wt, true, &dy, Some(&mut dx), true);
        assert_close(&grads.weight, &dw_want, &format!("{what} weight gradient"));
        assert_close(&dx, &dx_want, &format!("{what} input gradient"));
        let mut dx = vec![1.0; x.len()];
        conv::backward(&x, &g, &wt, false, &dy, Some(&mut dx));
        let plus_one: Vec<f32> = dx_want.iter().map(|v| v + 1.0).collect();
        assert_close(
            &dx,
            &plus_one,
            &format!("{what} accumulated input gradient"),
        );
    }
}
