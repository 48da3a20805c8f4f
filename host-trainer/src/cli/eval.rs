//! `ghnq eval`: accuracy over architecture splits (mean ± s.e., max) of GHN-predicted parameters
//! or of the two baselines GHN-2's tables compare against, in float and, with `--bits`, quantized:
//! the paper's tables from the float simulation and from the integer runtime.
use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::cnn::ParamSet;
use ghnq_core::cnn::train::{self as sgd, SgdConfig};
use ghnq_core::sources;
use ghnq_core::train::LabeledBatch;
use ghnq_export::{self as export, Provenance};
use ghnq_ghn::{checkpoint, eval};
use ghnq_quant::config::{Precision, TrainedFor};
use ghnq_quant::table::{self, NetResult};
use ghnq_study::grid::Shard;
use rayon::prelude::*;
use shared_format::Rounding;

use super::quant_args;

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

/// Arguments of `ghnq eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// GHN checkpoint directory or `.bpk` file, or a ppuda GHN-2 state dict as `.safetensors`
    /// (needed for `--init ghn`).
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
    /// Architecture splits, comma-separated (test, deep, wide, bn-free, predefined, tiny).
    #[arg(long, default_value = "test", value_delimiter = ',')]
    pub split: Vec<String>,
    /// Nets per split.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Test images per net.
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Bit-widths, comma-separated: float and/or w8a8, w4a8, w4a4, w2a2, ... Quantized rows come
    /// from the float simulation (`sim`) and the integer runtime (`int`) of the exported blob.
    #[arg(long, default_value = "float", value_delimiter = ',')]
    pub bits: Vec<String>,
    /// Quantization and rounding of quantized rows.
    #[command(flatten)]
    pub quant: super::quant_args::QuantArgs,
    /// Calibration images (training set) per net for quantized rows.
    #[arg(long, default_value_t = 500)]
    pub calib: usize,
    /// Test images and the device that evaluates on them.
    #[command(flatten)]
    pub test: super::test_data::TestData,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// CSV, markdown and plot outputs.
    #[command(flatten)]
    pub out: super::table_out::TableOut,
    /// Evaluate only shard i of n (1-based, `2/4`): a contiguous quarter of each split's nets,
    /// for running one evaluation as several processes; `ghnq merge` combines their `--csv`s.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Split seed (net i of the split is generated from (split, seed, i)).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of random initialisation and of the SGD baseline's image order.
    #[arg(long, default_value_t = 1)]
    pub init_seed: u64,
}

/// Nets of shard `i` of `n` among `len`: contiguous, sizes differing by at most one, covering
/// all nets exactly once.
fn shard_range(len: usize, i: usize, n: usize) -> std::ops::Range<usize> {
    (len * (i - 1) / n)..(len * i / n)
}

