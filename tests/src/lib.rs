//! Shared test support: the independent golden interpreter ([`golden`]) and the random-model
//! generators ([`generator`]) that the bit-exactness, robustness and benchmark suites drive.

pub mod generator;
pub mod golden;
/// Models and vectors of the hardware-in-the-loop suite (`tests/tests/hil.rs`).
pub mod hil_models;
