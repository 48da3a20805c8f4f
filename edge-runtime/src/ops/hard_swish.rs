//! Hard swish, `x · relu6(x + 3) / 6`: TFLM's int8 kernel, `reference_ops::HardSwish` with
//! `HardSwishParams` (`tensorflow/lite/kernels/internal/reference/hard_swish.h`), in 16-bit fixed
//! point with gemmlowp's int16 `SaturatingRoundingDoublingHighMul` and `RoundingDivideByPOT`.
//!
//! Per element: the centred input is scaled by 2^7 (the "hires" input); one multiplier takes it
//! to the output scale (before its final right shift), another to the "reluish" scale on which
//! 3.0 is 2^15, saturating, which becomes a factor in [0, 1]; their product, shifted right and
//! offset by the output zero point, is clamped to i8.
//!
//! The C++ computes in `int16_t` and converts each `int` intermediate back to it; those
//! conversions are modular (C++20, and every compiler TFLM builds with), so they are
//! `as i16` / `wrapping_*` here, including the add of the output zero point, which can wrap for
//! an output exponent of 0. Nothing here can panic.

use shared_format::TensorRecord;

use super::{KernelError, KernelResult};

/// Everything hard swish needs besides the activations (TFLM's `HardSwishParams`).
#[derive(Debug, Clone, Copy)]
pub struct HardSwishParams {
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// `reluish_multiplier_fixedpoint_int16`.
    pub reluish_multiplier: i16,
    /// `reluish_multiplier_exponent` (validated to `[−31, 31]`).
    pub reluish_shift: i32,
    /// `output_multiplier_fixedpoint_int16`.
    pub output_multiplier: i16,
    /// `output_multiplier_exponent` (validated to `[−31, 0]`).
    pub output_shift: i32,
}

impl HardSwishParams {
    /// The op's parameters between its input tensor `x` and output tensor `y`.
    pub fn new(op: &shared_format::HardSwish, x: &TensorRecord, y: &TensorRecord) -> Self {
        HardSwishParams {
            input_zero_point: x.zero_point,
            output_zero_point: y.zero_point,
            reluish_multiplier: op.reluish_multiplier,
            reluish_shift: op.reluish_shift as i32,
            output_multiplier: op.output_multiplier,
            output_shift: op.output_shift as i32,
        }
    }
}

/// Runs hard swish over every element.
pub fn hard_swish(p: &HardSwishParams, input: &[i8], output: &mut [i8]) -> KernelResult {
    if input.len() != output.len() {
        return Err(KernelError("hard swish input and output lengths differ"));
    }
    for (&x, y) in input.iter().zip(output.iter_mut()) {
        *y = hard_swish_one(p, x);
    }
    Ok(())
}

/// One element, TFLM's loop body line by line.
#[inline]
fn hard_swish_one(p: &HardSwishParams, x: i8) -> i8 {
    // |x − z| ≤ 255 and 255 · 2^7 < 2^15: both fit i16.
    let input_value = (x as i32 - p.input_zero_point as i32) as i16;
    let input_value_on_hires_input_scale = (input_value as i32 * (1 << 7)) as i16;
    let input_value_on_preshift_output_scale =
        srdhm_i16(input_value_on_hires_input_scale, p.output_multiplier);
    let mut reluish_value = input_value_on_hires_input_scale;
    if p.reluish_shift > 0 {
        reluish_value = saturating_left_shift(reluish_value, p.reluish_shift - 1);
    }
    reluish_value = srdhm_i16(reluish_value, p.reluish_multiplier);
    if p.reluish_shift > 0 {
        reluish_value = saturating_left_shift(reluish_value, 1);
    }
    if p.reluish_shift < 0 {
        reluish_value = rounding_divide_by_pot_i16(reluish_value, p.reluish_shift.unsigned_abs());
    }
    // [−1, 1] → [0, 1]: (v + 2^15) >> 1 is in [0, 2^15 − 1].
    reluish_value = ((reluish_value as i32 + (1 << 15)) >> 1) as i16;
    let preshift_output_value =
        saturating_doubling_high_mul(reluish_value, input_value_on_preshift_output_scale);
    let output_value =
        rounding_divide_by_pot_i16(preshift_output_value, p.output_shift.unsigned_abs())
            .wrapping_add(p.output_zero_point as i16);
    output_value.clamp(i8::MIN as i16, i8::MAX as i16) as i8
}

