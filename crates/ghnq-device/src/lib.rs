//! The host's view of what runs on a device: summaries of model blobs and runs of the edge
//! runtime (the very code devices run, compiled for the host) over test-vector bundles.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod hil;
pub mod random_vectors;
pub mod summary;
pub mod user_io;
pub mod vectors_run;

use std::path::Path;

use anyhow::{Context, Result};

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
