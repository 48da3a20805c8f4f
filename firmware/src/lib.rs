//! The validation application that every board runs, written against two small traits so it is
//! the same code on a Cortex-M0 under QEMU, a RISC-V core and a real nRF52840:
//!
//! * [`Counter`]: instructions or cycles since an arbitrary origin (SysTick under QEMU
//!   `-icount shift=0`, `minstret` on RISC-V, DWT CYCCNT on a real M4/M7);
//! * [`Report`]: where results go (semihosting or defmt under QEMU, a UART on a real board).
//!
//! [`validate()`] runs every sample of a test-vector bundle through the edge runtime, compares the
//! logits with the host's byte for byte, counts top-1/top-5 with the host's ranking
//! ([`shared_format::vectors::rank_of`]) and measures instructions or cycles per inference.
//! Every failure (a bad blob, vectors made for another model, an arena too small) becomes an
//! [`Event::Failed`] and an exit status, never a panic.
//!
//! The report is line-oriented text whose lines start with `GHNQ `, so a host can parse it
//! ([`host::parse()`] with the `host` feature) and a person can read it; with the `defmt`
//! feature the same lines go out as defmt frames and defmt-print formats them on the host.
//!
//! A board with too little flash for a test set serves its model over a UART instead
//! ([`stream::serve`], frames in [`protocol`]): the host sends one sample at a time and tallies.
#![cfg_attr(not(any(test, feature = "host")), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod counter;
pub mod protocol;
pub mod report;
pub mod stream;
pub mod validate;

#[cfg(feature = "host")]
pub mod host;

pub use counter::{Counter, Unit};
// Boards size their arena with the same runtime the loop uses.
pub use edge_runtime;
pub use report::{Event, Failure, Report, Summary};
pub use validate::{Outcome, validate, validate_suite};
