//! The aarch64 host kernels (mobile SoCs, issue 18): the same functions, under the same names and
//! signatures, as the x86-64 entry points of `x86_64` and `x86_64::sse2`, so that conv.rs
//! and depthwise.rs reach either through the one dispatch (`ops::simd`). NEON (Advanced SIMD)
//! is part of every aarch64 core, so nothing is detected at run time; SDOT is used where the build
//! promises it (`-C target-feature=+dotprod`: Cortex-A55/A75 and later), since a binary built
//! without the promise must still run on a Cortex-A53.
//!
//! Why by hand: in release builds rustc leaves the portable i8 dot product (`DotAcc`, the
//! reference convolution's inner loop) scalar here as on x86-64, an `LDRSB` pair and a `MADD`
//! per MAC, and vectorises the depthwise loop only partly (its `Σ w`/`Σ x` corrections widened
//! with `SXTL`/`SADDW` beside the products); the widening multiplies below do eight MACs per
//! instruction (sixteen with SDOT), with the same exact integer sums.
//!
//! * [`quad_words`] (convolutions with 8-bit weights, and 4/2-bit ones unpacked a block at a
//!   time) multiplies raw bytes: `SMULL`/`SMULL2` form eight i8×i8 products each in 16-bit
//!   lanes (`|w·x| ≤ 2^14`: exact) and `SADALP` adds neighbouring pairs into 32-bit lanes. The
//!   activations' zero point comes off once, `Σ w·(x − z_x) = Σ w·x − z_x·Σ w`, with `Σ w`
//!   gathered by one more `SADALP` per sixteen weights (8→16 bits, flushed into 32 bits every
//!   [`FLUSH`] chunks so that it never wraps). Pairing the products in 16 bits first
//!   (`SMLAL`) would be one instruction fewer, but two products of −128·−128 make 2^15, one past
//!   i16. With SDOT, one `SDOT` does sixteen products into four 32-bit lanes and a second one,
//!   against ones, gathers `Σ w`.
//! * [`DenseFilters`] (the pixels whose window has no padded tap, most of them) drops the
//!   `Σ w` term: a block's filters are copied once, zero-padded to whole 16-byte chunks and
//!   interleaved sixteen channels a group, with `z_x·Σ w` per channel worked out at the copy;
//!   a pixel is then one `SDOT` (or `SMULL`/`SADALP`) per chunk and channel, each activation
//!   chunk loaded once per sixteen channels.
//! * [`depthwise_pixel`] keeps channels in lanes (NHWC), as on x86-64: `SSUBL` widens and
//!   centres eight activations and eight weights to 16 bits (`x − z_x`, `w − z_w` in
//!   −255..=255), and `SMLAL`/`SMLAL2` accumulate their products in 32-bit lanes. SDOT would
//!   need four taps' bytes transposed into each lane first, which costs what it saves.
//! * [`BlockStages`] requantizes sixteen outputs a step: double rounding is `SQRDMULH` (exactly
//!   TFLM's `SaturatingRoundingDoublingHighMul`, which gemmlowp's NEON path uses too) and
//!   `SRSHL` after the usual sign fix-up (`RoundingDivideByPOT`); single rounding takes the
//!   high words of `SMULL` products.
//!
//! Sums wrap in every lane, like every accumulator of the runtime: validation proves the final
//! values fit in i32, so the wrapped results are exact.
//!
//! The module's `unsafe`: calling its `#[target_feature(enable = "neon")]` functions, sound on
//! every aarch64 CPU; vector loads and stores through pointers (`LD1`, `ST1`), each to or from
//! a borrowed array of its size, except in [`depthwise_pixel`]'s body, which loads unchecked
//! once every tap of the pixel has been bounds-checked (as on x86-64: a check per load cost as
//! much as the arithmetic); and the `SDOT` `asm!` where the build enables `dotprod`.

#![allow(unsafe_code)]

use core::arch::aarch64::{
    int8x16_t, int16x8_t, int32x4_t, vaddq_s32, vaddvq_s32, vandq_s32, vcombine_s8, vcombine_s16,
    vdup_n_s8, vdupq_n_s8, vdupq_n_s16, vdupq_n_s32, vget_low_s8, vget_low_s16, vget_low_s32,
    vld1_s8, vld1q_s8, vld1q_s32, vmaxq_s16, vminq_s16, vmlal_high_s16, vmlal_s16, vmlsq_s32,
    vmovl_high_s32, vmovl_s32, vmull_high_s32, vmull_s32, vpaddq_s32, vqaddq_s16, vqaddq_s32,
    vqmovn_s16, vqmovn_s32, vqrdmulhq_s32, vreinterpretq_s32_s64, vrshlq_s32, vrshlq_s64,
    vshlq_s32, vshrq_n_s32, vst1q_s8, vsubl_high_s8, vsubl_s8, vuzp1q_s32, vuzp2q_s32,
};
#[cfg(not(target_feature = "dotprod"))]
use core::arch::aarch64::{vmull_high_s8, vmull_s8, vpadalq_s8, vpadalq_s16};

use super::{Runs, Tap};
use crate::ops::conv::BLOCK;
use crate::requant::ChannelRequant;
use shared_format::Clamp;

/// The kernels' name in test messages: which multiply the build uses.
#[cfg(test)]
pub(crate) const ISA: &str = if cfg!(target_feature = "dotprod") {
    "NEON+SDOT"
} else {
    "NEON"
};

/// Sixteen-byte chunks after which [`quad_words`]' 16-bit `Σ w` lanes are folded into 32 bits:
/// each chunk adds two weights (at most 256 in magnitude) to a lane, so 64 chunks stay within
/// ±2^14, well inside i16.
const FLUSH: usize = 64;

/// Sixteen bytes as a vector.
#[inline]
#[target_feature(enable = "neon")]
fn load16(b: &[i8; 16]) -> int8x16_t {
    // SAFETY: `b` is sixteen readable bytes; LD1 has no alignment requirement.
    unsafe { vld1q_s8(b.as_ptr()) }
}

/// Eight bytes in the low half, zeros above.
#[inline]
#[target_feature(enable = "neon")]
fn load8(b: &[i8; 8]) -> int8x16_t {
    // SAFETY: `b` is eight readable bytes; LD1 has no alignment requirement.
    vcombine_s8(unsafe { vld1_s8(b.as_ptr()) }, vdup_n_s8(0))
}

