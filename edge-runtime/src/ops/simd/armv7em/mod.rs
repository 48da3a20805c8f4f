//! The Armv7E-M DSP kernels (Cortex-M4/M7, and Cortex-M33 built with the DSP extension): the
//! 8-bit convolution's quads of channels (`quad_words`, one `asm!` loop, which
//! [`super::window`] dispatches to), [`window_packed`] for 4- and 2-bit weights unpacked in
//! registers, over one-instruction wrappers (module `instructions`), one tap of four depthwise
//! channels ([`lanes4`], eight register-only instructions), one depthwise pixel ([`dw_pixel`]),
//! 1×1 convolutions with their output stage ([`pointwise`]; at W2A2 four MACs per `SMLAD` in
//! [`pointwise_a2`]), the fused double-rounding output
//! stages of a strip of sums ([`stage_double`], [`stage_narrow`]), average pooling
//! ([`avg_pixels`]) and elementwise Add over tabled inputs ([`add_narrow`]). Each kernel is a
//! safe entry point that checks every bound the assembly relies on, then the assembly.
//!
//! The instructions, as CMSIS-NN's `arm_nn_mat_mult_kernel_s8_s16` uses them:
//! * `SXTB16` / `SXTB16 …, ROR #8`: sign-extend bytes 0 and 2 (or 1 and 3) of a word into two
//!   16-bit halves (CMSIS-NN's `read_and_pad_reordered`);
//! * `SXTAB16`: the same plus a per-half offset (CMSIS-NN's `read_and_pad` with the input
//!   offset), which centres activations, `x − z_x` in −255..=255, at no extra cost;
//! * `SMLAD`: `acc + lo(a)·lo(b) + hi(a)·hi(b)` over signed 16-bit halves, two MACs in one
//!   instruction, wrapping modulo 2^32 (it only sets the sticky Q flag on overflow).
//!
//! Splitting both operands of a product with the same extraction pairs byte `i` of one with byte
//! `i` of the other, so `smlad(sxtb16(w), sxtab16(−z, x)) + smlad(sxtb16_ror8(w),
//! sxtab16_ror8(−z, x))` is exactly `Σ_i w_i·(x_i − z)` over the four bytes: neither operand needs
//! reordering, and the sum is the same exact integer the reference kernel forms.
//!
//! `cfg(edge_dsp)` is set by `build.rs` for Armv7E-M targets (Cortex-M4, M7) and for Armv8-M
//! Mainline (Cortex-M33) built with `-C target-feature=+dsp`. Elsewhere the same loops run on a
//! portable model of the instructions (module `instructions`), so the kernels are tested on the
//! host (module `tests`); those targets never call them (`conv::conv2d` and the other ops
//! dispatch to them only under `cfg(edge_dsp)`).

#![allow(unsafe_code)]

mod instructions;
pub(crate) mod pointwise_a2;
#[cfg(all(test, not(edge_dsp)))]
mod tests;

#[cfg(edge_dsp)]
use core::arch::asm;

#[cfg(all(test, not(edge_dsp)))]
use instructions::word;
use instructions::{
    add16, clamp8, pkhbt, pkhtb, smlad, smulbb, smultb, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8,
};

use super::Runs;

/// `asm!` of a loop (label `1`) whose every pass runs `$lane`, one channel's instructions, four
/// times in a row (the four copies are the same instructions: each steps its pointers past its
/// channel), then `$step`, the end of the pass, which branches back to `1` or falls through;
/// `$operands` are the block's operands and options. The lane is written once so that the
/// copies cannot drift apart.
#[cfg(edge_dsp)]
macro_rules! four_lane_loop {
    ([$($lane:literal,)*], [$($step:literal,)*], $($operands:tt)*) => {
        asm!(
            "1:",
            $($lane,)*
            $($lane,)*
            $($lane,)*
            $($lane,)*
            $($step,)*
            $($operands)*
        )
    };
}

/// `v` in both 16-bit halves of a word: the offset operand of `SXTAB16`.
#[inline(always)]
pub(crate) const fn splat16(v: i16) -> u32 {
    let h = v as u16 as u32;
    h | h << 16
}

/// `acc[j] += (w_j − z_w)·(x_j − z_x)` for the four bytes `j` of `x` and `w`: one tap of four
/// depthwise channels, `centre` being [`splat16`]`(−z_x)` and `centre_w` [`splat16`]`(−z_w)`
/// (0 for symmetric weights). Both factors fit 16 bits (−255..=255). On Armv7E-M eight
/// register-only instructions (`SXTAB16` four times, then `SMLABB`/`SMLATT`, one exact MAC
/// each); elsewhere plain Rust.
#[inline(always)]
pub(crate) fn lanes4(x: &[i8; 4], w: &[i8; 4], centre: u32, centre_w: u32, acc: &mut [i32; 4]) {
    #[cfg(edge_dsp)]
    {
        let xw = u32::from_le_bytes(x.map(|v| v as u8));
        let ww = u32::from_le_bytes(w.map(|v| v as u8));
        let [mut a0, mut a1, mut a2, mut a3] = *acc;
        // SAFETY: register-only instructions of every Armv7E-M core (cfg(edge_dsp)); SMLAxy may
        // set the sticky Q flag, which nothing reads, so flags are not declared preserved.
        unsafe {
            asm!(
                "sxtab16 {x02}, {off}, {x}",
                "sxtab16 {x13}, {off}, {x}, ror #8",
                "sxtab16 {w02}, {offw}, {w}",
                "sxtab16 {w13}, {offw}, {w}, ror #8",
                "smlabb {a0}, {w02}, {x02}, {a0}",
                "smlatt {a2}, {w02}, {x02}, {a2}",
                "smlabb {a1}, {w13}, {x13}, {a1}",
                "smlatt {a3}, {w13}, {x13}, {a3}",
                x = in(reg) xw,
                w = in(reg) ww,
                off = in(reg) centre,
                offw = in(reg) centre_w,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                x02 = out(reg) _,
                x13 = out(reg) _,
                w02 = out(reg) _,
                w13 = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        *acc = [a0, a1, a2, a3];
    }
    #[cfg(not(edge_dsp))]
    {
        let z = -(centre as u16 as i16 as i32);
        let z_w = -(centre_w as u16 as i16 as i32);
        for ((a, &w), &x) in acc.iter_mut().zip(w).zip(x) {
            *a = a.wrapping_add((w as i32 - z_w) * (x as i32 - z));
        }
    }
}

/// The taps of one depthwise pixel for [`dw_taps4`]: `rows` valid tap rows of `cols` valid
/// taps, the input's taps `step` bytes apart along a row and its rows `x_row` bytes apart, the
/// table's rows `kw` taps apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DwTaps {
    /// Valid tap rows (at least 1).
    pub rows: usize,
    /// Valid taps of a row (at least 1, at most `kw`).
    pub cols: usize,
    /// Input bytes from one tap of a row to the next (`C·dilation_w`).
    pub step: usize,
    /// Input bytes from one valid row's first tap to the next's.
    pub x_row: usize,
    /// Taps of a whole kernel row (the table's row length).
    pub kw: usize,
}

/// One depthwise weight table word: the centred weights `lo` and `hi` as the low and high
/// signed 16-bit halves (each in −255..=255).
#[inline(always)]
pub(crate) const fn pair16(lo: i32, hi: i32) -> u32 {
    (lo as u32 & 0xffff) | (hi as u32) << 16
}

/// The largest input step [`dw_taps4`] takes as an immediate (Thumb-2 post-indexed `LDR`).
pub(crate) const DW_MAX_STEP: usize = 252;

/// `acc[4g + j] = Σ_taps (w − z_w)·(x − z_x)` for `acc.len() / 4` groups of four depthwise
/// channels over one pixel's valid taps (issue 18): group `g`'s input from `x[4g..]` (the
/// first valid tap's channel `4g`), its table from `table[g·group_words..]` (from the first
/// valid tap's entry, two words per tap: [`pair16`] of channels 0 and 2, then of 1 and 3,
/// weights already centred on `z_w`), `centre` = [`splat16`]`(−z_x)`.
///
/// On Armv7E-M one `asm!` block for the whole pixel, each group's four accumulators in
/// registers: per tap one `LDR` of the four input bytes (post-indexed by the step, an
/// immediate: one copy of the block per step, a multiple of 4 up to [`DW_MAX_STEP`]), two
/// `SXTAB16` (widen and centre), one `LDRD` of the table and four `SMLABB`/`SMLATT`, eight
/// instructions per four MACs; taps two at a time, one `LDM` per row for its bookkeeping, one
/// `STM` per group for its sums. Returns `false`, touching nothing, if a tap would leave `x` or
/// `table`, the geometry is empty, `acc` holds no whole group, or the step is not one the
/// block has a copy for.
#[inline(always)]
pub(crate) fn dw_pixel(
    x: &[i8],
    table: &[u32],
    group_words: usize,
    t: DwTaps,
    centre: u32,
    out: DwOut<'_>,
) -> bool {
    let DwTaps {
        rows,
        cols,
        step,
        kw,
        ..
    } = t;
    let n = match &out {
        DwOut::Sums(acc) => acc.len(),
        DwOut::Stage { y, bias, stages } => {
            if bias.len() < y.len() || stages.len() < y.len() {
                return false;
            }
            y.len()
        }
    };
    let groups = n / 4;
    if rows == 0
        || cols == 0
        || cols > kw
        || groups == 0
        || !n.is_multiple_of(4)
        || step > DW_MAX_STEP
        || !step.is_multiple_of(4)
    {
        return false;
    }
    match dw_ends(t, groups, group_words) {
        Some((x_end, w_end)) if x_end <= x.len() && w_end <= table.len() => {}
        _ => return false,
    }
    dw_pixel_checked(x, table, group_words, t, centre, out)
}

/// Where [`dw_pixel`]'s reads end: the last group's last tap's four bytes in `x`, and its last
/// table row's `cols` pairs of words; `None` if the registers' arithmetic could overflow. A
/// function, not a closure, so that it is always inlined (outlined it costs tens of
/// instructions a pixel).
#[inline(always)]
fn dw_ends(t: DwTaps, groups: usize, group_words: usize) -> Option<(usize, usize)> {
    let DwTaps {
        rows,
        cols,
        step,
        x_row,
        kw,
    } = t;
    // rows, cols, groups ≥ 1 (checked by `dw_pixel`), so the subtractions do not wrap.
    let x_end = rows
        .wrapping_sub(1)
        .checked_mul(x_row)?
        .checked_add(cols.wrapping_sub(1).checked_mul(step)?)?
        .checked_add(4 * groups)?;
    let w_end = rows
        .wrapping_sub(1)
        .checked_mul(kw.checked_mul(2)?)?
        .checked_add(2 * cols)?
        .checked_add(groups.wrapping_sub(1).checked_mul(group_words)?)?;
    // The group stride and the rows' table bytes must fit the registers' arithmetic.
    group_words.checked_mul(4)?;
    rows.checked_mul(kw)?.checked_mul(8)?;
    Some((x_end, w_end))
}

/// Where [`dw_pixel`] puts a pixel's sums.
pub(crate) enum DwOut<'a> {
    /// The raw sums, four per group.
    Sums(&'a mut [i32]),
    /// Requantized into `y` (one byte per channel, four per group) by each channel's
    /// [`FastStage`], the sums starting from `bias`.
    Stage {
        /// The pixel's output bytes of these channels.
        y: &'a mut [i8],
        /// Per channel, the bias the sum starts from.
        bias: &'a [i32],
        /// Per channel, its output stage.
        stages: &'a [FastStage],
    },
}

/// An output stage in four instructions (`SMMLA`, `ASR`, `SSAT #8`, `ASR`), exact for single
/// rounding with a right shift of at least 33 (`is_plain`) when the output clamp is the whole
/// range of `k`-bit codes: `y = clamp(((b + acc)·m >> 32) + 2^(sh − 1)) >> sh) + z_y)` with
/// `sh = right − 32` is `ssat8((((b + acc)·m >> 32) + ra) >> (sh − j)) >> j`, where
/// `ra = 2^(sh − 1) + z_y·2^sh` (no overflow for `sh ≤ 20`) and `j = 8 − k`: the value
/// `u = floor(h / 2^(sh − j))` lies in `[v·2^j, v·2^j + 2^j − 1]` for `v = floor(h / 2^sh)`, so
/// saturating `u` to 8 bits and shifting `j` back saturates `v` to `k` bits. Smaller right
/// shifts (down to left shifts) take it too with the accumulators scaled (see
/// [`FastStage::single`]).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct FastStage {
    /// The multiplier `m`.
    pub m: i32,
    /// `2^(sh − 1) + z_y·2^sh`.
    pub ra: i32,
    /// `sh − j`.
    pub s1: u32,
    /// `j = 8 − k`.
    pub j: u32,
}

