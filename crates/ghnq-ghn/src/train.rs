//! Meta-training of the GHN (GHN_SPEC §3): each step samples a meta-batch of architectures, predicts
//! all their parameters, runs every net on the same image batch (BN with batch statistics, dropout
//! on), averages the cross-entropies and updates the GHN with Adam (L2 weight decay 1e-5 added to the
//! gradient, global gradient-norm clipping at 5). Steps whose loss is NaN/inf are skipped and counted.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::checkpoint::{self, TrainState};
use super::graph::GhnGraph;
use super::model::Ghn;
use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::cnn::native::{self, NetValues};
use ghnq_core::cnn::{BnMode, LayerParams, ParamSet, forward_seeded};
use ghnq_core::train::{
    ArchSource, ImageSource, LabeledBatch, cross_entropy, to_tensors, topk_hits,
};
use ghnq_quant::config::{Precision, QuantConfig};
use ghnq_quant::lower::Lowered;
use ghnq_quant::qat_native::{self, QatOptions};
use ghnq_quant::sim::{self, Acts, SimOptions};

/// The learning rate of GHN_SPEC §3.3 (MultiStepLR ×0.1 at epochs 200 and 250 of 300), scaled to
/// `epochs`: ×0.1 after 2/3 of the epochs and again after 5/6.
pub fn lr_at(base: f64, epoch: usize, epochs: usize) -> f64 {
    let m1 = (epochs * 200).div_ceil(300);
    let m2 = (epochs * 250).div_ceil(300);
    let mut lr = base;
    if epochs >= 3 && epoch >= m1 {
        lr *= 0.1;
    }
    if epochs >= 3 && epoch >= m2 {
        lr *= 0.1;
    }
    lr
}

/// Result of one meta-step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Mean cross-entropy over the meta-batch.
    pub loss: f32,
    /// Mean top-1 accuracy over the meta-batch (fraction).
    pub acc: f32,
    /// Global gradient L2 norm before clipping (0 when skipped).
    pub grad_norm: f32,
    /// True when the loss was not finite and no update was made.
    pub skipped: bool,
    /// Milliseconds in GHN forward (prediction), target-net forward (+ loss read-back),
    /// target-net backward, GHN backward (+ gradient norm), optimiser. The burn engine runs the
    /// nets' and the GHN's backward as one graph: it reports both in the nets' backward and 0
    /// for the GHN's.
    pub ms: [f64; 5],
}

/// How the target nets of a meta-training step run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// [`crate::cnn::native`]: forward and backward outside burn's autodiff, the nets of a
    /// meta-batch in parallel (rayon); the GHN's backward takes their parameter gradients.
    /// GHN-QAT's quantized nets run on `ghnq_quant::qat_native`. Host memory only: a GPU run
    /// uses [`Engine::Burn`].
    #[default]
    Native,
    /// burn's autodiff through [`crate::cnn::executor`] (and the quantized simulation): one graph
    /// from the GHN's weights to the loss. The reference the native engine is tested against.
    Burn,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Engine, String> {
        match s {
            "native" => Ok(Engine::Native),
            "burn" => Ok(Engine::Burn),
            other => Err(format!("unknown engine '{other}': native or burn")),
        }
    }
}

/// The optimiser of the GHN's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Optimizer {
    /// Adam with the weight decay added to the gradient (L2): GHN-2's (ppuda trains with
    /// `torch.optim.Adam`), so the golden and parity tests hold.
    #[default]
    Adam,
    /// AdamW: the weight decay decoupled from the adaptive step (Loshchilov & Hutter), so every
    /// weight decays alike whatever its gradient's scale; an ablation of the campaign's recipe.
    AdamW,
}

impl Optimizer {
    /// A fresh optimiser (β 0.9/0.999, ε 1e-8) with `weight_decay`.
    fn init(self, weight_decay: f64) -> ModuleOptimizer {
        match self {
            Optimizer::Adam => {
                let mut adam = AdamConfig::new().with_epsilon(1e-8);
                if weight_decay > 0.0 {
                    adam =
                        adam.with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)));
                }
                adam.init()
            }
            Optimizer::AdamW => AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(weight_decay as f32)
                .init(),
        }
    }
}

impl std::str::FromStr for Optimizer {
    type Err = String;
    fn from_str(s: &str) -> Result<Optimizer, String> {
        match s {
            "adam" => Ok(Optimizer::Adam),
            "adamw" => Ok(Optimizer::AdamW),
            other => Err(format!("unknown optimiser '{other}': adam or adamw")),
        }
    }
}

