//! The native QAT step against burn's autodiff through `sim::forward` (training, batch ranges,
//! batch statistics): the same loss and the same gradient for every parameter, at 8, 4 and 2 bits,
//! both weight schemes, both methods, absolute and percentile ranges.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};

use super::*;
use crate::config::{Clip, Precision};
use crate::fake::{Method, host_values};
use crate::sim::{self, Acts, SimOptions};
use crate::sim_native::tests::{nets, seeded};
use ghnq_core::arch::ImageShape;
use ghnq_core::cnn::native::nchw_to_nhwc;
use ghnq_core::cnn::{BnMode, LayerParams, ParamSet};
use ghnq_core::train::cross_entropy;
use shared_format::op::WeightScheme;

/// Every parameter gradient burn's autodiff gives, in `NetValues` order.
fn burn_grads(p: &ParamSet, g: &burn::tensor::Gradients) -> Vec<Vec<f32>> {
    let v = |t: Option<Tensor<1>>| t.map(|t| host_values(&t)).unwrap_or_default();
    let mut out = Vec::new();
    for l in &p.layers {
        match l {
            LayerParams::None => {}
            LayerParams::Conv { weight, bias } => {
                out.push(weight.grad(g).map(|t| host_values(&t)).unwrap_or_default());
                out.push(v(bias.as_ref().and_then(|b| b.grad(g))));
            }
            LayerParams::Linear { weight, bias } => {
                out.push(weight.grad(g).map(|t| host_values(&t)).unwrap_or_default());
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

/// The native gradients in the same order (a parameter without one counts as empty, as in burn).
fn native_grads(p: &ParamSet, v: &NetValues) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for (l, g) in p.layers.iter().zip(&v.layers) {
        match (l, g) {
            (LayerParams::None, _) => {}
            (LayerParams::Conv { .. }, LayerValues::Conv { weight, bias })
            | (LayerParams::Linear { .. }, LayerValues::Linear { weight, bias }) => {
                out.push(weight.clone());
                out.push(bias.clone().unwrap_or_default());
            }
            (LayerParams::BatchNorm { .. }, LayerValues::BatchNorm { gamma, beta }) => {
                out.push(gamma.clone());
                out.push(beta.clone());
            }
            // A dead node: no gradient.
            _ => {
                out.push(Vec::new());
                out.push(Vec::new());
            }
        }
    }
    out
}

/// The configurations the test covers: the paper's defaults at 8, 4 and 2 bits (NoiseQuant at
/// 2), mixed bits, per-channel weights, percentile ranges, NoiseQuant on per-channel weights.
fn configs() -> Vec<QuantConfig> {
    let paper = |w, a| QuantConfig::paper(Precision::new(w, a));
    vec![
        paper(8, 8),
        paper(4, 8),
        paper(8, 4),
        paper(4, 4),
        paper(2, 2),
        QuantConfig {
            scheme: WeightScheme::PerChannelSymmetric,
            ..paper(4, 4)
        },
        QuantConfig {
            act_clip: Clip::Percentile(1.0),
            weight_clip: Clip::Percentile(1.0),
            ..paper(4, 8)
        },
        QuantConfig {
            method: Method::NoiseQuant,
            scheme: WeightScheme::PerChannelSymmetric,
            ..paper(4, 4)
        },
    ]
}

/// Relative L2 distance of two gradient tensors (against the larger norm; two all-zero tensors
/// are equal).
fn rel_dist(a: &[f32], b: &[f32]) -> f32 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum();
    let n = na.max(nb);
    if n == 0.0 { 0.0 } else { (d / n).sqrt() as f32 }
}

/// Where the two engines' forward passes agree (the same loss to float noise), every gradient
/// tensor must agree to `TOL` (relative L2) and their median to `MEDIAN_TOL`. Where they do not,
/// a rounding landed on the other side of a grid point in one engine (they sum in different
/// orders) and batch ranges and statistics carry it through the net: that is the forward's float
/// noise (see `sim_native`'s test), not the backward's, and such pairs must stay a minority.
const TOL: f32 = 5e-2;
const MEDIAN_TOL: f32 = 1e-2;

fn compare() {
    let device = Device::flex();
    let mut rng = rand::rngs::StdRng::seed_from_u64(41);
    let batch = 8;
    let (mut agreed, mut flipped) = (0, 0);
    for net in nets() {
        let lowered = Lowered::new(&net).unwrap();
        let params = seeded(&net, &mut rng, &device);
        let ImageShape { h, w, c } = net.input;
        let x: Vec<f32> = (0..batch * c * h * w)
            .map(|_| rng.random_range(-2.0f32..2.0))
            .collect();
        let labels: Vec<usize> = (0..batch)
            .map(|_| rng.random_range(0..net.classes))
            .collect();
        let values = NetValues::from_params(&params);
        let x_nhwc = nchw_to_nhwc(&x, batch, c, h, w);
        for config in configs() {
            let label = format!("{} {}", net.name, config.label());
            let seed = rng.random::<u64>();
            let trainable = params.clone().into_trainable();
            let ad = Device::flex().autodiff();
            let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [batch, c, h, w]), &ad);
            let yt = Tensor::<1, Int>::from_data(
                TensorData::new(labels.iter().map(|&l| l as i64).collect(), [batch]),
                &ad,
            );
            let opts = SimOptions {
                quant: Some(&config),
                acts: Acts::Batch,
                bn: BnMode::Batch,
                training: true,
                noise_seed: seed,
            };
            let loss = cross_entropy(sim::forward(&net, &lowered, &trainable, xt, opts, None), yt);
            let want_loss: f32 = loss.clone().into_scalar();
            let want = burn_grads(&trainable, &loss.backward());

            let got = loss_and_grads(
                &net,
                &lowered,
                &values,
                &x_nhwc,
                &labels,
                QatOptions {
                    config: &config,
                    noise_seed: seed,
                    grad_scale: 1.0,
                },
            )
            .expect("native QAT step");
            assert!(got.loss.is_finite(), "{label}: loss {}", got.loss);
            let dloss = (got.loss - want_loss).abs();
            if dloss > 1e-6 * want_loss.abs().max(1.0) {
                eprintln!(
                    "{label}: forward passes apart (loss {want_loss} vs {})",
                    got.loss
                );
                flipped += 1;
                continue;
            }
            let got = native_grads(&params, &got.grads);
            assert_eq!(got.len(), want.len(), "{label}: tensor count");
            let mut dists: Vec<f32> = got
                .iter()
                .zip(&want)
                .enumerate()
                .map(|(t, (g, w))| {
                    assert_eq!(g.len(), w.len(), "{label} tensor {t}: length");
                    let d = rel_dist(g, w);
                    assert!(
                        d <= TOL,
                        "{label} tensor {t}: native and burn gradients {d} apart (relative L2)"
                    );
                    d
                })
                .collect();
            dists.sort_by(f32::total_cmp);
            let median = dists[dists.len() / 2];
            assert!(
                median <= MEDIAN_TOL,
                "{label}: gradients {median} apart in the median tensor"
            );
            eprintln!(
                "{label}: median tensor {median:.1e}, worst {:.1e} apart",
                dists.last().copied().unwrap_or(0.0)
            );
            agreed += 1;
        }
    }
    assert!(
        agreed >= 2 * flipped,
        "{agreed} (net, precision) pairs compared, {flipped} with forward passes apart"
    );
}

/// Gradients of the native QAT step equal burn's autodiff through the quantized simulation.
#[test]
fn native_qat_gradients_equal_burns() {
    // One thread: burn's reductions split work by the pool's size, and every float-noise flip
    // of a rounding moves later ranges (see `sim_native`'s test).
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(compare);
}

/// The same seed draws the same noise; another seed other noise (so NoiseQuant's gradients are
/// not silently those of rounding).
#[test]
fn noise_quant_depends_on_its_seed_only() {
    let device = Device::flex();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let net = &nets()[0];
    let lowered = Lowered::new(net).unwrap();
    let values = NetValues::from_params(&seeded(net, &mut rng, &device));
    let ImageShape { h, w, c } = net.input;
    let x: Vec<f32> = (0..4 * c * h * w)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    let labels = [1, 2, 3, 4];
    let config = QuantConfig::paper(Precision::new(2, 2));
    assert_eq!(config.method, Method::NoiseQuant);
    let run = |seed| {
        loss_and_grads(
            net,
            &lowered,
            &values,
            &x,
            &labels,
            QatOptions {
                config: &config,
                noise_seed: seed,
                grad_scale: 1.0,
            },
        )
        .unwrap()
        .loss
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}
