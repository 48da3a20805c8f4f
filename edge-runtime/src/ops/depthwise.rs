//! DepthwiseConv2d (TFLM `reference_integer_ops::DepthwiseConvPerChannel`, depth multiplier 1),
//! NHWC input, weights `[c][ky][kx]`.
//!
//! `acc = b[c] + Σ_valid w·(x − z_x) − z_w·Σ_valid (x − z_x)` with `ci = co = c`. The loop runs
//! channel-outermost so a sub-byte filter is unpacked once per channel into a `kh·kw` scratch;
//! valid tap ranges are computed once per output row and column.

use shared_format::Shape;

use super::conv::ConvParams;
use super::{
    KernelError, KernelResult, Taps, channel_filter, elements, expect_len, expect_window_output,
};
use crate::requant::requantize;

/// Runs a depthwise convolution. The parameters are those of a convolution whose input and
/// output have the same channel count; `scratch` must hold one `kh·kw` filter for 2/4-bit weights.
pub fn depthwise_conv2d(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> KernelResult {
    let win = p.window;
    let (in_h, in_w, channels) = (
        p.input_shape.h as usize,
        p.input_shape.w as usize,
        p.input_shape.c as usize,
    );
    let (out_h, out_w) = (p.output_shape.h as usize, p.output_shape.w as usize);
    expect_len(input.len(), p.input_shape, "depthwise input length")?;
    expect_len(output.len(), p.output_shape, "depthwise output length")?;
    expect_window_output(&win, p.input_shape, p.output_shape)?;
    if p.output_shape.c != p.input_shape.c {
        return Err(KernelError("depthwise channel counts differ"));
    }
    let kw = win.kernel_w as usize;
    let filter_len = elements(Shape::new(win.kernel_h as u16, win.kernel_w as u16, 1))?;
    let z_x = p.input_zero_point as i32;
    let z_w = p.weights.zero_point as i32;

    for c in 0..channels {
        let filter = channel_filter(p.weights.data, p.weights.bits, c, filter_len, scratch)?;
        let bias = p.bias.get(c).ok_or(KernelError("bias shorter than C"))?;
        let (m, e) = p
            .requant
            .get(c)
            .ok_or(KernelError("requant table shorter than C"))?;
        let mut pixels = output.chunks_exact_mut(channels);
        for oy in 0..out_h {
            let ty = Taps::along(
                oy,
                win.stride_h,
                win.padding.top,
                win.dilation_h,
                win.kernel_h,
                in_h,
            );
            for ox in 0..out_w {
                let tx = Taps::along(
                    ox,
                    win.stride_w,
                    win.padding.left,
                    win.dilation_w,
                    win.kernel_w,
                    in_w,
                );
                let mut acc = bias;
                let mut x_sum = 0i32;
                for ky in ty.k0..ty.k1 {
                    let iy = ty.input_index(ky, win.dilation_h);
                    for kx in tx.k0..tx.k1 {
                        let ix = tx.input_index(kx, win.dilation_w);
                        let x = *input
                            .get((iy * in_w + ix) * channels + c)
                            .ok_or(KernelError("depthwise input tap"))?
                            as i32;
                        let w = *filter
                            .get(ky * kw + kx)
                            .ok_or(KernelError("depthwise filter tap"))?
                            as i32;
                        acc = acc.wrapping_add(w.wrapping_mul(x - z_x));
                        x_sum = x_sum.wrapping_add(x - z_x);
                    }
                }
                acc = acc.wrapping_sub(z_w.wrapping_mul(x_sum));
                let y = requantize(acc, m, e, p.output_zero_point, p.clamp, p.rounding);
                let px = pixels.next().ok_or(KernelError("depthwise output pixel"))?;
                *px.get_mut(c)
                    .ok_or(KernelError("depthwise output channel"))? = y;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::tests::{ONE, owned};
    use shared_format::{Clamp, LeI32s, Requant, Rounding, WeightScheme, Weights, Window};

    #[test]
    fn two_channels_by_hand() {
        // 2×2×2 input, 2×2 kernel, no padding: one output pixel per channel.
        // Channel 0: x = 1,2,3,4 with w = 1,1,1,1 → 10. Channel 1: x = −1,−2,−3,−4, z_x = 0,
        // w = 1,−1,2,−2 (4-bit) → −1+2−6+8 = 3, bias 7 → 10; then per-channel M = 1/2 → 5.
        let x = [1i8, -1, 2, -2, 3, -3, 4, -4];
        let o = owned(
            &[1, 1, 1, 1, 1, -1, 2, -2],
            4,
            &[0, 7],
            &[ONE, (1 << 30, 0)],
        );
        let p = ConvParams {
            window: Window::square(2, 1, 1, 0),
            input_shape: Shape::new(2, 2, 2),
            input_zero_point: 0,
            output_shape: Shape::new(1, 1, 2),
            output_zero_point: 0,
            weights: Weights {
                bits: 4,
                scheme: WeightScheme::PerChannelSymmetric,
                zero_point: 0,
                data: &o.weights,
            },
            bias: LeI32s::new(&o.bias),
            requant: Requant {
                multipliers: LeI32s::new(&o.mult),
                shifts: &o.shifts,
            },
            clamp: Clamp {
                min: -128,
                max: 127,
            },
            rounding: Rounding::Double,
        };
        let mut y = [0i8; 2];
        let mut scratch = [0i8; 4];
        depthwise_conv2d(&p, &x, &mut y, &mut scratch).unwrap();
        assert_eq!(y, [10, 5]);
    }

    #[test]
    fn padded_taps_are_skipped_and_affine_zero_point_applies() {
        // 1×1×1 input x = 3, z_x = 1, 3×3 kernel pad 1: only the centre tap is valid.
        // w centre = 2, z_w = −1: (2 − (−1))·(3 − 1) = 6.
        let o = owned(&[7, 7, 7, 7, 2, 7, 7, 7, 7], 8, &[0], &[ONE]);
        let p = ConvParams {
            window: Window::square(3, 1, 1, 1),
            input_shape: Shape::new(1, 1, 1),
            input_zero_point: 1,
            output_shape: Shape::new(1, 1, 1),
            output_zero_point: 0,
            weights: Weights {
                bits: 8,
                scheme: WeightScheme::PerTensorAffine,
                zero_point: -1,
                data: &o.weights,
            },
            bias: LeI32s::new(&o.bias),
            requant: Requant {
                multipliers: LeI32s::new(&o.mult),
                shifts: &o.shifts,
            },
            clamp: Clamp {
                min: -128,
                max: 127,
            },
            rounding: Rounding::Double,
        };
        let mut y = [0i8; 1];
        depthwise_conv2d(&p, &[3], &mut y, &mut []).unwrap();
        assert_eq!(y, [6]);
    }

    /// Random geometries, bit-widths and zero points against a tap-by-tap i64 loop.
    #[test]
    fn matches_naive_on_random_geometries() {
        let mut seed = 0x0BAD_F00Du32;
        let mut rnd = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed % n
        };
        for case in 0..300 {
            let bits = [2u8, 4, 8][rnd(3) as usize];
            let (kh, kw) = (1 + rnd(5) as u8, 1 + rnd(5) as u8);
            let (dh, dw) = (1 + rnd(3) as u8, 1 + rnd(3) as u8);
            let eff_h = (kh as u32 - 1) * dh as u32 + 1;
            let eff_w = (kw as u32 - 1) * dw as u32 + 1;
            let win = Window {
                kernel_h: kh,
                kernel_w: kw,
                stride_h: 1 + rnd(2) as u8,
                stride_w: 1 + rnd(2) as u8,
                dilation_h: dh,
                dilation_w: dw,
                padding: shared_format::Padding {
                    top: rnd(eff_h) as u8,
                    bottom: rnd(eff_h) as u8,
                    left: rnd(eff_w) as u8,
                    right: rnd(eff_w) as u8,
                },
            };
            let s = Shape::new(1 + rnd(8) as u16, 1 + rnd(8) as u16, 1 + rnd(5) as u16);
            let (Some(oh), Some(ow)) = (win.output_h(s.h as u32), win.output_w(s.w as u32)) else {
                continue;
            };
            let c = s.c as usize;
            let lo = -(1i32 << (bits - 1));
            let w: Vec<i8> = (0..c * kh as usize * kw as usize)
                .map(|_| (lo + rnd(1 << bits) as i32) as i8)
                .collect();
            let z_w = if case % 2 == 0 {
                (lo + rnd(1 << bits) as i32) as i8
            } else {
                0
            };
            let z_x = rnd(256) as u8 as i8;
            let x: Vec<i8> = (0..s.h as usize * s.w as usize * c)
                .map(|_| rnd(256) as u8 as i8)
                .collect();
            let bias: Vec<i32> = (0..c).map(|_| rnd(2001) as i32 - 1000).collect();
            let rq = [(1 << 30, -8i8)];
            let o = owned(&w, bits, &bias, &rq);
            let os = Shape::new(oh as u16, ow as u16, s.c);
            let p = ConvParams {
                window: win,
                input_shape: s,
                input_zero_point: z_x,
                output_shape: os,
                output_zero_point: -2,
                weights: Weights {
                    bits,
                    scheme: WeightScheme::PerTensorAffine,
                    zero_point: z_w,
                    data: &o.weights,
                },
                bias: LeI32s::new(&o.bias),
                requant: Requant {
                    multipliers: LeI32s::new(&o.mult),
                    shifts: &o.shifts,
                },
                clamp: Clamp {
                    min: -128,
                    max: 127,
                },
                rounding: Rounding::Single,
            };
            let mut y = vec![0i8; oh as usize * ow as usize * c];
            let mut scratch = vec![0i8; kh as usize * kw as usize];
            depthwise_conv2d(&p, &x, &mut y, &mut scratch).unwrap();
            for oy in 0..oh as i64 {
                for ox in 0..ow as i64 {
                    for ch in 0..c {
                        let mut acc = bias[ch] as i64;
                        for ky in 0..kh as i64 {
                            for kx in 0..kw as i64 {
                                let iy = oy * win.stride_h as i64 - win.padding.top as i64
                                    + ky * dh as i64;
                                let ix = ox * win.stride_w as i64 - win.padding.left as i64
                                    + kx * dw as i64;
                                if iy < 0 || ix < 0 || iy >= s.h as i64 || ix >= s.w as i64 {
                                    continue;
                                }
                                let xv = x[((iy * s.w as i64 + ix) as usize) * c + ch] as i64;
                                let wv = w[ch * kh as usize * kw as usize
                                    + (ky * kw as i64 + kx) as usize]
                                    as i64;
                                acc += (wv - z_w as i64) * (xv - z_x as i64);
                            }
                        }
                        let want = crate::requant::requantize(
                            acc as i32,
                            1 << 30,
                            -8,
                            -2,
                            p.clamp,
                            Rounding::Single,
                        );
                        let got = y[((oy * ow as i64 + ox) as usize) * c + ch];
                        assert_eq!(got, want, "case {case} ({oy},{ox},{ch}) acc {acc}");
                    }
                }
            }
        }
    }
}
