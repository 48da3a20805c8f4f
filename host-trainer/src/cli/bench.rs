//! `ghnq bench ghn`: GHN prediction time per net and the time of one meta-training step;
//! `ghnq bench tflite`: see [`super::bench_tflite`].
use anyhow::Result;
use burn::tensor::Device;
use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::sources;
use ghnq_core::train::{ImageSource, LabeledBatch};
use ghnq_ghn::checkpoint;
use ghnq_ghn::model::{Ghn, GhnConfig};
use ghnq_ghn::train::{Engine, MetaTrainer};

/// ppuda's GHN-2 training step at meta-batch 8, batch 64, one thread (PyTorch 2.9 with oneDNN on
/// a 2-core AMD EPYC host like this project's; `shared/reference/ppuda-peer`): the anchor every
/// `bench ghn` prints beside its own figures.
const PPUDA_STEP_S: f64 = 5.29;

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
    /// Thread counts to time, comma-separated (each in a rayon pool of its own).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Meta-training engine: native, burn, or both (timed on the same meta-batches, with their
    /// ratio).
    #[arg(long, default_value = "both")]
    pub engine: String,
    /// Time GHN-QAT's meta-training step at this precision (the paper's quantization: per-tensor
    /// affine, batch ranges; NoiseQuant at 2 bits) instead of the float step.
    #[arg(long)]
    pub qat: Option<ghnq_quant::config::Precision>,
    /// GHN-QAT's weight range: absolute or percentile[:p] (`ghnq train --weight-clip`).
    #[arg(long, default_value = "absolute", requires = "qat")]
    pub weight_clip: ghnq_quant::config::Clip,
    /// GHN-QAT's activation range: absolute or percentile[:p] (`ghnq train --act-clip`).
    #[arg(long, default_value = "absolute", requires = "qat")]
    pub act_clip: ghnq_quant::config::Clip,
    /// ghn: cpu (burn flex) or cuda (needs `--features cuda`; the native engine is CPU-only, so
    /// cuda times the burn engine).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Standard output is one JSON list (one object per thread count and engine); the human
    /// lines go to standard error.
    #[arg(long)]
    pub json: bool,
}

