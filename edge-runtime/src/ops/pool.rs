//! MaxPool, AvgPool and GlobalAvgPool (TFLM `reference_integer_ops::MaxPool` / `AveragePool`).
//!
//! Input and output share scale and zero point, so there is no requantization: the result is
//! clamped directly. Padded cells are excluded (TFLM): MaxPool ignores them, AvgPool divides by
//! the number of valid cells. AvgPool rounds half away from zero with truncating division,
//! `(s ± n/2) / n`, exactly as TFLM does.

use shared_format::{Clamp, Shape, Window};

use super::{KernelError, KernelResult, Taps, expect_len, expect_window_output};
use crate::requant::clamp_to_i8;

/// Channels summed together per pass in [`avg_pool`]: a stack tile, since weightless ops have no
/// scratch, and contiguous so the per-tap adds vectorize.
const TILE: usize = 32;

/// Geometry of a windowed pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolParams {
    /// Kernel, stride and padding (dilation 1 in valid blobs, but any is handled).
    pub window: Window,
    /// Input shape.
    pub input_shape: Shape,
    /// Output shape (same channel count).
    pub output_shape: Shape,
    /// Output clamp.
    pub clamp: Clamp,
}

fn check(p: &PoolParams, input: &[i8], output: &[i8]) -> KernelResult {
    expect_len(input.len(), p.input_shape, "pool input length")?;
    expect_len(output.len(), p.output_shape, "pool output length")?;
    expect_window_output(&p.window, p.input_shape, p.output_shape)?;
    if p.input_shape.c != p.output_shape.c || p.input_shape.c == 0 {
        return Err(KernelError("pool channel counts differ or are zero"));
    }
    Ok(())
}

/// Max over the valid taps of each window, per channel, then the clamp.
pub fn max_pool(p: &PoolParams, input: &[i8], output: &mut [i8]) -> KernelResult {
    check(p, input, output)?;
    let win = p.window;
    let (in_h, in_w, c) = (
        p.input_shape.h as usize,
        p.input_shape.w as usize,
        p.input_shape.c as usize,
    );
    let mut pixels = output.chunks_exact_mut(c);
    for oy in 0..p.output_shape.h as usize {
        let ty = Taps::rows(&win, oy, in_h);
        for ox in 0..p.output_shape.w as usize {
            let tx = Taps::cols(&win, ox, in_w);
            let px = pixels.next().ok_or(KernelError("pool output pixel"))?;
            px.fill(i8::MIN);
            for ky in ty.k0..ty.k1 {
                let iy = ty.input_index(ky, win.dilation_h);
                for kx in tx.k0..tx.k1 {
                    let x0 = (iy * in_w + tx.input_index(kx, win.dilation_w)) * c;
                    let xs = input.get(x0..x0 + c).ok_or(KernelError("pool input tap"))?;
                    for (o, &x) in px.iter_mut().zip(xs) {
                        *o = (*o).max(x);
                    }
                }
            }
            for o in px.iter_mut() {
                *o = clamp_to_i8(*o as i32, p.clamp);
            }
        }
    }
    Ok(())
}

/// TFLM's rounded average: `(s + n/2) / n` for `s > 0`, else `(s − n/2) / n`, truncating.
/// `n = 0` (impossible: validation proves every window has a valid tap) gives 0, not a panic.
#[inline]
pub fn rounded_average(sum: i64, count: i64) -> i64 {
    let half = count / 2;
    let biased = if sum > 0 { sum + half } else { sum - half };
    biased.checked_div(count).unwrap_or(0)
}

/// Division by a window's cell count `n` as a multiply and a shift, exactly
/// [`rounded_average`]: one hardware divide per output pixel instead of one per channel (a
/// 64-bit divide per element was most of an average pool's time on x86-64, and is a library call
/// on 32-bit cores).
///
/// Why exact: with `m = ⌈2^40 / n⌉ = 2^40/n + e` (`0 ≤ e < 1`) and `u = |s| + ⌊n/2⌋ < 2^24`,
/// `u·m / 2^40 = u/n + u·e/2^40`, and `u·e/2^40 < 2^-16 < 1/n` for `n < 2^16`; `u/n` is at most
/// `1 − 1/n` above its floor, so the floor is unchanged. `|s| ≤ 128·n < 2^23` holds because `s`
/// sums `n` int8 values. The sign is put back afterwards: TFLM's `(s ± n/2) / n` truncates
/// toward zero, which is `sign(s)·⌊(|s| + ⌊n/2⌋) / n⌋`.
#[derive(Debug, Clone, Copy)]
struct CellDivisor {
    half: u32,
    m: u64,
}

