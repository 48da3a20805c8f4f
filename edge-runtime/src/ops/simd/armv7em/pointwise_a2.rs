//! 1×1 convolutions of 2-bit weights over 2-bit activations, four MACs per `SMLAD` (issue 18:
//! W2 should cost less per MAC than W8, not the same).
//!
//! `SMLAD` multiplies two pairs of signed 16-bit halves. A 2-bit activation code needs 2 of those
//! 16 bits and a centred 2-bit weight 3, so each half can carry two values `2^S` apart: the
//! activation half `a_e + a_o·2^S` (inputs `e` and `e + 1`) times the weight half
//! `w_o + w_e·2^S` is
//!
//! ```text
//! a_e·w_o  +  (a_e·w_e + a_o·w_o)·2^S  +  a_o·w_e·2^(2S)
//! ```
//!
//! whose middle field is the two-term dot product. With `S` = [`FIELD`] = 13, a sum of such
//! products over `C_in` inputs is `L + M·2^13 + H·2^26` modulo 2^32, `M` the whole dot product,
//! `|L| ≤ (C_in/2)·2·3 < 2^12` for `C_in` ≤ 64, and `H` above bit 26. The accumulator starts at
//! `2^12 + B·2^13` (`B` the bias), so bits 13..25 hold `B + M` exactly whenever `|B + M| < 2^12`,
//! and one `SBFX` takes it out: the reference's accumulator, formed with half the multiply
//! instructions of [`super::pointwise`] and about a third of its instructions (11 per 32 MACs
//! against 32).
//!
//! The activations are packed once per pixel strip ([`pack`]), which also checks that every code
//! lies in −2..=1: a tensor that breaks that (a graph input, or any producer without a 2-bit clamp)
//! makes [`pack`] return `false`, and the caller runs the general kernel instead. The halves
//! stay exact: `|a_e + a_o·2^13| ≤ 2 + 2^14` and `|w_o + w_e·2^13| ≤ 3 + 3·2^13`, both inside
//! 16 signed bits.

#![cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]

#[cfg(edge_dsp)]
use core::arch::asm;

#[cfg(not(edge_dsp))]
use super::PwStage;
#[cfg(not(edge_dsp))]
use super::instructions::smlad;
#[cfg(not(edge_dsp))]
use super::instructions::{add16, sxtb16, uadd8};

/// `S`: the bit where the dot product's field starts in the accumulator.
pub(crate) const FIELD: u32 = 13;

/// The largest magnitude a centred weight may have (it must fit 3 bits beside `2^FIELD`):
/// every 2-bit code less a 2-bit zero point.
pub(crate) const MAX_WEIGHT: i32 = 3;

/// The bound on `|B + M|` (bias plus dot product) that [`FIELD`]'s 13 bits hold exactly.
pub(crate) const MAX_SUM: i64 = (1 << (FIELD - 1)) - 1;

/// Input channel counts the kernel is unrolled for.
pub(crate) const CINS: [usize; 4] = [8, 16, 32, 64];

/// Words of packed activations one call of [`pack`] fills at most (256 bytes of stack).
pub(crate) const PACKED_WORDS: usize = 64;

/// Table words of one group of four output channels for `cin` inputs: four starting
/// accumulators, per eight inputs two weight words per channel, then the four words of the
/// stage all channels share.
pub(crate) const fn group_words(cin: usize) -> usize {
    4 + cin + 4
}

/// The accumulator a channel of bias `b` starts from (`b` already within [`MAX_SUM`]).
pub(crate) const fn start(b: i32) -> u32 {
    ((1i32 << (FIELD - 1)).wrapping_add(b.wrapping_shl(FIELD))) as u32
}

/// Four centred weights of inputs `e..e + 4` as one table word: `w_{e+1} + w_e·2^13` low,
/// `w_{e+3} + w_{e+2}·2^13` high.
pub(crate) fn weight_word(w: [i32; 4]) -> u32 {
    let half = |even: i32, odd: i32| (odd + (even << FIELD)) as u32 & 0xffff;
    half(w[0], w[1]) | half(w[2], w[3]) << 16
}

/// Four activation codes (one little-endian word) as one packed word: `a_0 + a_1·2^13` low,
/// `a_2 + a_3·2^13` high (`SXTB16`, then bits 0..2 of bytes 1 and 3 moved to bits 13..15 of
/// each half by one shifted `AND`, then `SADD16`: `a·2^13` modulo 2^16 keeps only those bits).
#[cfg(not(edge_dsp))]
#[inline(always)]
fn packed_word(x: u32) -> u32 {
    add16(sxtb16(x), (x << 5) & 0xe000_e000)
}

