//! Runtime errors. Decoding problems arrive as [`FormatError`] (from [`Model::from_bytes`]); the
//! rest are mistakes a caller can fix (arena size, input shape or range), each message saying how.
//!
//! [`Model::from_bytes`]: shared_format::Model::from_bytes

use shared_format::{FormatError, OpKind};

/// Why the interpreter could not be set up or could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The blob or one of its ops is malformed.
    #[error("invalid model: {0}")]
    Format(#[from] FormatError),
    /// The arena given to [`crate::Interpreter::new`] is smaller than the model's plan.
    #[error(
        "arena too small: the model needs {needed} bytes (activations + scratch, see `Model::arena_bytes()`) but {provided} were provided; give the interpreter a larger arena"
    )]
    ArenaTooSmall {
        /// Bytes the model needs.
        needed: usize,
        /// Bytes the caller provided.
        provided: usize,
    },
    /// The input slice does not hold exactly one sample of the input tensor.
    #[error(
        "input has {found} values but the model's input tensor holds {expected} (H·W·C, NHWC order); pass exactly one quantized sample"
    )]
    InputLength {
        /// H·W·C of the input tensor.
        expected: usize,
        /// Length of the slice passed.
        found: usize,
    },
    /// An input value lies outside the input tensor's bit range.
    #[error(
        "input value {value} at index {index} does not fit the input tensor's {bits}-bit range; quantize (and clamp) the input to [-2^(bits-1), 2^(bits-1)-1]"
    )]
    InputRange {
        /// Position in the input slice.
        index: usize,
        /// The offending value.
        value: i8,
        /// Bit-width of the input tensor.
        bits: u8,
    },
    /// A kernel met a slice or parameter that validation should have ruled out. Unreachable for a
    /// model from [`shared_format::Model::from_bytes`]; it exists so the runtime reports instead
    /// of panicking should validation and runtime ever disagree.
    #[error(
        "op {index} ({kind}): internal inconsistency ({what}); the blob passed validation, so this is a runtime bug: please report it with the blob"
    )]
    Internal {
        /// Op index in execution order.
        index: u16,
        /// Op kind.
        kind: OpKind,
        /// What did not hold.
        what: &'static str,
    },
}
