//! Argument parsing. One file per subcommand; each only parses and calls the library.

use clap::{Parser, Subcommand};

mod bench;
mod bench_tflite;
mod compare;
mod device;
mod eval;
mod export;
mod finetune;
mod gpu_check;
mod graphs;
mod hil;
mod import;
mod inspect;
mod merge;
mod predict;
mod quant_args;
mod quickstart;
mod run;
mod run_log;
mod steps_saved;
mod study;
mod table_out;
mod test_data;
mod train;
mod train_trace;

/// Quantization-robust CNN parameters in one shot, proved on the device.
#[derive(Parser, Debug)]
#[command(name = "ghnq", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job: a shipped GHN predicts an unseen net's parameters; export W8A8 and W4A4 and
    /// run them on the host and on an emulated Cortex-M4.
    Quickstart(quickstart::Args),
    /// Generate an architecture split: write nets as JSON and print their distribution.
    Graphs(graphs::Args),
    /// Validate models on a board (QEMU here): device logits must equal the host's, byte for byte.
    Hil(hil::Args),
    /// Print a model blob: ops, shapes, bit-widths, parameters, MACs, arena and format version.
    Inspect(inspect::Args),
    /// Run a model blob over a test-vector bundle with the host build of the edge runtime.
    Run(run::Args),
    /// Meta-train a GHN-2 on sampled architectures (checkpoints, resume, CSV log).
    Train(train::Args),
    /// Predict the parameters of a net with a trained GHN, save them, report test accuracy.
    Predict(predict::Args),
    /// Accuracy of GHN-predicted parameters over an architecture split (mean ± s.e., max).
    ///
    /// Nets are evaluated in parallel on every core (`RAYON_NUM_THREADS=1` for one, as beside
    /// a training run); the table is the same whatever the thread count.
    Eval(eval::Args),
    /// Benchmarks: `ghn` = prediction time per net and meta-training step time; `tflite` = a
    /// .tflite model on the edge runtime vs TFLM (and LiteRT) and on an emulated board.
    Bench(bench::Args),
    /// Meta-training on a GPU against a CPU run built into the binary (loss curve, predicted
    /// parameters, GHN-QAT W4A4) and its speed-up over this host's CPU.
    GpuCheck(gpu_check::Args),
    /// Calibrate, fold and quantize a net into an integer model blob (+ test vectors).
    Export(export::Args),
    /// Import an int8 TensorFlow Lite model as a model blob (TFLM's integers, bit for bit).
    Import(import::Args),
    /// QAT of one net from the GHN's prediction and from random init: accuracy against steps.
    Finetune(finetune::Args),
    /// Combine the per-net CSVs of sharded `ghnq eval --shard i/n` runs into one table.
    Merge(merge::Args),
    /// Put parameter sources side by side on the same nets: GHN vs random init vs SGD (the
    /// `--csv` files of `ghnq eval --init ghn|random|sgd`), as a table and a bar chart.
    Compare(compare::Args),
    /// The paper's §3 random-initialisation study: train and quantize every (architecture,
    /// initialiser) pair, resumable and shardable; Tables 1 and 2.
    Study(study::Args),
}

pub fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Quickstart(args) => quickstart::run(args),
        Command::Graphs(args) => graphs::run(args),
        Command::Hil(args) => hil::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Run(args) => run::run(args),
        Command::Train(args) => train::run_cmd(args),
        Command::Predict(args) => predict::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Import(args) => import::run(args),
        Command::Bench(args) => bench::run(args),
        Command::GpuCheck(args) => gpu_check::run(args),
        Command::Export(args) => export::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Finetune(args) => finetune::run(args),
        Command::Study(args) => study::run(args),
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand (duplicate names, bad defaults).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
