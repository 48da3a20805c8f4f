//! Softmax over the channels of each NHWC position: TFLM's int8 → int8 kernel,
//! `reference_ops::Softmax<int8_t, int8_t>` (`tensorflow/lite/kernels/internal/reference/softmax.h`),
//! with gemmlowp's fixed-point `exp` and reciprocal (`fixedpoint/fixedpoint.h`).
//!
//! Per position, with `max` the largest input and `d = x − max ≤ 0` for each channel:
//! - channels with `d ≥ diff_min` contribute `exp(d · β·s_x)`, computed as
//!   `exp_on_negative_values` of `d` rescaled into Q5.26 by the stored multiplier and left shift,
//!   and summed in Q12.19 (`Rescale<12>`); channels below `diff_min` contribute nothing and
//!   output −128;
//! - `1 / sum` comes from `GetReciprocal`: the sum is normalised into [1, 2) by its leading zeros
//!   and inverted by gemmlowp's Newton–Raphson `one_over_one_plus_x_for_x_in_0_1`;
//! - the output is `RoundingDivideByPOT(SRDHM(1/sum, exp), num_bits_over_unit + 23) − 128`,
//!   saturated to i8 (scale 1/256, zero point −128).
//!
//! Each gemmlowp function is ported under its own name, operation by operation, so it can be
//! read against the C++. gemmlowp's plain `+`, `−` and `ShiftLeft` are C++ int32 arithmetic whose
//! overflow is undefined; they are `wrapping_*` here (never reached by a validated model, whose
//! values stay small: see each function), while gemmlowp's saturating operations
//! (`SaturatingRoundingDoublingHighMul`, `SaturatingRoundingMultiplyByPOT`) saturate exactly as
//! gemmlowp defines them. Nothing here can panic, overflow checks on or off.
//!
//! Like TFLM the kernel computes each exponential twice (once for the sum, once for the output)
//! instead of keeping them, so it needs no scratch.

use shared_format::{Rounding, TensorRecord};

use super::{KernelError, KernelResult};
use crate::requant::{
    multiply_by_quantized_multiplier, rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul as srdhm,
};

/// Everything softmax needs besides the activations.
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxParams {
    /// Channels per position (the softmax axis).
    pub channels: usize,
    /// TFLM's `input_multiplier` (Q31).
    pub input_multiplier: i32,
    /// TFLM's `input_left_shift` (0..=31; at most 30 with single rounding).
    pub input_left_shift: i32,
    /// TFLM's `diff_min` (≤ 0).
    pub diff_min: i32,
    /// Requantization rounding of the model: it selects TFLM's
    /// `MultiplyByQuantizedMultiplierGreaterThanOne` variant.
    pub rounding: Rounding,
}

impl SoftmaxParams {
    /// The op's parameters over its input tensor `x`.
    pub fn new(op: &shared_format::Softmax, x: &TensorRecord, rounding: Rounding) -> Self {
        SoftmaxParams {
            channels: x.shape.c as usize,
            input_multiplier: op.input_multiplier,
            input_left_shift: op.input_left_shift as i32,
            diff_min: op.diff_min,
            rounding,
        }
    }
}

/// `kAccumulationIntegerBits`: the sum of exponentials is Q12.19.
const ACCUMULATION_INTEGER_BITS: i32 = 12;

