//! MaxPool, AvgPool and GlobalAvgPool (TFLM `reference_integer_ops::MaxPool` / `AveragePool`).
//!
//! Input and output share scale and zero point, so there is no requantization: the result is
//! clamped directly. Padded cells are excluded (TFLM): MaxPool ignores them, AvgPool divides by
//! the number of valid cells. AvgPool rounds half away from zero with truncating division,
//! `(s ± n/2) / n`, exactly as TFLM does.

use shared_format::{Clamp, Shape, TensorRecord, Window};

use super::simd::armv7em;
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

impl PoolParams {
    /// The op's parameters between its input tensor `x` and output tensor `y`.
    pub fn new(op: &shared_format::Pool, x: &TensorRecord, y: &TensorRecord) -> Self {
        PoolParams {
            window: op.window,
            input_shape: x.shape,
            output_shape: y.shape,
            clamp: op.clamp,
        }
    }
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
    if win.kernel_h == 1
        && win.kernel_w == 1
        && win.stride_h == 1
        && win.stride_w == 1
        && win.padding == Default::default()
        && input.len() == output.len()
    {
        // A 1×1 window at stride 1 without padding (an identity cell in NAS nets): each output
        // is its input, clamped.
        if p.clamp.min == i8::MIN && p.clamp.max == i8::MAX {
            output.copy_from_slice(input);
        } else {
            for (o, &x) in output.iter_mut().zip(input) {
                *o = clamp_to_i8(x as i32, p.clamp);
            }
        }
        return Ok(());
    }
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
    avg_pool_with(p, input, output, cfg!(edge_dsp))
}

/// [`avg_pool`], with `simd` the Armv7E-M path ([`armv7em::avg_pixels`], on its instruction model
/// elsewhere) for pixels of 3 to 16 valid taps when `C` is a multiple of 4.
fn avg_pool_with(p: &PoolParams, input: &[i8], output: &mut [i8], simd: bool) -> KernelResult {
    check(p, input, output)?;
    let simd = simd && p.input_shape.c.is_multiple_of(4);
    let win = p.window;
    let (in_h, in_w, c) = (
        p.input_shape.h as usize,
        p.input_shape.w as usize,
        p.input_shape.c as usize,
    );
    let out_w = p.output_shape.w as usize;
    if output.is_empty() {
        return Ok(());
    }
    // Output columns whose windows lie wholly inside the input's columns: with the SIMD path,
    // each row's run of them is one call.
    let (stride_w, pad_l) = (win.stride_w as usize, win.padding.left as usize);
    let reach = (win.kernel_w as usize).saturating_sub(1) * win.dilation_w as usize;
    let inner_lo = pad_l.div_ceil(stride_w.max(1)).min(out_w);
    let inner_hi = match (in_w + pad_l).checked_sub(reach + 1) {
        Some(last) if stride_w > 0 => (last / stride_w + 1).min(out_w),
        _ => 0,
    }
    .max(inner_lo);
    for (oy, row_out) in output.chunks_exact_mut(out_w * c).enumerate() {
        let ty = Taps::rows(&win, oy, in_h);
        let mut ox = 0;
        while ox < out_w {
            if simd && ox == inner_lo && inner_hi > inner_lo {
                let run = inner_hi - inner_lo;
                let tx = Taps::cols(&win, ox, in_w);
                let rows = (ty.count(), win.dilation_h as usize * in_w * c);
                let cols = (tx.count(), win.dilation_w as usize * c);
                let first = (ty.input_index(ty.k0, win.dilation_h) * in_w
                    + tx.input_index(tx.k0, win.dilation_w))
                    * c;
                let out = row_out
                    .get_mut(ox * c..inner_hi * c)
                    .ok_or(KernelError("pool output pixel"))?;
                let done = armv7em::AvgCells::new(rows.0 * cols.0).is_some_and(|cells| {
                    armv7em::avg_pixels(
                        input,
                        first,
                        rows,
                        cols,
                        (run, stride_w * c),
                        cells,
                        p.clamp,
                        out,
                    )
                });
                if !done {
                    // Outside the fast path's reach: the portable path, pixel by pixel.
                    for (i, px) in out.chunks_exact_mut(c).enumerate() {
                        avg_portable(p, input, &ty, ox + i, px)?;
                    }
                }
                ox = inner_hi;
                continue;
            }
            let tx = Taps::cols(&win, ox, in_w);
            let count = ty.count() * tx.count();
            let px = row_out
                .get_mut(ox * c..(ox + 1) * c)
                .ok_or(KernelError("pool output pixel"))?;
            ox += 1;
            if simd && let Some(cells) = armv7em::AvgCells::new(count) {
                let first = (ty.input_index(ty.k0, win.dilation_h) * in_w
                    + tx.input_index(tx.k0, win.dilation_w))
                    * c;
                let rows = (ty.count(), win.dilation_h as usize * in_w * c);
                let cols = (tx.count(), win.dilation_w as usize * c);
                if armv7em::avg_pixels(input, first, rows, cols, (1, 0), cells, p.clamp, px) {
                    continue;
                }
            }
            avg_portable(p, input, &ty, ox - 1, px)?;
        }
    }
    Ok(())
}

