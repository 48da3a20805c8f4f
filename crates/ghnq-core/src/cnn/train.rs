//! Plain SGD training of a net's own parameters — the "trained for one epoch" baseline of GHN-2's
//! tables, the random-initialisation study, and the short QAT finetuning that a GHN prediction is
//! meant to save.
//!
//! The recipe is DARTS/GHN-2's CIFAR-10 training of a fixed net, cut to the requested number of
//! steps: SGD with momentum 0.9 (not Nesterov), weight decay 3·10⁻⁴ (on every tensor, as PyTorch's
//! `SGD(weight_decay=…)` does), cosine-annealed learning rate from 0.025 to 0, BN with batch statistics.
//! Parameters stay plain tensors (no burn module) so the same [`ParamSet`] can come from the GHN.

use std::ops::ControlFlow;

use burn::tensor::{Device, Gradients, Tensor, TensorData};

use super::native::{self, LayerValues, NetValues};
use super::params::{ParamSet, TensorMap};
use super::{BnMode, forward};
use crate::arch::Net;
use crate::train::{ImageSource, cross_entropy, to_tensors, topk_hits};

/// SGD hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Initial learning rate (cosine-annealed to 0 over `steps`).
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// L2 weight decay added to every gradient.
    pub weight_decay: f64,
    /// Images per step.
    pub batch: usize,
    /// Number of steps.
    pub steps: usize,
}

impl SgdConfig {
    /// DARTS's fixed-net recipe for `epochs` passes over `images` training images.
    pub fn epochs(epochs: f64, images: usize, batch: usize) -> SgdConfig {
        SgdConfig {
            lr: 0.025,
            momentum: 0.9,
            weight_decay: 3e-4,
            batch,
            steps: ((epochs * images as f64) / batch.max(1) as f64)
                .ceil()
                .max(1.0) as usize,
        }
    }

    /// Learning rate of step `t` (cosine annealing, PyTorch's `CosineAnnealingLR` with `eta_min` 0).
    pub fn lr_at(&self, t: usize) -> f64 {
        let frac = t as f64 / self.steps.max(1) as f64;
        0.5 * self.lr * (1.0 + (std::f64::consts::PI * frac).cos())
    }
}

/// The learning rate of each step of an [`Sgd`].
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// [`SgdConfig::lr_at`]: cosine-annealed from `lr` to 0 over `steps` (the default).
    Cosine,
    /// Piecewise constant: `lr · factor^k` once `k` of the `milestones` (step indices) have been
    /// reached (the seed paper's §3.1: ×0.1 at epochs 75, 120 and 170 of 200).
    Step {
        /// Steps at which the rate is multiplied by `factor`.
        milestones: Vec<usize>,
        /// The factor.
        factor: f64,
    },
}

impl Schedule {
    /// Learning rate of step `t` under `config`.
    pub fn lr_at(&self, config: &SgdConfig, t: usize) -> f64 {
        match self {
            Schedule::Cosine => config.lr_at(t),
            Schedule::Step { milestones, factor } => {
                let k = milestones.iter().filter(|&&m| t >= m).count();
                config.lr * factor.powi(k as i32)
            }
        }
    }
}

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Cross-entropy of the batch (before the update).
    pub loss: f64,
    /// Top-1 accuracy of the batch in %.
    pub acc: f64,
}

/// SGD with momentum over a [`ParamSet`] whose tensors live on an autodiff device.
#[derive(Debug)]
pub struct Sgd {
    config: SgdConfig,
    /// One flattened momentum buffer per trainable tensor, in [`ParamSet::tensors`] order.
    velocity: Vec<Option<Tensor<1>>>,
    step: usize,
    schedule: Schedule,
}

impl Sgd {
    /// A fresh optimiser (zero momentum).
    pub fn new(config: SgdConfig) -> Sgd {
        Sgd {
            config,
            velocity: Vec::new(),
            step: 0,
            schedule: Schedule::Cosine,
        }
    }

