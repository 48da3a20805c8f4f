//! The first stage of the GHN-QAT host data flow, which every later stage builds on:
//! - [`arch`]: the CNN IR, the "ConvNets" generator, its splits, hand-written nets, text form;
//! - [`data`]: Fashion-MNIST and CIFAR-10 loaders, augmentation and samplers;
//! - [`cnn`]: parameter sets, initialisers, the functional burn executor and plain SGD training;
//! - [`train`]: what every trainer and evaluator shares (batches, sources, loss, top-k, summaries);
//! - [`sources`]: built-in and by-name image and architecture sources;
//! - [`atomic`]: atomic file writes;
//! - [`shared_data`]: the data files beside the repository (never in it), and tests' skips.
//!
//! Data flows one way: `ghnq-core` → `ghnq-quant` → `ghnq-ghn` → `ghnq-export` → `ghnq-tflite`,
//! with `ghnq-study` on top; no crate imports a later one.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arch;
pub mod atomic;
pub mod cnn;
pub mod data;
pub mod file_error;
pub mod shared_data;
pub mod sources;
pub mod table;
pub mod train;