/// The dropout seed of net `k` of step `step` (both engines draw the same masks from it).
fn dropout_seed(step: usize, k: usize) -> u64 {
    ((step as u64) << 16) ^ k as u64
}

/// The GHN, its optimiser and the training counters.
pub struct MetaTrainer {
    /// The hypernetwork (on an autodiff device).
    pub ghn: Ghn,
    /// Adam or AdamW ([`Optimizer`]).
    pub optim: ModuleOptimizer,
    /// The autodiff device.
    pub device: Device,
    /// Steps and skips so far.
    pub state: TrainState,
    /// Global gradient-norm clip (GHN-2: 5).
    pub clip: f32,
    /// GHN-QAT: run the target nets as quantized simulations (fake-quantized BN-folded weights
    /// and activations, ranges and BN statistics from each batch) instead of in float.
    pub qat: Option<QuantConfig>,
    /// Bit-conditioned GHN-QAT: the quantizations to cycle through, one per step (step `s`
    /// uses `bit_choices[s % len]`, so a resumed run continues the cycle), each with its own
    /// ranges (absolute ones at 8 bits, where clipping the tails costs more than the finer
    /// grid gains, percentile ones at 4 and 2); empty = `qat` at every step.
    pub bit_choices: Vec<QuantConfig>,
    /// How the target nets run (float and QAT steps alike).
    pub engine: Engine,
    /// Milliseconds by op kind of the last native step, summed over its nets (empty after a
    /// burn step).
    pub last_profile: native::Profile,
}

struct GradNorm<'a> {
    grads: &'a GradientsParams,
    sq: f64,
}

impl ModuleVisitor for GradNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sq += g.square().sum().into_scalar::<f32>() as f64;
        }
    }
}

struct GradScale<'a> {
    grads: &'a mut GradientsParams,
    scale: f32,
}

impl ModuleVisitor for GradScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g * self.scale);
        }
    }
}

impl MetaTrainer {
    /// Adam (β 0.9/0.999, ε 1e-8), L2 weight decay `weight_decay` (GHN-2: 1e-5), clip 5.
    pub fn new(ghn: Ghn, weight_decay: f64, device: Device) -> MetaTrainer {
        MetaTrainer::with_optimizer(ghn, Optimizer::Adam, weight_decay, device)
    }

    /// As [`MetaTrainer::new`], with the optimiser of the caller's choosing.
    pub fn with_optimizer(
        ghn: Ghn,
        optimizer: Optimizer,
        weight_decay: f64,
        device: Device,
    ) -> MetaTrainer {
        MetaTrainer {
            ghn,
            optim: optimizer.init(weight_decay),
            device,
            state: TrainState::default(),
            clip: 5.0,
            qat: None,
            bit_choices: Vec::new(),
            engine: Engine::default(),
            last_profile: native::Profile::new(),
        }
    }

    /// The quantization the next step trains for (GHN-QAT): its turn in `bit_choices`, or
    /// `qat`.
    pub fn step_qat(&self) -> Option<QuantConfig> {
        self.qat.as_ref()?;
        match self.bit_choices.as_slice() {
            [] => self.qat.clone(),
            choices => Some(choices[self.state.step % choices.len()].clone()),
        }
    }

    /// The bit-widths a bit-conditioned GHN predicts for (none for a plain one).
    fn conditioning_bits(&self, qat: Option<&QuantConfig>) -> Option<Precision> {
        qat.filter(|_| self.ghn.config.bit_conditioned)
            .map(|q| q.precision)
    }

    /// Mean loss and accuracy of the meta-batch (the autodiff graph reaches the GHN).
    pub fn meta_loss(
        &self,
        nets: &[Net],
        x: &Tensor<4>,
        y: &Tensor<1, Int>,
        labels: &[usize],
    ) -> (Tensor<1>, f32) {
        let (loss, acc, _) = self.meta_loss_timed(nets, x, y, labels);
        (loss, acc)
    }

    /// The GHN's prediction (on the autodiff device, so gradients reach it) for every net.
    fn predict(&self, nets: &[Net], bits: Option<Precision>) -> Vec<ParamSet> {
        let graphs: Vec<GhnGraph> = nets
            .iter()
            .map(|n| GhnGraph::build(n, self.ghn.config.s_max).expect("sampled nets are valid"))
            .collect();
        let net_refs: Vec<&Net> = nets.iter().collect();
        let graph_refs: Vec<&GhnGraph> = graphs.iter().collect();
        self.ghn
            .predict_for(&net_refs, &graph_refs, bits, &self.device)
    }

