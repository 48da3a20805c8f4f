//! `ghnq gpu-check`: does meta-training on a GPU learn what it learns on the CPU, and how much
//! faster is it?
//!
//! One command, one binary, for a GPU host that may have no Rust toolchain, no network and
//! little time: the CPU run it compares against is built into the binary
//! (`host-trainer/gpu-check/cpu-reference.json`, made by `--make-reference` on a CPU). Both runs
//! start from the same seeded GHN, initialised on the CPU and moved to the device, and see the
//! same nets, images and dropout masks (all drawn on the host), so they differ only by float
//! arithmetic: summation order, and TF32 where the GPU's matmuls use it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Parser;
use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::sources;
use ghnq_ghn::model::{Ghn, GhnConfig};
use ghnq_ghn::{checkpoint, eval};
use serde::{Deserialize, Serialize};

/// The CPU run every check compares with (`ghnq gpu-check --device cpu --make-reference`).
const REFERENCE: &str = include_str!("../../gpu-check/cpu-reference.json");

/// The configuration the check trains at: small enough for a few minutes on one GPU, large
/// enough to exercise every kernel of a meta-training step (the `tiny` split's nets, a GHN-2
/// at hidden size 32).
const SPLIT: &str = "tiny";
const META_BATCH: usize = 2;
const BATCH: usize = 16;
const HIDDEN: usize = 32;
const SEED: u64 = 2026;
/// Steps compared one by one, and the checkpoint whose prediction is compared. Later, float reordering alone has moved two runs apart: runs are chaotic.
const EARLY: usize = 20;
/// Later steps are compared as mean losses over windows of this many steps: single steps jitter
/// with every net and batch, window means follow what the GHN has learned.
const WINDOW: usize = 50;

/// Tolerances, each against the built-in CPU reference unless it says otherwise. The CPU's two
/// engines (burn's autodiff and the native one: the same arithmetic in another order) set the
/// scale: `ghnq gpu-check --device cpu --engine native` measures them (figures in the README).
mod tolerance {
    /// This host's CPU, same seeded initialisation, same code: only SIMD width may differ
    /// from the machine that made the reference (CPU engines: 0).
    pub const CPU_INIT: f64 = 1e-4;
    /// Device vs this host's CPU, same GHN weights, one forward: float reordering, and TF32
    /// (10-bit mantissa, relative error about 5e-4 per product) where the GPU's matmuls use it.
    pub const DEVICE_INIT: f64 = 5e-3;
    /// Step 0 (same weights, same batch): loss, then GHN gradient norm, relative. The backward
    /// pass's check; not sensitive to TF32's precision.
    pub const FIRST_LOSS: f64 = 2e-3;
    pub const FIRST_GRAD_NORM: f64 = 1e-2;
    /// GHN-QAT's step 0 gradient norm: a value on a rounding boundary may round either way
    /// under any reordering and flips that value's quantized code (CPU engines: 4.1e-3).
    pub const FIRST_GRAD_NORM_QAT: f64 = 5e-2;
    /// Each of the first [`super::EARLY`] float steps, once the runs' weights have drifted
    /// apart: loss, then gradient norm (CPU engines: 5.6e-5 and 8.2e-3). GHN-QAT's are not
    /// compared step by step: with the drift, quantizers' codes flip and single steps' gradient
    /// norms differ by tens of percent (CPU engines: 0.43), while their means agree.
    pub const EARLY_LOSS: f64 = 2e-2;
    pub const EARLY_GRAD_NORM: f64 = 0.2;
    /// The prediction after the early steps, relative to how far training moved it (CPU
    /// engines: 0.02).
    pub const EARLY_PARAMS: f64 = 0.25;
    /// A window's mean loss, relative (CPU engines: at most 9e-4).
    pub const WINDOW_LOSS: f64 = 0.03;
}

