//! Integer-only interpreter for GHNQ model blobs, bit-exact with TFLite Micro's arithmetic.
//!
//! The crate is `no_std`, allocates nothing, uses no floating point and no `unsafe` outside the
//! per-instruction-set kernels under `ops::simd` (the `asm!` of Armv7E-M DSP instructions in
//! `ops::simd::armv7em`, Cortex-M4/M7 and M33+DSP only; the SSE2, AVX2 and AVX-512 VNNI
//! kernels in `ops::simd::x86_64`, chosen at run time, x86-64 hosts only; NEON in
//! `ops::simd::aarch64`, aarch64 only): a device
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
// `deny`, not `forbid`: the per-target kernel modules under `ops::simd` allow it locally, and
// nothing else does. `ops::simd::armv7em` has `asm!` blocks of Armv7E-M DSP instructions
// (SXTAB16, SXTB16, SMLAD, SMLABB/SMLATT, …): the kernels' loops, their slices bounds-checked
// in safe code before they run, register-only steps, and the one-instruction wrappers
// (`armv7em::instructions`) the 4- and 2-bit window is written over (Cortex-M4/M7, M33+DSP).
// `ops::simd::x86_64::sse2` calls its `#[target_feature(enable = "sse2")]` functions, sound on
// every x86-64 CPU; `ops::simd::x86_64` calls `avx2`'s `enable = "avx2"` ones only after CPUID
// reported AVX2, and `avx512`'s (VPDPBUSD, masked loads) only after it reported AVX-512
// F/BW/VL and VNNI; the depthwise kernels load their vectors unchecked once `ops::simd::x86_64`
// has bounds-checked a pixel's taps (x86-64 hosts only). `ops::simd::aarch64` loads its NEON
// vectors from borrowed arrays, and its depthwise kernel unchecked once a pixel's taps are
// bounds-checked, and has an `SDOT` `asm!` in `dotprod` builds (aarch64 only). Every other
// target compiles no `unsafe` but `ops::simd::armv7em`'s unaligned loads of `avg_pixels`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod arena;
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