pub fn run(args: Args) -> Result<()> {
    let device = super::device::device(&args.test.device)?;
    let rounding = args.quant.rounding();
    let mut precisions: Vec<Option<Precision>> = Vec::new();
    for b in &args.bits {
        precisions.push(match b.as_str() {
            "float" => None,
            p => Some(p.parse().map_err(|e: String| anyhow::anyhow!(e))?),
        });
    }
    // Baselines (random, SGD) are quantized as asked, not as the GHN was trained.
    let trained = match (&args.ghn, args.init) {
        (Some(path), Init::Ghn) => quant_args::trained_for(path),
        _ => Vec::new(),
    };
    let (ghn, ghn_hash) = match (&args.ghn, args.init) {
        (Some(path), _) => {
            let (g, _) = checkpoint::load_ghn(path, None, &device)?;
            let (_, file, _) = checkpoint::resolve(path)?;
            (Some(g), export::fingerprint(&std::fs::read(&file)?))
        }
        (None, Init::Ghn) => anyhow::bail!(
            "--init ghn needs --ghn <checkpoint> (or choose a baseline: --init random | sgd)"
        ),
        (None, _) => (None, 0),
    };
    let classes = ghn.as_ref().map_or(10, |g| g.config.num_classes);
    let data_dir = args.test.data_dir.as_deref();
    let (shape, batches) =
        sources::test_batches(&args.test.dataset, data_dir, args.images, args.test.batch)?;
    let calib = if precisions.iter().any(Option::is_some) {
        sources::calibration_batches(&args.test.dataset, data_dir, args.calib, 64, 7)?.1
    } else {
        Vec::new()
    };
    let mut splits = Vec::new();
    for s in &args.split {
        let nets = sources::eval_nets(s, shape, classes, args.count, args.seed)?;
        let nets = match args.shard {
            Some(sh) => nets[shard_range(nets.len(), sh.index, sh.count)].to_vec(),
            None => nets,
        };
        splits.push((s.clone(), nets));
    }
    let train_device = device.clone().autodiff();
    let total: usize = splits.iter().map(|(_, n)| n.len()).sum();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} nets [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    // Nets are evaluated in parallel, one per rayon thread (`RAYON_NUM_THREADS`, every core by
    // default; the tables' runner holds it to one): each net's export and comparison stands
    // alone. Their parameters are made first, a chunk of nets at a time, in order on this
    // thread: random initialisation draws from the device's seeded generator,
    // which threads would interleave (and the SGD baseline trains one net at a time).
    let jobs: Vec<(&String, &Net)> = splits
        .iter()
        .flat_map(|(split, nets)| nets.iter().map(move |net| (split, net)))
        .collect();
    let net_eval = NetEval {
        precisions: &precisions,
        args: &args,
        trained,
        ghn_hash,
        rounding,
        shape,
        calib: &calib,
        batches: &batches,
        device: &device,
    };
    let mut results: Vec<NetResult> = Vec::new();
    let mut param_ms = Vec::new();
    // Four nets per thread a chunk, so that a slow net does not hold the others' threads idle.
    for chunk in jobs.chunks(4 * rayon::current_num_threads().max(1)) {
        let mut ready = Vec::with_capacity(chunk.len());
        for &(split, net) in chunk {
            bar.set_message(format!("{split}: {}", net.name));
            // Per-net seed: a net's baseline is the same in any shard or subset.
            device.seed(args.init_seed ^ export::fingerprint(net.name.as_bytes()));
            let t = std::time::Instant::now();
            let params = match args.init {
                Init::Ghn => eval::predict_one(ghn.as_ref().expect("checked above"), net, &device)?,
                Init::Random => ParamSet::init_random(net, &device),
                Init::Sgd => sgd_baseline(&args, net, split, &train_device, &bar)?,
            };
            let _ = params.named_tensors(net);
            param_ms.push(t.elapsed().as_secs_f64() * 1e3);
            // A bit-conditioned GHN predicts for each bit-width too.
            let per_bits = match &ghn {
                Some(g) if args.init == Init::Ghn && g.config.bit_conditioned => Some(
                    precisions
                        .iter()
                        .map(|p| match p {
                            Some(p) => eval::predict_one_for(g, net, Some(*p), &device),
                            None => Ok(params.clone()),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => None,
            };
            ready.push((split, net, params, per_bits));
        }
        let done: Vec<Result<Vec<NetResult>>> = ready
            .into_par_iter()
            .map(|(split, net, params, per_bits)| {
                let rows = net_eval.rows(split, net, params, per_bits);
                bar.inc(1);
                rows
            })
            .collect();
        for rows in done {
            results.extend(rows?);
        }
    }
    bar.finish_and_clear();

    let rows = table::aggregate(&results);
    args.out.write(&results, &rows)?;
    let (ms, _, _) = ghnq_core::train::mean_se_max(&param_ms);
    let how = match args.init {
        Init::Ghn => "GHN prediction".to_string(),
        Init::Random => "random initialisation".to_string(),
        Init::Sgd => format!("SGD for {} epoch(s)", args.sgd_epochs),
    };
    // CPU time of the whole process (every thread): what an evaluation costs, whatever else
    // the machine was doing. A pair is a (net, precision): float, or a bit-width measured both
    // in simulation and on the integer runtime (its `sim` row is not counted again).
    let cpu_s = cpu_time::ProcessTime::now().as_duration().as_secs_f64();
    let pairs = results.iter().filter(|r| r.runtime != "sim").count();
    let per_hour = pairs as f64 / (cpu_s / 3600.0).max(1e-9);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "init": how,
                "images": args.images,
                "param_ms_mean": ms,
                "cpu_s": cpu_s,
                "pairs": pairs,
                "pairs_per_cpu_hour": per_hour,
                "rows": rows,
            })
        );
    } else {
        println!(
            "parameters by {how} ({ms:.1} ms per net), {} test images per net",
            args.images
        );
        print!("{}", table::text(&rows));
        // Standard output stays the table alone (for pipes and diffs); the cost goes beside it.
        eprintln!(
            "{pairs} (net, precision) results in {cpu_s:.1} CPU-s: {per_hour:.0} per CPU-hour"
        );
    }
    Ok(())
}

