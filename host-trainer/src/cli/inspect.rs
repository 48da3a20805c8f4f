//! `ghnq inspect model.ghnq`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ghnq_device::{read_file, summary::Summary};
use shared_format::Model;

/// Print a model blob: ops, shapes, bit-widths, parameter and MAC counts, arena and scratch
/// bytes, format version. The blob is fully validated first, exactly as a device would.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model blob (.ghnq).
    pub model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = read_file(&args.model)?;
    let model = Model::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid model blob", args.model.display()))?;
    let summary = Summary::new(&model, bytes.len());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}