/// Arguments of `ghnq gpu-check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The device to check.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Float meta-training steps (the reference has 200; fewer, down to 20, compares the steps
    /// and windows they cover).
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// GHN-QAT W4A4 steps after the float ones (the reference has 50).
    #[arg(long, default_value_t = 50)]
    pub qat_steps: usize,
    /// Engine of the checked runs: burn (the reference's, and the only one on a GPU) or native
    /// (the CPU's fast engine: checking it against the reference measures how far float
    /// reordering alone moves a run, which is what the tolerances are set from).
    #[arg(long, default_value = "burn")]
    pub engine: String,
    /// Skip the timing of `ghnq bench ghn` on the device and on this host's CPU.
    #[arg(long)]
    pub no_bench: bool,
    /// Working directory for the runs' checkpoints and logs.
    #[arg(long, default_value = "gpu-check-run")]
    pub work: PathBuf,
    /// Write the runs as a new reference to this file instead of checking (on a CPU:
    /// `--device cpu`).
    #[arg(long)]
    pub make_reference: Option<PathBuf>,
}

/// What a run produced, and what the reference holds.
#[derive(Serialize, Deserialize, Debug)]
struct Record {
    /// How the record was made.
    made_by: String,
    /// The check net's parameters predicted by the seeded, untrained GHN.
    init_params: Vec<f32>,
    /// Every float step's loss and GHN gradient norm.
    float: Vec<StepLog>,
    /// The check net's parameters predicted after [`EARLY`] float steps.
    early_params: Vec<f32>,
    /// Every GHN-QAT W4A4 step's loss and gradient norm (from the untrained GHN).
    qat: Vec<StepLog>,
    /// Milliseconds per float step, for the speed-up line.
    float_ms_per_step: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
struct StepLog {
    loss: f64,
    grad_norm: f64,
}

pub fn run(args: Args) -> Result<()> {
    anyhow::ensure!(
        args.steps >= EARLY,
        "--steps {}: the check compares the prediction after step {EARLY}, so it needs at least \
         {EARLY} float steps",
        args.steps
    );
    let device = super::device::device(&args.device)?;
    let on_cpu = ghnq_quant::sim_native::is_cpu(&device);
    std::fs::create_dir_all(&args.work)
        .with_context(|| format!("creating {}", args.work.display()))?;
    let net = check_net()?;
    eprintln!(
        "gpu-check on {}: {} float steps and {} GHN-QAT W4A4 steps, meta-batch {META_BATCH} x \
         batch {BATCH}, '{SPLIT}' nets, synthetic images; check net {} ({} parameters)",
        args.device,
        args.steps,
        args.qat_steps,
        net.name,
        net.param_count()
    );

    let cpu = Device::flex();
    let init_dir = args.work.join("init");
    seeded_ghn(&init_dir, &cpu)?;
    let cpu_init = predict(&init_dir, &net, &cpu)?;
    let device_init = if on_cpu {
        cpu_init.clone()
    } else {
        predict(&init_dir, &net, &device)?
    };

    let float_dir = args.work.join(format!("float-{}", args.device));
    let float_ms = train(
        &args,
        &init_dir,
        &float_dir,
        args.steps,
        &["--checkpoint-every", &EARLY.to_string()],
    )?;
    let float = step_logs(&float_dir)?;
    let early_ghn = float_dir.join(format!("ghn-step{EARLY}.bpk"));
    let early_params = predict(&early_ghn, &net, &device)?;
    let qat_dir = args.work.join(format!("qat-w4a4-{}", args.device));
    let qat = if args.qat_steps > 0 {
        // From the untrained GHN both runs share, so that its first step compares the same
        // weights.
        train(
            &args,
            &init_dir,
            &qat_dir,
            args.qat_steps,
            &["--qat", "w4a4"],
        )?;
        step_logs(&qat_dir)?
    } else {
        Vec::new()
    };
    let record = Record {
        made_by: format!(
            "ghnq {} gpu-check --device {} --engine {} --steps {} --qat-steps {}",
            env!("CARGO_PKG_VERSION"),
            args.device,
            args.engine,
            args.steps,
            args.qat_steps
        ),
        init_params: device_init.clone(),
        float,
        early_params,
        qat,
        float_ms_per_step: float_ms,
    };

    if let Some(out) = &args.make_reference {
        let text = serde_json::to_string(&record)? + "\n";
        ghnq_core::atomic::write(out, text.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        println!("reference written to {}", out.display());
        return Ok(());
    }
    let reference: Record =
        serde_json::from_str(REFERENCE).context("the built-in CPU reference")?;
    let mut checks = Checks::default();
    checks.relative(
        "this CPU's untrained prediction vs the reference's (same seed, same code)",
        &cpu_init,
        &reference.init_params,
        None,
        tolerance::CPU_INIT,
    );
    if !on_cpu {
        checks.relative(
            &format!(
                "{}'s untrained prediction vs this CPU's (same weights)",
                args.device
            ),
            &device_init,
            &cpu_init,
            None,
            tolerance::DEVICE_INIT,
        );
    }
    checks.steps("float", &record.float, &reference.float, false);
    if record.float.len() >= EARLY {
        checks.relative(
            &format!("prediction after {EARLY} float steps"),
            &record.early_params,
            &reference.early_params,
            Some(&reference.init_params),
            tolerance::EARLY_PARAMS,
        );
    }
    checks.steps("GHN-QAT W4A4", &record.qat, &reference.qat, true);
    if !args.no_bench {
        bench(&args.device)?;
    }
    println!(
        "float meta-training at this configuration: {float_ms:.0} ms per step on {} ({:.0} ms \
         per step in the reference run: {})",
        args.device, reference.float_ms_per_step, reference.made_by
    );
    checks.finish()
}

/// The first net of the check split: the one whose predicted parameters are compared.
fn check_net() -> Result<Net> {
    let mut nets = sources::eval_nets(SPLIT, ImageShape::CIFAR10, 10, 1, SEED)?;
    nets.pop().context("the check split is empty")
}

/// Writes the seeded GHN both runs start from. It is initialised on the CPU, whose random
/// numbers do not depend on the device being checked.
fn seeded_ghn(dir: &Path, cpu: &Device) -> Result<()> {
    cpu.seed(SEED);
    let ghn = Ghn::new(&GhnConfig::with_hidden(HIDDEN, 10), cpu);
    checkpoint::save(dir, &ghn, None, Default::default())?;
    Ok(())
}

/// The check net's parameters as `ghn_dir`'s GHN predicts them on `device`, flattened.
fn predict(ghn_dir: &Path, net: &Net, device: &Device) -> Result<Vec<f32>> {
    let (ghn, _) = checkpoint::load_ghn(ghn_dir, None, device)?;
    let params = eval::predict_one(&ghn, net, device)?;
    let mut flat = Vec::new();
    for (name, _, data) in params.named_tensors(net) {
        flat.extend(
            data.try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?,
        );
    }
    Ok(flat)
}

/// `ghnq train` from the checkpoint `from` for `steps` steps at the check's configuration;
/// returns the mean milliseconds per step.
fn train(args: &Args, from: &Path, out: &Path, steps: usize, extra: &[&str]) -> Result<f64> {
    #[derive(Parser)]
    struct Train {
        #[command(flatten)]
        args: super::train::Args,
    }
    let _ = std::fs::remove_dir_all(out);
    let steps_text = steps.to_string();
    let seed = SEED.to_string();
    let (mb, b, hid) = (
        META_BATCH.to_string(),
        BATCH.to_string(),
        HIDDEN.to_string(),
    );
    let mut argv = vec![
        "train",
        "--device",
        &args.device,
        "--engine",
        &args.engine,
        "--from",
        from.to_str().context("non-UTF-8 path")?,
        "--out",
        out.to_str().context("non-UTF-8 path")?,
        "--split",
        SPLIT,
        "--dataset",
        "synthetic",
        "--meta-batch",
        &mb,
        "--batch",
        &b,
        "--hidden",
        &hid,
        "--seed",
        &seed,
        "--max-steps",
        &steps_text,
        "--epochs",
        "1000",
        "--val-nets",
        "0",
        "--quiet",
    ];
    argv.extend_from_slice(extra);
    let t = std::time::Instant::now();
    super::train::run_cmd(Train::try_parse_from(argv)?.args)
        .with_context(|| format!("training into {}", out.display()))?;
    Ok(t.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64)
}

/// The `loss` and `grad_norm` columns of a run's train.csv.
fn step_logs(dir: &Path) -> Result<Vec<StepLog>> {
    let path = dir.join("train.csv");
    let loss = super::run_log::column(&path, "loss")?;
    let grad = super::run_log::column(&path, "grad_norm")?;
    Ok(loss
        .into_iter()
        .zip(grad)
        .map(|((_, loss), (_, grad_norm))| StepLog { loss, grad_norm })
        .collect())
}

/// `ghnq bench ghn` at its defaults (meta-batch 8, batch 64) on the device, then on this host's
/// CPU with every core and the native engine, and their ratio.
fn bench(device: &str) -> Result<()> {
    #[derive(Parser)]
    struct Bench {
        #[command(flatten)]
        args: super::bench::Args,
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores = cores.to_string();
    let time = |argv: Vec<&str>| -> Result<f64> {
        let records = super::bench::ghn(&Bench::try_parse_from(argv)?.args)?;
        records
            .first()
            .and_then(|r| r["train_step_s_median"].as_f64())
            .context("bench ghn returned no step time")
    };
    let common = ["bench", "ghn", "--steps", "3", "--count", "5"];
    let mut on_device = common.to_vec();
    on_device.extend(["--device", device, "--engine", "burn", "--threads", "1"]);
    let gpu = time(on_device)?;
    let mut on_cpu = common.to_vec();
    on_cpu.extend(["--device", "cpu", "--engine", "native", "--threads", &cores]);
    let cpu = time(on_cpu)?;
    println!(
        "meta-training step (meta-batch 8, batch 64, CIFAR-10 shapes): {gpu:.3} s on {device}, \
         {cpu:.3} s on this host's CPU ({cores} threads, native engine): {:.1}x",
        cpu / gpu
    );
    Ok(())
}

/// Pass/fail lines, printed as they are decided.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn report(&mut self, what: &str, value: f64, limit: f64) {
        let ok = value <= limit;
        println!(
            "{} {what}: {value:.2e} (limit {limit:.1e})",
            if ok { "PASS" } else { "FAIL" }
        );
        if !ok {
            self.failed.push(what.to_string());
        }
    }

    /// ‖got − want‖ relative to ‖want‖, or to ‖want − start‖ (the distance a run moved) when
    /// `start` is given.
    fn relative(
        &mut self,
        what: &str,
        got: &[f32],
        want: &[f32],
        start: Option<&[f32]>,
        limit: f64,
    ) {
        if got.len() != want.len() || start.is_some_and(|s| s.len() != want.len()) {
            println!(
                "FAIL {what}: {} values, the reference has {}",
                got.len(),
                want.len()
            );
            self.failed.push(what.to_string());
            return;
        }
        let zero = vec![0.0; want.len()];
        let scale = distance(want, start.unwrap_or(&zero));
        self.report(
            &format!(
                "{what}: L2 distance relative to {}",
                if start.is_some() {
                    "the distance the reference moved from the untrained prediction"
                } else {
                    "the reference's norm"
                }
            ),
            distance(got, want) / scale.max(1e-30),
            limit,
        );
    }

    /// Step 0, the first [`EARLY`] steps one by one (the largest relative difference of loss
    /// and of gradient norm; not for GHN-QAT, see [`tolerance::EARLY_LOSS`]), then every [`WINDOW`] steps' mean loss.
    fn steps(&mut self, what: &str, got: &[StepLog], want: &[StepLog], qat: bool) {
        let early = got.len().min(want.len()).min(EARLY);
        let worst = |f: fn(&StepLog) -> f64| {
            got[..early]
                .iter()
                .zip(&want[..early])
                .map(|(g, w)| (f(g) - f(w)).abs() / f(w).abs().max(1e-12))
                .fold(0.0f64, f64::max)
        };
        if early > 0 {
            let (g, w) = (got[0], want[0]);
            let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
            self.report(
                &format!(
                    "{what} loss at step 0: {:.5} vs {:.5}, relative difference",
                    g.loss, w.loss
                ),
                rel(g.loss, w.loss),
                tolerance::FIRST_LOSS,
            );
            self.report(
                &format!(
                    "{what} gradient norm at step 0: {:.5} vs {:.5}, relative difference",
                    g.grad_norm, w.grad_norm
                ),
                rel(g.grad_norm, w.grad_norm),
                if qat {
                    tolerance::FIRST_GRAD_NORM_QAT
                } else {
                    tolerance::FIRST_GRAD_NORM
                },
            );
        }
        if early > 0 && !qat {
            self.report(
                &format!("{what} loss, steps 0..{early}, largest relative difference"),
                worst(|s| s.loss),
                tolerance::EARLY_LOSS,
            );
            self.report(
                &format!("{what} gradient norm, steps 0..{early}, largest relative difference"),
                worst(|s| s.grad_norm),
                tolerance::EARLY_GRAD_NORM,
            );
        }
        for (k, (g, w)) in got
            .chunks_exact(WINDOW)
            .zip(want.chunks_exact(WINDOW))
            .enumerate()
        {
            let mean = |v: &[StepLog]| v.iter().map(|s| s.loss).sum::<f64>() / v.len() as f64;
            let (g, w) = (mean(g), mean(w));
            self.report(
                &format!(
                    "{what} mean loss, steps {}..{}: {g:.4} vs {w:.4}, relative difference",
                    k * WINDOW,
                    (k + 1) * WINDOW
                ),
                (g - w).abs() / w.abs().max(1e-12),
                tolerance::WINDOW_LOSS,
            );
        }
    }

    fn finish(self) -> Result<()> {
        if self.failed.is_empty() {
            println!("gpu-check: every check passed");
            return Ok(());
        }
        bail!(
            "gpu-check: {} check(s) failed: {}",
            self.failed.len(),
            self.failed.join("; ")
        )
    }
}

/// ‖a − b‖.
fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(loss: &[f64], grad: f64) -> Vec<StepLog> {
        loss.iter()
            .map(|&loss| StepLog {
                loss,
                grad_norm: grad,
            })
            .collect()
    }

