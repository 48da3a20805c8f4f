//! `ghnq graphs`: generate an architecture split, write it as JSON, print its distribution.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use ghnq_core::arch::splits::Split;
use ghnq_core::arch::stats::Stats;
use ghnq_core::arch::text::{self, Manifest};
use ghnq_core::data::DatasetKind;

/// Arguments of `ghnq graphs`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  ghnq graphs --split test --count 500 --out graphs/test\n  \
ghnq graphs --split deep --count 100 --dataset cifar10 --stats\n  \
ghnq graphs --split predefined --dataset cifar10 --out graphs/predefined"
)]
pub struct Args {
    /// Split: train, test (in-distribution), deep, wide, bn-free (out-of-distribution), or predefined
    /// (the paper's VGG-like/residual/MbNetV2 nets, ResNet-8, MobileNet-v1-0.25).
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Number of nets (net i is the same for any count; predefined has 10).
    #[arg(long, default_value_t = 500)]
    pub count: usize,
    /// Base seed; net i uses a seed derived from (split, seed, i), so splits never share nets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Dataset the nets are shaped for: fashion-mnist (28x28x1) or cifar10 (32x32x3).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: DatasetKind,
    /// Override the split's parameter budget (default: 250,000 for train/test/bn-free, 1 M deep,
    /// 4 M wide).
    #[arg(long)]
    pub budget: Option<usize>,
    /// Folder to write `<name>.json` per net and `manifest.json` into (created; files are written
    /// atomically). Required unless --stats.
    #[arg(long, required_unless_present = "stats")]
    pub out: Option<PathBuf>,
    /// Only print the distribution (params, MACs, depth, op mix); write nothing.
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let input = args.dataset.shape();
    let classes = args.dataset.classes();
    let (nets, budget) = match args.split.config() {
        None => (
            args.split.nets(input, classes, args.seed, args.count)?,
            None,
        ),
        Some(mut cfg) => {
            if let Some(b) = args.budget {
                cfg.budget = b;
            }
            let nets = (0..args.count)
                .map(|i| {
                    args.split
                        .generated(&cfg, input, classes, args.seed, i)
                        .map(|(net, _)| net)
                })
                .collect::<Result<Vec<_>, _>>()?;
            (nets, Some(cfg.budget))
        }
    };
    if let (false, Some(out)) = (args.stats, &args.out) {
        let manifest = Manifest {
            split: args.split.to_string(),
            seed: args.seed,
            dataset: args.dataset.to_string(),
            input,
            classes,
            budget,
            nets: Vec::new(),
        };
        text::write_split_dir(out, &nets, manifest)
            .with_context(|| format!("writing split to {}", out.display()))?;
        println!("wrote {} nets to {}", nets.len(), out.display());
    }
    // Write through a handle so a closed pipe (`| head`) is an error, not a panic.
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "split {} (seed {}, {} {input}):",
        args.split, args.seed, args.dataset
    )?;
    write!(stdout, "{}", Stats::of(&nets))?;
    Ok(())
}
