//! BatchNorm with the current batch's statistics (GHN-2 trains and evaluates that way,
//! GHN_SPEC §3.5), forward and backward, over the rows of an NHWC buffer (`rows = n·h·w`).
//! The variance is the biased one PyTorch normalises with; sums run in f64 so a large batch does
//! not lose the mean's low bits.

use crate::cnn::executor::BN_EPS;

/// What the backward pass needs: the normalised input and `1/√(σ² + ε)` per channel.
pub struct Saved {
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
}

/// `y = γ·(x − μ)/√(σ² + ε) + β` per channel.
#[inline(always)]
pub fn forward(x: &[f32], c: usize, gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Saved) {
    let rows = x.len() / c;
    // One pass: Σx and Σx² in f64 (an f32 activation squared and summed over a batch stays far
    // inside f64's precision, so E[x²] − E[x]² does not cancel badly).
    let (mut sum, mut sq) = (vec![0f64; c], vec![0f64; c]);
    for px in x.chunks_exact(c) {
        for ((s, q), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(px) {
            let v = v as f64;
            *s += v;
            *q += v * v;
        }
    }
    let n = rows.max(1) as f64;
    let mean64: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let inv_std: Vec<f32> = sq
        .iter()
        .zip(&mean64)
        .map(|(q, m)| (1.0 / ((q / n - m * m).max(0.0) + BN_EPS).sqrt()) as f32)
        .collect();
    let mean: Vec<f32> = mean64.iter().map(|&m| m as f32).collect();
    let mut xhat = vec![0.0; x.len()];
    let mut y = vec![0.0; x.len()];
    for ((px, xh), out) in x
        .chunks_exact(c)
        .zip(xhat.chunks_exact_mut(c))
        .zip(y.chunks_exact_mut(c))
    {
        for j in 0..c {
            xh[j] = (px[j] - mean[j]) * inv_std[j];
            out[j] = gamma[j] * xh[j] + beta[j];
        }
    }
    (y, Saved { xhat, inv_std })
}

/// Adds d loss / d x to `dx`; returns (d loss / d γ, d loss / d β).
#[inline(always)]
pub fn backward(
    saved: &Saved,
    c: usize,
    gamma: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let rows = dy.len() / c;
    let mut dgamma = vec![0f64; c];
    let mut dbeta = vec![0f64; c];
    for (d, xh) in dy.chunks_exact(c).zip(saved.xhat.chunks_exact(c)) {
        for j in 0..c {
            dbeta[j] += d[j] as f64;
            dgamma[j] += (d[j] * xh[j]) as f64;
        }
    }
    if let Some(dx) = dx {
        // dx = γ/(σ·M) · (M·dy − Σdy − x̂·Σ(dy·x̂)), the standard BatchNorm gradient.
        let m = rows as f32;
        let scale: Vec<f32> = (0..c).map(|j| gamma[j] * saved.inv_std[j] / m).collect();
        let (sb, sg): (Vec<f32>, Vec<f32>) = (
            dbeta.iter().map(|&v| v as f32).collect(),
            dgamma.iter().map(|&v| v as f32).collect(),
        );
        for ((out, d), xh) in dx
            .chunks_exact_mut(c)
            .zip(dy.chunks_exact(c))
            .zip(saved.xhat.chunks_exact(c))
        {
            for j in 0..c {
                out[j] += scale[j] * (m * d[j] - sb[j] - xh[j] * sg[j]);
            }
        }
    }
    (
        dgamma.iter().map(|&v| v as f32).collect(),
        dbeta.iter().map(|&v| v as f32).collect(),
    )
}
