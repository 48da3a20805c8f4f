//! Uniform affine quantization, the paper's Eqs. 1–3:
//! `s = (max − min)/(2^N − 1)`, `Z = round(−min/s)`, `Q = round(clamp(R, min, max)/s) + Z`.
//!
//! The paper's `Q` lies in `[0, 2^N − 1]`; the device stores signed values, so every quantized
//! value and zero point here is shifted by `−2^(N−1)` (an 8-bit `Q = 0` is stored as −128). The
//! real value `s·(Q − Z)` is unchanged by the shift.

use shared_format::tensor::{qmax, qmin};

/// A real-valued range `[min, max]`, widened to contain 0 so that zero is exactly representable
/// (padding and ReLU outputs are zeros; TFLite does the same).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lower bound (≤ 0).
    pub min: f32,
    /// Upper bound (≥ 0).
    pub max: f32,
}

impl Range {
    /// The range of `values` by absolute min/max.
    pub fn of(values: &[f32]) -> Self {
        let (lo, hi) = values
            .iter()
            .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        Self { min: lo, max: hi }
    }

    /// The range of `values` clipped at the `percent` and `100 − percent` percentiles (the paper
    /// uses 1 %): outliers stop stretching the step size.
    ///
    /// Exact order statistics without a sort: calibration and every percentile-clipped QAT step
    /// call this on whole activation tensors, so it sets their pace
    /// ([`crate::order_statistics`]).
    pub fn percentile(values: &[f32], percent: f32) -> Self {
        if values.is_empty() {
            return Self { min: 0.0, max: 0.0 };
        }
        let n = values.len();
        let rank = |p: f32| (((p / 100.0) * (n - 1) as f32).round() as usize).min(n - 1);
        let ranks = [rank(percent), rank(100.0 - percent)];
        let [low, high] = crate::order_statistics::order_statistics(values, ranks);
        Self {
            min: low.min(0.0),
            max: high.max(0.0),
        }
    }

    /// This range after a clamp to `[lo, hi]` (with `lo ≤ 0 ≤ hi`): order statistics commute
    /// with a monotone function, so the range of ReLU(x) or ReLU6(x) is read off the range of x
    /// without activating a copy of the tensor first.
    pub fn clamped(self, lo: f32, hi: f32) -> Self {
        Self {
            min: self.min.clamp(lo, hi),
            max: self.max.clamp(lo, hi),
        }
    }
}

/// Scale and signed zero point of an N-bit affine quantizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineParams {
    /// Real value of one step.
    pub scale: f32,
    /// Signed zero point, in `[−2^(N−1), 2^(N−1) − 1]`.
    pub zero_point: i8,
    /// Bit-width N.
    pub bits: u8,
}

impl AffineParams {
    /// Eqs. 1–2 for `range` at `bits` (2..=8). A degenerate range (all zeros) gets scale 1 so
    /// that everything still quantizes to the zero point.
    pub fn from_range(range: Range, bits: u8) -> Self {
        let levels = ((1u32 << bits) - 1) as f32;
        let span = range.max - range.min;
        let scale = if span > 0.0 { span / levels } else { 1.0 };
        let z_unsigned = (-range.min / scale).round().clamp(0.0, levels);
        Self {
            scale,
            zero_point: (z_unsigned as i32 + qmin(bits) as i32) as i8,
            bits,
        }
    }

    /// Eq. 3, stored signed.
    pub fn quantize(&self, real: f32) -> i8 {
        let q = (real / self.scale).round() + self.zero_point as f32;
        q.clamp(qmin(self.bits) as f32, qmax(self.bits) as f32) as i8
    }

    /// The real value a quantized value stands for.
    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (q as f32 - self.zero_point as f32)
    }
}

/// Quantized weights of one layer, laid out like the input (output channel first).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightQuant {
    /// Signed quantized values.
    pub values: Vec<i8>,
    /// One scale per tensor, or one per output channel.
    pub scales: Vec<f32>,
    /// Weight zero point (0 for symmetric schemes).
    pub zero_point: i8,
    /// Bit-width.
    pub bits: u8,
}

impl WeightQuant {
    /// The paper's scheme: one affine quantizer for the whole tensor.
    pub fn per_tensor_affine(weights: &[f32], bits: u8, range: Range) -> Self {
        let p = AffineParams::from_range(range, bits);
        Self {
            values: weights.iter().map(|&w| p.quantize(w)).collect(),
            scales: vec![p.scale],
            zero_point: p.zero_point,
            bits,
        }
    }

