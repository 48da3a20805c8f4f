//! One run of the study: initialise an architecture with an initialiser, train it as §3.1 does
//! (SGD, momentum 0.9, batch 128, lr 0.01 divided by 10 at 75/200, 120/200 and 170/200 of
//! training, augmentation), stop and record it as diverged when its loss explodes, then evaluate
//! it in float and at QUINT8 (8-bit per-tensor asymmetric weights and activations, BN folded,
//! activation ranges clipped at the 1st/99th percentile on 1,024 training images), through the
//! quantized float simulation and through the integer runtime.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Result, StudyError, ensure, io};
use burn::tensor::Device;
use shared_format::Rounding;

use super::augment::{PaperAugment, StudyImages};
use super::grid::{Pair, table_of};
use super::layerwise::{self, LayerStats};
use super::metrics::{Divergence, DivergenceRule, DivergenceWatch, percent_decrease};
use ghnq_core::arch::{ImageShape, Net, predefined};
use ghnq_core::cnn::init::{Initializer, init_params};
use ghnq_core::cnn::train::{Engine, Schedule, SgdConfig, train_on};
use ghnq_core::cnn::{BnMode, ParamSet, forward};
use ghnq_core::sources;
use ghnq_core::train::{ImageSource, LabeledBatch, to_tensors, topk_hits};
use ghnq_export::{self as export, Provenance};
use ghnq_quant::config::{BnStats, Clip, Precision, QuantConfig};
use ghnq_quant::fake::host_values;

/// Everything that decides a run's numbers (the data directory and device do not).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    /// `fashion-mnist`, `cifar10` (the paper's), or `synthetic`/`synthetic-gray` for tests.
    pub dataset: String,
    /// Training images per epoch: the first N of the training set (`None` = all).
    pub images: Option<usize>,
    /// Passes over those images (may be fractional).
    pub epochs: f64,
    /// Images per SGD step.
    pub batch: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay (the paper names none).
    pub weight_decay: f64,
    /// Fractions of training at which the learning rate is multiplied by `lr_factor`.
    pub milestones: Vec<f64>,
    /// The factor.
    pub lr_factor: f64,
    /// Training augmentation.
    pub augment: PaperAugment,
    /// When a run counts as diverged.
    pub divergence: DivergenceRule,
    /// Calibration images (training set, no augmentation).
    pub calib: usize,
    /// Calibration batch size: BN statistics and percentile ranges are averaged over batches of
    /// this size (`calib` = one batch = exact percentiles of the whole sample).
    pub calib_batch: usize,
    /// Activation clipping, % at each end.
    pub act_clip_percent: f32,
    /// Test images (the first N of the test set).
    pub test_images: usize,
    /// Seed of the initial weights, the image order, augmentation and dropout (the same for
    /// every pair, so only the architecture and the initialiser differ).
    pub seed: u64,
}

/// The paper's milestones: epochs 75, 120 and 170 of 200.
pub const PAPER_MILESTONES: [f64; 3] = [75.0 / 200.0, 120.0 / 200.0, 170.0 / 200.0];

impl Recipe {
    /// §3.1 with `epochs` epochs (the paper: 200) on `dataset`, all training images.
    pub fn paper(dataset: &str, epochs: f64) -> Recipe {
        Recipe {
            dataset: dataset.to_string(),
            images: None,
            epochs,
            batch: 128,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            milestones: PAPER_MILESTONES.to_vec(),
            lr_factor: 0.1,
            augment: PaperAugment::PAPER,
            divergence: DivergenceRule::default(),
            calib: 1024,
            calib_batch: 256,
            act_clip_percent: 1.0,
            test_images: 10_000,
            seed: 1,
        }
    }

    /// SGD steps for an epoch of `images` images.
    pub fn steps(&self, images: usize) -> usize {
        ((self.epochs * images as f64) / self.batch.max(1) as f64)
            .ceil()
            .max(1.0) as usize
    }

    /// The steps at which the learning rate drops, for a run of `steps` steps.
    pub fn milestone_steps(&self, steps: usize) -> Vec<usize> {
        self.milestones
            .iter()
            .map(|f| (f * steps as f64).ceil() as usize)
            .collect()
    }