/// The smaller shifts that give single rounding's clamped outputs of `shift` (see
/// [`FastStage::saturating`]), smallest first, for multiplier `m`, output zero point `z_y`,
/// clamp `[lo, hi]` and accumulators of magnitude at most `max_acc`: with `m > 0`, `v(acc) =
/// floor((acc·m + 2^(r − 1)) / 2^r)` (`r = 31 − shift`) is nondecreasing in `acc` and in
/// `shift`, and `v(0) = 0`. If a shift `s`'s `v_s(1) ≥ hi − z_y` and `v_s(−1) ≤ lo − z_y`,
/// every `acc ≥ 1` has `v(acc) ≥ v_s(acc) ≥ v_s(1)` and every `acc ≤ −1` has `v(acc) ≤ v_s(acc)
/// ≤ v_s(−1)`: both clamp to `hi` (resp. `lo`), and `acc = 0` gives `z_y` for both. That holds
/// as long as the reference's `v` is exact, i.e. `|v(±max_acc)|` fits in i32 (it truncates the
/// 64-bit quotient to i32); checked here (else none). Of the shifts that saturate, the smallest
/// ones (`2^(s − 1) ≥ T` for `T = max(hi − z_y, z_y − lo, 1)`, since `m ≥ 2^30`, or one more)
/// are offered, each checked exactly; the caller's stage must still take one.
fn saturating_shifts(
    m: i32,
    shift: i32,
    z_y: i8,
    lo: i8,
    hi: i8,
    max_acc: u64,
) -> [Option<i32>; 2] {
    if m <= 0 || max_acc >= 1 << 31 {
        return [None; 2];
    }
    let shift = shift.clamp(-31, 30);
    // v for a shift, exactly (|a| ≤ 2^31, m < 2^31, r in 1..=62).
    let v = |a: i64, sh: i32| -> i64 {
        let r = 31 - sh;
        (a * i64::from(m) + (1i64 << (r - 1))) >> r
    };
    let big = i64::from(i32::MAX);
    let a = max_acc as i64;
    if v(a, shift) > big || v(-a, shift) < -big - 1 {
        return [None; 2];
    }
    let (z, lo, hi) = (i64::from(z_y), i64::from(lo), i64::from(hi));
    let t = (hi - z).max(z - lo).max(1) as u64;
    // ceil(log2 t) for t in 1..=255.
    let c = (64 - (t - 1).leading_zeros()) as i32;
    [c, c + 1].map(|s| (s < shift && v(1, s) >= hi - z && v(-1, s) <= lo - z).then_some(s))
}

impl FastStage {
    /// The fast stage of multiplier `m` and `shift` for single rounding with output zero point
    /// `z_y` and clamp `[lo, hi]`, for accumulators of magnitude at most `max_acc`, if it is
    /// exactly the usual one (see [`FastStage`]), and the power `pre` of two by which the
    /// accumulators must be scaled for it (their weights and bias, in the caller's table).
    ///
    /// `sh` must be at least `max(1, j)`: a smaller one (a left or small right shift, as 2- and
    /// 4-bit models have) is raised to that by `pre`, single rounding's `floor((acc·m +
    /// 2^(r − 1)) / 2^r)` being the same fraction for `acc·2^pre` and `r + pre`. Then the scaled
    /// accumulator must be exact: `max_acc·2^pre < 2^31` (the reference's accumulator, which it
    /// bounds, is then exact too).
    ///
    /// A multiplier so large that the stage's scaled accumulator would not fit (large left
    /// shifts, as some 2-bit layers have) is replaced by a smaller one that saturates the same
    /// way: see [`FastStage::saturating`].
    pub(crate) fn single(
        m: i32,
        shift: i32,
        z_y: i8,
        lo: i8,
        hi: i8,
        max_acc: u64,
    ) -> Option<(Self, u32)> {
        Self::single_exact(m, shift, z_y, lo, hi, max_acc)
            .or_else(|| Self::saturating(m, shift, z_y, lo, hi, max_acc))
    }

    /// [`FastStage::single`] for a `shift` it cannot take as it is: the stage of a smaller shift
    /// with the same clamped outputs ([`saturating_shifts`]), the first it takes.
    fn saturating(
        m: i32,
        shift: i32,
        z_y: i8,
        lo: i8,
        hi: i8,
        max_acc: u64,
    ) -> Option<(Self, u32)> {
        saturating_shifts(m, shift, z_y, lo, hi, max_acc)
            .into_iter()
            .flatten()
            .find_map(|s| Self::single_exact(m, s, z_y, lo, hi, max_acc))
    }

    /// [`FastStage::single`] for exactly the stage of `shift` (see [`FastStage`]).
    fn single_exact(
        m: i32,
        shift: i32,
        z_y: i8,
        lo: i8,
        hi: i8,
        max_acc: u64,
    ) -> Option<(Self, u32)> {
        // The clamp: all k-bit codes, k in 1..=8.
        let k = (1..=8u32).find(|&k| i32::from(lo) == -(1 << (k - 1)))?;
        if i32::from(hi) != (1 << (k - 1)) - 1 {
            return None;
        }
        let j = 8 - k;
        // Single rounding's right shift is 31 − shift (shift clamped to −31..=30); plain
        // stages have right ≥ 33.
        let shift = shift.clamp(-31, 30);
        let sh = -1 - shift; // right − 32
        let pre = (j.max(1) as i32 - sh).max(0);
        let sh = sh + pre;
        if sh > 20 {
            return None;
        }
        // max_acc·2^pre < 2^31, i.e. max_acc < 2^(31 − pre) (no shift that could wrap).
        if pre > 0 && (pre > 31 || max_acc >= 1u64 << (31 - pre)) {
            return None;
        }
        let ra = (1i32 << (sh - 1)) + i32::from(z_y) * (1 << sh);
        Some((
            Self {
                m,
                ra,
                s1: (sh - j as i32) as u32,
                j,
            },
            pre as u32,
        ))
    }

    /// The stage on the portable model of its instructions.
    #[cfg_attr(any(edge_dsp, not(test)), allow(dead_code))]
    fn apply(&self, acc: i32) -> i8 {
        let h = ((i64::from(acc) * i64::from(self.m)) >> 32) as i32;
        let h = h.wrapping_add(self.ra);
        let u = (h >> self.s1).clamp(-128, 127);
        (u >> self.j) as i8
    }
}

/// [`dw_pixel`] once its bounds are checked.
#[cfg(edge_dsp)]
#[inline(always)]
fn dw_pixel_checked(
    x: &[i8],
    table: &[u32],
    group_words: usize,
    t: DwTaps,
    centre: u32,
    out: DwOut<'_>,
) -> bool {
    // Zeros for the raw sums' start.
    const ZEROS: [i32; 4] = [0; 4];
    let (groups, out_ptr, bias, stages): (usize, *mut u8, *const i32, *const FastStage) = match out
    {
        DwOut::Sums(acc) => (
            acc.len() / 4,
            acc.as_mut_ptr().cast(),
            ZEROS.as_ptr(),
            core::ptr::null(),
        ),
        DwOut::Stage { y, bias, stages } => (
            y.len() / 4,
            y.as_mut_ptr().cast(),
            bias.as_ptr(),
            stages.as_ptr(),
        ),
    };
    let io = DwIo {
        groups,
        out: out_ptr,
        bias,
        stages,
    };
    macro_rules! steps {
        ($($s:literal)*) => {
            match t.step {
                $($s => dw_asm::<$s>(x, table, group_words, t, centre, io),)*
                _ => return false,
            }
        };
    }
    steps!(4 8 12 16 20 24 28 32 36 40 44 48 52 56 60 64 72 80 88 96 104 112 120 128 144 160
        176 192 208 224 240 252);
    true
}

/// The outputs of [`dw_asm`]: `groups` groups, their sums to `out` as `i32`s (`stages` null,
/// `bias` four zeros, reused by every group) or requantized to `out` as bytes (`bias` and
/// `stages` one per channel).
#[cfg(edge_dsp)]
#[derive(Clone, Copy)]
struct DwIo {
    groups: usize,
    out: *mut u8,
    bias: *const i32,
    stages: *const FastStage,
}

/// The block of [`dw_pixel`] for input step `STEP` (bounds checked by the caller).
#[cfg(edge_dsp)]
#[inline(always)]
fn dw_asm<const STEP: usize>(
    x: &[i8],
    table: &[u32],
    group_words: usize,
    t: DwTaps,
    centre: u32,
    io: DwIo,
) {
    // Bytes added at a row's end: to the next row's first tap, and past the kernel row's
    // invalid taps in the table.
    let x_skip = t.x_row.wrapping_sub(t.cols * STEP);
    let w_skip = (t.kw - t.cols) * 8;
    // SAFETY: for group g < groups, valid row r < rows and tap i < cols the block reads the
    // word at x + 4g + r·x_row + i·STEP and the two words at table + g·group_words +
    // 2·(r·kw + i), all inside the slices (`dw_pixel` checked the last group's last ones, and
    // every other lies below them); `table` is a `u32` slice, so LDRD's alignment holds. Rows
    // end when the table pointer reaches the group's start + rows·kw·8 bytes, which it does
    // exactly (cols·8 in the taps plus the skip of (kw − cols)·8 per row); `rows, cols,
    // groups ≥ 1`, so every loop runs at least once and the tap loop `cols` times (an odd
    // first tap, then pairs). Group g starts from the four words at `bias` (+ 16g bytes with
    // stages: `dw_pixel` checked that `bias` and `stages` have one entry per channel, and
    // `bias` is four zeros otherwise) and writes its four sums to `out + 16g` (`out` being an
    // `i32` slice of 4·groups) or, with stages, reads its channels' four `FastStage`s (16
    // bytes each, `repr(C)`) and writes four bytes to `out + 4g` (a byte slice of 4·groups).
    // Besides those it writes only its own 48 bytes below the stack pointer, released before
    // it ends, and its register operands. SMLAxy and SSAT may set the sticky Q flag, which
    // nothing reads. Registers are named because `LDM`/`STM` take them in ascending order.
    unsafe {
        asm!(
            "sub sp, sp, #48",
            "str r0, [sp]",        // x skip
            "str r1, [sp, #4]",    // w skip
            "str r2, [sp, #12]",   // cols
            "str r3, [sp, #16]",   // groups left
            "str r4, [sp, #20]",   // this group's x
            "str r5, [sp, #24]",   // this group's table
            "str r9, [sp, #28]",   // where its outputs go
            "str r10, [sp, #32]",  // table bytes per group
            "str r11, [sp, #36]",  // table bytes of the valid rows
            "str r12, [sp, #40]",  // its stages (0: raw sums)
            "str lr, [sp, #44]",   // its biases
            "5:",
            "ldr r4, [sp, #20]",
            "ldr r5, [sp, #24]",
            "ldr r9, [sp, #36]",
            "add r9, r9, r5",
            "str r9, [sp, #8]",    // the table's end for this group
            "ldr r12, [sp, #12]",
            "ldr r9, [sp, #44]",
            "ldm r9, {{r0, r1, r2, r3}}",
            "2:",
            "lsrs r12, r12, #1",
            "bcc 3f",
            "ldr r9, [r4], #{step}",
            "sxtab16 r10, r8, r9",
            "sxtab16 r9, r8, r9, ror #8",
            "ldrd r11, lr, [r5], #8",
            "smlabb r0, r11, r10, r0",
            "smlatt r2, r11, r10, r2",
            "smlabb r1, lr, r9, r1",
            "smlatt r3, lr, r9, r3",
            "beq 4f",              // flags of the LSRS: no pair left
            "3:",
            "ldr r9, [r4], #{step}",
            "sxtab16 r10, r8, r9",
            "sxtab16 r9, r8, r9, ror #8",
            "ldrd r11, lr, [r5], #8",
            "smlabb r0, r11, r10, r0",
            "smlatt r2, r11, r10, r2",
            "smlabb r1, lr, r9, r1",
            "smlatt r3, lr, r9, r3",
            "ldr r9, [r4], #{step}",
            "sxtab16 r10, r8, r9",
            "sxtab16 r9, r8, r9, ror #8",
            "ldrd r11, lr, [r5], #8",
            "smlabb r0, r11, r10, r0",
            "smlatt r2, r11, r10, r2",
            "smlabb r1, lr, r9, r1",
            "smlatt r3, lr, r9, r3",
            "subs r12, r12, #1",
            "bne 3b",
            "4:",
            "ldm sp, {{r9, r10, r11, r12}}", // x skip, w skip, table end, cols
            "add r4, r4, r9",
            "add r5, r5, r10",
            "cmp r5, r11",
            "bne 2b",
            "ldr r4, [sp, #40]",
            "ldr r5, [sp, #28]",
            "cmp r4, #0",
            "beq 6f",
            "ldm r4!, {{r9, r10, r11, r12}}", // m, ra, sh − j, j
            "smmla r0, r0, r9, r10",
            "asr r0, r0, r11",
            "ssat r0, #8, r0",
            "asr r0, r0, r12",
            "strb r0, [r5], #1",
            "ldm r4!, {{r9, r10, r11, r12}}",
            "smmla r1, r1, r9, r10",
            "asr r1, r1, r11",
            "ssat r1, #8, r1",
            "asr r1, r1, r12",
            "strb r1, [r5], #1",
            "ldm r4!, {{r9, r10, r11, r12}}",
            "smmla r2, r2, r9, r10",
            "asr r2, r2, r11",
            "ssat r2, #8, r2",
            "asr r2, r2, r12",
            "strb r2, [r5], #1",
            "ldm r4!, {{r9, r10, r11, r12}}",
            "smmla r3, r3, r9, r10",
            "asr r3, r3, r11",
            "ssat r3, #8, r3",
            "asr r3, r3, r12",
            "strb r3, [r5], #1",
            "str r4, [sp, #40]",
            "ldr r9, [sp, #44]",
            "adds r9, r9, #16",
            "str r9, [sp, #44]",
            "b 7f",
            "6:",
            "stm r5!, {{r0, r1, r2, r3}}",
            "7:",
            "str r5, [sp, #28]",
            "ldr r9, [sp, #20]",
            "adds r9, r9, #4",
            "str r9, [sp, #20]",
            "ldr r9, [sp, #24]",
            "ldr r10, [sp, #32]",
            "add r9, r9, r10",
            "str r9, [sp, #24]",
            "ldr r9, [sp, #16]",
            "subs r9, r9, #1",
            "str r9, [sp, #16]",
            "bne 5b",
            "add sp, sp, #48",
            step = const STEP,
            inout("r0") x_skip => _,
            inout("r1") w_skip => _,
            inout("r2") t.cols => _,
            inout("r3") io.groups => _,
            inout("r4") x.as_ptr() => _,
            inout("r5") table.as_ptr() => _,
            in("r8") centre,
            inout("r9") io.out => _,
            inout("r10") group_words * 4 => _,
            inout("r11") t.rows * t.kw * 8 => _,
            inout("r12") io.stages => _,
            inout("lr") io.bias => _,
        );
    }
}