    /// The same optimiser with another learning-rate schedule.
    pub fn with_schedule(mut self, schedule: Schedule) -> Sgd {
        self.schedule = schedule;
        self
    }

    /// Steps taken so far.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// One training step on the next batch of `images`: forward with batch-statistics BN and
    /// dropout on, cross-entropy, backward, momentum update. A non-finite loss leaves the
    /// parameters unchanged (the step still counts, so schedules stay aligned).
    pub fn step(
        &mut self,
        net: &Net,
        params: ParamSet,
        images: &mut dyn ImageSource,
        device: &Device,
    ) -> (ParamSet, StepReport) {
        self.step_with(params, images, device, |p, x| {
            forward(net, p, x, BnMode::Batch, true)
        })
    }

    /// [`Sgd::step`] through any differentiable forward pass (the quantized simulation for QAT
    /// of the net itself).
    pub fn step_with(
        &mut self,
        params: ParamSet,
        images: &mut dyn ImageSource,
        device: &Device,
        forward: impl FnOnce(&ParamSet, Tensor<4>) -> Tensor<2>,
    ) -> (ParamSet, StepReport) {
        let batch = images.next_batch(self.config.batch);
        let (x, y) = to_tensors(&batch, images.shape(), device);
        let logits = forward(&params, x);
        let (top1, _) = topk_hits(&logits, &batch.labels);
        let loss = cross_entropy(logits, y);
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        let report = StepReport {
            loss: loss_value,
            acc: 100.0 * top1 as f64 / batch.labels.len().max(1) as f64,
        };
        let lr = self.schedule.lr_at(&self.config, self.step);
        self.step += 1;
        if !loss_value.is_finite() {
            return (params, report);
        }
        let grads = loss.backward();
        let mut upd = Update {
            grads: &grads,
            velocity: &mut self.velocity,
            next: 0,
            lr,
            momentum: self.config.momentum,
            weight_decay: self.config.weight_decay,
        };
        (params.map(&mut upd), report)
    }
}

/// The update of one step, applied tensor by tensor in [`ParamSet::tensors`] order.
struct Update<'a> {
    grads: &'a Gradients,
    velocity: &'a mut Vec<Option<Tensor<1>>>,
    next: usize,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
}

impl TensorMap for Update<'_> {
    /// `v ← μ·v + (g + λ·w)`, `w ← w − lr·v` (PyTorch's SGD), on the inner (non-autodiff)
    /// backend; the result is a fresh trainable leaf. A tensor without a gradient (a dead node)
    /// is returned as is.
    fn map<const D: usize>(&mut self, w: Tensor<D>) -> Tensor<D> {
        let i = self.next;
        self.next += 1;
        if self.velocity.len() <= i {
            self.velocity.resize(i + 1, None);
        }
        let Some(g) = w.grad(self.grads) else {
            return w;
        };
        let dims = w.dims();
        let n: usize = dims.iter().product();
        let wi = w.inner().reshape([n]);
        let g = g.reshape([n]) + wi.clone() * self.weight_decay;
        let v = match self.velocity[i].take() {
            Some(old) => old * self.momentum + g,
            None => g,
        };
        let nw = wi - v.clone() * self.lr;
        self.velocity[i] = Some(v);
        nw.reshape(dims).autodiff().require_grad()
    }
}

/// [`Sgd`] on host buffers: the parameters of the native engines ([`native::loss_and_grads`],
/// `ghnq_quant::qat_native::loss_and_grads`), which give the loss and every gradient without
/// burn's autodiff. The same batches, schedule ([`Schedule::lr_at`]) and update rule as [`Sgd`]
/// (`v ← μ·v + (g + λ·w)`, `w ← w − lr·v`, decay on every tensor that has a gradient, none on a
/// dead node's), in the same `f32` operations, so both optimisers take the same step from the
/// same gradients.
#[derive(Debug)]
pub struct HostSgd {
    config: SgdConfig,
    /// One momentum buffer per trainable tensor, in [`ParamSet::tensors`] order.
    velocity: Vec<Option<Vec<f32>>>,
    step: usize,
    schedule: Schedule,
}

