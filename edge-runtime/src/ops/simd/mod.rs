//! The per-instruction-set kernels, one module each, and the one place that picks among them.
//!
//! * [`armv7em`]: the Armv7E-M DSP kernels (`SXTAB16`, `SMLAD`, … through `asm!`) under
//!   `cfg(edge_dsp)`, set by `build.rs` for Cortex-M4/M7 and for Cortex-M33 built with
//!   `+dsp`; on every other target the same kernels run on a portable model of the
//!   instructions, for host tests.
//! * [`x86_64`]: SSE2, AVX2 and AVX-512 VNNI, chosen at run time from CPUID (x86-64 only).
//! * `aarch64`: NEON, and `SDOT` in `dotprod` builds (aarch64 only).
//! * `portable`: the plain-Rust sums where no module above applies (Cortex-M0/M3, RISC-V, …).
//!
//! This module is the dispatch: conv.rs and depthwise.rs call [`window`] (one pixel's window
//! against a block of output channels, bounds-checked here, its quads of channels handed to
//! the one kernel the target has) and the host kernels' shared names (`depthwise_pixel`,
//! `BlockStages`, [`Tap`], and `DenseFilters` on aarch64), each chosen by one `cfg`; the
//! Armv7E-M-only kernels the ops call under `cfg(edge_dsp)` they reach in [`armv7em`].
//!
//! The crate's `unsafe` lives in these modules only (`#![allow(unsafe_code)]` in each kernel
//! module, every block with its `SAFETY` comment); this file and `portable` have none.

#[cfg(target_arch = "aarch64")]
mod aarch64;
pub(crate) mod armv7em;
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod host_tests;
mod portable;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64::{BlockStages, DenseFilters, depthwise_pixel};
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::sse2::{BlockStages, dot};
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::{depthwise_pixel, depthwise_window};

/// Where one depthwise tap's channels start: `x` in the input, `w` in the weights. The tap's
/// `n` channels are the `n` bytes from there in each (NHWC input, `[ky][kx][c]` weights). One
/// type for every host SIMD module, so the bounds check their unchecked loads rest on is one
/// piece of code.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tap {
    /// Offset of the tap's first channel in the input.
    pub x: usize,
    /// Offset of the tap's first channel in the weights.
    pub w: usize,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl Tap {
    /// Whether every tap's `n` channels lie inside `x` and `w`: the contract of the SIMD
    /// depthwise kernels, which load a pixel's vectors unchecked once this holds.
    #[inline]
    pub(crate) fn all_inside(taps: &[Tap], n: usize, x: &[i8], w: &[i8]) -> bool {
        let inside = |at: usize, len: usize| at.checked_add(n).is_some_and(|end| end <= len);
        taps.iter()
            .all(|t| inside(t.x, x.len()) && inside(t.w, w.len()))
    }
}

/// A whole depthwise window's taps relative to its first one, with their largest offsets:
/// made once per block of channels, so that each pixel off the border is bounds-checked with two
/// comparisons ([`Self::inside`]) instead of two per tap, and its tap list is not rebuilt.
/// WHY: listing and checking nine taps per pixel was more of a depthwise convolution's time
/// than its multiply-adds on x86-64. The fields are private, so `far` always covers `taps`.
#[cfg(target_arch = "x86_64")]
pub(crate) struct WindowTaps<'a> {
    taps: &'a [Tap],
    far: Tap,
}

#[cfg(target_arch = "x86_64")]
impl<'a> WindowTaps<'a> {
    /// The taps, and each offset's largest value.
    pub(crate) fn new(taps: &'a [Tap]) -> Self {
        let far = taps.iter().fold(Tap::default(), |f, t| Tap {
            x: f.x.max(t.x),
            w: f.w.max(t.w),
        });
        WindowTaps { taps, far }
    }

    /// Whether every tap's `n` channels lie inside `x` and `w` ([`Tap::all_inside`]).
    #[inline]
    pub(crate) fn inside(&self, n: usize, x: &[i8], w: &[i8]) -> bool {
        let inside = |at: usize, len: usize| at.checked_add(n).is_some_and(|end| end <= len);
        inside(self.far.x, x.len()) && inside(self.far.w, w.len())
    }
}

/// The shape of one pixel's valid window for [`window`]: `rows` runs of `len` bytes, the input
/// runs `x_step` bytes apart, the filter runs `w_step` bytes apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Runs {
    /// Valid tap rows.
    pub rows: usize,
    /// Bytes per run: valid taps of a row × C_in.
    pub len: usize,
    /// Input bytes from one run to the next (a multiple of the input row), at least `len`.
    pub x_step: usize,
    /// Filter bytes from one run to the next (`kw·C_in`), at least `len`.
    pub w_step: usize,
}

