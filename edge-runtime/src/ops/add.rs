//! Elementwise Add (TFLM `reference_integer_ops::Add` / `AddElementwise`).
//!
//! Each input is centred, shifted left by `left_shift` (20 for int8) to keep precision, and
//! brought to a common scale with its own multiplier (always < 1); the sum is then requantized to
//! the output like any other op (EDGE_ANCHORS §3.5).

use shared_format::{Clamp, Rounding};

use super::{KernelError, KernelResult};
use crate::requant::{multiply_by_quantized_multiplier, requantize};

/// One input's quantization: zero point and the Q31 multiplier/shift of `s_i / (2·max(s_1, s_2))`.
#[derive(Debug, Clone, Copy)]
pub struct AddOperand {
    /// Zero point `z_i`.
    pub zero_point: i8,
    /// Q31 multiplier.
    pub multiplier: i32,
    /// Shift (≤ 0).
    pub shift: i32,
}

/// Everything Add needs besides the activations.
#[derive(Debug, Clone, Copy)]
pub struct AddParams {
    /// The two inputs.
    pub inputs: [AddOperand; 2],
    /// Left shift applied to each centred input.
    pub left_shift: u8,
    /// Output Q31 multiplier.
    pub output_multiplier: i32,
    /// Output shift.
    pub output_shift: i32,
    /// Output zero point.
    pub output_zero_point: i8,
    /// Output clamp.
    pub clamp: Clamp,
    /// Requantization rounding of the model.
    pub rounding: Rounding,
}

/// `y = clamp(MBQM(a_1 + a_2, m_o, e_o) + z_y)` with `a_i = MBQM((x_i − z_i)·2^left_shift, m_i, e_i)`.
pub fn add(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) -> KernelResult {
    if input1.len() != output.len() || input2.len() != output.len() {
        return Err(KernelError("add operand lengths differ"));
    }
    let [a, b] = p.inputs;
    // left_shift ≤ 20 in a valid blob, so |x − z|·2^20 < 2^28; wrapping_shl keeps a corrupt
    // shift from panicking (it could only come from a blob validation refused).
    let shift = p.left_shift as u32;
    let centred = |x: i8, o: &AddOperand| {
        let v = (x as i32 - o.zero_point as i32).wrapping_shl(shift);
        multiply_by_quantized_multiplier(v, o.multiplier, o.shift, p.rounding)
    };
    for ((y, &x1), &x2) in output.iter_mut().zip(input1).zip(input2) {
        let sum = centred(x1, &a).wrapping_add(centred(x2, &b));
        *y = requantize(
            sum,
            p.output_multiplier,
            p.output_shift,
            p.output_zero_point,
            p.clamp,
            p.rounding,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TFLM's setup for s_1 = 0.5, s_2 = 0.25, s_y = 1, left_shift 20:
    /// twice_max = 1 → M_1 = 0.5, M_2 = 0.25 → (2^30, 0) and (2^30, −1);
    /// M_o = 1 / 2^20 → (2^30, −19).
    fn params() -> AddParams {
        AddParams {
            inputs: [
                AddOperand {
                    zero_point: 10,
                    multiplier: 1 << 30,
                    shift: 0,
                },
                AddOperand {
                    zero_point: -4,
                    multiplier: 1 << 30,
                    shift: -1,
                },
            ],
            left_shift: 20,
            output_multiplier: 1 << 30,
            output_shift: -19,
            output_zero_point: 1,
            clamp: Clamp {
                min: -128,
                max: 127,
            },
            rounding: Rounding::Double,
        }
    }

    #[test]
    fn tflm_style_multipliers() {
        // Real values: x1 = (20 − 10)·0.5 = 5, x2 = (8 + 4)·0.25 = 3 → 8, plus z_y = 1 → 9.
        // x1 = (11 − 10)·0.5 = 0.5, x2 = (−3 + 4)·0.25 = 0.25 → 0.75 → rounds to 1 → 2.
        // x1 = (−100 − 10)·0.5 = −55, x2 = (−128 + 4)·0.25 = −31 → −86 → −85.
        // x1 = 117·0.5 = 58.5, x2 = 127+4 = 131·0.25 = 32.75 → 91.25 → 91 → 92.
        let p = params();
        let mut y = [0i8; 4];
        add(&p, &[20, 11, -100, 127], &[8, -3, -128, 127], &mut y).unwrap();
        assert_eq!(y, [9, 2, -85, 92]);
    }

    #[test]
    fn clamps_and_rejects_mismatched_lengths() {
        let mut p = params();
        p.clamp = Clamp { min: 0, max: 6 };
        let mut y = [0i8; 2];
        add(&p, &[20, -100], &[8, -128], &mut y).unwrap();
        assert_eq!(y, [6, 0]);
        assert!(add(&p, &[1], &[1, 2], &mut y).is_err());
    }
}
