//! `ghnq finetune`: quantization-aware training of one net itself, starting from the GHN's
//! prediction and from random initialisation, with the integer runtime's accuracy every few
//! steps — how many training steps the GHN saves a user (the paper's future work).
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ghnq_core::arch::Net;
use ghnq_core::cnn::native::NetValues;
use ghnq_core::cnn::train::{HostSgd, Sgd, SgdConfig, params_from_host};
use ghnq_core::cnn::{BnMode, ParamSet};
use ghnq_core::sources;
use ghnq_export::{self as export, DeployGap, Provenance};
use ghnq_ghn::train::Engine;
use ghnq_ghn::{checkpoint, eval};
use ghnq_quant::config::Precision;
use ghnq_quant::lower::Lowered;
use ghnq_quant::qat_native::{self, QatOptions};
use ghnq_quant::sim::{self, Acts, SimOptions};
use ghnq_study::plot;

use super::steps_saved;

/// Arguments of `ghnq finetune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The architecture (JSON).
    #[arg(long, required_unless_present = "report")]
    pub arch: Option<PathBuf>,
    /// Print the steps saved of a finished run from its `--csv` file instead of training.
    #[arg(long, value_name = "CSV", conflicts_with = "arch")]
    pub report: Option<PathBuf>,
    /// GHN checkpoint: adds the run that starts from its prediction (without it, only random).
    #[arg(long)]
    pub ghn: Option<PathBuf>,
    /// Bits of the QAT and of the exported blob.
    #[arg(long, default_value = "w4a4")]
    pub bits: Precision,
    /// Training steps.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Evaluate (export + integer runtime) every N steps, and at step 0.
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    /// Initial SGD learning rate (cosine to 0; momentum 0.9, weight decay 3e-4).
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// How the training steps run: `native` (the quantized simulation's forward and backward
    /// outside burn's autodiff, `ghnq_quant::qat_native`, parameters on the host; on the CPU
    /// only, a GPU run falls back to burn) or `burn` (autodiff through `sim::forward`, the
    /// reference). Both take the same SGD steps on the same batches.
    #[arg(long, default_value = "native")]
    pub engine: Engine,
    /// Images per training step.
    #[arg(long, default_value_t = 64)]
    pub sgd_batch: usize,
    /// Training images for calibration at each evaluation.
    #[arg(long, default_value_t = 256)]
    pub calib: usize,
    /// Test images per evaluation.
    #[arg(long, default_value_t = 1000)]
    pub images: usize,
    /// Quantization and rounding.
    #[command(flatten)]
    pub quant: super::quant_args::QuantArgs,
    /// Test images and the device.
    #[command(flatten)]
    pub test: super::test_data::TestData,
    /// Also write the curves as CSV (atomically).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also plot the curves: writes STEM.png and STEM.svg.
    #[arg(long, value_name = "STEM")]
    pub plot: Option<PathBuf>,
    /// Seed of random initialisation and image order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also simulate each checkpoint with each test batch's own BN statistics and activation
    /// ranges (as QAT trains), with either swapped for the calibrated one, and with both (as
    /// deployed): which of the two a falling device accuracy comes from. Four more passes over
    /// the test images per checkpoint.
    #[arg(long)]
    pub deploy_gap: bool,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(csv) = &args.report {
        let (ghn, random, last) = steps_saved::read_csv(csv)?;
        print!("{}", steps_saved::summary(&ghn, &random, &[0, 100], last));
        return Ok(());
    }
    let arch = args.arch.as_deref().context("--arch is required")?;
    let device = super::device::device(&args.test.device)?;
    let train_device = device.clone().autodiff();
    let text =
        std::fs::read_to_string(arch).with_context(|| format!("reading {}", arch.display()))?;
    let net = Net::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", arch.display()))?;
    let lowered = Lowered::new(&net)?;
    let engine = if args.engine == Engine::Native && !ghnq_quant::sim_native::is_cpu(&device) {
        eprintln!(
            "the native engine runs on the CPU only: finetuning in burn on {:?}",
            device
        );
        Engine::Burn
    } else {
        args.engine
    };
    let config = args.quant.config_for_ghn(args.bits, args.ghn.as_deref());
    let data_dir = args.test.data_dir.as_deref();
    let (shape, test) =
        sources::test_batches(&args.test.dataset, data_dir, args.images, args.test.batch)?;
    anyhow::ensure!(
        net.input == shape,
        "net {} takes {} images but the data set has {}",
        net.name,
        net.input,
        shape
    );
    let (_, calib) = sources::calibration_batches(&args.test.dataset, data_dir, args.calib, 64, 7)?;
    let mut starts: Vec<(&str, ParamSet)> = Vec::new();
    if let Some(path) = &args.ghn {
        let (ghn, _) = checkpoint::load_ghn(path, None, &device)?;
        starts.push((
            "ghn",
            eval::predict_one_for(&ghn, &net, Some(args.bits), &device)?,
        ));
    }
    device.seed(args.seed);
    starts.push(("random", ParamSet::init_random(&net, &device)));

    // Integer-runtime top-1 of `params` (exported at `config`), and where it went if asked.
    let evaluate = |params: ParamSet| -> Result<(f64, Option<DeployGap>)> {
        let (ex, c) = export::export_and_compare(
            &net,
            params,
            &config,
            args.quant.rounding(),
            shape,
            &calib,
            &test,
            &Provenance::default(),
            &device,
            0,
            &mut export::FloatReference::default(),
        )?;
        let gap = args
            .deploy_gap
            .then(|| {
                export::deploy_gap(
                    &net,
                    &ex.lowered,
                    &ex.calibration,
                    &config,
                    shape,
                    &test,
                    &device,
                )
            })
            .transpose()
            .context("the deploy-gap simulations")?;
        Ok((c.int_top1, gap))
    };
    let checkpoints: Vec<usize> = (0..=args.steps)
        .filter(|s| *s % args.eval_every.max(1) == 0 || *s == args.steps)
        .collect();
    // Per start: the top-1 at each checkpoint and the mean training loss of the steps before it
    // (whether a falling accuracy is a diverging run or a train/deploy mismatch).
    let mut curves: Vec<(String, Vec<f64>)> = Vec::new();
    let mut losses: Vec<Vec<Option<f64>>> = Vec::new();
    let mut gaps: Vec<Vec<DeployGap>> = Vec::new();
    // Per start: the time in training steps (evaluations excluded).
    let mut train_times: Vec<Duration> = Vec::new();
    for (name, params) in starts {
        let mut images = sources::image_source(&args.test.dataset, data_dir, args.seed)?;
        let sgd_config = SgdConfig {
            lr: args.lr,
            batch: args.sgd_batch,
            steps: args.steps,
            ..SgdConfig::epochs(1.0, 1, args.sgd_batch)
        };
        let mut state = match engine {
            Engine::Burn => Trainee::Burn(Sgd::new(sgd_config), params.into_trainable()),
            Engine::Native => Trainee::Native(
                HostSgd::new(sgd_config),
                NetValues::from_params(&params),
                params,
            ),
        };
        let mut train_time = Duration::ZERO;
        let bar = indicatif::ProgressBar::new(args.steps as u64);
        let mut curve = Vec::new();
        let mut loss_curve = Vec::new();
        let mut gap_curve = Vec::new();
        let mut interval: Vec<f64> = Vec::new();
        for step in 0..=args.steps {
            if checkpoints.contains(&step) {
                let (acc, gap) = bar.suspend(|| evaluate(state.params()))?;
                gap_curve.extend(gap);
                bar.set_message(format!(
                    "{name}: {} top-1 {acc:.2} % at step {step}",
                    args.bits
                ));
                curve.push(acc);
                let finite: Vec<f64> = interval.drain(..).filter(|l| l.is_finite()).collect();
                loss_curve.push(
                    (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64),
                );
            }
            if step == args.steps {
                break;
            }
            // NoiseQuant draws afresh each step.
            let noise_seed = step as u64;
            let t = Instant::now();
            // Each engine's step takes its parameters by value (burn updates tensors it holds
            // the only handle to in place).
            let (next, loss) = match state {
                Trainee::Burn(mut sgd, params) => {
                    let opts = SimOptions {
                        quant: Some(&config),
                        acts: Acts::Batch,
                        bn: BnMode::Batch,
                        training: true,
                        noise_seed,
                    };
                    let (p, report) =
                        sgd.step_with(params, images.as_mut(), &train_device, |p, x| {
                            sim::forward(&net, &lowered, p, x, opts, None)
                        });
                    (Trainee::Burn(sgd, p), report.loss)
                }
                Trainee::Native(mut sgd, mut values, start) => {
                    let opts = QatOptions {
                        config: &config,
                        noise_seed,
                        grad_scale: 1.0,
                    };
                    let report = sgd
                        .step_with(&mut values, images.as_mut(), |p, x, labels| {
                            qat_native::loss_and_grads(&net, &lowered, p, x, labels, opts)
                        })
                        .with_context(|| format!("{name}: native QAT step {step}"))?;
                    (Trainee::Native(sgd, values, start), report.loss)
                }
            };
            state = next;
            train_time += t.elapsed();
            interval.push(loss);
            bar.inc(1);
        }
        bar.finish_and_clear();
        curves.push((name.to_string(), curve));
        losses.push(loss_curve);
        gaps.push(gap_curve);
        train_times.push(train_time);
    }
    let loss_text = |l: Option<f64>| l.map_or("-".to_string(), |l| format!("{l:.3}"));

    let mut table = format!("{:>6}", "step");
    for (name, _) in &curves {
        let _ = write!(table, "  {:>14}", format!("{name} {}", args.bits));
        let _ = write!(table, "  {:>10}", "train loss");
    }
    table.push('\n');
    let mut csv = String::from("step");
    for ((name, _), g) in curves.iter().zip(&gaps) {
        let _ = write!(csv, ",{name}_top1,{name}_train_loss");
        if !g.is_empty() {
            for column in DeployGap::NAMES {
                let _ = write!(csv, ",{name}_sim_{column}");
            }
        }
    }
    csv.push('\n');
    for (k, step) in checkpoints.iter().enumerate() {
        let _ = write!(table, "{step:>6}");
        let _ = write!(csv, "{step}");
        for (((_, c), l), g) in curves.iter().zip(&losses).zip(&gaps) {
            let _ = write!(table, "  {:>13.2}%  {:>10}", c[k], loss_text(l[k]));
            let _ = write!(csv, ",{:.4},{}", c[k], loss_text(l[k]));
            if let Some(g) = g.get(k) {
                for v in g.values() {
                    let _ = write!(csv, ",{v:.4}");
                }
            }
        }
        table.push('\n');
        csv.push('\n');
    }
    println!(
        "{}: QAT at {} (lr {} cosine, batch {}), integer-runtime top-1 on {} test images; \
         train loss: mean over the steps since the previous row",
        net.name, args.bits, args.lr, args.sgd_batch, args.images
    );
    print!("{table}");
    for ((name, _), t) in curves.iter().zip(&train_times) {
        let secs = t.as_secs_f64();
        println!(
            "{name}: training ({} engine) {secs:.2} s for {} steps, {:.3} s/step (evaluations \
             excluded)",
            match engine {
                Engine::Native => "native",
                Engine::Burn => "burn",
            },
            args.steps,
            secs / args.steps.max(1) as f64
        );
    }
    if let [(_, ghn), (_, random)] = curves.as_slice() {
        let points = |c: &[f64]| -> Vec<(usize, f64)> {
            checkpoints.iter().copied().zip(c.iter().copied()).collect()
        };
        print!(
            "{}",
            steps_saved::summary(&points(ghn), &points(random), &[0, 100], args.steps)
        );
    }
    if args.deploy_gap {
        print!(
            "{}",
            deploy_gap_table(&checkpoints, &curves, &gaps, args.images)
        );
    }
    if let Some(path) = &args.csv {
        ghnq_core::atomic::write(path, csv.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(stem) = &args.plot {
        let lines: Vec<plot::Curve> = curves
            .iter()
            .map(|(name, c)| {
                let label = match name.as_str() {
                    "ghn" => "from the GHN's prediction".to_string(),
                    other => format!("from {other} initialisation"),
                };
                (
                    label,
                    checkpoints.iter().copied().zip(c.iter().copied()).collect(),
                )
            })
            .collect();
        let title = format!("{}: {} QAT of the net itself", net.name, args.bits);
        let [png, svg] = plot::top1_vs_steps(&lines, &title, "integer runtime", stem)?;
        println!("plot: {} and {}", png.display(), svg.display());
        if args.deploy_gap {
            let mut lines: Vec<plot::Curve> = Vec::new();
            for ((name, _), g) in curves.iter().zip(&gaps) {
                for (j, label) in GAP_LABELS.iter().enumerate() {
                    let points = checkpoints
                        .iter()
                        .zip(g)
                        .map(|(&s, g)| (s, g.values()[j]))
                        .collect();
                    lines.push((format!("{name}: {label}"), points));
                }
            }
            let mut gap_stem = stem.as_os_str().to_owned();
            gap_stem.push("-deploy-gap");
            let title = format!(
                "{}: {} simulation, batch vs calibrated statistics",
                net.name, args.bits
            );
            let [png, svg] = plot::top1_vs_steps(
                &lines,
                &title,
                "quantized simulation",
                std::path::Path::new(&gap_stem),
            )?;
            println!("plot: {} and {}", png.display(), svg.display());
        }
    }
    Ok(())
}

/// One start's parameters as its engine trains them.
enum Trainee {
    /// Trainable leaves on the autodiff device, and burn's SGD.
    Burn(Sgd, ParamSet),
    /// Host buffers, the host SGD, and the start (for its shapes, device and running statistics).
    Native(HostSgd, NetValues, ParamSet),
}

impl Trainee {
    /// The current parameters off the autodiff graph, to evaluate.
    fn params(&self) -> ParamSet {
        match self {
            Trainee::Burn(_, p) => p.clone().without_autodiff(),
            Trainee::Native(_, values, start) => params_from_host(start, values),
        }
    }
}

/// Readable names of [`DeployGap::NAMES`]: which BN statistics and activation ranges.
const GAP_LABELS: [&str; 4] = [
    "batch BN, batch ranges (as trained)",
    "calibrated BN, batch ranges",
    "batch BN, calibrated ranges",
    "calibrated BN and ranges (deployed)",
];

/// The `--deploy-gap` table: per start and checkpoint, the simulation's top-1 under each pairing.
fn deploy_gap_table(
    checkpoints: &[usize],
    curves: &[(String, Vec<f64>)],
    gaps: &[Vec<DeployGap>],
    images: usize,
) -> String {
    let mut out = format!(
        "\nquantized simulation, top-1 % on {images} test images; BN statistics / activation \
         ranges from each test batch (\"batch\", as QAT trains) or from calibration:\n"
    );
    let heads = ["batch/batch", "calib BN", "calib ranges", "deployed"];
    let _ = write!(out, "{:>6}", "step");
    for (name, _) in curves {
        for h in heads {
            let _ = write!(out, "  {:>18}", format!("{name} {h}"));
        }
    }
    out.push('\n');
    for (k, step) in checkpoints.iter().enumerate() {
        let _ = write!(out, "{step:>6}");
        for g in gaps {
            for v in g[k].values() {
                let _ = write!(out, "  {v:>17.2}%");
            }
        }
        out.push('\n');
    }
    out
}
