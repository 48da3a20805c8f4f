//! The target nets of GHN meta-training, forward and backward, in plain Rust on NHWC buffers,
//! outside burn's autodiff graph.
//!
//! WHY: a meta-training step spends ~99 % of its time running the predicted nets, and burn's
//! autodiff on its CPU backend records, allocates and dispatches every small op of every net
//! (conv backward as transposed convs, one conv per group for depthwise weight gradients). ppuda's
//! training step is mathematically a split: the GHN predicts parameters `p`; the nets give the loss
//! `L(p)` and `∂L/∂p`; the GHN's backward takes `∂L/∂p` as its output gradient. This module is the
//! middle part: [`loss_and_grads`] returns the mean cross-entropy and `∂L/∂p` for one net, and
//! [`crate::ghn::train`] hands `∂L/∂p` to burn (`Σ p·∂L/∂p` as a surrogate loss), so the GHN's
//! gradients are the ones burn's fused graph gives (`tests` compares them on random nets).
//!
//! Semantics are [`crate::cnn::executor`]'s with `BnMode::Batch` (training): PyTorch conv geometry,
//! exclude-pad average pooling, linear layers on the HWC-flattened input. In NHWC, a flat `[N, F]`
//! activation and a `(1, 1, F)` map are the same buffer, so one representation serves both.

pub mod buffers;
pub mod conv;
#[cfg(target_arch = "x86_64")]
mod depthwise;
/// Without the AVX2 kernels the general loops in `conv` run every depthwise conv.
#[cfg(not(target_arch = "x86_64"))]
mod depthwise {
    use super::conv::ConvGeom;

    /// No SIMD token exists here.
    pub enum V3 {}

    pub fn supported(_: &ConvGeom) -> Option<V3> {
        None
    }

    pub fn forward(v3: V3, _: &[f32], _: &ConvGeom, _: &[f32], _: &mut [f32]) {
        match v3 {}
    }

    pub fn backward(
        v3: V3,
        _: &[f32],
        _: &ConvGeom,
        _: &[f32],
        _: &[f32],
        _: Option<&mut [f32]>,
        _: &mut [f32],
    ) {
        match v3 {}
    }
}
pub mod norm;
pub mod pool;
#[cfg(test)]
mod tests;

use rand::{Rng, SeedableRng};

use super::params::{LayerParams, ParamSet};
use crate::arch::{Net, Op};

/// One layer's parameters (or their gradients) as host vectors, PyTorch layouts.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerValues {
    /// A parameter-free (or dead) node.
    None,
    /// Convolution weight `(cout, cin/groups, k, k)` and optional bias.
    Conv {
        /// Weight.
        weight: Vec<f32>,
        /// Bias.
        bias: Option<Vec<f32>>,
    },
    /// BatchNorm γ and β.
    BatchNorm {
        /// γ.
        gamma: Vec<f32>,
        /// β.
        beta: Vec<f32>,
    },
    /// Linear weight `(cout, cin)` and optional bias.
    Linear {
        /// Weight.
        weight: Vec<f32>,
        /// Bias.
        bias: Option<Vec<f32>>,
    },
}

/// Every layer of a net, indexed like `net.nodes`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetValues {
    /// One entry per node.
    pub layers: Vec<LayerValues>,
}

