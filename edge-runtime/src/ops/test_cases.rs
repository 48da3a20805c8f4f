//! Seeded random cases for the host tests of the convolution kernels (regular and depthwise):
//! one place that draws a geometry, weights, inputs, zero points, bias, requantization, weight
//! scheme and rounding, so that each test states only the knobs it varies ([`Spec`]) and what
//! it asserts against the reference.

use super::conv::ConvParams;
use super::conv::tests::{Owned, owned, params};
use crate::test_rng::XorShift32;
use shared_format::{Padding, Rounding, Shape, WeightScheme, Window};

/// One of `choices`, uniformly.
pub(crate) fn pick<T: Copy>(rng: &mut XorShift32, choices: &[T]) -> T {
    choices[rng.below(choices.len() as u32) as usize]
}

/// A uniformly random byte.
pub(crate) fn byte(rng: &mut XorShift32) -> i8 {
    rng.below(256) as u8 as i8
}

/// `n` uniformly random bytes.
pub(crate) fn bytes(rng: &mut XorShift32, n: usize) -> Vec<i8> {
    (0..n).map(|_| byte(rng)).collect()
}

/// The range of a `bits`-bit two's complement code.
pub(crate) fn code_range(bits: u32) -> (i32, i32) {
    (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1)
}

/// `n` `bits`-bit codes, half of them piled on the range's two ends, the rest anywhere in it.
pub(crate) fn end_codes(rng: &mut XorShift32, bits: u8, n: usize) -> Vec<i8> {
    let (lo, hi) = code_range(bits as u32);
    (0..n)
        .map(|_| match rng.below(4) {
            0 => lo,
            1 => hi,
            _ => lo + rng.below(1 << bits) as i32,
        } as i8)
        .collect()
}

/// An input zero point: −128, 127, 0 or anywhere.
pub(crate) fn zero_point(rng: &mut XorShift32) -> i8 {
    let any = byte(rng);
    pick(rng, &[-128, 127, 0, any])
}

/// An affine weight zero point for `bits`-bit codes: either end of the range or anywhere in it.
pub(crate) fn weight_zero_point(rng: &mut XorShift32, bits: u8) -> i8 {
    let (lo, hi) = code_range(bits as u32);
    let any = lo + rng.below(1 << bits) as i32;
    pick(rng, &[lo, hi, any]) as i8
}

/// Either rounding, evenly.
pub(crate) fn rounding(rng: &mut XorShift32) -> Rounding {
    pick(rng, &[Rounding::Double, Rounding::Single])
}

/// A window of kernel `(kh, kw)` and dilation `(dh, dw)` with random strides (1 or 2) and
/// padding (below the dilated kernel's extent on each side), drawn in that order.
pub(crate) fn window(rng: &mut XorShift32, (kh, kw): (u8, u8), (dh, dw): (u8, u8)) -> Window {
    let eff_h = (kh as u32 - 1) * dh as u32 + 1;
    let eff_w = (kw as u32 - 1) * dw as u32 + 1;
    Window {
        kernel_h: kh,
        kernel_w: kw,
        stride_h: 1 + rng.below(2) as u8,
        stride_w: 1 + rng.below(2) as u8,
        dilation_h: dh,
        dilation_w: dw,
        padding: Padding {
            top: rng.below(eff_h) as u8,
            bottom: rng.below(eff_h) as u8,
            left: rng.below(eff_w) as u8,
            right: rng.below(eff_w) as u8,
        },
    }
}

/// An input of `1..=side` rows and columns and `c` channels.
pub(crate) fn input_shape(rng: &mut XorShift32, side: u32, c: u16) -> Shape {
    Shape::new(1 + rng.below(side) as u16, 1 + rng.below(side) as u16, c)
}

/// The output shape of `win` over `s` with `c` channels, `None` where the window does not fit.
pub(crate) fn output_shape(win: Window, s: Shape, c: u16) -> Option<Shape> {
    let (oh, ow) = (win.output_h(s.h as u32)?, win.output_w(s.w as u32)?);
    Some(Shape::new(oh as u16, ow as u16, c))
}

/// How a case's weight codes are drawn.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Codes {
    /// Anywhere in the `bits`-bit range.
    Uniform,
    /// Half piled on the range's ends ([`end_codes`]).
    Ends,
}

/// What a random case varies; the rest is drawn.
#[derive(Clone)]
pub(crate) struct Spec {
    /// Weight bit-width.
    pub bits: u8,
    /// Kernel `(kh, kw)`.
    pub kernel: (u8, u8),
    /// Dilation `(dh, dw)`.
    pub dilation: (u8, u8),
    /// Input channels.
    pub cin: u16,
    /// Output channels (ignored when `depthwise`: then `cin`).
    pub cout: u16,
    /// Depthwise weights `[ky][kx][c]` instead of `[co][ky][kx][ci]`.
    pub depthwise: bool,
    /// Input rows and columns in `1..=side`.
    pub side: u32,
    /// How the weight codes are drawn.
    pub codes: Codes,
    /// Inputs with every fifth byte −128 and every fifth 127 (else uniform).
    pub input_ends: bool,
    /// Biases in `-bias..=bias`.
    pub bias: u32,
    /// Per-channel shifts, uniformly in this range (multipliers in `[2^30, 2^30 + 2^29)`).
    pub shifts: (i8, i8),
    /// Per-tensor affine weights (zero point at the code range's ends or anywhere), else
    /// per-channel symmetric.
    pub affine: bool,
}

