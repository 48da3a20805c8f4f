//! `ghnq quickstart`: the SDK's main job in one command. A shipped GHN predicts every parameter
//! of an unseen MCU-sized net; the net is exported at W8/A8 and W4/A4, run on the host build of
//! the runtime and on an emulated Cortex-M4, and the accuracies are printed side by side.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use firmware::host::{self as fw, Entry};
use ghnq_core::arch::Net;
use ghnq_core::sources;
use ghnq_device::hil;
use ghnq_export::{self as export, Provenance};
use ghnq_ghn::{checkpoint, eval};
use ghnq_quant::config::Precision;
use shared_format::Model;

/// Arguments of `ghnq quickstart`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Data set: fashion-mnist (the built-in default) or cifar10 (point --data-dir or
    /// GHNQ_CIFAR_DIR at cifar-10-batches-bin).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Directory of the data set files (default: the loader's standard location).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// GHN checkpoint (default: the one shipped for the data set, `checkpoints/<dataset>`).
    #[arg(long)]
    pub ghn: Option<PathBuf>,
    /// The net (default: net 0 of the `test` split, which no GHN trained on).
    #[arg(long)]
    pub arch: Option<PathBuf>,
    /// Bit-widths to export.
    #[arg(long, default_value = "w8a8,w4a4", value_delimiter = ',')]
    pub bits: Vec<Precision>,
    /// Emulated board that runs the blobs; `none` skips the device.
    #[arg(long, default_value = "mps2-an386")]
    pub board: String,
    /// Test images on the host.
    #[arg(long, default_value_t = 1000)]
    pub images: usize,
    /// Test images on the device (each is a full inference under emulation).
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    /// Where the blobs and test vectors go.
    #[arg(long, default_value = "quickstart")]
    pub out: PathBuf,
    /// Quantization and rounding.
    #[command(flatten)]
    pub quant: super::quant_args::QuantArgs,
}

fn sdk_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