impl HostSgd {
    /// A fresh optimiser (zero momentum).
    pub fn new(config: SgdConfig) -> HostSgd {
        HostSgd {
            config,
            velocity: Vec::new(),
            step: 0,
            schedule: Schedule::Cosine,
        }
    }

    /// The same optimiser with another learning-rate schedule.
    pub fn with_schedule(mut self, schedule: Schedule) -> HostSgd {
        self.schedule = schedule;
        self
    }

    /// Steps taken so far.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// One training step on the next batch of `images`, as [`Sgd::step_with`]:
    /// `loss_and_grads(params, x, labels)` runs the net on the batch (`x` NHWC, as the native
    /// engines take it) and returns its mean cross-entropy, top-1 hits and `∂loss/∂p`. A
    /// non-finite loss leaves the parameters unchanged (the step still counts).
    pub fn step_with<E>(
        &mut self,
        params: &mut NetValues,
        images: &mut dyn ImageSource,
        loss_and_grads: impl FnOnce(&NetValues, &[f32], &[usize]) -> Result<native::Outcome, E>,
    ) -> Result<StepReport, E> {
        let batch = images.next_batch(self.config.batch);
        let shape = images.shape();
        let n = batch.labels.len();
        let x = native::nchw_to_nhwc(&batch.images, n, shape.c, shape.h, shape.w);
        let out = loss_and_grads(params, &x, &batch.labels)?;
        let loss = out.loss as f64;
        let report = StepReport {
            loss,
            acc: 100.0 * out.hits as f64 / n.max(1) as f64,
        };
        let lr = self.schedule.lr_at(&self.config, self.step);
        self.step += 1;
        if loss.is_finite() {
            self.update(params, &out.grads, lr);
        }
        Ok(report)
    }

    /// The update of [`Update::map`], tensor by tensor in [`ParamSet::tensors`] order.
    fn update(&mut self, params: &mut NetValues, grads: &NetValues, lr: f64) {
        let (lr, momentum, decay) = (
            lr as f32,
            self.config.momentum as f32,
            self.config.weight_decay as f32,
        );
        let mut i = 0;
        for (p, g) in params.layers.iter_mut().zip(&grads.layers) {
            for (w, g) in with_grads(p, g) {
                if self.velocity.len() <= i {
                    self.velocity.resize(i + 1, None);
                }
                let slot = &mut self.velocity[i];
                i += 1;
                // A tensor without a gradient (a dead node) keeps its value and momentum.
                let Some(g) = g else { continue };
                let v = slot.get_or_insert_with(|| vec![0.0; w.len()]);
                // From zero momentum, `v ← 0·μ + (g + λ·w)` is exactly PyTorch's first buffer.
                for ((w, v), g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
                    *v = *v * momentum + (g + *w * decay);
                    *w -= *v * lr;
                }
            }
        }
    }
}

/// A layer's trainable tensors in [`ParamSet::tensors`] order, each with its gradient (none for
/// a dead node, whose gradients are [`LayerValues::None`]).
fn with_grads<'a>(
    p: &'a mut LayerValues,
    g: &'a LayerValues,
) -> Vec<(&'a mut Vec<f32>, Option<&'a [f32]>)> {
    match (p, g) {
        (LayerValues::None, _) => Vec::new(),
        (
            LayerValues::Conv { weight, bias },
            LayerValues::Conv {
                weight: gw,
                bias: gb,
            },
        )
        | (
            LayerValues::Linear { weight, bias },
            LayerValues::Linear {
                weight: gw,
                bias: gb,
            },
        ) => {
            let mut out = vec![(weight, Some(gw.as_slice()))];
            out.extend(bias.as_mut().map(|b| (b, gb.as_deref())));
            out
        }
        (
            LayerValues::BatchNorm { gamma, beta },
            LayerValues::BatchNorm {
                gamma: gg,
                beta: gb,
            },
        ) => {
            vec![(gamma, Some(gg.as_slice())), (beta, Some(gb.as_slice()))]
        }
        (LayerValues::Conv { weight, bias } | LayerValues::Linear { weight, bias }, _) => {
            let mut out = vec![(weight, None)];
            out.extend(bias.as_mut().map(|b| (b, None)));
            out
        }
        (LayerValues::BatchNorm { gamma, beta }, _) => vec![(gamma, None), (beta, None)],
    }
}

