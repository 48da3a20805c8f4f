//! `ghnq train`: meta-train a GHN-2 on sampled architectures (GHN_SPEC §3).
use std::path::PathBuf;

use anyhow::{Context, Result};
use ghnq_core::sources;
use ghnq_ghn::checkpoint;
use ghnq_ghn::eval;
use ghnq_ghn::model::{Ghn, GhnConfig};
use ghnq_ghn::train::{Engine, MetaTrainer, Optimizer, RunOptions, run};
use ghnq_quant::config::{Clip, Precision, QuantConfig};
use ghnq_quant::fake::Method;
use ghnq_quant::layers::LayerBits;

use super::quant_args::{ClipChoice, weight_scheme};
use super::train_trace;

/// Arguments of `ghnq train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Architecture split to sample training nets from (`train`; `tiny` = built-in small random nets).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Architectures per step (GHN-2: 8).
    #[arg(long, default_value_t = 8)]
    pub meta_batch: usize,
    /// Images per step (GHN-2: 64).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Epochs over the training images.
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// Learning rate of the optimiser (×0.1 after 2/3 and 5/6 of the epochs).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Weight decay: added to the gradient under Adam (L2; GHN-2: 1e-5), decoupled from the
    /// step under AdamW (where 1e-2 is the usual strength).
    #[arg(long, default_value_t = 1e-5)]
    pub weight_decay: f64,
    /// The GHN's optimiser: `adam` (GHN-2's) or `adamw` (decoupled weight decay). A resumed run
    /// keeps the one it started with.
    #[arg(long, default_value = "adam")]
    pub optimizer: Optimizer,
    /// Data set: fashion-mnist, cifar10 or synthetic.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Directory of the data set files (default: the loader's standard location).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// cpu (burn flex) or cuda (needs `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Checkpoint directory (train.csv, ghn.cfg, ghn-step*.bpk, optim-step*.bpk, latest).
    #[arg(long, default_value = "runs/ghn")]
    pub out: PathBuf,
    /// Resume from the newest checkpoint in `--out`.
    #[arg(long)]
    pub resume: bool,
    /// Write a checkpoint every N steps (0 = only at the end).
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: usize,
    /// Stop after N steps in total.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// GHN hidden size (GHN-2 CIFAR-10: 32 → 1,620,764 parameters).
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// Virtual-edge cut-off s_max (GHN-2: 50; 1 = none).
    #[arg(long, default_value_t = 50)]
    pub s_max: usize,
    /// Seed for architecture sampling and synthetic data.
    #[arg(long, default_value_t = 1111)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Keep only the newest N checkpoints in `--out` (0 = keep every one).
    #[arg(long, default_value_t = 0)]
    pub keep_checkpoints: usize,
    /// Validate at checkpoints (`--val-every`): mean float top-1 of the predicted parameters on
    /// `--val-nets` nets of `--val-split` (the `test` generator) drawn with `--val-seed` (never the test nets,
    /// which are seed 0), appended to `val.csv` in `--out`. 0 nets = off. Default: 20, none on
    /// the synthetic data sets (whose images are no test of a GHN).
    #[arg(long)]
    pub val_nets: Option<usize>,
    /// Validate at the checkpoints whose step is a multiple of this.
    #[arg(long, default_value_t = 500)]
    pub val_every: usize,
    /// Seed of the validation nets.
    #[arg(long, default_value_t = 7)]
    pub val_seed: u64,
    /// Split of the validation nets: `test`, or the space a specialised GHN is trained for
    /// (`bn-free` for the BN-free-specific GHN, paper §4.5), drawn with `--val-seed`.
    #[arg(long, default_value = "test")]
    pub val_split: String,
    /// Test images per validation net (the first N of the data set's test part).
    #[arg(long, default_value_t = 500)]
    pub val_images: usize,
    /// How steps run the target nets (float and GHN-QAT alike): `native` (forward and backward
    /// outside burn's autodiff, nets in parallel; several times faster; on the CPU only, a GPU
    /// run falls back to burn) or `burn` (one autodiff graph, the reference).
    #[arg(long, default_value = "native")]
    pub engine: Engine,
    /// GHN-QAT: finetune on quantized target nets at these bits (w8a8, w4a8, w4a4, w2a2, ...).
    /// NoiseQuant by default at 2 bits, SimQuant (STE) otherwise. Several, comma-separated, with
    /// --bit-conditioned.
    #[arg(long, value_delimiter = ',')]
    pub qat: Vec<Precision>,
    /// One GHN for every bit-width (beyond the paper, its own suggestion): node features carry
    /// the bit-widths, and the steps cycle through the --qat list. From a float checkpoint the
    /// bit embedding starts at zero, so training starts from that GHN's predictions.
    #[arg(long, requires = "qat")]
    pub bit_conditioned: bool,
    /// Start from this GHN checkpoint (GHN-QAT finetunes a float GHN-Q), or from a GHN-2 state
    /// dict of facebookresearch/ppuda saved as `.safetensors`.
    #[arg(long, conflicts_with = "resume")]
    pub from: Option<PathBuf>,
    /// Write every sampled net and every batch (images as trained on) to this new directory,
    /// so that another trainer can replay the run step for step (`tools/ppuda-golden/parity.py`).
    /// About 12 KiB per image at CIFAR-10 size.
    #[arg(long, conflicts_with = "resume")]
    pub trace: Option<PathBuf>,
    /// QAT weights per output channel, symmetric (TFLite) instead of per tensor, affine (paper).
    #[arg(long, requires = "qat")]
    pub per_channel: bool,
    /// QAT weight range: absolute or percentile[:p] (the paper used 1 % at W4/A4), for every
    /// bit-width or per bit-width of a bit-conditioned run, as `ghnq eval` takes it
    /// (`w4a4=percentile,w2a2=percentile`: absolute at the bit-widths not named). Default:
    /// absolute.
    #[arg(long, value_name = "CLIP|wNaM=CLIP,...", requires = "qat")]
    pub weight_clip: Option<ClipChoice>,
    /// QAT activation range: absolute or percentile[:p], per bit-width as for --weight-clip.
    #[arg(long, value_name = "CLIP|wNaM=CLIP,...", requires = "qat")]
    pub act_clip: Option<ClipChoice>,
    /// QAT simulation: simquant (STE) or noisequant (uniform noise); default by bit-width.
    #[arg(long, requires = "qat")]
    pub method: Option<String>,
    /// Mixed-precision QAT: per-layer bit-widths overriding --qat's, e.g. `first=w8a8,last=w8a8`
    /// (the stem and the classifier of every sampled net). A node name applies to the sampled
    /// nets that have it.
    #[arg(
        long,
        value_name = "LAYER=wNaM,...",
        default_value = "",
        requires = "qat"
    )]
    pub layer_bits: LayerBits,
}