/// The geometry of one [`pack`]: `pixels` pixels of `cin` codes, pixel `i` at `x[i·x_step..]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackRun {
    /// Pixels.
    pub pixels: usize,
    /// Codes per pixel, a positive multiple of 8.
    pub cin: usize,
    /// Input bytes from one pixel to the next.
    pub x_step: usize,
}

/// Packs the pixels of `run` into `packed` (`cin/4` words per pixel, in order) and returns
/// whether every code was in −2..=1, the range [`pointwise`]'s fields are proven for. `false` as
/// well, packing nothing, when the pixels do not fit `x` or `packed`. One `UADD8` per word adds 2
/// to each byte: an in-range code becomes 0..=3, any other byte has a bit of `0xfc` set.
pub(crate) fn pack(x: &[i8], run: PackRun, packed: &mut [u32]) -> bool {
    let PackRun {
        pixels,
        cin,
        x_step,
    } = run;
    let words = cin / 4;
    // The pixels must not overlap (the assembly steps x_step − cin past each pixel's end).
    let fits = pixels
        .checked_sub(1)
        .and_then(|last| last.checked_mul(x_step)?.checked_add(cin))
        .is_some_and(|end| end <= x.len())
        && pixels.checked_mul(words).is_some_and(|n| n <= packed.len());
    if !fits || cin == 0 || !cin.is_multiple_of(8) || x_step < cin {
        return false;
    }
    pack_checked(x, run, packed) & 0xfcfc_fcfc == 0
}

/// [`pack`] once its bounds are checked, on the portable model of its instructions: the OR of
/// the `UADD8` sums.
#[cfg(not(edge_dsp))]
fn pack_checked(
    x: &[i8],
    PackRun {
        pixels,
        cin,
        x_step,
    }: PackRun,
    packed: &mut [u32],
) -> u32 {
    let mut seen = 0u32;
    for (i, out) in packed.chunks_exact_mut(cin / 4).take(pixels).enumerate() {
        let codes = &x[i * x_step..i * x_step + cin];
        for (o, c) in out.iter_mut().zip(codes.as_chunks::<4>().0) {
            let w = u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]);
            seen |= uadd8(w, 0x0202_0202);
            *o = packed_word(w);
        }
    }
    seen
}

