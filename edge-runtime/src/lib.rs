//! Integer-only interpreter for GHNQ model blobs, bit-exact with TFLite Micro's arithmetic.
//!
//! The crate is `no_std`, allocates nothing, uses no floating point and no `unsafe` except the
//! `asm!` of Armv7E-M DSP instructions (`ops::dsp`, Cortex-M4/M7 only: two loops and seven
//! one-instruction wrappers) and the SSE2
//! and AVX2 kernels (`ops::sse2`, `ops::avx2`, chosen at run time by `ops::x86`; x86-64 hosts
//! only): a device
//! hands it a validated [`Model`] (which may live in flash) and one caller-owned arena of
//! [`Model::arena_bytes`] bytes, and [`Interpreter::run`] executes the ops in order, writing every
//! activation at the offset the host's memory planner chose.
//!
//! The numeric contract is `shared-format/NUMERICS.md`; [`requant`] holds the fixed-point
//! primitives and [`ops`] one reference kernel per op, laid out like TFLM's `kernels/` so an
//! optimised per-target kernel can later replace one behind the same signature.
//!
//! ```
//! use edge_runtime::{Interpreter, Model};
//! # use shared_format::{ModelBuilder, TensorSpec, Shape, Op, Pool, Window, Clamp};
//! # let spec = TensorSpec { shape: Shape::new(2, 2, 1), zero_point: 0, bits: 8 };
//! # let mut b = ModelBuilder::new(spec, 1.0);
//! # let out = b.tensor(TensorSpec { shape: Shape::new(1, 1, 1), ..spec });
//! # let clamp = Clamp { min: -128, max: 127 };
//! # b.push(&Op::MaxPool(Pool { input: 0, output: out, window: Window::square(2, 2, 1, 0), clamp })).unwrap();
//! # let blob = b.finish(out, 1.0).unwrap();
//! let model = Model::from_bytes(&blob)?; // validates everything, once
//! let mut arena = [0u8; 256]; // at least model.arena_bytes()
//! let mut interpreter = Interpreter::new(&model, &mut arena)?;
//! let output: &[i8] = interpreter.run(&[3, -7, 12, 0])?;
//! assert_eq!(output, &[12]);
//! # Ok::<(), edge_runtime::Error>(())
//! ```
#![cfg_attr(not(test), no_std)]
// `deny`, not `forbid`: the per-target kernel modules allow it locally. `ops::dsp` has two `asm!` blocks of
// Armv7E-M DSP instructions (SXTAB16, SXTB16, SMLAD, SMLABB/SMLATT): the conv kernel's inner
// loop, its slices bounds-checked in safe code before it runs, and a register-only depthwise
// step, plus seven register-only one-instruction wrappers (SXTB16, SXTAB16, SMLAD, PKHBT,
// PKHTB) the 4- and 2-bit window is written over (Cortex-M4/M7 only). `ops::sse2` calls its `#[target_feature(enable = "sse2")]`
// functions, sound on every x86-64 CPU; `ops::x86` calls `ops::avx2`'s `enable = "avx2"` ones
// only after CPUID reported AVX2, and `ops::avx512`'s (VPDPBUSD, masked loads) only after it
// reported AVX-512 F/BW/VL and VNNI; the depthwise kernels load their vectors unchecked once
// `ops::x86` has bounds-checked a pixel's taps (x86-64 hosts only). `ops::aarch64` loads its
// NEON vectors from borrowed arrays, and its depthwise kernel unchecked once a pixel's taps are
// bounds-checked, and has an `SDOT` `asm!` in `dotprod` builds (aarch64 only). Every other
// target compiles no `unsafe`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
mod inplace;
pub mod interpreter;
pub mod ops;
pub mod requant;
#[cfg(test)]
mod test_rng;

/// The blob format crate, for everything not re-exported below (test vectors, header, packing).
pub use shared_format;

pub use error::Error;
pub use interpreter::{Interpreter, OpObserver};
pub use shared_format::{
    Clamp, FormatError, IoSpec, Metadata, Model, Op, OpKind, Rounding, Shape, TensorId,
    TensorRecord, TestVectors, WeightScheme,
};