/// What every net's evaluation shares ([`NetEval::rows`]).
struct NetEval<'a> {
    precisions: &'a [Option<Precision>],
    args: &'a Args,
    trained: Vec<TrainedFor>,
    ghn_hash: u64,
    rounding: Rounding,
    shape: ImageShape,
    calib: &'a [LabeledBatch],
    batches: &'a [LabeledBatch],
    device: &'a Device,
}

impl NetEval<'_> {
    /// One net's rows: float, and per bit-width the simulation's and the integer runtime's.
    /// `per_bits` holds a bit-conditioned GHN's parameters for each of the precisions.
    fn rows(
        &self,
        split: &str,
        net: &Net,
        params: ParamSet,
        per_bits: Option<Vec<ParamSet>>,
    ) -> Result<Vec<NetResult>> {
        let row = |bits: String, path: &str, top1, top5| NetResult {
            split: split.to_string(),
            net: net.name.clone(),
            bits,
            runtime: path.into(),
            top1,
            top5,
            qmse: None,
            qce: None,
            agreement: None,
        };
        let mut out = Vec::new();
        // The float net's calibration and logits, shared by this net's bit-widths.
        let mut shared = export::FloatReference::default();
        for (k, p) in self.precisions.iter().enumerate() {
            match p {
                None => {
                    let (top1, top5) =
                        eval::accuracy(net, &params, self.shape, self.batches, self.device)?;
                    out.push(row("float".into(), "float", top1, top5));
                }
                Some(precision) => {
                    let config = self.args.quant.config_for(*precision, &self.trained);
                    let provenance = Provenance {
                        dataset: self.args.test.dataset.clone(),
                        arch_hash: export::fingerprint(net.to_json().as_bytes()),
                        ghn_hash: self.ghn_hash,
                        calibration_samples: 0,
                    };
                    let params = match &per_bits {
                        Some(per_bits) => {
                            shared = export::FloatReference::default();
                            per_bits[k].clone()
                        }
                        None => params.clone(),
                    };
                    let (_, c) = export::export_and_compare(
                        net,
                        params,
                        &config,
                        self.rounding,
                        self.shape,
                        self.calib,
                        self.batches,
                        &provenance,
                        self.device,
                        0,
                        &mut shared,
                    )?;
                    let bits = config.label();
                    out.push(row(bits.clone(), "sim", c.sim_top1, c.sim_top5));
                    let mut int = row(bits, "int", c.int_top1, c.int_top5);
                    int.qmse = Some(c.qmse);
                    int.qce = Some(c.qce);
                    int.agreement = Some(c.top1_agreement);
                    out.push(int);
                }
            }
        }
        Ok(out)
    }
}

/// The SGD baseline's parameters for `net`: random initialisation trained for `--sgd-epochs`.
fn sgd_baseline(
    args: &Args,
    net: &Net,
    split: &str,
    train_device: &Device,
    bar: &indicatif::ProgressBar,
) -> Result<ParamSet> {
    // Per-net image order too, for the same reason as the seed.
    let mut images = sources::image_source(
        &args.test.dataset,
        args.test.data_dir.as_deref(),
        args.init_seed ^ export::fingerprint(net.name.as_bytes()),
    )?;
    let config = SgdConfig::epochs(args.sgd_epochs, images.len(), args.sgd_batch);
    // Whether a low baseline is a net that trains slowly or a run that failed.
    let mut losses = Vec::with_capacity(config.steps);
    let trained = sgd::train(
        net,
        ParamSet::init_random(net, train_device),
        images.as_mut(),
        config,
        train_device,
        |t, r| {
            losses.push(r.loss);
            if t % 20 == 0 {
                bar.set_message(format!(
                    "{split}: {} SGD step {t}/{} loss {:.3}",
                    net.name, config.steps, r.loss
                ));
            }
        },
    )?;
    let summary = sgd::loss_summary(&net.name, &losses);
    bar.suspend(|| eprintln!("{summary}"));
    Ok(trained.without_autodiff())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_net_once() {
        for len in [0, 1, 7, 100] {
            for n in 1..=5 {
                let mut seen = Vec::new();
                for i in 1..=n {
                    seen.extend(shard_range(len, i, n));
                }
                assert_eq!(seen, (0..len).collect::<Vec<_>>(), "len {len}, {n} shards");
            }
        }
    }
}
