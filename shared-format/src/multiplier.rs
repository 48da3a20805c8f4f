//! TFLM's `QuantizeMultiplier`, shared by every host-side derivation of a stored
//! (multiplier, shift) pair: the exporter's and importer's (through `ghnq-quant`'s
//! `integer` module) and [`crate::op::Mean::from_scales`], so all of them round a scale ratio
//! exactly as TFLM's Prepare does.

use crate::header::Rounding;

/// TFLM `QuantizeMultiplier`: `real ≈ m · 2^(e − 31)` with `m ∈ [2^30, 2^31 − 1]`; returns `(m, e)`.
///
/// Steps of EDGE_ANCHORS §3.2: `frexp`, round half away from zero, renormalise `2^31`, flush
/// exponents below −31 to zero, and (single-rounding builds only) cap `e` at 30. Zero, negative
/// and non-finite values give `(0, 0)`.
pub fn quantize_multiplier(real: f64, rounding: Rounding) -> (i32, i32) {
    if real <= 0.0 || !real.is_finite() {
        return (0, 0);
    }
    let (q, mut e) = frexp(real);
    // `f64::round` rounds half away from zero, like `TfLiteRound`.
    let mut m = (q * (1u64 << 31) as f64).round() as i64;
    if m == 1 << 31 {
        m /= 2;
        e += 1;
    }
    if e < -31 {
        return (0, 0);
    }
    if rounding == Rounding::Single && e > 30 {
        return (i32::MAX, 30);
    }
    (m as i32, e)
}

/// C's `frexp` for a positive finite `real`: `(q, e)` with `real = q · 2^e` and `q` in
/// [0.5, 1). Scaling by two is exact, subnormals included, so every TFLM Prepare step that starts
/// from `frexp` (`QuantizeMultiplier`, softmax's and logistic's input multipliers) gets the
/// same `q` and `e` as the C library would.
pub(crate) fn frexp(real: f64) -> (f64, i32) {
    let (mut q, mut e) = (real, 0i32);
    while q >= 1.0 {
        q /= 2.0;
        e += 1;
    }
    while q < 0.5 {
        q *= 2.0;
        e -= 1;
    }
    (q, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_tflm() {
        // 1/√2 → q = 0.7071…, e = 0 → m = round(0.7071·2^31) = 1518500250 (EDGE_ANCHORS §3.7).
        assert_eq!(
            quantize_multiplier(core::f64::consts::FRAC_1_SQRT_2, Rounding::Double),
            (1_518_500_250, 0)
        );
        assert_eq!(quantize_multiplier(0.5, Rounding::Double), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0, Rounding::Double), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.25, Rounding::Double), (1 << 30, -1));
        // Rounds up to 2^31 → renormalised.
        assert_eq!(
            quantize_multiplier(1.0 - 1e-12, Rounding::Double),
            (1 << 30, 1)
        );
        // Below 2^-32 flushes to zero; so do zero, negatives, NaN and infinities.
        assert_eq!(quantize_multiplier(1e-12, Rounding::Double), (0, 0));
        for v in [0.0, -1.0, f64::NAN, f64::INFINITY, 5e-324] {
            assert_eq!(quantize_multiplier(v, Rounding::Double), (0, 0), "{v}");
        }
        assert_eq!(
            quantize_multiplier(2f64.powi(-32), Rounding::Double),
            (1 << 30, -31)
        );
        assert_eq!(
            quantize_multiplier(2f64.powi(40), Rounding::Single),
            (i32::MAX, 30)
        );
        assert_eq!(
            quantize_multiplier(2f64.powi(40), Rounding::Double),
            (1 << 30, 41)
        );
    }
}
