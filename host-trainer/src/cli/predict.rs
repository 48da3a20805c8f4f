//! `ghnq predict`: predict the parameters of an (unseen) net with a trained GHN, save them, and
//! report test accuracy.
use std::path::PathBuf;

use anyhow::{Context, Result};
use ghnq_core::arch::Net;
use ghnq_core::sources;
use ghnq_ghn::{checkpoint, eval};

/// Arguments of `ghnq predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// GHN checkpoint: a directory written by `ghnq train`, a `.bpk` file next to its ghn.cfg, or
    /// a ppuda GHN-2 state dict as `.safetensors`.
    #[arg(long)]
    pub ghn: PathBuf,
    /// The architecture (JSON, the `arch` text form).
    #[arg(long)]
    pub arch: PathBuf,
    /// Where to write the predicted parameters (safetensors, float32, PyTorch layouts).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Test images to evaluate on (0 = skip).
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Test images and the device that evaluates on them.
    #[command(flatten)]
    pub test: super::test_data::TestData,
}

pub fn run(args: Args) -> Result<()> {
    let device = super::device::device(&args.test.device)?;
    let (ghn, _) = checkpoint::load_ghn(&args.ghn, None, &device)?;
    let text = std::fs::read_to_string(&args.arch)
        .with_context(|| format!("reading {}", args.arch.display()))?;
    let net = Net::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.arch.display()))?;
    let t = std::time::Instant::now();
    let params = eval::predict_one(&ghn, &net, &device)?;
    params.check_shapes(&net)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.arch.with_extension("safetensors"));
    params
        .save_safetensors(&net, &out)
        .with_context(|| format!("writing {}", out.display()))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{}: {} parameters predicted in {ms:.1} ms -> {}",
        net.name,
        net.param_count(),
        out.display()
    );
    if args.images > 0 {
        let (shape, batches) = sources::test_batches(
            &args.test.dataset,
            args.test.data_dir.as_deref(),
            args.images,
            args.test.batch,
        )?;
        let (top1, top5) = eval::accuracy(&net, &params, shape, &batches, &device)?;
        println!(
            "test accuracy on {} images: top-1 {top1:.2} %, top-5 {top5:.2} %",
            args.images
        );
    }
    Ok(())
}
