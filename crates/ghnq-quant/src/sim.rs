//! The quantized float simulation: runs a net's [`Lowered`] device graph in burn, fake-quantizing
//! exactly the tensors the blob stores, with BN folded into the weights before they are
//! quantized (Eq. 4). It serves three masters:
//! - QAT (GHN-QAT): ranges from each batch, BN folded with batch statistics, gradients through
//!   STE or NoiseQuant back into whoever produced the parameters (the GHN);
//! - calibration: float or weight-only runs that report BN statistics and activation values to
//!   an [`Observer`];
//! - evaluation of the exported net: calibrated ranges and running statistics, which the integer
//!   runtime reproduces to within rounding.
//!
//! Dropout is the identity here: the deployed net has none.

use burn::tensor::Tensor;
use burn::tensor::activation::{relu, relu6};
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use shared_format::op::WeightScheme;

use super::affine::{AffineParams, Range};
use super::config::{Clip, IO_BITS, QuantConfig};
use super::fake::{self, Grid, act_key, weight_key};
use super::lower::{Activation, Lowered, Step};
use ghnq_core::arch::{Net, Op};
use ghnq_core::cnn::executor::{self, BN_EPS, avg_pool_exclude_pad, max_pool};
use ghnq_core::cnn::{BnMode, LayerParams, ParamSet};

/// Where activation quantization parameters come from.
#[derive(Debug, Clone, Copy)]
pub enum Acts<'a> {
    /// No activation quantization.
    Float,
    /// From each batch's own values (QAT).
    Batch,
    /// Calibrated, one entry per device tensor (entries of `SameAs` tensors are ignored).
    Fixed(&'a [AffineParams]),
}

/// How to run the simulation.
#[derive(Debug, Clone, Copy)]
pub struct SimOptions<'a> {
    /// Weight (and activation) quantization; `None` runs the lowered net in float.
    pub quant: Option<&'a QuantConfig>,
    /// Activation quantization.
    pub acts: Acts<'a>,
    /// BatchNorm statistics to fold.
    pub bn: BnMode,
    /// Training: NoiseQuant is used when configured (evaluation always rounds).
    pub training: bool,
    /// The seed of NoiseQuant's draws ([`fake::noise`]); read only when training with it.
    pub noise_seed: u64,
}

/// A device tensor's values as an [`Observer`] sees them: host floats in the layout of the
/// engine that ran the simulation (NCHW from burn's, NHWC from the native one), so neither
/// transposes on its hot path.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The values.
    pub data: &'a [f32],
    /// `[n, h, w, c]`.
    pub dims: [usize; 4],
    /// NHWC (`true`) or NCHW.
    pub channels_last: bool,
}

impl Values<'_> {
    /// The channel of value `i`.
    pub fn channel(&self, i: usize) -> usize {
        let [_, h, w, c] = self.dims;
        if self.channels_last {
            i % c
        } else {
            (i / (h * w)) % c
        }
    }

    /// The values in NCHW order.
    pub fn to_nchw(&self) -> Vec<f32> {
        if !self.channels_last {
            return self.data.to_vec();
        }
        let [_, h, w, c] = self.dims;
        let mut out = vec![0.0; self.data.len()];
        for (i, &v) in self.data.iter().enumerate() {
            let (img, px, ch) = (i / (h * w * c), (i / c) % (h * w), i % c);
            out[(img * c + ch) * h * w + px] = v;
        }
        out
    }
}

