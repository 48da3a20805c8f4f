//! GHN-QAT's training step on the native engine: the quantized simulation of [`crate::sim`] as QAT
//! runs it (each batch's activation ranges, BatchNorm folded with the batch's statistics, SimQuant
//! or NoiseQuant), forward and backward on host buffers in NHWC, returning the loss and its
//! gradient with respect to every predicted parameter. The GHN's trainer hands the gradients to
//! burn as it does for the float nets (`Σ p·∂L/∂p`), so the GHN's gradients are those of burn's
//! fused graph through `sim::forward` (tested on random nets at 8, 4 and 2 bits, both weight
//! schemes, both methods).
//!
//! WHY: a QAT meta-step through burn's autodiff costs several times a float step on the native
//! engine, and GHN-QAT's finetuning is thousands of them.
//!
//! What the backward pass follows, as burn's autodiff does through `sim::forward`:
//! - fake quantization passes the gradient where its clamps do ([`crate::host_quant`]'s masks);
//!   scales, zero points and ranges are constants (detached), biases round straight through;
//! - a folded BatchNorm (Eq. 4) differentiates through `w·γ/σ` and `β + (b − μ)·γ/σ` into γ, β,
//!   the weight, and the batch statistics `μ`, `σ²`, which themselves come from the unfolded
//!   convolution of the same input: the gradient reaches the weight and the input twice;
//! - the device's rounded averages pass the float average's gradient (STE).

use std::time::Instant;

use crate::affine::AffineParams;
use crate::config::QuantConfig;
use crate::fake::{Grid, act_key, weight_key};
use crate::host_quant::{
    BnFold, affine, batch_stats, bn_scale, concat_channels, device_avg_pool, device_global_avg,
    device_weights, fake_quant_act, fold,
};
use crate::lower::{Activation, Lowered, Step};
use crate::sim::{clip_range_of, tensor_bits};
use ghnq_core::arch::{Net, Op};
use ghnq_core::cnn::executor::BN_EPS;
use ghnq_core::cnn::native::{
    self, LayerValues, NativeError, NetValues, Outcome, Profile, buffers, conv, pool, simd,
};

/// How to run one QAT step.
#[derive(Debug, Clone, Copy)]
pub struct QatOptions<'a> {
    /// The quantization trained for.
    pub config: &'a QuantConfig,
    /// The seed of NoiseQuant's draws (`fake::noise`); burn's path with the same seed draws the
    /// same noise.
    pub noise_seed: u64,
    /// Factor on every returned gradient (1/meta-batch for a meta-batch mean).
    pub grad_scale: f32,
}

/// What a folded BatchNorm keeps for the backward pass.
struct FoldTape {
    /// The node.
    bn: usize,
    /// The unfolded convolution's output, whose statistics were folded.
    pre: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
    /// `γ/σ`.
    a: Vec<f32>,
}

/// What a step keeps for the backward pass.
enum Tape {
    None,
    Conv {
        geom: conv::ConvGeom,
        /// The weights the convolution ran with (folded, quantized).
        wq: Vec<f32>,
        /// Where the weight quantization passes a gradient.
        wpass: Vec<bool>,
        /// Whether the convolution ran with a bias (its own, or the folded shift).
        has_bias: bool,
        fold: Option<FoldTape>,
    },
    Affine {
        aq: Vec<f32>,
        apass: Vec<bool>,
        a: Vec<f32>,
        mean: Vec<f32>,
        var: Vec<f32>,
    },
    MaxArg(Vec<u32>),
    Linear {
        wq: Vec<f32>,
        wpass: Vec<bool>,
    },
}