/// `like` with its trainable tensors' values replaced by `values` (the same net's, as
/// [`NetValues::from_params`] reads them), on `like`'s device and with its running statistics:
/// the parameters a [`HostSgd`] trained, back as a [`ParamSet`] to evaluate or export.
pub fn params_from_host(like: &ParamSet, values: &NetValues) -> ParamSet {
    struct Fill<'a>(std::vec::IntoIter<&'a [f32]>);
    impl TensorMap for Fill<'_> {
        fn map<const D: usize>(&mut self, t: Tensor<D>) -> Tensor<D> {
            let v = self.0.next().expect("the values of every tensor");
            Tensor::from_data(TensorData::new(v.to_vec(), t.dims()), &t.device())
        }
    }
    let flat: Vec<&[f32]> = values
        .layers
        .iter()
        .flat_map(|l| match l {
            LayerValues::None => Vec::new(),
            LayerValues::Conv { weight, bias } | LayerValues::Linear { weight, bias } => {
                std::iter::once(weight.as_slice())
                    .chain(bias.as_deref())
                    .collect()
            }
            LayerValues::BatchNorm { gamma, beta } => vec![gamma.as_slice(), beta.as_slice()],
        })
        .collect();
    like.clone().map(&mut Fill(flat.into_iter()))
}

/// Train `params` for `config.steps` steps with a cosine schedule; `on_step` sees every report
/// (for progress bars and logs). Returns the trained parameters. [`train_on`] with the native
/// engine allowed and no early stop.
pub fn train(
    net: &Net,
    params: ParamSet,
    images: &mut dyn ImageSource,
    config: SgdConfig,
    device: &Device,
    mut on_step: impl FnMut(usize, StepReport),
) -> Result<ParamSet, native::NativeError> {
    let run = train_on(
        net,
        params,
        images,
        config,
        Schedule::Cosine,
        device,
        true,
        |t, r| {
            on_step(t, r);
            ControlFlow::Continue(())
        },
    )?;
    Ok(run.0)
}

/// The engine that took a run's steps ([`train_on`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// [`HostSgd`] over [`native::loss_and_grads`].
    Native,
    /// [`Sgd`] over burn's autodiff.
    Burn,
}

impl Engine {
    /// `native` or `burn`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Native => "native",
            Engine::Burn => "burn",
        }
    }
}