fn host<const D: usize>(t: &burn::tensor::Tensor<D>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

impl NetValues {
    /// Host copies of a parameter set's tensors (running statistics are not needed: training
    /// normalises with batch statistics).
    pub fn from_params(p: &ParamSet) -> NetValues {
        let layers = p
            .layers
            .iter()
            .map(|l| match l {
                LayerParams::None => LayerValues::None,
                LayerParams::Conv { weight, bias } => LayerValues::Conv {
                    weight: host(weight),
                    bias: bias.as_ref().map(host),
                },
                LayerParams::BatchNorm { gamma, beta, .. } => LayerValues::BatchNorm {
                    gamma: host(gamma),
                    beta: host(beta),
                },
                LayerParams::Linear { weight, bias } => LayerValues::Linear {
                    weight: host(weight),
                    bias: bias.as_ref().map(host),
                },
            })
            .collect();
        NetValues { layers }
    }
}

/// Stored BatchNorm running statistics `(mean, var)` per node (`None` elsewhere, and where a
/// BatchNorm has none: it normalises with its batch's statistics then, like burn's executor).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunningStats(pub Vec<Option<(Vec<f32>, Vec<f32>)>>);

impl RunningStats {
    /// Host copies of a parameter set's running statistics.
    pub fn from_params(p: &ParamSet) -> RunningStats {
        RunningStats(
            p.layers
                .iter()
                .map(|l| match l {
                    LayerParams::BatchNorm {
                        running: Some((mean, var)),
                        ..
                    } => Some((host(mean), host(var))),
                    _ => None,
                })
                .collect(),
        )
    }

    /// Node `node`'s statistics, where it has some.
    pub fn of(&self, node: usize) -> Option<(&[f32], &[f32])> {
        self.0
            .get(node)
            .and_then(Option::as_ref)
            .map(|(m, v)| (m.as_slice(), v.as_slice()))
    }
}

/// Milliseconds per op kind (forward, backward), for `ghnq bench ghn`'s profile. Kinds are
/// [`Op::kind`]'s, with 1x1 convolutions told apart as `pw_conv` and strided convolutions (the
/// reduction cells', whose kernels take other loops) as `…/s2`.
pub type Profile = std::collections::BTreeMap<&'static str, [f64; 2]>;

/// Adds `from`, times `scale`, into `into` (summing nets, or averaging steps).
pub fn accumulate(into: &mut Profile, from: &Profile, scale: f64) {
    for (kind, ms) in from {
        let e = into.entry(kind).or_default();
        e[0] += ms[0] * scale;
        e[1] += ms[1] * scale;
    }
}

/// The profile kind of `op` (see [`Profile`]).
pub fn profile_kind(op: &Op) -> &'static str {
    let strided = matches!(op, Op::Conv { stride, .. } if *stride > 1);
    match (op, op.kind(), strided) {
        (
            Op::Conv {
                kernel: 1,
                groups: 1,
                ..
            },
            _,
            false,
        ) => "pw_conv",
        (
            Op::Conv {
                kernel: 1,
                groups: 1,
                ..
            },
            _,
            true,
        ) => "pw_conv/s2",
        (_, "dw_conv", true) => "dw_conv/s2",
        (_, "dil_dw_conv", true) => "dil_dw_conv/s2",
        (_, "conv", true) => "conv/s2",
        (_, kind, _) => kind,
    }
}

/// What one net gives a meta-training step.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Mean cross-entropy over the batch.
    pub loss: f32,
    /// Images whose top-1 class is the label.
    pub hits: usize,
    /// `∂loss/∂p` for every parameter, scaled by `grad_scale` ([`LayerValues::None`] for
    /// parameter-free and dead nodes).
    pub grads: NetValues,
    /// Milliseconds in the forward (with the loss) and the backward pass.
    pub ms: [f64; 2],
    /// The same time by op kind.
    pub profile: Profile,
}

/// Errors the native executor reports instead of panicking on a net it cannot run.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The IR's shape inference rejected the net.
    #[error("net '{net}': {source}")]
    Shape {
        /// The net.
        net: String,
        /// Why.
        source: crate::arch::ArchError,
    },
    /// A parameter-carrying node has no (or the wrong kind of) parameters.
    #[error("net '{net}' node {node} ('{name}'): no {what} parameters given")]
    MissingParams {
        /// The net.
        net: String,
        /// Node index.
        node: usize,
        /// Node name.
        name: String,
        /// Which kind was expected.
        what: &'static str,
    },
    /// Input sizes disagree with the net.
    #[error("net '{net}': {what}")]
    Input {
        /// The net.
        net: String,
        /// What disagrees.
        what: String,
    },
}