/// Runs softmax over each run of `channels` values.
pub fn softmax(p: &SoftmaxParams, input: &[i8], output: &mut [i8]) -> KernelResult {
    let c = p.channels;
    if input.len() != output.len() || c == 0 || !input.len().is_multiple_of(c) {
        return Err(KernelError(
            "softmax lengths do not match the channel count",
        ));
    }
    for (x, y) in input.chunks_exact(c).zip(output.chunks_exact_mut(c)) {
        let max = x.iter().fold(i8::MIN, |m, &v| m.max(v)) as i32;
        // |x − max| ≤ 255, so the difference cannot overflow.
        let exp_of = |v: i8| {
            let diff = v as i32 - max;
            (diff >= p.diff_min).then(|| exp_on_negative_values::<5>(rescale_diff(p, diff)))
        };
        // Q12.19. Validation bounds the channels to 4,095 and each term to 2^19, so the sum
        // stays below 2^31 and at least 2^19 (the maximum itself contributes exp(0) = 1).
        let sum_of_exps = x
            .iter()
            .filter_map(|&v| exp_of(v))
            .fold(0i32, |s, e| s.wrapping_add(rescale_q0_to_q12(e)));
        let (shifted_scale, num_bits_over_unit) =
            get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS);
        // `num_bits_over_unit + 31 − 8`, in 3..=35.
        let exponent = num_bits_over_unit + 31 - 8;
        for (&v, out) in x.iter().zip(y.iter_mut()) {
            *out = match exp_of(v) {
                Some(e) => {
                    let product = srdhm(shifted_scale, e);
                    // TFLM checks `exponent ≤ 31` and aborts otherwise, which happens once the
                    // sum of exponentials reaches 512 (512+ channels near the maximum). The
                    // product is in [0, 2^31), so its correctly rounded quotient by 2^32 or more
                    // is 0: the format defines that case as what a wider shift would give.
                    let unsaturated = if exponent <= 31 {
                        rounding_divide_by_pot(product, exponent as u32)
                    } else {
                        0
                    };
                    let shifted = unsaturated.saturating_add(i8::MIN as i32);
                    shifted.clamp(i8::MIN as i32, i8::MAX as i32) as i8
                }
                None => i8::MIN,
            };
        }
    }
    Ok(())
}

/// TFLM's `MultiplyByQuantizedMultiplierGreaterThanOne(diff, input_multiplier,
/// input_left_shift)`: the difference as Q5.26.
///
/// Double rounding: `SRDHM(diff · 2^shift, m)`, the multiply by `2^shift` in i32 (validation
/// keeps `|diff| · 2^shift < 2^31` via `diff_min`, so it is exact; it wraps like the C++ would
/// otherwise). Single rounding (`TFLITE_SINGLE_ROUNDING`): `MultiplyByQuantizedMultiplier`.
/// With no right shift both round `diff · m / 2^(31 − shift)` half up, so on valid parameters
/// they agree; the builds differ in the shifts they admit (31 needs double rounding) and in
/// the multiplier cap TFLM applies when deriving them.
#[inline]
fn rescale_diff(p: &SoftmaxParams, diff: i32) -> i32 {
    match p.rounding {
        Rounding::Double => srdhm(
            diff.wrapping_shl(p.input_left_shift as u32),
            p.input_multiplier,
        ),
        Rounding::Single => multiply_by_quantized_multiplier(
            diff,
            p.input_multiplier,
            p.input_left_shift,
            Rounding::Single,
        ),
    }
}

