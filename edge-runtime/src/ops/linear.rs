//! Linear / fully connected (TFLM `reference_integer_ops::FullyConnected`), weights `[co][k]` over
//! the HWC-flattened input.
//!
//! `acc = b[co] + Σ_k w·(x_k − z_x) − z_w·Σ_k (x_k − z_x)`. `Σ_k (x_k − z_x)` does not depend on
//! the output channel, so it is computed once per call; `Σ w·(x − z_x)` is formed as
//! `Σ w·x − z_x·Σ w`.

use super::conv::ConvParams;
use super::{DotAcc, KernelError, KernelResult, channel_filter, sum};
use crate::requant::requantize;

/// Runs a fully connected layer: `input.len()` inputs, `output.len()` outputs. The window and
/// shapes in `p` are ignored; `scratch` must hold one row (`input.len()`) for 2/4-bit weights.
pub fn linear(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> KernelResult {
    let k = input.len();
    let z_x = p.input_zero_point as i32;
    let z_w = p.weights.zero_point as i32;
    // Σ_k (x_k − z_x), shared by every output; only needed for a nonzero weight zero point.
    let centred_x_sum = if z_w != 0 {
        sum(input).wrapping_sub((k as i32).wrapping_mul(z_x))
    } else {
        0
    };
    for (co, y) in output.iter_mut().enumerate() {
        let row = channel_filter(p.weights.data, p.weights.bits, co, k, scratch)?;
        let bias = p
            .bias
            .get(co)
            .ok_or(KernelError("bias shorter than C_out"))?;
        let (m, e) = p
            .requant
            .get(co)
            .ok_or(KernelError("requant table shorter than C_out"))?;
        // Σ w·(x − z_x) = Σ w·x − z_x·Σ w (see `DotAcc`), wrapping and exact.
        let mut wx = DotAcc::new();
        wx.add(row, input);
        let (wx, w_sum) = (wx.total(), if z_x != 0 { sum(row) } else { 0 });
        let acc = bias
            .wrapping_add(wx)
            .wrapping_sub(z_x.wrapping_mul(w_sum))
            .wrapping_sub(z_w.wrapping_mul(centred_x_sum));
        *y = requantize(acc, m, e, p.output_zero_point, p.clamp, p.rounding);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::tests::{ONE, owned, params};
    use shared_format::{Shape, WeightScheme, Window};

    #[test]
    fn two_outputs_2bit_affine() {
        // x = [3, 1, −1], z_x = 1 → centred [2, 0, −2]. 2-bit weights, z_w = −1:
        // row 0 w = [1, −2, 0] → effective [2, −1, 1]: 4 + 0 − 2 = 2, bias 5 → 7.
        // row 1 w = [−1, 1, 1] → effective [0, 2, 2]: 0 + 0 − 4 = −4, bias 0 → −4.
        let o = owned(&[1, -2, 0, -1, 1, 1], 2, &[5, 0], &[ONE]);
        let p = params(
            &o,
            2,
            WeightScheme::PerTensorAffine,
            -1,
            Window::square(1, 1, 1, 0),
            Shape::new(1, 1, 3),
            1,
            Shape::new(1, 1, 2),
        );
        let mut y = [0i8; 2];
        let mut scratch = [0i8; 3];
        linear(&p, &[3, 1, -1], &mut y, &mut scratch).unwrap();
        assert_eq!(y, [7, -4]);
        // A scratch too small for one row is an error, not a panic.
        assert!(linear(&p, &[3, 1, -1], &mut y, &mut []).is_err());
    }
}
