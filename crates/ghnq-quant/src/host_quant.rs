//! The quantized simulation's arithmetic on host slices: fake quantization, the device's weights
//! and biases, BatchNorm folding and batch statistics. `sim`'s functions of the same names do the
//! same on burn tensors; the native evaluation (`sim_native`) and the native QAT step
//! (`qat_native`) share these, so the two native paths cannot drift apart.
//!
//! Where a caller trains, the functions also report which entries pass a gradient (`pass`):
//! rounding passes it straight through (STE) and the clamp after it stops it where the rounded
//! code is outside the range (`fake`'s semantics), so a mask per tensor is all the backward pass
//! needs.

use shared_format::op::WeightScheme;
use shared_format::tensor::{qmax, qmin};

use crate::affine::AffineParams;
use crate::config::QuantConfig;
use crate::fake::{Grid, add_noise, code_bounds};
use crate::lower::Activation;
use crate::sim::clip_range_of;
use ghnq_core::arch::Net;
use ghnq_core::cnn::executor::BN_EPS;
use ghnq_core::cnn::native::{buffers, pool, simd};

/// Real-valued codes → grid values in `[lo, hi]` in place, as `fake::to_grid` computes them:
/// rounded or moved by the tensor's noise, then clamped; `pass` (when given) is cleared where the
/// rounded or moved code is outside the range (the clamp stops the gradient there).
#[inline(always)]
fn to_grid(codes: &mut [f32], grid: Grid, lo: f32, hi: f32, pass: Option<&mut [bool]>) {
    match grid {
        Grid::Round => simd(
            #[inline(always)]
            || codes.iter_mut().for_each(|c| *c = c.round_ties_even()),
        ),
        Grid::Noise { seed, key } => {
            add_noise(codes, seed, key);
        }
    }
    if let Some(pass) = pass {
        pass.iter_mut()
            .zip(codes.iter())
            .for_each(|(p, &c)| *p &= (lo <= c) & (c <= hi));
    }
    simd(
        #[inline(always)]
        || codes.iter_mut().for_each(|c| *c = c.clamp(lo, hi)),
    );
}

/// Fake-quantizes `v` in place on the grid of `p` (`fake::fake_quant`); `pass` (when given) is
/// cleared where the clamp stops the gradient.
pub fn fake_quant(v: &mut [f32], p: AffineParams, grid: Grid, pass: Option<&mut [bool]>) {
    let (lo, hi) = (qmin(p.bits) as f32, qmax(p.bits) as f32);
    fake_quant_within(v, p, (lo, hi), grid, pass);
}

/// `v` before its activation `act`, fake-quantized with `act` fused into the clamp
/// (`fake::fake_quant_act`).
pub fn fake_quant_act(
    v: &mut [f32],
    p: AffineParams,
    act: Activation,
    grid: Grid,
    pass: Option<&mut [bool]>,
) {
    fake_quant_within(v, p, code_bounds(p, act), grid, pass);
}

/// Fake quantization clamped to the codes `lo..=hi`.
fn fake_quant_within(
    v: &mut [f32],
    p: AffineParams,
    (lo, hi): (f32, f32),
    grid: Grid,
    pass: Option<&mut [bool]>,
) {
    let (s, z) = (p.scale, f32::from(p.zero_point));
    if grid == Grid::Round {
        // One pass with `to_grid`'s rounding, mask and clamp in between, the same operations in
        // the same order (so the same values): five passes over the tensor took ~4 % of a
        // GHN-QAT step.
        // `move`: the closure owns its scalars; captured by reference, LLVM reloaded them (and
        // re-checked the clamp's bounds) for every element instead of vectorising the loop.
        simd(
            #[inline(always)]
            move || match pass {
                Some(pass) => {
                    for (x, p) in v.iter_mut().zip(pass.iter_mut()) {
                        let c = (*x / s + z).round_ties_even();
                        *p &= (lo <= c) & (c <= hi);
                        *x = (c.clamp(lo, hi) - z) * s;
                    }
                }
                None => {
                    for x in v.iter_mut() {
                        let c = (*x / s + z).round_ties_even();
                        *x = (c.clamp(lo, hi) - z) * s;
                    }
                }
            },
        );
        return;
    }
    simd(
        #[inline(always)]
        || v.iter_mut().for_each(|x| *x = *x / s + z),
    );
    to_grid(v, grid, lo, hi, pass);
    simd(
        #[inline(always)]
        || v.iter_mut().for_each(|c| *c = (*c - z) * s),
    );
}

/// The integer codes of values on the grid of `p`.
pub fn codes(x: &[f32], p: AffineParams) -> Vec<f32> {
    let (s, z) = (p.scale, f32::from(p.zero_point));
    simd(
        #[inline(always)]
        || x.iter().map(|&v| (v / s + z).round_ties_even()).collect(),
    )
}

/// The device's average of `n` codes summing to `sum` (rounded half away from zero), as a value
/// on the grid of `p` (`sim::device_average`).
#[inline(always)]
pub fn device_average(sum: f32, n: f32, p: AffineParams) -> f32 {
    let half = (n / 2.0).floor();
    let r = sum.signum() * ((sum.abs() + half) / n).floor();
    (r - f32::from(p.zero_point)) * p.scale
}

