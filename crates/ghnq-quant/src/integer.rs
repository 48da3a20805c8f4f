//! The integers a device runs with, derived exactly as TFLite Micro derives them at Prepare time
//! (EDGE_ANCHORS §3.2–§3.5), but once, on the host.

use crate::affine::WeightQuant;
use shared_format::Rounding;
use shared_format::accumulator::{saturate_bias, weight_term_bound};
use shared_format::tensor::{qmax, qmin};

// TFLM `QuantizeMultiplier` lives in shared-format, so the format's own host helpers (such as
// `Mean::from_scales`) derive multipliers with the very code the exporter and importer use.
pub use shared_format::multiplier::quantize_multiplier;

/// Output clamp of an op: the activation's bit range, narrowed by ReLU (`[z_y, qmax]`) or ReLU6
/// (`[z_y, z_y + round(6 / s_y)]`, computed in float32 as TFLM does).
pub fn activation_clamp(zero_point: i8, scale: f32, bits: u8, relu: Option<bool>) -> (i8, i8) {
    let (lo, hi) = (qmin(bits) as i32, qmax(bits) as i32);
    match relu {
        None => (lo as i8, hi as i8),
        Some(six) => {
            let min = lo.max(zero_point as i32);
            let max = if six {
                hi.min(zero_point as i32 + (6.0f32 / scale).round() as i32)
            } else {
                hi
            };
            (min.min(hi) as i8, max.max(min) as i8)
        }
    }
}

/// Conv/linear requantization per output channel: `M_c = s_x·s_w[c] / s_y` in double, product
/// first (TFLM `PopulateConvolutionQuantizationParams`).
pub fn conv_multipliers(
    s_x: f32,
    s_w: &[f32],
    s_y: f32,
    rounding: Rounding,
) -> (Vec<i32>, Vec<i8>) {
    s_w.iter()
        .map(|&sw| {
            let (m, e) = quantize_multiplier(s_x as f64 * sw as f64 / s_y as f64, rounding);
            (m, e.clamp(-31, 30) as i8)
        })
        .unzip()
}

/// Bias at scale `s_x·s_w[c]`, rounded half away from zero and saturated to i32.
pub fn quantize_bias(bias: &[f32], s_x: f32, s_w: impl Fn(usize) -> f32) -> Vec<i32> {
    bias.iter()
        .enumerate()
        .map(|(c, &b)| {
            let q = (b as f64 / (s_x as f64 * s_w(c) as f64)).round();
            q.clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect()
}

/// Saturates each channel's bias (`weights` in the burn layout, output channel first) under the
/// format's accumulator bound, which the validator would otherwise refuse the whole model for: a
/// random-init net can collapse an input scale until `b / (s_x·s_w)` saturates i32, and then the
/// weight term no longer fits beside it. The change is at most the weight term, a vanishing
/// fraction of such a bias; a channel whose weight term alone overflows is left for the validator
/// to refuse by name.
pub fn fit_bias_to_accumulator(bias: &mut [i32], weights: &WeightQuant) {
    let per_channel = weights.values.len() / bias.len().max(1);
    for (b, filter) in bias
        .iter_mut()
        .zip(weights.values.chunks(per_channel.max(1)))
    {
        let bound = weight_term_bound(filter.iter().map(|&w| w as i64), weights.zero_point);
        *b = saturate_bias(*b, bound);
    }
}

/// TFLM integer Add parameters (left shift 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddParams {
    /// Left shift applied to each centred input.
    pub left_shift: u8,
    /// Input multipliers and shifts.
    pub inputs: [(i32, i8); 2],
    /// Output multiplier and shift.
    pub output: (i32, i8),
}

impl AddParams {
    /// `twice_max = 2·max(s1, s2)`, `M_i = s_i / twice_max`, `M_out = twice_max / (2^20 · s_y)`.
    pub fn new(s1: f32, s2: f32, s_y: f32, rounding: Rounding) -> Self {
        const LEFT_SHIFT: u8 = 20;
        let twice_max = 2.0 * f64::from(s1.max(s2));
        let q = |real: f64| {
            let (m, e) = quantize_multiplier(real, rounding);
            (m, e.clamp(-31, 30) as i8)
        };
        Self {
            left_shift: LEFT_SHIFT,
            inputs: [q(f64::from(s1) / twice_max), q(f64::from(s2) / twice_max)],
            output: q(twice_max / ((1u64 << LEFT_SHIFT) as f64 * f64::from(s_y))),
        }
    }
}

/// Concat input requantization: `M = s_in / s_out`.
pub fn concat_multiplier(s_in: f32, s_out: f32, rounding: Rounding) -> (i32, i8) {
    let (m, e) = quantize_multiplier(f64::from(s_in) / f64::from(s_out), rounding);
    (m, e.clamp(-31, 30) as i8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_follow_tflm() {
        assert_eq!(
            activation_clamp(-128, 6.0 / 255.0, 8, Some(false)),
            (-128, 127)
        );
        assert_eq!(activation_clamp(-10, 0.05, 8, Some(true)), (-10, 110));
        assert_eq!(activation_clamp(-3, 0.5, 4, Some(true)), (-3, 7));
        assert_eq!(activation_clamp(1, 0.5, 2, None), (-2, 1));
    }

    #[test]
    fn add_params_match_the_tflm_recipe() {
        let p = AddParams::new(0.5, 0.25, 0.5, Rounding::Double);
        // M1 = 0.5, M2 = 0.25, M_out = 1 / 2^20 · 2 = 2^-19.
        assert_eq!(p.inputs[0], (1 << 30, 0));
        assert_eq!(p.inputs[1], (1 << 30, -1));
        assert_eq!(p.output, (1 << 30, -18));
    }

    #[test]
    fn a_saturated_bias_is_fitted_beside_its_weight_term() {
        let weights = WeightQuant {
            values: vec![127, -127, 1, 2],
            scales: vec![1.0, 1.0],
            zero_point: 0,
            bits: 8,
        };
        let mut bias = vec![i32::MAX, -7];
        fit_bias_to_accumulator(&mut bias, &weights);
        assert_eq!(bias, vec![i32::MAX - 254 * 255, -7]);
    }

    #[test]
    fn bias_rounds_half_away_from_zero() {
        assert_eq!(
            quantize_bias(&[0.3, -0.3, 1e12], 0.1, |_| 2.0),
            vec![2, -2, i32::MAX]
        );
    }
}