/// [`super::window`]'s work for `4·acc.len()` channels: `acc[q][k]` becomes
/// `Σ_runs Σ_i w[(4q + k)·stride + r·w_step + i]·(x[r·x_step + i] − z_x)`. The caller has
/// checked that every run lies inside `x` and `w`; a run that did not would be left out.
///
/// Four channels a pass: each sixteen activations are loaded once for four filters, and the
/// pass's twelve accumulators (products, `Σ w` partial and whole) stay in registers with the
/// operands. (Eight channels a pass, as with AVX2, spilled: 24 accumulators and eight weight
/// vectors are more than the 32 vector registers.)
#[inline]
pub(crate) fn quad_words(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    acc: &mut [[i32; 4]],
) {
    // SAFETY: NEON is part of the aarch64 baseline: every CPU this code is compiled for has it.
    unsafe { quad_words_neon(x, w, stride, runs, z_x, acc) }
}

/// [`quad_words`]' body.
#[target_feature(enable = "neon")]
fn quad_words_neon(x: &[i8], w: &[i8], stride: usize, runs: Runs, z_x: i8, acc: &mut [[i32; 4]]) {
    if runs_inside(x.len(), w.len(), stride, runs, acc.len()) {
        // SAFETY: every run of every channel lies inside `x` and `w` (just checked), the
        // body's contract; NEON is part of the aarch64 baseline.
        unsafe { quads_unchecked(x, w, stride, runs, z_x, acc) };
        return;
    }
    for (q, out) in acc.iter_mut().enumerate() {
        *out = quad(x, w, stride, runs, z_x, 4 * q);
    }
}

/// Whether every run of all `4·quads` channels lies inside `x` (`x_len` bytes) and `w`
/// (`w_len`), and there is work: then [`quads_unchecked`] may load without a check per run.
#[inline]
fn runs_inside(x_len: usize, w_len: usize, stride: usize, runs: Runs, quads: usize) -> bool {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    if rows == 0 || len == 0 || quads == 0 {
        return false;
    }
    let end = |step: usize| (rows - 1).checked_mul(step)?.checked_add(len);
    let last_filter = stride.checked_mul(4 * quads - 1);
    let w_end = end(w_step)
        .zip(last_filter)
        .and_then(|(e, f)| e.checked_add(f));
    end(x_step).is_some_and(|e| e <= x_len) && w_end.is_some_and(|e| e <= w_len)
}

/// [`quad_words`] once its runs are known to be inside the tensors (the common case, every
/// call from [`super::window`]): raw pointers per run, so a run costs a few address
/// computations instead of the slicing, chunking and per-filter checks of [`quad`] (which was
/// most of a 3×3 convolution's instructions over 16 channels: its runs are three chunks long).
/// The four channels' sums end in one vector: `d − z_x·Σw` per lane (`MLS`), then two rounds
/// of pairwise adds (`ADDP`) instead of eight `ADDV`.
///
/// # Safety
/// The CPU has NEON, `runs.rows ≥ 1`, and every run is inside its tensor:
/// `(rows − 1)·x_step + len ≤ x.len()` and
/// `(4·acc.len() − 1)·stride + (rows − 1)·w_step + len ≤ w.len()`.
#[target_feature(enable = "neon")]
unsafe fn quads_unchecked(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    acc: &mut [[i32; 4]],
) {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    let zx = vdupq_n_s32(z_x as i32);
    for (q, out) in acc.iter_mut().enumerate() {
        let mut d = [vdupq_n_s32(0); 4];
        let mut s = [vdupq_n_s32(0); 4];
        let mut tail = [0i32; 4];
        for r in 0..rows {
            // SAFETY: run `r` of the input and of channel 4q's filter start inside their
            // tensors, and the three next filters' `stride` bytes further (this function's
            // contract); `row` reads `len` bytes from each.
            unsafe {
                let xr = x.as_ptr().add(r * x_step);
                let w0 = w.as_ptr().add(4 * q * stride + r * w_step);
                let ws = [w0, w0.add(stride), w0.add(2 * stride), w0.add(3 * stride)];
                row(xr, ws, len, z_x, &mut d, &mut s, &mut tail);
            }
        }
        let v = [0, 1, 2, 3].map(|k| vmlsq_s32(d[k], s[k], zx));
        let sums = vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]));
        *out = lanes4(vaddq_s32(sums, load_i32x4(&tail)));
    }
}

/// One run of four channels: raw products into `d`, `Σ w` into `s`, and the last fewer than
/// eight bytes, centred, into `tail`.
///
/// # Safety
/// The CPU has NEON, and `x` and each of `ws` point at `len` readable bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn row(
    x: *const i8,
    ws: [*const i8; 4],
    len: usize,
    z_x: i8,
    d: &mut [int32x4_t; 4],
    s: &mut [int32x4_t; 4],
    tail: &mut [i32; 4],
) {
    let n16 = len / 16;
    // SAFETY (every load below): bytes `o..o + 16` (or `+ 8`, or `o`) with `o + 16 ≤ len`
    // (`+ 8`, `+ 1`), inside the `len` bytes of the contract; LD1 has no alignment
    // requirement.
    #[cfg(target_feature = "dotprod")]
    for i in 0..n16 {
        let o = 16 * i;
        let xv = unsafe { vld1q_s8(x.add(o)) };
        for ((d, s), w) in d.iter_mut().zip(s.iter_mut()).zip(ws) {
            mac(d, s, unsafe { vld1q_s8(w.add(o)) }, xv);
        }
    }
    #[cfg(not(target_feature = "dotprod"))]
    {
        let mut i = 0;
        while i < n16 {
            let end = n16.min(i + FLUSH);
            let mut p = [no_sums(); 4];
            while i < end {
                let o = 16 * i;
                let xv = unsafe { vld1q_s8(x.add(o)) };
                for ((d, p), w) in d.iter_mut().zip(p.iter_mut()).zip(ws) {
                    mac(d, p, unsafe { vld1q_s8(w.add(o)) }, xv);
                }
                i += 1;
            }
            for (s, p) in s.iter_mut().zip(p) {
                *s = fold(*s, p);
            }
        }
    }
    let mut o = 16 * n16;
    if len - o >= 8 {
        // Eight bytes with zeros above, adding nothing.
        let xv = unsafe { vcombine_s8(vld1_s8(x.add(o)), vdup_n_s8(0)) };
        let mut p = [no_sums(); 4];
        for ((d, p), w) in d.iter_mut().zip(p.iter_mut()).zip(ws) {
            let wv = unsafe { vcombine_s8(vld1_s8(w.add(o)), vdup_n_s8(0)) };
            mac(d, p, wv, xv);
        }
        for (s, p) in s.iter_mut().zip(p) {
            *s = fold(*s, p);
        }
        o += 8;
    }
    while o < len {
        let xv = unsafe { *x.add(o) } as i32 - z_x as i32;
        for (t, w) in tail.iter_mut().zip(ws) {
            *t = t.wrapping_add(unsafe { *w.add(o) } as i32 * xv);
        }
        o += 1;
    }
}