/// Runs `f` with the widest SIMD instruction set this CPU has (AVX-512, AVX2 with FMA, or the
/// x86-64 baseline; NEON on aarch64), detected at run time: `pulp` compiles the kernels `f`
/// inlines once per set, so the binary still runs on every x86-64 host.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Whether `device` is burn's CPU backend (with or without autodiff): where this engine runs
/// instead of burn (elsewhere, CUDA, burn's own kernels do).
pub fn is_cpu(device: &burn::tensor::Device) -> bool {
    device.clone().without_autodiff() == burn::tensor::Device::flex()
}

/// An NCHW batch (the data loaders' layout) as NHWC.
pub fn nchw_to_nhwc(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for ch in 0..c {
            for p in 0..h * w {
                out[(b * h * w + p) * c + ch] = x[(b * c + ch) * h * w + p];
            }
        }
    }
    out
}

/// The dropout mask of node `node` for `len` elements: 0 or `1/keep`, from `seed`. Both the
/// native and the burn path draw it here, so the two train identically.
pub fn dropout_mask(seed: u64, node: usize, len: usize, keep: f64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ (node as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let scale = (1.0 / keep) as f32;
    (0..len)
        .map(|_| {
            if rng.random::<f64>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect()
}

/// The net's shapes ([`Net::shapes`]) once `x` (`n` NHWC images) and `p` (one entry per node) are
/// checked to fit it: every engine's first step.
pub fn check_input(
    net: &Net,
    p: &NetValues,
    x: &[f32],
    n: usize,
) -> Result<Vec<[usize; 3]>, NativeError> {
    let shapes = net.shapes().map_err(|source| NativeError::Shape {
        net: net.name.clone(),
        source,
    })?;
    let in_len = net.input.h * net.input.w * net.input.c;
    if x.len() != n * in_len || p.layers.len() != net.nodes.len() {
        return Err(NativeError::Input {
            net: net.name.clone(),
            what: format!(
                "{} input values for {n} images of {in_len} values each, {} layers for {} nodes",
                x.len(),
                p.layers.len(),
                net.nodes.len()
            ),
        });
    }
    Ok(shapes)
}

/// The error for node `node` of `net` lacking its `what` parameters.
pub fn missing_params(net: &Net, node: usize, what: &'static str) -> NativeError {
    NativeError::MissingParams {
        net: net.name.clone(),
        node,
        name: net.nodes[node].name.clone(),
        what,
    }
}

/// The mean softmax cross-entropy of `logits` (`[n, k]`) against `labels`, the images whose
/// top-1 class is the label (no class strictly better, no NaN: `ghn::train::topk_hits`'s count),
/// and the loss's gradient with respect to the logits times `grad_scale`.
pub fn cross_entropy(
    logits: &[f32],
    labels: &[usize],
    k: usize,
    grad_scale: f32,
) -> (f32, usize, Vec<f32>) {
    let n = labels.len();
    let mut dlogits = vec![0.0; n * k];
    let (mut loss, mut hits) = (0f64, 0usize);
    for ((row, &label), d) in logits
        .chunks_exact(k)
        .zip(labels)
        .zip(dlogits.chunks_exact_mut(k))
    {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
        let lse = max as f64 + sum.ln();
        loss += lse - row[label] as f64;
        for (d, &v) in d.iter_mut().zip(row) {
            *d = (((v as f64 - lse).exp()) / n as f64) as f32;
        }
        d[label] -= 1.0 / n as f32;
        let t = row[label];
        if !t.is_nan() && !row.iter().any(|&v| v > t || v.is_nan()) {
            hits += 1;
        }
    }
    dlogits.iter_mut().for_each(|d| *d *= grad_scale);
    ((loss / n.max(1) as f64) as f32, hits, dlogits)
}

/// Per-node state kept from the forward pass for the backward pass.
enum Saved {
    None,
    Bn(norm::Saved),
    MaxArg(Vec<u32>),
    Mask(Vec<f32>),
}

/// Accumulates a gradient: the first one is moved in, later ones are added (and their buffer
/// recycled).
pub fn add_into(dst: &mut Option<Vec<f32>>, src: Vec<f32>) {
    match dst {
        Some(d) => {
            simd(
                #[inline(always)]
                || d.iter_mut().zip(&src).for_each(|(d, s)| *d += s),
            );
            buffers::recycle(src);
        }
        None => *dst = Some(src),
    }
}

/// Options of [`loss_and_grads`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Dropout on (training) or off.
    pub train: bool,
    /// Seed of the dropout masks ([`dropout_mask`]).
    pub dropout_seed: u64,
    /// Factor on every returned gradient (1/meta-batch for a meta-batch mean).
    pub grad_scale: f32,
}

/// Runs every live node; keeps what the backward pass needs when `for_backward`, else only the
/// logits.
/// `running`: BatchNorm normalises with these stored statistics (evaluation only).
fn forward_pass(
    net: &Net,
    p: &NetValues,
    x: &[f32],
    n: usize,
    opts: Options,
    for_backward: bool,
    running: Option<&RunningStats>,
) -> Result<Forward, NativeError> {
    let shapes = check_input(net, p, x, n)?;
    let missing = |i: usize, what: &'static str| missing_params(net, i, what);
    let live = net.reaches_output();
    let last = net.nodes.len() - 1;
    // An activation is kept for the backward pass only where a consumer needs its input
    // (conv, linear, batch norm) or the node needs its own output (ReLU's mask).
    let mut keep = vec![false; net.nodes.len()];
    let mut last_use = vec![0usize; net.nodes.len()];
    for (i, node) in net.nodes.iter().enumerate() {
        if for_backward && matches!(node.op, Op::Relu { .. }) {
            keep[i] = true;
        }
        for &j in &node.inputs {
            last_use[j] = i;
            if for_backward
                && matches!(
                    node.op,
                    Op::Conv { .. } | Op::Linear { .. } | Op::BatchNorm { .. }
                )
            {
                keep[j] = true;
            }
        }
    }
    keep[last] = true;
    let spatial = |j: usize| (shapes[j][0], shapes[j][1], shapes[j][2]);
    let t0 = std::time::Instant::now();

    let mut acts: Vec<Option<Vec<f32>>> = vec![None; net.nodes.len()];
    let mut saved: Vec<Saved> = (0..net.nodes.len()).map(|_| Saved::None).collect();
    let mut profile = Profile::new();
    for (i, node) in net.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let t_op = std::time::Instant::now();
        // Input `k` when this node is its last reader, it is read once here and the backward pass
        // does not need it: its buffer can become the output (ReLU in place, a sum onto it).
        let dead_input = |i: usize, k: usize| {
            let j = node.inputs[k];
            let once = node.inputs.iter().filter(|&&u| u == j).count() == 1;
            (last_use[j] == i && !keep[j] && once).then_some(j)
        };
        let input = |k: usize| {
            acts[node.inputs[k]]
                .as_deref()
                .expect("inputs are computed before their consumers")
        };
        let out = match (&node.op, &p.layers[i]) {
            (Op::Input, _) => buffers::copy_of(x),
            (Op::Conv { .. }, LayerValues::Conv { weight, bias }) => {
                let g = conv_geom(net, &shapes, i, n);
                simd(
                    #[inline(always)]
                    || conv::forward(input(0), &g, weight, bias.as_deref()),
                )
            }
            (Op::Conv { .. }, _) => return Err(missing(i, "conv")),
            (Op::BatchNorm { channels }, LayerValues::BatchNorm { gamma, beta })
                if let Some(stats) = running.and_then(|r| r.of(i)) =>
            {
                simd(
                    #[inline(always)]
                    || norm::forward_with(input(0), *channels, gamma, beta, stats),
                )
            }
            (Op::BatchNorm { channels }, LayerValues::BatchNorm { gamma, beta }) => {
                let (y, s) = simd(
                    #[inline(always)]
                    || norm::forward(input(0), *channels, gamma, beta),
                );
                saved[i] = Saved::Bn(s);
                y
            }
            (Op::BatchNorm { .. }, _) => return Err(missing(i, "batch-norm")),
            (Op::Relu { six }, _) => {
                let hi = if *six { 6.0 } else { f32::INFINITY };
                match dead_input(i, 0) {
                    // `move` closures: a scalar captured by reference is reloaded per element
                    // (the slices might alias it), which keeps LLVM from vectorising.
                    Some(j) => {
                        let mut v = acts[j].take().expect("inputs are computed first");
                        let vs = v.as_mut_slice();
                        simd(
                            #[inline(always)]
                            move || vs.iter_mut().for_each(|v| *v = v.max(0.0).min(hi)),
                        );
                        v
                    }
                    None => {
                        let x = input(0);
                        simd(
                            #[inline(always)]
                            move || {
                                let mut y = buffers::with_capacity(x.len());
                                y.extend(x.iter().map(|&v| v.max(0.0).min(hi)));
                                y
                            },
                        )
                    }
                }
            }
            (Op::MaxPool { .. }, _) => {
                let g = pool_geom(net, &shapes, i, n);
                let (y, arg) = simd(
                    #[inline(always)]
                    || pool::max_forward(input(0), &g),
                );
                saved[i] = Saved::MaxArg(arg);
                y
            }
            (Op::AvgPool { .. }, _) => {
                let g = pool_geom(net, &shapes, i, n);
                simd(
                    #[inline(always)]
                    || pool::avg_forward(input(0), &g),
                )
            }
            (Op::GlobalAvgPool, _) => {
                let (h, w, c) = spatial(node.inputs[0]);
                simd(
                    #[inline(always)]
                    || pool::global_avg_forward(input(0), n, h * w, c),
                )
            }
            (Op::Add, _) => {
                // The sum goes into the first input's buffer when nothing else reads it.
                let mut acc = match dead_input(i, 0) {
                    Some(j) => acts[j].take().expect("inputs are computed first"),
                    None => buffers::copy_of(input(0)),
                };
                let input = |k: usize| {
                    acts[node.inputs[k]]
                        .as_deref()
                        .expect("inputs are computed before their consumers")
                };
                simd(
                    #[inline(always)]
                    || {
                        for k in 1..node.inputs.len() {
                            acc.iter_mut().zip(input(k)).for_each(|(a, b)| *a += b);
                        }
                    },
                );
                acc
            }
            (Op::Concat, _) => {
                let (h, w, c) = spatial(i);
                let parts: Vec<&[f32]> = (0..node.inputs.len()).map(input).collect();
                let widths: Vec<usize> = node.inputs.iter().map(|&j| shapes[j][2]).collect();
                // Pixel by pixel, each input's channels appended: no zero fill first.
                let mut out = buffers::with_capacity(n * h * w * c);
                for px in 0..n * h * w {
                    for (part, &cj) in parts.iter().zip(&widths) {
                        out.extend_from_slice(&part[px * cj..][..cj]);
                    }
                }
                out
            }
            (Op::Linear { cin, cout, .. }, LayerValues::Linear { weight, bias }) => {
                let mut y = vec![0.0; n * cout];
                ghnq_gemm::matmul(
                    &mut y,
                    ghnq_gemm::View::new(input(0), n, *cin),
                    ghnq_gemm::View::new(weight, *cout, *cin).t(),
                    false,
                );
                conv::add_bias(&mut y, bias.as_deref());
                y
            }
            (Op::Linear { .. }, _) => return Err(missing(i, "linear")),
            (Op::Dropout { p }, _) => {
                if opts.train && *p > 0.0 {
                    let m = dropout_mask(opts.dropout_seed, i, input(0).len(), 1.0 - *p as f64);
                    let y = input(0).iter().zip(&m).map(|(v, m)| v * m).collect();
                    saved[i] = Saved::Mask(m);
                    y
                } else {
                    input(0).to_vec()
                }
            }
        };
        acts[i] = Some(out);
        for &j in &node.inputs {
            if last_use[j] == i
                && !keep[j]
                && let Some(v) = acts[j].take()
            {
                buffers::recycle(v);
            }
        }
        profile.entry(profile_kind(&node.op)).or_default()[0] += t_op.elapsed().as_secs_f64() * 1e3;
    }
    Ok(Forward {
        shapes,
        acts,
        saved,
        profile,
        ms: t0.elapsed().as_secs_f64() * 1e3,
    })
}

/// The activations a forward pass leaves: what the backward pass (or the caller) needs.
struct Forward {
    shapes: Vec<[usize; 3]>,
    acts: Vec<Option<Vec<f32>>>,
    saved: Vec<Saved>,
    profile: Profile,
    ms: f64,
}

/// The logits `[n, classes]` of `net` with parameters `p` on `x` (NHWC, `n` images), BatchNorm
/// on the batch's statistics, dropout off: evaluation as GHN-2 measures it (GHN_SPEC §3.5).
pub fn logits(net: &Net, p: &NetValues, x: &[f32], n: usize) -> Result<Vec<f32>, NativeError> {
    let opts = Options {
        train: false,
        dropout_seed: 0,
        grad_scale: 1.0,
    };
    let mut f = forward_pass(net, p, x, n, opts, false, None)?;
    Ok(f.acts
        .pop()
        .flatten()
        .expect("the classifier is live and kept"))
}

/// [`logits`] with BatchNorm on stored running statistics: a calibrated or exported net's float
/// reference (burn's executor with `BnMode::Running`).
pub fn logits_running(
    net: &Net,
    p: &NetValues,
    running: &RunningStats,
    x: &[f32],
    n: usize,
) -> Result<Vec<f32>, NativeError> {
    let opts = Options {
        train: false,
        dropout_seed: 0,
        grad_scale: 1.0,
    };
    let mut f = forward_pass(net, p, x, n, opts, false, Some(running))?;
    Ok(f.acts
        .pop()
        .flatten()
        .expect("the classifier is live and kept"))
}

/// The mean cross-entropy of `net` with parameters `p` on `x` (NHWC, `n` images) against
/// `labels`, and its gradient with respect to every parameter.
pub fn loss_and_grads(
    net: &Net,
    p: &NetValues,
    x: &[f32],
    labels: &[usize],
    opts: Options,
) -> Result<Outcome, NativeError> {
    let n = labels.len();
    let Forward {
        shapes,
        mut acts,
        mut saved,
        mut profile,
        ms: pass_ms,
    } = forward_pass(net, p, x, n, opts, true, None)?;
    let last = net.nodes.len() - 1;
    let spatial = |j: usize| (shapes[j][0], shapes[j][1], shapes[j][2]);
    let t0 = std::time::Instant::now();

    let logits = acts[last].as_deref().expect("classifier output");
    let (loss, hits, dlogits) = cross_entropy(logits, labels, net.classes, opts.grad_scale);
    let forward_ms = pass_ms + t0.elapsed().as_secs_f64() * 1e3;
    let t1 = std::time::Instant::now();

    // Backward, in reverse topological order.
    let mut grads: Vec<Option<Vec<f32>>> = vec![None; net.nodes.len()];
    grads[last] = Some(dlogits);
    let mut out = NetValues {
        layers: vec![LayerValues::None; net.nodes.len()],
    };
    for i in (0..net.nodes.len()).rev() {
        let Some(dy) = grads[i].take().map(buffers::Recycled::new) else {
            continue;
        };
        let node = &net.nodes[i];
        let t_op = std::time::Instant::now();
        let needs_dx = |j: usize| !matches!(net.nodes[j].op, Op::Input);
        match (&node.op, &p.layers[i]) {
            (Op::Input, _) => {}
            (Op::Conv { bias, .. }, LayerValues::Conv { weight, .. }) => {
                let j = node.inputs[0];
                let g = conv_geom(net, &shapes, i, n);
                let xin = acts[j].as_deref().expect("conv input kept");
                // A first gradient for the input is written, not added onto zeros.
                let fresh = needs_dx(j) && grads[j].is_none();
                let mut dx = needs_dx(j).then(|| {
                    grads[j]
                        .take()
                        .unwrap_or_else(|| buffers::scratch(xin.len()))
                });
                let cg = simd(
                    #[inline(always)]
                    || conv::backward_with(xin, &g, weight, *bias, &dy, dx.as_deref_mut(), fresh),
                );
                if dx.is_some() {
                    grads[j] = dx;
                }
                out.layers[i] = LayerValues::Conv {
                    weight: cg.weight,
                    bias: cg.bias,
                };
            }
            (Op::BatchNorm { channels }, LayerValues::BatchNorm { gamma, .. }) => {
                let j = node.inputs[0];
                let Saved::Bn(s) = &saved[i] else {
                    unreachable!("batch norm saved its statistics")
                };
                let xin = acts[j].as_deref().expect("batch-norm input kept");
                let mut dx = needs_dx(j)
                    .then(|| grads[j].take().unwrap_or_else(|| buffers::zeros(dy.len())));
                let (dgamma, dbeta) = simd(
                    #[inline(always)]
                    || norm::backward(s, xin, *channels, gamma, &dy, dx.as_deref_mut()),
                );
                if dx.is_some() {
                    grads[j] = dx;
                }
                out.layers[i] = LayerValues::BatchNorm {
                    gamma: dgamma,
                    beta: dbeta,
                };
            }
            (Op::Relu { six }, _) => {
                let y = acts[i].as_deref().expect("relu output kept");
                let hi = if *six { 6.0 } else { f32::INFINITY };
                let mut dx = dy.into_inner();
                let ds = dx.as_mut_slice();
                simd(
                    #[inline(always)]
                    move || {
                        for (d, &y) in ds.iter_mut().zip(y) {
                            // `&`, not `&&`: a branch-free select vectorises; a branch on a sign
                            // that is a coin flip mispredicts half the time.
                            let pass = (y > 0.0) & (y < hi);
                            *d = if pass { *d } else { 0.0 };
                        }
                    },
                );
                add_into(&mut grads[node.inputs[0]], dx);
            }
            (Op::MaxPool { .. }, _) => {
                let j = node.inputs[0];
                let Saved::MaxArg(arg) = &saved[i] else {
                    unreachable!("max pool saved its winners")
                };
                let (h, w, c) = spatial(j);
                let dx = grads[j].get_or_insert_with(|| buffers::zeros(n * h * w * c));
                simd(
                    #[inline(always)]
                    || pool::max_backward(arg, &dy, dx),
                );
            }
            (Op::AvgPool { .. }, _) => {
                let j = node.inputs[0];
                let (h, w, c) = spatial(j);
                let dx = grads[j].get_or_insert_with(|| buffers::zeros(n * h * w * c));
                let g = pool_geom(net, &shapes, i, n);
                simd(
                    #[inline(always)]
                    || pool::avg_backward(&g, &dy, dx),
                );
            }
            (Op::GlobalAvgPool, _) => {
                let j = node.inputs[0];
                let (h, w, c) = spatial(j);
                let dx = grads[j].get_or_insert_with(|| buffers::zeros(n * h * w * c));
                simd(
                    #[inline(always)]
                    || pool::global_avg_backward(&dy, h * w, c, dx),
                );
            }
            (Op::Add, _) => {
                let (last_input, rest) = node.inputs.split_last().expect("add has inputs");
                for &j in rest {
                    match &mut grads[j] {
                        Some(g) => simd(
                            #[inline(always)]
                            || g.iter_mut().zip(dy.iter()).for_each(|(g, d)| *g += d),
                        ),
                        None => grads[j] = Some(buffers::copy_of(&dy)),
                    }
                }
                add_into(&mut grads[*last_input], dy.into_inner());
            }
            (Op::Concat, _) => {
                let c = shapes[i][2];
                let mut offset = 0;
                for &j in &node.inputs {
                    let cj = shapes[j][2];
                    let slices = dy.chunks_exact(c).map(|px| &px[offset..offset + cj]);
                    match &mut grads[j] {
                        Some(g) => simd(
                            #[inline(always)]
                            || {
                                for (g, s) in g.chunks_exact_mut(cj).zip(slices) {
                                    g.iter_mut().zip(s).for_each(|(g, s)| *g += s);
                                }
                            },
                        ),
                        None => {
                            let mut part = buffers::with_capacity(dy.len() / c * cj);
                            slices.for_each(|s| part.extend_from_slice(s));
                            grads[j] = Some(part);
                        }
                    }
                    offset += cj;
                }
            }
            (Op::Linear { cin, cout, bias }, LayerValues::Linear { weight, .. }) => {
                let j = node.inputs[0];
                let xin = acts[j].as_deref().expect("linear input kept");
                let mut dw = vec![0.0; cout * cin];
                ghnq_gemm::matmul(
                    &mut dw,
                    ghnq_gemm::View::new(&dy, n, *cout).t(),
                    ghnq_gemm::View::new(xin, n, *cin),
                    false,
                );
                if needs_dx(j) {
                    let dx = grads[j].get_or_insert_with(|| vec![0.0; n * cin]);
                    ghnq_gemm::matmul(
                        dx,
                        ghnq_gemm::View::new(&dy, n, *cout),
                        ghnq_gemm::View::new(weight, *cout, *cin),
                        true,
                    );
                }
                let db = bias.then(|| conv::bias_grad(&dy, *cout));
                out.layers[i] = LayerValues::Linear {
                    weight: dw,
                    bias: db,
                };
            }
            (Op::Dropout { .. }, _) => {
                let j = node.inputs[0];
                match &saved[i] {
                    Saved::Mask(m) => {
                        let dx: Vec<f32> = dy.iter().zip(m).map(|(d, m)| d * m).collect();
                        add_into(&mut grads[j], dx);
                    }
                    _ => add_into(&mut grads[j], dy.into_inner()),
                }
            }
            (op, _) => unreachable!("forward accepted {} without parameters", op.type_name()),
        }
        // Free what no earlier node needs.
        if let Some(v) = acts[i].take() {
            buffers::recycle(v);
        }
        saved[i] = Saved::None;
        profile.entry(profile_kind(&node.op)).or_default()[1] += t_op.elapsed().as_secs_f64() * 1e3;
    }
    Ok(Outcome {
        loss,
        hits,
        grads: out,
        ms: [forward_ms, t1.elapsed().as_secs_f64() * 1e3],
        profile,
    })
}

/// The geometry of conv node `i` over `n` images (`shapes`: [`Net::shapes`]).
pub fn conv_geom(net: &Net, shapes: &[[usize; 3]], i: usize, n: usize) -> conv::ConvGeom {
    let node = &net.nodes[i];
    let Op::Conv {
        kernel,
        stride,
        dilation,
        padding,
        groups,
        cin,
        cout,
        ..
    } = node.op
    else {
        unreachable!("conv_geom of a conv")
    };
    let [h, w, _] = shapes[node.inputs[0]];
    let [ho, wo, _] = shapes[i];
    conv::ConvGeom {
        n,
        h,
        w,
        cin,
        ho,
        wo,
        cout,
        k: kernel,
        stride,
        pad: padding,
        dil: dilation,
        groups,
    }
}

/// The geometry of pool node `i` over `n` images (`shapes`: [`Net::shapes`]).
pub fn pool_geom(net: &Net, shapes: &[[usize; 3]], i: usize, n: usize) -> pool::PoolGeom {
    let node = &net.nodes[i];
    let (Op::MaxPool {
        kernel,
        stride,
        padding,
    }
    | Op::AvgPool {
        kernel,
        stride,
        padding,
    }) = node.op
    else {
        unreachable!("pool_geom of a pool")
    };
    let [h, w, c] = shapes[node.inputs[0]];
    let [ho, wo, _] = shapes[i];
    pool::PoolGeom {
        n,
        h,
        w,
        c,
        ho,
        wo,
        k: kernel,
        stride,
        pad: padding,
    }
}
