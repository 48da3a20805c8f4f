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
    /// call this on whole activation tensors, so it sets their pace ([`order_statistics`]).
    pub fn percentile(values: &[f32], percent: f32) -> Self {
        if values.is_empty() {
            return Self { min: 0.0, max: 0.0 };
        }
        let n = values.len();
        let rank = |p: f32| (((p / 100.0) * (n - 1) as f32).round() as usize).min(n - 1);
        let [low, high] = order_statistics(values, [rank(percent), rank(100.0 - percent)]);
        Self {
            min: low.min(0.0),
            max: high.max(0.0),
        }
    }
}

/// The `ranks[i]`-th smallest of `values` in `f32::total_cmp` order, exactly.
///
/// A small deterministic sample brackets each rank; one read-only, vectorisable pass counts
/// the values below and inside each bracket, a second keeps those inside (a few percent), and a
/// selection among them finds the rank. A bracket that misses (the check is exact) falls back
/// to selecting in a copy of everything.
fn order_statistics(values: &[f32], ranks: [usize; 2]) -> [f32; 2] {
    const SAMPLE: usize = 4096;
    let n = values.len();
    let select = |k: usize| {
        let mut v = values.to_vec();
        *v.select_nth_unstable_by(k, f32::total_cmp).1
    };
    if n <= 8 * SAMPLE {
        return ranks.map(select);
    }
    // Hashed positions, so a period in the data (channels of an NHWC tensor) cannot alias.
    let mut sample: Vec<i32> = (0..SAMPLE as u64)
        .map(|i| {
            let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            total_key(values[((h >> 11) % n as u64) as usize])
        })
        .collect();
    sample.sort_unstable();
    // Five standard errors of the rank's position in the sample on either side: the bracket
    // misses (and the fallback runs) about once in a million calls on any data without a
    // period the hash could meet.
    let brackets = ranks.map(|k| {
        let q = k as f64 / (n - 1) as f64;
        let margin = (5.0 * (SAMPLE as f64 * q * (1.0 - q)).sqrt()).ceil() as usize + 2;
        let at = k * (SAMPLE - 1) / (n - 1);
        (
            sample[at.saturating_sub(margin)],
            sample[(at + margin).min(SAMPLE - 1)],
        )
    });
    let [(a0, b0), (a1, b1)] = brackets;
    let (mut below, mut upto) = ([0usize; 2], [0usize; 2]);
    for chunk in values.chunks(4096) {
        // u32 lanes the compiler vectorises; a chunk's counts cannot overflow them.
        let mut c = [0u32; 4];
        for &v in chunk {
            let k = total_key(v);
            c[0] += u32::from(k < a0);
            c[1] += u32::from(k <= b0);
            c[2] += u32::from(k < a1);
            c[3] += u32::from(k <= b1);
        }
        below[0] += c[0] as usize;
        upto[0] += c[1] as usize;
        below[1] += c[2] as usize;
        upto[1] += c[3] as usize;
    }
    // Per rank: 0 = fall back, 1 = the bracket is one value (the zeros of a ReLU output) and so
    // the answer, 2 = select among the values inside the bracket.
    let how = [0, 1].map(|j| {
        let (a, b) = brackets[j];
        match (below[j] <= ranks[j] && ranks[j] < upto[j], a == b) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => 2,
        }
    });
    // `k − a ≤ b − a` in wrapping unsigned arithmetic is `a ≤ k ≤ b` in one compare.
    let width = brackets.map(|(a, b)| b.wrapping_sub(a) as u32);
    let mut inside: [Vec<f32>; 2] = [0, 1].map(|j| match how[j] {
        2 => Vec::with_capacity(upto[j] - below[j]),
        _ => Vec::new(),
    });
    // Chunks with nothing inside (most of them: the brackets hold about 1 % of the values
    // each) are skipped after one vectorised test.
    // A bracket not needed borrows the other's test, so it adds no false alarms.
    let needed = |j: usize| if how[j] == 2 { j } else { 1 - j };
    let (a, w) = (
        [0, 1].map(|j| brackets[needed(j)].0),
        [0, 1].map(|j| width[needed(j)]),
    );
    let inside_of = |k: i32, j: usize| how[j] == 2 && (k.wrapping_sub(a[j]) as u32) <= w[j];
    if how.contains(&2) {
        for chunk in values.chunks(16) {
            let any = chunk.iter().fold(false, |acc, &v| {
                let k = total_key(v);
                acc | ((k.wrapping_sub(a[0]) as u32) <= w[0])
                    | ((k.wrapping_sub(a[1]) as u32) <= w[1])
            });
            if any {
                for &v in chunk {
                    let k = total_key(v);
                    for (j, out) in inside.iter_mut().enumerate() {
                        if inside_of(k, j) {
                            out.push(v);
                        }
                    }
                }
            }
        }
    }
    let mut out = [0.0f32; 2];
    for j in 0..2 {
        out[j] = match how[j] {
            1 => f32::from_bits(total_key_inverse(brackets[j].0)),
            2 => {
                *inside[j]
                    .select_nth_unstable_by(ranks[j] - below[j], f32::total_cmp)
                    .1
            }
            _ => select(ranks[j]),
        };
    }
    out
}

/// `f32::total_cmp`'s order as an `i32` (the same bit trick): integer compares vectorise.
fn total_key(v: f32) -> i32 {
    let b = v.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}

/// The bits whose [`total_key`] is `k`: the flip leaves the sign bit alone, so it undoes itself.
fn total_key_inverse(k: i32) -> u32 {
    (k ^ (((k >> 31) as u32) >> 1) as i32) as u32
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
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (n, kind) in [1usize, 2, 3, 10, 101, 1000, 9000, 50_000, 200_000]
            .into_iter()
            .flat_map(|n| [(n, 0), (n, 1), (n, 2)])
        {
            // Uniform values; a few levels (ties, like ReLU zeros and 4-bit codes); a channel
            // period whose last channel is far larger (a strided sample would miss it).
            let v: Vec<f32> = (0..n)
                .map(|i| match kind {
                    0 => rng.random_range(-5.0f32..7.0),
                    1 => (rng.random_range(0..5) as f32 - 1.0).max(0.0),
                    _ => rng.random_range(-1.0f32..1.0) + if i % 64 == 63 { 40.0 } else { 0.0 },
                })
                .collect();
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
