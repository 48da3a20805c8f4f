//! The mean over rows and columns (format 1.3): TFLite's int8 MEAN over axes 1 and 2, i.e. a
//! global average pool that requantizes, as TFLM's `reference_ops::QuantizedMeanOrSum` computes it.
//!
//! TFLM folds `1/(H·W)` into the output multiplier inside its kernel, on every invoke. The format
//! stores the folded pair instead ([`Mean::fold`], done once on the host), so the device only
//! sums, multiplies and clamps.

use serde::{Deserialize, Serialize};

use crate::tensor::TensorId;

/// Most rows × columns a [`Mean`] may average. Each channel sums `x − z_x`, at most 255 in
/// magnitude, over `H·W` cells in TFLM's int32 accumulator; beyond this the sum could overflow,
/// which TFLM leaves undefined and the format refuses.
pub const MAX_MEAN_CELLS: u32 = (i32::MAX / 255) as u32;

/// Mean of each channel over all `H×W` positions, requantized to the output's scale and zero
/// point: `clamp(MBQM(Σ x − z_x·H·W, multiplier, shift) + z_y, −128, 127)`. The output is
/// `1×1×C`, 8-bit; no fused activation (TFLite's MEAN has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mean {
    /// Input activation, `H×W×C`.
    pub input: TensorId,
    /// Output activation, `1×1×C`, 8-bit.
    pub output: TensorId,
    /// The folded multiplier of `s_x / (s_y·H·W)`: positive, and below 2^30 when the fold's
    /// shift was clamped (so not necessarily `QuantizeMultiplier`'s range).
    pub multiplier: i32,
    /// The folded shift, in `[−31, 30]`.
    pub shift: i8,
}

impl Mean {
    /// TFLM's in-kernel folding of the element count into `QuantizeMultiplier(s_x / s_y) =
    /// (multiplier, shift)`, exactly as `QuantizedMeanOrSum` does it:
    /// `k = min(63 − leading_zeros(cells), 32, 31 + shift)`,
    /// `multiplier' = (multiplier · 2^k) / cells` (truncating), `shift' = shift − k`.
    ///
    /// `k` is capped so the i64 product cannot overflow and `shift'` stays at least −31; the cap
    /// costs the multiplier precision, which is why the result is not always normalised, and
    /// why the format stores it rather than re-deriving it differently. `None` where TFLM's C++
    /// is undefined: no cells, a negative multiplier, or `shift < −31` (a negative `k`, which
    /// `QuantizeMultiplier` never produces).
    pub const fn fold(multiplier: i32, shift: i32, cells: u64) -> Option<(i32, i32)> {
        if cells == 0 || cells > i64::MAX as u64 || multiplier < 0 {
            return None;
        }
        let mut k = 63 - cells.leading_zeros() as i32;
        if k > 32 {
            k = 32;
        }
        let floor = 31i32.saturating_add(shift);
        if k > floor {
            k = floor;
        }
        if k < 0 {
            return None;
        }
        // multiplier < 2^31 and k ≤ 32: the product is below 2^63. 2^k ≤ cells: the quotient is
        // below 2^31, so it fits i32.
        let folded = ((multiplier as i64) << k) / cells as i64;
        Some((folded as i32, shift - k))
    }

