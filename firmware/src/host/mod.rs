//! The host side of hardware-in-the-loop validation (feature `host`, std): which boards exist,
//! how their firmware is built with a suite of models embedded, how an emulated board is booted,
//! and how its report is read back. `tests/tests/hil.rs` and `ghnq hil` both drive this.

pub mod boards;
pub mod build;
pub mod elf;
pub mod parse;
pub mod qemu;
pub mod stream;

pub use boards::{BOARDS, Board, Emulator, board};
pub use build::{BuildError, Entry, build, build_defmt, build_streaming, preflight};
pub use elf::{MemoryUse, memory_use};
pub use parse::{BoardReport, ModelReport, OpReport, ResultLine, parse};
pub use qemu::{QemuError, QemuRun, boot, boot_defmt, boot_streaming};
pub use stream::{StreamReport, validate_stream};