/// [`pack`] once its bounds are checked: one `asm!` loop of 7 instructions a word (`LDR`,
/// `UADD8`, `ORR`, `SXTB16`, shifted `AND`, `SADD16`, `STR`), two words a pass.
#[cfg(edge_dsp)]
fn pack_checked(
    x: &[i8],
    PackRun {
        pixels,
        cin,
        x_step,
    }: PackRun,
    packed: &mut [u32],
) -> u32 {
    let seen: u32;
    // SAFETY: for pixel i < pixels the loop reads the cin bytes at x + i·x_step (LDR of one
    // word at a time, unaligned loads being allowed on every Armv7E-M core for normal memory)
    // and writes cin/4 words at packed + i·cin bytes, both inside the slices (`pack` checked the
    // last pixel's bytes and the packed words). cin is a positive multiple of 8, so the inner
    // loop's two words a pass end exactly at the pixel's end. UADD8 sets the GE flags and
    // nothing else reads them.
    unsafe {
        asm!(
            "1:",
            "mov {n}, {half}",
            "2:",
            "ldr {w}, [{x}], #4",
            "uadd8 {t}, {w}, {two}",
            "orr {seen}, {seen}, {t}",
            "sxtb16 {t}, {w}",
            "and {w}, {mask}, {w}, lsl #5",
            "sadd16 {w}, {t}, {w}",
            "str {w}, [{p}], #4",
            "ldr {w}, [{x}], #4",
            "uadd8 {t}, {w}, {two}",
            "orr {seen}, {seen}, {t}",
            "sxtb16 {t}, {w}",
            "and {w}, {mask}, {w}, lsl #5",
            "sadd16 {w}, {t}, {w}",
            "str {w}, [{p}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            "add {x}, {x}, {skip}",
            "subs {pixels}, {pixels}, #1",
            "bne 1b",
            x = inout(reg) x.as_ptr() => _,
            p = inout(reg) packed.as_mut_ptr() => _,
            pixels = inout(reg) pixels => _,
            half = in(reg) cin / 8,
            skip = in(reg) x_step - cin,
            two = in(reg) 0x0202_0202u32,
            mask = in(reg) 0xe000_e000u32,
            seen = inout(reg) 0u32 => seen,
            n = out(reg) _,
            w = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
    seen
}

/// `acc = start + Σ SMLAD(weight word, packed word)` over one pixel's packed codes and one
/// channel's weight words, the field taken out (`SBFX`): `B + Σ w·a` when the fields' bounds hold.
#[cfg(not(edge_dsp))]
fn field_sum(start: u32, packed: &[u32], weights: impl Iterator<Item = u32>) -> i32 {
    let acc = packed
        .iter()
        .zip(weights)
        .fold(start as i32, |acc, (&x, w)| smlad(w, x, acc));
    (acc << (32 - 2 * FIELD)) >> (32 - FIELD)
}

/// A 1×1 convolution of `pixels` packed pixels ([`pack`]: `cin/4` words each, in order) against
/// `groups` groups of four output channels whose table ([`group_words`] per group) holds the
/// four starting accumulators ([`start`] of `B = b − z_x·Σ w'`), per eight inputs the channels'
/// [`weight_word`]s (channel 0's two, then channel 1's, …; `w' = w − z_w`) and the stage the
/// four share (`m`, `ra`, `s`, `pre` of [`super::PwStage::single`] with the clamp of 2-bit
/// codes: the field `B + M`, the reference's accumulator, is scaled by `2^pre` after it is taken
/// out, since a scaled weight would not fit its 3 bits; one stage for all channels, as a
/// per-tensor requantization gives, so that one `LDM` loads it). Pixel `i`'s outputs go to
/// `y[i·y_step..][..4·groups]`.
///
/// On Armv7E-M one `asm!` block, unrolled for each of [`CINS`]: per eight inputs one `LDRD` of
/// the packed codes, two `LDM`s of two channels' weights and eight `SMLAD`s (32 MACs); per group
/// one `LDM` of the stage, then per channel `SBFX`, `LSL`, `SMMLA`, `ASR`, `SSAT #2`, `STRB`.
/// Returns `false`, touching nothing, if `cin` is not one of [`CINS`] or a pixel would leave
/// `packed`, `y` or `table`.
pub(crate) fn pointwise(
    packed: &[u32],
    table: &[u32],
    groups: usize,
    (pixels, cin): (usize, usize),
    y: &mut [i8],
    y_step: usize,
) -> bool {
    if !CINS.contains(&cin) || pixels == 0 || groups == 0 || y_step < 4 * groups {
        return false;
    }
    let ends = || -> Option<(usize, usize, usize)> {
        let p_end = pixels.checked_mul(cin / 4)?;
        let y_end = (pixels - 1).checked_mul(y_step)?.checked_add(4 * groups)?;
        let t_end = groups.checked_mul(group_words(cin))?;
        // The pointers' steps must fit the registers' arithmetic.
        t_end.checked_mul(4)?;
        y_end.checked_add(y_step)?;
        Some((p_end, y_end, t_end))
    };
    match ends() {
        Some((p_end, y_end, t_end))
            if p_end <= packed.len() && y_end <= y.len() && t_end <= table.len() =>
        {
            pointwise_checked(packed, &table[..t_end], groups, (pixels, cin), y, y_step);
            true
        }
        _ => false,
    }
}

/// [`pointwise`] once its bounds are checked, on the portable model of its instructions (host
/// tests; no target without `edge_dsp` dispatches here).
#[cfg(not(edge_dsp))]
fn pointwise_checked(
    packed: &[u32],
    table: &[u32],
    groups: usize,
    (pixels, cin): (usize, usize),
    y: &mut [i8],
    y_step: usize,
) {
    let gw = group_words(cin);
    for (i, px) in packed.chunks_exact(cin / 4).take(pixels).enumerate() {
        for (g, t) in table.chunks_exact(gw).take(groups).enumerate() {
            for j in 0..4 {
                // Channel j's words: two per eight inputs, at 4 + 8·block + 2·j.
                let weights = (0..cin / 4).map(|q| t[4 + 8 * (q / 2) + 2 * j + q % 2]);
                let st = &t[4 + cin..];
                let acc = field_sum(t[j], px, weights) << st[3];
                let stage = PwStage {
                    m: st[0] as i32,
                    ra: st[1] as i32,
                    s: st[2],
                    pre: 0,
                };
                y[i * y_step + 4 * g + j] = stage.apply::<2>(acc);
            }
        }
    }
}

/// Eight inputs of four channels, `$at` bytes into the pixel's packed codes: `LDRD` of the
/// codes (`r8`, `r9`), then per two channels an `LDM` of their four weight words and four
/// `SMLAD`s into `r0`–`r3`.
#[cfg(edge_dsp)]
macro_rules! a2_block {
    ($at:literal) => {
        concat!(
            "ldrd r8, r9, [r4, #",
            $at,
            "]\n",
            "ldm r5!, {{r10, r11, r12, lr}}\n",
            "smlad r0, r10, r8, r0\n",
            "smlad r0, r11, r9, r0\n",
            "smlad r1, r12, r8, r1\n",
            "smlad r1, lr, r9, r1\n",
            "ldm r5!, {{r10, r11, r12, lr}}\n",
            "smlad r2, r10, r8, r2\n",
            "smlad r2, r11, r9, r2\n",
            "smlad r3, r12, r8, r3\n",
            "smlad r3, lr, r9, r3\n",
        )
    };
}

/// One channel's output stage (`$acc` its accumulator, the stage's words in `r8`–`r11`): the
/// field out and scaled by `2^pre`, then `SMMLA`, `ASR`, `SSAT #2` and the byte to `r12`.
#[cfg(edge_dsp)]
macro_rules! a2_stage {
    ($acc:literal) => {
        concat!(
            "sbfx ",
            $acc,
            ", ",
            $acc,
            ", #13, #13\n",
            "lsl ",
            $acc,
            ", ",
            $acc,
            ", r11\n",
            "smmla ",
            $acc,
            ", ",
            $acc,
            ", r8, r9\n",
            "asr ",
            $acc,
            ", ",
            $acc,
            ", r10\n",
            "ssat ",
            $acc,
            ", #2, ",
            $acc,
            "\n",
            "strb ",
            $acc,
            ", [r12], #1\n",
        )
    };
}

/// The whole kernel with `$blocks` (the [`a2_block`]s of one pixel's inputs) in its group loop.
#[cfg(edge_dsp)]
macro_rules! a2_kernel {
    ($blocks:expr, $cin:expr, $pixels:expr, $skip:expr, $table:expr, $t_end:expr, $x:expr, $y:expr) => {
        asm!(
            "sub sp, sp, #24",
            "str r0, [sp]",        // pixels left
            "str r1, [sp, #4]",    // output bytes past the groups, pixel to pixel
            "str r2, [sp, #8]",    // table start
            "str r3, [sp, #12]",   // table end
            "str lr, [sp, #16]",   // this pixel's outputs
            "1:",
            "ldr r5, [sp, #8]",
            "2:",
            "ldm r5!, {{r0, r1, r2, r3}}",
            $blocks,
            "ldm r5!, {{r8, r9, r10, r11}}",
            "ldr r12, [sp, #16]",
            a2_stage!("r0"),
            a2_stage!("r1"),
            a2_stage!("r2"),
            a2_stage!("r3"),
            "str r12, [sp, #16]",
            "ldr lr, [sp, #12]",
            "cmp r5, lr",
            "bne 2b",
            "add r4, r4, #{cin}",
            "ldr lr, [sp, #4]",
            "add r12, r12, lr",
            "str r12, [sp, #16]",
            "ldr lr, [sp]",
            "subs lr, lr, #1",
            "str lr, [sp]",
            "bne 1b",
            "add sp, sp, #24",
            cin = const $cin,
            inout("r0") $pixels => _,
            inout("r1") $skip => _,
            inout("r2") $table => _,
            inout("r3") $t_end => _,
            inout("r4") $x => _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            inout("lr") $y => _,
        )
    };
}

/// [`pointwise`] once its bounds are checked: the assembly.
#[cfg(edge_dsp)]
#[inline(never)]
fn pointwise_checked(
    packed: &[u32],
    table: &[u32],
    groups: usize,
    (pixels, cin): (usize, usize),
    y: &mut [i8],
    y_step: usize,
) {
    let t = table.as_ptr();
    let t_end = t.wrapping_add(groups * group_words(cin));
    let skip = y_step - 4 * groups;
    let (x, y) = (packed.as_ptr(), y.as_mut_ptr());
    // SAFETY: for pixel i < pixels the block reads the cin/4 packed words at x + i·cin bytes
    // (LDRD of two words per eight codes at fixed offsets; the pointer steps by cin after each
    // pixel), and for each group its `group_words(cin)` table words (four by LDM, then 8 per
    // eight inputs, then the 4 stage words), all inside the slices:
    // `pointwise` checked the last pixel's words, the table's `groups` groups and the last
    // pixel's outputs. Both slices are `u32`, so LDRD's and LDM's word alignment holds. The
    // group loop ends exactly at `t_end`, since each group advances the table pointer by exactly
    // its words. Per pixel it writes 4·groups bytes at y + i·y_step (y_step ≥ 4·groups, inside
    // `y`). Besides those it writes only its own 24 bytes below the stack pointer, released
    // before it ends, and its register operands. SMLAD and SSAT may set the sticky Q flag,
    // which nothing reads. The registers are named because LDM takes them in ascending order.
    unsafe {
        match cin {
            8 => a2_kernel!(a2_block!(0), 8, pixels, skip, t, t_end, x, y),
            16 => a2_kernel!(
                concat!(a2_block!(0), a2_block!(8)),
                16,
                pixels,
                skip,
                t,
                t_end,
                x,
                y
            ),
            32 => a2_kernel!(
                concat!(a2_block!(0), a2_block!(8), a2_block!(16), a2_block!(24)),
                32,
                pixels,
                skip,
                t,
                t_end,
                x,
                y
            ),
            _ => a2_kernel!(
                concat!(
                    a2_block!(0),
                    a2_block!(8),
                    a2_block!(16),
                    a2_block!(24),
                    a2_block!(32),
                    a2_block!(40),
                    a2_block!(48),
                    a2_block!(56)
                ),
                64,
                pixels,
                skip,
                t,
                t_end,
                x,
                y
            ),
        }
    }
}

#[cfg(all(test, not(edge_dsp)))]
mod tests {
    use super::*;
    use crate::test_rng::XorShift32;

    /// The field of the packed sums is the bias plus the dot product, exactly, up to the bounds
    /// the driver checks: random codes and weights, and the extremes (every product 6 in
    /// magnitude, the bias at the edge of what [`MAX_SUM`] leaves).
    #[test]
    fn the_field_holds_bias_plus_dot_product() {
        let mut rng = XorShift32::new(0xa2a2_0013);
        for case in 0..4_000 {
            let cin = CINS[case % 4];
            let extreme = case % 5 == 0;
            let a: Vec<i32> = (0..cin)
                .map(|_| if extreme { -2 } else { rng.below(4) as i32 - 2 })
                .collect();
            let w: Vec<i32> = (0..cin)
                .map(|_| match (extreme, case % 2) {
                    (true, 0) => -MAX_WEIGHT,
                    (true, _) => MAX_WEIGHT,
                    _ => rng.below(7) as i32 - 3,
                })
                .collect();
            let dot: i64 = a.iter().zip(&w).map(|(&a, &w)| i64::from(a * w)).sum();
            let room = MAX_SUM - 6 * cin as i64;
            let b = if extreme {
                if case % 3 == 0 { room } else { -room }
            } else {
                rng.below(2 * room as u32 + 1) as i64 - room
            } as i32;
            let bytes: Vec<u8> = a.iter().map(|&v| v as i8 as u8).collect();
            let packed: Vec<u32> = bytes
                .chunks_exact(4)
                .map(|c| packed_word(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            let weights = w
                .chunks_exact(4)
                .map(|q| weight_word([q[0], q[1], q[2], q[3]]));
            let got = field_sum(start(b), &packed, weights);
            assert_eq!(i64::from(got), i64::from(b) + dot, "case {case}: cin {cin}");
        }
    }

    /// [`pack`] accepts exactly the codes −2..=1, in every byte position, and refuses pixels
    /// that leave the input or the packed buffer.
    #[test]
    fn pack_checks_every_code() {
        let mut packed = [0u32; PACKED_WORDS];
        let run = PackRun {
            pixels: 2,
            cin: 8,
            x_step: 8,
        };
        for v in i8::MIN..=i8::MAX {
            for at in 0..16 {
                let mut x = [1i8; 16];
                x[at] = v;
                assert_eq!(
                    pack(&x, run, &mut packed),
                    (-2..=1).contains(&v),
                    "{v} at {at}"
                );
            }
        }
        assert!(!pack(&[0; 15], run, &mut packed));
        assert!(!pack(&[0; 16], run, &mut [0; 3]));
        assert!(pack(&[0; 16], run, &mut [0; 4]));
    }
}
