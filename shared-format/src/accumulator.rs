//! The worst-case accumulator of a weighted op, the bound under which the device may add in i32
//! without checks. The validator refuses a channel over it; the exporter fits its bias under it,
//! so both sides read the bound from this one place.

/// Largest |x − z_x| of an i8 activation against an i8 zero point.
pub const MAX_CENTRED_INPUT: i64 = 255;

/// Worst case of |Σ w·(x−z_x) − z_w·Σ(x−z_x)| over one output channel's weights:
/// Σ(|w| + |z_w|)·255. Every partial sum is bounded by the same figure.
pub fn weight_term_bound(weights: impl IntoIterator<Item = i64>, zero_point: i8) -> i64 {
    let zw = (zero_point as i64).abs();
    weights
        .into_iter()
        .map(|w| (w.abs() + zw) * MAX_CENTRED_INPUT)
        .fold(0i64, i64::saturating_add)
}

/// Whether a channel with this bias and weight term can never overflow i32.
pub fn fits_i32(bias: i32, weight_bound: i64) -> bool {
    (bias as i64).abs().saturating_add(weight_bound) <= i32::MAX as i64
}

/// The bias saturated so that `fits_i32` holds, when the weight term alone leaves room for it:
/// a bias that only fits by saturation is one so many orders of magnitude above the weight term
/// (a layer whose input scale has collapsed) that the output it feeds is the bias alone anyway.
pub fn saturate_bias(bias: i32, weight_bound: i64) -> i32 {
    let room = (i32::MAX as i64 - weight_bound).max(0);
    (bias as i64).clamp(-room, room) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_counts_the_zero_point_on_every_weight() {
        assert_eq!(weight_term_bound([3, -2, 0], 0), 5 * 255);
        assert_eq!(weight_term_bound([3, -2, 0], -4), (5 + 12) * 255);
    }

    #[test]
    fn saturation_leaves_exactly_the_weight_term_room() {
        let bound = 1_000_000;
        let b = saturate_bias(i32::MAX, bound);
        assert!(fits_i32(b, bound));
        assert!(!fits_i32(b + 1, bound));
        assert_eq!(saturate_bias(i32::MIN, bound), -b);
        assert_eq!(saturate_bias(-12, bound), -12);
        // A weight term that alone overflows leaves no room, and the channel still does not fit.
        assert_eq!(saturate_bias(5, i64::MAX), 0);
        assert!(!fits_i32(0, i32::MAX as i64 + 1));
    }
}
