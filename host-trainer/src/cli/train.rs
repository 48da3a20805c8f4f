//! `ghnq train`: meta-train a GHN-2 on sampled architectures (GHN_SPEC §3).
use std::path::PathBuf;

use anyhow::{Context, Result};
use host_trainer::ghn::checkpoint;
use host_trainer::ghn::model::{Ghn, GhnConfig};
use host_trainer::ghn::sources;
use host_trainer::ghn::train::{MetaTrainer, RunOptions, run};

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
    /// Adam learning rate (×0.1 after 2/3 and 5/6 of the epochs).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// L2 weight decay added to the gradient (GHN-2: 1e-5).
    #[arg(long, default_value_t = 1e-5)]
    pub weight_decay: f64,
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
}

pub fn run_cmd(args: Args) -> Result<()> {
    let device = device(&args.device)?.autodiff();
    let mut images = sources::image_source(&args.dataset, args.data_dir.as_deref(), args.seed)?;
    let shape = images.shape();
    let classes = 10;
    let mut archs = sources::arch_source(&args.split, shape, classes, args.seed)?;
    let (ghn, state) = if args.resume && checkpoint::latest(&args.out)?.is_some() {
        let (g, st) = checkpoint::load_ghn(&args.out, None, &device)?;
        eprintln!("resuming from {} at step {}", args.out.display(), st.step);
        (g, st)
    } else {
        let cfg = GhnConfig {
            s_max: args.s_max,
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
    let mut trainer = MetaTrainer::new(ghn, args.weight_decay, device);
    trainer.state = state;
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
    };
    let s = run(&mut trainer, archs.as_mut(), images.as_mut(), &opts)?;
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

/// The burn device for `--device`.
pub fn device(name: &str) -> Result<burn::tensor::Device> {
    match name {
        "cpu" | "flex" => Ok(burn::tensor::Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(burn::tensor::Device::cuda(0)),
        #[cfg(not(feature = "cuda"))]
        "cuda" => anyhow::bail!("--device cuda needs a build with `--features cuda`"),
        other => anyhow::bail!("unknown device '{other}' (cpu or cuda)"),
    }
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