/// The device's average pool of NHWC `x` (values on the grid of `p`): raw codes summed over
/// each window's real pixels and divided with rounding (`sim`'s average on a quantized input).
pub fn device_avg_pool(x: &[f32], p: AffineParams, g: &pool::PoolGeom) -> Vec<f32> {
    let mut y = simd(
        #[inline(always)]
        || pool::avg_forward(&codes(x, p), g),
    );
    simd(
        #[inline(always)]
        || {
            for (i, px) in y.chunks_exact_mut(g.c).enumerate() {
                let (oh, ow) = ((i / g.wo) % g.ho, i % g.wo);
                let taps = g.taps(oh, ow) as f32;
                for v in px {
                    *v = device_average((*v * taps).round_ties_even(), taps, p);
                }
            }
        },
    );
    y
}

/// The device's global average pool of `n` NHWC images of `hw` pixels and `c` channels (values
/// on the grid of `p`).
pub fn device_global_avg(x: &[f32], p: AffineParams, n: usize, hw: usize, c: usize) -> Vec<f32> {
    let mut sums = vec![0f32; n * c];
    let cx = codes(x, p);
    for (img, s) in cx.chunks_exact(hw * c).zip(sums.chunks_exact_mut(c)) {
        for px in img.chunks_exact(c) {
            s.iter_mut().zip(px).for_each(|(s, v)| *s += v);
        }
    }
    let taps = hw as f32;
    sums.iter().map(|&s| device_average(s, taps, p)).collect()
}

/// NHWC tensors of `pixels` pixels each (`parts`, with `widths` channels) concatenated along
/// the channels.
pub fn concat_channels(parts: &[&[f32]], widths: &[usize], pixels: usize) -> Vec<f32> {
    let mut y = buffers::with_capacity(pixels * widths.iter().sum::<usize>());
    for px in 0..pixels {
        for (part, &cj) in parts.iter().zip(widths) {
            y.extend_from_slice(&part[px * cj..][..cj]);
        }
    }
    y
}

/// Weights (output channel first, `cout` rows) quantized in place as the exporter stores them;
/// returns their scales (one, or one per output channel): `sim::quantize_weight`.
pub fn quantize_weight(
    w: &mut [f32],
    cout: usize,
    config: &QuantConfig,
    bits: u8,
    grid: Grid,
    pass: Option<&mut [bool]>,
) -> Vec<f32> {
    match config.scheme {
        WeightScheme::PerChannelSymmetric => {
            let limit = qmax(bits) as f32;
            let per = (w.len() / cout.max(1)).max(1);
            let scales: Vec<f32> = w
                .chunks_exact_mut(per)
                .map(|row| {
                    let peak = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                    // An all-zero filter keeps scale 1, as on the integer path.
                    let scale = if peak == 0.0 { limit } else { peak } / limit;
                    row.iter_mut().for_each(|x| *x /= scale);
                    scale
                })
                .collect();
            to_grid(w, grid, -limit, limit, pass);
            for (row, scale) in w.chunks_exact_mut(per).zip(&scales) {
                row.iter_mut().for_each(|x| *x *= scale);
            }
            scales
        }
        WeightScheme::PerTensorAffine => {
            let p = AffineParams::from_range(clip_range_of(w, config.weight_clip), bits);
            fake_quant(w, p, grid, pass);
            vec![p.scale]
        }
    }
}

/// A weighted op's weights and bias as the device holds them (`sim::device_weights`): `w`
/// quantized at the layer's bits (`layer`: the convolution or classifier node, `None` for a lone
/// BatchNorm), the bias rounded to the i32 grid `s_x·s_w` when the input is quantized.
#[allow(clippy::too_many_arguments)]
pub fn device_weights(
    mut w: Vec<f32>,
    mut bias: Option<Vec<f32>>,
    cout: usize,
    quant: Option<&QuantConfig>,
    layer: Option<(&Net, usize)>,
    s_x: Option<f32>,
    grid: Grid,
    pass: Option<&mut [bool]>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let Some(q) = quant else {
        return (w, bias);
    };
    let bits = match layer {
        Some((net, node)) => q.layer_precision(net, node).weight_bits,
        None => q.precision.weight_bits,
    };
    let scales = quantize_weight(&mut w, cout, q, bits, grid, pass);
    if let (Some(b), Some(s_x)) = (bias.as_mut(), s_x) {
        for (c, b) in b.iter_mut().enumerate() {
            let step = scales[if scales.len() == 1 { 0 } else { c }] * s_x;
            *b = (*b / step).round_ties_even() * step;
        }
    }
    (w, bias)
}

/// `γ/√(σ² + ε)` per channel.
pub fn bn_scale(gamma: &[f32], var: &[f32]) -> Vec<f32> {
    let eps = BN_EPS as f32;
    gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect()
}