/// `acc[c] = Σ_runs Σ_i w[c·stride + r·w_step + i]·(x[r·x_step + i] − z_x)` for the
/// `acc.len()` output channels whose filters start `stride` bytes apart in `w`: one pixel's
/// window (its valid taps) against a block of channels, activations centred on `z_x`.
///
/// On Armv7E-M all groups of four channels go through one `asm!` block: per input word one load
/// and two `SXTAB16` (widen and centre), then per channel one load, two `SXTB16` and two `SMLAD`,
/// i.e. 16 MACs in about 24.75 instructions with the loop (unrolled four times); the last
/// `len % 4` bytes of a run take one `SMLABB` per channel. It uses 12 registers (four
/// accumulators, four temporaries, three pointers and the stride) and keeps the counters, steps
/// and offset in a 56-byte stack frame of its own, since the compiler's allocation of the same
/// loop spills (`armv7em::quad_words`). On x86-64 and aarch64 the quads go to those modules'
/// kernels, elsewhere to `portable`. The last `acc.len() % 4` channels are summed in plain Rust.
/// Returns `false`, touching nothing, if a run would leave `x` or `w` or the steps are shorter
/// than a run: the bounds every kernel's loads rely on.
///
/// `w_sums`, where given, holds each channel's weight sum over the runs (`w_sums[c]`,
/// wrapping): a whole window's, the same at every pixel off the border, so that a convolution
/// sums its filters once per block instead of once per pixel. Only x86-64's AVX-512 VNNI kernel
/// reads them (`x86_64::quad_words_summed`, half the multiplies); elsewhere they are ignored.
#[inline(always)]
pub(crate) fn window(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    w_sums: Option<&[i32]>,
    acc: &mut [i32],
) -> bool {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    if rows == 0 || len == 0 || acc.is_empty() {
        acc.fill(0);
        return true;
    }
    if x_step < len || w_step < len {
        return false;
    }
    // The last run ends at (rows − 1)·step + len; the last channel starts at (C − 1)·stride.
    let end = |step: usize| (rows - 1).checked_mul(step)?.checked_add(len);
    let x_end = end(x_step);
    let w_end = end(w_step).and_then(|e| e.checked_add(stride.checked_mul(acc.len() - 1)?));
    if x_end.is_none_or(|e| e > x.len()) || w_end.is_none_or(|e| e > w.len()) {
        return false;
    }
    let (quads, rest) = acc.as_chunks_mut::<4>();
    if !quads.is_empty() {
        // Every run is inside `x` and `w` (checked above), as the sums require.
        #[cfg(target_arch = "x86_64")]
        match w_sums {
            Some(sums) => x86_64::quad_words_summed(x, w, stride, runs, z_x, sums, quads),
            None => quad_words(x, w, stride, runs, z_x, quads),
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = w_sums;
            quad_words(x, w, stride, runs, z_x, quads);
        }
    }
    // Channel k's filter runs, from `w[k·stride..]` (inside `w`: checked above).
    let filter = |k: usize| w.get(k * stride..).unwrap_or_default();
    for (k, acc) in (4 * quads.len()..).zip(rest) {
        *acc = portable::centred_dot(x, filter(k), runs, z_x);
    }
    true
}

/// [`window`] for `4·acc.len()` channels (at least 4), bounds already checked there
/// (`runs.rows ≥ 1`, `runs.len ≥ 1`): the target's kernel, picked by `cfg` (on x86-64 the
/// instruction set is then picked at run time, `x86_64::quad_words`).
#[inline(always)]
fn quad_words(x: &[i8], w: &[i8], stride: usize, runs: Runs, z_x: i8, acc: &mut [[i32; 4]]) {
    #[cfg(edge_dsp)]
    armv7em::quad_words(x, w, stride, runs, z_x, acc);
    #[cfg(target_arch = "x86_64")]
    x86_64::quad_words(x, w, stride, runs, z_x, acc);
    #[cfg(target_arch = "aarch64")]
    aarch64::quad_words(x, w, stride, runs, z_x, acc);
    #[cfg(not(any(edge_dsp, target_arch = "x86_64", target_arch = "aarch64")))]
    portable::quad_words(x, w, stride, runs, z_x, acc);
}