    /// [`MetaTrainer::meta_loss`] plus the milliseconds spent predicting parameters.
    fn meta_loss_timed(
        &self,
        nets: &[Net],
        x: &Tensor<4>,
        y: &Tensor<1, Int>,
        labels: &[usize],
    ) -> (Tensor<1>, f32, f64) {
        let t = Instant::now();
        let qat = self.step_qat();
        let params = self.predict(nets, self.conditioning_bits(qat.as_ref()));
        if std::env::var_os("GHNQ_SYNC_TIMING").is_some() {
            // Force the lazy graph so the split of the step time is honest (costs a read-back).
            let _ = params[0].named_tensors(&nets[0]);
        }
        let predict_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut total: Option<Tensor<1>> = None;
        let mut hits = 0;
        for (k, (net, p)) in nets.iter().zip(&params).enumerate() {
            let seed = Some(dropout_seed(self.state.step, k));
            let logits = match &qat {
                None => forward_seeded(net, p, x.clone(), BnMode::Batch, true, seed),
                Some(q) => {
                    let lowered = Lowered::new(net).expect("sampled nets have a device lowering");
                    let opts = SimOptions {
                        quant: Some(q),
                        acts: Acts::Batch,
                        bn: BnMode::Batch,
                        training: true,
                        noise_seed: dropout_seed(self.state.step, k),
                    };
                    sim::forward(net, &lowered, p, x.clone(), opts, None)
                }
            };
            hits += topk_hits(&logits, labels).0;
            let l = cross_entropy(logits, y.clone());
            total = Some(match total {
                Some(t) => t + l,
                None => l,
            });
        }
        let m = nets.len().max(1);
        let loss = total.expect("non-empty meta-batch") / m as f32;
        (
            loss,
            hits as f32 / (m * labels.len()).max(1) as f32,
            predict_ms,
        )
    }

    /// One meta-step at learning rate `lr`.
    pub fn step(
        &mut self,
        nets: &[Net],
        batch: &LabeledBatch,
        shape: ImageShape,
        lr: f64,
    ) -> StepReport {
        if self.engine == Engine::Native {
            return self.step_native(nets, batch, shape, lr);
        }
        self.last_profile.clear();
        let t0 = Instant::now();
        let (x, y) = to_tensors(batch, shape, &self.device);
        let (loss, acc, predict_ms) = self.meta_loss_timed(nets, &x, &y, &batch.labels);
        let value: f32 = loss.clone().into_scalar::<f32>();
        let forward_ms = t0.elapsed().as_secs_f64() * 1e3 - predict_ms;
        let mut ms = [predict_ms, forward_ms, 0.0, 0.0, 0.0];
        if !value.is_finite() {
            return self.skipped(value, acc, 0.0, ms);
        }
        let t1 = Instant::now();
        let grads = loss.backward();
        let grads = GradientsParams::from_grads(grads, &self.ghn);
        let grad_norm = self.grad_norm(&grads);
        ms[2] = t1.elapsed().as_secs_f64() * 1e3;
        self.apply(grads, grad_norm, value, acc, ms, lr)
    }

    /// Counts a step skipped for a non-finite loss or gradient, and reports it.
    fn skipped(&mut self, loss: f32, acc: f32, grad_norm: f32, ms: [f64; 5]) -> StepReport {
        self.state.skipped += 1;
        StepReport {
            loss,
            acc,
            grad_norm,
            skipped: true,
            ms,
        }
    }

    /// The end of every step: the clipped Adam update and its time (`ms[4]`), unless the
    /// gradient is not finite.
    fn apply(
        &mut self,
        grads: GradientsParams,
        grad_norm: f32,
        loss: f32,
        acc: f32,
        mut ms: [f64; 5],
        lr: f64,
    ) -> StepReport {
        if !grad_norm.is_finite() {
            return self.skipped(loss, acc, grad_norm, ms);
        }
        let t = Instant::now();
        self.update(grads, grad_norm, lr);
        ms[4] = t.elapsed().as_secs_f64() * 1e3;
        StepReport {
            loss,
            acc,
            grad_norm,
            skipped: false,
            ms,
        }
    }

