//! TensorFlow Lite interoperability: int8 `.tflite` models in and out of the blob format.

mod error;
mod graph;
pub mod import;
mod params;
pub mod schema;
pub mod tflm;

pub use error::ImportError;
pub use import::{Imported, IoInfo, import};