/// Sees what calibration needs while the simulation runs.
pub trait Observer {
    /// The batch mean and biased variance a BatchNorm node normalised with.
    fn batch_norm(&mut self, node: usize, mean: &[f32], var: &[f32]);
    /// The value of device tensor `tensor` (an `Own`-quantized one) before quantization.
    fn activation(&mut self, tensor: usize, x: Values<'_>);
    /// The value of device tensor `tensor` as stored (after quantization, if any).
    fn stored(&mut self, tensor: usize, x: Values<'_>) {
        let _ = (tensor, x);
    }
    /// Whether [`Observer::activation`] and [`Observer::stored`] are wanted: reading the values
    /// back costs a copy of every tensor, which an observer of BatchNorm statistics only skips.
    fn wants_values(&self) -> bool {
        true
    }
}

/// A range from values by `clip`.
pub fn clip_range<const D: usize>(x: &Tensor<D>, clip: Clip) -> Range {
    match clip {
        Clip::Absolute => fake::range_of(x),
        Clip::Percentile(p) => Range::percentile(&fake::host_values(x), p),
    }
}

/// [`clip_range`] of host values.
pub fn clip_range_of(x: &[f32], clip: Clip) -> Range {
    match clip {
        Clip::Absolute => Range::of(x),
        Clip::Percentile(p) => Range::percentile(x, p),
    }
}

/// An NCHW tensor's values for an observer.
fn observed(x: &Tensor<4>) -> (Vec<f32>, [usize; 4]) {
    let [n, c, h, w] = x.dims();
    (fake::host_values(x), [n, h, w, c])
}

/// Bits of device tensor `t`: the activation bits of the layer that writes it (per-layer
/// overrides apply to convolutions and the classifier), except the image and the logits.
pub fn tensor_bits(net: &Net, lowered: &Lowered, t: usize, config: &QuantConfig) -> u8 {
    if t == 0 || t == lowered.output {
        return IO_BITS;
    }
    match lowered.weighted_writer(t) {
        Some(node) => config.layer_precision(net, node).act_bits,
        None => config.precision.act_bits,
    }
}

/// Fake-quantize a weight tensor (output channel first) as the exporter will store it; returns
/// it with its scales (one, or one per output channel).
pub fn quantize_weight<const D: usize>(
    w: Tensor<D>,
    config: &QuantConfig,
    bits: u8,
    grid: Grid,
) -> (Tensor<D>, Tensor<1>) {
    match config.scheme {
        WeightScheme::PerChannelSymmetric => fake::fake_quant_per_channel(w, bits, grid),
        WeightScheme::PerTensorAffine => {
            let range = clip_range(&w, config.weight_clip);
            let p = AffineParams::from_range(range, bits);
            let device = w.device();
            (
                fake::fake_quant(w, p, grid),
                Tensor::from_floats([p.scale], &device),
            )
        }
    }
}

/// A weighted op's weights and bias as the device holds them: fake-quantized weights, and
/// (when the input is quantized at scale `s_x`) the bias rounded to the i32 grid `s_x·s_w`.
/// `layer` is the convolution or classifier node (per-layer bits apply), `None` for a lone
/// BatchNorm (net-wide bits).
fn device_weights<const D: usize>(
    w: Tensor<D>,
    bias: Option<Tensor<1>>,
    quant: Option<&QuantConfig>,
    layer: Option<(&Net, usize)>,
    s_x: Option<f32>,
    grid: Grid,
) -> (Tensor<D>, Option<Tensor<1>>) {
    let Some(q) = quant else {
        return (w, bias);
    };
    let bits = match layer {
        Some((net, node)) => q.layer_precision(net, node).weight_bits,
        None => q.precision.weight_bits,
    };
    let (wq, scales) = quantize_weight(w, q, bits, grid);
    let bias = match (bias, s_x) {
        (Some(b), Some(s_x)) => {
            let [c] = b.dims();
            let step = if scales.dims()[0] == c {
                scales * f64::from(s_x)
            } else {
                scales.expand([c]) * f64::from(s_x)
            };
            Some(fake::fake_quant_int(b, step))
        }
        (b, _) => b,
    };
    (wq, bias)
}

/// BN statistics of NCHW `y` over N, H, W: (mean, biased variance), per channel.
fn batch_stats(y: &Tensor<4>) -> (Tensor<1>, Tensor<1>) {
    let [_, c, _, _] = y.dims();
    let mean = y.clone().mean_dim(0).mean_dim(2).mean_dim(3);
    let var = (y.clone() - mean.clone())
        .powi_scalar(2)
        .mean_dim(0)
        .mean_dim(2)
        .mean_dim(3);
    (mean.reshape([c]), var.reshape([c]))
}

/// A BN node's (γ, β, stored running statistics).
#[allow(clippy::type_complexity)]
pub fn bn_params(
    params: &ParamSet,
    node: usize,
) -> (Tensor<1>, Tensor<1>, Option<(Tensor<1>, Tensor<1>)>) {
    match &params.layers[node] {
        LayerParams::BatchNorm {
            gamma,
            beta,
            running,
        } => (gamma.clone(), beta.clone(), running.clone()),
        other => panic!("node {node}: BatchNorm parameters expected, found {other:?}"),
    }
}

/// Statistics to fold for BN node `bn` applied to `pre` (the unnormalised values).
fn fold_stats(
    params: &ParamSet,
    bn: usize,
    mode: BnMode,
    pre: impl FnOnce() -> Tensor<4>,
    observer: &mut Option<&mut dyn Observer>,
) -> (Tensor<1>, Tensor<1>, Tensor<1>, Tensor<1>) {
    let (gamma, beta, running) = bn_params(params, bn);
    let (mean, var) = match (mode, running) {
        (BnMode::Running, Some(stats)) => stats,
        _ => {
            let s = batch_stats(&pre());
            if let Some(o) = observer.as_deref_mut() {
                o.batch_norm(bn, &fake::host_values(&s.0), &fake::host_values(&s.1));
            }
            s
        }
    };
    (gamma, beta, mean, var)
}

/// Eq. 4: a BatchNorm with statistics (μ, σ²) folded into the conv before it:
/// `(w·γ/σ, β + (b − μ)·γ/σ)` with `σ = √(σ² + ε)`. The exporter folds with this same code, so
/// the simulated and the exported weights are the same floats.
pub fn fold(
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
) -> (Tensor<4>, Tensor<1>) {
    let a = gamma / (var + BN_EPS).sqrt();
    let [cout] = a.dims();
    let w = weight * a.clone().reshape([cout, 1, 1, 1]);
    let b0 = match bias {
        Some(b) => b - mean,
        None => -mean,
    };
    (w, beta + b0 * a)
}

/// A BatchNorm on its own as the per-channel map `x·a + shift` (a 1×1 depthwise conv).
pub fn affine(
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
) -> (Tensor<1>, Tensor<1>) {
    let a = gamma / (var + BN_EPS).sqrt();
    let shift = beta - mean * a.clone();
    (a, shift)
}

/// The integer codes of a tensor that is on the grid of `p`.
fn codes(x: Tensor<4>, p: AffineParams) -> Tensor<4> {
    (x.detach() / f64::from(p.scale) + f64::from(p.zero_point)).round()
}

/// The device's average (NUMERICS.md): raw codes summed over the `n` valid taps and divided with
/// rounding half away from zero, on the grid of `p`; the float average's gradient passes
/// straight through. Exact ties (n even) are common, so the float average alone would disagree.
fn device_average(avg: Tensor<4>, sums: Tensor<4>, n: Tensor<4>, p: AffineParams) -> Tensor<4> {
    let half = (n.clone() / 2.0).floor();
    let r = sums.clone().sign() * ((sums.abs() + half) / n).floor();
    let dev = (r - f64::from(p.zero_point)) * f64::from(p.scale);
    avg.clone() + (dev - avg).detach()
}

fn to4(t: Tensor<1>) -> Tensor<4> {
    let [c] = t.dims();
    t.reshape([1, c, 1, 1])
}

fn activate(x: Tensor<4>, act: Activation) -> Tensor<4> {
    match act {
        Activation::Linear => x,
        Activation::Relu { six: false } => relu(x),
        Activation::Relu { six: true } => relu6(x),
    }
}

/// Run the lowered net on NCHW `x` (normalised images); returns logits `[N, classes]`.
pub fn forward(
    net: &Net,
    lowered: &Lowered,
    params: &ParamSet,
    x: Tensor<4>,
    opts: SimOptions<'_>,
    mut observer: Option<&mut dyn Observer>,
) -> Tensor<2> {
    // The grid of the tensor with noise key `key` (SimQuant's rounding unless training with
    // NoiseQuant).
    let grid = |key: u64| match opts.quant {
        Some(q) if opts.training => Grid::of(q.method, opts.noise_seed, key),
        _ => Grid::Round,
    };
    let nt = lowered.tensors.len();
    let mut values: Vec<Option<Tensor<4>>> = vec![None; nt];
    let mut qparams: Vec<Option<AffineParams>> = vec![None; nt];
    // Last step reading each tensor, to free it early.
    let mut last_read = vec![0usize; nt];
    for (k, s) in lowered.steps.iter().enumerate() {
        for t in step_inputs(s) {
            last_read[t] = k;
        }
    }

    // Activate and quantize device tensor `t` (`y`: its value before the activation `act`) and
    // store it. A quantized tensor's activation is fused into its quantizer's clamp
    // (`fake::fake_quant_act`).
    let finish = |t: usize,
                  y: Tensor<4>,
                  act: Activation,
                  values: &mut Vec<Option<Tensor<4>>>,
                  qparams: &mut Vec<Option<AffineParams>>,
                  observer: &mut Option<&mut dyn Observer>| {
        let root = lowered.quant_root(t);
        let v = activate(y.clone(), act);
        if root == t
            && let Some(o) = observer.as_deref_mut()
            && o.wants_values()
        {
            let (data, dims) = observed(&v);
            o.activation(
                t,
                Values {
                    data: &data,
                    dims,
                    channels_last: false,
                },
            );
        }
        let v = match (opts.quant, opts.acts) {
            (Some(q), Acts::Batch) => {
                let p = if root == t {
                    let p = AffineParams::from_range(
                        clip_range(&v, q.act_clip),
                        tensor_bits(net, lowered, t, q),
                    );
                    qparams[t] = Some(p);
                    p
                } else {
                    qparams[root].expect("the root tensor is computed first")
                };
                fake::fake_quant_act(y, p, act, grid(act_key(t)))
            }
            (Some(_), Acts::Fixed(table)) => fake::fake_quant_act(y, table[root], act, Grid::Round),
            _ => v,
        };
        if let Some(o) = observer.as_deref_mut()
            && o.wants_values()
        {
            let (data, dims) = observed(&v);
            o.stored(
                t,
                Values {
                    data: &data,
                    dims,
                    channels_last: false,
                },
            );
        }
        values[t] = Some(v);
    };

    // The quantization of device tensor `t` when activations are quantized.
    let quant_of = |t: usize, qparams: &[Option<AffineParams>]| -> Option<AffineParams> {
        let root = lowered.quant_root(t);
        match (opts.quant, opts.acts) {
            (Some(_), Acts::Batch) => qparams[root],
            (Some(_), Acts::Fixed(table)) => Some(table[root]),
            _ => None,
        }
    };
    let input_scale = |t: usize, qparams: &[Option<AffineParams>]| -> Option<f32> {
        quant_of(t, qparams).map(|p| p.scale)
    };
    finish(
        0,
        x,
        Activation::Linear,
        &mut values,
        &mut qparams,
        &mut observer,
    );
    for (k, step) in lowered.steps.iter().enumerate() {
        let get = |t: usize| values[t].clone().expect("inputs are computed first");
        let (out, act) = match step {
            Step::Conv {
                conv,
                bn,
                input,
                act,
                ..
            } => {
                let Op::Conv {
                    stride,
                    dilation,
                    padding,
                    groups,
                    ..
                } = net.nodes[*conv].op
                else {
                    unreachable!("lowering pairs conv steps with conv nodes")
                };
                let LayerParams::Conv { weight, bias } = &params.layers[*conv] else {
                    panic!("node {conv}: conv parameters expected");
                };
                let geometry = [stride, padding, dilation, groups];
                let x = get(*input);
                let s_x = input_scale(*input, &qparams);
                let (w, b) = match bn {
                    None => (weight.clone(), bias.clone()),
                    Some(b) => {
                        let pre =
                            || executor::conv(x.clone(), weight.clone(), bias.clone(), geometry);
                        let (gamma, beta, mean, var) =
                            fold_stats(params, *b, opts.bn, pre, &mut observer);
                        let (w, shift) = fold(weight.clone(), bias.clone(), gamma, beta, mean, var);
                        (w, Some(shift))
                    }
                };
                let (w, b) = device_weights(
                    w,
                    b,
                    opts.quant,
                    Some((net, *conv)),
                    s_x,
                    grid(weight_key(*conv)),
                );
                let y = executor::conv(x, w, b, geometry);
                (y, *act)
            }
            Step::Affine { bn, input, act, .. } => {
                let x = get(*input);
                let (gamma, beta, mean, var) =
                    fold_stats(params, *bn, opts.bn, || x.clone(), &mut observer);
                let (a, shift) = affine(gamma, beta, mean, var);
                let [c] = a.dims();
                let s_x = input_scale(*input, &qparams);
                let (a, shift) = device_weights(
                    a.reshape([c, 1, 1, 1]),
                    Some(shift),
                    opts.quant,
                    None,
                    s_x,
                    grid(weight_key(*bn)),
                );
                let shift = shift.expect("given");
                (x * to4(a.reshape([c])) + to4(shift), *act)
            }
            Step::Relu { six, input, .. } => (get(*input), Activation::Relu { six: *six }),
            Step::MaxPool {
                node, input, act, ..
            }
            | Step::AvgPool {
                node, input, act, ..
            } => {
                let x = get(*input);
                let y = match net.nodes[*node].op {
                    Op::MaxPool {
                        kernel,
                        stride,
                        padding,
                    } => max_pool(x, kernel, stride, padding),
                    Op::AvgPool {
                        kernel,
                        stride,
                        padding,
                    } => {
                        let avg = avg_pool_exclude_pad(x.clone(), kernel, stride, padding);
                        match quant_of(*input, &qparams) {
                            Some(p) => {
                                let opts = AvgPoolOptions::new([kernel; 2])
                                    .with_stride([stride; 2])
                                    .with_padding([padding; 2])
                                    .with_count_include_pad(true);
                                let taps = (kernel * kernel) as f64;
                                let [_, _, h, w] = x.dims();
                                let ones: Tensor<4> = Tensor::ones([1, 1, h, w], &x.device());
                                let n = (avg_pool2d(ones, opts.clone()) * taps).round();
                                let sums = (avg_pool2d(codes(x, p), opts) * taps).round();
                                device_average(avg, sums, n, p)
                            }
                            None => avg,
                        }
                    }
                    _ => unreachable!("lowering pairs pool steps with pool nodes"),
                };
                (y, *act)
            }
            Step::GlobalAvgPool { input, act, .. } => {
                let x = get(*input);
                let avg = x.clone().mean_dim(3).mean_dim(2);
                let y = match quant_of(*input, &qparams) {
                    Some(p) => {
                        let [_, _, h, w] = x.dims();
                        let sums = codes(x, p).sum_dim(3).sum_dim(2);
                        let n = Tensor::full([1, 1, 1, 1], (h * w) as f32, &avg.device());
                        device_average(avg, sums, n, p)
                    }
                    None => avg,
                };
                (y, *act)
            }
            Step::Add { inputs, act, .. } => (get(inputs[0]) + get(inputs[1]), *act),
            Step::Concat { inputs, act, .. } => (
                Tensor::cat(inputs.iter().map(|&t| get(t)).collect(), 1),
                *act,
            ),
            Step::Linear {
                node, input, act, ..
            } => {
                let LayerParams::Linear { weight, bias } = &params.layers[*node] else {
                    panic!("node {node}: linear parameters expected");
                };
                let x = get(*input);
                let [n, c, h, w] = x.dims();
                let flat = x.permute([0, 2, 3, 1]).reshape([n, h * w * c]);
                let s_x = input_scale(*input, &qparams);
                let (wq, bias) = device_weights(
                    weight.clone(),
                    bias.clone(),
                    opts.quant,
                    Some((net, *node)),
                    s_x,
                    grid(weight_key(*node)),
                );
                let y = flat.matmul(wq.transpose());
                let y = match bias {
                    Some(b) => y + b.clone().unsqueeze_dim(0),
                    None => y,
                };
                let [_, cout] = y.dims();
                (y.reshape([n, cout, 1, 1]), *act)
            }
        };
        finish(
            step.output(),
            out,
            act,
            &mut values,
            &mut qparams,
            &mut observer,
        );
        for t in step_inputs(step) {
            if last_read[t] == k && t != lowered.output {
                values[t] = None;
            }
        }
    }
    let y = values[lowered.output].take().expect("logits computed");
    let [n, c, _, _] = y.dims();
    y.reshape([n, c])
}

/// The tensors a step reads.
pub fn step_inputs(step: &Step) -> Vec<usize> {
    match step {
        Step::Conv { input, .. }
        | Step::Affine { input, .. }
        | Step::Relu { input, .. }
        | Step::MaxPool { input, .. }
        | Step::AvgPool { input, .. }
        | Step::GlobalAvgPool { input, .. }
        | Step::Linear { input, .. } => vec![*input],
        Step::Add { inputs, .. } => inputs.to_vec(),
        Step::Concat { inputs, .. } => inputs.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Precision;
    use crate::fake::Method;
    use burn::tensor::{Device, Distribution};
    use ghnq_core::arch::ImageShape;
    use ghnq_core::cnn::forward as float_forward;
    use ghnq_core::sources::random_small_net;
    use rand::SeedableRng;

    fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// With no quantization the lowered net computes what the IR executor computes: fusion,
    /// shared ReLU ops and BN folding change nothing.
    #[test]
    fn float_simulation_equals_the_executor() {
        let dev = Device::flex();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for k in 0..12 {
            let net = random_small_net(&mut rng, ImageShape::FASHION_MNIST, 10, &format!("n{k}"));
            let lowered = Lowered::new(&net).unwrap();
            let params = ParamSet::init_random_seeded(&net, k, &dev);
            let x: Tensor<4> = Tensor::random([4, 1, 28, 28], Distribution::Normal(0.0, 1.0), &dev);
            let want = float_forward(&net, &params, x.clone(), BnMode::Batch, false);
            let opts = SimOptions {
                quant: None,
                acts: Acts::Float,
                bn: BnMode::Batch,
                training: false,
                noise_seed: 0,
            };
            let got = forward(&net, &lowered, &params, x, opts, None);
            let d = max_abs_diff(want, got);
            assert!(d < 1e-3, "{}: float simulation differs by {d}", net.name);
        }
    }

    /// Quantization moves the logits, but W8A8 moves them little and W2A2 a lot.
    #[test]
    fn eight_bits_stay_close_and_two_bits_do_not() {
        let dev = Device::flex();
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let net = random_small_net(&mut rng, ImageShape::FASHION_MNIST, 10, "q");
        let lowered = Lowered::new(&net).unwrap();
        let params = ParamSet::init_random_seeded(&net, 12, &dev);
        let x: Tensor<4> = Tensor::random([8, 1, 28, 28], Distribution::Normal(0.0, 1.0), &dev);
        let run = |q: Option<&QuantConfig>| {
            let opts = SimOptions {
                quant: q,
                acts: if q.is_some() {
                    Acts::Batch
                } else {
                    Acts::Float
                },
                bn: BnMode::Batch,
                training: false,
                noise_seed: 0,
            };
            forward(&net, &lowered, &params, x.clone(), opts, None)
        };
        let float = run(None);
        let scale = float.clone().abs().max().into_scalar::<f32>().max(1e-6);
        let w8 = QuantConfig::paper(Precision::new(8, 8));
        let w2 = QuantConfig {
            method: Method::SimQuant,
            ..QuantConfig::paper(Precision::new(2, 2))
        };
        let d8 = max_abs_diff(float.clone(), run(Some(&w8))) / scale;
        let d2 = max_abs_diff(float, run(Some(&w2))) / scale;
        assert!(d8 < 0.1, "W8A8 moved the logits by {d8} of their peak");
        assert!(
            d2 > d8,
            "W2A2 ({d2}) should move the logits more than W8A8 ({d8})"
        );
    }
}
