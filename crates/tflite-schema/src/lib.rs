//! TensorFlow Lite's flatbuffer schema as Rust types: readers (`root_as_model` runs the
//! flatbuffers verifier, so a corrupt file is an error, never a wild read) and builders.
//!
//! `generated.rs` is `flatc --rust` output for `tflite.fbs` (TensorFlow's schema, Apache-2.0,
//! schema version 3b), taken unchanged from the `tract-tflite` 0.23.9 crate, which generated it
//! for the `flatbuffers` 25.12.19 runtime pinned in Cargo.toml. Vendoring the generated file
//! (as TFLM vendors `schema_generated.h`) avoids pulling tract's whole inference engine in for
//! its schema types, and Debian's `flatc` (2.0.8) emits code for an older runtime. To
//! regenerate after a schema change: `flatc --rust -o . tflite.fbs` with flatc 25.12.19, then
//! rename the output to `generated.rs`.

#[allow(
    unused_imports,
    dead_code,
    deprecated,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    clippy::all,
    clippy::pedantic,
    unknown_lints,
    mismatched_lifetime_syntaxes,
    unsafe_op_in_unsafe_fn
)]
#[rustfmt::skip]
mod generated;

pub use generated::tflite::*;
