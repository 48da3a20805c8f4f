//! The host side of the GHN-QAT edge SDK. Data flows one way:
//! `arch` → `ghn` → `quant` → `export` → shared-format → edge-runtime.

pub mod arch;
pub mod atomic;
pub mod cnn;
pub mod data;
pub mod device;
pub mod export;
pub mod ghn;
pub mod plot;
pub mod quant;
pub mod study;
pub mod tflite;
