//! `ghnq bench ghn`: GHN prediction time per net and the time of one meta-training step;
//! `ghnq bench tflite`: see [`super::bench_tflite`].
use anyhow::Result;
use burn::tensor::Device;
use ghnq_core::arch::ImageShape;
use ghnq_core::sources;
use ghnq_core::train::ImageSource;
use ghnq_ghn::model::{Ghn, GhnConfig};
use ghnq_ghn::train::MetaTrainer;
use ghnq_ghn::{GhnGraph, checkpoint};

/// Arguments of `ghnq bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to benchmark: `ghn` (prediction time per net, one meta-training step) or `tflite`
    /// (a .tflite model on the edge runtime beside TFLM's reference interpreter and LiteRT on
    /// the host, and on an emulated board: instructions and MACs per instruction).
    pub what: String,
    /// tflite: the model.
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// tflite: timed inferences per interpreter.
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// tflite: emulated board for instruction counts (`none` to skip).
    #[arg(long, default_value = "mps2-an386")]
    pub board: String,
    /// GHN checkpoint (default: a fresh GHN-2 CIFAR-10 configuration; timing does not depend on weights).
    #[arg(long)]
    pub ghn: Option<std::path::PathBuf>,
    /// Architecture split for prediction timing.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Nets to time.
    #[arg(long, default_value_t = 20)]
    pub count: usize,
    /// Training steps to time (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Meta-batch of the timed training step.
    #[arg(long, default_value_t = 8)]
    pub meta_batch: usize,
    /// Image batch of the timed training step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Image shape of the nets and (synthetic) images: cifar10 (32x32x3) or fashion-mnist (28x28x1).
    #[arg(long, default_value = "cifar10")]
    pub dataset: String,
}

pub fn run(args: Args) -> Result<()> {
    if args.what == "tflite" {
        let model = args
            .model
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("`ghnq bench tflite` needs --model m.tflite"))?;
        return super::bench_tflite::run(super::bench_tflite::Options {
            model,
            iterations: args.iterations.max(1),
            board: &args.board,
            sdk: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(std::path::PathBuf::from)
                .unwrap_or_default(),
        });
    }
    anyhow::ensure!(
        args.what == "ghn",
        "unknown benchmark '{}' (ghn or tflite)",
        args.what
    );
    let threads = super::train::threads();
    println!(
        "threads: {threads} (RAYON_NUM_THREADS={:?}, available_parallelism={:?})",
        std::env::var("RAYON_NUM_THREADS").ok(),
        std::thread::available_parallelism().map(|n| n.get()).ok()
    );
    let device = Device::flex();
    let ghn = match &args.ghn {
        Some(p) => checkpoint::load_ghn(p, None, &device)?.0,
        None => Ghn::new(&GhnConfig::cifar10(), &device),
    };
    let shape = match args.dataset.as_str() {
        "cifar10" => ImageShape::CIFAR10,
        "fashion-mnist" => ImageShape::FASHION_MNIST,
        other => anyhow::bail!("unknown dataset '{other}' (cifar10 or fashion-mnist)"),
    };
    let nets = sources::eval_nets(&args.split, shape, ghn.config.num_classes, args.count, 0)?;
    // Warm-up.
    let _ = ghnq_ghn::eval::predict_one(&ghn, &nets[0], &device)?.named_tensors(&nets[0]);
    let mut times = Vec::new();
    let mut nodes = 0;
    for net in &nets {
        let t = std::time::Instant::now();
        let p = ghnq_ghn::eval::predict_one(&ghn, net, &device)?;
        let _ = p.named_tensors(net);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        nodes += GhnGraph::build(net, ghn.config.s_max)?.len();
    }
    let (m, se, mx) = ghnq_core::train::mean_se_max(&times);
    let mean_params =
        nets.iter().map(|n| n.param_count()).sum::<usize>() as f64 / nets.len() as f64;
    println!(
        "GHN prediction ({} params, hid {}): {m:.1} ± {se:.1} ms per net (max {mx:.1}) over {} '{}' nets (mean {:.0} graph nodes, {:.0} net params); goal <= 50 ms",
        ghn.param_count(),
        ghn.config.hid,
        nets.len(),
        args.split,
        nodes as f64 / nets.len() as f64,
        mean_params
    );

    // Training step: meta-batch × batch on synthetic images of the data set's shape.
    let ad = device.autodiff();
    let cfg = ghn.config.clone();
    let mut trainer = MetaTrainer::new(Ghn::new(&cfg, &ad), 1e-5, ad);
    let mut images = sources::SyntheticImages::new(shape, cfg.num_classes, 45_000, 1);
    let mut archs = sources::arch_source(
        if args.split == "tiny" {
            "tiny"
        } else {
            "train"
        },
        shape,
        cfg.num_classes,
        7,
    )?;
    let mut step_ms = Vec::new();
    for k in 0..=args.steps {
        let nets: Vec<_> = (0..args.meta_batch).map(|_| archs.sample()).collect();
        let b = images.next_batch(args.batch);
        let t = std::time::Instant::now();
        let r = trainer.step(&nets, &b, shape, 1e-3);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if k > 0 {
            step_ms.push(ms);
        }
        eprintln!(
            "step {k}: {ms:.0} ms (GHN predict {:.0}, target nets forward {:.0}, backward + grad norm {:.0}, Adam {:.0}), loss {:.3}",
            r.ms[0], r.ms[1], r.ms[2], r.ms[3], r.loss
        );
    }
    let (m, se, _) = ghnq_core::train::mean_se_max(&step_ms);
    println!(
        "training step (meta-batch {}, batch {}): {m:.0} ± {se:.0} ms over {} steps",
        args.meta_batch,
        args.batch,
        step_ms.len()
    );
    Ok(())
}
