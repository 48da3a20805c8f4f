//! `ghnq import model.tflite -o model.ghnq`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ghnq_device::random_vectors::random_vectors;
use ghnq_device::{read_file, summary::Summary};
use ghnq_tflite as tflite;
use shared_format::Model;

/// Import an int8 TensorFlow Lite model as a model blob that computes what TFLite Micro computes.
///
/// Maps CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, AVERAGE_POOL_2D (a whole-input window
/// becomes a global average), MAX_POOL_2D, CONCATENATION, SOFTMAX onto the runtime's ops; RESHAPE
/// and SQUEEZE become views and PAD folds into the next convolution. Multipliers are derived from
/// the file's scales exactly as TFLM derives them, with TFLM's default double rounding. Anything
/// else (an op, a type, a quantization) is refused with the op's index and what is missing.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The TensorFlow Lite flatbuffer (int8 activations and weights).
    pub model: PathBuf,
    /// Where to write the blob (.ghnq).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Also write a test-vector bundle of seeded random inputs with the host runtime's outputs
    /// (labels are the host's top-1: the bundle checks that a device computes what the host
    /// does).
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Samples in the bundle.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Name stored in the blob's metadata (default: the file's stem).
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = read_file(&args.model)?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let imported = tflite::import(&bytes, &name)
        .with_context(|| format!("cannot import {}", args.model.display()))?;
    ghnq_core::atomic::write(&args.out, &imported.blob)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let folded = imported.ops.iter().filter(|(_, _, k)| k.is_none()).count();
    println!(
        "imported {} TFLite ops ({} as runtime ops, {} folded into views or padding) from {}",
        imported.ops.len(),
        imported.ops.len() - folded,
        folded,
        args.model.display()
    );
    for (index, op, kind) in &imported.ops {
        match kind {
            Some(kind) => println!("  op {index:>3} {op:<20} → {kind}"),
            None => println!("  op {index:>3} {op:<20} → (folded)"),
        }
    }
    let model = Model::from_bytes(&imported.blob).context("decoding the imported blob")?;
    println!("{}", Summary::new(&model, imported.blob.len()));
    println!("model blob: {}", args.out.display());
    if imported.float_interface {
        let (i, o) = (imported.input, imported.output);
        println!(
            "float32 interface: the file's QUANTIZE (input scale {}, zero point {}) and \
             DEQUANTIZE (output scale {}, zero point {}) are left to the host: `ghnq run \
             --inputs x.npy` quantizes float32 arrays with them, `--dequantize --out y.npy` \
             writes float32 outputs",
            i.scale, i.zero_point, o.scale, o.zero_point
        );
    }
    if let Some(path) = &args.vectors {
        let bundle = random_vectors(&model, args.samples, args.seed)?;
        ghnq_core::atomic::write(path, &bundle)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "test vectors: {} ({} samples)",
            path.display(),
            args.samples
        );
    }
    Ok(())
}