/// [`dw_pixel`] once its bounds are checked: the same loop on the portable model of the
/// instructions (host tests; no target without `edge_dsp` dispatches here).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
fn dw_pixel_checked(
    x: &[i8],
    table: &[u32],
    group_words: usize,
    t: DwTaps,
    centre: u32,
    mut out: DwOut<'_>,
) -> bool {
    let smla = |acc: i32, w: u32, x: u32, hi: bool| {
        let s = if hi { 16 } else { 0 };
        acc.wrapping_add(((w >> s) as i16 as i32) * ((x >> s) as i16 as i32))
    };
    let groups = match &out {
        DwOut::Sums(acc) => acc.len() / 4,
        DwOut::Stage { y, .. } => y.len() / 4,
    };
    for g in 0..groups {
        let mut a = match &out {
            DwOut::Sums(_) => [0i32; 4],
            DwOut::Stage { bias, .. } => [0, 1, 2, 3].map(|j| bias[4 * g + j]),
        };
        for r in 0..t.rows {
            for i in 0..t.cols {
                let at = 4 * g + r * t.x_row + i * t.step;
                let Some(xb) = x.get(at..at + 4) else {
                    return false;
                };
                let xw = u32::from_le_bytes([xb[0] as u8, xb[1] as u8, xb[2] as u8, xb[3] as u8]);
                let (x02, x13) = (sxtab16(centre, xw), sxtab16_ror8(centre, xw));
                let k = g * group_words + 2 * (r * t.kw + i);
                let (Some(&w02), Some(&w13)) = (table.get(k), table.get(k + 1)) else {
                    return false;
                };
                a[0] = smla(a[0], w02, x02, false);
                a[2] = smla(a[2], w02, x02, true);
                a[1] = smla(a[1], w13, x13, false);
                a[3] = smla(a[3], w13, x13, true);
            }
        }
        match &mut out {
            DwOut::Sums(acc) => acc[4 * g..4 * g + 4].copy_from_slice(&a),
            DwOut::Stage { y, stages, .. } => {
                for j in 0..4 {
                    y[4 * g + j] = stages[4 * g + j].apply(a[j]);
                }
            }
        }
    }
    true
}

/// Words of the stack table [`pointwise`] reads (1 KiB): every group of four output channels
/// takes [`pw_group_words`]`(C_in)` of them.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) const PW_TABLE_WORDS: usize = 256;

/// Table words of one group of four output channels for [`pointwise`] with `cin` input
/// channels: four biases, two words per channel and four inputs, three stage words per channel.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) const fn pw_group_words(cin: usize) -> usize {
    4 + 2 * cin + 12
}

/// One channel's output stage in [`pointwise`]'s table: `y = ssat_K(((acc'·m) >> 32) + ra) >>
/// s)`, where `acc' = acc·2^pre` (the table's weights and bias already scaled by `2^pre`).
///
/// Exact for single rounding with the output clamp the whole range of `K`-bit codes: single
/// rounding is `floor((acc·m + 2^(r − 1)) / 2^r)` with `r = 31 − shift = 32 + sh`; scaled by
/// `2^pre` it is the same fraction with `r + pre = 32 + s` (`s = sh + pre`), and floor divisions
/// compose, so it is `floor((floor(acc'·m / 2^32) + 2^(s − 1) + z_y·2^s) / 2^s) − z_y`. `pre` is
/// the least that makes `s ≥ 1` (0 for every stage with `shift ≤ −2`), and when it is not 0 the
/// accumulator bound `|acc|·2^pre < 2^31` is required, so that `acc'` is the exact scaled sum.
/// With `s ≤ 20`, `|floor(acc'·m / 2^32)| ≤ 2^30` and `|ra| < 2^28` the sum cannot overflow, the
/// reference's quotient fits 32 bits (so its `as i32` does not truncate) and its saturating
/// `+ z_y` does not saturate: `SSAT #K` then is its clamp.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PwStage {
    /// The multiplier `m`.
    pub m: i32,
    /// `2^(s − 1) + z_y·2^s`.
    pub ra: i32,
    /// `s`, in 1..=20.
    pub s: u32,
    /// `pre`: the weights and bias are scaled by `2^pre`.
    pub pre: u32,
}

#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
impl PwStage {
    /// The stage of multiplier `m` and `shift` (single rounding) with output zero point `z_y`
    /// and the clamp of all `k`-bit codes, for accumulators of magnitude at most `max_acc`, if
    /// [`PwStage`]'s conditions hold; else, for a shift too large for them (the left shifts of
    /// some 2-bit layers), the stage of a smaller shift with the same clamped outputs
    /// ([`saturating_shifts`]).
    #[inline(always)]
    pub(crate) fn single(m: i32, shift: i32, z_y: i8, k: u32, max_acc: u64) -> Option<Self> {
        Self::single_exact(m, shift, z_y, max_acc)
            .or_else(|| Self::single_saturating(m, shift, z_y, k, max_acc))
    }

    /// [`PwStage::single`] for a shift it cannot take as it is (out of line: rare).
    #[inline(never)]
    fn single_saturating(m: i32, shift: i32, z_y: i8, k: u32, max_acc: u64) -> Option<Self> {
        let lim = 1i32 << (k.clamp(1, 8) - 1);
        saturating_shifts(m, shift, z_y, -lim as i8, (lim - 1) as i8, max_acc)
            .into_iter()
            .flatten()
            .find_map(|s| Self::single_exact(m, s, z_y, max_acc))
    }

    /// [`PwStage::single`] for exactly the stage of `shift`.
    #[inline(always)]
    fn single_exact(m: i32, shift: i32, z_y: i8, max_acc: u64) -> Option<Self> {
        let sh = -1 - shift.clamp(-31, 30); // r − 32
        let pre = (1 - sh).max(0);
        let s = sh + pre;
        if !(1..=20).contains(&s) {
            return None;
        }
        // max_acc·2^pre < 2^31, i.e. max_acc < 2^(31 − pre) (no shift that could wrap).
        if pre > 0 && (pre > 31 || max_acc >= 1u64 << (31 - pre)) {
            return None;
        }
        let ra = (1i32 << (s - 1)) + i32::from(z_y) * (1 << s);
        Some(Self {
            m,
            ra,
            s: s as u32,
            pre: pre as u32,
        })
    }

    /// The stage of multiplier `m` and `shift` for double rounding (TFLM's default) with output
    /// zero point `z_y`, the whole int8 range as clamp, channel bias `bias` and accumulators
    /// (before the bias) of magnitude at most `max_acc`, if it has a [`NarrowStage`]: then the
    /// words are that stage's `m`, `c` and `right`, and `pre = 1` doubles the weights and bias
    /// into the doubled accumulator it takes (`SMMLAR`, `SUB`, `ASR`, `SSAT #8` in
    /// [`pointwise`] with `DOUBLE`).
    pub(crate) fn double(m: i32, shift: i32, bias: i32, z_y: i8, max_acc: u64) -> Option<Self> {
        let st = NarrowStage::new(m, shift, bias, z_y, max_acc)?;
        Some(Self {
            m: st.m,
            ra: st.c,
            s: st.right,
            pre: 1,
        })
    }

    /// A stage made by [`double`](Self::double) on the portable model of its instructions,
    /// for the doubled accumulator `a2`.
    #[cfg_attr(any(edge_dsp, not(test)), allow(dead_code))]
    fn apply_double(&self, a2: i32) -> i8 {
        let st = NarrowStage {
            m: self.m,
            bias2: 0,
            c: self.ra,
            right: self.s,
        };
        st.finish(a2)
    }

    /// The stage on the portable model of its instructions (`SMMLA`, `ASR`, `SSAT #K`).
    #[cfg_attr(any(edge_dsp, not(test)), allow(dead_code))]
    fn apply<const K: u32>(&self, acc: i32) -> i8 {
        let h = (((i64::from(acc) * i64::from(self.m)) >> 32) as i32).wrapping_add(self.ra);
        let lim = 1i32 << (K - 1);
        (h >> self.s).clamp(-lim, lim - 1) as i8
    }
}

/// The geometry of one call of [`pointwise`]: `pixels` output pixels, pixel `i`'s `cin` input
/// channels from `x[i·x_step..]`, its outputs to `y[i·y_step..]`.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct PwRun {
    /// Output pixels.
    pub pixels: usize,
    /// Input channels (a multiple of 8).
    pub cin: usize,
    /// Input bytes from one pixel to the next.
    pub x_step: usize,
    /// Output bytes from one pixel to the next (`C_out`).
    pub y_step: usize,
}

/// A 1×1 convolution over `run.pixels` pixels against `groups` groups of four output channels
/// (issue 18), requantized in the loop: for each pixel and group, `acc[j] = bias'[j] + Σ_ci
/// w'[j][ci]·x[ci]` and `y[4g + j] = ssat_K(…)` ([`PwStage`]), `table` holding per group the
/// four biases, per four inputs the channels' weights as [`pair16`] words (inputs 0 and 2, then
/// 1 and 3), and the four stages (`m`, `ra`, `s`). The caller folds everything else into the
/// table: the weights centred on `z_w` and scaled by `2^pre`, `−z_x·Σ w'` into the bias, so
/// that raw activations go in (`SXTB16`).
///
/// On Armv7E-M one `asm!` block: per four inputs and group one `LDR` and two `SXTB16`, then per
/// channel one `LDRD` and two `SMLAD` (15 instructions per 16 MACs); per channel five for the
/// output stage (`LDM`, `SMMLA`, `ASR`, `SSAT`, `STRB`). With `DOUBLE` the stages are
/// [`PwStage::double`]'s (TFLM's double rounding, one more instruction: `SMMLAR` and `SUB` for
/// `SMMLA`) and `K` must be 8. Returns `false`, touching nothing, if `K` is not 2, 4 or 8 (8
/// with `DOUBLE`), `cin` is not a positive multiple of 8, or a pixel would leave `x`, `y` or
/// `table`.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) fn pointwise<const K: u32, const DOUBLE: bool>(
    x: &[i8],
    table: &[u32],
    groups: usize,
    run: PwRun,
    y: &mut [i8],
) -> bool {
    let PwRun {
        pixels,
        cin,
        x_step,
        y_step,
    } = run;
    if !matches!(K, 2 | 4 | 8) || (DOUBLE && K != 8) {
        return false;
    }
    if pixels == 0 || groups == 0 || cin == 0 || cin % 8 != 0 {
        return false;
    }
    let ends = || -> Option<(usize, usize, usize)> {
        let x_end = (pixels - 1).checked_mul(x_step)?.checked_add(cin)?;
        let y_end = (pixels - 1)
            .checked_mul(y_step)?
            .checked_add(groups.checked_mul(4)?)?;
        let t_end = groups.checked_mul(pw_group_words(cin))?;
        // The pointers' steps must fit the registers' arithmetic.
        t_end.checked_mul(4)?;
        Some((x_end, y_end, t_end))
    };
    match ends() {
        Some((x_end, y_end, t_end))
            if x_end <= x.len()
                && y_end <= y.len()
                && t_end <= table.len()
                && y_step >= 4 * groups =>
        {
            pointwise_checked::<K, DOUBLE>(x, table, groups, run, y);
            true
        }
        _ => false,
    }
}