    #[test]
    fn a_wrong_gradient_at_step_0_fails_and_a_reordered_one_passes() {
        let want = logs(&[2.3; 60], 0.8);
        let mut checks = Checks::default();
        checks.steps("float", &logs(&[2.3; 60], 0.8 * (1.0 + 1e-4)), &want, false);
        assert!(checks.failed.is_empty(), "{:?}", checks.failed);
        checks.steps("float", &logs(&[2.3; 60], 0.9), &want, false);
        assert_eq!(checks.failed.len(), 1, "{:?}", checks.failed);
        assert!(checks.failed[0].contains("gradient norm at step 0"));
        assert!(checks.finish().is_err());
    }

    #[test]
    fn a_run_that_stops_learning_fails_its_window() {
        let mut want: Vec<f64> = vec![2.3; 50];
        want.extend([2.0; 50]);
        let mut got = want.clone();
        got[50..].fill(2.3);
        let mut checks = Checks::default();
        checks.steps("float", &logs(&got, 0.8), &logs(&want, 0.8), false);
        assert_eq!(checks.failed.len(), 1, "{:?}", checks.failed);
        assert!(checks.failed[0].contains("steps 50..100"));
    }

    #[test]
    fn predictions_are_compared_to_the_distance_moved() {
        let (start, want) = ([1.0f32, 1.0], [2.0f32, 1.0]);
        let mut checks = Checks::default();
        // 0.2 of the distance moved (1.0), though 0.09 of the reference's norm.
        checks.relative("p", &[2.2, 1.0], &want, Some(&start), 0.1);
        checks.relative("q", &[2.2, 1.0], &want, None, 0.1);
        assert_eq!(checks.failed.len(), 1, "{:?}", checks.failed);
        assert!(checks.failed[0].starts_with("p:"));
    }

    #[test]
    fn the_built_in_reference_covers_the_check() {
        let r: Record = serde_json::from_str(REFERENCE).unwrap();
        assert_eq!(r.float.len(), 200);
        assert_eq!(r.qat.len(), 50);
        assert_eq!(r.init_params.len(), r.early_params.len());
        assert_eq!(
            r.init_params.len(),
            check_net().unwrap().param_count(),
            "the reference predicted another net"
        );
    }
}
