//! The plain-Rust sums of the convolution window, for the channels [`super::window`] has left
//! over from whole quads and, on targets without a kernel module (Cortex-M0/M3, Cortex-M33
//! without DSP, RISC-V, …), for the quads too. No instruction set of its own, and no `unsafe`.

use super::Runs;

/// [`super::window`]'s work for `4·acc.len()` channels, channel by channel ([`centred_dot`]);
/// bounds already checked there.
#[cfg(not(any(edge_dsp, target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(always)]
pub(super) fn quad_words(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    acc: &mut [[i32; 4]],
) {
    for (k, acc) in acc.as_flattened_mut().iter_mut().enumerate() {
        *acc = centred_dot(x, w.get(k * stride..).unwrap_or_default(), runs, z_x);
    }
}

/// `Σ_runs Σ_i w[r·w_step + i]·(x[r·x_step + i] − z_x)`: one channel of [`super::window`] in
/// plain Rust (bounds already checked there, so the slicing cannot fail).
#[inline(always)]
pub(super) fn centred_dot(x: &[i8], w: &[i8], runs: Runs, z_x: i8) -> i32 {
    let mut sum = 0i32;
    for r in 0..runs.rows {
        let (xr, wr) = (r * runs.x_step, r * runs.w_step);
        let (Some(xs), Some(ws)) = (x.get(xr..xr + runs.len), w.get(wr..wr + runs.len)) else {
            return sum;
        };
        for (&w, &x) in ws.iter().zip(xs) {
            sum = sum.wrapping_add(w as i32 * (x as i32 - z_x as i32));
        }
    }
    sum
}