    /// Clip to the global norm and take an Adam step.
    fn update(&mut self, mut grads: GradientsParams, grad_norm: f32, lr: f64) {
        if grad_norm > self.clip {
            let mut scale = GradScale {
                grads: &mut grads,
                scale: self.clip / (grad_norm + 1e-6),
            };
            self.ghn.visit(&mut scale);
        }
        self.ghn = self.optim.step(lr, self.ghn.clone(), grads);
        self.state.step += 1;
    }

    /// The gradient norm of `grads` over the GHN's parameters.
    fn grad_norm(&self, grads: &GradientsParams) -> f32 {
        let mut norm = GradNorm { grads, sq: 0.0 };
        self.ghn.visit(&mut norm);
        norm.sq.sqrt() as f32
    }

    /// [`MetaTrainer::step`] on [`Engine::Native`]: the GHN predicts (burn, autodiff), the nets
    /// run forward and backward natively (as quantized simulations under GHN-QAT:
    /// `ghnq_quant::qat_native`), in parallel, and `Σ p·∂L/∂p` carries their gradients into the
    /// GHN's backward.
    fn step_native(
        &mut self,
        nets: &[Net],
        batch: &LabeledBatch,
        shape: ImageShape,
        lr: f64,
    ) -> StepReport {
        use rayon::prelude::*;
        let t0 = Instant::now();
        let qat = self.step_qat();
        let params = self.predict(nets, self.conditioning_bits(qat.as_ref()));
        let values: Vec<NetValues> = params.iter().map(NetValues::from_params).collect();
        let predict_ms = t0.elapsed().as_secs_f64() * 1e3;

        let t1 = Instant::now();
        let n = batch.labels.len();
        let x = native::nchw_to_nhwc(&batch.images, n, shape.c, shape.h, shape.w);
        let m = nets.len().max(1);
        let step = self.state.step;
        let outcomes: Vec<native::Outcome> = nets
            .par_iter()
            .zip(&values)
            .enumerate()
            .map(|(k, (net, v))| {
                let grad_scale = 1.0 / m as f32;
                match &qat {
                    None => native::loss_and_grads(
                        net,
                        v,
                        &x,
                        &batch.labels,
                        native::Options {
                            train: true,
                            dropout_seed: dropout_seed(step, k),
                            grad_scale,
                        },
                    ),
                    Some(config) => {
                        let lowered =
                            Lowered::new(net).expect("sampled nets have a device lowering");
                        qat_native::loss_and_grads(
                            net,
                            &lowered,
                            v,
                            &x,
                            &batch.labels,
                            QatOptions {
                                config,
                                noise_seed: dropout_seed(step, k),
                                grad_scale,
                            },
                        )
                    }
                }
                .expect("sampled nets run natively")
            })
            .collect();
        let nets_ms = t1.elapsed().as_secs_f64() * 1e3;
        self.last_profile.clear();
        for o in &outcomes {
            native::accumulate(&mut self.last_profile, &o.profile, 1.0);
        }
        // Split the wall time of the nets as their summed forward and backward times split.
        let (fwd, bwd) = outcomes
            .iter()
            .fold((0.0, 0.0), |(f, b), o| (f + o.ms[0], b + o.ms[1]));
        let fwd_share = if fwd + bwd > 0.0 {
            fwd / (fwd + bwd)
        } else {
            0.5
        };
        let mut ms = [
            predict_ms,
            nets_ms * fwd_share,
            nets_ms * (1.0 - fwd_share),
            0.0,
            0.0,
        ];
        let value = outcomes.iter().map(|o| o.loss).sum::<f32>() / m as f32;
        let acc = outcomes.iter().map(|o| o.hits).sum::<usize>() as f32 / (m * n).max(1) as f32;
        if !value.is_finite() {
            return self.skipped(value, acc, 0.0, ms);
        }

        let t2 = Instant::now();
        let surrogate = params
            .iter()
            .zip(&outcomes)
            .flat_map(|(p, o)| gradient_terms(p, &o.grads, &self.device))
            .reduce(|a, b| a + b)
            .expect("every net has parameters");
        let grads = GradientsParams::from_grads(surrogate.backward(), &self.ghn);
        let grad_norm = self.grad_norm(&grads);
        ms[3] = t2.elapsed().as_secs_f64() * 1e3;
        self.apply(grads, grad_norm, value, acc, ms, lr)
    }
}

