//! Elementwise multiplication with broadcasting (format 1.4): TFLite's int8 MUL, as TFLM's
//! `reference_integer_ops::Mul` and `BroadcastMul6DSlow` compute it.
//!
//! Each output is `clamp(MBQM((x_1 − z_1)·(x_2 − z_2), m, e) + z_y)`, where `(m, e)` quantizes
//! `s_1·s_2 / s_y`. TFLM derives that pair in Prepare; the format stores it, so the device only
//! multiplies. A squeeze-and-excite block multiplies a `1×1×C` gate into an `H×W×C` feature map:
//! along each axis an input either matches the output or has length 1 and is repeated.

use serde::{Deserialize, Serialize};

use super::Clamp;
use crate::tensor::TensorId;

/// Largest shift a [`Mul`] may carry. The centred product is at most 255² < 2^16 in magnitude,
/// and TFLM's double-rounding `MultiplyByQuantizedMultiplier` multiplies it by `2^shift` in
/// int32 before anything else: up to 15 that cannot overflow, beyond it C++ is undefined.
pub const MAX_MUL_SHIFT: i8 = 15;

/// `y = clamp(MBQM((x_1 − z_1)·(x_2 − z_2), multiplier, shift) + z_y, clamp)`, broadcasting an
/// input axis of length 1 over the output's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mul {
    /// The two inputs. Each axis of each is the output's length or 1.
    pub inputs: [TensorId; 2],
    /// Output activation.
    pub output: TensorId,
    /// Q31 multiplier of `s_1·s_2 / s_y` (`QuantizeMultiplier`'s range, or 0).
    pub multiplier: i32,
    /// Its shift, in `[−31, MAX_MUL_SHIFT]`.
    pub shift: i8,
    /// Output clamp (the fused activation and the output's bit-width).
    pub clamp: Clamp,
}

impl Mul {
    /// The op TFLM's `CalculateOpDataMul` sets up for inputs of real scales `s1`, `s2` and an
    /// output of scale `s_y` (float32 in a `.tflite` file, multiplied and divided in double as
    /// TFLM does). `None` when the shift is outside the format (a ratio of 2^15 or more), or the
    /// scales are not finite and positive.
    #[cfg(feature = "std")]
    pub fn from_scales(
        inputs: [TensorId; 2],
        output: TensorId,
        scales: [f32; 3],
        clamp: Clamp,
        rounding: crate::header::Rounding,
    ) -> Option<Self> {
        let [s1, s2, s_y] = scales.map(f64::from);
        if !(s1 > 0.0 && s2 > 0.0 && s_y > 0.0) {
            return None;
        }
        let real = s1 * s2 / s_y;
        if !real.is_finite() {
            return None;
        }
        let (multiplier, shift) = crate::multiplier::quantize_multiplier(real, rounding);
        if !(-31..=MAX_MUL_SHIFT as i32).contains(&shift) {
            return None;
        }
        Some(Self {
            inputs,
            output,
            multiplier,
            shift: shift as i8,
            clamp,
        })
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::header::Rounding;

    const FULL: Clamp = Clamp {
        min: i8::MIN,
        max: i8::MAX,
    };

    #[test]
    fn from_scales_quantizes_the_product_ratio() {
        // 0.5 · 0.25 / 0.0625 = 2 = 0.5 · 2^2.
        let op = Mul::from_scales([0, 1], 2, [0.5, 0.25, 0.0625], FULL, Rounding::Double).unwrap();
        assert_eq!((op.multiplier, op.shift), (1 << 30, 2));
        // A sigmoid gate (1/256) times a feature map of scale 0.1 into 0.05: 1/128 = 0.5·2^−6.
        let op =
            Mul::from_scales([0, 1], 2, [0.1, 1.0 / 256.0, 0.05], FULL, Rounding::Double).unwrap();
        let (m, e) = crate::multiplier::quantize_multiplier(
            0.1f32 as f64 * (1.0 / 256.0) / 0.05f32 as f64,
            Rounding::Double,
        );
        assert_eq!((op.multiplier, op.shift as i32), (m, e));
        // 2^15 needs shift 16; nonsense scales.
        assert!(Mul::from_scales([0, 1], 2, [256.0, 128.0, 1.0], FULL, Rounding::Double).is_none());
        assert!(Mul::from_scales([0, 1], 2, [1.0, 1.0, 0.0], FULL, Rounding::Double).is_none());
        assert!(
            Mul::from_scales([0, 1], 2, [f32::NAN, 1.0, 1.0], FULL, Rounding::Double).is_none()
        );
        // Just under 2^15 still fits.
        let op = Mul::from_scales([0, 1], 2, [128.0, 255.0, 1.0], FULL, Rounding::Double).unwrap();
        assert_eq!(op.shift, 15);
    }
}
