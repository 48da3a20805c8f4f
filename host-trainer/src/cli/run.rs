//! `ghnq run model.ghnq --vectors v.ghnv` and `ghnq run model.ghnq --inputs x.npy --out y.npy`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ghnq_device::{read_file, user_io, vectors_run};
use shared_format::{Model, TestVectors};

/// Run a model blob with the host build of the edge runtime (the same code a device runs): over
/// a test-vector bundle (`--vectors`: top-1/top-5 and disagreements with the bundle's expected
/// logits; exits non-zero if any sample disagrees), or over your own inputs (`--inputs`: the
/// predicted class of each sample, the logits written with `--out`).
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["vectors", "inputs"])))]
pub struct Args {
    /// The model blob (.ghnq).
    pub model: PathBuf,
    /// The test-vector bundle (.ghnv).
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Your own samples, NHWC like the model's input: a `.npy` of int8 (used as is) or of float32
    /// (quantized with the blob's input scale and zero point), shaped (N, H, W, C) or
    /// (N, H·W·C); any other file is raw int8 bytes, H·W·C per sample.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Where to write the int8 logits of `--inputs` (written atomically): `.npy` (N, K), or raw
    /// bytes for any other name.
    #[arg(long, requires = "inputs")]
    pub out: Option<PathBuf>,
    /// Write `--out` as float32 logits, dequantized with the output scale and zero point
    /// (`.npy` only).
    #[arg(long, requires = "out")]
    pub dequantize: bool,
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
    let Some(vectors_path) = &args.vectors else {
        return run_inputs(&args, &model);
    };
    let vector_bytes = read_file(vectors_path)?;
    let vectors = TestVectors::from_bytes(&vector_bytes).with_context(|| {
        format!(
            "{} is not a valid test-vector bundle",
            vectors_path.display()
        )
    })?;
    let report = vectors_run::run(&model, &vectors, args.samples).with_context(|| {
        format!(
            "running {} over {}",
            args.model.display(),
            vectors_path.display()
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

/// `--inputs`: every sample through the runtime; the classes printed, the logits to `--out`.
fn run_inputs(args: &Args, model: &Model<'_>) -> Result<()> {
    let path = args
        .inputs
        .as_ref()
        .expect("clap requires --vectors or --inputs");
    let mut samples = user_io::read_inputs(path, model)?;
    if let Some(n) = args.samples {
        samples.truncate(n);
    }
    let outputs = user_io::run_all(model, &samples)
        .with_context(|| format!("running {}", args.model.display()))?;
    let classes: Vec<usize> = outputs
        .iter()
        .map(|o| shared_format::vectors::top1(o))
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"samples": samples.len(), "top1": classes})
        );
    } else {
        let shown: Vec<String> = classes.iter().take(20).map(usize::to_string).collect();
        println!(
            "samples {}   top-1 class of each: {}{}",
            samples.len(),
            shown.join(" "),
            if classes.len() > 20 { " ..." } else { "" }
        );
    }
    if let Some(out) = &args.out {
        user_io::write_outputs(out, model, &outputs, args.dequantize)?;
        eprintln!(
            "{} logits of {} samples -> {}",
            if args.dequantize { "float32" } else { "int8" },
            outputs.len(),
            out.display()
        );
    }
    Ok(())
}