/// [`pointwise`] once its bounds are checked.
#[cfg(edge_dsp)]
#[inline(always)]
fn pointwise_checked<const K: u32, const DOUBLE: bool>(
    x: &[i8],
    table: &[u32],
    groups: usize,
    run: PwRun,
    y: &mut [i8],
) {
    let t_end = table
        .as_ptr()
        .wrapping_add(groups * pw_group_words(run.cin));
    // The loop with the given output stage lines (four channels, r0–r3).
    macro_rules! pointwise_loop {
        ($($stage:literal,)*) => {
            asm!(
                "sub sp, sp, #32",
                "str r0, [sp]",        // pixels left
                "str r1, [sp, #4]",    // input bytes from pixel to pixel
                "str r2, [sp, #8]",    // table start
                "str r3, [sp, #12]",   // table end
                "str r5, [sp, #16]",   // output bytes past the block, pixel to pixel
                "str r12, [sp, #20]",  // cin
                "1:",
                "str r4, [sp, #24]",   // this pixel's input
                "ldr r12, [sp, #20]",
                "add r12, r12, r4",    // its end
                "ldr r5, [sp, #8]",
                "2:",
                "ldm r5!, {{r0, r1, r2, r3}}",
                "3:",
                "ldr r9, [r4], #4",
                "sxtb16 r8, r9",
                "sxtb16 r9, r9, ror #8",
                "ldrd r10, r11, [r5], #8",
                "smlad r0, r10, r8, r0",
                "smlad r0, r11, r9, r0",
                "ldrd r10, r11, [r5], #8",
                "smlad r1, r10, r8, r1",
                "smlad r1, r11, r9, r1",
                "ldrd r10, r11, [r5], #8",
                "smlad r2, r10, r8, r2",
                "smlad r2, r11, r9, r2",
                "ldrd r10, r11, [r5], #8",
                "smlad r3, r10, r8, r3",
                "smlad r3, r11, r9, r3",
                "ldr r9, [r4], #4",
                "sxtb16 r8, r9",
                "sxtb16 r9, r9, ror #8",
                "ldrd r10, r11, [r5], #8",
                "smlad r0, r10, r8, r0",
                "smlad r0, r11, r9, r0",
                "ldrd r10, r11, [r5], #8",
                "smlad r1, r10, r8, r1",
                "smlad r1, r11, r9, r1",
                "ldrd r10, r11, [r5], #8",
                "smlad r2, r10, r8, r2",
                "smlad r2, r11, r9, r2",
                "ldrd r10, r11, [r5], #8",
                "smlad r3, r10, r8, r3",
                "smlad r3, r11, r9, r3",
                "cmp r4, r12",
                "bne 3b",
                "ldr r4, [sp, #24]",
                $($stage,)*
                "ldr r8, [sp, #12]",
                "cmp r5, r8",
                "bne 2b",
                "ldr r8, [sp, #16]",
                "add lr, lr, r8",
                "ldr r8, [sp, #4]",
                "add r4, r4, r8",
                "ldr r8, [sp]",
                "subs r8, r8, #1",
                "str r8, [sp]",
                "bne 1b",
                "add sp, sp, #32",
                k = const K,
                inout("r0") run.pixels => _,
                inout("r1") run.x_step => _,
                inout("r2") table.as_ptr() => _,
                inout("r3") t_end => _,
                inout("r4") x.as_ptr() => _,
                inout("r5") run.y_step - 4 * groups => _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                inout("r12") run.cin => _,
                inout("lr") y.as_mut_ptr() => _,
            )
        };
    }
    // SAFETY: for pixel i < pixels the block reads the `cin` input bytes at x + i·x_step (whole
    // words, 8 at a time: cin is a positive multiple of 8) and, for each group, the group's
    // table words, all inside the slices (`pointwise` checked the last pixel's input, the last
    // group's words and the last pixel's outputs; every other lies below them); `table` is a
    // `u32` slice, so LDRD's and LDM's alignment holds. The input loop ends exactly at the
    // pixel's end pointer (x + cin), the group loop exactly at `t_end` (each group advances the
    // table pointer by exactly its words: 4 biases, 2·cin weights, 12 stage words). Per pixel it
    // writes 4·groups bytes at y + i·y_step (y_step ≥ 4·groups, so they are inside `y`).
    // Besides those it writes only its own 32 bytes below the stack pointer, released before
    // it ends, and its register operands. SMLAD and SSAT may set the sticky Q flag, which
    // nothing reads. Registers are named because `LDM` takes them in ascending order. The two
    // variants differ only in the output stages' instructions (registers r0–r3 and r8–r10,
    // the same words).
    unsafe {
        if DOUBLE {
            pointwise_loop!(
                "ldm r5!, {{r8, r9, r10}}",
                "smmlar r9, r0, r8, r9",
                "sub r0, r9, r0, lsr #31",
                "asr r0, r0, r10",
                "ssat r0, #{k}, r0",
                "strb r0, [lr], #1",
                "ldm r5!, {{r8, r9, r10}}",
                "smmlar r9, r1, r8, r9",
                "sub r1, r9, r1, lsr #31",
                "asr r1, r1, r10",
                "ssat r1, #{k}, r1",
                "strb r1, [lr], #1",
                "ldm r5!, {{r8, r9, r10}}",
                "smmlar r9, r2, r8, r9",
                "sub r2, r9, r2, lsr #31",
                "asr r2, r2, r10",
                "ssat r2, #{k}, r2",
                "strb r2, [lr], #1",
                "ldm r5!, {{r8, r9, r10}}",
                "smmlar r9, r3, r8, r9",
                "sub r3, r9, r3, lsr #31",
                "asr r3, r3, r10",
                "ssat r3, #{k}, r3",
                "strb r3, [lr], #1",
            );
        } else {
            pointwise_loop!(
                "ldm r5!, {{r8, r9, r10}}",
                "smmla r0, r0, r8, r9",
                "asr r0, r0, r10",
                "ssat r0, #{k}, r0",
                "strb r0, [lr], #1",
                "ldm r5!, {{r8, r9, r10}}",
                "smmla r1, r1, r8, r9",
                "asr r1, r1, r10",
                "ssat r1, #{k}, r1",
                "strb r1, [lr], #1",
                "ldm r5!, {{r8, r9, r10}}",
                "smmla r2, r2, r8, r9",
                "asr r2, r2, r10",
                "ssat r2, #{k}, r2",
                "strb r2, [lr], #1",
                "ldm r5!, {{r8, r9, r10}}",
                "smmla r3, r3, r8, r9",
                "asr r3, r3, r10",
                "ssat r3, #{k}, r3",
                "strb r3, [lr], #1",
            );
        }
    }
}

/// [`pointwise`] once its bounds are checked: the same loop on the portable model of the
/// instructions (host tests; no target without `edge_dsp` dispatches here).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
fn pointwise_checked<const K: u32, const DOUBLE: bool>(
    x: &[i8],
    table: &[u32],
    groups: usize,
    run: PwRun,
    y: &mut [i8],
) {
    let gw = pw_group_words(run.cin);
    for i in 0..run.pixels {
        for g in 0..groups {
            let t = &table[g * gw..(g + 1) * gw];
            let mut a = [t[0] as i32, t[1] as i32, t[2] as i32, t[3] as i32];
            for k in 0..run.cin / 4 {
                let xb = &x[i * run.x_step + 4 * k..][..4];
                let xw = u32::from_le_bytes([xb[0] as u8, xb[1] as u8, xb[2] as u8, xb[3] as u8]);
                let (x02, x13) = (sxtb16(xw), sxtb16_ror8(xw));
                for (j, a) in a.iter_mut().enumerate() {
                    let w = &t[4 + 8 * k + 2 * j..];
                    *a = smlad(w[1], x13, smlad(w[0], x02, *a));
                }
            }
            for (j, &a) in a.iter().enumerate() {
                let st = &t[4 + 2 * run.cin + 3 * j..];
                let stage = PwStage {
                    m: st[0] as i32,
                    ra: st[1] as i32,
                    s: st[2],
                    pre: 0,
                };
                y[i * run.y_step + 4 * g + j] = if DOUBLE {
                    stage.apply_double(a)
                } else {
                    stage.apply::<K>(a)
                };
            }
        }
    }
}

/// Words of the stack table [`window_wide`] reads (1,600 bytes): 200 inputs of four filters
/// (a 5×5 over 8 channels, tabled once).
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) const WIDE_TABLE_WORDS: usize = 400;

/// The shape of one pixel's valid window for [`window_wide`]: `rows` runs of `len` input bytes
/// (a multiple of 4), the input runs `x_step` bytes apart, the table runs `t_step` words apart.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct WideRuns {
    /// Valid tap rows.
    pub rows: usize,
    /// Input bytes per run, a multiple of 4.
    pub len: usize,
    /// Input bytes from one run to the next, at least `len`.
    pub x_step: usize,
    /// Table words from one run to the next, at least `2·len`.
    pub t_step: usize,
}

/// `acc[i][j] += Σ_runs Σ_e w'[j][r, e]·(x[i·x_pixel + r·x_step + e] − z_x)` for
/// `acc.len()` output pixels `x_pixel` input bytes apart (the same valid taps) and four output
/// channels whose weights `w'` (16-bit, already centred on `z_w`) `table` holds as [`pair16`]
/// words, per four inputs eight words (channel 0's inputs 0 and 2, then 1 and 3, then channel
/// 1's, …): run `r` starts at word `r·t_step`, and input `e` of it lies in words `2e..2e + 8`
/// (issue 18).
///
/// On Armv7E-M one `asm!` block: per input word one `LDR` and two `SXTAB16` (widen and centre),
/// then per channel one `LDRD` and two `SMLAD` (15 instructions per 16 MACs, unrolled twice).
/// Returns `false`, touching nothing, if `len` is not a multiple of 4, a step is shorter than
/// its run, or a run would leave `x` or `table`.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[inline(always)]
pub(crate) fn window_wide(
    x: &[i8],
    table: &[u32],
    runs: WideRuns,
    x_pixel: usize,
    z_x: i8,
    acc: &mut [[i32; 4]],
) -> bool {
    let WideRuns {
        rows,
        len,
        x_step,
        t_step,
    } = runs;
    if rows == 0 || len == 0 || acc.is_empty() {
        return true;
    }
    if !len.is_multiple_of(4) || x_step < len || t_step / 2 < len {
        return false;
    }
    let ends = || -> Option<(usize, usize)> {
        let x_end = (rows - 1)
            .checked_mul(x_step)?
            .checked_add(len)?
            .checked_add((acc.len() - 1).checked_mul(x_pixel)?)?;
        let t_end = (rows - 1).checked_mul(t_step)?.checked_add(2 * len)?;
        // The pointers' steps must fit the registers' arithmetic.
        t_end.checked_mul(4)?;
        Some((x_end, t_end))
    };
    match ends() {
        Some((x_end, t_end)) if x_end <= x.len() && t_end <= table.len() => {
            window_wide_checked(x, table, runs, x_pixel, z_x, acc);
            true
        }
        _ => false,
    }
}

/// The two [`window_wide`] table words of the four weights in `w` (little-endian bytes) less
/// `z_w` (`minus_z_w` = [`splat16`]`(−z_w)`): inputs 0 and 2, then 1 and 3 (`SXTB16`, `UADD16`).
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[inline(always)]
pub(crate) fn wide_pairs(w: u32, minus_z_w: u32) -> [u32; 2] {
    [
        add16(sxtb16(w), minus_z_w),
        add16(sxtb16_ror8(w), minus_z_w),
    ]
}

/// [`wide_pairs`] of packed weights (low bits first, `shared_format::packing`) straight from
/// their bits, without unpacking them to bytes: `BITS` is 4 (`h` holds four weights in its low
/// 16 bits: one block of pairs, the second `[0, 0]`) or 2 (`h` holds eight in its low 16 bits:
/// two blocks). Flipping every field's sign bit (`h ^ 0x8888` or `h ^ 0xAAAA`) makes each field
/// `v` the biased code `v' = v + 2^(BITS − 1)`; `t = h' | h' << (16 − 2·BITS)` then holds a
/// block's weight 0 at bit 0 and weight 2 at bit 16, `t >> BITS` its weights 1 and 3 there
/// (the second 2-bit block: `t >> 8` and `t >> 10`); masked to `BITS` bits per 16-bit half,
/// one `UADD16` of `−2^(BITS − 1) − z_w` (`minus_z_w` = [`splat16`]`(−z_w)`) centres both
/// halves. Four instructions a pair after one `EOR` and one `ORR` per 16 bits.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[inline(always)]
pub(crate) fn packed_pairs<const BITS: u32>(h: u32, minus_z_w: u32) -> [[u32; 2]; 2] {
    let field = (1u32 << BITS) - 1;
    let sign = 1u32 << (BITS - 1);
    let mask = field | field << 16;
    // The sign bit of every field of the 16 bits.
    let flip = if BITS == 4 { 0x8888 } else { 0xAAAA };
    let centre = add16(minus_z_w, splat16(-(sign as i16)));
    let h = (h & 0xffff) ^ flip;
    let t = h | h << (16 - 2 * BITS);
    let pair = |shift: u32| add16((t >> shift) & mask, centre);
    if BITS == 4 {
        [[pair(0), pair(4)], [0, 0]]
    } else {
        [[pair(0), pair(2)], [pair(8), pair(10)]]
    }
}