/// `Σ t·g` (summed to a scalar) for every predicted tensor `t` and its gradient `g`: a surrogate
/// whose gradient with respect to the GHN is exactly the chain rule through `∂L/∂t = g`.
fn gradient_terms(p: &ParamSet, g: &NetValues, device: &Device) -> Vec<Tensor<1>> {
    fn term<const D: usize>(t: &Tensor<D>, g: &[f32], device: &Device) -> Tensor<1> {
        let grad = Tensor::<D>::from_data(TensorData::new(g.to_vec(), t.dims()), device);
        (t.clone() * grad).sum()
    }
    let mut out = Vec::new();
    for (l, gl) in p.layers.iter().zip(&g.layers) {
        match (l, gl) {
            (
                LayerParams::Conv { weight, bias },
                native::LayerValues::Conv {
                    weight: gw,
                    bias: gb,
                },
            ) => {
                out.push(term(weight, gw, device));
                if let (Some(b), Some(gb)) = (bias, gb) {
                    out.push(term(b, gb, device));
                }
            }
            (
                LayerParams::Linear { weight, bias },
                native::LayerValues::Linear {
                    weight: gw,
                    bias: gb,
                },
            ) => {
                out.push(term(weight, gw, device));
                if let (Some(b), Some(gb)) = (bias, gb) {
                    out.push(term(b, gb, device));
                }
            }
            (
                LayerParams::BatchNorm { gamma, beta, .. },
                native::LayerValues::BatchNorm {
                    gamma: gg,
                    beta: gbeta,
                },
            ) => {
                out.push(term(gamma, gg, device));
                out.push(term(beta, gbeta, device));
            }
            // Dead nodes get no gradient.
            _ => {}
        }
    }
    out
}

/// Options of a training run (the `ghnq train` flags).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Architectures per step.
    pub meta_batch: usize,
    /// Images per step.
    pub batch: usize,
    /// Epochs over the image set.
    pub epochs: usize,
    /// Base learning rate.
    pub lr: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Stop after this many steps (in total, counting resumed ones).
    pub max_steps: Option<usize>,
    /// Checkpoint directory.
    pub out: Option<PathBuf>,
    /// Checkpoint every N steps (0 = only at the end).
    pub checkpoint_every: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Keep only the newest N checkpoints in `out` (0 = keep every one).
    pub keep_checkpoints: usize,
}