/// Train `params` for up to `config.steps` steps under `schedule`, on the CPU with the native
/// engine where `allow_native` ([`HostSgd`] over [`native::loss_and_grads`]: [`Sgd`]'s steps
/// within float rounding, as `host_sgd_takes_burns_steps` checks, at 2.6–3.7× the speed on the
/// study's nets), elsewhere (or for a net the native engine cannot run) with burn's autodiff.
/// Both draw step `t`'s dropout masks from seed `t`. `on_step` sees every report and may end
/// the run early (a diverging one). Returns the parameters and the engine that trained them.
#[allow(clippy::too_many_arguments)]
pub fn train_on(
    net: &Net,
    params: ParamSet,
    images: &mut dyn ImageSource,
    config: SgdConfig,
    schedule: Schedule,
    device: &Device,
    allow_native: bool,
    mut on_step: impl FnMut(usize, StepReport) -> ControlFlow<()>,
) -> Result<(ParamSet, Engine), native::NativeError> {
    let cpu = native::is_cpu(device);
    // Host copies of the parameters only for the native engine, which then must run the net
    // (one blank image) or burn trains it.
    let shape = images.shape();
    let blank = vec![0.0; shape.c * shape.h * shape.w];
    let native_values = (allow_native && cpu)
        .then(|| NetValues::from_params(&params))
        .filter(|values| native::logits(net, values, &blank, 1).is_ok());
    if let Some(mut values) = native_values {
        let mut sgd = HostSgd::new(config).with_schedule(schedule);
        for t in 0..config.steps {
            let opts = native::Options {
                train: true,
                dropout_seed: t as u64,
                grad_scale: 1.0,
            };
            let r = sgd.step_with(&mut values, images, |p, x, labels| {
                native::loss_and_grads(net, p, x, labels, opts)
            })?;
            if on_step(t, r).is_break() {
                break;
            }
        }
        return Ok((params_from_host(&params, &values), Engine::Native));
    }
    let mut params = params;
    let mut sgd = Sgd::new(config).with_schedule(schedule);
    for t in 0..config.steps {
        let (p, r) = sgd.step_with(params, images, device, |p, x| {
            super::forward_seeded(net, p, x, BnMode::Batch, true, Some(t as u64))
        });
        params = p;
        if on_step(t, r).is_break() {
            break;
        }
    }
    Ok((params, Engine::Burn))
}

