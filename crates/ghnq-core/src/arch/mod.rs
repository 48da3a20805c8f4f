//! Architecture space: the CNN IR, the "ConvNets" generator, its splits, hand-written nets, the JSON
//! text form and distribution statistics. Knows nothing about quantization or burn.

pub mod generator;
pub mod ir;
pub mod predefined;
pub mod splits;
pub mod stats;
pub mod text;

pub use ir::{ArchError, ImageShape, Net, NetBuilder, Node, Op, Shape};
