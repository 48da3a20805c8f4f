//! Mean over rows and columns with requantization: TFLite's int8 MEAN over axes 1 and 2, as
//! TFLM's `reference_ops::QuantizedMeanOrSum` computes it (`reference/reduce.h`).
//!
//! Per channel: the raw values are summed over all `n = H·W` positions, centred once with
//! `z_x·n`, requantized by the stored multiplier and shift, moved to the output zero point and
//! saturated to int8. TFLM folds `1/n` into its multiplier on every invoke; the blob stores the
//! folded pair (`shared_format::Mean::fold`), so nothing here divides.

use shared_format::{MAX_MEAN_CELLS, Rounding, Shape, TensorRecord};

use super::{KernelError, KernelResult, expect_len};
use crate::requant::multiply_by_quantized_multiplier;

/// Channels summed together per pass: a stack tile (the op has no scratch), contiguous in NHWC
/// so the per-position adds vectorize.
const TILE: usize = 32;

/// Everything the mean needs besides the activations.
#[derive(Debug, Clone, Copy)]
pub struct MeanParams {
    /// Input shape; the output is `1×1×C`.
    pub input_shape: Shape,
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// Folded multiplier of `s_x / (s_y·H·W)`.
    pub multiplier: i32,
    /// Folded shift.
    pub shift: i32,
    /// Requantization rounding of the model.
    pub rounding: Rounding,
}

impl MeanParams {
    /// The op's parameters between its input tensor `x` and output tensor `y`.
    pub fn new(
        op: &shared_format::Mean,
        x: &TensorRecord,
        y: &TensorRecord,
        rounding: Rounding,
    ) -> Self {
        MeanParams {
            input_shape: x.shape,
            input_zero_point: x.zero_point,
            output_zero_point: y.zero_point,
            multiplier: op.multiplier,
            shift: op.shift as i32,
            rounding,
        }
    }
}

/// Writes the requantized mean of each channel of `input` (`H×W×C`) to `output` (`C` values).
pub fn mean(p: &MeanParams, input: &[i8], output: &mut [i8]) -> KernelResult {
    expect_len(input.len(), p.input_shape, "mean input length")?;
    let c = p.input_shape.c as usize;
    if output.len() != c || c == 0 {
        return Err(KernelError("mean output length"));
    }
    let cells = p.input_shape.h as u32 * p.input_shape.w as u32;
    // Validation's bound, re-checked so the i32 sums below provably cannot overflow.
    if cells > MAX_MEAN_CELLS {
        return Err(KernelError("mean over more positions than i32 sums hold"));
    }
    // z_x·n ≤ 128 · MAX_MEAN_CELLS < 2^31: exact, as is every partial sum of ≤ n values.
    let centre = (p.input_zero_point as i32).wrapping_mul(cells as i32);
    for (tile_index, out_tile) in output.chunks_mut(TILE).enumerate() {
        let c0 = tile_index * TILE;
        let width = out_tile.len();
        let mut sums = [0i32; TILE];
        for pixel in input.chunks_exact(c) {
            let xs = pixel
                .get(c0..c0 + width)
                .ok_or(KernelError("mean input tile"))?;
            for (s, &x) in sums.iter_mut().zip(xs) {
                *s = s.wrapping_add(x as i32);
            }
        }
        for (o, &s) in out_tile.iter_mut().zip(&sums) {
            let scaled = multiply_by_quantized_multiplier(
                s.wrapping_sub(centre),
                p.multiplier,
                p.shift,
                p.rounding,
            );
            let y = scaled.saturating_add(p.output_zero_point as i32);
            *o = y.clamp(i8::MIN as i32, i8::MAX as i32) as i8;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(shape: Shape, z_x: i8, z_y: i8, multiplier: i32, shift: i32) -> MeanParams {
        MeanParams {
            input_shape: shape,
            input_zero_point: z_x,
            output_zero_point: z_y,
            multiplier,
            shift,
            rounding: Rounding::Double,
        }
    }

    fn run(p: &MeanParams, x: &[i8]) -> Vec<i8> {
        let mut y = vec![0i8; p.input_shape.c as usize];
        mean(p, x, &mut y).unwrap();
        y
    }

    #[test]
    fn unit_scale_is_a_rounded_average() {
        // s_x = s_y over 2×2: QuantizeMultiplier(1) = (2^30, 1), folded by 4 → (2^30, −1), i.e.
        // ×1/4. Channel 0: Σ(x − 1) = 10 − 4 = 6 → 1.5 → 2 (half away from zero); channel 1:
        // Σ(x − 1) = −10 − 4 = −14 → −3.5 → −4; then + z_y = 5.
        let p = params(Shape::new(2, 2, 2), 1, 5, 1 << 30, -1);
        let x = [1i8, -1, 2, -2, 3, -3, 4, -4];
        assert_eq!(run(&p, &x), [7, 1]);
    }

    #[test]
    fn saturates_to_int8() {
        // ×2^20 sends any non-zero sum out of int8, either way.
        let p = params(Shape::new(1, 2, 3), 0, 100, i32::MAX, 20);
        assert_eq!(run(&p, &[1, -1, 0, 1, -1, 0]), [127, -128, 100]);
        // The widest sums, ±255, at the largest multiplier and shift that keep them in i32.
        let p = params(Shape::new(1, 1, 1), -128, 127, i32::MAX, 23);
        assert_eq!(run(&p, &[127]), [127]);
        let p = params(Shape::new(1, 1, 1), 127, -128, i32::MAX, 23);
        assert_eq!(run(&p, &[-128]), [-128]);
    }

    #[test]
    fn wide_channels_span_tiles() {
        // 70 channels over 3×1: three tiles (32, 32, 6), each channel its own average.
        let c = 70usize;
        let x: Vec<i8> = (0..3 * c).map(|i| (i * 37 % 251) as u8 as i8).collect();
        let p = params(Shape::new(3, 1, c as u16), -7, 0, 1 << 30, 1); // ×1: the sum itself
        let y = run(&p, &x);
        for ch in 0..c {
            let s: i32 = (0..3).map(|k| x[k * c + ch] as i32 + 7).sum();
            assert_eq!(y[ch] as i32, s.clamp(-128, 127), "channel {ch}");
        }
    }

    #[test]
    fn single_rounding_is_honoured() {
        // Σ = 1 at ×1/4: double rounding gives RDBPOT(SRDHM(1, 2^30), 1) = RDBPOT(1, 1) = 1;
        // single rounding floor(0.25 + 0.5) = 0.
        let mut p = params(Shape::new(1, 1, 1), 0, 0, 1 << 30, -1);
        assert_eq!(run(&p, &[1]), [1]);
        p.rounding = Rounding::Single;
        assert_eq!(run(&p, &[1]), [0]);
    }

    #[test]
    fn mismatched_lengths_are_errors_not_panics() {
        let p = params(Shape::new(2, 2, 3), 0, 0, 1 << 30, 0);
        let mut y = [0i8; 3];
        assert!(mean(&p, &[0; 11], &mut y).is_err());
        assert!(mean(&p, &[0; 12], &mut [0i8; 2]).is_err());
        assert!(mean(&p, &[0; 12], &mut y).is_ok());
        let empty = params(Shape::new(2, 2, 0), 0, 0, 1 << 30, 0);
        assert!(mean(&empty, &[], &mut []).is_err());
        let huge = params(Shape::new(u16::MAX, u16::MAX, 1), 0, 0, 1 << 30, 0);
        assert!(mean(&huge, &[0; 4], &mut [0]).is_err());
    }
}