/// `Rescale<12>` of a Q0.31 value: `SaturatingRoundingMultiplyByPOT<−12>`, i.e.
/// `RoundingDivideByPOT(x, 12)`.
#[inline]
fn rescale_q0_to_q12(x: i32) -> i32 {
    rounding_divide_by_pot(x, 12)
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT<exponent>` for a positive exponent (1..=30):
/// `x · 2^exponent`, saturated to the i32 range.
#[inline]
const fn saturating_rounding_multiply_by_pot(x: i32, exponent: u32) -> i32 {
    let threshold = (1i32 << (31 - exponent)) - 1;
    if x > threshold {
        i32::MAX
    } else if x < -threshold {
        i32::MIN
    } else {
        // |x| < 2^(31 − exponent): exact.
        x.wrapping_shl(exponent)
    }
}

/// gemmlowp's `RoundingHalfSum` for i32: `(a + b) / 2` rounded half away from zero, in i64.
#[inline]
const fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign = if sum >= 0 { 1 } else { -1 };
    // |sum + sign| ≤ 2^32, so the half fits in i32.
    ((sum + sign) / 2) as i32
}

/// gemmlowp's `exp_on_interval_between_negative_one_quarter_and_0_excl`: `exp(a)` for Q0.31
/// `a ∈ [−1/4, 0)`, a Taylor expansion around −1/8. Every intermediate is below 2^29 in
/// magnitude for such `a`.
const fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    /// exp(−1/8) in Q0.31.
    const CONSTANT_TERM: i32 = 1_895_147_668;
    /// 1/3 in Q0.31.
    const CONSTANT_1_OVER_3: i32 = 715_827_883;
    // x = a + 1/8 (`ConstantPOT<−3>` is 2^28 in Q0.31).
    let x = a.wrapping_add(1 << 28);
    let x2 = srdhm(x, x);
    let x3 = srdhm(x2, x);
    let x4 = srdhm(x2, x2);
    let x4_over_4 = rounding_divide_by_pot(x4, 2);
    let x4_over_24_plus_x3_over_6_plus_x2_over_2 = rounding_divide_by_pot(
        srdhm(x4_over_4.wrapping_add(x3), CONSTANT_1_OVER_3).wrapping_add(x2),
        1,
    );
    // `AddSaturatingIf16Bit` is a plain add for i32.
    CONSTANT_TERM.wrapping_add(srdhm(
        CONSTANT_TERM,
        x.wrapping_add(x4_over_24_plus_x3_over_6_plus_x2_over_2),
    ))
}

/// gemmlowp's `exp_on_negative_values` for a Q`INTEGER_BITS` input: `exp(a)` in Q0.31 for
/// `a ≤ 0`. Softmax uses Q5.26 (`tIntegerBits = 5`, TFLM's `kScaledDiffIntegerBits`), logistic
/// Q4.27 (its `kInputIntegerBits`); `INTEGER_BITS` must be in 1..=29.
///
/// `a` is split as `(a mod 1/4) − 1/4` plus a multiple of 1/4; the first part goes through the
/// Taylor expansion, and each set bit of the multiple (1/4, 1/2, 1, …, up to 2^(INTEGER_BITS−1))
/// multiplies the result by the matching constant `exp(−2^k)` (the "barrel shifter", whose
/// steps gemmlowp compiles in only where `tIntegerBits > k`). Below −32 the result is 0, a clamp
/// gemmlowp applies only above 5 integer bits (at 5 or fewer, −32 is out of range anyway).
pub(super) const fn exp_on_negative_values<const INTEGER_BITS: u32>(a: i32) -> i32 {
    let fractional_bits = 31 - INTEGER_BITS;
    /// `(k, exp(−2^k) in Q0.31)` for k = −2..=4, gemmlowp's `GEMMLOWP_EXP_BARREL_SHIFTER` list.
    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    let one_quarter = 1i32 << (fractional_bits - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    // `Rescale<0>` from `INTEGER_BITS` integer bits: `SaturatingRoundingMultiplyByPOT<I>`.
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, INTEGER_BITS),
    );
    // For a ≤ 0 this is |a| rounded up to a multiple of 1/4 (at most 2^31), so no overflow.
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    let mut i = 0;
    while i < BARREL.len() {
        let (exponent, multiplier) = BARREL[i];
        if INTEGER_BITS as i32 > exponent {
            let bit = 1i32 << (fractional_bits as i32 + exponent);
            if remainder & bit != 0 {
                result = srdhm(result, multiplier);
            }
        }
        i += 1;
    }
    // gemmlowp's clamp: `-(1 << (36 − I))` is −32 in Q`I`.
    if INTEGER_BITS > 5 && a < -(1i32 << (36 - INTEGER_BITS)) {
        result = 0;
    }
    // `SelectUsingMask(MaskIfZero(a), One, result)`: One in Q0.31 is i32::MAX.
    if a == 0 { i32::MAX } else { result }
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1`: `1 / (1 + a)` for Q0.31 `a ∈ [0, 1)`, by three
/// Newton–Raphson steps on Q2.29 values (all in (0, 4) for such `a`, so the adds cannot wrap).
pub(super) const fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    /// 48/17 and −32/17 in Q2.29.
    const CONSTANT_48_OVER_17: i32 = 1_515_870_810;
    const CONSTANT_NEG_32_OVER_17: i32 = -1_010_580_540;
    /// `F2::One()`: 1 in Q2.29.
    const F2_ONE: i32 = 1 << 29;
    // (1 + a) / 2, with gemmlowp's Q0.31 One = i32::MAX.
    let half_denominator = rounding_half_sum(a, i32::MAX);
    let mut x = CONSTANT_48_OVER_17.wrapping_add(srdhm(half_denominator, CONSTANT_NEG_32_OVER_17));
    let mut i = 0;
    while i < 3 {
        let half_denominator_times_x = srdhm(half_denominator, x);
        let one_minus_half_denominator_times_x = F2_ONE.wrapping_sub(half_denominator_times_x);
        // Q2.29 · Q2.29 is Q4.27; `Rescale<2>` brings it back to Q2.29.
        x = x.wrapping_add(saturating_rounding_multiply_by_pot(
            srdhm(x, one_minus_half_denominator_times_x),
            2,
        ));
        i += 1;
    }
    // `Rescale<0>(ExactMulByPot<−1>(x))`: Q1.30 reinterpreted, then to Q0.31.
    saturating_rounding_multiply_by_pot(x, 1)
}

