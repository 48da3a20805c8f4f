//! `ghnq inspect`: placeholder filled below.
use std::path::PathBuf;

/// Arguments of `ghnq inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model blob (.ghnq).
    pub model: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not yet")
}
