//! The host side of the GHN-QAT edge SDK. Data flows one way:
//! `arch` → `ghn` → `quant` → `export` → shared-format → edge-runtime.