impl Args {
    /// The QAT configurations the flags describe, one per `--qat` bit-width in its order (the
    /// turns of a bit-conditioned run; the first is the one validation measures); empty for
    /// float training.
    fn qat_configs(&self) -> Result<Vec<QuantConfig>> {
        anyhow::ensure!(
            self.qat.len() <= 1 || self.bit_conditioned,
            "several --qat bit-widths train one bit-conditioned GHN: add --bit-conditioned"
        );
        for (flag, choice) in [
            ("--weight-clip", &self.weight_clip),
            ("--act-clip", &self.act_clip),
        ] {
            if let Some(p) = choice
                .iter()
                .flat_map(ClipChoice::named)
                .find(|p| !self.qat.contains(p))
            {
                anyhow::bail!(
                    "{flag} names {p}, which this run does not train: --qat {}",
                    self.qat
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
        let method = match self.method.as_deref() {
            None => None,
            Some("simquant") => Some(Method::SimQuant),
            Some("noisequant") => Some(Method::NoiseQuant),
            Some(other) => anyhow::bail!("unknown --method '{other}': simquant or noisequant"),
        };
        Ok(self
            .qat
            .iter()
            .map(|&precision| {
                let paper = QuantConfig::paper(precision);
                QuantConfig {
                    scheme: weight_scheme(self.per_channel),
                    weight_clip: ClipChoice::at(&self.weight_clip, precision)
                        .unwrap_or(Clip::Absolute),
                    act_clip: ClipChoice::at(&self.act_clip, precision).unwrap_or(Clip::Absolute),
                    layers: self.layer_bits.clone(),
                    // Validation exports the nets as the finished checkpoint's are exported.
                    act_calib: ghnq_quant::config::ActCalib::Quantized,
                    method: method.unwrap_or(paper.method),
                    ..paper
                }
            })
            .collect())
    }
}

/// Whether sampling training nets from `split` at `seed` would draw the nets an evaluation
/// reports on: net `i` of a split depends only on (split, seed, i), so a specialised GHN may
/// train on an evaluation split's generator (`bn-free`) only at a seed no evaluation uses.
fn trains_on_evaluation_nets(split: &str, seed: u64, val_split: &str, val_seed: u64) -> bool {
    let canonical = |s: &str| s.parse::<ghnq_core::arch::splits::Split>().ok();
    let Some(split) = canonical(split) else {
        return false;
    };
    use ghnq_core::arch::splits::Split;
    // `predefined` ignores the seed and `train` is evaluated by no one.
    let evaluated_at_zero = !matches!(split, Split::Train | Split::Predefined);
    (evaluated_at_zero && seed == 0) || (canonical(val_split) == Some(split) && seed == val_seed)
}

pub fn run_cmd(args: Args) -> Result<()> {
    let device = super::device::device(&args.device)?.autodiff();
    let mut images = sources::image_source(&args.dataset, args.data_dir.as_deref(), args.seed)?;
    let shape = images.shape();
    let classes = 10;
    anyhow::ensure!(
        !trains_on_evaluation_nets(&args.split, args.seed, &args.val_split, args.val_seed),
        "--split {} --seed {} would train on evaluation nets (the splits test, deep, wide and \
         bn-free are evaluated at seed 0, validation uses --val-split {} at --val-seed {}): \
         choose another --seed",
        args.split,
        args.seed,
        args.val_split,
        args.val_seed
    );
    let mut archs = sources::arch_source(&args.split, shape, classes, args.seed)?;
    let qat_turns = args.qat_configs()?;
    let qat = qat_turns.first().cloned();
    let (ghn, state) = if let Some(from) = &args.from {
        let (g, st) = checkpoint::load_ghn(from, None, &device)
            .with_context(|| format!("--from {}", from.display()))?;
        eprintln!(
            "starting from {} (trained {} steps)",
            from.display(),
            st.step
        );
        let g = if args.bit_conditioned && g.bits_embed.is_none() {
            let hid = g.config.hid;
            let zero = burn::nn::EmbeddingConfig::new(18, hid)
                .with_initializer(burn::nn::Initializer::Zeros)
                .init(&device);
            Ghn {
                bits_embed: Some(zero),
                config: GhnConfig {
                    bit_conditioned: true,
                    ..g.config.clone()
                },
                ..g
            }
        } else {
            g
        };
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        ghnq_core::atomic::write(&args.out.join("ghn.cfg"), g.config.to_text().as_bytes())?;
        (g, Default::default())
    } else if args.resume && checkpoint::latest(&args.out)?.is_some() {
        let (g, st) = checkpoint::load_ghn(&args.out, None, &device)?;
        eprintln!("resuming from {} at step {}", args.out.display(), st.step);
        (g, st)
    } else {
        let cfg = GhnConfig {
            s_max: args.s_max,
            bit_conditioned: args.bit_conditioned,
            ..GhnConfig::with_hidden(args.hidden, classes)
        };
        (Ghn::new(&cfg, &device), Default::default())
    };
    eprintln!(
        "GHN: {} parameters (hid {}, max_shape {}x{}x{}x{}, s_max {}); threads {}",
        ghn.param_count(),
        ghn.config.hid,
        ghn.config.max_ch,
        ghn.config.max_ch,
        ghn.config.max_sp,
        ghn.config.max_sp,
        ghn.config.s_max,
        threads()
    );
    pin_run_setting(
        &args,
        "optimizer.txt",
        &format!("{:?} weight decay {}\n", args.optimizer, args.weight_decay),
        "--optimizer and --weight-decay",
    )?;
    let mut trainer = MetaTrainer::with_optimizer(ghn, args.optimizer, args.weight_decay, device);
    trainer.state = state;
    trainer.engine = args.engine;
    if trainer.engine == Engine::Native && !ghnq_quant::sim_native::is_cpu(&trainer.device) {
        eprintln!(
            "the native engine runs on the CPU only: the target nets run in burn on {:?}",
            trainer.device
        );
        trainer.engine = Engine::Burn;
    }
    if !qat_turns.is_empty() {
        let record: String = qat_turns.iter().map(|q| format!("{q:?}\n")).collect();
        pin_run_setting(&args, "qat.txt", &record, "--qat flags")?;
        for q in &qat_turns {
            eprintln!("GHN-QAT: {q:?}");
        }
    }
    trainer.qat = qat;
    if args.bit_conditioned {
        anyhow::ensure!(
            trainer.ghn.config.bit_conditioned,
            "--bit-conditioned: {} holds a GHN without the bit embedding; start with --from",
            args.out.display()
        );
        trainer.bit_choices = qat_turns;
    }
    if args.resume && state.step > 0 {
        trainer.optim = checkpoint::load_optim(&args.out, state.step, trainer.optim)
            .context("loading the optimiser state")?;
    }
    let opts = RunOptions {
        meta_batch: args.meta_batch,
        batch: args.batch,
        epochs: args.epochs,
        lr: args.lr,
        weight_decay: args.weight_decay,
        max_steps: args.max_steps,
        out: Some(args.out.clone()),
        checkpoint_every: args.checkpoint_every,
        progress: !args.quiet,
        keep_checkpoints: args.keep_checkpoints,
    };
    let mut validate_anyhow = validation(&args, shape, classes, trainer.qat.clone())?;
    // A GHN-QAT run starts from a float GHN: its step-0 figures are GHN-Q's, the baseline
    // the finetuning has to beat, so the curve starts there.
    if args.from.is_some() && trainer.qat.is_some() {
        validate_anyhow(&trainer).context("validating the starting GHN")?;
    }
    let mut validate = |t: &MetaTrainer| validate_anyhow(t).map_err(Into::into);
    let s = match &args.trace {
        Some(dir) => {
            let (mut a, mut i) = train_trace::create(
                dir,
                archs.as_mut(),
                images.as_mut(),
                args.meta_batch,
                args.batch,
            )?;
            let s = run(&mut trainer, &mut a, &mut i, &opts, &mut validate)?;
            a.finish()?;
            i.finish()?;
            s
        }
        None => run(
            &mut trainer,
            archs.as_mut(),
            images.as_mut(),
            &opts,
            &mut validate,
        )?,
    };
    println!(
        "trained {} steps ({} skipped for non-finite loss, {} in total); loss first 10% {:.4} -> last 10% {:.4}; {:.0} ms/step; checkpoint in {}",
        s.steps,
        s.skipped,
        trainer.state.skipped,
        s.first_loss,
        s.final_loss,
        s.ms_per_step,
        args.out.display()
    );
    Ok(())
}

/// The validation run after each checkpoint (`--val-*`): predicts every validation net's
/// parameters with the GHN as it is, measures float top-1 and appends a line to `val.csv`. A
/// GHN-QAT run also measures what it is trained for: top-1 on the integer runtime at the run's
/// bit-width and clipping (calibrated on 500 training images, like `ghnq eval`).
fn validation(
    args: &Args,
    shape: ghnq_core::arch::ImageShape,
    classes: usize,
    qat: Option<QuantConfig>,
) -> Result<impl FnMut(&MetaTrainer) -> Result<()> + use<>> {
    let out = args.out.clone();
    let path = out.join("val.csv");
    let count = args
        .val_nets
        .unwrap_or(if args.dataset.starts_with("synthetic") {
            0
        } else {
            20
        });
    let (nets, batches, calib) = if count == 0 {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        let nets = sources::eval_nets(&args.val_split, shape, classes, count, args.val_seed)?;
        let (_, batches) = sources::test_batches(
            &args.dataset,
            args.data_dir.as_deref(),
            args.val_images,
            100,
        )
        .context("validation images")?;
        let calib = match &qat {
            Some(_) => {
                sources::calibration_batches(&args.dataset, args.data_dir.as_deref(), 500, 64, 7)
                    .context("calibration images for the quantized validation")?
                    .1
            }
            None => Vec::new(),
        };
        (nets, batches, calib)
    };
    let header = val_header(qat.is_some());
    let start = if args.resume {
        checkpoint::latest(&out)?.map_or(0, |s| s.step)
    } else {
        0
    };
    if let Ok(text) = std::fs::read_to_string(&path)
        && text.lines().next().is_some_and(|h| h != header)
    {
        anyhow::bail!(
            "{} has the columns of another kind of run (float or GHN-QAT) than this one: move it \
             aside or validate into another --out",
            path.display()
        );
    }
    ghnq_ghn::train::truncate_log(&path, start + 1)?;
    let images: usize = batches.iter().map(|b| b.labels.len()).sum();
    let (val_seed, plain) = (args.val_seed, burn::tensor::Device::flex());
    let every = args.val_every.max(1);
    let dataset = args.dataset.clone();
    Ok(move |trainer: &MetaTrainer| -> Result<()> {
        if nets.is_empty() || !trainer.state.step.is_multiple_of(every) {
            return Ok(());
        }
        let t = std::time::Instant::now();
        let ghn = &trainer.ghn;
        // Predicted where the GHN lives (CPU or GPU), measured without the autodiff graph.
        let device = trainer.device.clone().without_autodiff();
        let (mut float, mut quant) = (Vec::new(), Vec::new());
        for net in &nets {
            let params = eval::predict_one(ghn, net, &trainer.device)?.without_autodiff();
            let (top1, top5) = eval::accuracy(net, &params, shape, &batches, &plain)?;
            float.push((top1, top5));
            if let Some(q) = &qat {
                let params = if ghn.config.bit_conditioned {
                    eval::predict_one_for(ghn, net, Some(q.precision), &trainer.device)?
                        .without_autodiff()
                } else {
                    params
                };
                quant.push(quantized_top1(
                    net, params, q, shape, &calib, &batches, &dataset, &device,
                )?);
            }
        }
        let top1: Vec<f64> = float.iter().map(|a| a.0).collect();
        let top5: Vec<f64> = float.iter().map(|a| a.1).collect();
        let (m1, se1, max1) = ghnq_core::train::mean_se_max(&top1);
        let (m5, se5, _) = ghnq_core::train::mean_se_max(&top5);
        let (mq, seq, maxq) = ghnq_core::train::mean_se_max(&quant);
        let mut line = format!(
            "{},{m1:.3},{se1:.3},{max1:.2},{m5:.3},{se5:.3},{},{images},{val_seed},{:.1}",
            trainer.state.step,
            nets.len(),
            t.elapsed().as_secs_f64()
        );
        let mut said = format!("top-1 {m1:.2} ± {se1:.2} % (max {max1:.1})");
        if let Some(q) = &qat {
            line += &format!(",{},{mq:.3},{seq:.3},{maxq:.2}", q.label());
            said += &format!(", {} {mq:.2} ± {seq:.2} % (max {maxq:.1})", q.label());
        }
        let fresh = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        use std::io::Write;
        if fresh {
            writeln!(f, "{header}")?;
        }
        writeln!(f, "{line}")?;
        eprintln!(
            "step {}: validation {said} on {} nets x {images} images",
            trainer.state.step,
            nets.len()
        );
        // The curve is for people; a machine without the plot font still trains.
        if let Err(e) = draw_curve(&out) {
            eprintln!("warning: no learning-curve plot: {e:#}");
        }
        Ok(())
    })
}

/// `val.csv`'s columns: a GHN-QAT run adds its bit-width and the integer runtime's top-1.
fn val_header(quantized: bool) -> String {
    let mut h = "step,top1_mean,top1_se,top1_max,top5_mean,top5_se,nets,images,val_seed,seconds"
        .to_string();
    if quantized {
        h += ",bits,qtop1_mean,qtop1_se,qtop1_max";
    }
    h
}

/// Top-1 (%) of `params` exported at `q` on `device` and run on the integer runtime, as `ghnq
/// eval` measures it (single rounding, calibration on `calib`; the same blob and the same
/// figure as `ghnq_export::export_and_compare`'s `int_top1`).
#[allow(clippy::too_many_arguments)]
fn quantized_top1(
    net: &ghnq_core::arch::Net,
    params: ghnq_core::cnn::ParamSet,
    q: &QuantConfig,
    shape: ghnq_core::arch::ImageShape,
    calib: &[ghnq_core::train::LabeledBatch],
    batches: &[ghnq_core::train::LabeledBatch],
    dataset: &str,
    device: &burn::tensor::Device,
) -> Result<f64> {
    let provenance = ghnq_export::Provenance {
        dataset: dataset.to_string(),
        arch_hash: ghnq_export::fingerprint(net.to_json().as_bytes()),
        ghn_hash: 0,
        calibration_samples: 0,
    };
    // Only the integer runtime's figure: no simulation or float reference beside it.
    let ex = ghnq_export::export_sharing(
        net,
        params,
        q,
        shared_format::Rounding::Single,
        shape,
        calib,
        &provenance,
        device,
        &mut ghnq_export::FloatReference::default(),
    )?;
    Ok(ghnq_export::compare::int_top1(
        &ex.blob,
        &ex.calibration,
        shape,
        batches,
    )?)
}

/// Records a setting of the run in `file` of its directory, for people and for `--resume`, which
/// must not change it: a resumed run whose flags say otherwise is refused, naming both. A run
/// older than the file (none written yet) takes the flags as they are.
fn pin_run_setting(args: &Args, file: &str, text: &str, flags: &str) -> Result<()> {
    let path = args.out.join(file);
    if args.resume
        && let Ok(old) = std::fs::read_to_string(&path)
        && old != text
    {
        anyhow::bail!(
            "{} was trained with {} but {flags} now say {}",
            args.out.display(),
            old.trim(),
            text.trim()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    ghnq_core::atomic::write(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `curve.png` / `curve.svg` in a run directory: validation top-1 (`val.csv`) and the
/// meta-batch training top-1 (`train.csv`, means over 100 steps) against steps.
fn draw_curve(dir: &std::path::Path) -> Result<()> {
    let column = |file: &str, name: &str| super::run_log::column(&dir.join(file), name);
    let val = column("val.csv", "top1_mean")?;
    // A finetuning validates its starting GHN before the first step has been logged.
    let logged = if dir.join("train.csv").exists() {
        column("train.csv", "acc")?
    } else {
        Vec::new()
    };
    let train: Vec<(usize, f64)> = logged
        .chunks(100)
        .map(|w| {
            let step = w[w.len() - 1].0;
            (
                step,
                100.0 * w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64,
            )
        })
        .collect();
    let nets = column("val.csv", "nets")?.last().map_or(0.0, |p| p.1);
    let mut curves = vec![
        (format!("validation, {nets:.0} unseen nets, float"), val),
        ("training meta-batches (100-step means)".into(), train),
    ];
    // A GHN-QAT run's own objective: the validation nets on the integer runtime.
    if let Ok(q) = column("val.csv", "qtop1_mean") {
        curves.insert(
            1,
            (
                format!("validation, {nets:.0} unseen nets, integer runtime"),
                q,
            ),
        );
    }
    let (title, measured_by) = if curves.len() == 3 {
        (
            "GHN-QAT finetuning: mean top-1 of the predicted parameters",
            "float, and quantized on the integer runtime",
        )
    } else {
        (
            "GHN meta-training: mean top-1 of the predicted parameters",
            "float",
        )
    };
    ghnq_study::plot::top1_vs_steps(&curves, title, measured_by, &dir.join("curve"))?;
    Ok(())
}

/// Worker threads burn's CPU backend uses (RAYON_NUM_THREADS, else all cores).
pub fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

#[cfg(test)]
mod tests {
    use super::trains_on_evaluation_nets as overlaps;

    #[test]
    fn evaluation_nets_are_refused_as_training_nets() {
        assert!(!overlaps("train", 0, "test", 7));
        assert!(!overlaps("tiny", 0, "test", 7));
        assert!(
            overlaps("bn-free", 0, "bn-free", 7),
            "bn-free is evaluated at seed 0"
        );
        assert!(overlaps("BN_free", 7, "bn-free", 7), "the validation nets");
        assert!(overlaps("test", 7, "test", 7));
        assert!(!overlaps("bn-free", 3434, "bn-free", 7));
        assert!(
            !overlaps("test", 7, "bn-free", 7),
            "validation on another split"
        );
    }
}
