//! Hard swish (format 1.4): TFLite's int8 HARD_SWISH, `x · relu6(x + 3) / 6`, as TFLM's
//! `reference_ops::HardSwish` computes it in 16-bit fixed point with `HardSwishParams`.
//!
//! TFLM's Prepare (`HardSwishPrepare`) derives two 16-bit multipliers and their exponents from
//! the input and output scales, in float32 arithmetic then `QuantizeMultiplier` and
//! `DownScaleInt32ToInt16Multiplier`; the format stores the four integers.

use serde::{Deserialize, Serialize};

use crate::tensor::TensorId;

/// `y = x · relu6(x + 3) / 6` requantized from the input's scale and zero point to the
/// output's, 8-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardSwish {
    /// Input activation.
    pub input: TensorId,
    /// Output activation: the input's shape, 8-bit.
    pub output: TensorId,
    /// TFLM's `reluish_multiplier_fixedpoint_int16`: `s_x / 128` over `3 / 32768` (the scale on
    /// which 3.0 is 2^15), Q15 in `[2^14, 2^15 − 1]` or 0.
    pub reluish_multiplier: i16,
    /// TFLM's `reluish_multiplier_exponent`, in `[−31, 31]`.
    pub reluish_shift: i8,
    /// TFLM's `output_multiplier_fixedpoint_int16`: `s_x / 128` over `s_y`, Q15 in
    /// `[2^14, 2^15 − 1]` or 0.
    pub output_multiplier: i16,
    /// TFLM's `output_multiplier_exponent`, in `[−31, 0]` (TFLM's Prepare refuses a positive one).
    pub output_shift: i8,
}

impl HardSwish {
    /// The op TFLM's `HardSwishPrepare` sets up for an int8 input of real scale `input_scale`
    /// and an output of scale `output_scale`: the ratios in float32 (as TFLM computes them),
    /// widened to double for `QuantizeMultiplier`, then rounded to 16 bits.
    ///
    /// `None` where TFLM refuses or its C++ is undefined: an output exponent above 0 (TFLM's
    /// `TF_LITE_ENSURE`), a reluish exponent above 31 (its saturating left shift computes
    /// `1 << (exponent − 1)` in int), or scales that are not finite and positive.
    #[cfg(feature = "std")]
    pub fn from_scales(
        input: TensorId,
        output: TensorId,
        input_scale: f32,
        output_scale: f32,
        rounding: crate::header::Rounding,
    ) -> Option<Self> {
        use crate::multiplier::quantize_multiplier;
        let usable = |s: f32| s > 0.0 && s.is_finite();
        if !usable(input_scale) || !usable(output_scale) {
            return None;
        }
        // float32 arithmetic, exactly TFLM's.
        let hires_input_scale = (1.0f32 / 128.0f32) * input_scale;
        let reluish_scale = 3.0f32 / 32768.0f32;
        let output_ratio = f64::from(hires_input_scale / output_scale);
        let reluish_ratio = f64::from(hires_input_scale / reluish_scale);
        if !output_ratio.is_finite() || !reluish_ratio.is_finite() {
            return None;
        }
        let (om, oe) = quantize_multiplier(output_ratio, rounding);
        let (rm, re) = quantize_multiplier(reluish_ratio, rounding);
        if oe > 0 || !(-31..=31).contains(&re) || oe < -31 {
            return None;
        }
        Some(Self {
            input,
            output,
            reluish_multiplier: down_scale_int32_to_int16_multiplier(rm),
            reluish_shift: re as i8,
            output_multiplier: down_scale_int32_to_int16_multiplier(om),
            output_shift: oe as i8,
        })
    }
}

/// TFLM's `DownScaleInt32ToInt16Multiplier`: a Q31 multiplier rounded to Q15, saturating at
/// `i16::MAX` within 2^15 of `i32::MAX`. Negative inputs (never produced) give 0.
pub const fn down_scale_int32_to_int16_multiplier(multiplier: i32) -> i16 {
    const ROUNDING_OFFSET: i32 = 1 << 15;
    if multiplier < 0 {
        return 0;
    }
    if multiplier >= i32::MAX - ROUNDING_OFFSET {
        return i16::MAX;
    }
    ((multiplier + ROUNDING_OFFSET) >> 16) as i16
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::header::Rounding;

    #[test]
    fn down_scale_rounds_and_saturates() {
        assert_eq!(down_scale_int32_to_int16_multiplier(1 << 30), 1 << 14);
        // 0x4000_8000 is exactly half way: rounds up.
        assert_eq!(
            down_scale_int32_to_int16_multiplier(0x4000_8000),
            (1 << 14) + 1
        );
        assert_eq!(down_scale_int32_to_int16_multiplier(0x4000_7fff), 1 << 14);
        assert_eq!(down_scale_int32_to_int16_multiplier(i32::MAX), i16::MAX);
        assert_eq!(
            down_scale_int32_to_int16_multiplier(i32::MAX - (1 << 15)),
            i16::MAX
        );
        assert_eq!(down_scale_int32_to_int16_multiplier(0), 0);
    }

    #[test]
    fn from_scales_follows_hard_swish_prepare() {
        // s_x = 3/64: hires = 3/8192, reluish ratio = (3/8192)/(3/32768) = 4 = 0.5 · 2^3; output
        // s_y = 3/16384: ratio 2 = 0.5 · 2^2 → refused (TFLM needs exponent ≤ 0).
        assert!(
            HardSwish::from_scales(0, 1, 3.0 / 64.0, 3.0 / 16384.0, Rounding::Double).is_none()
        );
        // s_y = 3/4096: ratio 1/2 = 0.5 · 2^0.
        let op = HardSwish::from_scales(0, 1, 3.0 / 64.0, 3.0 / 4096.0, Rounding::Double).unwrap();
        assert_eq!(
            (
                op.reluish_multiplier,
                op.reluish_shift,
                op.output_multiplier,
                op.output_shift
            ),
            (1 << 14, 3, 1 << 14, 0)
        );
        assert!(HardSwish::from_scales(0, 1, 0.0, 1.0, Rounding::Double).is_none());
        assert!(HardSwish::from_scales(0, 1, 1.0, f32::NAN, Rounding::Double).is_none());
    }
}
