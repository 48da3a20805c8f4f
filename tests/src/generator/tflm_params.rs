//! TFLM's derivations of softmax and mean parameters from real scales, written out here so the
//! generator draws the parameters a TFLM export would carry (and tests check the format's own).

use shared_format::Rounding;

/// TFLM's `QuantizeMultiplier`: the host's one implementation, which the blobs generated here
/// must share with the exporter and importer.
pub use shared_format::multiplier::quantize_multiplier;

/// TFLM's int8 softmax parameters (`CalculateSoftmaxParams`): `PreprocessSoftmaxScaling(beta,
/// input_scale, 5)` then `diff_min = −CalculateInputRadius(5, shift)`, in f64 as TFLM computes
/// them. Returns `(input_multiplier, input_left_shift, diff_min)`, or `None` where TFLM's
/// `QuantizeMultiplierGreaterThanOne` would abort (real multiplier ≤ 1).
pub fn tflm_softmax_params(
    beta: f32,
    input_scale: f32,
    rounding: Rounding,
) -> Option<(i32, i32, i32)> {
    // A single-rounding build caps the multiplier lower: its multiply cannot shift left by 31.
    let cap = match rounding {
        Rounding::Double => (1u64 << 31) as f64 - 1.0,
        Rounding::Single => (1u64 << 30) as f64 - 1.0,
    };
    let real = (beta as f64 * input_scale as f64 * (1u64 << (31 - 5)) as f64).min(cap);
    if real <= 1.0 {
        return None;
    }
    let (m, shift) = quantize_multiplier(real, rounding);
    let radius = (31.0 * (1u64 << (31 - 5)) as f64 / (1u64 << shift) as f64).floor();
    Some((m, shift, -(radius as i32)))
}

/// TFLM's int8 MEAN parameters (`QuantizedMeanOrSum`): `QuantizeMultiplier(s_in / s_out)` in
/// double, then the kernel's fold of `1/cells` written out from the C++:
/// `k = min(floor(log2 cells), 32, 31 + shift)`, `m = (m · 2^k) / cells`, `shift −= k`.
/// `None` where the result has no blob form (a multiplier flushed or folded to zero, a shift
/// outside [−31, 30]).
pub fn tflm_mean_params(
    input_scale: f32,
    output_scale: f32,
    cells: u64,
    rounding: Rounding,
) -> Option<(i32, i32)> {
    let real = input_scale as f64 / output_scale as f64;
    if !real.is_finite() || cells == 0 {
        return None;
    }
    let (m, shift) = quantize_multiplier(real, rounding);
    let log2 = (0..64).rev().find(|&b| cells >> b != 0).expect("cells > 0");
    let k = log2.min(32).min(31 + shift);
    if m == 0 || k < 0 {
        return None;
    }
    let folded = ((m as i128) << k) / cells as i128;
    let shift = shift - k;
    (folded > 0 && (-31..=30).contains(&shift)).then_some((folded as i32, shift))
}
