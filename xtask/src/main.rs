//! Project automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask setup`: installs what a fresh machine lacks (rustup targets, Debian packages,
//!   TFLite Micro's reference interpreter in a venv under the target directory),
//!   idempotently: each step first checks whether its work is already done.
//! - `cargo xtask quickstart`: the README's main job — setup, then `ghnq quickstart`.
//! - `cargo xtask test`: the README's test command and CI's only step.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod setup;
mod shell;
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
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run(),
        Command::Test => test::run(),
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
