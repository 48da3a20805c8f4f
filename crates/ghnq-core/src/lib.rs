//! The stage of the GHN-QAT host data flow after the architecture space, which every later stage
//! builds on:
//! - [`arch`]: the `ghnq-arch` crate re-exported (the CNN IR, the "ConvNets" generator, its
//!   splits, hand-written nets, text form), so every stage names nets the same way;
//! - [`data`]: Fashion-MNIST and CIFAR-10 loaders, augmentation and samplers;
//! - [`cnn`]: parameter sets, initialisers, the functional burn executor and plain SGD training;
//! - [`train`]: what every trainer and evaluator shares (batches, sources, loss, top-k, summaries);
//! - [`sources`]: built-in and by-name image and architecture sources;
//! - [`atomic`]: atomic file writes;
//! - [`shared_data`]: the data files beside the repository (never in it), and tests' skips.
//!
//! Data flows one way: `ghnq-arch` → `ghnq-core` → `ghnq-quant` → `ghnq-ghn` → `ghnq-export` → `ghnq-tflite`,
//! with `ghnq-study` on top; no crate imports a later one.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use ghnq_arch as arch;
pub mod atomic;
pub mod cnn;
pub mod data;
pub mod file_error;
pub mod shared_data;
pub mod sources;
pub mod table;
pub mod train;