/// The mean cross-entropy of the quantized simulation of `net` (parameters `p`, `n` NHWC images
/// `x`, batch ranges, batch statistics, training grids) against `labels`, and its gradient with
/// respect to every parameter.
pub fn loss_and_grads(
    net: &Net,
    lowered: &Lowered,
    p: &NetValues,
    x: &[f32],
    labels: &[usize],
    opts: QatOptions<'_>,
) -> Result<Outcome, NativeError> {
    let n = labels.len();
    let shapes = native::check_input(net, p, x, n)?;
    let missing = |i: usize, what: &'static str| native::missing_params(net, i, what);
    let q = opts.config;
    let grid = |key: u64| Grid::of(q.method, opts.noise_seed, key);
    let bn_params = |i: usize| match &p.layers[i] {
        LayerValues::BatchNorm { gamma, beta } => Ok((gamma.as_slice(), beta.as_slice())),
        _ => Err(missing(i, "batch-norm")),
    };
    let nt = lowered.tensors.len();
    let mut profile = Profile::new();
    let t0 = Instant::now();

    // Forward. Every tensor's stored value is kept until the backward pass is done with it;
    // `pass[t]` is where its activation and quantization pass the gradient.
    let mut values: Vec<Option<Vec<f32>>> = vec![None; nt];
    let mut pass: Vec<Option<Vec<bool>>> = vec![None; nt];
    let mut qparams: Vec<Option<AffineParams>> = vec![None; nt];
    let mut tapes: Vec<Tape> = Vec::with_capacity(lowered.steps.len());

    // Activate and quantize tensor `t` (`y`: its value before `act`) and store it:
    // `sim::forward`'s `finish` with batch ranges, the activation fused into the quantizer.
    let finish = |t: usize,
                  mut v: Vec<f32>,
                  act: Activation,
                  values: &mut Vec<Option<Vec<f32>>>,
                  pass: &mut Vec<Option<Vec<bool>>>,
                  qparams: &mut Vec<Option<AffineParams>>| {
        let root = lowered.quant_root(t);
        let qp = if root == t {
            // The activation is a clamp, so the activated tensor's range is the clamped range.
            let range = match act {
                Activation::Linear => clip_range_of(&v, q.act_clip),
                Activation::Relu { six } => clip_range_of(&v, q.act_clip)
                    .clamped(0.0, if six { 6.0 } else { f32::INFINITY }),
            };
            let qp = AffineParams::from_range(range, tensor_bits(net, lowered, t, q));
            qparams[t] = Some(qp);
            qp
        } else {
            qparams[root].expect("the root tensor is computed first")
        };
        let mut ok = vec![true; v.len()];
        fake_quant_act(&mut v, qp, act, grid(act_key(t)), Some(&mut ok));
        values[t] = Some(v);
        pass[t] = Some(ok);
    };

    finish(
        0,
        x.to_vec(),
        Activation::Linear,
        &mut values,
        &mut pass,
        &mut qparams,
    );
    for step in &lowered.steps {
        let t_op = Instant::now();
        let get = |t: usize| {
            values[t]
                .as_deref()
                .expect("inputs are computed before their readers")
        };
        let scale_of = |t: usize| qparams[lowered.quant_root(t)].map(|qp| qp.scale);
        let (out, act, tape) = match step {
            Step::Conv {
                conv: node,
                bn,
                input,
                act,
                ..
            } => {
                let LayerValues::Conv { weight, bias } = &p.layers[*node] else {
                    return Err(missing(*node, "conv"));
                };
                let geom = native::conv_geom(net, &shapes, *node, n);
                let x = get(*input);
                let run = |w: &[f32], b: Option<&[f32]>| {
                    simd(
                        #[inline(always)]
                        || conv::forward(x, &geom, w, b),
                    )
                };
                let (w, b, fold_tape) = match bn {
                    None => (weight.clone(), bias.clone(), None),
                    Some(b) => {
                        let (gamma, beta) = bn_params(*b)?;
                        let pre = run(weight, bias.as_deref());
                        let (mean, var) = batch_stats(&pre, geom.cout);
                        let with = BnFold {
                            gamma,
                            beta,
                            mean,
                            var,
                        };
                        let mut w = weight.clone();
                        let shift = fold(&mut w, bias.as_deref(), &with);
                        let tape = FoldTape {
                            bn: *b,
                            pre,
                            a: bn_scale(gamma, &with.var),
                            mean: with.mean,
                            var: with.var,
                        };
                        (w, Some(shift), Some(tape))
                    }
                };
                let has_bias = b.is_some();
                let mut wpass = vec![true; w.len()];
                let (wq, bq) = device_weights(
                    w,
                    b,
                    geom.cout,
                    Some(q),
                    Some((net, *node)),
                    scale_of(*input),
                    grid(weight_key(*node)),
                    Some(&mut wpass),
                );
                let y = run(&wq, bq.as_deref());
                let tape = Tape::Conv {
                    geom,
                    wq,
                    wpass,
                    has_bias,
                    fold: fold_tape,
                };
                (y, *act, tape)
            }
            Step::Affine { bn, input, act, .. } => {
                let x = get(*input);
                let c = lowered.tensors[*input].shape[2];
                let (gamma, beta) = bn_params(*bn)?;
                let (mean, var) = batch_stats(x, c);
                let with = BnFold {
                    gamma,
                    beta,
                    mean,
                    var,
                };
                let (a, shift) = affine(&with);
                let mut apass = vec![true; c];
                let (aq, shift) = device_weights(
                    a.clone(),
                    Some(shift),
                    c,
                    Some(q),
                    None,
                    scale_of(*input),
                    grid(weight_key(*bn)),
                    Some(&mut apass),
                );
                let shift = shift.expect("given");
                let mut y = buffers::copy_of(x);
                for px in y.chunks_exact_mut(c) {
                    for ((v, a), s) in px.iter_mut().zip(&aq).zip(&shift) {
                        *v = *v * a + s;
                    }
                }
                let tape = Tape::Affine {
                    aq,
                    apass,
                    a,
                    mean: with.mean,
                    var: with.var,
                };
                (y, *act, tape)
            }
            Step::Relu { six, input, .. } => (
                buffers::copy_of(get(*input)),
                Activation::Relu { six: *six },
                Tape::None,
            ),
            Step::MaxPool {
                node, input, act, ..
            } => {
                let g = native::pool_geom(net, &shapes, *node, n);
                let (y, arg) = simd(
                    #[inline(always)]
                    || pool::max_forward(get(*input), &g),
                );
                (y, *act, Tape::MaxArg(arg))
            }
            Step::AvgPool {
                node, input, act, ..
            } => {
                let g = native::pool_geom(net, &shapes, *node, n);
                let qp = qparams[lowered.quant_root(*input)].expect("every tensor is quantized");
                let y = device_avg_pool(get(*input), qp, &g);
                (y, *act, Tape::None)
            }
            Step::GlobalAvgPool { input, act, .. } => {
                let [h, w, c] = lowered.tensors[*input].shape;
                let qp = qparams[lowered.quant_root(*input)].expect("every tensor is quantized");
                let y = device_global_avg(get(*input), qp, n, h * w, c);
                (y, *act, Tape::None)
            }
            Step::Add { inputs, act, .. } => {
                let mut y = buffers::copy_of(get(inputs[0]));
                let b = get(inputs[1]);
                simd(
                    #[inline(always)]
                    || y.iter_mut().zip(b).for_each(|(a, b)| *a += b),
                );
                (y, *act, Tape::None)
            }
            Step::Concat {
                inputs,
                output,
                act,
                ..
            } => {
                let [h, w, _] = lowered.tensors[*output].shape;
                let parts: Vec<&[f32]> = inputs.iter().map(|&t| get(t)).collect();
                let widths: Vec<usize> = inputs
                    .iter()
                    .map(|&t| lowered.tensors[t].shape[2])
                    .collect();
                let y = concat_channels(&parts, &widths, n * h * w);
                (y, *act, Tape::None)
            }
            Step::Linear {
                node, input, act, ..
            } => {
                let LayerValues::Linear { weight, bias } = &p.layers[*node] else {
                    return Err(missing(*node, "linear"));
                };
                let Op::Linear { cin, cout, .. } = net.nodes[*node].op else {
                    return Err(missing(*node, "linear"));
                };
                let mut wpass = vec![true; weight.len()];
                let (wq, bq) = device_weights(
                    weight.clone(),
                    bias.clone(),
                    cout,
                    Some(q),
                    Some((net, *node)),
                    scale_of(*input),
                    grid(weight_key(*node)),
                    Some(&mut wpass),
                );
                let mut y = vec![0.0; n * cout];
                ghnq_gemm::matmul(
                    &mut y,
                    ghnq_gemm::View::new(get(*input), n, cin),
                    ghnq_gemm::View::new(&wq, cout, cin).t(),
                    false,
                );
                conv::add_bias(&mut y, bq.as_deref());
                (y, *act, Tape::Linear { wq, wpass })
            }
        };
        finish(
            step.output(),
            out,
            act,
            &mut values,
            &mut pass,
            &mut qparams,
        );
        tapes.push(tape);
        profile
            .entry(native::profile_kind(&net.nodes[step.node()].op))
            .or_default()[0] += t_op.elapsed().as_secs_f64() * 1e3;
    }

    let logits = values[lowered.output]
        .as_deref()
        .expect("the logits are computed");
    let (loss, hits, dlogits) = native::cross_entropy(logits, labels, net.classes, opts.grad_scale);
    let forward_ms = t0.elapsed().as_secs_f64() * 1e3;

    // Backward, steps in reverse.
    let t1 = Instant::now();
    let mut grads: Vec<Option<Vec<f32>>> = vec![None; nt];
    grads[lowered.output] = Some(dlogits);
    let mut out = NetValues {
        layers: vec![LayerValues::None; net.nodes.len()],
    };
    // The image needs no gradient.
    let wants = |t: usize| t != 0;
    for (step, tape) in lowered.steps.iter().zip(tapes).rev() {
        let t_op = Instant::now();
        let t = step.output();
        let Some(mut dy) = grads[t].take() else {
            continue;
        };
        let ok = pass[t].take().expect("every stored tensor has its mask");
        simd(
            #[inline(always)]
            || {
                for (d, &ok) in dy.iter_mut().zip(&ok) {
                    *d = if ok { *d } else { 0.0 };
                }
            },
        );
        match (step, tape) {
            (
                Step::Conv {
                    conv: node, input, ..
                },
                Tape::Conv {
                    geom,
                    wq,
                    wpass,
                    has_bias,
                    fold,
                },
            ) => {
                let x = values[*input].as_deref().expect("conv input kept");
                let mut dx = wants(*input).then(|| {
                    grads[*input]
                        .take()
                        .unwrap_or_else(|| buffers::zeros(x.len()))
                });
                let cg = simd(
                    #[inline(always)]
                    || conv::backward(x, &geom, &wq, has_bias, &dy, dx.as_deref_mut()),
                );
                let mut dw = cg.weight;
                dw.iter_mut()
                    .zip(&wpass)
                    .for_each(|(d, &ok)| *d = if ok { *d } else { 0.0 });
                let LayerValues::Conv { weight, bias } = &p.layers[*node] else {
                    unreachable!("the forward pass checked the parameters")
                };
                let (dw, db) = match fold {
                    None => (dw, cg.bias),
                    Some(f) => {
                        let dbf = cg.bias.expect("a folded convolution has a bias");
                        let (dw, db, dgamma, dbeta, dpre) =
                            fold_backward(&f, weight, bias.as_deref(), dw, &dbf);
                        let cg = simd(
                            #[inline(always)]
                            || {
                                conv::backward(
                                    x,
                                    &geom,
                                    weight,
                                    bias.is_some(),
                                    &dpre,
                                    dx.as_deref_mut(),
                                )
                            },
                        );
                        buffers::recycle(dpre);
                        out.layers[f.bn] = LayerValues::BatchNorm {
                            gamma: dgamma,
                            beta: dbeta,
                        };
                        let dw: Vec<f32> = dw.iter().zip(&cg.weight).map(|(a, b)| a + b).collect();
                        let db = db.zip(cg.bias).map(|(a, b)| {
                            a.iter().zip(&b).map(|(a, b)| a + b).collect::<Vec<f32>>()
                        });
                        buffers::recycle(f.pre);
                        (dw, db)
                    }
                };
                out.layers[*node] = LayerValues::Conv {
                    weight: dw,
                    bias: db,
                };
                if dx.is_some() {
                    grads[*input] = dx;
                }
            }
            (
                Step::Affine { bn, input, .. },
                Tape::Affine {
                    aq,
                    apass,
                    a,
                    mean,
                    var,
                },
            ) => {
                let x = values[*input].as_deref().expect("affine input kept");
                let c = aq.len();
                let mut daq = vec![0f64; c];
                let mut dshift = vec![0f64; c];
                for (px, d) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
                    for ch in 0..c {
                        daq[ch] += f64::from(d[ch]) * f64::from(px[ch]);
                        dshift[ch] += f64::from(d[ch]);
                    }
                }
                // shift = β − μ·a, a = γ/σ.
                let mut dgamma = vec![0.0; c];
                let mut dmean = vec![0.0; c];
                let mut dvar = vec![0.0; c];
                for ch in 0..c {
                    let da =
                        if apass[ch] { daq[ch] } else { 0.0 } - dshift[ch] * f64::from(mean[ch]);
                    let (dg, dv) = scale_backward(da, var[ch], a[ch]);
                    dgamma[ch] = dg;
                    dvar[ch] = dv;
                    dmean[ch] = -dshift[ch] * f64::from(a[ch]);
                }
                if wants(*input) {
                    let mut dx = grads[*input]
                        .take()
                        .unwrap_or_else(|| buffers::zeros(x.len()));
                    let m = (x.len() / c.max(1)).max(1) as f64;
                    for ((g, px), d) in dx
                        .chunks_exact_mut(c)
                        .zip(x.chunks_exact(c))
                        .zip(dy.chunks_exact(c))
                    {
                        for ch in 0..c {
                            g[ch] += d[ch] * aq[ch]
                                + ((dmean[ch]
                                    + 2.0 * dvar[ch] * (f64::from(px[ch]) - f64::from(mean[ch])))
                                    / m) as f32;
                        }
                    }
                    grads[*input] = Some(dx);
                }
                out.layers[*bn] = LayerValues::BatchNorm {
                    gamma: dgamma,
                    beta: dshift.iter().map(|&v| v as f32).collect(),
                };
            }
            (Step::Relu { input, .. }, _) => add_into(&mut grads[*input], dy, wants(*input)),
            (Step::MaxPool { input, .. }, Tape::MaxArg(arg)) => {
                if wants(*input) {
                    let len = values[*input].as_ref().map_or(0, Vec::len);
                    let dx = grads[*input].get_or_insert_with(|| buffers::zeros(len));
                    simd(
                        #[inline(always)]
                        || pool::max_backward(&arg, &dy, dx),
                    );
                }
            }
            (Step::AvgPool { node, input, .. }, _) => {
                if wants(*input) {
                    let g = native::pool_geom(net, &shapes, *node, n);
                    let len = values[*input].as_ref().map_or(0, Vec::len);
                    let dx = grads[*input].get_or_insert_with(|| buffers::zeros(len));
                    simd(
                        #[inline(always)]
                        || pool::avg_backward(&g, &dy, dx),
                    );
                }
            }
            (Step::GlobalAvgPool { input, .. }, _) => {
                if wants(*input) {
                    let [h, w, c] = lowered.tensors[*input].shape;
                    let dx = grads[*input].get_or_insert_with(|| buffers::zeros(n * h * w * c));
                    simd(
                        #[inline(always)]
                        || pool::global_avg_backward(&dy, h * w, c, dx),
                    );
                }
            }
            (Step::Add { inputs, .. }, _) => {
                add_into(&mut grads[inputs[0]], dy.clone(), wants(inputs[0]));
                add_into(&mut grads[inputs[1]], dy, wants(inputs[1]));
            }
            (Step::Concat { inputs, output, .. }, _) => {
                let c = lowered.tensors[*output].shape[2];
                let mut offset = 0;
                for &j in inputs {
                    let cj = lowered.tensors[j].shape[2];
                    let mut part = buffers::with_capacity(dy.len() / c * cj);
                    dy.chunks_exact(c)
                        .for_each(|px| part.extend_from_slice(&px[offset..offset + cj]));
                    add_into(&mut grads[j], part, wants(j));
                    offset += cj;
                }
            }
            (Step::Linear { node, input, .. }, Tape::Linear { wq, wpass }) => {
                let Op::Linear { cin, cout, bias } = net.nodes[*node].op else {
                    unreachable!("the forward pass checked the node")
                };
                let x = values[*input].as_deref().expect("linear input kept");
                let mut dw = vec![0.0; cout * cin];
                ghnq_gemm::matmul(
                    &mut dw,
                    ghnq_gemm::View::new(&dy, n, cout).t(),
                    ghnq_gemm::View::new(x, n, cin),
                    false,
                );
                dw.iter_mut()
                    .zip(&wpass)
                    .for_each(|(d, &ok)| *d = if ok { *d } else { 0.0 });
                if wants(*input) {
                    let dx = grads[*input].get_or_insert_with(|| vec![0.0; n * cin]);
                    ghnq_gemm::matmul(
                        dx,
                        ghnq_gemm::View::new(&dy, n, cout),
                        ghnq_gemm::View::new(&wq, cout, cin),
                        true,
                    );
                }
                out.layers[*node] = LayerValues::Linear {
                    weight: dw,
                    bias: bias.then(|| conv::bias_grad(&dy, cout)),
                };
            }
            _ => unreachable!("each step keeps its own tape"),
        }
        if let Some(v) = values[t].take() {
            buffers::recycle(v);
        }
        profile
            .entry(native::profile_kind(&net.nodes[step.node()].op))
            .or_default()[1] += t_op.elapsed().as_secs_f64() * 1e3;
    }
    Ok(Outcome {
        loss,
        hits,
        grads: out,
        ms: [forward_ms, t1.elapsed().as_secs_f64() * 1e3],
        profile,
    })
}