/// Bytes of zero-padded filters a [`DenseFilters`] holds: 16 KiB, a block of 28 channels of a
/// 3×3 filter over 64 input channels, 64 of smaller ones.
const DENSE_FILTERS: usize = 16 * 1024;

/// Bytes of one pixel's gathered window in a [`DenseFilters`] (filters up to 4 KiB − 16).
const DENSE_WINDOW: usize = 4 * 1024;

/// A block's filters for the pixels whose window is whole (no padded tap), the bulk of every
/// convolution: each filter copied once per block, zero-padded to a multiple of sixteen bytes,
/// with `−z_x·Σ w` per channel worked out once (the window's `Σ w` is the whole filter's, so
/// none is gathered beside the products). A pixel's runs are read in place when they are
/// whole 16-byte chunks (C_in a multiple of 16), else first gathered side by side (a 3×3 RGB
/// stem's runs are 9 bytes), so each channel is a dot product of whole chunks with no 8-byte
/// or single-byte tail, and sixteen channels a pass share each activation chunk ([`GROUP`]).
/// On the Cortex-A55 board (SDOT), ResNet-8's convolutions took 0.98 instructions per MAC
/// with slice-checked runs, 0.49 once [`quad_words`] read its runs through pointers
/// ([`quads_unchecked`]), and 0.33 with this path. Pixels on the border keep
/// [`super::window`]'s path.
pub(crate) struct DenseFilters {
    /// `4·quads` filters of `padded` bytes, zeros past `filter_len` (and whole zero filters
    /// past the block's channels).
    filters: [i8; DENSE_FILTERS],
    /// A pixel's window gathered (runs not whole chunks), its tap rows side by side; bytes
    /// past `filter_len` are left over from gathering and meet the filters' zero padding.
    window: [i8; DENSE_WINDOW],
    /// `−z_x·Σ w` of each channel, wrapping.
    corr: [[i32; 4]; BLOCK / 4],
    filter_len: usize,
    /// Bytes of a filter's tap row (`kw·C_in`), the length of a whole window's runs.
    row_len: usize,
    padded: usize,
    /// Quads of the loaded block; 0 when none is loaded.
    quads: usize,
}

impl DenseFilters {
    /// No block loaded.
    pub(crate) fn new() -> Self {
        Self {
            filters: [0; DENSE_FILTERS],
            window: [0; DENSE_WINDOW],
            corr: [[0; 4]; BLOCK / 4],
            filter_len: 0,
            row_len: 0,
            padded: 0,
            quads: 0,
        }
    }

    /// Channels of filters of `filter_len` bytes that one block may hold (a multiple of four,
    /// at most [`BLOCK`]), or 0 if a filter is too large for the window.
    pub(crate) fn block(filter_len: usize) -> usize {
        let padded = filter_len.next_multiple_of(16);
        if filter_len == 0 || padded + 16 > DENSE_WINDOW {
            return 0;
        }
        ((DENSE_FILTERS / padded) & !3).min(BLOCK)
    }

    /// Loads a block: `filters` holds its channels' filters of `filter_len` bytes one after
    /// the other, whose tap rows are `row_len` bytes. Returns `false`, with no block loaded,
    /// if they do not fit ([`Self::block`]).
    ///
    /// Layout: groups of [`GROUP`] channels (the last one 4, 8 or 12 wide), each group chunk
    /// by chunk: the sixteen bytes of chunk `i` of its channels one after the other, so that a
    /// pass over the window reads the group's weights in one forward sweep.
    pub(crate) fn load(
        &mut self,
        filters: &[i8],
        filter_len: usize,
        row_len: usize,
        z_x: i8,
    ) -> bool {
        self.quads = 0;
        let padded = filter_len.next_multiple_of(16);
        let Some(nb) = filters.len().checked_div(filter_len) else {
            return false;
        };
        let quads = nb.div_ceil(4);
        if nb == 0 || Self::block(filter_len) < 4 * quads || row_len == 0 {
            return false;
        }
        let channels = 4 * quads;
        let chunks = padded / 16;
        for (c, corr) in (0..channels).zip(self.corr.as_flattened_mut()) {
            let (g, k) = (c / GROUP, c % GROUP);
            let width = (channels - GROUP * g).min(GROUP);
            let f = filters.get(c * filter_len..(c + 1) * filter_len);
            for i in 0..chunks {
                let at = GROUP * g * padded + 16 * (i * width + k);
                let Some(dst) = self.filters.get_mut(at..at + 16) else {
                    return false;
                };
                dst.fill(0);
                if let Some(src) = f.and_then(|f| f.get(16 * i..(16 * i + 16).min(filter_len))) {
                    dst[..src.len()].copy_from_slice(src);
                }
            }
            let sum = f
                .unwrap_or_default()
                .iter()
                .fold(0i32, |a, &w| a.wrapping_add(w as i32));
            *corr = (z_x as i32).wrapping_neg().wrapping_mul(sum);
        }
        (self.filter_len, self.row_len, self.padded, self.quads) =
            (filter_len, row_len, padded, quads);
        true
    }

    /// The window's runs side by side in `window`, sixteen bytes a step; a run's last step may
    /// run past it (into the next run, rewritten next, or past `filter_len`, which meets the
    /// filters' zero padding). The caller has checked that every run is inside `x` and that
    /// `rows·len = filter_len`.
    fn gather(&mut self, x: &[i8], runs: Runs) {
        let Runs {
            rows, len, x_step, ..
        } = runs;
        for r in 0..rows {
            let (from, to) = (r * x_step, r * len);
            let Some(src) = x.get(from..from + len) else {
                return;
            };
            let mut i = 0;
            while i < len {
                let dst = self.window.get_mut(to + i..to + i + 16);
                match (x.get(from + i..from + i + 16), dst) {
                    (Some(s), Some(d)) => d.copy_from_slice(s),
                    _ => {
                        // The input's last bytes: the rest of the run, exactly.
                        if let (Some(d), Some(s)) =
                            (self.window.get_mut(to + i..to + len), src.get(i..))
                        {
                            d.copy_from_slice(s);
                        }
                    }
                }
                i += 16;
            }
        }
    }

    /// [`super::window`]'s sums for the loaded block, `acc[j] = Σ w_j·(x − z_x)`, if
    /// `runs` is a whole window (`filter_len / row_len` runs of `row_len` bytes) inside `x`
    /// and `acc` no longer than the block; otherwise `false`, touching nothing.
    pub(crate) fn window(&mut self, x: &[i8], runs: Runs, acc: &mut [i32]) -> bool {
        // SAFETY: NEON is part of the aarch64 baseline: every CPU this code is compiled for has
        // it.
        unsafe { self.window_neon(x, runs, acc) }
    }

