//! Simulated quantization on burn tensors, differentiable for QAT (the paper's §2.2):
//! - SimQuant: fake quantization (quantize then dequantize) whose rounding passes gradients
//!   straight through (STE); clamping stops them outside the range, as in PyTorch's FakeQuantize.
//! - NoiseQuant (Eqs. 5–6): additive uniform noise `U[−Δ/2, Δ/2]` in place of rounding, which the
//!   paper found stable at 2 bits where STE is not.
//!
//! The values equal [`AffineParams::quantize`] followed by [`AffineParams::dequantize`] (the
//! integer path) except on exact rounding ties.

use burn::tensor::{Distribution, Tensor};
use shared_format::tensor::{qmax, qmin};

use super::affine::{AffineParams, Range};
pub use ghnq_core::train::host_values;

/// How quantization is simulated (the paper's two methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Round to the grid, gradient straight through.
    SimQuant,
    /// Add uniform noise of one step instead of rounding.
    NoiseQuant,
}

/// Fake-quantize `x` with a fixed scale and zero point.
pub fn fake_quant<const D: usize>(x: Tensor<D>, p: AffineParams, method: Method) -> Tensor<D> {
    let (s, z) = (f64::from(p.scale), f64::from(p.zero_point));
    let (lo, hi) = (f64::from(qmin(p.bits)), f64::from(qmax(p.bits)));
    let code = to_grid((x / s + z).clamp(lo, hi), method, lo, hi);
    (code - z) * s
}

/// Clamped real-valued codes in `[lo, hi]` → grid values: rounded with a straight-through
/// gradient (SimQuant), or moved by uniform noise of one step (NoiseQuant).
fn to_grid<const D: usize>(code: Tensor<D>, method: Method, lo: f64, hi: f64) -> Tensor<D> {
    match method {
        Method::SimQuant => code.clone() + (code.clone().round() - code).detach(),
        Method::NoiseQuant => {
            let noise = Tensor::random(
                code.shape(),
                Distribution::Uniform(-0.5, 0.5),
                &code.device(),
            );
            (code + noise.detach()).clamp(lo, hi)
        }
    }
}

/// Per-output-channel symmetric fake quantization of a weight tensor whose first axis is the
/// output channel (scale `max|w_c| / (2^(N−1) − 1)`, recomputed from `w` and not differentiated,
/// like [`super::WeightQuant::per_channel_symmetric`]). Returns the values and the `[cout]` scales.
pub fn fake_quant_per_channel<const D: usize>(
    w: Tensor<D>,
    bits: u8,
    method: Method,
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
    let code = to_grid(
        (w / scale.clone()).clamp(-limit, limit),
        method,
        -limit,
        limit,
    );
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
                let got = host_values(&fake_quant(x, p, Method::SimQuant));
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
            let got = host_values(&fake_quant_per_channel(w, bits, Method::SimQuant).0);
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
        let y = fake_quant(x.clone(), p, Method::SimQuant);
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
        let got = host_values(&fake_quant(x, p, Method::NoiseQuant));
        let mut moved = 0;
        for (g, &r) in got.iter().zip(&v) {
            let clamped = r.clamp(p.dequantize(qmin(2)), p.dequantize(qmax(2)));
            assert!((g - clamped).abs() <= 0.5 * p.scale + 1e-5, "{r} -> {g}");
            moved += usize::from((g - clamped).abs() > 1e-6);
        }
        assert!(moved > 1900, "noise was added to {moved} of 2000 values");
    }
}
