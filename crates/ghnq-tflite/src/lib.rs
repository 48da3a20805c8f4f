//! TensorFlow Lite interoperability: int8 `.tflite` models in and out of the blob format.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod export;
mod fold;
mod graph;
pub mod import;
mod params;
mod refusal;
mod tables;
pub use tflite_schema as schema;
pub mod tflm;

pub use error::ImportError;
pub use export::{Requantize, TfliteExportError, export, export_with};
pub use fold::FoldError;
pub use graph::GraphDefect;
pub use import::{Imported, IoInfo, import};
pub use params::ParamError;
pub use refusal::{IoRefusal, OpRefusal, ScaleRefusal, TensorError};