    /// [`Self::window`]'s body.
    #[target_feature(enable = "neon")]
    fn window_neon(&mut self, x: &[i8], runs: Runs, acc: &mut [i32]) -> bool {
        let Runs {
            rows, len, x_step, ..
        } = runs;
        if self.quads == 0
            || len != self.row_len
            || rows.checked_mul(len) != Some(self.filter_len)
            || acc.len() > 4 * self.quads
        {
            return false;
        }
        // The last run must end inside `x` (every earlier one ends before it).
        if (rows - 1)
            .checked_mul(x_step)
            .and_then(|e| e.checked_add(len))
            .is_none_or(|e| e > x.len())
        {
            return false;
        }
        // Runs of whole chunks are read in place, run after run (the filter's chunks follow
        // its tap rows); others are first gathered side by side into `window`.
        let (x, x_step, rows, per_run) = if len.is_multiple_of(16) {
            (x.as_ptr(), x_step, rows, len / 16)
        } else {
            self.gather(x, runs);
            (self.window.as_ptr(), 0, 1, self.padded / 16)
        };
        let channels = 4 * self.quads;
        let (acc4, rest) = acc.as_chunks_mut::<4>();
        let mut q = 0;
        for g in 0..channels.div_ceil(GROUP) {
            let width = (channels - GROUP * g).min(GROUP);
            // SAFETY: group g's `width` filters lie inside `filters` (`load` checked it through
            // `block`); the runs read are inside `x` (checked above: `rows` runs of
            // `16·per_run` bytes) or `window` (one run of `padded` bytes, checked by `load`);
            // NEON is part of the aarch64 baseline.
            let sums = unsafe {
                let f = self.filters.as_ptr().add(GROUP * g * self.padded);
                match width {
                    4 => group::<4>(x, x_step, rows, per_run, f),
                    8 => group::<8>(x, x_step, rows, per_run, f),
                    12 => group::<12>(x, x_step, rows, per_run, f),
                    _ => group::<GROUP>(x, x_step, rows, per_run, f),
                }
            };
            for v in sums.into_iter().take(width / 4) {
                let Some(c) = self.corr.get(q) else {
                    return false;
                };
                let y = lanes4(vaddq_s32(v, load_i32x4(c)));
                if let Some(o) = acc4.get_mut(q) {
                    *o = y;
                } else if q == acc4.len() {
                    for (r, y) in rest.iter_mut().zip(y) {
                        *r = y;
                    }
                }
                q += 1;
            }
        }
        true
    }
}

/// Channels a pass of [`DenseFilters::window`] keeps in registers: sixteen accumulators,
/// the activations and weights in flight take about twenty of the 32 vector registers, and
/// each activation chunk is loaded once for sixteen filters.
const GROUP: usize = 16;

/// The sums of `G` channels (a multiple of four, at most [`GROUP`]) over `rows` runs of
/// `per_run` 16-byte chunks, `x_step` bytes apart from `x`, channel by channel in the first
/// `G / 4` vectors: raw products only (`SDOT`, or `SMULL`/`SADALP`), then `ADDP` across lanes.
///
/// # Safety
/// The CPU has NEON; each run of `x` is `16·per_run` readable bytes, and `f` points at
/// `16·G·rows·per_run` (chunk `i` of channel `k` at `16·(i·G + k)`, counting chunks across
/// the runs).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn group<const G: usize>(
    x: *const i8,
    x_step: usize,
    rows: usize,
    per_run: usize,
    f: *const i8,
) -> [int32x4_t; 4] {
    let mut d = [vdupq_n_s32(0); G];
    let mut f = f;
    for r in 0..rows {
        for j in 0..per_run {
            // SAFETY: chunk j of run r, and the group's next chunk of filters (contract); LD1
            // has no alignment requirement.
            let xv = unsafe { vld1q_s8(x.add(r * x_step + 16 * j)) };
            for (k, d) in d.iter_mut().enumerate() {
                // SAFETY: as above.
                *d = dot(*d, unsafe { vld1q_s8(f.add(16 * k)) }, xv);
            }
            // SAFETY: at most one past the group's filters (contract).
            f = unsafe { f.add(16 * G) };
        }
    }
    let mut out = [vdupq_n_s32(0); 4];
    for (o, d) in out.iter_mut().zip(d.as_chunks::<4>().0) {
        *o = vpaddq_s32(vpaddq_s32(d[0], d[1]), vpaddq_s32(d[2], d[3]));
    }
    out
}

/// `d + Σ w·x` over sixteen bytes into four 32-bit lanes: `SMULL`, `SMULL2` and two `SADALP`.
#[cfg(not(target_feature = "dotprod"))]
#[inline]
#[target_feature(enable = "neon")]
fn dot(d: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(w), vget_low_s8(x));
    let hi = vmull_high_s8(w, x);
    vpadalq_s16(vpadalq_s16(d, lo), hi)
}

/// `d + Σ w·x` over sixteen bytes into four 32-bit lanes: one `SDOT`.
#[cfg(target_feature = "dotprod")]
#[inline]
#[target_feature(enable = "neon")]
fn dot(d: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    sdot(d, w, x)
}

/// `v[start..start + len]`, if inside `v`.
#[inline(always)]
fn run(v: &[i8], start: usize, len: usize) -> Option<&[i8]> {
    v.get(start..)?.get(..len)
}

/// The sums of [`quad_words`] for the four channels from `first`.
#[inline]
#[target_feature(enable = "neon")]
fn quad(x: &[i8], w: &[i8], stride: usize, runs: Runs, z_x: i8, first: usize) -> [i32; 4] {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    let mut dots = [vdupq_n_s32(0); 4];
    let mut sums = [vdupq_n_s32(0); 4];
    let mut tail = [0i32; 4];
    'rows: for r in 0..rows {
        let Some(xs) = run(x, r * x_step, len) else {
            continue;
        };
        let mut ws = [&[][..]; 4];
        for (k, ws) in ws.iter_mut().enumerate() {
            let Some(f) = run(w, (first + k) * stride + r * w_step, len) else {
                continue 'rows;
            };
            *ws = f;
        }
        accumulate(xs, ws, &mut dots, &mut sums, &mut tail, z_x);
    }
    let mut out = [0i32; 4];
    for (((o, d), s), t) in out.iter_mut().zip(dots).zip(sums).zip(tail) {
        // ADDV adds modulo 2^32, like the lanes.
        let centred = vaddvq_s32(d).wrapping_sub((z_x as i32).wrapping_mul(vaddvq_s32(s)));
        *o = centred.wrapping_add(t);
    }
    out
}

