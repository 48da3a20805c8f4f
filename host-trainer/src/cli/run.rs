//! `ghnq run model.ghnq --vectors v.ghnv`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ghnq_device::{read_file, vectors_run};
use shared_format::{Model, TestVectors};

/// Run a model blob over a test-vector bundle with the host build of the edge runtime (the same
/// code a device runs) and print top-1/top-5 accuracy and disagreements with the bundle's
/// expected logits. Exits non-zero if any sample disagrees.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model blob (.ghnq).
    pub model: PathBuf,
    /// The test-vector bundle (.ghnv).
    #[arg(long)]
    pub vectors: PathBuf,
    /// Run only the first N samples.
    #[arg(long)]
    pub samples: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let model_bytes = read_file(&args.model)?;
    let model = Model::from_bytes(&model_bytes)
        .with_context(|| format!("{} is not a valid model blob", args.model.display()))?;
    let vector_bytes = read_file(&args.vectors)?;
    let vectors = TestVectors::from_bytes(&vector_bytes).with_context(|| {
        format!(
            "{} is not a valid test-vector bundle",
            args.vectors.display()
        )
    })?;
    let report = vectors_run::run(&model, &vectors, args.samples).with_context(|| {
        format!(
            "running {} over {}",
            args.model.display(),
            args.vectors.display()
        )
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if !report.same_model {
            eprintln!(
                "warning: the bundle was made for another blob (model CRC differs); expected logits may not apply"
            );
        }
        println!(
            "samples {}   top-1 {:.2} % ({})   top-5 {:.2} % ({})   disagreements {} ({} logit bytes)",
            report.samples,
            report.top1_percent(),
            report.top1,
            report.top5_percent(),
            report.top5,
            report.disagreements,
            report.differing_bytes
        );
    }
    if report.disagreements > 0 {
        bail!(
            "{} of {} samples disagree with the expected logits (first: sample {})",
            report.disagreements,
            report.samples,
            report.first_disagreement.unwrap_or(0)
        );
    }
    Ok(())
}