/// A BatchNorm's parameters and the statistics it is folded with.
pub struct BnFold<'p> {
    /// γ.
    pub gamma: &'p [f32],
    /// β.
    pub beta: &'p [f32],
    /// The mean folded.
    pub mean: Vec<f32>,
    /// The (biased) variance folded.
    pub var: Vec<f32>,
}

/// Eq. 4 (`sim::fold`): the weight scaled per output channel in place; returns the new bias.
pub fn fold(w: &mut [f32], bias: Option<&[f32]>, bn: &BnFold<'_>) -> Vec<f32> {
    let a = bn_scale(bn.gamma, &bn.var);
    let per = w.len() / a.len().max(1);
    for (row, a) in w.chunks_exact_mut(per.max(1)).zip(&a) {
        row.iter_mut().for_each(|x| *x *= a);
    }
    (0..a.len())
        .map(|c| bn.beta[c] + (bias.map_or(0.0, |b| b[c]) - bn.mean[c]) * a[c])
        .collect()
}

/// A BatchNorm as the per-channel map `x·a + shift` (`sim::affine`).
pub fn affine(bn: &BnFold<'_>) -> (Vec<f32>, Vec<f32>) {
    let a = bn_scale(bn.gamma, &bn.var);
    let shift = (0..a.len())
        .map(|c| bn.beta[c] - bn.mean[c] * a[c])
        .collect();
    (a, shift)
}

/// Per-channel mean and biased variance of NHWC `y` with `c` channels.
pub fn batch_stats(y: &[f32], c: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = (y.len() / c.max(1)).max(1) as f64;
    let mut mean = vec![0f64; c];
    let mut var = vec![0f64; c];
    // Compiled for the widest instruction set (`simd`): the per-channel sums are the same
    // additions in the same order, vectorised across channels.
    simd(
        #[inline(always)]
        || {
            for px in y.chunks_exact(c) {
                mean.iter_mut()
                    .zip(px)
                    .for_each(|(m, &v)| *m += f64::from(v));
            }
            mean.iter_mut().for_each(|m| *m /= rows);
            for px in y.chunks_exact(c) {
                for ((s, &v), m) in var.iter_mut().zip(px).zip(&mean) {
                    let d = f64::from(v) - m;
                    *s += d * d;
                }
            }
        },
    );
    (
        mean.iter().map(|&m| m as f32).collect(),
        var.iter().map(|&v| (v / rows) as f32).collect(),
    )
}

/// Applies `act` in place.
pub fn activate(y: &mut [f32], act: Activation) {
    let six = match act {
        Activation::Linear => return,
        Activation::Relu { six } => six,
    };
    let hi = if six { 6.0 } else { f32::INFINITY };
    simd(
        #[inline(always)]
        move || y.iter_mut().for_each(|v| *v = v.max(0.0).min(hi)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affine::Range;
    use rand::{Rng, SeedableRng};

    /// Rounding fake quantization as the separate passes compute it (`x/s + z`, `to_grid`,
    /// `(c − z)·s`): the reference of the fused loop.
    fn passes(v: &mut [f32], p: AffineParams, (lo, hi): (f32, f32), pass: &mut [bool]) {
        let (s, z) = (p.scale, f32::from(p.zero_point));
        v.iter_mut().for_each(|x| *x = *x / s + z);
        to_grid(v, Grid::Round, lo, hi, Some(pass));
        v.iter_mut().for_each(|c| *c = (*c - z) * s);
    }

    /// The one-pass rounding path equals the passes bit for bit (values, NaN included, and the
    /// gradient mask), on random tensors, bit-widths, ranges and fused activations.
    #[test]
    fn fused_rounding_equals_the_separate_passes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for case in 0..200 {
            let len = rng.random_range(0..3000);
            let bits = [2u8, 4, 8][case % 3];
            let min = -rng.random_range(0.0f32..4.0);
            let max = rng.random_range(0.0f32..4.0);
            let p = AffineParams::from_range(Range { min, max }, bits);
            let act = [
                Activation::Linear,
                Activation::Relu { six: false },
                Activation::Relu { six: true },
            ][case % 3];
            let mut v: Vec<f32> = (0..len).map(|_| rng.random_range(-8.0f32..8.0)).collect();
            if len > 3 {
                v[0] = f32::NAN;
                v[1] = f32::INFINITY;
                v[2] = f32::NEG_INFINITY;
            }
            let mut mask: Vec<bool> = (0..len).map(|_| rng.random_bool(0.9)).collect();
            let (mut want, mut want_mask) = (v.clone(), mask.clone());
            passes(&mut want, p, code_bounds(p, act), &mut want_mask);
            let mut plain = v.clone();
            fake_quant_act(&mut v, p, act, Grid::Round, Some(&mut mask));
            fake_quant_act(&mut plain, p, act, Grid::Round, None);
            let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits_of(&v), bits_of(&want), "case {case}: values");
            assert_eq!(
                bits_of(&plain),
                bits_of(&want),
                "case {case}: values without a mask"
            );
            assert_eq!(mask, want_mask, "case {case}: mask");
        }
    }
}