impl Spec {
    /// A regular convolution of `bits`-bit weights: kernel `kernel`, `cin` → `cout` channels,
    /// undilated, inputs up to 8×8, codes piled on their ends, biases within ±100 000, shifts
    /// in −11..=2, symmetric weights (override fields with struct-update syntax).
    pub(crate) fn conv(bits: u8, kernel: (u8, u8), cin: u16, cout: u16) -> Self {
        Spec {
            bits,
            kernel,
            dilation: (1, 1),
            cin,
            cout,
            depthwise: false,
            side: 8,
            codes: Codes::Ends,
            input_ends: false,
            bias: 100_000,
            shifts: (-11, 2),
            affine: false,
        }
    }

    /// A depthwise convolution over `c` channels: as [`Spec::conv`] but with biases within
    /// ±10 000 and shifts in −9..=2.
    pub(crate) fn depthwise(bits: u8, kernel: (u8, u8), c: u16) -> Self {
        Spec {
            depthwise: true,
            bias: 10_000,
            shifts: (-9, 2),
            ..Spec::conv(bits, kernel, c, c)
        }
    }
}

/// A drawn case: tensors, packed constants and the parameters' drawn fields.
pub(crate) struct Case {
    pub bits: u8,
    pub win: Window,
    pub s: Shape,
    pub os: Shape,
    pub x: Vec<i8>,
    pub z_x: i8,
    pub z_w: i8,
    pub scheme: WeightScheme,
    pub o: Owned,
    /// Output zero point, anywhere.
    pub z_y: i8,
    /// Either rounding.
    pub rounding: Rounding,
}

impl Case {
    /// A case of `spec`, drawn in the order window, input shape, weights, inputs, input zero
    /// point, bias, requantization, weight zero point, output zero point, rounding; `None`
    /// (after the window and shape) where the window does not fit the input.
    pub(crate) fn draw(rng: &mut XorShift32, spec: &Spec) -> Option<Self> {
        let Spec { bits, kernel, .. } = *spec;
        let win = window(rng, kernel, spec.dilation);
        let s = input_shape(rng, spec.side, spec.cin);
        let cout = if spec.depthwise { spec.cin } else { spec.cout };
        let os = output_shape(win, s, cout)?;
        let taps = kernel.0 as usize * kernel.1 as usize;
        let n_w = taps * if spec.depthwise { 1 } else { spec.cin as usize } * cout as usize;
        let w = match spec.codes {
            Codes::Ends => end_codes(rng, bits, n_w),
            Codes::Uniform => {
                let lo = code_range(bits as u32).0;
                (0..n_w)
                    .map(|_| (lo + rng.below(1 << bits) as i32) as i8)
                    .collect()
            }
        };
        let x: Vec<i8> = (0..s.h as usize * s.w as usize * s.c as usize)
            .map(|i| match i % 5 {
                0 if spec.input_ends => -128,
                1 if spec.input_ends => 127,
                _ => byte(rng),
            })
            .collect();
        let z_x = zero_point(rng);
        let span = spec.bias;
        let bias: Vec<i32> = (0..cout)
            .map(|_| (rng.below(2 * span + 1) as i64 - span as i64) as i32)
            .collect();
        let (lo, hi) = spec.shifts;
        let rq: Vec<(i32, i8)> = (0..cout)
            .map(|_| {
                let m = (1 << 30) | rng.below(1 << 29) as i32;
                (
                    m,
                    (lo as i32 + rng.below((hi - lo) as u32 + 1) as i32) as i8,
                )
            })
            .collect();
        let (scheme, z_w) = if spec.affine {
            (WeightScheme::PerTensorAffine, weight_zero_point(rng, bits))
        } else {
            (WeightScheme::PerChannelSymmetric, 0)
        };
        Some(Case {
            bits,
            win,
            s,
            os,
            o: owned(&w, bits, &bias, &rq),
            x,
            z_x,
            z_w,
            scheme,
            z_y: byte(rng),
            rounding: rounding(rng),
        })
    }

    /// The case's kernel parameters: the whole int8 clamp, the drawn zero points and rounding.
    pub(crate) fn params(&self) -> ConvParams<'_> {
        ConvParams {
            output_zero_point: self.z_y,
            rounding: self.rounding,
            ..params(
                &self.o,
                self.bits,
                self.scheme,
                self.z_w,
                self.win,
                self.s,
                self.z_x,
                self.os,
            )
        }
    }

    /// Bytes of one filter (`kh·kw·C_in`).
    pub(crate) fn filter_len(&self) -> usize {
        self.win.kernel_h as usize * self.win.kernel_w as usize * self.s.c as usize
    }

    /// Bytes of the output.
    pub(crate) fn output_len(&self) -> usize {
        self.os.h as usize * self.os.w as usize * self.os.c as usize
    }
}

impl core::fmt::Display for Case {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "W{} {:?} {:?} -> {:?} z_x {} z_w {}",
            self.bits, self.win, self.s, self.os, self.z_x, self.z_w
        )
    }
}
