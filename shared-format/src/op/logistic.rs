//! The sigmoid (format 1.4): TFLite's int8 LOGISTIC, as TFLM's `reference_integer_ops::Logistic`
//! computes it with gemmlowp's fixed-point `logistic` on a Q4.27 input.
//!
//! TFLM's Prepare (`CalculateArithmeticOpDataLogistic`) derives three integers from the input
//! scale; the format stores them, so the device never touches a float. The output is fixed:
//! 8-bit, zero point −128, one step per 1/256.

use serde::{Deserialize, Serialize};

use crate::tensor::TensorId;

/// `y = σ(s_x·(x − z_x))` in 1/256 steps from −128: inputs at or beyond `±input_range_radius`
/// saturate to −128 / 127; the rest are rescaled into Q4.27 by `MBQM(x − z_x, input_multiplier,
/// input_left_shift)` and go through gemmlowp's `logistic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logistic {
    /// Input activation.
    pub input: TensorId,
    /// Output activation: the input's shape, 8-bit, zero point −128.
    pub output: TensorId,
    /// TFLM's `input_multiplier`: Q31 in `[2^30, 2^31 − 1]`.
    pub input_multiplier: i32,
    /// TFLM's `input_left_shift`, in `0..=31` (`0..=30` with single rounding).
    pub input_left_shift: i8,
    /// TFLM's `input_range_radius`, in `0..=Logistic::input_radius(input_left_shift)`.
    pub input_range_radius: i32,
}

impl Logistic {
    /// Integer bits of the rescaled input (TFLM's `kInputIntegerBits`).
    pub const INPUT_INTEGER_BITS: u32 = 4;

    /// TFLM's `CalculateInputRadius(4, input_left_shift, 31)`: the largest `|x − z_x|` whose
    /// `|x − z_x| · 2^input_left_shift` stays below `15 · 2^27` (Q4.27's range), exact in
    /// integers as `floor(15 · 2^27 / 2^shift)`. A larger radius would let the rescaling
    /// multiply overflow; 0 for shifts outside `0..=31`.
    pub const fn input_radius(input_left_shift: i8) -> i32 {
        if input_left_shift < 0 || input_left_shift > 31 {
            return 0;
        }
        let limit = ((1i64 << Self::INPUT_INTEGER_BITS) - 1) << (31 - Self::INPUT_INTEGER_BITS);
        (limit >> input_left_shift) as i32
    }

    /// The op TFLM's Prepare sets up for an int8 input of real scale `input_scale` (float32 in a
    /// `.tflite` file, widened to double as TFLM does): `frexp(s_x · 2^27)` gives the left
    /// shift, its fraction rounded half away from zero times 2^31 the multiplier, and
    /// `CalculateInputRadius` the radius.
    ///
    /// `None` where TFLM's C++ is undefined or the format cannot follow: a scale below 2^−28
    /// (a negative shift, which `CalculateInputRadius` shifts by), a fraction that rounds to
    /// 2^31 (TFLM's `static_cast<int32_t>` of it overflows), a shift of 31 with single rounding
    /// (its `MultiplyByQuantizedMultiplier` takes shifts up to 30), or a scale that is not
    /// finite and positive.
    #[cfg(feature = "std")]
    pub fn from_scale(
        input: TensorId,
        output: TensorId,
        input_scale: f32,
        rounding: crate::header::Rounding,
    ) -> Option<Self> {
        let real = f64::from(input_scale) * (1u64 << (31 - Self::INPUT_INTEGER_BITS)) as f64;
        if !real.is_finite() || real <= 0.0 {
            return None;
        }
        let (q, e) = crate::multiplier::frexp(real);
        // `f64::round` is half away from zero, like TfLiteRound.
        let m = (q * (1u64 << 31) as f64).round() as i64;
        let max_shift = match rounding {
            crate::header::Rounding::Double => 31,
            crate::header::Rounding::Single => 30,
        };
        if m >= 1 << 31 || !(0..=max_shift).contains(&e) {
            return None;
        }
        let shift = e as i8;
        Some(Self {
            input,
            output,
            input_multiplier: m as i32,
            input_left_shift: shift,
            input_range_radius: Self::input_radius(shift),
        })
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::header::Rounding;

    #[test]
    fn input_radius_is_calculate_input_radius() {
        // floor(15 · 2^27 / 2^22) = 480; / 2^28 = 7.5 → 7; / 2^31 = 0.94 → 0.
        assert_eq!(Logistic::input_radius(22), 480);
        assert_eq!(Logistic::input_radius(28), 7);
        assert_eq!(Logistic::input_radius(31), 0);
        assert_eq!(Logistic::input_radius(0), 15 << 27);
        assert_eq!(Logistic::input_radius(-1), 0);
        assert_eq!(Logistic::input_radius(32), 0);
    }

    #[test]
    fn from_scale_follows_tflm_prepare() {
        // 1/16 · 2^27 = 2^23 = 0.5 · 2^24.
        let op = Logistic::from_scale(0, 1, 1.0 / 16.0, Rounding::Double).unwrap();
        assert_eq!(
            (
                op.input_multiplier,
                op.input_left_shift,
                op.input_range_radius
            ),
            (1 << 30, 24, 120)
        );
        // 0.1f32 = 0.100000001490116…; · 2^27 = 13421772.99… = 0.79999… · 2^24.
        let op = Logistic::from_scale(0, 1, 0.1, Rounding::Double).unwrap();
        let q = 0.1f32 as f64 * 2f64.powi(27) / 2f64.powi(24);
        assert_eq!(op.input_multiplier, (q * 2f64.powi(31)).round() as i32);
        assert_eq!((op.input_left_shift, op.input_range_radius), (24, 120));
        // Scale 8: shift 31, radius 0 (every input saturates); single rounding cannot run it.
        let op = Logistic::from_scale(0, 1, 8.0, Rounding::Double).unwrap();
        assert_eq!((op.input_left_shift, op.input_range_radius), (31, 0));
        assert!(Logistic::from_scale(0, 1, 8.0, Rounding::Single).is_none());
        // A negative shift, and nonsense.
        assert!(Logistic::from_scale(0, 1, 2f32.powi(-29), Rounding::Double).is_none());
        assert!(Logistic::from_scale(0, 1, 0.0, Rounding::Double).is_none());
        assert!(Logistic::from_scale(0, 1, f32::INFINITY, Rounding::Double).is_none());
    }
}