    /// QUINT8 as the paper measures it: 8-bit per-tensor affine weights (absolute range, BN
    /// folded with the float net's statistics, as post-training quantization does) and
    /// activations (clipped at `act_clip_percent`).
    pub fn quant_config(&self) -> QuantConfig {
        QuantConfig {
            bn_stats: BnStats::Float,
            act_clip: if self.act_clip_percent > 0.0 {
                Clip::Percentile(self.act_clip_percent)
            } else {
                Clip::Absolute
            },
            ..QuantConfig::paper(Precision::new(8, 8))
        }
    }

    /// Check the values make sense before hours of training.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.epochs > 0.0 && self.epochs.is_finite(),
            "epochs must be > 0"
        );
        ensure!(self.batch > 0, "batch must be > 0");
        ensure!(self.lr > 0.0 && self.lr.is_finite(), "lr must be > 0");
        ensure!(self.calib > 0 && self.calib_batch > 0, "calib must be > 0");
        ensure!(self.test_images > 0, "test images must be > 0");
        ensure!(
            self.milestones.iter().all(|m| (0.0..=1.0).contains(m)),
            "milestones are fractions of training in [0, 1]"
        );
        ensure!(
            (0.0..50.0).contains(&self.act_clip_percent),
            "activation clipping must be in [0, 50) %"
        );
        ensure!(self.images != Some(0), "--images must be > 0");
        Ok(())
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained and evaluated.
    Finished,
    /// The loss exploded (or the trained float net's outputs are not finite): left out of
    /// the tables.
    Diverged,
    /// Trained, but the net could not be exported (e.g. an accumulator bound): the error says
    /// why.
    Failed,
}

/// The numbers of Tables 1 and 2, and more.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Test images.
    pub test_images: usize,
    /// FP32 top-1 (%): the float net with BN statistics calibrated on the calibration images.
    pub fp32_top1: f64,
    /// FP32 top-5.
    pub fp32_top5: f64,
    /// QUINT8 top-1 of the quantized float simulation (fake quantization).
    pub quint8_sim_top1: f64,
    /// Its top-5.
    pub quint8_sim_top5: f64,
    /// QUINT8 top-1 of the integer runtime (the exported blob).
    pub quint8_int_top1: f64,
    /// Its top-5.
    pub quint8_int_top5: f64,
    /// Images on which simulation and runtime agree on the top-1 class (%).
    pub sim_int_agreement: f64,
    /// QMSE (§3.1) of the integer runtime's outputs against the float net's.
    pub qmse: f64,
    /// QCE (§3.1).
    pub qce: f64,
    /// Percent accuracy decrease, FP32 → QUINT8 (integer runtime).
    pub percent_decrease: Option<f64>,
    /// Percent accuracy decrease, FP32 → QUINT8 (simulation).
    pub percent_decrease_sim: Option<f64>,
    /// Wall-clock seconds of each phase: export (calibration and blob), float evaluation,
    /// simulation + integer runtime, layerwise ranges.
    pub seconds: Vec<(String, f64)>,
}

/// One pair's record, written to `runs/<Arch>__<Init>.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunResult {
    /// Architecture.
    pub arch: String,
    /// Initialiser name.
    pub init: String,
    /// Table 1 or 2.
    pub table: Option<u8>,
    /// The recipe it ran with.
    pub recipe: Recipe,
    /// How it ended.
    pub status: Status,
    /// Training images per epoch.
    pub train_images: usize,
    /// Planned SGD steps.
    pub steps: usize,
    /// Steps taken (fewer when it diverged).
    pub steps_done: usize,
    /// Mean training loss of the last tenth of the steps taken (finite steps only).
    pub final_loss: Option<f64>,
    /// Mean training-batch accuracy (%) over the same steps.
    pub final_train_acc: Option<f64>,
    /// (step, mean loss) over up to 100 equal chunks of the steps taken.
    pub loss_curve: Vec<(usize, f64)>,
    /// Where and why it diverged.
    pub divergence: Option<Divergence>,
    /// Why it failed.
    pub error: Option<String>,
    /// Float and QUINT8 results (finished runs).
    pub eval: Option<Evaluation>,
    /// Layerwise ranges and precision (finished runs).
    pub layers: Vec<LayerStats>,
    /// Trainable parameters.
    pub params: usize,
    /// Wall-clock seconds of training.
    pub train_seconds: f64,
    /// The engine that trained it: `native` or `burn` (records written before the native
    /// engine trained the study, i.e. the whole Fig. 1 grid, say `burn`).
    #[serde(default = "burn_engine")]
    pub train_engine: String,
    /// Wall-clock seconds of export and evaluation.
    pub eval_seconds: f64,
}