/// Milliseconds to predict (and read back) every net's parameters, after one warm-up.
fn predict_times(ghn: &Ghn, nets: &[Net], device: &Device) -> Result<Vec<f64>> {
    let _ = ghnq_ghn::eval::predict_one(ghn, &nets[0], device)?.named_tensors(&nets[0]);
    let mut times = Vec::new();
    for net in nets {
        let t = std::time::Instant::now();
        let p = ghnq_ghn::eval::predict_one(ghn, net, device)?;
        let _ = p.named_tensors(net);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

/// The median (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
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
    let records = ghn(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    }
    Ok(())
}

/// `bench ghn`: prints its lines and returns one record per thread count and engine.
pub fn ghn(args: &Args) -> Result<Vec<serde_json::Value>> {
    let device = super::device::device(&args.device)?;
    let ghn = match &args.ghn {
        Some(p) => checkpoint::load_ghn(p, None, &device)?.0,
        None => Ghn::new(&GhnConfig::cifar10(), &device),
    };
    let shape = match args.dataset.as_str() {
        "cifar10" => ImageShape::CIFAR10,
        "fashion-mnist" => ImageShape::FASHION_MNIST,
        other => anyhow::bail!("unknown dataset '{other}' (cifar10 or fashion-mnist)"),
    };
    let on_cpu = ghnq_quant::sim_native::is_cpu(&device);
    let engines: Vec<Engine> = match args.engine.as_str() {
        "both" if on_cpu => vec![Engine::Burn, Engine::Native],
        "both" => vec![Engine::Burn],
        e => vec![e.parse().map_err(|e: String| anyhow::anyhow!(e))?],
    };
    anyhow::ensure!(
        on_cpu || !engines.contains(&Engine::Native),
        "the native engine runs on the CPU only: use --engine burn with --device {}",
        args.device
    );
    let log = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    log(format!(
        "available_parallelism={:?}; thread counts {:?}; engines {:?}",
        std::thread::available_parallelism().map(|n| n.get()).ok(),
        args.threads,
        engines
    ));
    // The fixed, seeded meta-batches every configuration times: the `train` split (seed 7) at the
    // data set's shape, synthetic images (timing does not depend on pixels).
    let classes = ghn.config.num_classes;
    let mut archs = sources::arch_source(
        if args.split == "tiny" {
            "tiny"
        } else {
            "train"
        },
        shape,
        classes,
        7,
    )?;
    let mut images = sources::SyntheticImages::new(shape, classes, 45_000, 1);
    let batches: Vec<(Vec<Net>, LabeledBatch)> = (0..=args.steps)
        .map(|_| {
            let nets = (0..args.meta_batch).map(|_| archs.sample()).collect();
            (nets, images.next_batch(args.batch))
        })
        .collect();
    // Multiply-accumulates of one step: each net's forward on the batch; its backward costs about
    // twice that (input and weight gradients), and a MAC is two FLOPs.
    let macs: u64 = batches[1..]
        .iter()
        .flat_map(|(nets, _)| nets.iter().map(|n| n.macs()))
        .sum::<u64>()
        / args.steps.max(1) as u64;
    let gflop_per_step = 6.0 * macs as f64 * args.batch as f64 / 1e9;
    let pred_nets = sources::eval_nets(&args.split, shape, classes, args.count, 0)?;

    let mut records = Vec::new();
    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| anyhow::anyhow!("a pool of {threads} threads: {e}"))?;
        let predict = pool.install(|| predict_times(&ghn, &pred_nets, &device))?;
        let (pm, pse, pmax) = ghnq_core::train::mean_se_max(&predict);
        log(format!(
            "[{threads} thread(s)] GHN prediction ({} params, hid {}): median {:.1} ms, mean {pm:.1} ± {pse:.1} ms per net (max {pmax:.1}) over {} '{}' nets; goal <= 50 ms",
            ghn.param_count(),
            ghn.config.hid,
            median(&predict),
            pred_nets.len(),
            args.split,
        ));
        let mut medians = Vec::new();
        for &engine in &engines {
            let ad = device.clone().autodiff();
            let mut trainer = MetaTrainer::new(Ghn::new(&ghn.config, &ad), 1e-5, ad);
            trainer.engine = engine;
            trainer.qat = args.qat.map(|p| ghnq_quant::config::QuantConfig {
                weight_clip: args.weight_clip,
                act_clip: args.act_clip,
                ..ghnq_quant::config::QuantConfig::paper(p)
            });
            let mut steps = Vec::new();
            let mut parts = [0.0f64; 5];
            let mut profile = ghnq_core::cnn::native::Profile::new();
            for (k, (nets, b)) in batches.iter().enumerate() {
                let t = std::time::Instant::now();
                let r = pool.install(|| trainer.step(nets, b, shape, 1e-3));
                let s = t.elapsed().as_secs_f64();
                if k > 0 {
                    steps.push(s);
                    parts
                        .iter_mut()
                        .zip(r.ms)
                        .for_each(|(p, m)| *p += m / args.steps as f64);
                    ghnq_core::cnn::native::accumulate(
                        &mut profile,
                        &trainer.last_profile,
                        1.0 / args.steps as f64,
                    );
                }
                eprintln!(
                    "  {engine:?} step {k}{}: {:.0} ms (GHN forward {:.0}, nets forward {:.0}, nets backward {:.0}, GHN backward {:.0}, Adam {:.0}), loss {:.3}",
                    if k == 0 { " (warm-up)" } else { "" },
                    s * 1e3,
                    r.ms[0],
                    r.ms[1],
                    r.ms[2],
                    r.ms[3],
                    r.ms[4],
                    r.loss
                );
            }
            let med = median(&steps);
            medians.push(med);
            log(format!(
                "[{threads} thread(s)] {engine:?}: {} training step (meta-batch {}, batch {}, {gflop_per_step:.1} GFLOP): median {med:.2} s = {:.1} GFLOP/s; mean split (ms) GHN forward {:.0} | nets forward {:.0} | nets backward {:.0} | GHN backward {:.0} | Adam {:.0}",
                args.qat.map_or("float".to_string(), |p| format!(
                    "GHN-QAT {p} (weights {:?}, activations {:?})",
                    args.weight_clip, args.act_clip
                )),
                args.meta_batch,
                args.batch,
                gflop_per_step / med,
                parts[0],
                parts[1],
                parts[2],
                parts[3],
                parts[4],
            ));
            if !profile.is_empty() {
                let total: f64 = profile.values().map(|v| v[0] + v[1]).sum();
                let mut rows: Vec<_> = profile.iter().collect();
                rows.sort_by(|a, b| (b.1[0] + b.1[1]).total_cmp(&(a.1[0] + a.1[1])));
                let text: Vec<String> = rows
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k} {:.0}+{:.0} ms ({:.0} %)",
                            v[0],
                            v[1],
                            100.0 * (v[0] + v[1]) / total.max(1e-9)
                        )
                    })
                    .collect();
                log(format!(
                    "[{threads} thread(s)] {engine:?} nets by op kind, forward+backward per step (thread time): {}",
                    text.join(", ")
                ));
            }
            records.push(serde_json::json!({
                "engine": format!("{engine:?}").to_lowercase(),
                "qat": args.qat.map(|p| p.to_string()),
                "weight_clip": args.qat.map(|_| format!("{:?}", args.weight_clip)),
                "act_clip": args.qat.map(|_| format!("{:?}", args.act_clip)),
                "threads": threads,
                "meta_batch": args.meta_batch,
                "batch": args.batch,
                "dataset": args.dataset,
                "steps": args.steps,
                "predict_ms_median": median(&predict),
                "train_step_s_median": med,
                "train_step_s": steps,
                "split_ms_mean": {
                    "ghn_forward": parts[0], "nets_forward": parts[1], "nets_backward": parts[2],
                    "ghn_backward": parts[3], "optimizer": parts[4]
                },
                "gflop_per_step": gflop_per_step,
                "ppuda_step_s_anchor": PPUDA_STEP_S,
                "nets_ms_by_op_kind": profile,
            }));
        }
        if let [burn, native] = medians[..] {
            log(format!(
                "[{threads} thread(s)] native engine {:.2}x faster than burn autodiff in this run",
                burn / native
            ));
        }
    }
    log(format!(
        "anchor: ppuda's GHN-2 (PyTorch 2.9, oneDNN) took {PPUDA_STEP_S} s per step at meta-batch 8, batch 64, one thread on a similar 2-core host (a constant measured elsewhere: shared/reference/ppuda-peer)"
    ));
    Ok(records)
}