/// TFLM's `GetReciprocal(x, x_integer_digits, &num_bits_over_unit)`: `x` (with
/// `x_integer_digits` integer bits) shifted into [1, 2) by its leading zeros, inverted, and the
/// shift returned so the caller can undo it. Returns `(1 / shifted x in Q0.31,
/// num_bits_over_unit)`.
///
/// For `x = 0` C++ would shift by 32 (undefined); a validated model never passes 0 (the maximum
/// channel always contributes 2^19), and here the shifted value is then taken as 0.
const fn get_reciprocal(x: i32, x_integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros();
    let num_bits_over_unit = x_integer_digits - headroom_plus_one as i32;
    let shifted = match (x as u32).checked_shl(headroom_plus_one) {
        Some(v) => v,
        None => 0,
    };
    let shifted_sum_minus_one = shifted.wrapping_sub(1 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one),
        num_bits_over_unit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(m: i32, shift: i32, diff_min: i32, channels: usize) -> SoftmaxParams {
        SoftmaxParams {
            channels,
            input_multiplier: m,
            input_left_shift: shift,
            diff_min,
            rounding: Rounding::Double,
        }
    }

    fn run(p: &SoftmaxParams, x: &[i8]) -> Vec<i8> {
        let mut y = vec![0i8; x.len()];
        softmax(p, x, &mut y).unwrap();
        y
    }

    /// CMSIS-NN's `arm_softmax_s8` test vectors, whose references its generator took from
    /// TFLite's reference kernel (double rounding).
    #[test]
    fn matches_tflite_reference_vectors() {
        // Input scale 16/255: one row of five.
        let p = params(1_077_952_576, 23, -248, 5);
        assert_eq!(
            run(&p, &[-80, -48, 16, 0, -96]),
            [-128, -125, 56, -60, -128]
        );
        // Input scale 1/255: two rows of five.
        let p = params(1_077_952_640, 19, -3968, 5);
        assert_eq!(
            run(&p, &[101, 49, 6, -34, -75, -79, -38, 120, -55, 115]),
            [-57, -70, -79, -86, -92, -94, -88, -54, -91, -56]
        );
    }

    #[test]
    fn uniform_inputs_share_the_unit() {
        // Scale 0.1 (m, e from PreprocessSoftmaxScaling: 0.1·2^26 = 6710886.4).
        let (m, e) = (1_717_986_918, 23);
        for n in 1..=300usize {
            for v in [-128i8, -3, 0, 77, 127] {
                let y = run(&params(m, e, -248, n), &vec![v; n]);
                let want = 256.0 / n as f64 - 128.0;
                for &got in &y {
                    assert_eq!(got, y[0], "n {n}: every channel equal");
                    // The reciprocal is exact to well under one output step.
                    assert!(
                        (got as f64 - want.min(127.0)).abs() <= 0.5 + 1e-9,
                        "n {n} v {v}: got {got}, want ≈ {want}"
                    );
                }
                if n.is_power_of_two() {
                    assert_eq!(y[0] as i32, (256 / n as i32 - 128).min(127), "n {n}");
                }
            }
        }
    }

    #[test]
    fn a_dominant_channel_takes_everything() {
        let p = params(1_717_986_918, 23, -248, 4);
        assert_eq!(run(&p, &[-128, 127, -128, -100]), [-128, 127, -128, -128]);
        // Differences below diff_min give exactly −128 and do not count in the sum.
        let p = params(1_717_986_918, 23, 0, 3);
        assert_eq!(run(&p, &[5, 5, 4]), [0, 0, -128]);
    }

    /// From 512 channels near the maximum up, TFLM's shift exceeds 31 (TFLM aborts); the format
    /// defines those outputs as the correctly rounded 0, i.e. −128. Up to 511 the usual path
    /// runs.
    #[test]
    fn very_wide_flat_rows_round_to_zero() {
        let (m, e) = (1_717_986_918, 23);
        for n in [511usize, 512, 600, 1000, 4095] {
            let y = run(&params(m, e, -248, n), &vec![9; n]);
            let want = if n == 511 { -127 } else { -128 };
            assert!(y.iter().all(|&v| v == want), "n {n}: {:?}", &y[..4]);
        }
    }

    #[test]
    fn lengths_must_match() {
        let p = params(1 << 30, 20, -100, 3);
        let mut y = [0i8; 6];
        assert!(softmax(&p, &[0; 5], &mut y[..5]).is_err());
        assert!(softmax(&p, &[0; 6], &mut y[..5]).is_err());
        assert!(softmax(&params(1 << 30, 20, -100, 0), &[], &mut []).is_err());
        assert!(softmax(&p, &[0; 6], &mut y).is_ok());
    }

    #[test]
    fn exp_matches_its_real_value() {
        assert_eq!(exp_on_negative_values::<5>(0), i32::MAX);
        let mut worst = 0f64;
        // Every Q5.26 step of 2^-12 from −32 to 0, and a few raw extremes.
        let mut a = 0i64;
        while a >= -(32i64 << 26) {
            let got = exp_on_negative_values::<5>(a as i32) as f64 / 2f64.powi(31);
            let want = (a as f64 / 2f64.powi(26)).exp();
            worst = worst.max((got - want).abs());
            a -= 1 << 14;
        }
        // The degree-4 Taylor expansion's truncation error, (1/8)^5 / 5! ≈ 2.5e-7, dominates.
        assert!(worst < 2.6e-7, "worst error {worst}");
        for a in [i32::MIN, i32::MIN + 1, -1] {
            let got = exp_on_negative_values::<5>(a);
            assert!((0..=i32::MAX).contains(&got), "{a}: {got}");
        }
    }

    #[test]
    fn reciprocal_matches_its_real_value() {
        // one_over_one_plus_x over [0, 1).
        for k in 0..=1000i64 {
            let a = ((k << 31) / 1001) as i32;
            let got = one_over_one_plus_x_for_x_in_0_1(a) as f64 / 2f64.powi(31);
            let want = 1.0 / (1.0 + a as f64 / 2f64.powi(31));
            assert!((got - want).abs() < 1e-8, "a {a}: {got} vs {want}");
        }
        // GetReciprocal of 1.0 in Q12.19 is 1 with no bits over the unit; of 3.0 it is 2/3
        // with one bit (1/3 = (2/3) / 2^1).
        let (r, n) = get_reciprocal(1 << 19, 12);
        assert_eq!(n, 0);
        assert!(r >= i32::MAX - 4, "{r}");
        let (r, n) = get_reciprocal(3 << 19, 12);
        assert_eq!(n, 1);
        assert!((r as f64 / 2f64.powi(31) - 2.0 / 3.0).abs() < 1e-8);
        // Zero (unreachable from a valid model) does not panic.
        let _ = get_reciprocal(0, 12);
        let _ = get_reciprocal(-1, 12);
    }

    /// Every difference a valid model can produce, for every left shift, both roundings and
    /// multipliers across the range: no arithmetic overflows (overflow checks are on in tests),
    /// and the rescaled difference is the real product within one rounding step.
    #[test]
    fn every_valid_difference_rescales_without_overflow() {
        for shift in 0..=31 {
            let radius = shared_format::Softmax::input_radius(shift as i8);
            for m in [1 << 30, 1_518_500_250, i32::MAX] {
                for rounding in [Rounding::Double, Rounding::Single] {
                    if rounding == Rounding::Single && shift == 31 {
                        continue;
                    }
                    let p = SoftmaxParams {
                        rounding,
                        ..params(m, shift, -radius, 1)
                    };
                    for diff in (-radius).max(-255)..=0 {
                        let r = rescale_diff(&p, diff);
                        let real = diff as f64 * m as f64 * 2f64.powi(shift - 31);
                        assert!((r as f64 - real).abs() <= 1.0, "{diff} {m} {shift}");
                        let e = exp_on_negative_values::<5>(r);
                        assert!(e >= 0);
                        if shift <= 30 {
                            let other = SoftmaxParams {
                                rounding: match rounding {
                                    Rounding::Double => Rounding::Single,
                                    Rounding::Single => Rounding::Double,
                                },
                                ..p
                            };
                            assert_eq!(r, rescale_diff(&other, diff), "modes agree");
                        }
                    }
                }
            }
        }
    }
}
