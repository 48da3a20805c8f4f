//! GHN-2 in burn (GHN_SPEC §1–§2): graph construction from the IR, node embedding, GatedGNN,
//! decoders with tiling and normalisation, checkpoints and the meta-training loop.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod decoder;
pub mod embed;
pub mod eval;
pub mod gated_gnn;
pub mod graph;
pub mod model;
pub mod ppuda;
pub mod shape_encoder;
pub mod train;

pub use graph::{GhnGraph, Primitive};
pub use model::{Ghn, GhnConfig};

#[cfg(test)]
mod tests;
