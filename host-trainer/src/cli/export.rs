//! `ghnq export`: predict (or load) a net's parameters, calibrate, fold, quantize and write an
//! integer model blob (or, with `--format tflite`, an int8 `.tflite` that TFLite Micro runs
//! bit-exactly like the blob) and a test-vector bundle; print float, simulated and integer
//! accuracy.
use std::path::PathBuf;

use anyhow::{Context, Result};
use ghnq_core::arch::Net;
use ghnq_core::cnn::{BnMode, ParamSet};
use ghnq_core::sources;
use ghnq_export::{self as export, Provenance};
use ghnq_ghn::{checkpoint, eval};
use ghnq_quant::config::Precision;
use ghnq_tflite as tflite;
use shared_format::{Model, Rounding, WeightScheme};

/// What `ghnq export` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A model blob for the edge runtime.
    Ghnq,
    /// An int8 TensorFlow Lite flatbuffer that TFLite Micro runs bit-exactly like the blob.
    Tflite,
}

/// Arguments of `ghnq export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// GHN checkpoint that predicts the parameters (directory, `.bpk`, or a ppuda GHN-2 state
    /// dict as `.safetensors`).
    #[arg(long, required_unless_present = "params", conflicts_with = "params")]
    pub ghn: Option<PathBuf>,
    /// Or: parameters from a safetensors file (as `ghnq predict -o` writes).
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// The architecture (JSON, the `arch` text form).
    #[arg(long)]
    pub arch: PathBuf,
    /// Weight and activation bits: w8a8, w4a8, w4a4, w2a2, ...
    #[arg(long, default_value = "w8a8")]
    pub bits: Precision,
    /// Quantization and rounding.
    #[command(flatten)]
    pub quant: super::quant_args::QuantArgs,
    /// Training images for BN statistics and activation ranges.
    #[arg(long, default_value_t = 1000)]
    pub calib: usize,
    /// Output file: the blob, or the `.tflite` with `--format tflite`.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Output format: `ghnq` (model blob) or `tflite` (int8 `.tflite` whose float scales make
    /// TFLite Micro derive the blob's integers: needs --per-channel and 8-bit activations; rounds
    /// double, TFLM's default, and refuses --rounding single).
    #[arg(long, value_enum, default_value = "ghnq")]
    pub format: Format,
    /// Also write a test-vector bundle of the first `--samples` test images, with the host
    /// runtime's logits as the expected ones.
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Samples in the bundle.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Test images for the accuracy comparison.
    #[arg(long, default_value_t = 2000)]
    pub images: usize,
    /// Test images and the device that runs the float nets.
    #[command(flatten)]
    pub test: super::test_data::TestData,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let device = super::device::device(&args.test.device)?;
    let rounding = match (args.format, args.quant.rounding) {
        (Format::Tflite, Some(Rounding::Single)) => anyhow::bail!(
            "--format tflite cannot use --rounding single: a .tflite file carries float scales and \
             no rounding mode, and TFLite Micro's default build requantizes with double rounding, \
             so a single-rounding model would not compute what TFLM computes (omit --rounding: \
             tflite exports round double)"
        ),
        (Format::Tflite, _) => Rounding::Double,
        (Format::Ghnq, r) => r.unwrap_or(Rounding::Single),
    };
    if args.format == Format::Tflite && args.bits.act_bits != 8 {
        anyhow::bail!(
            "--format tflite needs 8-bit activations (TFLite int8 models), not {}: use a8, e.g. \
             --bits w8a8 or w4a8",
            args.bits
        );
    }
    let text = std::fs::read_to_string(&args.arch)
        .with_context(|| format!("reading {}", args.arch.display()))?;
    let net = Net::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.arch.display()))?;
    let mut provenance = Provenance {
        dataset: args.test.dataset.clone(),
        arch_hash: export::fingerprint(text.as_bytes()),
        ..Provenance::default()
    };
    let params = match (&args.ghn, &args.params) {
        (Some(path), _) => {
            let (ghn, _) = checkpoint::load_ghn(path, None, &device)?;
            let (_, file, _) = checkpoint::resolve(path)?;
            provenance.ghn_hash = export::fingerprint(
                &std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
            );
            eval::predict_one_for(&ghn, &net, Some(args.bits), &device)?
        }
        (None, Some(path)) => ParamSet::load_safetensors(&net, path, &device)
            .with_context(|| format!("loading {}", path.display()))?,
        (None, None) => anyhow::bail!("give --ghn <checkpoint> or --params <file.safetensors>"),
    };
    params.check_shapes(&net)?;
    let config = args.quant.config_for_ghn(args.bits, args.ghn.as_deref());
    let data_dir = args.test.data_dir.as_deref();
    let (shape, calib) =
        sources::calibration_batches(&args.test.dataset, data_dir, args.calib, 64, 7)?;
    let (test_shape, test) =
        sources::test_batches(&args.test.dataset, data_dir, args.images, args.test.batch)?;
    anyhow::ensure!(
        shape == test_shape && net.input == shape,
        "net {} takes {} images but the data set has {}",
        net.name,
        net.input,
        shape
    );
    let float = eval::accuracy(&net, &params, shape, &test, &device)?;
    let keep = if args.vectors.is_some() {
        args.samples
    } else {
        0
    };
    let exported = export::export(
        &net,
        params,
        &config,
        rounding,
        shape,
        &calib,
        &provenance,
        &device,
    )
    .with_context(|| format!("exporting {} at {}", net.name, config.label()))?;
    let written = match args.format {
        Format::Ghnq => exported.blob.clone(),
        Format::Tflite => tflite::export(&exported.graph).with_context(|| {
            let hint = if config.scheme == WeightScheme::PerTensorAffine {
                " (weights are per-tensor affine; --per-channel gives TFLite's symmetric ones)"
            } else {
                ""
            };
            format!("writing {} as TFLite{hint}", net.name)
        })?,
    };
    let cmp = export::compare(
        &net,
        &exported.lowered,
        &exported.calibration,
        &config,
        &exported.blob,
        shape,
        &test,
        &device,
        keep,
        &mut export::FloatReference::default(),
    )?;
    let calibrated = {
        let p = &exported.calibration.float_params;
        let mut hits = (0usize, 0usize);
        for b in &test {
            let (x, _) = ghnq_core::train::to_tensors(b, shape, &device);
            let logits = ghnq_core::cnn::forward(&net, p, x, BnMode::Running, false);
            hits.0 += ghnq_core::train::topk_hits(&logits, &b.labels).0;
            hits.1 += b.labels.len();
        }
        100.0 * hits.0 as f64 / hits.1.max(1) as f64
    };
    let model = Model::from_bytes(&exported.blob)?;
    ghnq_core::atomic::write(&args.out, &written)
        .with_context(|| format!("writing {}", args.out.display()))?;
    if let Some(path) = &args.vectors {
        let bytes = export::vectors(&exported.blob, &cmp.kept)?;
        ghnq_core::atomic::write(path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "net": net.name,
                "bits": config.label(),
                "format": format!("{:?}", args.format).to_lowercase(),
                "out": args.out.display().to_string(),
                "out_bytes": written.len(),
                "scheme": format!("{:?}", config.scheme),
                "rounding": format!("{rounding:?}").to_lowercase(),
                "blob_bytes": exported.blob.len(),
                "arena_bytes": model.arena_bytes(),
                "float_top1_batch_bn": float.0,
                "float_top1_calibrated_bn": calibrated,
                "comparison": cmp,
            })
        );
    } else {
        let blob_line = match args.format {
            Format::Ghnq => format!("{} -> {}", net.name, args.out.display()),
            Format::Tflite => {
                println!(
                    "{} -> {} (int8 TFLite, {} bytes; TFLite Micro computes exactly the blob's \
                     output bytes)",
                    net.name,
                    args.out.display(),
                    written.len()
                );
                format!("{}: blob (not written)", net.name)
            }
        };
        println!(
            "{blob_line} ({} bytes, arena {} bytes, {} {:?}, {} rounding, calibrated on {} images)",
            exported.blob.len(),
            model.arena_bytes(),
            config.label(),
            config.scheme,
            format!("{rounding:?}").to_lowercase(),
            exported.calibration.samples
        );
        println!("top-1 on {} test images:", cmp.samples);
        println!(
            "  float, BN on batch statistics (GHN-2 protocol)  {:6.2} %",
            float.0
        );
        println!("  float, calibrated BN                            {calibrated:6.2} %");
        let label = config.label();
        println!(
            "  {:<47}{:6.2} %   (top-5 {:.2} %)",
            format!("{label} float simulation"),
            cmp.sim_top1,
            cmp.sim_top5
        );
        println!(
            "  {:<47}{:6.2} %   (top-5 {:.2} %)",
            format!("{label} integer runtime (edge-runtime, host)"),
            cmp.int_top1,
            cmp.int_top5
        );
        println!(
            "  top-1 agreement {:.2} %; logits identical {:.2} %, max difference {} step(s)",
            cmp.top1_agreement, cmp.exact_logits, cmp.max_step_diff
        );
        if let Some(path) = &args.vectors {
            println!(
                "test vectors: {} ({} samples)",
                path.display(),
                args.samples.min(cmp.samples)
            );
        }
    }
    Ok(())
}
