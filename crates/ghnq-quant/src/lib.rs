//! Quantization: the paper's uniform affine scheme (Eqs. 1–3) and the integer parameters the
//! device runs with (EDGE_ANCHORS §3.2). Integer parameters are computed here and only here; the
//! blob stores them and the device never derives them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod affine;
pub mod config;
pub mod fake;
pub mod host_quant;
pub mod integer;
pub mod layers;
pub mod lower;
mod order_statistics;
pub mod qat_native;
pub mod side_by_side;
pub mod sim;
pub mod sim_native;
pub mod table;

pub use affine::{AffineParams, Range, WeightQuant};
pub use integer::{AddParams, quantize_multiplier};
