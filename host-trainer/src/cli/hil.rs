//! `ghnq hil --board NAME --model m.ghnq --vectors v.ghnv [--json]`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use firmware::host::{self, BOARDS, Entry};
use ghnq_device::hil;

/// Validate models on a board: build its firmware with the models and test vectors embedded,
/// boot it under QEMU, and print device top-1/top-5, disagreements with the host runtime (must
/// be 0), instructions per inference, MACs per instruction, and the firmware's flash and RAM.
/// Exits non-zero unless every logit matched.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Board. Emulated: mps2-an386, mps2-an500, lm3s6965evb, microbit, mps2-an505, riscv-virt,
    /// aarch64-virt, aarch64-linux. Real (with --port): nrf52840-dk, rp-pico.
    #[arg(long)]
    pub board: String,
    /// Model blob (.ghnq); repeat with --vectors to validate several models in one boot.
    #[arg(long, required = true)]
    pub model: Vec<PathBuf>,
    /// Test-vector bundle (.ghnv) of the model at the same position.
    #[arg(long, required = true)]
    pub vectors: Vec<PathBuf>,
    /// Serial port of a real board flashed with the streaming firmware (built by this command;
    /// its ELF path is printed): the samples are streamed over the UART.
    #[arg(long)]
    pub port: Option<PathBuf>,
    /// Emulated boards: embed only the model and stream the samples over the UART (QEMU wires
    /// it to a local socket) instead of embedding the vectors.
    #[arg(long)]
    pub stream: bool,
    /// Baud rate for --port.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// SDK checkout holding `boards/` (defaults to the one ghnq was built from).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
    /// Wall-clock limit of the boot, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Report as defmt frames decoded by defmt-print (QEMU Cortex-M and RISC-V boards).
    #[arg(long)]
    pub defmt: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let Some(board) = host::board(&args.board) else {
        let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
        bail!(
            "unknown board `{}`; boards: {}",
            args.board,
            names.join(", ")
        );
    };
    if args.model.len() != args.vectors.len() {
        bail!(
            "{} --model but {} --vectors: give one bundle per model",
            args.model.len(),
            args.vectors.len()
        );
    }
    let sdk = args.sdk.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    });
    let entries: Vec<Entry> = args
        .model
        .iter()
        .zip(&args.vectors)
        .map(|(m, v)| {
            Ok(Entry {
                model: std::path::absolute(m)?,
                vectors: std::path::absolute(v)?,
            })
        })
        .collect::<std::io::Result<_>>()?;
    let timeout = Duration::from_secs(args.timeout);
    let streaming = args.stream || args.port.is_some();
    if streaming && entries.len() != 1 {
        bail!("streaming validates one model at a time; give one --model and one --vectors");
    }
    let report = match (&args.port, streaming) {
        (Some(port), _) => hil::run_port(&sdk, board, &entries[0], port, args.baud)?,
        (None, true) => hil::run_streaming(&sdk, board, &entries[0], timeout)?,
        (None, false) => hil::run(&sdk, board, &entries, timeout, args.defmt)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:<14} {:<10} {:<16} {:>7} {:>11} {:>11} {:>8} {:>14} {:>10} {:>9} {:>8}",
            "board",
            "core",
            "model",
            "samples",
            "top-1",
            "top-5",
            "disagree",
            "per inference",
            "MACs/unit",
            "flash",
            "RAM"
        );
        for r in &report.rows {
            println!(
                "{:<14} {:<10} {:<16} {:>7} {:>5}/{:<5} {:>5}/{:<5} {:>8} {:>14} {:>10.3} {:>9} {:>8}",
                r.board,
                report.core,
                r.model,
                r.samples,
                r.top1,
                r.host_top1,
                r.top5,
                r.host_top5,
                r.disagreements,
                r.per_inference,
                r.macs_per_unit,
                r.flash,
                r.ram
            );
        }
        if let Some(r) = report.rows.first() {
            println!(
                "(top-k as device/host; per inference in {}; flash budget {} B, RAM budget {} B; {})",
                r.unit,
                report.flash_budget,
                report.ram_budget,
                report.elf.display()
            );
        }
        for r in report.rows.iter().filter(|r| !r.profile.is_empty()) {
            println!(
                "{} by op class ({} of the first sample): {}",
                r.model,
                r.unit,
                ghnq_device::op_profile::describe(&r.profile)
            );
        }
        for failure in &report.failures {
            println!("failed: {failure}");
        }
    }
    if !report.passed() {
        bail!(
            "{}: the device did not reproduce the host's logits ({})",
            report.board,
            report.status
        );
    }
    Ok(())
}