/// [`window_wide`] once its bounds are checked.
#[cfg(edge_dsp)]
#[inline(always)]
fn window_wide_checked(
    x: &[i8],
    table: &[u32],
    runs: WideRuns,
    x_pixel: usize,
    z_x: i8,
    acc: &mut [[i32; 4]],
) {
    let WideRuns {
        rows,
        len,
        x_step,
        t_step,
    } = runs;
    // SAFETY: for pixel i < acc.len() and run r < rows the block reads the `len` input bytes at
    // x + i·x_pixel + r·x_step (whole words: len is a positive multiple of 4) and the 2·len
    // table words at table + r·t_step, all inside the slices (`window_wide` checked the last
    // pixel's last run's end and the last run's table words; every other lies below them);
    // `table` is a `u32` slice, so LDRD's alignment holds. The word loop ends exactly at the
    // run's end pointer (x + len; entered at its second half when len/4 is odd). It reads and
    // writes the 16 bytes of each `acc[i]` (an `&mut [[i32; 4]]` of `acc.len() ≥ 1` entries),
    // besides those only its own 40 bytes below the stack pointer, released before it ends,
    // and its register operands. SMLAD may set the sticky Q flag, which nothing reads.
    // Registers are named to keep the loop's twelve in registers.
    unsafe {
        asm!(
            "sub sp, sp, #40",
            "str r0, [sp]",        // pixels left
            "str r1, [sp, #4]",    // x_step − len
            "str r2, [sp, #8]",    // (t_step − 2·len)·4
            "str r3, [sp, #12]",   // len
            "str r12, [sp, #16]",  // this pixel's sums
            "str r8, [sp, #20]",   // runs
            "str r9, [sp, #24]",   // x_pixel
            "str r4, [sp, #28]",   // this pixel's input
            "str r5, [sp, #32]",   // table
            "5:",
            "ldm r12, {{r0, r1, r2, r3}}",
            "ldr r8, [sp, #20]",
            "str r8, [sp, #36]",   // runs left
            "1:",
            "ldr r8, [sp, #12]",
            "add r12, r8, r4",     // end of the run
            "tst r8, #4",
            "bne 3f",
            "2:",
            "ldr r9, [r4], #4",
            "sxtab16 r8, lr, r9",
            "sxtab16 r9, lr, r9, ror #8",
            "ldrd r10, r11, [r5], #8",
            "smlad r0, r10, r8, r0",
            "smlad r0, r11, r9, r0",
            "ldrd r10, r11, [r5], #8",
            "smlad r1, r10, r8, r1",
            "smlad r1, r11, r9, r1",
            "ldrd r10, r11, [r5], #8",
            "smlad r2, r10, r8, r2",
            "smlad r2, r11, r9, r2",
            "ldrd r10, r11, [r5], #8",
            "smlad r3, r10, r8, r3",
            "smlad r3, r11, r9, r3",
            "3:",
            "ldr r9, [r4], #4",
            "sxtab16 r8, lr, r9",
            "sxtab16 r9, lr, r9, ror #8",
            "ldrd r10, r11, [r5], #8",
            "smlad r0, r10, r8, r0",
            "smlad r0, r11, r9, r0",
            "ldrd r10, r11, [r5], #8",
            "smlad r1, r10, r8, r1",
            "smlad r1, r11, r9, r1",
            "ldrd r10, r11, [r5], #8",
            "smlad r2, r10, r8, r2",
            "smlad r2, r11, r9, r2",
            "ldrd r10, r11, [r5], #8",
            "smlad r3, r10, r8, r3",
            "smlad r3, r11, r9, r3",
            "cmp r4, r12",
            "bne 2b",
            "ldr r8, [sp, #4]",
            "add r4, r4, r8",
            "ldr r8, [sp, #8]",
            "add r5, r5, r8",
            "ldr r8, [sp, #36]",
            "subs r8, r8, #1",
            "str r8, [sp, #36]",
            "bne 1b",
            "ldr r12, [sp, #16]",
            "stm r12!, {{r0, r1, r2, r3}}",
            "str r12, [sp, #16]",
            "ldr r4, [sp, #28]",
            "ldr r8, [sp, #24]",
            "add r4, r4, r8",
            "str r4, [sp, #28]",
            "ldr r5, [sp, #32]",
            "ldr r8, [sp]",
            "subs r8, r8, #1",
            "str r8, [sp]",
            "bne 5b",
            "add sp, sp, #40",
            inout("r0") acc.len() => _,
            inout("r1") x_step - len => _,
            inout("r2") (t_step - 2 * len) * 4 => _,
            inout("r3") len => _,
            inout("r4") x.as_ptr() => _,
            inout("r5") table.as_ptr() => _,
            inout("r8") rows => _,
            inout("r9") x_pixel => _,
            out("r10") _,
            out("r11") _,
            inout("r12") acc.as_mut_ptr() => _,
            inout("lr") splat16(-(z_x as i16)) => _,
        );
    }
}

/// [`window_wide`] once its bounds are checked: the same loop on the portable model of the
/// instructions (host tests; no target without `edge_dsp` dispatches here).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
fn window_wide_checked(
    x: &[i8],
    table: &[u32],
    runs: WideRuns,
    x_pixel: usize,
    z_x: i8,
    acc: &mut [[i32; 4]],
) {
    let centre = splat16(-(z_x as i16));
    for (i, acc) in acc.iter_mut().enumerate() {
        for r in 0..runs.rows {
            for k in 0..runs.len / 4 {
                let xb = &x[i * x_pixel + r * runs.x_step + 4 * k..][..4];
                let xw = u32::from_le_bytes([xb[0] as u8, xb[1] as u8, xb[2] as u8, xb[3] as u8]);
                let (x02, x13) = (sxtab16(centre, xw), sxtab16_ror8(centre, xw));
                for (j, a) in acc.iter_mut().enumerate() {
                    let w = &table[r * runs.t_step + 8 * k + 2 * j..];
                    *a = smlad(w[1], x13, smlad(w[0], x02, *a));
                }
            }
        }
    }
}

/// One channel of [`stage_double`]: TFLM's double-rounding requantization
/// (`RDBPOT(SRDHM(acc, m), right)`, then `+ z_y` saturating and the int8 clamp) of an
/// accumulator `acc + bias` whose stage has no left shift and a multiplier other than
/// `i32::MIN`, as four words: `m`, `bias`, `mask = 2^right − 1` and `right` (0..=31).
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct DoubleStage {
    /// The multiplier `m` (not `i32::MIN`).
    pub m: i32,
    /// The channel's bias.
    pub bias: i32,
    /// `2^right − 1`.
    pub mask: i32,
    /// The right shift, 0..=31.
    pub right: u32,
}

#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
impl DoubleStage {
    /// The stage of multiplier `m`, exponent `shift` and `bias` for double rounding, if it has
    /// no left shift (`shift ≤ 0` once clamped to `[−31, 30]` as the reference does) and
    /// `m ≠ i32::MIN`: then SRDHM never saturates and the rounding is the one below.
    pub(crate) fn new(m: i32, shift: i32, bias: i32) -> Option<Self> {
        let shift = shift.clamp(-31, 30);
        if shift > 0 || m == i32::MIN {
            return None;
        }
        let right = (-shift) as u32;
        Some(Self {
            m,
            bias,
            mask: ((1i64 << right) - 1) as i32,
            right,
        })
    }

    /// The stage on the portable model of its instructions (`SMLAL`, `ASR`, `AND`, `QADD`,
    /// `SSAT #8`), for host tests.
    #[cfg_attr(any(edge_dsp, not(test)), allow(dead_code))]
    pub(crate) fn apply(&self, acc: i32, z_y: i8) -> i8 {
        let a = acc.wrapping_add(self.bias);
        let high = ((i64::from(a) * i64::from(self.m) + (1 << 30)) >> 31) as i32;
        let threshold = (self.mask >> 1) + i32::from(high < 0);
        let r = (high >> self.right) + i32::from((high & self.mask) > threshold);
        r.saturating_add(i32::from(z_y)).clamp(-128, 127) as i8
    }
}

/// `y[i·y_step + j] = stages[j](acc[i][j])` for the `acc.len()` pixels of a strip and four
/// channels ([`DoubleStage`]; the output clamp the whole int8 range). On Armv7E-M one `asm!`
/// block, 18 instructions per output and 4 per pixel. Returns `false`, touching nothing, if
/// `y_step < 4` or the last pixel's outputs would leave `y`.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) fn stage_double(
    acc: &[[i32; 4]],
    stages: &[DoubleStage; 4],
    z_y: i8,
    y: &mut [i8],
    y_step: usize,
) -> bool {
    if acc.is_empty() {
        return true;
    }
    let end = (acc.len() - 1)
        .checked_mul(y_step)
        .and_then(|e| e.checked_add(4));
    if y_step < 4 || end.is_none_or(|e| e > y.len()) {
        return false;
    }
    stage_double_checked(acc, stages, z_y, y, y_step);
    true
}

/// [`stage_double`] once its bounds are checked.
#[cfg(edge_dsp)]
#[inline(always)]
fn stage_double_checked(
    acc: &[[i32; 4]],
    stages: &[DoubleStage; 4],
    z_y: i8,
    y: &mut [i8],
    y_step: usize,
) {
    // SAFETY: for pixel i < acc.len() (≥ 1) the block reads the four words of acc[i] (the
    // slice is contiguous, 16 bytes a pixel) and the 16 words of `stages` (four `repr(C)`
    // structs of four 4-byte fields, m, bias, mask, right, in that order: word-aligned for
    // LDM; the pointer steps back to them after every pixel), and writes the
    // four bytes at y + i·y_step, inside `y` (`stage_double` checked the last pixel's). It
    // writes nothing else besides its register operands. QADD and SSAT may set the sticky Q
    // flag, which nothing reads. `ASR` by `right` ≤ 31 shifts as the model's `>>`.
    unsafe {
        four_lane_loop!(
            [
                "ldr r8, [r1], #4",
                "ldm r2!, {{r9, r10, r11, r12}}",
                "add r8, r8, r10",
                "mov r10, #0x40000000",
                "mov lr, #0",
                "smlal r10, lr, r8, r9",
                "lsr r10, r10, #31",
                "orr r8, r10, lr, lsl #1",
                "asr r9, r8, r12",
                "and r10, r8, r11",
                "lsr lr, r8, #31",
                "add lr, lr, r11, asr #1",
                "cmp r10, lr",
                "it gt",
                "addgt r9, r9, #1",
                "qadd r9, r9, r5",
                "ssat r9, #8, r9",
                "strb r9, [r3], #1",
            ],
            [
                "sub r2, r2, #64",
                "add r3, r3, r4",
                "subs r0, r0, #1",
                "bne 1b",
            ],
            inout("r0") acc.len() => _,
            inout("r1") acc.as_ptr() => _,
            inout("r2") stages.as_ptr() => _,
            inout("r3") y.as_mut_ptr() => _,
            in("r4") y_step - 4,
            in("r5") i32::from(z_y),
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(nostack),
        );
    }
}

/// [`stage_double`] once its bounds are checked, on the portable model (host tests).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
fn stage_double_checked(
    acc: &[[i32; 4]],
    stages: &[DoubleStage; 4],
    z_y: i8,
    y: &mut [i8],
    y_step: usize,
) {
    for (i, a) in acc.iter().enumerate() {
        for (j, s) in stages.iter().enumerate() {
            y[i * y_step + j] = s.apply(a[j], z_y);
        }
    }
}
/// The largest right shift a [`NarrowStage`] takes: with `|z_y| ≤ 128` its rounding constant
/// `c` then stays below 2^30 in magnitude, so `c + SRDHM(…)` cannot wrap (`|SRDHM| ≤ 2^30`).
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
const NARROW_MAX_RIGHT: i32 = 22;

/// TFLM's double-rounding output stage, `clamp(RDBPOT(SRDHM(a, m), right) + z_y)` to the whole
/// int8 range, for accumulators `a = acc + bias` known to stay below 2^30 in magnitude: then
/// `2a` fits a register and SRDHM's `floor((a·m + 2^30) / 2^31)` is `SMMULR(2a, m)` (the
/// high word of `2a·m` rounded), so the whole stage is `SMMLAR`, `SUB`, `ASR`, `SSAT` (about
/// half of [`DoubleStage`]'s instructions, which must handle any i32):
///
/// * `RDBPOT(h, r)` for `r ≥ 1` is `(h + 2^(r−1) − [h < 0]) >> r` (half away from zero); with
///   `z_y` it is `(h + c − [h < 0]) >> r`, `c = 2^(r−1) + z_y·2^r`, exact as long as nothing
///   wraps (`r ≤` [`NARROW_MAX_RIGHT`]), so the saturating `+ z_y` never saturates;
/// * `SMMLAR` adds `c` to the rounded high word in the same instruction;
/// * `[h < 0]` may be replaced by `[a < 0]` for `m ≥ 0`: they differ only when `a < 0` and
///   `h = 0`, where `(c − 1) >> r` and `c >> r` are both `z_y` (`r ≥ 1`).
///
/// Four words, in the order the `asm!` loads them: `m`, `2·bias`, `c`, `right`.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct NarrowStage {
    /// The multiplier `m` (≥ 0).
    pub m: i32,
    /// Twice the channel's bias.
    pub bias2: i32,
    /// `2^(right − 1) + z_y·2^right`.
    pub c: i32,
    /// The right shift, `1..=NARROW_MAX_RIGHT`.
    pub right: u32,
}

#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
impl NarrowStage {
    /// The stage of multiplier `m`, exponent `shift`, `bias` and output zero point `z_y` for
    /// double rounding and accumulators of magnitude at most `max_acc`, if it is exact (see
    /// [`NarrowStage`]): `m ≥ 0`, a right shift (`shift`, clamped to `[−31, 30]` as the
    /// reference does, in `−22..=−1`) and `|bias| + max_acc < 2^30`.
    pub(crate) fn new(m: i32, shift: i32, bias: i32, z_y: i8, max_acc: u64) -> Option<Self> {
        let right = -shift.clamp(-31, 30);
        if m < 0 || !(1..=NARROW_MAX_RIGHT).contains(&right) {
            return None;
        }
        if u64::from(bias.unsigned_abs()).checked_add(max_acc)? >= 1 << 30 {
            return None;
        }
        Some(Self {
            m,
            bias2: bias.wrapping_mul(2), // |bias| < 2^30: exact
            c: (1 << (right - 1)) + i32::from(z_y) * (1 << right),
            right: right as u32,
        })
    }

    /// The stage of an accumulator `acc` on the portable model of its instructions.
    #[cfg_attr(edge_dsp, allow(dead_code))]
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i32) -> i8 {
        self.finish(self.bias2.wrapping_add(acc.wrapping_shl(1)))
    }

    /// The stage of a doubled accumulator `a2 = 2·(acc + bias)` on the portable model of its
    /// instructions (`SMMLAR`, `SUB … LSR #31`, `ASR`, `SSAT #8`); the tail of [`add_narrow`].
    #[inline(always)]
    pub(crate) fn finish(&self, a2: i32) -> i8 {
        // |c| < 2^30 and |a2·m| ≤ 2^62: the sum cannot wrap; wrapping ops only keep a corrupt
        // stage from panicking.
        let product = i64::from(a2) * i64::from(self.m);
        let t = (i64::from(self.c) << 32)
            .wrapping_add(product)
            .wrapping_add(1 << 31)
            >> 32;
        let t = (t as i32).wrapping_sub(((a2 as u32) >> 31) as i32);
        (t >> (self.right & 31)).clamp(-128, 127) as i8
    }
}