    /// TFLite's scheme: per output channel, symmetric, values in `[−(2^(N−1) − 1), 2^(N−1) − 1]`
    /// (for 2 bits that is ternary {−1, 0, 1}). `weights` holds `channels` equal-length filters.
    pub fn per_channel_symmetric(weights: &[f32], channels: usize, bits: u8) -> Self {
        let limit = qmax(bits) as f32;
        let per = weights.len() / channels.max(1);
        let mut values = Vec::with_capacity(weights.len());
        let mut scales = Vec::with_capacity(channels);
        for filter in weights.chunks(per.max(1)) {
            let peak = filter.iter().fold(0f32, |m, w| m.max(w.abs()));
            let scale = if peak > 0.0 { peak / limit } else { 1.0 };
            values.extend(
                filter
                    .iter()
                    .map(|&w| (w / scale).round().clamp(-limit, limit) as i8),
            );
            scales.push(scale);
        }
        Self {
            values,
            scales,
            zero_point: 0,
            bits,
        }
    }

    /// Scale of output channel `c`.
    pub fn scale(&self, c: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[c]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eqs_1_to_3_on_a_hand_example() {
        // min −1, max 3, 2 bits: s = 4/3, Z = round(0.75) = 1, stored signed as 1 − 2 = −1.
        let p = AffineParams::from_range(
            Range {
                min: -1.0,
                max: 3.0,
            },
            2,
        );
        assert!((p.scale - 4.0 / 3.0).abs() < 1e-6);
        assert_eq!(p.zero_point, -1);
        assert_eq!(p.quantize(0.0), -1);
        assert_eq!(p.quantize(3.0), 1);
        assert_eq!(p.quantize(-1.0), -2);
        assert_eq!(p.quantize(100.0), 1, "clamped to the top level");
        assert_eq!(p.dequantize(p.quantize(0.0)), 0.0, "zero is exact");
    }

    #[test]
    fn eight_bit_matches_tflite_convention() {
        let p = AffineParams::from_range(Range { min: 0.0, max: 6.0 }, 8);
        assert_eq!(p.zero_point, -128);
        assert!((p.scale - 6.0 / 255.0).abs() < 1e-9);
        assert_eq!(p.quantize(6.0), 127);
    }

    #[test]
    fn percentile_selection_equals_the_sorted_order_statistics() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (n, kind) in [1usize, 2, 3, 10, 101, 1000, 9000, 50_000, 200_000]
            .into_iter()
            .flat_map(|n| [(n, 0), (n, 1), (n, 2)])
        {
            let v = crate::order_statistics::tests::values(&mut rng, n, kind);
            let mut sorted = v.clone();
            sorted.sort_by(f32::total_cmp);
            for p in [0.0f32, 0.5, 1.0, 10.0, 50.0, 60.0, 99.0, 100.0] {
                let at =
                    |q: f32| sorted[(((q / 100.0) * (n - 1) as f32).round() as usize).min(n - 1)];
                let want = Range {
                    min: at(p).min(0.0),
                    max: at(100.0 - p).max(0.0),
                };
                assert_eq!(Range::percentile(&v, p), want, "n {n}, kind {kind}, p {p}");
                // ReLU and ReLU6 ranges read off the pre-activation range.
                for hi in [6.0f32, f32::INFINITY] {
                    let activated: Vec<f32> = v.iter().map(|x| x.clamp(0.0, hi)).collect();
                    assert_eq!(
                        Range::percentile(&v, p).clamped(0.0, hi),
                        Range::percentile(&activated, p),
                        "n {n}, kind {kind}, p {p}, clamp to {hi}"
                    );
                    assert_eq!(Range::of(&v).clamped(0.0, hi), Range::of(&activated));
                }
            }
        }
    }

    #[test]
    fn ranges_contain_zero_and_clip_percentiles() {
        assert_eq!(Range::of(&[1.0, 2.0]), Range { min: 0.0, max: 2.0 });
        let mut v: Vec<f32> = (0..100).map(|i| i as f32).collect();
        v.push(10_000.0);
        let r = Range::percentile(&v, 1.0);
        assert!(r.max < 100.0, "the outlier is clipped: {r:?}");
    }

    #[test]
    fn per_channel_symmetric_scales_each_filter() {
        let q = WeightQuant::per_channel_symmetric(&[0.5, -1.0, 0.1, 0.2], 2, 8);
        assert_eq!(q.values, vec![64, -127, 64, 127]);
        assert!((q.scale(0) - 1.0 / 127.0).abs() < 1e-9);
        let ternary = WeightQuant::per_channel_symmetric(&[0.9, -0.2, -1.0], 1, 2);
        assert_eq!(ternary.values, vec![1, 0, -1]);
    }
}