/// One line on how a training run went: the mean training loss over its first and last 50
/// steps (or fewer) and how many steps had a non-finite loss (skipped, so not applied).
pub fn loss_summary(name: &str, losses: &[f64]) -> String {
    let finite: Vec<f64> = losses.iter().copied().filter(|l| l.is_finite()).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let k = finite.len().min(50);
    format!(
        "{name}: SGD {} steps, training loss {:.3} -> {:.3} (means of the first and last {k} finite steps), {} non-finite steps skipped",
        losses.len(),
        mean(&finite[..k]),
        mean(&finite[finite.len() - k..]),
        losses.len() - finite.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ImageShape;
    use crate::sources::{SyntheticImages, random_small_net};
    use rand::SeedableRng;

    #[test]
    fn loss_summary_separates_first_and_last_steps_and_counts_non_finite() {
        let mut losses = vec![2.0; 50];
        losses.extend([f64::NAN, f64::INFINITY]);
        losses.extend(vec![0.5; 50]);
        let line = loss_summary("n", &losses);
        assert_eq!(
            line,
            "n: SGD 102 steps, training loss 2.000 -> 0.500 (means of the first and last 50 finite steps), 2 non-finite steps skipped"
        );
        assert!(loss_summary("e", &[]).contains("0 steps"));
    }

    #[test]
    fn cosine_schedule_starts_at_lr_and_ends_at_zero() {
        let c = SgdConfig::epochs(1.0, 640, 64);
        assert_eq!(c.steps, 10);
        assert!((c.lr_at(0) - 0.025).abs() < 1e-12);
        assert!((c.lr_at(5) - 0.0125).abs() < 1e-12);
        assert!(c.lr_at(10).abs() < 1e-12);
    }

    /// The same batch every step: SGD must fit it, whatever the random initialisation.
    struct OneBatch(crate::train::LabeledBatch);

    impl ImageSource for OneBatch {
        fn shape(&self) -> ImageShape {
            ImageShape::FASHION_MNIST
        }
        fn next_batch(&mut self, _batch: usize) -> crate::train::LabeledBatch {
            self.0.clone()
        }
        fn len(&self) -> usize {
            self.0.labels.len()
        }
    }

    /// [`HostSgd`] over the native float engine's gradients takes [`Sgd`]'s steps over burn's
    /// autodiff (the same start, batches and dropout masks): the update rule, schedule and
    /// tensor order are the same. Tolerance: the updates (trained − start) agree to 1e-3
    /// relative L2 per tensor. What is left is the gradients' float noise (sums in another
    /// order; observed ≤ 7e-5, in a BatchNorm's small update), while a rule's difference is
    /// far larger (dropping the weight decay alone: 1.4e-2).
    #[test]
    fn host_sgd_takes_burns_steps() {
        let dev = Device::flex();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let shape = ImageShape::FASHION_MNIST;
        let net = random_small_net(&mut rng, shape, 10, "host-sgd-test");
        let start = ParamSet::init_random_seeded(&net, 11, &dev);
        let config = SgdConfig {
            lr: 0.1,
            steps: 4,
            ..SgdConfig::epochs(1.0, 16, 16)
        };
        let images = || SyntheticImages::new(shape, 10, 64, 11);

        let ad = dev.clone().autodiff();
        let (mut sgd, mut source) = (Sgd::new(config), images());
        let mut params = start.clone().into_trainable();
        let mut burn_losses = Vec::new();
        for step in 0..config.steps {
            let (p, r) = sgd.step_with(params, &mut source, &ad, |p, x| {
                super::super::forward_seeded(&net, p, x, BnMode::Batch, true, Some(step as u64))
            });
            params = p;
            burn_losses.push(r.loss);
        }
        let burn = params.without_autodiff().tensor_values();

        let (mut sgd, mut source) = (HostSgd::new(config), images());
        let mut values = NetValues::from_params(&start);
        let mut host_losses = Vec::new();
        for step in 0..config.steps {
            let opts = native::Options {
                train: true,
                dropout_seed: step as u64,
                grad_scale: 1.0,
            };
            let r = sgd
                .step_with(&mut values, &mut source, |p, x, labels| {
                    native::loss_and_grads(&net, p, x, labels, opts)
                })
                .expect("native step");
            host_losses.push(r.loss);
        }
        assert_eq!(sgd.steps_done(), config.steps);
        let host = params_from_host(&start, &values).tensor_values();

        for (b, h) in burn_losses.iter().zip(&host_losses) {
            assert!(
                (b - h).abs() <= 1e-5 * b.abs(),
                "{burn_losses:?} vs {host_losses:?}"
            );
        }
        let start = start.tensor_values();
        assert_eq!(burn.len(), host.len());
        for (t, ((b, h), s)) in burn.iter().zip(&host).zip(&start).enumerate() {
            // |Δburn − Δhost| / max(|Δburn|, |Δhost|), Δ = trained − start.
            let (mut d, mut nb, mut nh) = (0.0f64, 0.0f64, 0.0f64);
            for ((b, h), s) in b.iter().zip(h).zip(s) {
                d += f64::from(b - h).powi(2);
                nb += f64::from(b - s).powi(2);
                nh += f64::from(h - s).powi(2);
            }
            let n = nb.max(nh);
            let rel = if n == 0.0 { 0.0 } else { (d / n).sqrt() };
            assert!(
                rel <= 1e-3,
                "tensor {t}: updates {rel:.1e} apart (relative L2)"
            );
        }
    }

    #[test]
    fn sgd_fits_one_batch() {
        let dev = Device::flex().autodiff();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let net = random_small_net(&mut rng, ImageShape::FASHION_MNIST, 10, "sgd-test");
        let batch = SyntheticImages::new(ImageShape::FASHION_MNIST, 10, 16, 7).next_batch(16);
        let mut images = OneBatch(batch);
        let config = SgdConfig {
            lr: 0.2,
            ..SgdConfig::epochs(30.0, 16, 16)
        };
        let mut losses = Vec::new();
        let params = train(
            &net,
            ParamSet::init_random_seeded(&net, 7, &dev),
            &mut images,
            config,
            &dev,
            |_, r| losses.push(r.loss),
        )
        .expect("the native engine runs the net");
        assert_eq!(losses.len(), 30);
        assert!(params.check_shapes(&net).is_ok());
        let (first, last) = (losses[0], losses[29]);
        assert!(
            last < 0.8 * first,
            "SGD did not fit one batch: loss {first:.3} -> {last:.3} ({losses:?})"
        );
    }
}