impl CellDivisor {
    /// The divisor for `n` cells; `None` for 0 or for more than fit the proof above (65,535:
    /// every window a valid blob can have fits).
    fn new(n: usize) -> Option<CellDivisor> {
        let n = u32::try_from(n)
            .ok()
            .filter(|&n| (1..1 << 16).contains(&n))?;
        Some(CellDivisor {
            half: n / 2,
            m: (1u64 << 40).div_ceil(u64::from(n)),
        })
    }

    /// `rounded_average(s, n)` for a sum `s` of `n` int8 values.
    #[inline]
    fn average(self, s: i32) -> i32 {
        let u = u64::from(s.unsigned_abs() + self.half);
        let q = ((u * self.m) >> 40) as i32;
        if s < 0 { -q } else { q }
    }
}

/// Average over the valid taps of each window, per channel, then the clamp.
pub fn avg_pool(p: &PoolParams, input: &[i8], output: &mut [i8]) -> KernelResult {
    check(p, input, output)?;
    let win = p.window;
    let (in_h, in_w, c) = (
        p.input_shape.h as usize,
        p.input_shape.w as usize,
        p.input_shape.c as usize,
    );
    let mut pixels = output.chunks_exact_mut(c);
    for oy in 0..p.output_shape.h as usize {
        let ty = Taps::rows(&win, oy, in_h);
        for ox in 0..p.output_shape.w as usize {
            let tx = Taps::cols(&win, ox, in_w);
            let count = ty.count() * tx.count();
            let divisor = CellDivisor::new(count);
            let px = pixels.next().ok_or(KernelError("pool output pixel"))?;
            for (tile_index, out_tile) in px.chunks_mut(TILE).enumerate() {
                let c0 = tile_index * TILE;
                let n = out_tile.len();
                // At most 3×3 taps of |x| ≤ 128 (validation), but i32 holds any u8 kernel.
                let mut sums = [0i32; TILE];
                for ky in ty.k0..ty.k1 {
                    let iy = ty.input_index(ky, win.dilation_h);
                    for kx in tx.k0..tx.k1 {
                        let x0 = (iy * in_w + tx.input_index(kx, win.dilation_w)) * c + c0;
                        let xs = input.get(x0..x0 + n).ok_or(KernelError("pool input tap"))?;
                        for (s, &x) in sums.iter_mut().zip(xs) {
                            *s = s.wrapping_add(x as i32);
                        }
                    }
                }
                match divisor {
                    Some(d) => {
                        for (o, &s) in out_tile.iter_mut().zip(&sums) {
                            *o = clamp_to_i8(d.average(s), p.clamp);
                        }
                    }
                    None => {
                        for (o, &s) in out_tile.iter_mut().zip(&sums) {
                            let r = rounded_average(s as i64, count as i64);
                            let r = r.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                            *o = clamp_to_i8(r, p.clamp);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Average of each channel over all H×W positions (AvgPool with a whole-input window).
///
/// The sum is kept in i64: H·W can reach 2^32 cells in a valid blob, which would overflow i32.
pub fn global_avg_pool(
    input_shape: Shape,
    clamp: Clamp,
    input: &[i8],
    output: &mut [i8],
) -> KernelResult {
    expect_len(input.len(), input_shape, "global pool input length")?;
    let c = input_shape.c as usize;
    if output.len() != c {
        return Err(KernelError("global pool output length"));
    }
    let count = input_shape.h as i64 * input_shape.w as i64;
    for (ch, o) in output.iter_mut().enumerate() {
        let sum: i64 = input
            .iter()
            .skip(ch)
            .step_by(c.max(1))
            .fold(0i64, |s, &x| s.wrapping_add(x as i64));
        let r = rounded_average(sum, count);
        *o = clamp_to_i8(r.clamp(i32::MIN as i64, i32::MAX as i64) as i32, clamp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Clamp = Clamp {
        min: -128,
        max: 127,
    };

    #[test]
    fn rounding_of_negative_sums() {
        // TFLM rounds half away from zero: −5/2 → −3, −3/2 → −2, −4/3 → −1, 5/2 → 3, −1/4 → 0.
        assert_eq!(rounded_average(-5, 2), -3);
        assert_eq!(rounded_average(-3, 2), -2);
        assert_eq!(rounded_average(-4, 3), -1);
        assert_eq!(rounded_average(-5, 3), -2);
        assert_eq!(rounded_average(5, 2), 3);
        assert_eq!(rounded_average(-1, 4), 0);
        assert_eq!(rounded_average(-2, 4), -1);
        assert_eq!(rounded_average(0, 4), 0);
        assert_eq!(rounded_average(7, 0), 0);
    }

    #[test]
    fn cell_divisor_is_rounded_average() {
        assert!(CellDivisor::new(0).is_none() && CellDivisor::new(1 << 16).is_none());
        // Every cell count, at the sums where rounding turns: each multiple of n, half a cell
        // either side of it and one either side of those, up to the extremes of n int8 values.
        for n in 1..1usize << 16 {
            let d = CellDivisor::new(n).unwrap();
            let (ni, half) = (n as i32, n as i32 / 2);
            let check = |s: i32| {
                let s = s.clamp(-128 * ni, 127 * ni);
                assert_eq!(
                    d.average(s) as i64,
                    rounded_average(s as i64, n as i64),
                    "{s} / {n}"
                );
            };
            for k in [0, 1, 2, 3, 64, 126, 127, 128] {
                for base in [k * ni, -k * ni] {
                    for delta in [
                        -half - 1,
                        -half,
                        -half + 1,
                        -1,
                        0,
                        1,
                        half - 1,
                        half,
                        half + 1,
                    ] {
                        check(base + delta);
                    }
                }
            }
        }
    }

    #[test]
    fn avg_pool_excludes_padding() {
        // 2×2×1 input, 2×2 window stride 1 with pad bottom/right 1: windows hold 4, 2, 2, 1 cells.
        let x = [-1i8, -2, -4, -8];
        let mut win = Window::square(2, 1, 1, 0);
        win.padding.bottom = 1;
        win.padding.right = 1;
        let p = PoolParams {
            window: win,
            input_shape: Shape::new(2, 2, 1),
            output_shape: Shape::new(2, 2, 1),
            clamp: FULL,
        };
        let mut y = [0i8; 4];
        avg_pool(&p, &x, &mut y).unwrap();
        // −15/4 = −3.75 → −4; −10/2 = −5; −12/2 = −6; −8/1 = −8.
        assert_eq!(y, [-4, -5, -6, -8]);
    }

    #[test]
    fn avg_pool_many_channels_spans_tiles() {
        let c = 70u16;
        let x: Vec<i8> = (0..2 * c as usize).map(|i| (i % 200) as i8).collect();
        let p = PoolParams {
            window: Window {
                kernel_h: 1,
                kernel_w: 2,
                stride_h: 1,
                stride_w: 1,
                dilation_h: 1,
                dilation_w: 1,
                padding: Default::default(),
            },
            input_shape: Shape::new(1, 2, c),
            output_shape: Shape::new(1, 1, c),
            clamp: FULL,
        };
        let mut y = vec![0i8; c as usize];
        avg_pool(&p, &x, &mut y).unwrap();
        for ch in 0..c as usize {
            let s = x[ch] as i64 + x[ch + c as usize] as i64;
            assert_eq!(y[ch] as i64, rounded_average(s, 2), "channel {ch}");
        }
    }

    #[test]
    fn max_pool_and_clamp() {
        // 2×2×2 input, 2×2 window: per-channel max, then clamped to [−3, 5].
        let x = [1i8, -9, 7, -8, 3, -7, 2, -6];
        let p = PoolParams {
            window: Window::square(2, 2, 1, 0),
            input_shape: Shape::new(2, 2, 2),
            output_shape: Shape::new(1, 1, 2),
            clamp: Clamp { min: -3, max: 5 },
        };
        let mut y = [0i8; 2];
        max_pool(&p, &x, &mut y).unwrap();
        assert_eq!(y, [5, -3]);
    }

    #[test]
    fn max_pool_skips_padding() {
        // All-negative input with padding: a padded cell must not act as 0.
        let x = [-5i8, -6, -7, -8];
        let p = PoolParams {
            window: Window::square(3, 1, 1, 1),
            input_shape: Shape::new(2, 2, 1),
            output_shape: Shape::new(2, 2, 1),
            clamp: FULL,
        };
        let mut y = [0i8; 4];
        max_pool(&p, &x, &mut y).unwrap();
        assert_eq!(y, [-5; 4]);
    }

    #[test]
    fn global_average() {
        // 2×2×2: channel 0 sums to −6 over 4 → −1.5 → −2; channel 1 sums to 10 → 2.5 → 3.
        let x = [-1i8, 1, -2, 2, -1, 3, -2, 4];
        let mut y = [0i8; 2];
        global_avg_pool(Shape::new(2, 2, 2), FULL, &x, &mut y).unwrap();
        assert_eq!(y, [-2, 3]);
    }
}
