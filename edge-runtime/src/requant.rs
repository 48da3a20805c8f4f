//! Fixed-point requantization primitives: TFLite Micro's (gemmlowp's) integer arithmetic made
//! total, exactly as `shared-format/NUMERICS.md` defines it (EDGE_ANCHORS §3.4).
//!
//! Every function here is total: no input makes it panic, even with overflow checks on. Where C++
//! has undefined behaviour (signed overflow of `acc · 2^left`), NUMERICS.md defines wrap-around
//! and so do we.

use shared_format::{Clamp, Rounding};

/// gemmlowp's `SaturatingRoundingDoublingHighMul` (TFLM `common.h`; NEON `VQRDMULH`):
/// `round((a · b) / 2^31)` with ties toward +∞, saturating the one overflowing case
/// `a = b = i32::MIN` to `i32::MAX`.
///
/// Division truncates toward zero after a sign-dependent nudge, which equals
/// `floor((a·b + 2^30) / 2^31)` (the CMSIS-NN form).
#[inline]
pub const fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    // |a·b| ≤ 2^62 and |nudge| < 2^30, so neither the product nor the sum overflows i64; the
    // quotient fits i32 because the only case reaching 2^31 was handled above.
    let product = a as i64 * b as i64;
    let nudge = if product >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((product + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT` (CMSIS-NN `arm_nn_divide_by_power_of_two`): `x / 2^exponent`
/// rounded half away from zero, for `exponent` in `0..=31`.
///
/// Exponents above 31 are treated as 31 (they never occur: validation bounds shifts to
/// `[-31, 30]`), so the function stays total.
#[inline]
pub const fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    let n = if exponent > 31 { 31 } else { exponent };
    // In i64 so that n = 31 gives mask 2^31 − 1 without overflowing.
    let mask = ((1i64 << n) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> n) + (remainder > threshold) as i32
}

/// TFLM's `MultiplyByQuantizedMultiplier`: `acc · m · 2^(shift − 31)` rounded as the model's
/// [`Rounding`] says (EDGE_ANCHORS §3.4).
///
/// - [`Rounding::Double`] (TFLM's default build): `RDBPOT(SRDHM(acc · 2^left, m), right)` with
///   `left = max(shift, 0)`, `right = max(−shift, 0)`; `acc · 2^left` wraps like NUMERICS.md says.
/// - [`Rounding::Single`] (`TFLITE_SINGLE_ROUNDING`): one 64-bit multiply and one rounding
///   shift, `(acc·m + 2^(30 − shift)) >> (31 − shift)`, truncated to i32.
///
/// `shift` is clamped to `[-31, 30]`, the range validation accepts, so out-of-range values
/// cannot make it panic.
#[inline]
pub const fn multiply_by_quantized_multiplier(
    acc: i32,
    multiplier: i32,
    shift: i32,
    rounding: Rounding,
) -> i32 {
    let shift = if shift < -31 {
        -31
    } else if shift > 30 {
        30
    } else {
        shift
    };
    match rounding {
        Rounding::Double => {
            let left = if shift > 0 { shift as u32 } else { 0 };
            let right = if shift < 0 { (-shift) as u32 } else { 0 };
            // acc · 2^left with two's-complement wrap-around (left ≤ 30, so 1 << left is exact).
            let scaled = acc.wrapping_mul(1 << left);
            rounding_divide_by_pot(
                saturating_rounding_doubling_high_mul(scaled, multiplier),
                right,
            )
        }
        Rounding::Single => {
            // total_shift in 1..=62; |acc·m| ≤ 2^62 and the round term ≤ 2^61, so no i64
            // overflow. `as i32` truncates, as NUMERICS.md specifies.
            let total_shift = (31 - shift) as u32;
            let round = 1i64 << (total_shift - 1);
            ((acc as i64 * multiplier as i64 + round) >> total_shift) as i32
        }
    }
}

/// The output stage every requantizing op ends with (TFLM's conv/FC/add epilogue):
/// `clamp(MBQM(acc, m, e) + z_y, lo, hi)` with a saturating `+ z_y`.
///
/// The clamp is written as `max(lo).min(hi)` rather than `i32::clamp`, which would panic on a
/// reversed range; validation guarantees `lo ≤ hi` and that both fit the output's bits.
#[inline]
pub const fn requantize(
    acc: i32,
    multiplier: i32,
    shift: i32,
    output_zero_point: i8,
    clamp: Clamp,
    rounding: Rounding,
) -> i8 {
    let scaled = multiply_by_quantized_multiplier(acc, multiplier, shift, rounding);
    clamp_to_i8(scaled.saturating_add(output_zero_point as i32), clamp)
}

/// One channel's [`requantize`] with everything that depends only on the multiplier, shift and
/// rounding worked out once: a kernel that requantizes many outputs of few channels (depthwise:
/// one output per 9 MACs) builds these per channel and calls [`ChannelRequant::apply`] per output.
///
/// `apply(acc, z_y, clamp)` equals `requantize(acc, m, shift, z_y, clamp, rounding)` for every
/// input (unit-tested against it). The only rewrite is SRDHM's nudged truncating division, which
/// equals `floor((a·b + 2^30) / 2^31)`, i.e. an add and an arithmetic shift (see
/// [`saturating_rounding_doubling_high_mul`]); its one saturating case is kept.
#[derive(Debug, Clone, Copy)]
pub struct ChannelRequant {
    multiplier: i32,
    /// Double: `2^right − 1`; single: `2^(right − 33)` if `right ≥ 33` (the rounding term's
    /// high word, for [`apply_plain`](Self::apply_plain)), else 0.
    mask: i32,
    /// Double: `max(shift, 0)`.
    left: u8,
    /// Double: `max(−shift, 0)`; single: `31 − shift`.
    right: u8,
    rounding: Rounding,
}

impl ChannelRequant {
    /// Precomputes the output stage of multiplier `multiplier` and `shift` (clamped to
    /// `[-31, 30]` like [`multiply_by_quantized_multiplier`]).
    pub const fn new(multiplier: i32, shift: i32, rounding: Rounding) -> Self {
        let shift = if shift < -31 {
            -31
        } else if shift > 30 {
            30
        } else {
            shift
        };
        // Both in 0..=62 after the clamp above.
        let (left, right) = match rounding {
            Rounding::Double => (
                if shift > 0 { shift as u8 } else { 0 },
                if shift < 0 { (-shift) as u8 } else { 0 },
            ),
            Rounding::Single => (0, (31 - shift) as u8),
        };
        Self {
            multiplier,
            mask: match rounding {
                // right ≤ 31 for double rounding: in i64 so that 31 gives 2^31 − 1.
                Rounding::Double => ((1i64 << (right & 31)) - 1) as i32,
                // right ≤ 62, so the power is at most 2^29.
                Rounding::Single if right >= 33 => 1 << ((right - 33) & 31),
                Rounding::Single => 0,
            },
            left,
            right,
            rounding,
        }
    }

    /// `clamp(MBQM(acc, m, e) + z_y, lo, hi)`, exactly [`requantize`].
    #[inline(always)]
    pub const fn apply(&self, acc: i32, output_zero_point: i8, clamp: Clamp) -> i8 {
        clamp_to_i8(
            self.scale(acc).saturating_add(output_zero_point as i32),
            clamp,
        )
    }

    /// [`apply`](Self::apply) for a stage whose rounding is `DOUBLE` (double rounding) or not
    /// (single): a kernel that matches on the model's rounding once, outside its output loop,
    /// gets a loop free of the per-output branch. The result is unspecified (but memory safe)
    /// if `DOUBLE` disagrees with the rounding the stage was built with.
    #[inline(always)]
    pub const fn apply_as<const DOUBLE: bool>(
        &self,
        acc: i32,
        output_zero_point: i8,
        clamp: Clamp,
    ) -> i8 {
        let scaled = if DOUBLE {
            self.scale_double(acc)
        } else {
            self.scale_single(acc)
        };
        clamp_to_i8(scaled.saturating_add(output_zero_point as i32), clamp)
    }

    /// Whether [`apply_plain`](Self::apply_plain) equals [`apply`](Self::apply) for this stage:
    /// for double rounding, no left shift (shift ≤ 0) and a multiplier other than `i32::MIN`;
    /// for single rounding, a right shift of at least 33 (shift ≤ −2). Either holds for nearly
    /// every conv and add, whose output scale exceeds the accumulator scale.
    #[inline(always)]
    pub const fn is_plain(&self) -> bool {
        match self.rounding {
            Rounding::Double => self.left == 0 && self.multiplier != i32::MIN,
            Rounding::Single => self.right >= 33,
        }
    }

    /// [`apply_as`](Self::apply_as) for a stage that [`is_plain`](Self::is_plain), in fewer
    /// instructions on a 32-bit core. The result is unspecified (but memory safe) for another
    /// stage.
    #[inline(always)]
    pub const fn apply_plain<const DOUBLE: bool>(
        &self,
        acc: i32,
        output_zero_point: i8,
        clamp: Clamp,
    ) -> i8 {
        let scaled = self.scale_plain::<DOUBLE>(acc);
        clamp_to_i8(scaled.saturating_add(output_zero_point as i32), clamp)
    }

    /// [`scale`](Self::scale) for a stage that [`is_plain`](Self::is_plain) and whose rounding is
    /// `DOUBLE` or not (unspecified, but memory safe, for another).
    ///
    /// Double: SRDHM without its saturating case (only a multiplier of `i32::MIN` reaches it)
    /// and no left shift. Single: `(acc·m + 2^(right−1)) >> right` with `right ≥ 33` is
    /// `((acc·m >> 32) + 2^(right−33)) >> (right − 32)`, the rounding term lying wholly in the
    /// high word; floor divisions compose, and the inner sum fits in i32 (`|acc·m| ≤ 2^62`), so
    /// only the high word of the product is needed.
    #[inline(always)]
    pub const fn scale_plain<const DOUBLE: bool>(&self, acc: i32) -> i32 {
        let product = acc as i64 * self.multiplier as i64;
        if DOUBLE {
            let high = ((product + (1 << 30)) >> 31) as i32;
            let remainder = high & self.mask;
            let threshold = (self.mask >> 1) + (high < 0) as i32;
            high.wrapping_shr(self.right as u32) + (remainder > threshold) as i32
        } else {
            let high = ((product >> 32) as i32).wrapping_add(self.mask);
            high.wrapping_shr((self.right as u32).wrapping_sub(32))
        }
    }

    /// The multiplier, `mask` and `right` fields (see them) of a stage, for the x86-64 and
    /// aarch64 vector output stages (`ops::simd::x86_64::sse2::PlainStages`,
    /// `ops::simd::aarch64::BlockStages`), which form [`scale_plain`](Self::scale_plain)
    /// from them four channels at a time.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[inline(always)]
    pub(crate) const fn plain_parts(&self) -> (i32, i32, u8) {
        (self.multiplier, self.mask, self.right)
    }

    /// `MBQM(acc, m, e)`, exactly [`multiply_by_quantized_multiplier`].
    #[inline(always)]
    pub const fn scale(&self, acc: i32) -> i32 {
        match self.rounding {
            Rounding::Double => self.scale_double(acc),
            Rounding::Single => self.scale_single(acc),
        }
    }

    #[inline(always)]
    const fn scale_double(&self, acc: i32) -> i32 {
        let m = self.multiplier;
        let a = acc.wrapping_shl(self.left as u32); // acc · 2^left, wrapping (left ≤ 30)
        let high = if a == i32::MIN && m == i32::MIN {
            i32::MAX
        } else {
            // |a·m| < 2^62 here, so neither the sum nor the i32 result overflows.
            ((a as i64 * m as i64 + (1 << 30)) >> 31) as i32
        };
        let remainder = high & self.mask;
        let threshold = (self.mask >> 1) + (high < 0) as i32;
        high.wrapping_shr(self.right as u32) + (remainder > threshold) as i32
    }

    #[inline(always)]
    const fn scale_single(&self, acc: i32) -> i32 {
        // right = 31 − shift in 1..=62: the rounding term is 2^(right − 1).
        let right = self.right as u32;
        let round = 1i64 << (right.wrapping_sub(1) & 63);
        ((acc as i64 * self.multiplier as i64 + round).wrapping_shr(right)) as i32
    }
}

/// `min(max(v, lo), hi)` as i8; the result is in `[lo, hi]` whenever `lo ≤ hi`, and in the i8
/// range in any case, so the cast never truncates.
#[inline]
pub const fn clamp_to_i8(v: i32, clamp: Clamp) -> i8 {
    let lo = clamp.min as i32;
    let hi = clamp.max as i32;
    let v = if v < lo { lo } else { v };
    let v = if v > hi { hi } else { v };
    // Both bounds are i8, so v is too (if lo > hi, v = hi).
    v as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift32;

    /// NUMERICS.md written with i64/i128 and plain operators, independently of the code above.
    fn reference(acc: i32, m: i32, e: i32, rounding: Rounding) -> i32 {
        match rounding {
            Rounding::Double => {
                let left = e.max(0);
                let right = (-e).max(0);
                let a = (acc as i64 * (1i64 << left)) as i32 as i64; // wrap like C's int32
                let b = m as i64;
                let high = if a == i32::MIN as i64 && b == i32::MIN as i64 {
                    i32::MAX as i64
                } else {
                    let p = a * b;
                    // floor((p + 2^30) / 2^31) equals the nudged truncating division.
                    (p + (1 << 30)).div_euclid(1 << 31)
                };
                // Round half away from zero of high / 2^right.
                let d = 1i64 << right;
                let q = high.abs();
                let r = (q + d / 2) / d;
                let r = if right == 0 { q } else { r };
                (if high < 0 { -r } else { r }) as i32
            }
            Rounding::Single => {
                let t = 31 - e;
                ((acc as i128 * m as i128 + (1i128 << (t - 1))) >> t) as i32
            }
        }
    }

    #[test]
    fn srdhm_hand_cases() {
        // 2^30 · 2^30 / 2^31 = 2^29 exactly.
        assert_eq!(
            saturating_rounding_doubling_high_mul(1 << 30, 1 << 30),
            1 << 29
        );
        // The only saturating case.
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        // Ties go toward +∞: 1·2^30 / 2^31 = 0.5 → 1, and −0.5 → 0.
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        // Just below a negative tie rounds away.
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            -i32::MAX
        );
        assert_eq!(saturating_rounding_doubling_high_mul(0, i32::MIN), 0);
    }

    #[test]
    fn rdbpot_hand_cases() {
        // Half away from zero: ±2.5 → ±3, ±1.5 → ±2, −2.25 → −2.
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(3, 1), 2);
        assert_eq!(rounding_divide_by_pot(-3, 1), -2);
        assert_eq!(rounding_divide_by_pot(-9, 2), -2);
        assert_eq!(rounding_divide_by_pot(-10, 2), -3);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
        // n = 31: mask 2^31 − 1 must not overflow.
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot((1 << 30) - 1, 31), 0);
        assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1); // 0.5 → 1
        // Out-of-range exponents behave as 31 instead of panicking.
        assert_eq!(rounding_divide_by_pot(i32::MAX, 99), 1);
    }

    #[test]
    fn mbqm_hand_cases() {
        let half = 1 << 30; // M = 0.5 at shift 0
        assert_eq!(
            multiply_by_quantized_multiplier(3, half, 0, Rounding::Double),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-3, half, 0, Rounding::Double),
            -1
        );
        assert_eq!(
            multiply_by_quantized_multiplier(3, half, 0, Rounding::Single),
            2
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-3, half, 0, Rounding::Single),
            -1
        );
        // Double rounding rounds twice: −5 · 0.5 / 2 = −1.25. SRDHM gives −2 (−2.5 → −2 toward
        // +∞), then RDBPOT(−2, 1) = −1; single rounding gives floor(−1.25 + 0.5) = −1.
        assert_eq!(
            multiply_by_quantized_multiplier(-5, half, -1, Rounding::Double),
            -1
        );
        // Where they differ: 3 · 0.5 / 2 = 0.75 → SRDHM 2 (1.5 → 2), RDBPOT(2, 1) = 1; single
        // gives floor(0.75 + 0.5) = 1. And 1 · 0.5 / 2 = 0.25: double 1 → RDBPOT(1,1) = 1 (0.5
        // away from zero), single floor(0.75) = 0.
        assert_eq!(
            multiply_by_quantized_multiplier(1, half, -1, Rounding::Double),
            1
        );
        assert_eq!(
            multiply_by_quantized_multiplier(1, half, -1, Rounding::Single),
            0
        );
        // Positive shift wraps acc · 2^left instead of overflowing.
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MAX, i32::MAX, 1, Rounding::Double),
            reference(i32::MAX, i32::MAX, 1, Rounding::Double)
        );
        // INT32_MIN · 2^0 with m = INT32_MIN saturates inside SRDHM.
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0, Rounding::Double),
            i32::MAX
        );
        // Zero multiplier (QuantizeMultiplier's flush-to-zero) gives zero.
        assert_eq!(
            multiply_by_quantized_multiplier(12345, 0, 0, Rounding::Double),
            0
        );
        assert_eq!(
            multiply_by_quantized_multiplier(12345, 0, 0, Rounding::Single),
            0
        );
    }

    #[test]
    fn mbqm_matches_reference_formula() {
        // A deterministic sweep over accumulators, multipliers and every valid shift.
        let mut rng = XorShift32::new(0x9E37_79B9);
        let mut next = || rng.next_u32();
        let edge = [
            0,
            1,
            -1,
            i32::MIN,
            i32::MAX,
            i32::MIN + 1,
            1 << 30,
            -(1 << 30),
        ];
        for e in -31..=30 {
            for k in 0..400 {
                let acc = if k < edge.len() {
                    edge[k]
                } else {
                    next() as i32
                };
                let m = match k % 4 {
                    0 => 1 << 30,
                    1 => i32::MAX,
                    2 => 0,
                    _ => (1 << 30) | (next() >> 2) as i32,
                };
                for r in [Rounding::Double, Rounding::Single] {
                    assert_eq!(
                        multiply_by_quantized_multiplier(acc, m, e, r),
                        reference(acc, m, e, r),
                        "acc {acc} m {m} e {e} {r:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn channel_requant_equals_requantize() {
        let mut rng = XorShift32::new(0x1234_5678);
        let mut next = || rng.next_u32();
        let edge = [
            0,
            1,
            -1,
            i32::MIN,
            i32::MAX,
            i32::MIN + 1,
            1 << 30,
            -(1 << 30),
            3,
            -3,
        ];
        let clamps = [
            Clamp {
                min: -128,
                max: 127,
            },
            Clamp { min: -8, max: 7 },
            Clamp { min: 0, max: 5 },
        ];
        for e in -33..=32 {
            for k in 0..300 {
                let m = match k % 6 {
                    0 => 1 << 30,
                    1 => i32::MAX,
                    2 => 0,
                    3 => i32::MIN,
                    4 => next() as i32,
                    _ => (1 << 30) | (next() >> 2) as i32,
                };
                for r in [Rounding::Double, Rounding::Single] {
                    let c = ChannelRequant::new(m, e, r);
                    for j in 0..12 {
                        let acc = if j < edge.len() {
                            edge[j]
                        } else {
                            next() as i32 >> (next() % 32)
                        };
                        let z_y = next() as i8;
                        let clamp = clamps[k % 3];
                        let want = requantize(acc, m, e, z_y, clamp, r);
                        let what = format!("acc {acc} m {m} e {e} z_y {z_y} {r:?}");
                        assert_eq!(c.apply(acc, z_y, clamp), want, "{what}");
                        let hoisted = match r {
                            Rounding::Double => c.apply_as::<true>(acc, z_y, clamp),
                            Rounding::Single => c.apply_as::<false>(acc, z_y, clamp),
                        };
                        assert_eq!(hoisted, want, "{what}");
                        if c.is_plain() {
                            let scaled = multiply_by_quantized_multiplier(acc, m, e, r);
                            let (y, s) = match r {
                                Rounding::Double => (
                                    c.apply_plain::<true>(acc, z_y, clamp),
                                    c.scale_plain::<true>(acc),
                                ),
                                Rounding::Single => (
                                    c.apply_plain::<false>(acc, z_y, clamp),
                                    c.scale_plain::<false>(acc),
                                ),
                            };
                            assert_eq!((y, s), (want, scaled), "{what}");
                        }
                        assert_eq!(
                            c.scale(acc),
                            multiply_by_quantized_multiplier(acc, m, e, r),
                            "{what}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn requantize_saturates_and_clamps() {
        let c = Clamp {
            min: -128,
            max: 127,
        };
        // Huge positive result plus zero point saturates rather than overflowing.
        assert_eq!(
            requantize(i32::MAX, i32::MAX, 0, 127, c, Rounding::Double),
            127
        );
        let relu = Clamp { min: -5, max: 100 };
        assert_eq!(requantize(-1000, 1 << 30, 0, 0, relu, Rounding::Double), -5);
        assert_eq!(requantize(10, 1 << 30, 0, 3, relu, Rounding::Double), 8);
        // A reversed clamp (never validated) must not panic.
        assert_eq!(clamp_to_i8(0, Clamp { min: 5, max: -5 }), -5);
    }

    /// EDGE_ANCHORS §3.7: MBQM with double rounding, m = 1518500250 (≈ 2^31/√2), e = −7, over
    /// the accumulators `(−10^6..=10^6).step_by(997)`, each i32 output folded into FNV-1a-32 as
    /// one 32-bit word, gave 0x17082d5f on x86-64, Cortex-M4/M7, RV32 and aarch64. The document
    /// says "2,006 accumulators"; the sequence it hashed has 2,007 (2·10^6/997 ≈ 2006 steps).
    /// Single rounding gives another hash (9 outputs differ), so this pins the rounding mode too.
    #[test]
    fn anchor_hash_matches_edge_anchors() {
        const M: i32 = 1_518_500_250;
        const E: i32 = -7;
        let accs: Vec<i32> = (-1_000_000i32..=1_000_000).step_by(997).collect();
        assert_eq!(accs.len(), 2007);
        let fnv1a_words = |rounding| {
            accs.iter().fold(0x811c_9dc5u32, |h, &a| {
                let y = multiply_by_quantized_multiplier(a, M, E, rounding);
                assert_eq!(y, reference(a, M, E, rounding), "acc {a}");
                (h ^ y as u32).wrapping_mul(0x0100_0193)
            })
        };
        let double = fnv1a_words(Rounding::Double);
        assert_eq!(double, 0x1708_2d5f, "{double:#010x}");
        let single = fnv1a_words(Rounding::Single);
        assert_ne!(
            single, double,
            "the two rounding modes must differ on this sweep"
        );
    }
}
