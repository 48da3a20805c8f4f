//! The sigmoid: TFLM's int8 kernel, `reference_integer_ops::Logistic`
//! (`tensorflow/lite/kernels/internal/reference/integer_ops/logistic.h`), with gemmlowp's
//! fixed-point `logistic` (`fixedpoint/fixedpoint.h`) on a Q4.27 input.
//!
//! Per element, with `d = x − z_x`:
//! - `d ≤ −radius` gives −128 and `d ≥ radius` gives 127 (the rescaling below would overflow
//!   there, and σ is within half a step of its limit);
//! - otherwise `d` is rescaled into Q4.27 by `MBQM(d, input_multiplier, input_left_shift)`,
//!   gemmlowp's `logistic` gives σ in Q0.31, and `RoundingDivideByPOT(σ, 23) − 128`, clamped to
//!   i8, is the output (scale 1/256, zero point −128).
//!
//! gemmlowp's `logistic` shares `exp_on_negative_values` and `one_over_one_plus_x_for_x_in_0_1`
//! with softmax (ported once, in [`super::softmax`]); its own steps are ported below under their
//! gemmlowp names.

use shared_format::{Rounding, TensorRecord};

use super::softmax::{exp_on_negative_values, one_over_one_plus_x_for_x_in_0_1};
use super::{KernelError, KernelResult};
use crate::requant::{multiply_by_quantized_multiplier, rounding_divide_by_pot};

/// Everything logistic needs besides the activations.
#[derive(Debug, Clone, Copy)]
pub struct LogisticParams {
    /// Input zero point.
    pub input_zero_point: i8,
    /// TFLM's `input_range_radius` (validation keeps `radius · 2^shift` within Q4.27).
    pub input_range_radius: i32,
    /// TFLM's `input_multiplier` (Q31).
    pub input_multiplier: i32,
    /// TFLM's `input_left_shift`.
    pub input_left_shift: i32,
    /// Requantization rounding of the model (TFLM's `MultiplyByQuantizedMultiplier` build).
    pub rounding: Rounding,
}

impl LogisticParams {
    /// The op's parameters over its input tensor `x`.
    pub fn new(op: &shared_format::Logistic, x: &TensorRecord, rounding: Rounding) -> Self {
        LogisticParams {
            input_zero_point: x.zero_point,
            input_range_radius: op.input_range_radius,
            input_multiplier: op.input_multiplier,
            input_left_shift: op.input_left_shift as i32,
            rounding,
        }
    }
}

/// `kInputIntegerBits`: the rescaled input is Q4.27.
const INPUT_INTEGER_BITS: u32 = 4;
/// `kOutputIntegerBits`: Q0.31 → 1/256 steps is a division by 2^(31 − 8).
const OUTPUT_INTEGER_BITS: u32 = 8;

/// Runs the sigmoid over every element.
pub fn logistic(p: &LogisticParams, input: &[i8], output: &mut [i8]) -> KernelResult {
    if input.len() != output.len() {
        return Err(KernelError("logistic input and output lengths differ"));
    }
    for (&x, y) in input.iter().zip(output.iter_mut()) {
        *y = logistic_one(p, x);
    }
    Ok(())
}

/// One element, TFLM's loop body.
#[inline]
fn logistic_one(p: &LogisticParams, x: i8) -> i8 {
    let input = x as i32 - p.input_zero_point as i32;
    // Validation keeps `radius ≥ 0`; saturating so that no radius can make the negation panic.
    if input <= p.input_range_radius.saturating_neg() {
        return i8::MIN;
    }
    if input >= p.input_range_radius {
        return i8::MAX;
    }
    let input_in_q4 =
        multiply_by_quantized_multiplier(input, p.input_multiplier, p.input_left_shift, p.rounding);
    let output_in_q0 = gemmlowp_logistic(input_in_q4);
    let output_in_q23 = rounding_divide_by_pot(output_in_q0, 31 - OUTPUT_INTEGER_BITS);
    // σ ∈ [0, 1] in Q0.31 → [0, 256] in 1/256 steps; 256 − 128 saturates to 127.
    output_in_q23
        .saturating_add(i8::MIN as i32)
        .clamp(i8::MIN as i32, i8::MAX as i32) as i8
}

/// gemmlowp's `logistic` for a Q4.27 input: σ(a) in Q0.31. For `a > 0` it is
/// `logistic_on_positive_values(a)`, for `a < 0` its complement `One − σ(|a|)`, and exactly 1/2
/// for `a = 0`. `|a| < 15 · 2^27` for a validated model, so the negation cannot overflow (it
/// wraps like the C++ would otherwise).
const fn gemmlowp_logistic(a: i32) -> i32 {
    let abs_input = if a > 0 { a } else { a.wrapping_neg() };
    let result_if_positive = logistic_on_positive_values(abs_input);
    // `ResultF::One()` is i32::MAX; the result is in [0, One], so this cannot wrap.
    let result_if_negative = i32::MAX.wrapping_sub(result_if_positive);
    if a == 0 {
        1 << 30
    } else if a > 0 {
        result_if_positive
    } else {
        result_if_negative
    }
}