/// `y[i·y_step + j] = stages[j].apply(acc[i][j])` for the `acc.len()` pixels of a strip and four
/// channels ([`NarrowStage`]). On Armv7E-M one `asm!` block, 8 instructions per output and 4 per
/// pixel. Returns `false`, touching nothing, if `y_step < 4` or the last pixel's outputs would
/// leave `y`.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) fn stage_narrow(
    acc: &[[i32; 4]],
    stages: &[NarrowStage; 4],
    y: &mut [i8],
    y_step: usize,
) -> bool {
    if acc.is_empty() {
        return true;
    }
    let end = (acc.len() - 1)
        .checked_mul(y_step)
        .and_then(|e| e.checked_add(4));
    if y_step < 4 || end.is_none_or(|e| e > y.len()) {
        return false;
    }
    stage_narrow_checked(acc, stages, y, y_step);
    true
}

/// [`stage_narrow`] once its bounds are checked.
#[cfg(edge_dsp)]
#[inline(always)]
fn stage_narrow_checked(acc: &[[i32; 4]], stages: &[NarrowStage; 4], y: &mut [i8], y_step: usize) {
    // SAFETY: for pixel i < acc.len() (≥ 1) the block reads the four words of acc[i] (the
    // slice is contiguous, 16 bytes a pixel) and the 16 words of `stages` (four `repr(C)`
    // structs of four 4-byte fields, m, bias2, c, right, in that order: word-aligned for LDM;
    // the pointer steps back to them after every pixel), and writes the four bytes at
    // y + i·y_step, inside `y` (`stage_narrow` checked the last pixel's). It writes nothing else
    // besides its register operands. SSAT may set the sticky Q flag, which nothing reads. `ASR`
    // by `right` ≤ 22 shifts as the model's `>>`.
    unsafe {
        four_lane_loop!(
            [
                "ldr r8, [r1], #4",
                "ldm r2!, {{r9, r10, r11, r12}}",
                "add r8, r10, r8, lsl #1",
                "smmlar r11, r8, r9, r11",
                "sub r11, r11, r8, lsr #31",
                "asr r11, r11, r12",
                "ssat r11, #8, r11",
                "strb r11, [r3], #1",
            ],
            [
                "sub r2, r2, #64",
                "add r3, r3, r4",
                "subs r0, r0, #1",
                "bne 1b",
            ],
            inout("r0") acc.len() => _,
            inout("r1") acc.as_ptr() => _,
            inout("r2") stages.as_ptr() => _,
            inout("r3") y.as_mut_ptr() => _,
            in("r4") y_step - 4,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            options(nostack),
        );
    }
}

/// [`stage_narrow`] once its bounds are checked, on the portable model (host tests).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
fn stage_narrow_checked(acc: &[[i32; 4]], stages: &[NarrowStage; 4], y: &mut [i8], y_step: usize) {
    for (i, a) in acc.iter().enumerate() {
        for (j, s) in stages.iter().enumerate() {
            y[i * y_step + j] = s.apply(a[j]);
        }
    }
}

/// One channel's single-rounding output stage for [`stage_single`]: a [`PwStage`] (`m`, `ra`,
/// `s`, `pre`) and the channel's bias scaled like the sums (`bias·2^pre`, wrapping), five
/// words in the order `LDM` takes them.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub(crate) struct SingleStage {
    /// The multiplier `m`.
    pub m: i32,
    /// `bias·2^pre`.
    pub bias: i32,
    /// `2^(s − 1) + z_y·2^s`.
    pub ra: i32,
    /// `s`, in 1..=20.
    pub s: u32,
    /// `pre`, in 0..=31.
    pub pre: u32,
}

#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
impl SingleStage {
    /// The stage `st` of a channel whose bias is `bias`.
    pub(crate) fn new(st: PwStage, bias: i32) -> Self {
        Self {
            m: st.m,
            bias: bias.wrapping_shl(st.pre),
            ra: st.ra,
            s: st.s,
            pre: st.pre,
        }
    }

    /// The stage of a sum `acc` on the portable model of its instructions (`LSL`, `ADD`,
    /// `SMMLA`, `ASR`, `SSAT #K`).
    #[cfg_attr(any(edge_dsp, not(test)), allow(dead_code))]
    #[inline(always)]
    fn apply<const K: u32>(&self, acc: i32) -> i8 {
        let a = (acc << self.pre).wrapping_add(self.bias);
        let h = (((i64::from(a) * i64::from(self.m)) >> 32) as i32).wrapping_add(self.ra);
        let lim = 1i32 << (K - 1);
        (h >> self.s).clamp(-lim, lim - 1) as i8
    }
}

/// Single-rounding output stages of a strip of four channels' sums: `y[i·y_step + j] =
/// ssat_K(((a·m >> 32) + ra) >> s)` with `a = acc[i][j]·2^pre + bias·2^pre` for the
/// [`SingleStage`]s `stages`: the reference's requantization of `bias + acc` whenever each
/// stage's [`PwStage`] was made by [`PwStage::single`] for accumulators `bias + acc` within its
/// bound and the output clamp is all `K`-bit codes (see [`PwStage`]). On Armv7E-M one `asm!`
/// loop, eight instructions an output (`LDR`, `LDM`, `LSL`, `ADD`, `SMMLA`, `ASR`, `SSAT`,
/// `STRB`), where the generic stage takes a 64-bit product and a rounding division for shifts
/// that are not plain (the 2-bit layers'). Returns `false`, touching nothing, if `K` is not 2,
/// 4 or 8 or a pixel's outputs would leave `y`.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) fn stage_single<const K: u32>(
    acc: &[[i32; 4]],
    stages: &[SingleStage; 4],
    y: &mut [i8],
    y_step: usize,
) -> bool {
    if !matches!(K, 2 | 4 | 8) {
        return false;
    }
    if acc.is_empty() {
        return true;
    }
    let end = (acc.len() - 1)
        .checked_mul(y_step)
        .and_then(|e| e.checked_add(4));
    if y_step < 4 || end.is_none_or(|e| e > y.len()) {
        return false;
    }
    stage_single_checked::<K>(acc, stages, y, y_step);
    true
}

/// [`stage_single`] once its bounds are checked.
#[cfg(edge_dsp)]
#[inline(always)]
fn stage_single_checked<const K: u32>(
    acc: &[[i32; 4]],
    stages: &[SingleStage; 4],
    y: &mut [i8],
    y_step: usize,
) {
    // SAFETY: for pixel i < acc.len() (≥ 1) the block reads the four words of acc[i] (the
    // slice is contiguous, 16 bytes a pixel) and the 20 words of `stages` (four `repr(C)`
    // structs of five 4-byte fields, m, bias, ra, s, pre, in that order: word-aligned for LDM;
    // the pointer steps back to them after every pixel), and writes the four bytes at
    // y + i·y_step, inside `y` (`stage_single` checked the last pixel's). It writes nothing
    // else besides its register operands. SSAT may set the sticky Q flag, which nothing reads.
    // `LSL` by `pre` ≤ 31 and `ASR` by `s` ≤ 20 (their registers' low bytes) shift as the
    // model's `<<` and `>>`. Registers are named because `LDM` takes them in ascending order.
    unsafe {
        four_lane_loop!(
            [
                "ldr r8, [r1], #4",
                "ldm r2!, {{r9, r10, r11, r12, lr}}",
                "lsl r8, r8, lr",
                "add r8, r8, r10",
                "smmla r11, r8, r9, r11",
                "asr r11, r11, r12",
                "ssat r11, #{k}, r11",
                "strb r11, [r3], #1",
            ],
            [
                "sub r2, r2, #80",
                "add r3, r3, r4",
                "subs r0, r0, #1",
                "bne 1b",
            ],
            k = const K,
            inout("r0") acc.len() => _,
            inout("r1") acc.as_ptr() => _,
            inout("r2") stages.as_ptr() => _,
            inout("r3") y.as_mut_ptr() => _,
            in("r4") y_step - 4,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(nostack),
        );
    }
}

/// [`stage_single`] once its bounds are checked, on the portable model (host tests).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
fn stage_single_checked<const K: u32>(
    acc: &[[i32; 4]],
    stages: &[SingleStage; 4],
    y: &mut [i8],
    y_step: usize,
) {
    for (i, a) in acc.iter().enumerate() {
        for (j, s) in stages.iter().enumerate() {
            y[i * y_step + j] = s.apply::<K>(a[j]);
        }
    }
}

/// Elementwise Add's output stage over tabled inputs:
/// `y[i] = stage.finish(t1[x1[i]] + t2[x2[i]])`, where each table holds, per input byte (as
/// `u8`), twice that input's scaled term, so the sum is the doubled accumulator `2a`
/// (`stage.bias2` is not used). The caller guarantees `|a| < 2^30` (the tables' extremes).
/// On Armv7E-M one `asm!` loop, 10 instructions per element (two `LDRB`, two table `LDR`,
/// `ADD`, the stage's four, `STRB`), four elements a pass; the last `len % 4` on the model.
/// Returns `false`, touching nothing, if the three slices' lengths differ.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) fn add_narrow(
    x1: &[i8],
    x2: &[i8],
    [t1, t2]: [&[i32; 256]; 2],
    stage: &NarrowStage,
    y: &mut [i8],
) -> bool {
    if x1.len() != y.len() || x2.len() != y.len() {
        return false;
    }
    let quads = y.len() / 4;
    if quads > 0 {
        add_narrow_quads(x1, x2, [t1, t2], stage, y, quads);
    }
    let done = 4 * quads;
    let rest = y.iter_mut().zip(x1.iter().zip(x2)).skip(done);
    for (y, (&a, &b)) in rest {
        *y = stage.finish(t1[a as u8 as usize].wrapping_add(t2[b as u8 as usize]));
    }
    true
}

/// The first `4·quads` elements of [`add_narrow`] (`quads ≥ 1`, `4·quads ≤` every length).
#[cfg(edge_dsp)]
#[inline(always)]
fn add_narrow_quads(
    x1: &[i8],
    x2: &[i8],
    [t1, t2]: [&[i32; 256]; 2],
    stage: &NarrowStage,
    y: &mut [i8],
    quads: usize,
) {
    // SAFETY: the loop runs `quads` ≥ 1 passes, each reading four bytes of `x1` and of `x2` and
    // writing four of `y` at increasing offsets, 4·quads ≤ the length of each (`add_narrow`
    // checked the lengths equal; quads = len / 4). The table loads index a 256-word table by a
    // zero-extended byte (`LDRB`), so they stay inside `t1` and `t2`. Nothing else is written
    // besides the register operands. SSAT may set the sticky Q flag, which nothing reads. `ASR`
    // by `right` ≤ 22 shifts as the model's `>>`.
    unsafe {
        four_lane_loop!(
            [
                "ldrb r8, [r0], #1",
                "ldrb r9, [r1], #1",
                "ldr r8, [r3, r8, lsl #2]",
                "ldr r9, [r4, r9, lsl #2]",
                "add r8, r8, r9",
                "smmlar r9, r8, r10, r11",
                "sub r9, r9, r8, lsr #31",
                "asr r9, r9, r12",
                "ssat r9, #8, r9",
                "strb r9, [r2], #1",
            ],
            [
                "subs r5, r5, #1",
                "bne 1b",
            ],
            inout("r0") x1.as_ptr() => _,
            inout("r1") x2.as_ptr() => _,
            inout("r2") y.as_mut_ptr() => _,
            in("r3") t1.as_ptr(),
            in("r4") t2.as_ptr(),
            inout("r5") quads => _,
            out("r8") _,
            out("r9") _,
            in("r10") stage.m,
            in("r11") stage.c,
            in("r12") stage.right,
            options(nostack),
        );
    }
}

/// [`add_narrow_quads`] on the portable model (host tests).
#[cfg(not(edge_dsp))]
#[cfg_attr(not(test), allow(dead_code))]
fn add_narrow_quads(
    x1: &[i8],
    x2: &[i8],
    [t1, t2]: [&[i32; 256]; 2],
    stage: &NarrowStage,
    y: &mut [i8],
    quads: usize,
) {
    for i in 0..4 * quads {
        y[i] = stage.finish(t1[x1[i] as u8 as usize].wrapping_add(t2[x2[i] as u8 as usize]));
    }
}

/// Weight values one packed byte holds at `bits` (2 or 4), and the values the sub-byte kernel
/// takes from one 32-bit word of them: 8 at 4 bits, 16 at 2 bits.
const fn per_byte(bits: u8) -> usize {
    8 / bits as usize
}

/// The most values one window of [`window_packed`] may hold: its scaled sums stay exact below
/// 65,793 (2^31 / 32,640).
pub(crate) const PACKED_WINDOW_MAX: usize = 65_536;