impl RunResult {
    /// The pair it belongs to.
    pub fn pair(&self) -> Option<Pair> {
        Some(Pair {
            arch: self.arch.clone(),
            init: self.init.parse().ok()?,
        })
    }
}

/// What a run reports while it goes.
pub trait RunProgress {
    /// Training starts: `steps` steps.
    fn start(&mut self, pair: &Pair, steps: usize);
    /// Step `t` (0-based) is done.
    fn step(&mut self, t: usize, loss: f64, lr: f64);
    /// Training is over; export and evaluation start.
    fn evaluating(&mut self);
}

/// Reports nothing.
pub struct Quiet;

impl RunProgress for Quiet {
    fn start(&mut self, _: &Pair, _: usize) {}
    fn step(&mut self, _: usize, _: f64, _: f64) {}
    fn evaluating(&mut self) {}
}

/// Test and calibration images, loaded once per invocation.
pub struct StudyData {
    /// Image shape.
    pub shape: ImageShape,
    /// Test batches.
    pub test: Vec<LabeledBatch>,
    /// Calibration batches.
    pub calib: Vec<LabeledBatch>,
    /// Data-set directory override.
    pub dir: Option<PathBuf>,
}

impl StudyData {
    /// Load the recipe's test and calibration images.
    pub fn load(recipe: &Recipe, dir: Option<&Path>) -> Result<StudyData> {
        let images = |what| {
            move |source| StudyError::Images {
                dataset: recipe.dataset.clone(),
                what,
                source: Box::new(source),
            }
        };
        let (shape, test) = sources::test_batches(&recipe.dataset, dir, recipe.test_images, 100)
            .map_err(images("test"))?;
        let (_, calib) = sources::calibration_batches(
            &recipe.dataset,
            dir,
            recipe.calib,
            recipe.calib_batch,
            recipe.seed ^ 0xca1b,
        )
        .map_err(images("calibration"))?;
        Ok(StudyData {
            shape,
            test,
            calib,
            dir: dir.map(Path::to_path_buf),
        })
    }
}

/// The study's net called `arch` for `shape` images and 10 classes.
pub fn build_net(arch: &str, shape: ImageShape) -> Result<Net> {
    predefined::by_name(arch, shape, 10)
        .ok_or_else(|| StudyError::UnknownArch(arch.to_string()))?
        .map_err(|e| StudyError::Arch {
            arch: arch.to_string(),
            detail: e.to_string(),
        })
}

/// What training produced.
pub struct Trained {
    /// The parameters (on the training device).
    pub params: ParamSet,
    /// Planned steps.
    pub steps: usize,
    /// Losses of the steps taken.
    pub losses: Vec<f64>,
    /// Training-batch accuracies (%) of the steps taken.
    pub accs: Vec<f64>,
    /// Set when the run diverged.
    pub divergence: Option<Divergence>,
    /// Which engine took the steps: `native` or `burn`.
    pub engine: &'static str,
}

