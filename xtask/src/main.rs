//! Project automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask setup`: installs what a fresh machine lacks (rustup targets, Debian packages),
//!   idempotently: each step first checks whether its work is already done.
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
    /// Install rustup targets and Debian packages the project needs (idempotent).
    Setup,
    /// Setup, then fmt check, clippy -D warnings, all tests, and no_std builds for the MCU targets.
    Test,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run(),
        Command::Test => test::run(),
    }
}