/// [`window`](super::window) for 4- and 2-bit packed weights (issue 18), the weights unpacked
/// in registers: `acc[c] = Σ_runs Σ_i w[first + c·stride + r·w_step + i]·(x[r·x_step + i] −
/// z_x)`, `w` holding the packed values (TFLM's order, `shared_format::packing`) and `first`, `stride`,
/// `w_step` and `len` counting values. All four must be multiples of the values of one word
/// (8 at 4 bits, 16 at 2 bits: `C_in` a multiple of that, see `conv::packed_eligible`), so every
/// run starts on a byte of its own and holds whole words.
///
/// One word of weights is split by a shift and a mask into bytes whose top bits hold one value
/// each (`(w << 4) & 0xF0F0F0F0` and `w & 0xF0F0F0F0` at 4 bits; `(w << 6, 4, 2, 0) &
/// 0xC0C0C0C0` at 2 bits), which `SXTB16` sign-extends into halfword pairs scaled by 16 (by 64
/// at 2 bits) at no cost. The activations of the word's values, widened and centred by
/// `SXTAB16` as in [`window`](super::window), are paired to match with `PKHBT`/`PKHTB` once
/// per word for all four channels; then each `SMLAD` does two MACs. The scaled sums are exact
/// (|scale·w·(x − z_x)| ≤ 32,640, so up to 65,793 values per window cannot overflow) and shifted back at the end:
/// the same integers as the reference kernel's. The last `acc.len() % 4` channels are summed
/// value by value. Returns `false`, touching nothing, if a run would leave `x` or `w`, the
/// steps are shorter than a run, `bits` is not 2 or 4, or the counts are not whole words.
#[cfg_attr(not(edge_dsp), allow(dead_code))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn window_packed(
    x: &[i8],
    w: &[u8],
    bits: u8,
    first: usize,
    stride: usize,
    runs: Runs,
    z_x: i8,
    acc: &mut [i32],
) -> bool {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    let per_word = match bits {
        2 | 4 => 4 * per_byte(bits),
        _ => return false,
    };
    if rows == 0 || len == 0 || acc.is_empty() {
        acc.fill(0);
        return true;
    }
    if x_step < len || w_step < len {
        return false;
    }
    if !(first | stride | len | w_step).is_multiple_of(per_word)
        || rows.checked_mul(len).is_none_or(|n| n > PACKED_WINDOW_MAX)
    {
        return false;
    }
    let end = |step: usize| (rows - 1).checked_mul(step)?.checked_add(len);
    let x_end = end(x_step);
    let w_end = end(w_step)
        .and_then(|e| e.checked_add(stride.checked_mul(acc.len() - 1)?))
        .and_then(|e| e.checked_add(first));
    // Whole words, so whole bytes: value e ends at byte e / per_byte.
    let pb = per_byte(bits);
    if x_end.is_none_or(|e| e > x.len()) || w_end.is_none_or(|e| e / pb > w.len()) {
        return false;
    }
    let xb: &[u8] = bytemuck::cast_slice(x);
    let wb = w.get(first / pb..).unwrap_or_default();
    let bytes = Runs {
        rows,
        len,
        x_step,
        w_step: w_step / pb,
    };
    let (quads, rest) = acc.as_chunks_mut::<4>();
    match bits {
        4 => quad_packed::<4>(xb, wb, stride / pb, bytes, z_x, quads),
        _ => quad_packed::<2>(xb, wb, stride / pb, bytes, z_x, quads),
    }
    for (k, acc) in (4 * quads.len()..).zip(rest) {
        *acc = centred_dot_packed(x, w, bits, first + k * stride, runs, z_x);
    }
    true
}

/// One channel of [`window_packed`] value by value (bounds already checked there).
fn centred_dot_packed(x: &[i8], w: &[u8], bits: u8, first: usize, runs: Runs, z_x: i8) -> i32 {
    let mut sum = 0i32;
    for r in 0..runs.rows {
        let Some(xs) = x.get(r * runs.x_step..r * runs.x_step + runs.len) else {
            return sum;
        };
        let w0 = first + r * runs.w_step;
        for (i, &x) in xs.iter().enumerate() {
            let w = shared_format::packing::unpack_one(w, bits, w0 + i);
            sum = sum.wrapping_add(w as i32 * (x as i32 - z_x as i32));
        }
    }
    sum
}

/// Four little-endian bytes as a word.
#[inline(always)]
fn le(b: [u8; 4]) -> u32 {
    u32::from_le_bytes(b)
}

/// `s + 16·Σ_{i<8} w_i·x_i` for the eight 4-bit values of `wv` and their centred activations
/// paired as `[(x0, x4), (x2, x6), (x1, x5), (x3, x7)]`.
#[inline(always)]
fn nibbles_mac(wv: u32, x: &[u32; 4], s: i32) -> i32 {
    const TOP: u32 = 0xF0F0_F0F0;
    let even = (wv << 4) & TOP; // values 0, 2, 4, 6 in the top nibbles
    let odd = wv & TOP; // values 1, 3, 5, 7
    let s = smlad(sxtb16(even), x[0], s);
    let s = smlad(sxtb16_ror8(even), x[1], s);
    let s = smlad(sxtb16(odd), x[2], s);
    smlad(sxtb16_ror8(odd), x[3], s)
}

/// `s + 64·Σ_{i<16} w_i·x_i` for the sixteen 2-bit values of `wv` and their centred activations
/// paired as `[(x0, x8), (x4, x12), (x1, x9), (x5, x13), (x2, x10), (x6, x14), (x3, x11),
/// (x7, x15)]`.
#[inline(always)]
fn crumbs_mac(wv: u32, x: &[u32; 8], s: i32) -> i32 {
    const TOP: u32 = 0xC0C0_C0C0;
    let m0 = (wv << 6) & TOP; // values 0, 4, 8, 12 in the top bits
    let m1 = (wv << 4) & TOP; // 1, 5, 9, 13
    let m2 = (wv << 2) & TOP; // 2, 6, 10, 14
    let m3 = wv & TOP; // 3, 7, 11, 15
    let s = smlad(sxtb16(m0), x[0], s);
    let s = smlad(sxtb16_ror8(m0), x[1], s);
    let s = smlad(sxtb16(m1), x[2], s);
    let s = smlad(sxtb16_ror8(m1), x[3], s);
    let s = smlad(sxtb16(m2), x[4], s);
    let s = smlad(sxtb16_ror8(m2), x[5], s);
    let s = smlad(sxtb16(m3), x[6], s);
    smlad(sxtb16_ror8(m3), x[7], s)
}

/// [`window_packed`] for `4·acc.len()` channels at `BITS` (4 or 2), with `w` from the first
/// channel's first run and `stride`, `runs.w_step` counted in bytes (`runs.len` in values, a
/// multiple of the values of a word); bounds checked by the caller.
#[inline(always)]
fn quad_packed<const BITS: u8>(
    x: &[u8],
    w: &[u8],
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
    let centre = splat16(-(z_x as i16));
    let len_b = len / per_byte(BITS);
    for (q, out) in acc.iter_mut().enumerate() {
        let mut s = [0i32; 4];
        for r in 0..rows {
            let xr = r * x_step;
            let wr = 4 * q * stride + r * w_step;
            let run = |k: usize| w.get(wr + k * stride..wr + k * stride + len_b);
            let (Some(xs), Some(w0), Some(w1), Some(w2), Some(w3)) =
                (x.get(xr..xr + len), run(0), run(1), run(2), run(3))
            else {
                return;
            };
            let (w0, w1, w2, w3) = (
                w0.as_chunks::<4>().0,
                w1.as_chunks::<4>().0,
                w2.as_chunks::<4>().0,
                w3.as_chunks::<4>().0,
            );
            let ws = w0.iter().zip(w1).zip(w2).zip(w3);
            if BITS == 4 {
                for (xc, (((&a, &b), &c), &d)) in xs.as_chunks::<8>().0.iter().zip(ws) {
                    let [x0, x1, x2, x3, x4, x5, x6, x7] = *xc;
                    let (lo, hi) = (le([x0, x1, x2, x3]), le([x4, x5, x6, x7]));
                    let (l02, l13) = (sxtab16(centre, lo), sxtab16_ror8(centre, lo));
                    let (h46, h57) = (sxtab16(centre, hi), sxtab16_ror8(centre, hi));
                    let pairs = [
                        pkhbt(l02, h46),
                        pkhtb(h46, l02),
                        pkhbt(l13, h57),
                        pkhtb(h57, l13),
                    ];
                    s[0] = nibbles_mac(le(a), &pairs, s[0]);
                    s[1] = nibbles_mac(le(b), &pairs, s[1]);
                    s[2] = nibbles_mac(le(c), &pairs, s[2]);
                    s[3] = nibbles_mac(le(d), &pairs, s[3]);
                }
            } else {
                for (xw, (((&a, &b), &c), &d)) in xs.as_chunks::<16>().0.iter().zip(ws) {
                    let [
                        x0,
                        x1,
                        x2,
                        x3,
                        x4,
                        x5,
                        x6,
                        x7,
                        x8,
                        x9,
                        xa,
                        xb,
                        xc,
                        xd,
                        xe,
                        xf,
                    ] = *xw;
                    let (wa, wb) = (le([x0, x1, x2, x3]), le([x4, x5, x6, x7]));
                    let (wc, wd) = (le([x8, x9, xa, xb]), le([xc, xd, xe, xf]));
                    let (a02, a13) = (sxtab16(centre, wa), sxtab16_ror8(centre, wa));
                    let (b46, b57) = (sxtab16(centre, wb), sxtab16_ror8(centre, wb));
                    let (c8a, c9b) = (sxtab16(centre, wc), sxtab16_ror8(centre, wc));
                    let (dce, ddf) = (sxtab16(centre, wd), sxtab16_ror8(centre, wd));
                    let pairs = [
                        pkhbt(a02, c8a),
                        pkhbt(b46, dce),
                        pkhbt(a13, c9b),
                        pkhbt(b57, ddf),
                        pkhtb(c8a, a02),
                        pkhtb(dce, b46),
                        pkhtb(c9b, a13),
                        pkhtb(ddf, b57),
                    ];
                    s[0] = crumbs_mac(le(a), &pairs, s[0]);
                    s[1] = crumbs_mac(le(b), &pairs, s[1]);
                    s[2] = crumbs_mac(le(c), &pairs, s[2]);
                    s[3] = crumbs_mac(le(d), &pairs, s[3]);
                }
            }
        }
        // The sums are 16 (4-bit) or 64 (2-bit) times the exact ones, with no overflow.
        let shift = if BITS == 4 { 4 } else { 6 };
        *out = s.map(|v| v >> shift);
    }
}

