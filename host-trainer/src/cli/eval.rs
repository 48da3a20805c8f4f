//! `ghnq eval`: accuracy over an architecture split (mean ± s.e., max) of GHN-predicted
//! parameters, or of the two baselines GHN-2's tables compare against, measured the same way.
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use host_trainer::cnn::ParamSet;
use host_trainer::cnn::train::{self as sgd, SgdConfig};
use host_trainer::ghn::{checkpoint, eval, sources};

/// Where each net's parameters come from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Predicted by the GHN in one forward pass (needs `--ghn`).
    Ghn,
    /// PyTorch's default random initialisation (the "about 10 %" baseline).
    Random,
    /// Random initialisation trained by SGD for `--sgd-epochs` epochs (GHN-2's baseline).
    Sgd,
}

impl Init {
    fn name(self) -> &'static str {
        match self {
            Init::Ghn => "ghn",
            Init::Random => "random",
            Init::Sgd => "sgd",
        }
    }
}

/// Arguments of `ghnq eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// GHN checkpoint directory or `.bpk` file (needed for `--init ghn`).
    #[arg(long)]
    pub ghn: Option<PathBuf>,
    /// Parameters to evaluate: GHN-predicted, or a baseline on the same nets.
    #[arg(long, value_enum, default_value_t = Init::Ghn)]
    pub init: Init,
    /// Epochs of SGD for `--init sgd` (DARTS recipe: lr 0.025 cosine, momentum 0.9, wd 3e-4).
    #[arg(long, default_value_t = 1.0)]
    pub sgd_epochs: f64,
    /// Images per SGD step for `--init sgd`.
    #[arg(long, default_value_t = 64)]
    pub sgd_batch: usize,
    /// Architecture split.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Number of nets from the split.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Test images per net.
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Test images and the device that evaluates on them.
    #[command(flatten)]
    pub test: super::test_data::TestData,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write per-net results as CSV (atomically).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Split seed (net i of the split is generated from (split, seed, i)).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of random initialisation and of the SGD baseline's image order.
    #[arg(long, default_value_t = 1)]
    pub init_seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let device = super::train::device(&args.test.device)?;
    let ghn = match (&args.ghn, args.init) {
        (Some(path), _) => Some(checkpoint::load_ghn(path, None, &device)?.0),
        (None, Init::Ghn) => anyhow::bail!(
            "--init ghn needs --ghn <checkpoint> (or choose a baseline: --init random | sgd)"
        ),
        (None, _) => None,
    };
    let classes = ghn.as_ref().map_or(10, |g| g.config.num_classes);
    let (shape, batches) = sources::test_batches(
        &args.test.dataset,
        args.test.data_dir.as_deref(),
        args.images,
        args.test.batch,
    )?;
    let nets = sources::eval_nets(&args.split, shape, classes, args.count, args.seed)?;
    device.seed(args.init_seed);
    let train_device = device.clone().autodiff();
    let mut train_images = match args.init {
        Init::Sgd => Some(sources::image_source(
            &args.test.dataset,
            args.test.data_dir.as_deref(),
            args.init_seed,
        )?),
        _ => None,
    };

    let bar = indicatif::ProgressBar::new(nets.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} nets [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut seen = Vec::new();
    let res = eval::evaluate_with(
        &nets,
        shape,
        &batches,
        &device,
        |net| match args.init {
            Init::Ghn => eval::predict_one(ghn.as_ref().expect("checked above"), net, &device),
            Init::Random => Ok(ParamSet::init_random(net, &device)),
            Init::Sgd => {
                let images = train_images.as_mut().expect("made for sgd");
                let config = SgdConfig::epochs(args.sgd_epochs, images.len(), args.sgd_batch);
                let p = sgd::train(
                    net,
                    ParamSet::init_random(net, &train_device),
                    images.as_mut(),
                    config,
                    &train_device,
                    |t, r| {
                        if t % 20 == 0 {
                            bar.set_message(format!(
                                "{}: SGD step {t}/{} loss {:.3}",
                                net.name, config.steps, r.loss
                            ));
                        }
                    },
                );
                Ok(p)
            }
        },
        |r| {
            seen.push(r.top1);
            let (m, se, _) = eval::mean_se_max(&seen);
            bar.set_message(format!("top-1 {m:.2} ± {se:.2}"));
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();

    let t1: Vec<f64> = res.iter().map(|r| r.top1).collect();
    let t5: Vec<f64> = res.iter().map(|r| r.top5).collect();
    let ms: Vec<f64> = res.iter().map(|r| r.predict_ms).collect();
    let (m1, s1, x1) = eval::mean_se_max(&t1);
    let (m5, s5, x5) = eval::mean_se_max(&t5);
    let (mms, _, _) = eval::mean_se_max(&ms);
    if let Some(path) = &args.csv {
        let mut text = String::from("net,init,params,top1,top5,param_ms\n");
        for r in &res {
            writeln!(
                text,
                "{},{},{},{:.4},{:.4},{:.3}",
                r.name,
                args.init.name(),
                r.params,
                r.top1,
                r.top5,
                r.predict_ms
            )?;
        }
        host_trainer::atomic::write(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let how = match args.init {
        Init::Ghn => "GHN prediction".to_string(),
        Init::Random => "random initialisation".to_string(),
        Init::Sgd => format!("SGD, {} epoch(s)", args.sgd_epochs),
    };
    if args.json {
        println!(
            "{{\"split\":\"{}\",\"init\":\"{}\",\"nets\":{},\"images\":{},\"top1\":{{\"mean\":{m1:.4},\"se\":{s1:.4},\"max\":{x1:.4}}},\"top5\":{{\"mean\":{m5:.4},\"se\":{s5:.4},\"max\":{x5:.4}}},\"param_ms_mean\":{mms:.3}}}",
            args.split,
            args.init.name(),
            res.len(),
            args.images
        );
    } else {
        println!(
            "split {} ({} nets, {} test images each), parameters by {how}",
            args.split,
            res.len(),
            args.images
        );
        println!("top-1  {m1:6.2} ± {s1:.2}   max {x1:6.2}");
        println!("top-5  {m5:6.2} ± {s5:.2}   max {x5:6.2}");
        println!("{how}: {mms:.1} ms per net (mean)");
    }
    Ok(())
}