/// One output pixel of [`avg_pool`] on the portable path.
fn avg_portable(p: &PoolParams, input: &[i8], ty: &Taps, ox: usize, px: &mut [i8]) -> KernelResult {
    let win = p.window;
    let (in_w, c) = (p.input_shape.w as usize, p.input_shape.c as usize);
    let tx = Taps::cols(&win, ox, in_w);
    let count = ty.count() * tx.count();
    // A 64-bit division: worked out only where the fast path does not take the pixel.
    let divisor = CellDivisor::new(count);
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

    /// The Armv7E-M path (on its instruction model here) gives the portable path's bytes: 3×3,
    /// 5×5 and 2×2 windows, strides 1 and 2, padding, dilation, 4 to 36 channels, clamps.
    #[test]
    fn avg_pool_simd_matches_portable() {
        let clamps = [FULL, Clamp { min: -20, max: 33 }, Clamp { min: 5, max: -5 }];
        for (k, s, pad, d) in [
            (3u8, 1u8, 1u8, 1u8),
            (3, 2, 1, 1),
            (5, 1, 2, 1),
            (2, 2, 0, 1),
            (3, 1, 2, 2),
            (3, 2, 0, 1),
            (5, 1, 0, 1),
            (4, 3, 1, 1),
            (1, 1, 0, 1),
        ] {
            for c in [4u16, 8, 12, 36] {
                for (h, w) in [(7u16, 9u16), (8, 8), (3, 2), (5, 3)] {
                    if h + 2 * pad as u16 <= d as u16 * (k as u16 - 1)
                        || w + 2 * pad as u16 <= d as u16 * (k as u16 - 1)
                    {
                        continue;
                    }
                    let win = Window {
                        kernel_h: k,
                        kernel_w: k,
                        stride_h: s,
                        stride_w: s,
                        dilation_h: d,
                        dilation_w: d,
                        padding: shared_format::Padding {
                            top: pad,
                            left: pad,
                            bottom: pad,
                            right: pad,
                        },
                    };
                    let out = |n: u16| {
                        (n + 2 * pad as u16 - d as u16 * (k as u16 - 1) - 1) / s as u16 + 1
                    };
                    let x: Vec<i8> = (0..h as usize * w as usize * c as usize)
                        .map(|i| match i % 11 {
                            0 => -128,
                            1 => 127,
                            _ => ((i * 37 + i / 7) % 256) as u8 as i8,
                        })
                        .collect();
                    for clamp in clamps {
                        let p = PoolParams {
                            window: win,
                            input_shape: Shape::new(h, w, c),
                            output_shape: Shape::new(out(h), out(w), c),
                            clamp,
                        };
                        let n = out(h) as usize * out(w) as usize * c as usize;
                        let (mut a, mut b) = (vec![0i8; n], vec![0i8; n]);
                        avg_pool_with(&p, &x, &mut a, false).unwrap();
                        avg_pool_with(&p, &x, &mut b, true).unwrap();
                        assert_eq!(a, b, "k{k} s{s} p{pad} d{d} c{c} {h}x{w} {clamp:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn max_pool_identity_window() {
        let x: Vec<i8> = (0..2 * 3 * 4).map(|i| (i * 23 % 256) as u8 as i8).collect();
        for clamp in [FULL, Clamp { min: -20, max: 33 }] {
            let p = PoolParams {
                window: Window::square(1, 1, 1, 0),
                input_shape: Shape::new(2, 3, 4),
                output_shape: Shape::new(2, 3, 4),
                clamp,
            };
            let mut y = vec![0i8; x.len()];
            max_pool(&p, &x, &mut y).unwrap();
            let want: Vec<i8> = x.iter().map(|&v| clamp_to_i8(v as i32, clamp)).collect();
            assert_eq!(y, want);
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
