//! BatchNorm with the current batch's statistics (GHN-2 trains and evaluates that way,
//! GHN_SPEC §3.5), forward and backward, over the rows of an NHWC buffer (`rows = n·h·w`).
//! The variance is the biased one PyTorch normalises with.
//!
//! WHY blocks: with 16–64 channels, a loop per row over the channels spends more on loop
//! overhead than on arithmetic. Every loop here runs over a block of [`BLOCK`] rows at once
//! against per-channel vectors tiled to the block's length, and folds per-lane sums into
//! per-channel ones at the end (in f64).

use crate::cnn::executor::BN_EPS;

/// Rows per block.
const BLOCK: usize = 32;

/// What the backward pass needs besides the input itself: the batch mean and `1/√(σ² + ε)`
/// per channel. WHY not the normalised input: writing `x̂` doubles the forward pass's memory
/// traffic, and the backward pass recomputes it from the input for free in the loop that reads it.
pub struct Saved {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

/// Per-lane f32 sums over blocks of [`BLOCK`] rows, folded into per-channel f64 sums every 64
/// blocks (so an f32 lane never sums more than 64 values) and at the end.
struct LaneSums {
    c: usize,
    lanes: [Vec<f32>; 2],
    total: [Vec<f64>; 2],
    blocks: usize,
}

impl LaneSums {
    fn new(c: usize) -> LaneSums {
        LaneSums {
            c,
            lanes: [vec![0.0; BLOCK * c], vec![0.0; BLOCK * c]],
            total: [vec![0.0; c], vec![0.0; c]],
            blocks: 0,
        }
    }

    fn fold(&mut self) {
        for (lanes, total) in self.lanes.iter_mut().zip(self.total.iter_mut()) {
            for (k, v) in lanes.iter_mut().enumerate() {
                total[k % self.c] += *v as f64;
                *v = 0.0;
            }
        }
    }

    /// Ends a block.
    fn next_block(&mut self) {
        self.blocks += 1;
        if self.blocks.is_multiple_of(64) {
            self.fold();
        }
    }

    fn finish(mut self) -> [Vec<f64>; 2] {
        self.fold();
        self.total
    }
}

/// `y = γ·(x − μ)/√(σ² + ε) + β` per channel.
#[inline(always)]
pub fn forward(x: &[f32], c: usize, gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Saved) {
    let rows = x.len() / c;
    let n = rows.max(1) as f64;
    let lanes = BLOCK * c;
    // One pass over data shifted by the first row (per channel): Var = E[(x−K)²] − E[x−K]²
    // does not cancel the way E[x²] − E[x]² does when |mean| ≫ std.
    let shift: Vec<f32> = x[..c].to_vec();
    let shift_t = shift.repeat(BLOCK);
    let mut sums = LaneSums::new(c);
    for bx in x.chunks(lanes) {
        let [s, q] = &mut sums.lanes;
        for (((s, q), &v), &k) in s.iter_mut().zip(q.iter_mut()).zip(bx).zip(&shift_t) {
            let d = v - k;
            *s += d;
            *q += d * d;
        }
        sums.next_block();
    }
    let [sum, sq] = sums.finish();
    let mean: Vec<f32> = sum
        .iter()
        .zip(&shift)
        .map(|(s, &k)| (s / n + k as f64) as f32)
        .collect();
    let inv_std: Vec<f32> = sum
        .iter()
        .zip(&sq)
        .map(|(s, q)| {
            let m = s / n;
            (1.0 / ((q / n - m * m).max(0.0) + BN_EPS).sqrt()) as f32
        })
        .collect();
    let y = normalize(x, c, &mean, &inv_std, gamma, beta);
    (y, Saved { mean, inv_std })
}

/// `y = γ·(x − μ)/√(σ² + ε) + β` with given statistics (a net's stored running ones: evaluation
/// of an exported or calibrated net).
#[inline(always)]
pub fn forward_with(
    x: &[f32],
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    (mean, var): (&[f32], &[f32]),
) -> Vec<f32> {
    let inv_std: Vec<f32> = var
        .iter()
        .map(|&v| (1.0 / (v as f64 + BN_EPS).sqrt()) as f32)
        .collect();
    normalize(x, c, mean, &inv_std, gamma, beta)
}

#[inline(always)]
fn normalize(
    x: &[f32],
    c: usize,
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> Vec<f32> {
    let lanes = BLOCK * c;
    let (mean_t, inv_t) = (mean.repeat(BLOCK), inv_std.repeat(BLOCK));
    let (gamma_t, beta_t) = (gamma.repeat(BLOCK), beta.repeat(BLOCK));
    // Every value is written below.
    let mut y = super::buffers::scratch(x.len());
    for (bx, by) in x.chunks(lanes).zip(y.chunks_mut(lanes)) {
        for ((((&v, o), m), s), (g, b)) in bx
            .iter()
            .zip(by.iter_mut())
            .zip(&mean_t)
            .zip(&inv_t)
            .zip(gamma_t.iter().zip(&beta_t))
        {
            *o = g * ((v - m) * s) + b;
        }
    }
    y
}

/// Adds d loss / d x to `dx`; returns (d loss / d γ, d loss / d β). `x` is the forward pass's
/// input.
#[inline(always)]
pub fn backward(
    saved: &Saved,
    x: &[f32],
    c: usize,
    gamma: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let rows = dy.len() / c;
    let lanes = BLOCK * c;
    let (mean_t, inv_t) = (saved.mean.repeat(BLOCK), saved.inv_std.repeat(BLOCK));
    let mut sums = LaneSums::new(c);
    for (bd, bx) in dy.chunks(lanes).zip(x.chunks(lanes)) {
        let [sb, sg] = &mut sums.lanes;
        for ((((sb, sg), &d), &v), (m, s)) in sb
            .iter_mut()
            .zip(sg.iter_mut())
            .zip(bd)
            .zip(bx)
            .zip(mean_t.iter().zip(&inv_t))
        {
            *sb += d;
            *sg += d * ((v - m) * s);
        }
        sums.next_block();
    }
    let [dbeta, dgamma] = sums.finish();
    if let Some(dx) = dx {
        // dx = γ/(σ·M) · (M·dy − Σdy − x̂·Σ(dy·x̂)), the standard BatchNorm gradient.
        let m = rows as f32;
        let scale: Vec<f32> = (0..c).map(|j| gamma[j] * saved.inv_std[j] / m).collect();
        let sb: Vec<f32> = dbeta.iter().map(|&v| v as f32).collect();
        let sg: Vec<f32> = dgamma.iter().map(|&v| v as f32).collect();
        let (scale_t, sb_t, sg_t) = (scale.repeat(BLOCK), sb.repeat(BLOCK), sg.repeat(BLOCK));
        for ((bo, bd), bx) in dx
            .chunks_mut(lanes)
            .zip(dy.chunks(lanes))
            .zip(x.chunks(lanes))
        {
            for ((((o, &d), &v), s), ((b, g), (mu, is))) in bo
                .iter_mut()
                .zip(bd)
                .zip(bx)
                .zip(&scale_t)
                .zip(sb_t.iter().zip(&sg_t).zip(mean_t.iter().zip(&inv_t)))
            {
                let h = (v - mu) * is;
                *o += s * (m * d - b - h * g);
            }
        }
    }
    (
        dgamma.iter().map(|&v| v as f32).collect(),
        dbeta.iter().map(|&v| v as f32).collect(),
    )
}