/// One run of four channels (runs of equal length): raw products into `dots`, `Σ w` into
/// `sums` (both in 32-bit lanes), and the last fewer than eight bytes, centred, into `tail`.
#[inline]
#[target_feature(enable = "neon")]
fn accumulate(
    xs: &[i8],
    ws: [&[i8]; 4],
    dots: &mut [int32x4_t; 4],
    sums: &mut [int32x4_t; 4],
    tail: &mut [i32; 4],
    z_x: i8,
) {
    let (x16, x_rest) = xs.as_chunks::<16>();
    // Every filter's chunks cut to exactly the activations' count, so that the compiler sees
    // each index below in bounds (otherwise a check per filter and chunk).
    let n = x16.len();
    let mut w16: [&[[i8; 16]]; 4] = [&[]; 4];
    let mut w_rest: [&[i8]; 4] = [&[]; 4];
    for ((c, r), w) in w16.iter_mut().zip(&mut w_rest).zip(ws) {
        let (chunks, rest) = w.as_chunks::<16>();
        // Runs of equal length: never short.
        let Some(chunks) = chunks.get(..n) else {
            return;
        };
        (*c, *r) = (chunks, rest);
    }
    let (mut d, mut s) = (*dots, *sums);
    let [w0, w1, w2, w3] = w16;
    // Blocks of FLUSH chunks, every slice cut to the block's length, so that one zip walks
    // them all with no index checks.
    for (b, xb) in x16.chunks(FLUSH).enumerate() {
        let block = b * FLUSH..b * FLUSH + xb.len();
        let (Some(w0), Some(w1), Some(w2), Some(w3)) = (
            w0.get(block.clone()),
            w1.get(block.clone()),
            w2.get(block.clone()),
            w3.get(block),
        ) else {
            return;
        };
        let mut p = [no_sums(); 4];
        for ((((x, w0), w1), w2), w3) in xb.iter().zip(w0).zip(w1).zip(w2).zip(w3) {
            let xv = load16(x);
            mac(&mut d[0], &mut p[0], load16(w0), xv);
            mac(&mut d[1], &mut p[1], load16(w1), xv);
            mac(&mut d[2], &mut p[2], load16(w2), xv);
            mac(&mut d[3], &mut p[3], load16(w3), xv);
        }
        for (s, p) in s.iter_mut().zip(p) {
            *s = fold(*s, p);
        }
    }
    // At most one 8-byte chunk, as sixteen bytes with zeros above (adding nothing), then fewer
    // than 8 single bytes.
    let (x8, x_rest) = x_rest.as_chunks::<8>();
    if let Some(x) = x8.first() {
        let xv = load8(x);
        let mut p = [no_sums(); 4];
        for ((d, p), w) in d.iter_mut().zip(&mut p).zip(&w_rest) {
            if let Some(w) = w.as_chunks::<8>().0.first() {
                mac(d, p, load8(w), xv);
            }
        }
        for (s, p) in s.iter_mut().zip(p) {
            *s = fold(*s, p);
        }
    }
    if !x_rest.is_empty() {
        for (t, w) in tail.iter_mut().zip(w_rest) {
            for (&w, &x) in w.as_chunks::<8>().1.iter().zip(x_rest) {
                *t = t.wrapping_add(w as i32 * (x as i32 - z_x as i32));
            }
        }
    }
    (*dots, *sums) = (d, s);
}

/// Partial sums of `Σ w` within [`FLUSH`] chunks: eight 16-bit lanes (`SADALP` of bytes).
#[cfg(not(target_feature = "dotprod"))]
type WeightSums = int16x8_t;

/// Partial sums of `Σ w` within [`FLUSH`] chunks: four 32-bit lanes (`SDOT` against ones).
#[cfg(target_feature = "dotprod")]
type WeightSums = int32x4_t;

/// Empty [`WeightSums`].
#[inline]
#[target_feature(enable = "neon")]
fn no_sums() -> WeightSums {
    #[cfg(not(target_feature = "dotprod"))]
    return vdupq_n_s16(0);
    #[cfg(target_feature = "dotprod")]
    return vdupq_n_s32(0);
}

/// `s + p`, the partial [`WeightSums`] `p` folded into 32-bit lanes (`SADALP`, or `ADD`).
#[inline]
#[target_feature(enable = "neon")]
fn fold(s: int32x4_t, p: WeightSums) -> int32x4_t {
    #[cfg(not(target_feature = "dotprod"))]
    return vpadalq_s16(s, p);
    #[cfg(target_feature = "dotprod")]
    return vaddq_s32(s, p);
}

/// `d += Σ w·x` pairwise into four 32-bit lanes and `s += Σ w` pairwise into eight 16-bit
/// lanes, over sixteen bytes: `SMULL`, `SMULL2`, two `SADALP` and one `SADALP` of bytes.
#[cfg(not(target_feature = "dotprod"))]
#[inline]
#[target_feature(enable = "neon")]
fn mac(d: &mut int32x4_t, s: &mut WeightSums, w: int8x16_t, x: int8x16_t) {
    let lo = vmull_s8(vget_low_s8(w), vget_low_s8(x));
    let hi = vmull_high_s8(w, x);
    *d = vpadalq_s16(vpadalq_s16(*d, lo), hi);
    *s = vpadalq_s8(*s, w);
}

/// `d += Σ w·x` and `s += Σ w` by fours into four 32-bit lanes, over sixteen bytes: two `SDOT`,
/// the second against ones.
#[cfg(target_feature = "dotprod")]
#[inline]
#[target_feature(enable = "neon")]
fn mac(d: &mut int32x4_t, s: &mut WeightSums, w: int8x16_t, x: int8x16_t) {
    *d = sdot(*d, w, x);
    *s = sdot(*s, w, vdupq_n_s8(1));
}

