//! The float CNN: parameter sets for IR nets and a functional burn executor that runs any [`Net`]
//! with parameters given as tensors, so gradients flow into whoever produced them (the GHN, or plain
//! trainable parameters).
//!
//! [`Net`]: crate::arch::Net

pub mod executor;
pub mod fast_ops;
pub mod init;
pub mod native;
pub mod params;
pub mod train;

pub use executor::{BnMode, forward, forward_seeded};
pub use params::{LayerParams, ParamSet};