    /// The op TFLM's MEAN computes for an input of real scale `input_scale` averaged over `cells`
    /// positions into an output of scale `output_scale` (float32 in a `.tflite` file, divided in
    /// double as TFLM's Prepare does): [`crate::multiplier::quantize_multiplier`], then
    /// [`Mean::fold`].
    ///
    /// `rounding` matters because a single-rounding build caps `QuantizeMultiplier`'s shift at
    /// 30. `None` when the result is outside the format: a ratio so small that TFLM's multiplier
    /// flushes or folds to zero (its output would be the zero point whatever the input), so
    /// large that the folded shift exceeds 30, or not finite and positive.
    #[cfg(feature = "std")]
    pub fn from_scales(
        input: TensorId,
        output: TensorId,
        input_scale: f32,
        output_scale: f32,
        cells: u64,
        rounding: crate::header::Rounding,
    ) -> Option<Self> {
        let real = f64::from(input_scale) / f64::from(output_scale);
        let (m, e) = crate::multiplier::quantize_multiplier(real, rounding);
        if m <= 0 {
            return None;
        }
        let (multiplier, shift) = Self::fold(m, e, cells)?;
        if multiplier <= 0 || !(-31..=30).contains(&shift) {
            return None;
        }
        Some(Self {
            input,
            output,
            multiplier,
            shift: shift as i8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_follows_quantized_mean_or_sum() {
        // One cell: nothing to fold.
        assert_eq!(Mean::fold(1 << 30, -3, 1), Some((1 << 30, -3)));
        // A power of two divides exactly: 2^30 · 2^2 / 4.
        assert_eq!(Mean::fold(1 << 30, 0, 4), Some((1 << 30, -2)));
        // 2×3: k = 2, (2^30 · 4) / 6 truncates.
        assert_eq!(
            Mean::fold(1 << 30, 0, 6),
            Some((((4i64 << 30) / 6) as i32, -2))
        );
        // 7×7 = 49: k = 5, 1518500250 · 32 / 49 = 991673632.65… → 991673632.
        assert_eq!(Mean::fold(1_518_500_250, -1, 49), Some((991_673_632, -6)));
        // The 31 + shift cap: shift −28 allows k = 3 only, though 32×32 asks for 10.
        assert_eq!(Mean::fold(1 << 30, -28, 1024), Some((1 << 23, -31)));
        // The 32 cap needs more than 2^33 cells.
        assert_eq!(Mean::fold(i32::MAX, 30, 1 << 40), Some((i32::MAX >> 8, -2)));
        // Undefined in TFLM: no cells, a negative shift amount, a negative multiplier.
        assert_eq!(Mean::fold(1 << 30, 0, 0), None);
        assert_eq!(Mean::fold(1 << 30, -32, 4), None);
        assert_eq!(Mean::fold(-1, 0, 4), None);
        assert_eq!(Mean::fold(1 << 30, i32::MIN, 4), None);
        assert_eq!(
            Mean::fold(1 << 30, i32::MAX, 4),
            Some((1 << 30, i32::MAX - 2))
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn from_scales_quantizes_then_folds() {
        use crate::header::Rounding;
        use crate::multiplier::quantize_multiplier;
        let d = Rounding::Double;
        for (s_in, s_out, cells) in [
            (0.05f32, 0.02f32, 49u64),
            (0.1, 0.1, 6),
            (0.003, 0.2, 1024),
            (1.0, 1e-3, 12),
        ] {
            let (m, e) = quantize_multiplier(f64::from(s_in) / f64::from(s_out), d);
            let (fm, fs) = Mean::fold(m, e, cells).unwrap();
            let op = Mean::from_scales(3, 4, s_in, s_out, cells, d).unwrap();
            assert_eq!(
                op,
                Mean {
                    input: 3,
                    output: 4,
                    multiplier: fm,
                    shift: fs as i8
                }
            );
        }
        // 2^-28 is 0.5 · 2^-27: the cap bites on 32×32 (k = 4, not 10), leaving 2^24 at −31.
        let op = Mean::from_scales(0, 1, 1.0, 2f32.powi(28), 1024, d).unwrap();
        assert_eq!((op.multiplier, op.shift), (1 << 24, -31));
        // Ratios TFLM flushes to zero, shifts past 30, and nonsense are refused.
        assert!(Mean::from_scales(0, 1, 1.0, 2f32.powi(40), 4, d).is_none());
        assert!(Mean::from_scales(0, 1, 2f32.powi(40), 1.0, 4, d).is_none());
        assert!(Mean::from_scales(0, 1, 1.0, 0.0, 4, d).is_none());
        assert!(Mean::from_scales(0, 1, f32::NAN, 1.0, 4, d).is_none());
        assert!(Mean::from_scales(0, 1, 1.0, 1.0, 0, d).is_none());
        // 2^31 over 4 cells: double rounding folds shift 32 down to 30; single rounding caps
        // QuantizeMultiplier at (2^31 − 1, 30) first.
        let op = Mean::from_scales(0, 1, 2f32.powi(31), 1.0, 4, d).unwrap();
        assert_eq!((op.multiplier, op.shift), (1 << 30, 30));
        let op = Mean::from_scales(0, 1, 2f32.powi(31), 1.0, 4, Rounding::Single).unwrap();
        assert_eq!((op.multiplier, op.shift), (i32::MAX, 28));
    }
}
