//! Arguments shared by the commands that evaluate nets on test images (`predict`, `eval`).

use std::path::PathBuf;

/// Where the test images come from, how they are batched, and which device runs the nets.
#[derive(clap::Args, Debug)]
pub struct TestData {
    /// Data set of the test images: fashion-mnist or cifar10.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Directory of the data set files (default: the loader's standard location).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Test batch size (BN uses each batch's statistics, GHN-2 practice; GHN-2: 64).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// cpu (burn flex) or cuda (needs `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}