pub fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    let device = burn::tensor::Device::flex();
    let ghn_path = args
        .ghn
        .clone()
        .unwrap_or_else(|| sdk_root().join("checkpoints").join(&args.dataset));
    anyhow::ensure!(
        ghn_path.exists(),
        "no GHN checkpoint at {}: this SDK checkout ships none for {} yet; train one \
         (`ghnq train`, README) and pass --ghn <dir>",
        ghn_path.display(),
        args.dataset
    );
    let (ghn, state) = checkpoint::load_ghn(&ghn_path, None, &device)
        .with_context(|| format!("loading the GHN from {}", ghn_path.display()))?;
    let (_, file, _) = checkpoint::resolve(&ghn_path)?;
    let trained = super::quant_args::trained_for(&ghn_path);
    let ghn_hash = export::fingerprint(&std::fs::read(&file)?);
    let data_dir = args.data_dir.as_deref();
    let (shape, test) = sources::test_batches(&args.dataset, data_dir, args.images, 64)?;
    let net = match &args.arch {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Net::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => sources::eval_nets("test", shape, ghn.config.num_classes, 1, 0)?.remove(0),
    };
    println!(
        "net {} ({} parameters, {:.1} M MACs) on {}; GHN {} (step {})",
        net.name,
        net.param_count(),
        net.macs() as f64 / 1e6,
        args.dataset,
        ghn_path.display(),
        state.step
    );
    let t = Instant::now();
    let params = eval::predict_one(&ghn, &net, &device)?;
    let _ = params.named_tensors(&net);
    let predict_ms = t.elapsed().as_secs_f64() * 1e3;
    let (float1, _) = eval::accuracy(&net, &params, shape, &test, &device)?;
    let (_, calib) = sources::calibration_batches(&args.dataset, data_dir, 500, 64, 7)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    struct Line {
        bits: Precision,
        blob_bytes: usize,
        arena: usize,
        sim: f64,
        int: f64,
        agreement: f64,
        entry: Entry,
    }
    let mut lines = Vec::new();
    // The float net's calibration and logits, computed at the first bit-width for the others.
    let mut shared = export::FloatReference::default();
    for &bits in &args.bits {
        let config = args.quant.config_for(bits, &trained);
        let provenance = Provenance {
            dataset: args.dataset.clone(),
            arch_hash: export::fingerprint(net.to_json().as_bytes()),
            ghn_hash,
            calibration_samples: 0,
        };
        // A bit-conditioned GHN predicts for each bit-width; others give the same parameters.
        let params = if ghn.config.bit_conditioned {
            shared = export::FloatReference::default();
            eval::predict_one_for(&ghn, &net, Some(bits), &device)?
        } else {
            params.clone()
        };
        let (ex, c) = export::export_and_compare(
            &net,
            params,
            &config,
            args.quant.rounding(),
            shape,
            &calib,
            &test,
            &provenance,
            &device,
            args.samples,
            &mut shared,
        )?;
        let model = Model::from_bytes(&ex.blob)?;
        let blob_path = args.out.join(format!("{}-{bits}.ghnq", net.name));
        let vectors_path = args.out.join(format!("{}-{bits}.ghnv", net.name));
        ghnq_core::atomic::write(&blob_path, &ex.blob)?;
        ghnq_core::atomic::write(&vectors_path, &export::vectors(&ex.blob, &c.kept)?)?;
        lines.push(Line {
            bits,
            blob_bytes: ex.blob.len(),
            arena: model.arena_bytes(),
            sim: c.sim_top1,
            int: c.int_top1,
            agreement: c.top1_agreement,
            entry: Entry {
                model: std::path::absolute(&blob_path)?,
                vectors: std::path::absolute(&vectors_path)?,
            },
        });
    }

    let device_report = if args.board == "none" {
        None
    } else {
        let board =
            fw::board(&args.board).with_context(|| format!("unknown board `{}`", args.board))?;
        let entries: Vec<Entry> = lines.iter().map(|l| l.entry.clone()).collect();
        eprintln!(
            "building the validation firmware for {} and booting it in QEMU ...",
            board.name
        );
        Some(hil::run(
            &sdk_root(),
            board,
            &entries,
            Duration::from_secs(600),
            false,
        )?)
    };

    println!(
        "parameters predicted in {predict_ms:.0} ms; top-1 on {} test images (host), {} on the device",
        args.images, args.samples
    );
    use ghnq_core::table::Table;
    let mut table = Table::new([
        "bits",
        "float %",
        "sim %",
        "int (host) %",
        "agree %",
        "device (same samples)",
        "blob B",
        "arena B",
    ])
    .labels_then_numbers(1)
    .min_widths(&[6, 8, 8, 12, 8, 22, 8, 8]);
    table.push(["float".to_string(), format!("{float1:.2}")]);
    for (k, l) in lines.iter().enumerate() {
        let dev = match &device_report {
            Some(r) => r.rows.get(k).map_or("-".into(), |row| {
                format!(
                    "{}/{} = host, {} differ",
                    row.top1, row.samples, row.disagreements
                )
            }),
            None => "-".into(),
        };
        table.push([
            l.bits.to_string(),
            String::new(),
            format!("{:.2}", l.sim),
            format!("{:.2}", l.int),
            format!("{:.2}", l.agreement),
            dev,
            l.blob_bytes.to_string(),
            l.arena.to_string(),
        ]);
    }
    print!("{}", table.text());
    if let Some(r) = &device_report {
        if let Some(row) = r.rows.first() {
            println!(
                "{} ({}): {} {} per inference at {}; blobs and vectors in {}",
                r.board,
                r.core,
                row.per_inference,
                row.unit,
                lines[0].bits,
                args.out.display()
            );
        }
        anyhow::ensure!(
            r.passed(),
            "{}: the device did not reproduce the host's logits ({})",
            r.board,
            r.status
        );
    }
    println!("done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