/// A caller's own error, carried through (`run`'s `after_checkpoint`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a training run stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The per-step log could not be read or written.
    #[error("{} (the per-step log): {source}", path.display())]
    Log {
        /// The log file.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint could not be saved, pruned or read.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// `run`'s `after_checkpoint` failed (for the CLI: validation).
    #[error("after the checkpoint at step {step}: {source}")]
    AfterCheckpoint {
        /// The checkpoint's step.
        step: usize,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// Almost every step had a non-finite loss.
    #[error("{0} steps skipped for a non-finite loss; giving up")]
    GaveUp(usize),
}

/// Drops the lines of a per-step CSV log whose first field is a step at or after `start_step`
/// (a crash after logging them, before the checkpoint being resumed), so every step appears once.
pub fn truncate_log(path: &std::path::Path, start_step: usize) -> Result<(), TrainError> {
    if !path.exists() {
        return Ok(());
    }
    let log = |source| TrainError::Log {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(log)?;
    let kept: String = text
        .lines()
        .filter(|l| {
            l.split(',')
                .next()
                .and_then(|s| s.parse::<usize>().ok())
                .is_none_or(|step| step < start_step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if kept != text {
        ghnq_core::atomic::write(path, kept.as_bytes()).map_err(log)?;
    }
    Ok(())
}

/// Summary of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSummary {
    /// Steps taken in this run.
    pub steps: usize,
    /// Steps skipped (NaN/inf) in this run.
    pub skipped: usize,
    /// Loss of the last step.
    pub last_loss: f32,
    /// Mean loss of the first and last 10 % of the steps (≥ 1 step each).
    pub first_loss: f32,
    /// See `first_loss`.
    pub final_loss: f32,
    /// Wall-clock milliseconds per step.
    pub ms_per_step: f64,
}

/// The training loop: progress bar, CSV log (`train.csv` in `out`, one flushed line per step) and
/// atomic checkpoints; `after_checkpoint` runs after each one (the CLI validates there).
pub fn run(
    trainer: &mut MetaTrainer,
    archs: &mut dyn ArchSource,
    images: &mut dyn ImageSource,
    opts: &RunOptions,
    after_checkpoint: &mut dyn FnMut(&MetaTrainer) -> Result<(), BoxError>,
) -> Result<RunSummary, TrainError> {
    let steps_per_epoch = (images.len() / opts.batch.max(1)).max(1);
    let total = opts
        .max_steps
        .unwrap_or(steps_per_epoch * opts.epochs)
        .min(steps_per_epoch * opts.epochs.max(1));
    let start_step = trainer.state.step;
    // A resumed run sees the architectures and images an uninterrupted one would have seen next.
    for _ in 0..start_step {
        for _ in 0..opts.meta_batch {
            let _ = archs.sample();
        }
        let _ = images.next_batch(opts.batch);
    }
    let log_path = opts.out.as_ref().map(|dir| dir.join("train.csv"));
    let log = |source| TrainError::Log {
        path: log_path.clone().unwrap_or_default(),
        source,
    };
    let mut csv = match &opts.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(log)?;
            let path = dir.join("train.csv");
            truncate_log(&path, start_step)?;
            let fresh = !path.exists();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(log)?;
            if fresh {
                writeln!(f, "step,epoch,lr,loss,acc,grad_norm,skipped,steps_per_s").map_err(log)?;
            }
            Some(f)
        }
        None => None,
    };
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_position(start_step.min(total) as u64);
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let t0 = Instant::now();
    let mut losses: Vec<f32> = Vec::new();
    let mut skipped = 0;
    let shape = images.shape();
    while trainer.state.step < total {
        let step = trainer.state.step;
        let epoch = step / steps_per_epoch;
        let lr = lr_at(opts.lr, epoch, opts.epochs);
        let nets: Vec<Net> = (0..opts.meta_batch).map(|_| archs.sample()).collect();
        let batch = images.next_batch(opts.batch);
        let r = trainer.step(&nets, &batch, shape, lr);
        let done = (trainer.state.step - start_step).max(1) + skipped;
        let sps = done as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        if r.skipped {
            skipped += 1;
            if skipped > 1000 && skipped > 10 * (trainer.state.step - start_step) {
                return Err(TrainError::GaveUp(skipped));
            }
        } else {
            losses.push(r.loss);
        }
        if let Some(f) = csv.as_mut() {
            writeln!(
                f,
                "{},{},{:e},{},{},{},{},{:.3}",
                step, epoch, lr, r.loss, r.acc, r.grad_norm, r.skipped as u8, sps
            )
            .map_err(log)?;
            f.flush().map_err(log)?;
        }
        bar.set_position(trainer.state.step as u64);
        bar.set_message(format!(
            "loss {:.4} acc {:.3} {:.2} steps/s skipped {}",
            r.loss, r.acc, sps, trainer.state.skipped
        ));
        if let Some(dir) = &opts.out
            && opts.checkpoint_every > 0
            && !r.skipped
            && trainer.state.step.is_multiple_of(opts.checkpoint_every)
        {
            checkpoint::save(dir, &trainer.ghn, Some(&trainer.optim), trainer.state)?;
            checkpoint::prune(dir, opts.keep_checkpoints)?;
            bar.suspend(|| after_checkpoint(trainer))
                .map_err(|source| TrainError::AfterCheckpoint {
                    step: trainer.state.step,
                    source,
                })?;
        }
    }
    bar.finish();
    if let Some(dir) = &opts.out {
        let fresh = checkpoint::latest(dir)?.is_none_or(|st| st.step != trainer.state.step);
        checkpoint::save(dir, &trainer.ghn, Some(&trainer.optim), trainer.state)?;
        checkpoint::prune(dir, opts.keep_checkpoints)?;
        if fresh {
            after_checkpoint(trainer).map_err(|source| TrainError::AfterCheckpoint {
                step: trainer.state.step,
                source,
            })?;
        }
    }
    let steps = trainer.state.step - start_step;
    let tenth = (losses.len() / 10).max(1);
    let mean = |s: &[f32]| {
        if s.is_empty() {
            f32::NAN
        } else {
            s.iter().sum::<f32>() / s.len() as f32
        }
    };
    Ok(RunSummary {
        steps,
        skipped,
        last_loss: losses.last().copied().unwrap_or(f32::NAN),
        first_loss: mean(&losses[..tenth.min(losses.len())]),
        final_loss: mean(&losses[losses.len().saturating_sub(tenth)..]),
        ms_per_step: t0.elapsed().as_secs_f64() * 1e3 / (steps + skipped).max(1) as f64,
    })
}
