//! Simulated quantization on burn tensors, differentiable for QAT (the paper's §2.2):
//! - SimQuant: fake quantization (quantize then dequantize) whose rounding passes gradients
//!   straight through (STE); clamping stops them where the rounded code is outside the range, as
//!   in PyTorch's FakeQuantize. WHY the rounded code: with an absolute range the largest value's
//!   code is the range's end to within a rounding error of the division, and a mask on the
//!   unrounded code would pass or stop its gradient by that error (and differently in two engines
//!   that sum in different orders).
//! - NoiseQuant (Eqs. 5–6): additive uniform noise `U[−Δ/2, Δ/2]` in place of rounding, which the
//!   paper found stable at 2 bits where STE is not.
//!
//! The values equal [`AffineParams::quantize`] followed by [`AffineParams::dequantize`] (the
//! integer path) except on exact rounding ties.

use burn::tensor::{Device, Tensor, TensorData};
use shared_format::tensor::{qmax, qmin};

use super::affine::{AffineParams, Range};
use super::integer::activation_clamp;
use super::lower::Activation;
pub use ghnq_core::train::host_values;

/// How quantization is simulated (the paper's two methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Round to the grid, gradient straight through.
    SimQuant,
    /// Add uniform noise of one step instead of rounding.
    NoiseQuant,
}

/// How one tensor's clamped codes land on the grid.
///
/// WHY keyed noise: NoiseQuant's draws come from [`noise`] by (seed, key), not from burn's
/// generator, so burn's simulation and the native one (`qat_native`) draw the same noise for the
/// same tensor of the same step: the native path is tested against burn's under NoiseQuant too,
/// and a resumed run draws what an uninterrupted one would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// Rounded half to even, gradient straight through (SimQuant; evaluation always).
    Round,
    /// Moved by the uniform noise [`noise`]`(seed, key, ..)`, then clamped (NoiseQuant).
    Noise {
        /// The step's seed.
        seed: u64,
        /// The tensor's key: [`act_key`] or [`weight_key`].
        key: u64,
    },
}

impl Grid {
    /// The grid of `method` for the tensor `key` at `seed`.
    pub fn of(method: Method, seed: u64, key: u64) -> Grid {
        match method {
            Method::SimQuant => Grid::Round,
            Method::NoiseQuant => Grid::Noise { seed, key },
        }
    }
}

/// The noise key of device tensor `t`'s activation quantization.
pub fn act_key(t: usize) -> u64 {
    t as u64
}

/// The noise key of node `node`'s weight quantization.
pub fn weight_key(node: usize) -> u64 {
    (1 << 32) | node as u64
}

/// `len` draws of `U[−1/2, 1/2)`, a pure function of `(seed, key)`: [`add_noise`] to zeros.
pub fn noise(seed: u64, key: u64, len: usize) -> Vec<f32> {
    let mut draws = vec![0.0; len];
    add_noise(&mut draws, seed, key);
    draws
}

/// Adds to `v[i]` draw `i` of the tensor `(seed, key)`'s uniform noise on `[−1/2, 1/2)`: the top 24
/// bits of SplitMix64's output for the `i + 1`-th counter of the tensor's own stream, so exactly
/// `k · 2⁻²⁴ − 1/2` for an integer `k`.
///
/// WHY counter-based: a draw depends on its index alone, so the loop vectorises (AVX-512's
/// 64-bit multiplies, eight draws per instruction), where ChaCha8 drawn element by element took
/// about 15 % of a NoiseQuant GHN-QAT step (`perf` on the campaign's W2A2 phase). SplitMix64's
/// output is a bijection of its 64-bit counter with full avalanche, and each tensor's counters
/// start at a 64-bit mix of seed and key, so two tensors' draws of length `len` share counters
/// only with a probability of about `len / 2⁶³`.
pub fn add_noise(v: &mut [f32], seed: u64, key: u64) {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let stream = split_mix(seed ^ key.wrapping_mul(GOLDEN).rotate_left(17));
    ghnq_core::cnn::native::simd(
        #[inline(always)]
        move || {
            for (i, x) in v.iter_mut().enumerate() {
                let bits = split_mix(stream.wrapping_add((i as u64 + 1).wrapping_mul(GOLDEN)));
                *x += (bits >> 40) as f32 * (1.0 / 16_777_216.0) - 0.5;
            }
        },
    );
}

/// SplitMix64's output function (Steele, Lea and Flood 2014).
#[inline(always)]
fn split_mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fake-quantize `x` with a fixed scale and zero point (NoiseQuant's draws in `x`'s own order).
pub fn fake_quant<const D: usize>(x: Tensor<D>, p: AffineParams, grid: Grid) -> Tensor<D> {
    let (s, z) = (f64::from(p.scale), f64::from(p.zero_point));
    let (lo, hi) = (f64::from(qmin(p.bits)), f64::from(qmax(p.bits)));
    let code = to_grid(x / s + z, grid, lo, hi, draws_in_order);
    (code - z) * s
}

