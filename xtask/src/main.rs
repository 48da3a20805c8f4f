//! Project automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask setup`: installs what a fresh machine lacks (rustup targets, Debian packages,
//!   TFLite Micro's reference interpreter in a venv under the target directory),
//!   idempotently: each step first checks whether its work is already done.
//! - `cargo xtask quickstart`: the README's main job — setup, then `ghnq quickstart`.
//! - `cargo xtask test`: the README's test command and CI's only step.
//! - `cargo xtask build-cuda`, `cargo xtask gpu-check`: `--features cuda` built with no network
//!   beyond crates.io (see `cuda.rs`), and the GPU check.
//! - `cargo xtask campaign start|sync|status`: the long GHN meta-training run, resumed from the
//!   committed checkpoint in every session.
//! - `cargo xtask tables start|status|merge`: the paper's tables at 50 nets per split, as
//!   resumable evaluation shards.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod campaign;
mod cuda;

/// The data folder beside the repository (`GHNQ_SHARED_DATA`, else `../shared/data`), as
/// `ghnq_core::shared_data::dir` finds it.
pub(crate) fn shared_data() -> std::path::PathBuf {
    match std::env::var_os("GHNQ_SHARED_DATA") {
        Some(d) if !d.is_empty() => d.into(),
        _ => root().join("../shared/data"),
    }
}

/// The workspace root (xtask sits in it).
pub(crate) fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

mod setup;
mod shell;
mod tables;
mod test;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "GHN-QAT edge SDK automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install rustup targets, Debian packages and the TFLite Micro venv the project needs
    /// (idempotent).
    Setup,
    /// Setup, then fmt check, clippy -D warnings, all tests, and no_std builds for the MCU targets.
    Test,
    /// Setup, then the main job: `ghnq quickstart` with the shipped GHN (arguments after `--`
    /// go to it, e.g. `cargo xtask quickstart -- --dataset cifar10`).
    Quickstart {
        /// Arguments for `ghnq quickstart`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The release `ghnq` with `--features cuda` (burn-cuda, NVRTC), built with no network
    /// beyond crates.io, as `target/release/ghnq-cuda`.
    BuildCuda,
    /// Any cargo command with the CUDA build's patch, e.g. `cargo xtask cuda -- test -p
    /// host-trainer --features cuda`.
    Cuda {
        /// The cargo command and its arguments.
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// On a machine with an NVIDIA GPU: `ghnq gpu-check` (200 float and 50 GHN-QAT meta-training
    /// steps on cuda against a CPU run built into the binary, and the speed-up over the CPU).
    GpuCheck {
        /// A `ghnq` built with `--features cuda` elsewhere (for a GPU host without a Rust
        /// toolchain; running that binary's `gpu-check` directly does the same); default: build
        /// one with `build-cuda`.
        #[arg(long)]
        prebuilt: Option<std::path::PathBuf>,
        /// Arguments for `ghnq gpu-check` (see `ghnq gpu-check --help`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The CIFAR-10 GHNs' long meta-training runs: phases in `checkpoints/<phase>/recipe.txt`,
    /// the current one named in `checkpoints/campaign.txt`.
    Campaign {
        #[command(subcommand)]
        action: CampaignAction,
    },
    /// The paper's tables at 50 nets per split, as resumable `ghnq eval` shards
    /// (`results/ghn-tables/plan.txt`).
    Tables {
        #[command(subcommand)]
        action: TablesAction,
    },
}

#[derive(Subcommand)]
enum TablesAction {
    /// Run the missing shards in the background (nice 15: after the campaign), in plan order.
    Start {
        /// CIFAR-10 directory (default: GHNQ_CIFAR_DIR, else made from ../shared/data/cifar10).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// Threads per shard: its nets are evaluated this many at a time. One while the
        /// campaign trains on the other core; two once the campaign's queue is done.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// What `start` launches: the missing shards, one after another, in the foreground.
    #[command(hide = true)]
    Run {
        #[arg(long)]
        data_dir: std::path::PathBuf,
    },
    /// Shards done per plan line and their CPU time.
    Status,
    /// Each plan line's finished shards into one markdown and one CSV table.
    Merge,
}

#[derive(Subcommand)]
enum CampaignAction {
    /// Run the campaign in the background (nice 10: first of the background jobs; one thread): campaign.txt's current phase
    /// from its newest checkpoint (the committed one if the run directory is behind it, or its
    /// recipe's start), then each phase queued behind it, each synced when it finishes.
    Start {
        /// Run only this phase (a `checkpoints/` directory with a recipe.txt), not the queue.
        #[arg(long)]
        phase: Option<String>,
        /// CIFAR-10 directory (default: GHNQ_CIFAR_DIR, else made from ../shared/data/cifar10).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
    /// What `start` launches: the phases in the foreground, one after another.
    Run {
        /// Run only this phase.
        #[arg(long)]
        phase: Option<String>,
        /// CIFAR-10 directory.
        #[arg(long)]
        data_dir: std::path::PathBuf,
    },
    /// Copy a phase's newest checkpoint and logs from runs/ into checkpoints/ for a commit.
    Sync {
        /// The phase (default: campaign.txt's).
        #[arg(long)]
        phase: Option<String>,
    },
    /// Every phase: whether it runs, its step and last log lines.
    Status,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run(),
        Command::Test => test::run(),
        Command::BuildCuda => cuda::build().map(|_| ()),
        Command::Cuda { args } => cuda::cargo(&args.iter().map(String::as_str).collect::<Vec<_>>()),
        Command::GpuCheck { prebuilt, args } => {
            let ghnq = match prebuilt {
                Some(p) => p,
                None => cuda::build()?,
            };
            let work = root().join("target/gpu-check");
            let mut cmd = vec![
                "gpu-check",
                "--work",
                work.to_str().unwrap_or("gpu-check-run"),
            ];
            cmd.extend(args.iter().map(String::as_str));
            shell::run(&ghnq.to_string_lossy(), &cmd)
        }
        Command::Campaign { action } => match action {
            CampaignAction::Start { phase, data_dir } => campaign::start(phase, data_dir),
            CampaignAction::Run { phase, data_dir } => campaign::run(phase, &data_dir),
            CampaignAction::Sync { phase } => campaign::sync(phase),
            CampaignAction::Status => campaign::status(),
        },
        Command::Tables { action } => match action {
            TablesAction::Start { data_dir, threads } => tables::start(data_dir, threads),
            TablesAction::Run { data_dir } => tables::run(&data_dir),
            TablesAction::Status => tables::status(),
            TablesAction::Merge => tables::merge(),
        },
        Command::Quickstart { args } => {
            setup::run()?;
            // The test command's profile and features, so the two share one build.
            let mut cmd = vec![
                "run",
                "-p",
                "host-trainer",
                "--bin",
                "ghnq",
                "--",
                "quickstart",
            ];
            cmd.extend(args.iter().map(String::as_str));
            shell::run(&shell::cargo(), &cmd)
        }
    }
}