/// `acc + Σ a·b` by groups of four bytes into each 32-bit lane: one `SDOT`.
#[cfg(target_feature = "dotprod")]
#[inline(always)]
fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction, which the build promises the CPU has
    // (`target_feature = "dotprod"`); no memory, stack or flags touched.
    unsafe {
        core::arch::asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// One depthwise output pixel of `acc.len()` consecutive channels:
/// `acc[j] = Σ_taps (w[t.w + j] − z_w)·(x[t.x + j] − z_x)`, wrapping. Returns `false`, touching
/// nothing, if a tap's channels would leave `x` or `w`.
#[inline]
pub(crate) fn depthwise_pixel(
    x: &[i8],
    w: &[i8],
    taps: &[Tap],
    z_x: i8,
    z_w: i8,
    acc: &mut [i32],
) -> bool {
    if !Tap::all_inside(taps, acc.len(), x, w) {
        return false;
    }
    // SAFETY: every tap's channels lie inside `x` and `w` (checked above), the body's contract;
    // NEON is part of the aarch64 baseline: every CPU this code is compiled for has it.
    unsafe { pixel(x, w, taps, z_x, z_w, acc) };
    true
}

/// [`depthwise_pixel`]'s body: sixteen channels a step, each tap's bytes widened and centred
/// (`SSUBL`, `SSUBL2`) and multiplied into four 32-bit lanes (`SMLAL`, `SMLAL2`); then eight
/// channels the same way from 8-byte loads, and fewer than eight in plain Rust.
///
/// # Safety
/// The CPU has NEON (every aarch64 CPU), and for every tap `t`: `t.x + acc.len() ≤ x.len()`
/// and `t.w + acc.len() ≤ w.len()` (the vector loads are unchecked).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn pixel(x: &[i8], w: &[i8], taps: &[Tap], z_x: i8, z_w: i8, acc: &mut [i32]) {
    let (cx, cw) = (vdupq_n_s8(z_x), vdupq_n_s8(z_w));
    let (a16, rest) = acc.as_chunks_mut::<16>();
    for (g, out) in a16.iter_mut().enumerate() {
        let c = 16 * g;
        let mut l = [vdupq_n_s32(0); 4];
        for t in taps {
            // SAFETY: c + 16 ≤ acc.len(), so both 16-byte loads end inside their slices (this
            // function's contract).
            let (xv, wv) = unsafe { (load16_at(x, t.x + c), load16_at(w, t.w + c)) };
            let (xl, xh) = (
                vsubl_s8(vget_low_s8(xv), vget_low_s8(cx)),
                vsubl_high_s8(xv, cx),
            );
            let (wl, wh) = (
                vsubl_s8(vget_low_s8(wv), vget_low_s8(cw)),
                vsubl_high_s8(wv, cw),
            );
            l[0] = vmlal_s16(l[0], vget_low_s16(xl), vget_low_s16(wl));
            l[1] = vmlal_high_s16(l[1], xl, wl);
            l[2] = vmlal_s16(l[2], vget_low_s16(xh), vget_low_s16(wh));
            l[3] = vmlal_high_s16(l[3], xh, wh);
        }
        *out = lanes16(l);
    }
    let c = 16 * a16.len();
    let (a8, rest) = rest.as_chunks_mut::<8>();
    if let Some(out) = a8.first_mut() {
        let mut l = [vdupq_n_s32(0); 2];
        for t in taps {
            // SAFETY: c + 8 ≤ acc.len(), so both 8-byte loads end inside their slices (this
            // function's contract).
            let (xv, wv) = unsafe { (load8_at(x, t.x + c), load8_at(w, t.w + c)) };
            let xl = vsubl_s8(vget_low_s8(xv), vget_low_s8(cx));
            let wl = vsubl_s8(vget_low_s8(wv), vget_low_s8(cw));
            l[0] = vmlal_s16(l[0], vget_low_s16(xl), vget_low_s16(wl));
            l[1] = vmlal_high_s16(l[1], xl, wl);
        }
        let (o4, _) = out.as_chunks_mut::<4>();
        for (o, v) in o4.iter_mut().zip(l) {
            *o = lanes4(v);
        }
    }
    let c = c + 8 * a8.len();
    for (j, a) in rest.iter_mut().enumerate() {
        let mut sum = 0i32;
        for t in taps {
            let (Some(&xv), Some(&wv)) = (x.get(t.x + c + j), w.get(t.w + c + j)) else {
                continue;
            };
            sum = sum.wrapping_add((wv as i32 - z_w as i32) * (xv as i32 - z_x as i32));
        }
        *a = sum;
    }
}

/// Bytes `at..at + 16` of `v`.
///
/// # Safety
/// `at + 16 ≤ v.len()`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load16_at(v: &[i8], at: usize) -> int8x16_t {
    debug_assert!(at.checked_add(16).is_some_and(|end| end <= v.len()));
    // SAFETY: the 16 bytes lie inside `v` (contract); LD1 has no alignment requirement.
    unsafe { vld1q_s8(v.as_ptr().add(at)) }
}

/// Bytes `at..at + 8` of `v` in the low half, zeros above.
///
/// # Safety
/// `at + 8 ≤ v.len()`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load8_at(v: &[i8], at: usize) -> int8x16_t {
    debug_assert!(at.checked_add(8).is_some_and(|end| end <= v.len()));
    // SAFETY: the 8 bytes lie inside `v` (contract); LD1 has no alignment requirement.
    vcombine_s8(unsafe { vld1_s8(v.as_ptr().add(at)) }, vdup_n_s8(0))
}

/// The four lanes of a vector.
#[inline]
#[target_feature(enable = "neon")]
fn lanes4(v: int32x4_t) -> [i32; 4] {
    let mut out = [0i32; 4];
    // SAFETY: `out` is sixteen writable bytes; ST1 has no alignment requirement.
    unsafe { core::arch::aarch64::vst1q_s32(out.as_mut_ptr(), v) };
    out
}

/// The sixteen lanes of four vectors, in order.
#[inline]
#[target_feature(enable = "neon")]
fn lanes16(l: [int32x4_t; 4]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (o, v) in out.as_chunks_mut::<4>().0.iter_mut().zip(l) {
        *o = lanes4(v);
    }
    out
}

/// Four i32 as a vector.
#[inline]
#[target_feature(enable = "neon")]
fn load_i32x4(v: &[i32; 4]) -> int32x4_t {
    // SAFETY: `v` is sixteen readable bytes; LD1 has no alignment requirement.
    unsafe { vld1q_s32(v.as_ptr()) }
}