/// The codes a device tensor's values are clamped to: the bit-width's range, narrowed by a ReLU
/// (at the zero point) or ReLU6 (at the code of 6) fused into the writing op's output stage, as
/// the device clamps them ([`activation_clamp`]).
pub fn code_bounds(p: AffineParams, act: Activation) -> (f32, f32) {
    let relu = match act {
        Activation::Linear => None,
        Activation::Relu { six } => Some(six),
    };
    let (lo, hi) = activation_clamp(p.zero_point, p.scale, p.bits, relu);
    (f32::from(lo), f32::from(hi))
}

/// An NCHW activation `x`, before its activation `act`, fake-quantized with `act` fused into the
/// clamp ([`code_bounds`]): the values of `act` then [`fake_quant`], but the gradient stops where
/// the rounded code is outside the bounds rather than where `x` crosses 0 (or 6).
///
/// WHY: on 4-bit grids a convolution's output is often exactly 0 (integer codes summing to 0),
/// where a ReLU's own gradient is decided by the last bit of a float sum; the device has no
/// separate ReLU either. NoiseQuant's draws are taken in NHWC order, the native engine's layout,
/// so both engines move each value by the same draw.
pub fn fake_quant_act(x: Tensor<4>, p: AffineParams, act: Activation, grid: Grid) -> Tensor<4> {
    let (s, z) = (f64::from(p.scale), f64::from(p.zero_point));
    let (lo, hi) = code_bounds(p, act);
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    let nhwc = |seed, key, dims: [usize; 4], device: &Device| {
        let [n, c, h, w] = dims;
        let draws = noise(seed, key, n * c * h * w);
        Tensor::<4>::from_data(TensorData::new(draws, [n, h, w, c]), device).permute([0, 3, 1, 2])
    };
    let code = to_grid(x / s + z, grid, lo, hi, nhwc);
    (code - z) * s
}

/// NoiseQuant's draws for a tensor of `dims`, in its own (row-major) order.
fn draws_in_order<const D: usize>(
    seed: u64,
    key: u64,
    dims: [usize; D],
    device: &Device,
) -> Tensor<D> {
    let draws = noise(seed, key, dims.iter().product());
    Tensor::<D>::from_data(TensorData::new(draws, dims), device)
}

/// Real-valued codes → grid values in `[lo, hi]`: rounded with a straight-through gradient, or
/// moved by one step's uniform noise (`draw`n for the tensor), then clamped; the gradient passes
/// where the rounded (or moved) code is inside the range.
fn to_grid<const D: usize>(
    code: Tensor<D>,
    grid: Grid,
    lo: f64,
    hi: f64,
    draw: impl FnOnce(u64, u64, [usize; D], &Device) -> Tensor<D>,
) -> Tensor<D> {
    let moved = match grid {
        Grid::Round => code.clone() + (code.clone().round() - code).detach(),
        Grid::Noise { seed, key } => {
            let noise = draw(seed, key, code.dims(), &code.device());
            code + noise
        }
    };
    moved.clamp(lo, hi)
}

/// Per-output-channel symmetric fake quantization of a weight tensor whose first axis is the
/// output channel (scale `max|w_c| / (2^(N−1) − 1)`, recomputed from `w` and not differentiated,
/// like [`super::WeightQuant::per_channel_symmetric`]). Returns the values and the `[cout]` scales.
pub fn fake_quant_per_channel<const D: usize>(
    w: Tensor<D>,
    bits: u8,
    grid: Grid,
) -> (Tensor<D>, Tensor<1>) {
    let dims = w.dims();
    let cout = dims[0];
    let per: usize = dims[1..].iter().product();
    let limit = f64::from(qmax(bits));
    let peak = w.clone().detach().abs().reshape([cout, per]).max_dim(1);
    // An all-zero filter keeps scale 1, as on the integer path.
    let zero = peak.clone().equal_elem(0.0);
    let scales = peak.mask_fill(zero, limit).reshape([cout]) / limit;
    let mut bshape = [1usize; D];
    bshape[0] = cout;
    let scale: Tensor<D> = scales.clone().reshape(bshape);
    let code = to_grid(w / scale.clone(), grid, -limit, limit, draws_in_order);
    (code * scale, scales)
}

/// Round `x / step` to an integer with a straight-through gradient and scale back: a bias stored
/// as i32 at scale `step` (no clamp: i32 holds any bias a layer can use).
pub fn fake_quant_int(x: Tensor<1>, step: Tensor<1>) -> Tensor<1> {
    let code = x / step.clone();
    let code = code.clone() + (code.clone().round() - code).detach();
    code * step
}