/// Adds `g` into a tensor's gradient (unless it wants none).
fn add_into(dst: &mut Option<Vec<f32>>, g: Vec<f32>, wanted: bool) {
    if wanted {
        native::add_into(dst, g);
    } else {
        buffers::recycle(g);
    }
}

/// `a = γ/√(σ² + ε)` backward: `(∂L/∂γ, ∂L/∂σ²)` from `∂L/∂a`.
fn scale_backward(da: f64, var: f32, a: f32) -> (f32, f64) {
    let var = f64::from(var) + BN_EPS;
    ((da / var.sqrt()) as f32, -da * f64::from(a) / (2.0 * var))
}

/// Eq. 4 backward. From the gradients of the folded weight `dwf` (already masked by the
/// quantizer) and of the folded bias `dbf`, returns the gradients of the weight and bias (before
/// the statistics' share), of γ and β, and the gradient with respect to the unfolded
/// convolution's output through the batch mean and variance.
#[allow(clippy::type_complexity)]
fn fold_backward(
    f: &FoldTape,
    weight: &[f32],
    bias: Option<&[f32]>,
    mut dwf: Vec<f32>,
    dbf: &[f32],
) -> (Vec<f32>, Option<Vec<f32>>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let cout = f.a.len();
    let per = (weight.len() / cout.max(1)).max(1);
    let mut dgamma = vec![0.0; cout];
    let mut dmean = vec![0f64; cout];
    let mut dvar = vec![0f64; cout];
    for c in 0..cout {
        // wf = w·a, bf = β + (b − μ)·a.
        let row = &mut dwf[c * per..(c + 1) * per];
        let mut da: f64 = row
            .iter()
            .zip(&weight[c * per..(c + 1) * per])
            .map(|(d, w)| f64::from(*d) * f64::from(*w))
            .sum();
        let b = bias.map_or(0.0, |b| b[c]);
        da += f64::from(dbf[c]) * f64::from(b - f.mean[c]);
        row.iter_mut().for_each(|d| *d *= f.a[c]);
        let (dg, dv) = scale_backward(da, f.var[c], f.a[c]);
        dgamma[c] = dg;
        dvar[c] = dv;
        dmean[c] = -f64::from(dbf[c]) * f64::from(f.a[c]);
    }
    let db = bias.map(|_| (0..cout).map(|c| dbf[c] * f.a[c]).collect());
    // μ and σ² of the unfolded output `pre` over its rows.
    let m = (f.pre.len() / cout.max(1)).max(1) as f64;
    let c1: Vec<f32> = (0..cout).map(|c| (dmean[c] / m) as f32).collect();
    let c2: Vec<f32> = (0..cout).map(|c| (2.0 * dvar[c] / m) as f32).collect();
    let mut dpre = buffers::with_capacity(f.pre.len());
    for px in f.pre.chunks_exact(cout) {
        dpre.extend(
            px.iter()
                .zip(&f.mean)
                .zip(c1.iter().zip(&c2))
                .map(|((&v, &mu), (&c1, &c2))| c1 + c2 * (v - mu)),
        );
    }
    (dwf, db, dgamma, dbf.to_vec(), dpre)
}

#[cfg(test)]
mod tests;