/// The output stage of a block of up to [`BLOCK`] channels whose stages are all plain
/// ([`ChannelRequant::is_plain`]) or round once (single rounding), as vectors:
/// `ys[j] = clamp(scale(b[j] + acc[j]) + z_y)`, sixteen channels a step, the same integers as
/// `conv::output_stage` (unit-tested against it on random and extreme values).
///
/// * Double rounding: `SQRDMULH` is `⌊(2·a·m + 2^31) / 2^32⌋ = ⌊(a·m + 2^30) / 2^31⌋`, SRDHM
///   exactly (its saturating case, `a = m = i32::MIN`, is not plain); then
///   `RDBPOT(h, n) = ⌊(h − [h < 0] + 2^(n−1)) / 2^n⌋`: the sign bit of `h & −n` (0 for `n = 0`)
///   added saturating (only `i32::MIN` would wrap, and its result is the same), then `SRSHL` by
///   `−n`, which rounds without overflow.
/// * Single rounding: the high words of the 64-bit `SMULL` products, plus `2^(right − 33)`
///   (wrapping), then `SSHL` by `−(right − 32)` (arithmetic, flooring), as `scale_plain`.
/// * Single rounding with a stage that is not plain (a right shift of 32 or less: most stages
///   of a 2-bit layer, whose output scale is close to the accumulator's): the whole 64-bit
///   `SMULL` products through `SRSHL` by `−right`, which adds `2^(right − 1)` and shifts without
///   overflow, and their low words (`UZP1`), exactly `ChannelRequant::scale`.
///
/// Then `SQXTN` to 16 bits, `+ z_y` saturating and the clamp in 16-bit lanes, and `SQXTN` to
/// bytes (a value past ±2^15 clamps to the same bound either way).
pub(crate) struct BlockStages {
    bias: [[i32; 4]; BLOCK / 4],
    m: [[i32; 4]; BLOCK / 4],
    /// The right shift, negated: `−n` (double) or `−(right − 32)` (single).
    shift: [[i32; 4]; BLOCK / 4],
    /// Single rounding's rounding term, `2^(right − 33)`; 0 for double rounding.
    add: [[i32; 4]; BLOCK / 4],
    double: bool,
    /// Single rounding with a stage that is not plain: `shift` holds `−right`, `add` zeros.
    whole: bool,
    z_y: i16,
    lo: i16,
    hi: i16,
}

impl BlockStages {
    /// The vector stages of `stage` with its `bias`, or `None` if the lengths differ or exceed
    /// [`BLOCK`], or a double-rounding stage is not plain.
    pub(crate) fn new(
        stage: &[ChannelRequant],
        bias: &[i32],
        double: bool,
        z_y: i8,
        clamp: Clamp,
    ) -> Option<Self> {
        let whole = !stage.iter().all(|s| s.is_plain());
        if stage.len() != bias.len() || stage.len() > BLOCK || (whole && double) {
            return None;
        }
        // Lanes past the stages get zeros (outputs discarded).
        let mut v = Self {
            bias: [[0; 4]; BLOCK / 4],
            m: [[0; 4]; BLOCK / 4],
            shift: [[0; 4]; BLOCK / 4],
            add: [[0; 4]; BLOCK / 4],
            double,
            whole,
            z_y: z_y as i16,
            lo: clamp.min as i16,
            hi: clamp.max as i16,
        };
        let lanes = stage.iter().zip(bias).zip(
            v.bias
                .as_flattened_mut()
                .iter_mut()
                .zip(v.m.as_flattened_mut())
                .zip(v.shift.as_flattened_mut())
                .zip(v.add.as_flattened_mut()),
        );
        for ((s, &b), (((vb, vm), vs), va)) in lanes {
            let (m, mask, right) = s.plain_parts();
            *vb = b;
            *vm = m;
            if double || whole {
                *vs = -(right as i32);
            } else {
                *vs = -(right as i32 - 32);
                *va = mask;
            }
        }
        Some(v)
    }

    /// `ys[j]` from `acc[j]`, over their common length (at most [`BLOCK`]).
    pub(crate) fn apply(&self, acc: &[i32], ys: &mut [i8]) {
        // SAFETY: NEON is part of the aarch64 baseline: every CPU this code is compiled for has
        // it.
        unsafe { self.apply_neon(acc, ys) }
    }

    /// [`Self::apply`]'s body.
    #[target_feature(enable = "neon")]
    fn apply_neon(&self, acc: &[i32], ys: &mut [i8]) {
        let n = acc.len().min(ys.len());
        let (acc16, acc_tail) = acc[..n].as_chunks::<16>();
        let (ys16, ys_tail) = ys[..n].as_chunks_mut::<16>();
        for (g, (y, a)) in ys16.iter_mut().zip(acc16).enumerate() {
            *y = self.sixteen(a, g);
        }
        if !ys_tail.is_empty() && ys16.len() < BLOCK / 16 {
            // The last partial sixteen, through a padded copy (lanes past it ignored).
            let mut a = [0i32; 16];
            a[..acc_tail.len()].copy_from_slice(acc_tail);
            let y = self.sixteen(&a, ys16.len());
            ys_tail.copy_from_slice(&y[..ys_tail.len()]);
        }
    }

