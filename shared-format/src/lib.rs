//! The one contract between host and device: the GHNQ model blob and the GHNV test-vector bundle.
//!
//! A blob is a fixed 28-byte little-endian [`header`] followed by a postcard payload. The payload
//! borrows everything large (packed weights, biases, requantization tables, the tensor table)
//! straight from the blob, so a device can run a model that lives in flash without copying it.
//!
//! Decoding ([`Model::from_bytes`]) validates every index, shape, offset, length, kernel geometry,
//! quantization parameter and the memory plan *once*, and returns a typed [`FormatError`] naming
//! the op or tensor at fault. Everything downstream (the edge runtime) may then rely on those
//! invariants without re-checking them on the hot path.
//!
//! The crate is `no_std` and allocation-free; the `std` feature adds the [`builder`] that the host
//! exporter and the tests use to assemble blobs, including the memory planner's placement search.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accumulator;
pub mod error;
pub mod header;
pub mod le;
pub mod model;
#[cfg(feature = "std")]
pub mod multiplier;
pub mod op;
pub mod packing;
pub mod plan;
pub mod stats;
pub mod tensor;
mod validate;
pub mod vectors;

#[cfg(feature = "std")]
pub mod builder;

pub use error::{FormatError, OpProblem, TensorProblem};
pub use header::{FORMAT_MAJOR, FORMAT_MINOR, Header, Rounding};
pub use le::LeI32s;
pub use model::{IoSpec, Metadata, Model, OpIter};
pub use op::{
    Add, AddInput, Clamp, Concat, ConcatInput, Conv2d, DepthwiseConv2d, GlobalAvgPool, HardSwish,
    Linear, Logistic, MAX_CONCAT_INPUTS, MAX_MEAN_CELLS, MAX_MUL_SHIFT, MAX_SOFTMAX_CHANNELS, Mean,
    Mul, Op, OpKind, Padding, Pool, Requant, Softmax, TABLE_LEN, Table, WeightScheme, Weights,
    Window,
};
pub use tensor::{Shape, TensorId, TensorRecord, TensorTable};
pub use vectors::TestVectors;

#[cfg(feature = "std")]
pub use builder::{BuildError, ModelBuilder, TensorSpec, TestVectorsBuilder};

/// CRC-32 (ISO-HDLC, the zlib/PNG polynomial) used by both file kinds, so any standard tool can
/// recompute it.
pub(crate) const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
