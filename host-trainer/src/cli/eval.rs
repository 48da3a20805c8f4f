//! `ghnq eval`: predicted-parameter accuracy over an architecture split (mean ± s.e., max).
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use host_trainer::ghn::{checkpoint, eval, sources};

/// Arguments of `ghnq eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// GHN checkpoint directory or `.bpk` file.
    #[arg(long)]
    pub ghn: PathBuf,
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
    /// Also write per-net results as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Split seed (net i of the split is generated from (split, seed, i)).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let device = super::train::device(&args.test.device)?;
    let (ghn, _) = checkpoint::load_ghn(&args.ghn, None, &device)?;
    let (shape, batches) = sources::test_batches(
        &args.test.dataset,
        args.test.data_dir.as_deref(),
        args.images,
        args.test.batch,
    )?;
    let nets = sources::eval_nets(
        &args.split,
        shape,
        ghn.config.num_classes,
        args.count,
        args.seed,
    )?;
    let res = eval::evaluate(&ghn, &nets, shape, &batches, &device)?;
    let t1: Vec<f64> = res.iter().map(|r| r.top1).collect();
    let t5: Vec<f64> = res.iter().map(|r| r.top5).collect();
    let ms: Vec<f64> = res.iter().map(|r| r.predict_ms).collect();
    let (m1, s1, x1) = eval::mean_se_max(&t1);
    let (m5, s5, x5) = eval::mean_se_max(&t5);
    let (mms, _, _) = eval::mean_se_max(&ms);
    if let Some(path) = &args.csv {
        let mut f = std::fs::File::create(path)?;
        writeln!(f, "net,params,top1,top5,predict_ms")?;
        for r in &res {
            writeln!(
                f,
                "{},{},{:.4},{:.4},{:.3}",
                r.name, r.params, r.top1, r.top5, r.predict_ms
            )?;
        }
    }
    if args.json {
        println!(
            "{{\"split\":\"{}\",\"nets\":{},\"images\":{},\"top1\":{{\"mean\":{m1:.4},\"se\":{s1:.4},\"max\":{x1:.4}}},\"top5\":{{\"mean\":{m5:.4},\"se\":{s5:.4},\"max\":{x5:.4}}},\"predict_ms_mean\":{mms:.3}}}",
            args.split,
            res.len(),
            args.images
        );
    } else {
        println!(
            "split {} ({} nets, {} test images each)",
            args.split,
            res.len(),
            args.images
        );
        println!("top-1  {m1:6.2} ± {s1:.2}   max {x1:6.2}");
        println!("top-5  {m5:6.2} ± {s5:.2}   max {x5:6.2}");
        println!("GHN prediction {mms:.1} ms per net (mean)");
    }
    Ok(())
}