/// Train `net` from `init` on `images` per `recipe`, on an autodiff `device`, stopping when the
/// loss diverges: `ghnq_core`'s [`train_on`], so on the CPU with the native engine unless
/// `native_allowed` is false (burn's autodiff, the same steps within float rounding).
#[allow(clippy::too_many_arguments)]
pub fn train(
    net: &Net,
    init: Initializer,
    recipe: &Recipe,
    images: &mut dyn ImageSource,
    device: &Device,
    pair: &Pair,
    progress: &mut dyn RunProgress,
    native_allowed: bool,
) -> Trained {
    let steps = recipe.steps(images.len());
    let config = SgdConfig {
        lr: recipe.lr,
        momentum: recipe.momentum,
        weight_decay: recipe.weight_decay,
        batch: recipe.batch,
        steps,
    };
    let schedule = Schedule::Step {
        milestones: recipe.milestone_steps(steps),
        factor: recipe.lr_factor,
    };
    device.seed(recipe.seed);
    let mut params = init_params(net, init, recipe.seed, device);
    let mut watch = DivergenceWatch::new(recipe.divergence);
    let (mut losses, mut accs) = (Vec::new(), Vec::new());
    let mut divergence = None;
    progress.start(pair, steps);
    let run = train_on(
        net,
        params.clone(),
        images,
        config,
        schedule.clone(),
        device,
        native_allowed,
        |t, r| {
            losses.push(r.loss);
            accs.push(r.acc);
            progress.step(t, r.loss, schedule.lr_at(&config, t));
            match watch.check(t, r.loss) {
                Some(d) => {
                    divergence = Some(d);
                    ControlFlow::Break(())
                }
                None => ControlFlow::Continue(()),
            }
        },
    );
    let engine = match run {
        Ok((trained, engine)) => {
            params = trained;
            engine
        }
        // Cannot happen once the native engine ran the net (it checks first, and the shapes
        // are fixed): recorded as the end of the run rather than a panic.
        Err(e) => {
            divergence = Some(Divergence {
                step: losses.len(),
                loss: None,
                reason: format!("native engine: {e}"),
            });
            Engine::Native
        }
    };
    if divergence.is_none()
        && let Some(&last) = losses.last()
    {
        divergence = watch.finish(losses.len() - 1, last);
    }
    Trained {
        params,
        steps,
        losses,
        accs,
        divergence,
        engine: engine.name(),
    }
}

/// What [`evaluate`] found.
#[allow(clippy::large_enum_variant)]
pub enum Evaluated {
    /// The numbers and the layerwise ranges.
    Done(Evaluation, Vec<LayerStats>),
    /// The trained float net's outputs (or QMSE/QCE) are not finite: it exploded.
    NonFinite(String),
}

