//! Argument parsing. One file per subcommand; each only parses and calls the library.

use clap::{Parser, Subcommand};

mod inspect;

/// Quantization-robust CNN parameters in one shot, proved on the device.
#[derive(Parser, Debug)]
#[command(name = "ghnq", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a model blob: ops, shapes, bit-widths, parameters, MACs, arena and format version.
    Inspect(inspect::Args),
}

pub fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Inspect(args) => inspect::run(args),
    }
}