/// [`window`](super::window) for `4·acc.len()` channels (at least 4) on Armv7E-M, bounds
/// already checked by the caller (`runs.rows ≥ 1`, `runs.len ≥ 1`): only `window` calls it
/// (through the dispatch, `super::quad_words`), after checking every run of every channel.
#[cfg(edge_dsp)]
#[inline(always)]
pub(super) fn quad_words(
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
    let centre = splat16(-(z_x as i16));
    let xp = x.as_ptr();
    let wa = w.as_ptr();
    let (quads, out) = (acc.len(), acc.as_mut_ptr());
    let words = len & !3; // whole words of a run, then len − words single bytes
    // SAFETY: for quad q and run r the loop reads [xp + r·x_step, … + len) of `x` and, for
    // k in 0..4, [wa + (4q + k)·stride + r·w_step, … + len) of `w`, all inside the slices
    // (`window` checked them for all of `acc`'s channels); it writes quad q's four sums to
    // `acc[q]`. `quads ≥ 1` and `rows ≥ 1`, so those loops run at least once; the word loop
    // runs only if `words > 0` (entered part-way through its first pass when the word count
    // is not a multiple of 4) and ends exactly at its end pointer; the byte loop runs only
    // if `len − words > 0`, that many times. Besides `acc` the block writes only its own
    // 56 bytes below the stack pointer, released before it ends, and its register operands.
    unsafe {
        asm!(
            "sub sp, sp, #56",
            "str {t0}, [sp]",       // whole words of a run, in bytes
            "str {wc}, [sp, #44]",  // bytes past them
            "str {t3}, [sp, #48]",  // −z_x
            "str {d}, [sp, #4]",    // centre
            "str {b}, [sp, #12]",   // x_step − len
            "str {a}, [sp, #16]",   // w_step − len
            "str {x}, [sp, #24]",   // window start
            "str {wa}, [sp, #28]",  // this quad's filters
            "str {t1}, [sp, #32]",  // quads left
            "str {t2}, [sp, #36]",  // where this quad's sums go
            "str {c}, [sp, #40]",   // runs
            "4:",
            "ldr {x}, [sp, #24]",
            "ldr {wa}, [sp, #28]",
            "add {wc}, {wa}, {fl}, lsl #1",
            "ldr {t0}, [sp, #40]",
            "str {t0}, [sp, #8]",   // runs left
            "movs {a}, #0",
            "movs {b}, #0",
            "movs {c}, #0",
            "movs {d}, #0",
            "3:",
            "ldr {t3}, [sp]",
            "cmp {t3}, #0",
            "beq 9f",               // no whole word in a run: only bytes
            "add {t0}, {t3}, {x}",
            "str {t0}, [sp, #20]",  // end of this run's words
            // The loop does four words a pass; a run of 4·q + r words (r > 0) starts
            // inside the first pass, at the word that leaves r of it.
            "ands {t3}, {t3}, #12",
            "beq 2f",
            "cmp {t3}, #8",
            "beq 7f",
            "bhi 6f",
            "b 8f",
            "2:",
            "ldr {t0}, [{x}], #4",
            "ldr {t1}, [sp, #4]",
            "sxtab16 {t2}, {t1}, {t0}",
            "sxtab16 {t1}, {t1}, {t0}, ror #8",
            "ldr {t0}, [{wa}, {fl}]",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {b}, {t3}, {t2}, {b}",
            "smlad {b}, {t0}, {t1}, {b}",
            "ldr {t0}, [{wa}], #4",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {a}, {t3}, {t2}, {a}",
            "smlad {a}, {t0}, {t1}, {a}",
            "ldr {t0}, [{wc}, {fl}]",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {d}, {t3}, {t2}, {d}",
            "smlad {d}, {t0}, {t1}, {d}",
            "ldr {t0}, [{wc}], #4",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {c}, {t3}, {t2}, {c}",
            "smlad {c}, {t0}, {t1}, {c}",
            "6:",
            "ldr {t0}, [{x}], #4",
            "ldr {t1}, [sp, #4]",
            "sxtab16 {t2}, {t1}, {t0}",
            "sxtab16 {t1}, {t1}, {t0}, ror #8",
            "ldr {t0}, [{wa}, {fl}]",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {b}, {t3}, {t2}, {b}",
            "smlad {b}, {t0}, {t1}, {b}",
            "ldr {t0}, [{wa}], #4",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {a}, {t3}, {t2}, {a}",
            "smlad {a}, {t0}, {t1}, {a}",
            "ldr {t0}, [{wc}, {fl}]",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {d}, {t3}, {t2}, {d}",
            "smlad {d}, {t0}, {t1}, {d}",
            "ldr {t0}, [{wc}], #4",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {c}, {t3}, {t2}, {c}",
            "smlad {c}, {t0}, {t1}, {c}",
            "7:",
            "ldr {t0}, [{x}], #4",
            "ldr {t1}, [sp, #4]",
            "sxtab16 {t2}, {t1}, {t0}",
            "sxtab16 {t1}, {t1}, {t0}, ror #8",
            "ldr {t0}, [{wa}, {fl}]",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {b}, {t3}, {t2}, {b}",
            "smlad {b}, {t0}, {t1}, {b}",
            "ldr {t0}, [{wa}], #4",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {a}, {t3}, {t2}, {a}",
            "smlad {a}, {t0}, {t1}, {a}",
            "ldr {t0}, [{wc}, {fl}]",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {d}, {t3}, {t2}, {d}",
            "smlad {d}, {t0}, {t1}, {d}",
            "ldr {t0}, [{wc}], #4",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {c}, {t3}, {t2}, {c}",
            "smlad {c}, {t0}, {t1}, {c}",
            "8:",
            "ldr {t0}, [{x}], #4",
            "ldr {t1}, [sp, #4]",
            "sxtab16 {t2}, {t1}, {t0}",
            "sxtab16 {t1}, {t1}, {t0}, ror #8",
            "ldr {t0}, [{wa}, {fl}]",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {b}, {t3}, {t2}, {b}",
            "smlad {b}, {t0}, {t1}, {b}",
            "ldr {t0}, [{wa}], #4",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {a}, {t3}, {t2}, {a}",
            "smlad {a}, {t0}, {t1}, {a}",
            "ldr {t0}, [{wc}, {fl}]",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {d}, {t3}, {t2}, {d}",
            "smlad {d}, {t0}, {t1}, {d}",
            "ldr {t0}, [{wc}], #4",
            "sxtb16 {t3}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {c}, {t3}, {t2}, {c}",
            "smlad {c}, {t0}, {t1}, {c}",
            "ldr {t3}, [sp, #20]",
            "cmp {x}, {t3}",
            "bne 2b",
            // The last len % 4 bytes of the run, one at a time (SMLABB: one MAC each).
            "9:",
            "ldr {t3}, [sp, #44]",
            "cmp {t3}, #0",
            "beq 13f",
            "12:",
            "ldrsb {t0}, [{x}], #1",
            "ldr {t1}, [sp, #48]",
            "add {t0}, {t0}, {t1}",
            "ldrsb {t2}, [{wa}, {fl}]",
            "smlabb {b}, {t2}, {t0}, {b}",
            "ldrsb {t2}, [{wa}], #1",
            "smlabb {a}, {t2}, {t0}, {a}",
            "ldrsb {t2}, [{wc}, {fl}]",
            "smlabb {d}, {t2}, {t0}, {d}",
            "ldrsb {t2}, [{wc}], #1",
            "smlabb {c}, {t2}, {t0}, {c}",
            "subs {t3}, {t3}, #1",
            "bne 12b",
            "13:",
            "ldr {t0}, [sp, #12]",
            "add {x}, {x}, {t0}",
            "ldr {t0}, [sp, #16]",
            "add {wa}, {wa}, {t0}",
            "add {wc}, {wc}, {t0}",
            "ldr {t0}, [sp, #8]",
            "subs {t0}, {t0}, #1",
            "str {t0}, [sp, #8]",
            "bne 3b",
            "ldr {t0}, [sp, #36]",
            "str {a}, [{t0}]",
            "str {b}, [{t0}, #4]",
            "str {c}, [{t0}, #8]",
            "str {d}, [{t0}, #12]",
            "add {t0}, {t0}, #16",
            "str {t0}, [sp, #36]",
            "ldr {t0}, [sp, #28]",
            "add {t0}, {t0}, {fl}, lsl #2",
            "str {t0}, [sp, #28]",
            "ldr {t0}, [sp, #32]",
            "subs {t0}, {t0}, #1",
            "str {t0}, [sp, #32]",
            "bne 4b",
            "add sp, sp, #56",
            x = inout(reg) xp => _,
            wa = inout(reg) wa => _,
            wc = inout(reg) len - words => _,
            fl = in(reg) stride,
            a = inout(reg) w_step - len => _,
            b = inout(reg) x_step - len => _,
            c = inout(reg) rows => _,
            d = inout(reg) centre => _,
            t0 = inout(reg) words => _,
            t1 = inout(reg) quads => _,
            t2 = inout(reg) out => _,
            t3 = inout(reg) -(z_x as i32) => _,
        );
    }
}

/// The assembly of [`quad_words`] step for step on the portable model of its instructions, for
/// host tests of its arithmetic (the assembly itself runs in the QEMU board tests).
#[cfg(all(test, not(edge_dsp)))]
fn quad_words_model(x: &[i8], w: &[i8], stride: usize, runs: Runs, z_x: i8, acc: &mut [[i32; 4]]) {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    let centre = splat16(-(z_x as i16));
    {
        for (k, acc) in acc.as_flattened_mut().iter_mut().enumerate() {
            let mut sum = 0i32;
            for r in 0..rows {
                let xs = &x[r * x_step..r * x_step + len];
                let w0 = k * stride + r * w_step;
                let ws = &w[w0..w0 + len];
                let ((w4, w1), (x4, x1)) = (ws.as_chunks::<4>(), xs.as_chunks::<4>());
                for (w, x) in w4.iter().zip(x4) {
                    let (w, x) = (word(w), word(x));
                    sum = smlad(sxtb16(w), sxtab16(centre, x), sum);
                    sum = smlad(sxtb16_ror8(w), sxtab16_ror8(centre, x), sum);
                }
                // The bytes past the last word (SMLABB in the assembly).
                for (&w, &x) in w1.iter().zip(x1) {
                    sum = sum.wrapping_add(w as i32 * (x as i32 - z_x as i32));
                }
            }
            *acc = sum;
        }
    }
}

/// TFLM's rounded average of `n` int8 cells (`(s ± ⌊n/2⌋) / n`, truncating) for `3 ≤ n ≤ 16`,
/// two 16-bit lanes at a time, for [`avg_pixels`].
///
/// Why exact: TFLM's result is `⌊(s + b)/n⌋` with `b = ⌊n/2⌋` for `s ≥ 0` and
/// `b = n − 1 − ⌊n/2⌋` for `s < 0` (truncation of a negative `(s − ⌊n/2⌋)/n` is its ceiling,
/// `⌊(s − ⌊n/2⌋ + n − 1)/n⌋`); the two biases differ by 1 for even `n` only. With
/// `v = s + b + 128n` (`0 ≤ v ≤ 255.5n`, as `|s| ≤ 128n`) the result is `⌊v/n⌋ − 128`, and with
/// `m = ⌈2^16/n⌉ = 2^16/n + e` (`0 ≤ e < 1`), `v·m/2^16 = v/n + v·e/2^16` where
/// `v·e/2^16 < 255.5n/2^16 ≤ 1/n` for `n ≤ 16`, so the floor is unchanged. `m < 2^15` for
/// `n ≥ 3` and `v < 2^15`, so both are signed 16-bit operands of `SMULBB`/`SMULTB`, and
/// `⌊v/n⌋ ≤ 255` lands in the low byte of each product's high half.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) struct AvgCells {
    /// `128n + ⌊n/2⌋` in both halves.
    bias: u32,
    /// `0x0001_0001` for even `n` (the bias is one less for a negative sum), else 0.
    even: u32,
    /// `⌈2^16/n⌉`.
    m: u32,
}

#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
impl AvgCells {
    /// The divisor for `n` cells; `None` outside `3..=16`.
    pub(crate) fn new(n: usize) -> Option<Self> {
        if !(3..=16).contains(&n) {
            return None;
        }
        let n = n as u32;
        Some(AvgCells {
            bias: (128 * n + n / 2) * 0x0001_0001,
            even: if n.is_multiple_of(2) { 0x0001_0001 } else { 0 },
            m: (1u32 << 16).div_ceil(n),
        })
    }

    /// Both 16-bit lanes of `s` (signed sums of `n` int8 values) averaged, each plus 128, in
    /// the low byte of its half.
    #[inline(always)]
    fn halves(self, s: u32) -> u32 {
        // Lanes of `add16` are at least ⌊n/2⌋ ≥ 1, so the plain subtraction never borrows
        // across them.
        let v = add16(s, self.bias) - ((s >> 15) & self.even);
        pkhtb(smultb(v, self.m) as u32, smulbb(v, self.m) as u32)
    }
}

/// Average-pool output pixels of `c` channels each (a multiple of 4, at least 4) on Armv7E-M
/// (issue 18), `pixels` of them with the same window shape, their first taps `pixel_step`
/// bytes apart (a run of a row whose windows lie inside the input): each window's
/// `rows × cols` valid taps, pixel 0's first at `x[first..]`, taps `step` bytes apart along a
/// row and rows `row_step` bytes apart; four channels at a time summed in 16-bit lanes (`LDR`,
/// then `SXTAB16` and `SXTAB16 …, ROR #8`, three instructions per tap), divided by the tap
/// count with [`AvgCells`], and clamped (`USUB8`/`SEL`). Returns `false`, touching nothing, if
/// the geometry is empty, `c` or `out` does not fit, or a tap would leave `x`.
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn avg_pixels(
    x: &[i8],
    first: usize,
    (rows, row_step): (usize, usize),
    (cols, step): (usize, usize),
    (pixels, pixel_step): (usize, usize),
    cells: AvgCells,
    clamp: shared_format::Clamp,
    out: &mut [i8],
) -> bool {
    if pixels == 0 || !out.len().is_multiple_of(pixels) {
        return false;
    }
    let c = out.len() / pixels;
    if c < 4 || !c.is_multiple_of(4) || rows == 0 || cols == 0 || rows * cols > 16 {
        return false;
    }
    // The furthest byte read: the last pixel's last tap's last channel.
    let end = (rows - 1)
        .checked_mul(row_step)
        .zip((cols - 1).checked_mul(step))
        .and_then(|(a, b)| a.checked_add(b))
        .zip((pixels - 1).checked_mul(pixel_step))
        .and_then(|(a, b)| a.checked_add(b))
        .and_then(|a| a.checked_add(first))
        .and_then(|a| a.checked_add(c));
    if end.is_none_or(|e| e > x.len()) {
        return false;
    }
    let base = x.as_ptr();
    let full = clamp.min == i8::MIN && clamp.max == i8::MAX;
    // The clamp in the results' offset domain (`q + 128`), four bytes at a time.
    let bound = |v: i8| u32::from(v as u8 ^ 0x80) * 0x0101_0101;
    let (lo, hi) = (bound(clamp.min), bound(clamp.max));
    // One tap: four channels widened into the two 16-bit accumulators.
    let tap = |even: &mut u32, odd: &mut u32, at: usize| {
        // SAFETY: every `at` below is `first + px·pixel_step + r·row_step + 4g + k·step` with
        // `px < pixels`, `r < rows`, `k < cols` and `4g + 4 ≤ c`, so `at + 4` is at most the
        // `end` checked against `x.len()` above; an unaligned read.
        let w = u32::from_le(unsafe { core::ptr::read_unaligned(base.add(at) as *const u32) });
        *even = sxtab16(*even, w);
        *odd = sxtab16_ror8(*odd, w);
    };
    for (px, pixel) in out.chunks_exact_mut(c).enumerate() {
        for (g, y) in pixel.chunks_exact_mut(4).enumerate() {
            let (mut even, mut odd) = (0u32, 0u32);
            let mut row = first + px * pixel_step + 4 * g;
            for _ in 0..rows {
                if cols == 3 {
                    // The usual 3-wide window, unrolled.
                    tap(&mut even, &mut odd, row);
                    tap(&mut even, &mut odd, row + step);
                    tap(&mut even, &mut odd, row + 2 * step);
                } else {
                    for k in 0..cols {
                        tap(&mut even, &mut odd, row + k * step);
                    }
                }
                row += row_step;
            }
            let mut word = cells.halves(even) | cells.halves(odd) << 8;
            if !full {
                word = clamp8(word, lo, hi);
            }
            y.copy_from_slice(&(word ^ 0x8080_8080).to_le_bytes().map(|b| b as i8));
        }
    }
    true
}
