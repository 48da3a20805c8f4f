//! The integers TFLM derives at Prepare time from a TFLite model's float scales, derived here
//! the same way (same float widths, same rounding) so that the imported blob computes what TFLM
//! computes. Conv, FC, Add and Concat multipliers come from [`ghnq_quant::integer`], which
//! already follow TFLM, softmax's from `shared_format::op::Softmax::from_scale` and mean's from
//! `shared_format::op::Mean::from_scales`; this module adds what only imported models need.

use super::schema::{ActivationFunctionType, Padding};

/// Why a fused activation or a window's geometry has no TFLM equivalent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A fused activation TFLM's int8 kernels do not clamp with.
    #[error(
        "fused activation {} is not supported (NONE, RELU, RELU6, RELU_N1_TO_1 are)",
        .act.variant_name().unwrap_or("unknown")
    )]
    Activation {
        /// The activation.
        act: ActivationFunctionType,
    },
    /// The activation's range, quantized with the output's scale and zero point, is empty.
    #[error("fused activation gives an empty output range [{lo}, {hi}]")]
    EmptyRange {
        /// Lower end, as quantized.
        lo: i32,
        /// Upper end, as quantized.
        hi: i32,
    },
    /// A window dimension that is not positive.
    #[error("kernel {kernel}, stride {stride}, dilation {dilation} must all be positive")]
    Window {
        /// Kernel length.
        kernel: i32,
        /// Stride.
        stride: i32,
        /// Dilation.
        dilation: i32,
    },
    /// A padding enum value other than SAME and VALID.
    #[error("padding {padding} is not SAME or VALID")]
    Padding {
        /// The raw enum value.
        padding: i8,
    },
    /// A VALID window longer than the input.
    #[error("a {effective}-cell window does not fit {input} cells without padding")]
    WindowTooLong {
        /// Dilated window length.
        effective: i32,
        /// Input length.
        input: i32,
    },
}

/// TFLM `CalculateActivationRangeQuantized` for int8: the output clamp a fused activation
/// implies, with `TfLiteRound(x / scale)` in f32.
pub fn activation_range(
    act: ActivationFunctionType,
    scale: f32,
    zero_point: i8,
) -> Result<(i8, i8), ParamError> {
    let quantize = |x: f32| i32::from(zero_point) + (x / scale).round() as i32;
    let (lo, hi) = match act {
        ActivationFunctionType::NONE => (-128, 127),
        ActivationFunctionType::RELU => (quantize(0.0).max(-128), 127),
        ActivationFunctionType::RELU6 => (quantize(0.0).max(-128), quantize(6.0).min(127)),
        ActivationFunctionType::RELU_N1_TO_1 => (quantize(-1.0).max(-128), quantize(1.0).min(127)),
        act => return Err(ParamError::Activation { act }),
    };
    if lo > hi {
        return Err(ParamError::EmptyRange { lo, hi });
    }
    Ok((lo.clamp(-128, 127) as i8, hi.clamp(-128, 127) as i8))
}

/// Output length and (before, after) padding along one axis, as TFLM's `ComputeOutSize` and
/// `ComputePaddingWithOffset` give them: SAME puts the odd cell after, and TFLM kernels skip
/// out-of-range taps, which is what explicit padding with the zero point computes.
pub fn axis_padding(
    padding: Padding,
    input: i32,
    kernel: i32,
    stride: i32,
    dilation: i32,
) -> Result<(i32, i32, i32), ParamError> {
    if kernel < 1 || stride < 1 || dilation < 1 {
        return Err(ParamError::Window {
            kernel,
            stride,
            dilation,
        });
    }
    let effective = (kernel - 1) * dilation + 1;
    let out = match padding {
        Padding::SAME => (input + stride - 1) / stride,
        Padding::VALID => (input + stride - effective) / stride,
        other => return Err(ParamError::Padding { padding: other.0 }),
    };
    if out < 1 {
        return Err(ParamError::WindowTooLong { effective, input });
    }
    let total = ((out - 1) * stride + effective - input).max(0);
    let before = total / 2;
    Ok((out, before, total - before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_odd_cell_after() {
        // DS-CNN's first conv: 49x10 input, 10x4 kernel, stride 2 → 25x5, pads 4/5 and 1/1.
        assert_eq!(axis_padding(Padding::SAME, 49, 10, 2, 1), Ok((25, 4, 5)));
        assert_eq!(axis_padding(Padding::SAME, 10, 4, 2, 1), Ok((5, 1, 1)));
        // Stride 2, 3x3 on 32: total 1 → before 0, after 1 (TFLite's convention).
        assert_eq!(axis_padding(Padding::SAME, 32, 3, 2, 1), Ok((16, 0, 1)));
        assert_eq!(axis_padding(Padding::VALID, 8, 8, 8, 1), Ok((1, 0, 0)));
        assert_eq!(axis_padding(Padding::VALID, 5, 3, 1, 2), Ok((1, 0, 0)));
        assert_eq!(
            axis_padding(Padding::VALID, 2, 3, 1, 1),
            Err(ParamError::WindowTooLong {
                effective: 3,
                input: 2
            })
        );
    }

    #[test]
    fn activation_ranges_follow_tflm() {
        assert_eq!(
            activation_range(ActivationFunctionType::NONE, 0.1, 3),
            Ok((-128, 127))
        );
        assert_eq!(
            activation_range(ActivationFunctionType::RELU, 0.1, -5),
            Ok((-5, 127))
        );
        // 6 / 0.05 = 120 → −100 + 120 = 20.
        assert_eq!(
            activation_range(ActivationFunctionType::RELU6, 0.05, -100),
            Ok((-100, 20))
        );
        assert_eq!(
            activation_range(ActivationFunctionType::RELU6, 0.01, 0),
            Ok((0, 127))
        );
        let e = activation_range(ActivationFunctionType::TANH, 0.1, 0).unwrap_err();
        assert_eq!(
            e,
            ParamError::Activation {
                act: ActivationFunctionType::TANH
            }
        );
        assert!(e.to_string().contains("fused activation TANH"), "{e}");
    }
}