/// Float and QUINT8 evaluation of trained (non-autodiff) `params`, and the layerwise ranges.
pub fn evaluate(
    net: &Net,
    params: ParamSet,
    recipe: &Recipe,
    data: &StudyData,
    device: &Device,
) -> Result<Evaluated> {
    let config = recipe.quant_config();
    let provenance = Provenance {
        dataset: recipe.dataset.clone(),
        arch_hash: export::fingerprint(net.to_json().as_bytes()),
        ghn_hash: 0,
        calibration_samples: 0,
    };
    let mut seconds = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |what: &str| {
        seconds.push((what.to_string(), clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    let ex = export::export(
        net,
        params,
        &config,
        Rounding::Single,
        data.shape,
        &data.calib,
        &provenance,
        device,
    )?;
    lap("export");
    let (mut t1, mut t5, mut n) = (0usize, 0usize, 0usize);
    for b in &data.test {
        let (x, _) = to_tensors(b, data.shape, device);
        let logits = forward(net, &ex.calibration.float_params, x, BnMode::Running, false);
        if host_values(&logits).iter().any(|v| !v.is_finite()) {
            return Ok(Evaluated::NonFinite(
                "non-finite float outputs after training".into(),
            ));
        }
        let (a, b5) = topk_hits(&logits, &b.labels);
        t1 += a;
        t5 += b5;
        n += b.labels.len();
    }
    let pct = |k: usize| 100.0 * k as f64 / n.max(1) as f64;
    let (fp32_top1, fp32_top5) = (pct(t1), pct(t5));
    lap("fp32");
    let c = export::compare(
        net,
        &ex.lowered,
        &ex.calibration,
        &config,
        &ex.blob,
        data.shape,
        &data.test,
        device,
        0,
        &mut export::FloatReference::default(),
    )?;
    lap("quint8");
    if !(c.qmse.is_finite() && c.qce.is_finite()) {
        return Ok(Evaluated::NonFinite(format!(
            "non-finite QMSE/QCE ({}, {})",
            c.qmse, c.qce
        )));
    }
    let layers = layerwise::layer_stats(
        net,
        &ex.lowered,
        &ex.calibration,
        &config,
        data.shape,
        &data.calib,
        device,
    )?;
    lap("layerwise");
    Ok(Evaluated::Done(
        Evaluation {
            test_images: n,
            fp32_top1,
            fp32_top5,
            quint8_sim_top1: c.sim_top1,
            quint8_sim_top5: c.sim_top5,
            quint8_int_top1: c.int_top1,
            quint8_int_top5: c.int_top5,
            sim_int_agreement: c.top1_agreement,
            qmse: c.qmse,
            qce: c.qce,
            percent_decrease: percent_decrease(fp32_top1, c.int_top1),
            percent_decrease_sim: percent_decrease(fp32_top1, c.sim_top1),
            seconds,
        },
        layers,
    ))
}

/// Mean of up to 100 equal chunks of the finite losses, labelled with each chunk's last step.
fn curve(losses: &[f64]) -> Vec<(usize, f64)> {
    let chunk = losses.len().div_ceil(100).max(1);
    losses
        .chunks(chunk)
        .enumerate()
        .filter_map(|(k, c)| {
            let f: Vec<f64> = c.iter().copied().filter(|x| x.is_finite()).collect();
            (!f.is_empty()).then(|| {
                (
                    k * chunk + c.len() - 1,
                    f.iter().sum::<f64>() / f.len() as f64,
                )
            })
        })
        .collect()
}

/// Mean of the finite values among the last tenth (at least one) of `v`.
fn tail_mean(v: &[f64]) -> Option<f64> {
    let k = (v.len() / 10).max(1).min(v.len());
    let f: Vec<f64> = v[v.len() - k..]
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    (!f.is_empty()).then(|| f.iter().sum::<f64>() / f.len() as f64)
}

/// Train and evaluate one pair. `device` is a non-autodiff device; training runs on its
/// autodiff version.
pub fn run_pair(
    pair: &Pair,
    recipe: &Recipe,
    data: &StudyData,
    device: &Device,
    progress: &mut dyn RunProgress,
) -> Result<RunResult> {
    let net = build_net(&pair.arch, data.shape)?;
    let mut images = StudyImages::new(
        &recipe.dataset,
        data.dir.as_deref(),
        recipe.images,
        recipe.seed,
        recipe.augment,
    )?;
    ensure!(
        images.shape() == data.shape,
        "training images are {} but test images {}",
        images.shape(),
        data.shape
    );
    let t0 = Instant::now();
    let trained = train(
        &net,
        pair.init,
        recipe,
        &mut images,
        &device.clone().autodiff(),
        pair,
        progress,
        true,
    );
    let train_seconds = t0.elapsed().as_secs_f64();
    let mut result = RunResult {
        arch: pair.arch.clone(),
        init: pair.init.to_string(),
        table: table_of(&pair.arch),
        recipe: recipe.clone(),
        status: Status::Diverged,
        train_images: images.len(),
        steps: trained.steps,
        steps_done: trained.losses.len(),
        final_loss: tail_mean(&trained.losses),
        final_train_acc: tail_mean(&trained.accs),
        loss_curve: curve(&trained.losses),
        divergence: trained.divergence.clone(),
        error: None,
        eval: None,
        layers: Vec::new(),
        params: net.param_count(),
        train_seconds,
        train_engine: trained.engine.to_string(),
        eval_seconds: 0.0,
    };
    if trained.divergence.is_some() {
        return Ok(result);
    }
    progress.evaluating();
    let t1 = Instant::now();
    match evaluate(
        &net,
        trained.params.without_autodiff(),
        recipe,
        data,
        device,
    ) {
        Ok(Evaluated::Done(eval, layers)) => {
            result.status = Status::Finished;
            result.eval = Some(eval);
            result.layers = layers;
        }
        Ok(Evaluated::NonFinite(reason)) => {
            result.divergence = Some(Divergence {
                step: result.steps_done.saturating_sub(1),
                loss: result.final_loss,
                reason,
            });
        }
        Err(e) => {
            result.status = Status::Failed;
            result.error = Some(format!("{e:#}"));
        }
    }
    result.eval_seconds = t1.elapsed().as_secs_f64();
    Ok(result)
}

/// [`RunResult::train_engine`] of a record without one.
fn burn_engine() -> String {
    "burn".to_string()
}

/// `<out>/runs/<Arch>__<Init>.json`.
pub fn result_path(out: &Path, pair: &Pair) -> PathBuf {
    out.join("runs").join(format!("{}.json", pair.id()))
}

/// `<out>/layerwise/<Arch>__<Init>.csv`.
pub fn layerwise_path(out: &Path, pair: &Pair) -> PathBuf {
    out.join("layerwise").join(format!("{}.csv", pair.id()))
}

/// The finished record of `pair` in `out`, if there is one. A record made with another recipe
/// is an error: one output directory holds one study.
pub fn finished(out: &Path, pair: &Pair, recipe: &Recipe) -> Result<Option<RunResult>> {
    let path = result_path(out, pair);
    if !path.exists() {
        return Ok(None);
    }
    let r = read_result(&path)?;
    ensure!(
        r.recipe == *recipe,
        "{} was made with another recipe ({}); use another --out, or the same options",
        path.display(),
        serde_json::to_string(&r.recipe).unwrap_or_default()
    );
    Ok(Some(r))
}

/// Read one record.
pub fn read_result(path: &Path) -> Result<RunResult> {
    let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
    serde_json::from_str(&text).map_err(|source| StudyError::Json {
        path: path.to_path_buf(),
        hint: " (not a study record of this version: delete it to rerun the pair)",
        source,
    })
}

/// Write a record (and its layerwise CSV) atomically.
pub fn save(out: &Path, result: &RunResult) -> Result<()> {
    let pair = result
        .pair()
        .ok_or_else(|| StudyError::UnknownInit(result.init.clone()))?;
    let path = result_path(out, &pair);
    std::fs::create_dir_all(path.parent().expect("runs/"))
        .map_err(io("creating", &out.join("runs")))?;
    if !result.layers.is_empty() {
        let lw = layerwise_path(out, &pair);
        let dir = lw.parent().expect("layerwise/");
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        ghnq_core::atomic::write(&lw, layerwise::csv(&result.layers).as_bytes())
            .map_err(io("writing", &lw))?;
    }
    let json = serde_json::to_string_pretty(result)?;
    // JSON has no NaN (serde writes null): a record that would not read back is a bug here,
    // not a file to leave for the next invocation to trip over.
    serde_json::from_str::<RunResult>(&json).map_err(|source| StudyError::Unreadable {
        id: pair.id(),
        source,
    })?;
    ghnq_core::atomic::write(&path, json.as_bytes()).map_err(io("writing", &path))
}

/// Every record in `out/runs`, sorted by file name.
pub fn load_results(out: &Path) -> Result<Vec<RunResult>> {
    let dir = out.join("runs");
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io("reading", &dir)(e)),
    };
    paths.sort();
    paths.iter().map(|p| read_result(p)).collect()
}

/// `<out>/recipe.json`: written by the first invocation that gets as far as running (see
/// [`write_recipe`]), checked by every later one: one output directory holds one study.
pub fn check_recipe(out: &Path, recipe: &Recipe) -> Result<()> {
    let path = out.join("recipe.json");
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
    let old: Recipe = serde_json::from_str(&text).map_err(|source| StudyError::Json {
        path: path.clone(),
        hint: "",
        source,
    })?;
    ensure!(
        old == *recipe,
        "{} holds a study with another recipe:\n  there: {}\n  now:   {}\nuse another --out, or the same options",
        out.display(),
        serde_json::to_string(&old)?,
        serde_json::to_string(recipe)?
    );
    Ok(())
}

/// Write `<out>/recipe.json` unless it is there.
pub fn write_recipe(out: &Path, recipe: &Recipe) -> Result<()> {
    let path = out.join("recipe.json");
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    ghnq_core::atomic::write(&path, serde_json::to_string_pretty(recipe)?.as_bytes())
        .map_err(io("writing", &path))
}
