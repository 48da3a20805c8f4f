//! Architecture space, the first stage of the GHN-QAT host data flow: the CNN IR, the "ConvNets"
//! generator, its splits, hand-written nets, the JSON text form and distribution statistics. It
//! knows nothing about tensors, quantization or burn, so it builds in seconds and every later
//! stage (`ghnq-core`, which re-exports it as `ghnq_core::arch`, and on) reads the same nets.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod generator;
pub mod ir;
pub mod predefined;
pub mod splits;
pub mod stats;
pub mod text;

pub use ir::{ArchError, ImageShape, Net, NetBuilder, Node, Op, Shape};