/// Absolute min/max of a tensor (widened to contain 0), read back to the host.
pub fn range_of<const D: usize>(x: &Tensor<D>) -> Range {
    let lo = x.clone().detach().min().into_scalar::<f32>();
    let hi = x.clone().detach().max().into_scalar::<f32>();
    Range {
        min: lo.min(0.0),
        max: hi.max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WeightQuant;
    use burn::tensor::{Device, TensorData};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-3.0f32..5.0)).collect()
    }

    #[test]
    fn fake_quant_equals_the_integer_round_trip() {
        let dev = Device::flex();
        for bits in [2u8, 4, 8] {
            for (k, range) in [
                Range {
                    min: -2.5,
                    max: 4.0,
                },
                Range { min: 0.0, max: 3.0 },
                Range {
                    min: -1.0,
                    max: 0.5,
                },
            ]
            .into_iter()
            .enumerate()
            {
                let v = random(997, bits as u64 * 10 + k as u64);
                let p = AffineParams::from_range(range, bits);
                let x = Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &dev);
                let got = host_values(&fake_quant(x, p, Grid::Round));
                for (g, &r) in got.iter().zip(&v) {
                    let want = p.dequantize(p.quantize(r));
                    assert!(
                        (g - want).abs() <= 1e-5 * p.scale.max(1.0),
                        "bits {bits} range {range:?}: {r} -> {g}, integer path {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn per_channel_fake_quant_equals_the_integer_weights() {
        let dev = Device::flex();
        let v = random(4 * 3 * 3 * 2, 5);
        for bits in [2u8, 4, 8] {
            let q = WeightQuant::per_channel_symmetric(&v, 4, bits);
            let w = Tensor::<4>::from_data(TensorData::new(v.clone(), [4, 2, 3, 3]), &dev);
            let got = host_values(&fake_quant_per_channel(w, bits, Grid::Round).0);
            for (i, g) in got.iter().enumerate() {
                let want = q.values[i] as f32 * q.scale(i / 18);
                assert!(
                    (g - want).abs() < 1e-5,
                    "bits {bits} weight {i}: {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn ste_passes_gradients_inside_the_range_and_stops_them_outside() {
        let dev = Device::flex().autodiff();
        let x = Tensor::<1>::from_data(
            TensorData::new(vec![-5.0f32, -0.3, 0.2, 0.7, 9.0], [5]),
            &dev,
        )
        .require_grad();
        let p = AffineParams::from_range(
            Range {
                min: -1.0,
                max: 1.0,
            },
            4,
        );
        let y = fake_quant(x.clone(), p, Grid::Round);
        let g = y.sum().backward();
        let grad = host_values(&x.grad(&g).unwrap());
        assert_eq!(grad, [0.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn noise_quant_stays_within_half_a_step() {
        let dev = Device::flex();
        let v = random(2000, 9);
        let p = AffineParams::from_range(
            Range {
                min: -3.0,
                max: 5.0,
            },
            2,
        );
        let x = Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &dev);
        let got = host_values(&fake_quant(x, p, Grid::Noise { seed: 3, key: 1 }));
        let mut moved = 0;
        for (g, &r) in got.iter().zip(&v) {
            let clamped = r.clamp(p.dequantize(qmin(2)), p.dequantize(qmax(2)));
            assert!((g - clamped).abs() <= 0.5 * p.scale + 1e-5, "{r} -> {g}");
            moved += usize::from((g - clamped).abs() > 1e-6);
        }
        assert!(moved > 1900, "noise was added to {moved} of 2000 values");
    }

    #[test]
    fn noise_is_uniform_keyed_and_prefix_stable() {
        let n = 1 << 16;
        let a = noise(5, weight_key(3), n);
        // A draw depends on (seed, key, index) only: a shorter tensor sees the same prefix.
        assert_eq!(noise(5, weight_key(3), 1000)[..], a[..1000]);
        assert!(a.iter().all(|d| (-0.5..0.5).contains(d)));
        // Mean 0 and variance 1/12, each within 5 standard errors of a uniform sample's.
        let mean = a.iter().map(|&d| f64::from(d)).sum::<f64>() / n as f64;
        let var = a
            .iter()
            .map(|&d| (f64::from(d) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!(
            mean.abs() < 5.0 * (1.0 / 12.0 / n as f64).sqrt(),
            "mean {mean}"
        );
        assert!(
            (var - 1.0 / 12.0).abs() < 5.0 * (1.0 / 180.0 / n as f64).sqrt(),
            "var {var}"
        );
        // 64 equal bins: chi-square with 63 degrees of freedom, far below its 1e-6 tail (~130).
        let mut bins = [0usize; 64];
        a.iter()
            .for_each(|&d| bins[((d + 0.5) * 64.0) as usize] += 1);
        let e = n as f64 / 64.0;
        let chi2: f64 = bins.iter().map(|&b| (b as f64 - e).powi(2) / e).sum();
        assert!(chi2 < 130.0, "chi-square {chi2}");
        // Neighbouring draws, neighbouring keys and neighbouring seeds are uncorrelated.
        let corr = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum::<f64>()
                / (x.len() as f64 / 12.0)
        };
        let bound = 5.0 / (n as f64).sqrt();
        for (name, other) in [
            ("lag 1", a[1..].to_vec()),
            ("key", noise(5, weight_key(4), n)),
            ("act key", noise(5, act_key(3), n)),
            ("seed", noise(6, weight_key(3), n)),
        ] {
            let c = corr(&a[..n - 1], &other[..n - 1]);
            assert!(c.abs() < bound, "{name}: correlation {c}");
        }
    }
}