/// TFLM's `SaturatingLeftShift` (hard_swish.h): `value · 2^amount` in i64, clamped to i16.
/// `amount` is in `0..=30` for a validated model; larger amounts are taken as 30 (the product
/// saturates the same way for any nonzero value), so the shift can never overflow.
#[inline]
fn saturating_left_shift(value: i16, amount: i32) -> i16 {
    let amount = amount.clamp(0, 30) as u32;
    let result = value as i64 * (1i64 << amount);
    result.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul` for i16: `(a·b + nudge) / 2^15`, truncating,
/// with the one overflowing case `a = b = i16::MIN` saturated to `i16::MAX`.
#[inline]
fn srdhm_i16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    // |ab| < 2^30, so ab + nudge cannot overflow; the quotient fits i16 except at the case
    // handled above.
    ((ab + nudge) / (1 << 15)) as i16
}

/// TFLM's `SaturatingDoublingHighMul` (hard_swish.h): like [`srdhm_i16`] but truncating toward
/// zero with no nudge (ARM's SQDMULH).
#[inline]
fn saturating_doubling_high_mul(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    ((a as i32 * b as i32) / (1 << 15)) as i16
}

/// gemmlowp's `RoundingDivideByPOT` instantiated for i16, exponent in `0..=31` (larger ones are
/// taken as 31). Its mask `(1ll << exponent) − 1` is converted to i16, which for exponents of
/// 16 and more leaves −1: the C++ then returns `(x >> exponent) + (x ≥ 0)`, and so does this.
#[inline]
fn rounding_divide_by_pot_i16(x: i16, exponent: u32) -> i16 {
    let exponent = exponent.min(31);
    let mask = ((1i64 << exponent) - 1) as i16;
    let remainder = x & mask;
    let threshold = (mask >> 1).wrapping_add((x < 0) as i16);
    ((x as i32 >> exponent) as i16).wrapping_add((remainder > threshold) as i16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TFLM's Prepare for input scale 3/64 and output scale 3/4096 (see shared-format's
    /// `HardSwish::from_scales` test): reluish 2^14 · 2^3 (ratio 4), output 2^14 · 2^0 (1/2).
    fn exact(input_zero_point: i8, output_zero_point: i8) -> HardSwishParams {
        HardSwishParams {
            input_zero_point,
            output_zero_point,
            reluish_multiplier: 1 << 14,
            reluish_shift: 3,
            output_multiplier: 1 << 14,
            output_shift: 0,
        }
    }

    fn run(p: &HardSwishParams, x: &[i8]) -> Vec<i8> {
        let mut y = vec![0; x.len()];
        hard_swish(p, x, &mut y).unwrap();
        y
    }

    #[test]
    fn worked_by_hand() {
        // Input scale 3/64: d = 64 is 3.0. Output scale 3/4096: 1.0 is 1365.33 steps, so the
        // output saturates for any |x| ≳ 0.1; use output zero point −128 and small d.
        let p = exact(0, -128);
        // d = 0: hires 0, preshift 0 → output = zero point.
        assert_eq!(run(&p, &[0]), [-128]);
        // d = 1 (x = 3/64): hires 128; preshift = SRDHM(128, 2^14) = 64; reluish:
        // SLS(128, 2) = 512, SRDHM(512, 2^14) = 256, SLS(256, 1) = 512; (512 + 32768) >> 1 =
        // 16640; SDHM(16640, 64) = 16640·64 / 32768 = 32.5 → 32; + (−128) = −96.
        // (Real: (3/64)·(3/64 + 3)/6 = 0.0238 → 0.0238 / (3/4096) = 32.5.)
        assert_eq!(run(&p, &[1]), [-96]);
        // d = −1: preshift −64; reluish: SLS(−128, 2) = −512 → −256 → −512;
        // (−512 + 32768) >> 1 = 16128; SDHM(16128, −64) = −31.5 → −31 (toward zero) → −159
        // → clamped −128. With zero point 0: −31.
        assert_eq!(run(&p, &[-1]), [-128]);
        assert_eq!(run(&exact(0, 0), &[-1, 1]), [-31, 32]);
        // d ≥ 64 (x ≥ 3): reluish saturates at 32767 → (32767 + 32768) >> 1 = 32767, about 1:
        // the output is about x itself: d = 64 → preshift 4096, SDHM(32767, 4096) = 4095.875
        // → 4095, + 0 → 127 after the clamp.
        assert_eq!(run(&exact(0, 0), &[64]), [127]);
        // d ≤ −64 (x ≤ −3): reluish −32768 → 0: output exactly the zero point.
        assert_eq!(run(&exact(0, 5), &[-64, -100, -128]), [5, 5, 5]);
    }

    #[test]
    fn int16_helpers_follow_gemmlowp() {
        assert_eq!(srdhm_i16(i16::MIN, i16::MIN), i16::MAX);
        assert_eq!(srdhm_i16(16384, 16384), 8192);
        // −0.5: the negative nudge gives (−16384 + 1 − 2^14) / 2^15 = −0.99997, truncated to 0
        // (ties toward +∞, as for i32); −1.5 likewise becomes −1.
        assert_eq!(srdhm_i16(-1, 16384), 0);
        assert_eq!(srdhm_i16(-3, 16384), -1);
        assert_eq!(saturating_doubling_high_mul(-1, 16384), 0);
        assert_eq!(saturating_doubling_high_mul(i16::MIN, i16::MIN), i16::MAX);
        assert_eq!(saturating_left_shift(300, 7), i16::MAX);
        assert_eq!(saturating_left_shift(-300, 7), i16::MIN);
        assert_eq!(saturating_left_shift(3, 2), 12);
        assert_eq!(rounding_divide_by_pot_i16(5, 1), 3);
        assert_eq!(rounding_divide_by_pot_i16(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot_i16(-4, 1), -2);
        assert_eq!(rounding_divide_by_pot_i16(i16::MAX, 15), 1);
        // The i16 mask of exponents ≥ 16 is −1: gemmlowp's int16 instantiation returns
        // (x >> e) + (x ≥ 0).
        assert_eq!(rounding_divide_by_pot_i16(0, 16), 1);
        assert_eq!(rounding_divide_by_pot_i16(1000, 20), 1);
        assert_eq!(rounding_divide_by_pot_i16(-1000, 31), -1);
    }

    #[test]
    fn follows_the_real_function_on_a_typical_scale() {
        // Input scale 0.05, output scale 0.03 (zero points 10, −100); parameters as TFLM's
        // Prepare computes them (float32 ratios, QuantizeMultiplier, rounded to Q15).
        let (s_x, s_y) = (0.05f32, 0.03f32);
        let hires = s_x / 128.0;
        let q = |r: f32| {
            let (mut m, mut e) = (r as f64, 0);
            while m >= 1.0 {
                m /= 2.0;
                e += 1;
            }
            while m < 0.5 {
                m *= 2.0;
                e -= 1;
            }
            let q31 = (m * 2f64.powi(31)).round() as i64;
            (((q31 + (1 << 15)) >> 16).min(32767) as i16, e)
        };
        let (rm, re) = q(hires / (3.0 / 32768.0));
        let (om, oe) = q(hires / s_y);
        let p = HardSwishParams {
            input_zero_point: 10,
            output_zero_point: -100,
            reluish_multiplier: rm,
            reluish_shift: re,
            output_multiplier: om,
            output_shift: oe,
        };
        let x: Vec<i8> = (-128..=127).collect();
        let y = run(&p, &x);
        for (&xi, &yi) in x.iter().zip(&y) {
            let r = s_x as f64 * (xi as i32 - 10) as f64;
            let want =
                (r * (r + 3.0).clamp(0.0, 6.0) / 6.0 / s_y as f64 - 100.0).clamp(-128.0, 127.0);
            // 16-bit fixed point: within about one output step.
            assert!(
                (yi as f64 - want).abs() <= 1.0,
                "x {xi}: got {yi}, want ≈ {want}"
            );
        }
    }

    #[test]
    fn lengths_must_match() {
        assert!(hard_swish(&exact(0, 0), &[0; 3], &mut [0; 2]).is_err());
    }
}
