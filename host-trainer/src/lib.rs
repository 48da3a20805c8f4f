//! The host side of the GHN-QAT edge SDK. Data flows one way:
//! `arch`, `data`, `cnn`, `train`, `sources` → `quant` → `ghn` → `export` → `tflite`, then
//! shared-format → edge-runtime; `study` and `plot` sit on top, `device` beside.

pub mod arch;
pub mod atomic;
pub mod cnn;
pub mod data;
pub mod device;
pub mod export;
pub mod ghn;
pub mod plot;
pub mod quant;
pub mod sources;
pub mod study;
pub mod tflite;
pub mod train;
