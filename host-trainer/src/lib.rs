//! The host side of the GHN-QAT edge SDK. Data flows one way:
//! `arch`, `data`, `cnn`, `train`, `sources` → `quant` → `ghn` → `export` → `tflite`, then
//! shared-format → edge-runtime; `study` and `plot` sit on top, `device` beside.

pub use ghnq_core::arch;
pub use ghnq_core::atomic;
pub use ghnq_core::cnn;
pub use ghnq_core::data;
pub use ghnq_core::sources;
pub use ghnq_core::train;
pub use ghnq_device as device;
pub use ghnq_export as export;
pub use ghnq_ghn as ghn;
pub use ghnq_quant as quant;
pub use ghnq_study as study;
pub use ghnq_study::plot;
pub use ghnq_tflite as tflite;