/// gemmlowp's `logistic_on_positive_values`: `1 / (1 + exp(−a))` for Q4.27 `a ≥ 0`.
const fn logistic_on_positive_values(a: i32) -> i32 {
    one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values::<INPUT_INTEGER_BITS>(
        a.wrapping_neg(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TFLM's Prepare for input scale 1/16 (exact): `frexp(2^−4 · 2^27) = 0.5 · 2^24`.
    fn sixteenth(zero_point: i8) -> LogisticParams {
        LogisticParams {
            input_zero_point: zero_point,
            input_range_radius: 120,
            input_multiplier: 1 << 30,
            input_left_shift: 24,
            rounding: Rounding::Double,
        }
    }

    fn run(p: &LogisticParams, x: &[i8]) -> Vec<i8> {
        let mut y = vec![0; x.len()];
        logistic(p, x, &mut y).unwrap();
        y
    }

    #[test]
    fn zero_is_one_half_and_saturation_follows_the_radius() {
        let p = sixteenth(3);
        // d = 0 → σ = 1/2 exactly → 128/256 → 0.
        assert_eq!(run(&p, &[3]), [0]);
        // Radius 120: d = −120 (x = −117) and below → −128; d = 120 is x = 123 and above → 127.
        assert_eq!(run(&p, &[-117, -128, 123, 127]), [-128, -128, 127, 127]);
        // Just inside the radius: σ(±119/16 = ±7.44) = 0.99941… → 255.85 → 256 → 127, and
        // 0.000587 → 0.15 → 0 → −128.
        assert_eq!(run(&p, &[122, -116]), [127, -128]);
    }

    #[test]
    fn matches_the_sigmoid_within_gemmlowps_error() {
        // Scale 1/16, zero point 0: d/16 in [−8, 8).
        let p = sixteenth(0);
        let x: Vec<i8> = (-128..=127).collect();
        let y = run(&p, &x);
        for (&xi, &yi) in x.iter().zip(&y) {
            let d = xi as i32;
            if d.abs() >= 120 {
                continue;
            }
            let want = 256.0 / (1.0 + (-(d as f64) / 16.0).exp()) - 128.0;
            // gemmlowp's exp and reciprocal are accurate to a few ulps of Q0.31, far below
            // one output step: the output is the correctly rounded value except near a tie.
            assert!(
                (yi as f64 - want.min(127.0)).abs() <= 0.5 + 1e-6,
                "x {xi}: got {yi}, want ≈ {want}"
            );
        }
        // Monotone, and symmetric about zero: σ(−d) = 1 − σ(d) → y(−d) = −y(d) − 1, except
        // where 1 − σ rounds on the other side of a tie.
        assert!(y.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(y[128 + 16], 59); // σ(1) = 0.731059 → 187.15 → 187 − 128
        assert_eq!(y[128 - 16], -59); // σ(−1) = 0.268941 → 68.85 → 69 − 128
        assert_eq!(y[128 + 8], 31); // σ(0.5) = 0.622459 → 159.35 → 159 − 128
    }

    /// gemmlowp's `logistic` computes σ(|a|) once and returns `One − σ(|a|)` for negative
    /// inputs, so the two halves sum to One exactly.
    #[test]
    fn gemmlowp_logistic_is_odd_about_one_half() {
        for raw in [1, 1000, 1 << 20, 1 << 27, 3 << 27, (15 << 27) - 1] {
            let pos = gemmlowp_logistic(raw);
            let neg = gemmlowp_logistic(-raw);
            assert_eq!(pos as i64 + neg as i64, i32::MAX as i64, "raw {raw}");
            assert!(pos > 1 << 30, "raw {raw}: {pos}");
        }
        assert_eq!(gemmlowp_logistic(0), 1 << 30);
        // σ(1) · 2^31 = 1569936343.3…; gemmlowp's exp and Newton–Raphson reciprocal land
        // within about 2^−24 of it.
        let one = gemmlowp_logistic(1 << 27);
        assert!((one - 1_569_936_343).abs() < 1 << 7, "{one}");
    }

    #[test]
    fn single_rounding_agrees_where_the_multiply_is_exact() {
        let mut p = sixteenth(-5);
        let x: Vec<i8> = (-128..=127).collect();
        let double = run(&p, &x);
        p.rounding = Rounding::Single;
        // m = 2^30, shift 24: d · 2^24 / 2 exactly, in both builds.
        assert_eq!(run(&p, &x), double);
    }

    #[test]
    fn a_zero_radius_saturates_everything() {
        // Shift 31 (scale ≥ 8): TFLM's radius is 0, so even d = 0 gives −128.
        let p = LogisticParams {
            input_zero_point: 0,
            input_range_radius: 0,
            input_multiplier: 1 << 30,
            input_left_shift: 31,
            rounding: Rounding::Double,
        };
        assert_eq!(run(&p, &[-1, 0, 1]), [-128, -128, 127]);
    }

    #[test]
    fn lengths_must_match() {
        assert!(logistic(&sixteenth(0), &[0; 3], &mut [0; 2]).is_err());
    }
}