    /// Sixteen outputs, of channels `16·g..16·g + 16`.
    #[inline]
    #[target_feature(enable = "neon")]
    fn sixteen(&self, acc: &[i32; 16], g: usize) -> [i8; 16] {
        let mut s = [vdupq_n_s32(0); 4];
        let (a4, _) = acc.as_chunks::<4>();
        for (k, (s, a)) in s.iter_mut().zip(a4).enumerate() {
            let i = 4 * g + k;
            let (Some(b), Some(m), Some(sh), Some(add)) = (
                self.bias.get(i),
                self.m.get(i),
                self.shift.get(i),
                self.add.get(i),
            ) else {
                continue;
            };
            let v = vaddq_s32(load_i32x4(a), load_i32x4(b));
            let (m, sh) = (load_i32x4(m), load_i32x4(sh));
            *s = if self.double {
                let h = vqrdmulhq_s32(v, m);
                let fix = vshrq_n_s32::<31>(vandq_s32(h, sh));
                vrshlq_s32(vqaddq_s32(h, fix), sh)
            } else if self.whole {
                // Each lane's shift (−right, sign-extended) beside its 64-bit product.
                let lo = vrshlq_s64(
                    vmull_s32(vget_low_s32(v), vget_low_s32(m)),
                    vmovl_s32(vget_low_s32(sh)),
                );
                let hi = vrshlq_s64(vmull_high_s32(v, m), vmovl_high_s32(sh));
                vuzp1q_s32(vreinterpretq_s32_s64(lo), vreinterpretq_s32_s64(hi))
            } else {
                let lo = vmull_s32(vget_low_s32(v), vget_low_s32(m));
                let hi = vmull_high_s32(v, m);
                let high = vuzp2q_s32(vreinterpretq_s32_s64(lo), vreinterpretq_s32_s64(hi));
                vshlq_s32(vaddq_s32(high, load_i32x4(add)), sh)
            };
        }
        let (z_y, lo, hi) = (
            vdupq_n_s16(self.z_y),
            vdupq_n_s16(self.lo),
            vdupq_n_s16(self.hi),
        );
        let clamp = |v: int16x8_t| vminq_s16(vmaxq_s16(vqaddq_s16(v, z_y), lo), hi);
        let a = clamp(vcombine_s16(vqmovn_s32(s[0]), vqmovn_s32(s[1])));
        let b = clamp(vcombine_s16(vqmovn_s32(s[2]), vqmovn_s32(s[3])));
        let v = vcombine_s8(vqmovn_s16(a), vqmovn_s16(b));
        let mut out = [0i8; 16];
        // SAFETY: `out` is sixteen writable bytes; ST1 has no alignment requirement.
        unsafe { vst1q_s8(out.as_mut_ptr(), v) };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::simd::host_tests::{self as simd_tests, bytes};
    use crate::test_rng::XorShift32;

    /// `quad_words` against the scalar centred sums: run lengths on both sides of the 16- and
    /// 8-byte chunks and past [`FLUSH`] chunks (with weights all −128 there, the largest `Σ w`),
    /// zero points at the extremes, one to three quads, and a run outside the tensors left out.
    #[test]
    fn quads_equal_centred_sums() {
        for len in [1usize, 7, 8, 9, 15, 16, 17, 24, 31, 48, 192, 1031, 2100] {
            for z_x in [-128i8, -1, 0, 3, 127] {
                for quads in 1..=3 {
                    let (rows, x_step, w_step, stride) = (3, len + 5, len + 2, 3 * (len + 2) + 1);
                    let runs = Runs {
                        rows,
                        len,
                        x_step,
                        w_step,
                    };
                    let x = bytes(rows * x_step, len as u32);
                    let w = if len > 1024 && z_x < 0 {
                        vec![-128i8; 4 * quads * stride]
                    } else {
                        bytes(4 * quads * stride, (300 + z_x as i32) as u32)
                    };
                    let mut got = vec![[0i32; 4]; quads];
                    quad_words(&x, &w, stride, runs, z_x, &mut got);
                    for (c, &g) in got.as_flattened().iter().enumerate() {
                        let mut e = 0i32;
                        for r in 0..rows {
                            for i in 0..len {
                                let (wv, xv) = (w[c * stride + r * w_step + i], x[r * x_step + i]);
                                e = e.wrapping_add(wv as i32 * (xv as i32 - z_x as i32));
                            }
                        }
                        assert_eq!(g, e, "{ISA} len {len} z_x {z_x} channel {c}");
                    }
                }
            }
        }
        // The last channel's second run ends past `w`: that run is left out (for the pass's
        // every channel, as on x86-64), the first kept.
        let runs = Runs {
            rows: 2,
            len: 16,
            x_step: 16,
            w_step: 16,
        };
        let (x, w) = ([1i8; 32], [1i8; 4 * 32 - 1]);
        let mut got = [[0i32; 4]];
        quad_words(&x, &w, 32, runs, 0, &mut got);
        assert_eq!(got, [[16, 16, 16, 16]]);
    }

    /// Whole windows through [`DenseFilters`] against the scalar centred sums: blocks of 1 to
    /// 64 channels (the last group 4, 8, 12 or 16 wide, the last quad partial), tap rows of 1
    /// to 200 bytes (filters on both sides of sixteen bytes), windows ending at the input's
    /// last byte, zero points at the extremes; windows that are not whole are refused.
    #[test]
    fn dense_filters_equal_centred_sums() {
        let mut rng = XorShift32::new(0xDE45_E001);
        let mut dense = DenseFilters::new();
        let mut tried = 0;
        for case in 0..600u32 {
            let rows = 1 + rng.below(4) as usize;
            let len = 1 + rng.below(if case % 3 == 0 { 200 } else { 40 }) as usize;
            let filter_len = rows * len;
            let fit = DenseFilters::block(filter_len);
            if fit == 0 {
                continue;
            }
            let nb = 1 + rng.below(fit as u32) as usize;
            let z_x = [-128i8, 127, 0, rng.next_u32() as i8][rng.below(4) as usize];
            let filters = bytes(nb * filter_len, case);
            assert!(dense.load(&filters, filter_len, len, z_x));
            let x_step = len + rng.below(20) as usize;
            // Ending exactly at the input's last byte half the time.
            let x_len = (rows - 1) * x_step + len + if case % 2 == 0 { 0 } else { 17 };
            let x = bytes(x_len, case + 7);
            let runs = Runs {
                rows,
                len,
                x_step,
                w_step: len,
            };
            let mut got = vec![7i32; nb];
            assert!(dense.window(&x, runs, &mut got));
            for (c, &g) in got.iter().enumerate() {
                let f = &filters[c * filter_len..(c + 1) * filter_len];
                let mut e = 0i32;
                for r in 0..rows {
                    for i in 0..len {
                        let (wv, xv) = (f[r * len + i] as i32, x[r * x_step + i] as i32);
                        e = e.wrapping_add(wv * (xv - z_x as i32));
                    }
                }
                assert_eq!(
                    g, e,
                    "{ISA} case {case} rows {rows} len {len} nb {nb} ch {c}"
                );
            }
            // Not whole, or past the input: refused, nothing written.
            let mut acc = vec![7i32; nb];
            let short = Runs {
                len: len - 1,
                ..runs
            };
            assert!(len == 1 || !dense.window(&x, short, &mut acc));
            assert!(!dense.window(
                &x[..x_len - 1 - (x_len - (rows - 1) * x_step - len)],
                runs,
                &mut acc
            ));
            assert!(acc.iter().all(|&a| a == 7));
            tried += 1;
        }
        assert!(tried > 400, "{tried}");
        // Too many channels for the block: not loaded.
        assert!(!dense.load(&[0; 65 * 9], 9, 3, 0));
        assert!(!dense.window(
            &[0; 9],
            Runs {
                rows: 3,
                len: 3,
                x_step: 3,
                w_step: 3
            },
            &mut [0]
        ));
    }

    #[test]
    fn depthwise_pixel_equals_centred_sums() {
        simd_tests::depthwise_pixel_equals_centred_sums(ISA, depthwise_pixel);
    }

    #[test]
    fn single_stages_of_any_shift_equal_scalar_output_stage() {
        simd_tests::single_stages_equal_scalar_output_stage(
            ISA,
            true,
            &mut |stage, bias, double, z_y, clamp, acc, out| {
                BlockStages::new(stage, bias, double, z_y, clamp)
                    .map(|v| v.apply(acc, out))
                    .is_some()
            },
        );
    }

    #[test]
    fn plain_stages_equal_scalar_output_stage() {
        simd_tests::plain_stages_equal_scalar_output_stage(
            ISA,
            &mut |stage, bias, double, z_y, clamp, acc, out| {
                BlockStages::new(stage, bias, double, z_y, clamp)
                    .map(|v| v.apply(acc, out))
                    .is_some()
            },
        );
    }
}
