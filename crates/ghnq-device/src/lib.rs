//! The host's view of what runs on a device: summaries of model blobs and runs of the edge
//! runtime (the very code devices run, compiled for the host) over test-vector bundles.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod hil;
pub mod op_profile;
pub mod random_vectors;
pub mod summary;
pub mod user_io;
pub mod vectors_run;

use std::path::{Path, PathBuf};

/// What went wrong running a model on the host or on a board.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A model blob that does not decode.
    #[error("{} is not a valid model blob: {source}", path.display())]
    Blob {
        /// The blob's file.
        path: PathBuf,
        /// What the decoder found.
        #[source]
        source: shared_format::FormatError,
    },
    /// A test-vector bundle that does not decode.
    #[error("{} is not a valid test-vector bundle: {source}", path.display())]
    Bundle {
        /// The bundle's file.
        path: PathBuf,
        /// What the decoder found.
        #[source]
        source: shared_format::FormatError,
    },
    /// A bundle made from another blob (its CRC names another model).
    #[error("{} was made for another model than {}", bundle.display(), model.display())]
    OtherModel {
        /// The bundle's file.
        bundle: PathBuf,
        /// The model's file.
        model: PathBuf,
    },
    /// A bundle whose tensors have other sizes than the model's.
    #[error(
        "the bundle holds {bundle_input}-byte inputs and {bundle_output}-logit outputs but the \
         model takes {model_input} and gives {model_output}: it was made for another model"
    )]
    BundleShape {
        /// The bundle's input bytes.
        bundle_input: usize,
        /// The bundle's output logits.
        bundle_output: usize,
        /// The model's input bytes.
        model_input: usize,
        /// The model's output logits.
        model_output: usize,
    },
    /// The host build of the edge runtime refused the model or an input.
    #[error("host run: {0}")]
    Runtime(#[from] edge_runtime::Error),
    /// The host run of one model failed.
    #[error("host run of {}: {source}", model.display())]
    HostRun {
        /// The model's file.
        model: PathBuf,
        /// Why.
        #[source]
        source: Box<DeviceError>,
    },
    /// A test vector that does not fit the model's tensors.
    #[error("building a test-vector bundle: {0}")]
    Vectors(#[from] shared_format::BuildError),
    /// The firmware could not be built for the board.
    #[error(transparent)]
    Firmware(#[from] firmware::host::BuildError),
    /// The emulator could not boot the firmware, or the boot went wrong.
    #[error(transparent)]
    Qemu(#[from] firmware::host::qemu::QemuError),
    /// The firmware ELF's sections could not be read.
    #[error("reading the sizes of {}: {source}", elf.display())]
    Elf {
        /// The ELF file.
        elf: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The board has no streaming UART.
    #[error(
        "{0} has no streaming UART in this SDK; boards that stream: mps2-an386, mps2-an500, \
         nrf52840-dk, rp-pico"
    )]
    NoStreaming(String),
    /// The firmware stopped before its final report.
    #[error("{board} stopped without a final report (exit status {code:?}):\n{stdout}\n{stderr}")]
    NoReport {
        /// The board.
        board: String,
        /// The emulator's exit status.
        code: Option<i32>,
        /// What the firmware printed.
        stdout: String,
        /// What the emulator printed.
        stderr: String,
    },
    /// Streaming samples to the board failed.
    #[error("streaming to {board} ({detail}): {source}")]
    Stream {
        /// The board.
        board: String,
        /// Where, and what the firmware said.
        detail: String,
        /// The link's error.
        #[source]
        source: firmware::host::stream::StreamError,
    },
    /// The serial port could not be opened.
    #[error("opening {} at {baud} baud: {source}", port.display())]
    Port {
        /// The port.
        port: PathBuf,
        /// The baud rate.
        baud: u32,
        /// The driver's error.
        #[source]
        source: serialport::Error,
    },
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>, DeviceError> {
    std::fs::read(path).map_err(|source| DeviceError::Read {
        path: path.to_path_buf(),
        source,
    })
}
