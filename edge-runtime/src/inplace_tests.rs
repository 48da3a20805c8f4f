//! The in-place paths against the whole-tensor kernels on random geometries: same bytes.

use super::*;
use crate::test_rng::XorShift32;
use shared_format::le::i32s_to_le;
use shared_format::packing::pack;
use shared_format::plan::{IN_PLACE_ADD_CHUNK, band_rows};
use shared_format::{
    Clamp, LeI32s, Padding, Requant, Rounding, Shape, WeightScheme, Weights, Window,
};

struct Case {
    kernel: Kernel,
    window: Window,
    shape: Shape,
    out_c: u16,
    bits: u8,
    scheme: WeightScheme,
    zero_point: i8,
    rounding: Rounding,
    weights: Vec<u8>,
    bias: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
    input: Vec<i8>,
}

fn random_case(rng: &mut XorShift32) -> Case {
    let depthwise = rng.below(3) == 0;
    let kh = 1 + rng.below(5) as u8;
    let kw = 1 + rng.below(5) as u8;
    let dh = if rng.below(4) == 0 { 2 } else { 1 };
    let eff_h = (kh - 1) * dh + 1;
    // Stride 1 along the height with the input's rows: pad_top + pad_bottom = eff_h − 1.
    let top = rng.below(eff_h as u32) as u8;
    let bottom = eff_h - 1 - top;
    let h = 1 + rng.below(14) as u16;
    let (w, c, out_c, stride_w, left, right, kw) = if depthwise || rng.below(2) == 0 {
        // Same width, same channels: "same" padding along the width too.
        let c = 1 + rng.below(12) as u16;
        let w = 1 + rng.below(12) as u16;
        let left = rng.below(kw as u32) as u8;
        (w, c, c, 1, left, kw - 1 - left, kw)
    } else {
        // Width halved, channels doubled: stride 2 along the width, still the same row bytes.
        let c = 1 + rng.below(6) as u16;
        let w = 2 * (1 + rng.below(8) as u16);
        // 1×? kernels of width 1 or 2 with no horizontal padding keep OW = W/2.
        let kw = 1 + rng.below(2) as u8;
        (w, c, 2 * c, 2, 0, 0, kw)
    };
    let window = Window {
        kernel_h: kh,
        kernel_w: kw,
        stride_h: 1,
        stride_w,
        dilation_h: dh,
        dilation_w: 1,
        padding: Padding {
            top,
            left,
            bottom,
            right,
        },
    };
    let bits = [2u8, 4, 8][rng.below(3) as usize];
    let per_channel = rng.below(2) == 0;
    let (scheme, zero_point) = if per_channel {
        (WeightScheme::PerChannelSymmetric, 0)
    } else {
        let half = 1i32 << (bits - 1);
        (
            WeightScheme::PerTensorAffine,
            (rng.below(2 * half as u32) as i32 - half) as i8,
        )
    };
    let (kernel, count, channels) = if depthwise {
        (Kernel::Depthwise, kh as usize * kw as usize * c as usize, c)
    } else {
        (
            Kernel::Conv,
            out_c as usize * kh as usize * kw as usize * c as usize,
            out_c,
        )
    };
    let half = 1i32 << (bits - 1);
    let values: Vec<i8> = (0..count)
        .map(|_| (rng.below(2 * half as u32) as i32 - half) as i8)
        .collect();
    let entries = if per_channel { channels as usize } else { 1 };
    let bias: Vec<i32> = (0..channels)
        .map(|_| rng.below(2001) as i32 - 1000)
        .collect();
    let multipliers: Vec<i32> = (0..entries)
        .map(|_| (1 << 30) + rng.below(1 << 30) as i32)
        .collect();
    let shifts: Vec<u8> = (0..entries)
        .map(|_| (-(rng.below(10) as i8) - 1) as u8)
        .collect();
    let input = (0..h as usize * w as usize * c as usize)
        .map(|_| rng.next_u32() as i8)
        .collect();
    Case {
        kernel,
        window,
        shape: Shape::new(h, w, c),
        out_c,
        bits,
        scheme,
        zero_point,
        rounding: if rng.below(2) == 0 {
            Rounding::Double
        } else {
            Rounding::Single
        },
        weights: pack(&values, bits).unwrap(),
        bias: i32s_to_le(&bias),
        multipliers: i32s_to_le(&multipliers),
        shifts,
        input,
    }
}

fn params(k: &Case) -> ConvParams<'_> {
    let s = k.shape;
    let ow = (s.w as u32 + k.window.padding.left as u32 + k.window.padding.right as u32
        - k.window.kernel_w as u32)
        / k.window.stride_w as u32
        + 1;
    ConvParams {
        window: k.window,
        input_shape: s,
        input_zero_point: 3,
        output_shape: Shape::new(s.h, ow as u16, k.out_c),
        output_zero_point: -5,
        weights: Weights {
            bits: k.bits,
            scheme: k.scheme,
            zero_point: k.zero_point,
            data: &k.weights,
        },
        bias: LeI32s::new(&k.bias),
        requant: Requant {
            multipliers: LeI32s::new(&k.multipliers),
            shifts: &k.shifts,
        },
        clamp: Clamp {
            min: -128,
            max: 127,
        },
        rounding: k.rounding,
    }
}

/// `k`'s input after [`conv_in_place`] ran `k.kernel` over it, `rows` output rows a band.
fn in_place(
    p: &ConvParams<'_>,
    k: &Case,
    rows: usize,
    kernel_scratch: &mut [i8],
    band: &mut [i8],
) -> Result<Vec<i8>, KernelError> {
    let mut tensor = k.input.clone();
    conv_in_place(p, k.kernel, rows, &mut tensor, kernel_scratch, band)?;
    Ok(tensor)
}

#[test]
fn band_path_equals_whole_tensor_convolution() {
    let mut rng = XorShift32::new(0x1A2B_3C4D);
    let mut banded = 0;
    for case in 0..3000 {
        let k = random_case(&mut rng);
        let p = params(&k);
        let row = k.shape.w as usize * k.shape.c as usize;
        assert_eq!(
            p.output_shape.w as usize * p.output_shape.c as usize,
            row,
            "{case}"
        );
        let mut kernel_scratch = vec![0i8; 16 * 16 * 64];
        let mut want = vec![0i8; k.input.len()];
        match k.kernel {
            Kernel::Conv => conv2d(&p, &k.input, &mut want, &mut kernel_scratch),
            Kernel::Depthwise => depthwise_conv2d(&p, &k.input, &mut want, &mut kernel_scratch),
        }
        .unwrap();
        let h = k.shape.h as usize;
        // The runtime's band, or any other height (one row at a time included).
        let rows = if rng.below(4) == 0 {
            band_rows(k.shape) as usize
        } else {
            1 + rng.below(h as u32) as usize
        };
        if rows < h {
            banded += 1;
        }
        let mut band = vec![0x55i8; (rows + k.window.padding.top as usize).min(h) * row];
        let tensor = in_place(&p, &k, rows, &mut kernel_scratch, &mut band).unwrap();
        assert_eq!(tensor, want, "case {case}: {:?} {:?}", k.window, k.shape);
        // One byte less band scratch is refused, not a panic nor a wrong answer.
        if !band.is_empty() {
            let mut short = vec![0i8; band.len() - 1];
            assert!(in_place(&p, &k, rows, &mut kernel_scratch, &mut short).is_err());
        }
    }
    // Most rows are at most 12×12 bytes, so many cases run several bands.
    assert!(banded > 300, "{banded}");
}

#[test]
fn band_path_with_many_bands_and_large_kernels() {
    // Rows of 2 KiB and more (one row per band) and rows that fit the band several times.
    let mut rng = XorShift32::new(7);
    for (h, w, c, kh, top) in [
        (32, 32, 16, 3, 1),
        (40, 64, 32, 3, 1),
        (17, 5, 64, 5, 2),
        (9, 3, 8, 5, 4),
        (9, 3, 8, 5, 0),
        (25, 5, 64, 3, 1),
    ] {
        let mut k = random_case(&mut rng);
        k.kernel = Kernel::Conv;
        k.shape = Shape::new(h, w, c);
        k.out_c = c;
        k.window = Window {
            padding: Padding {
                top,
                bottom: kh - 1 - top,
                left: kh / 2,
                right: kh / 2,
            },
            ..Window::square(kh, 1, 1, 0)
        };
        let count = c as usize * kh as usize * kh as usize * c as usize;
        let values: Vec<i8> = (0..count).map(|_| (rng.below(15) as i8) - 7).collect();
        k.bits = 4;
        k.weights = pack(&values, 4).unwrap();
        k.scheme = WeightScheme::PerChannelSymmetric;
        k.zero_point = 0;
        k.bias = i32s_to_le(&vec![17; c as usize]);
        k.multipliers = i32s_to_le(&vec![(1 << 30) + 12345; c as usize]);
        k.shifts = vec![(-9i8) as u8; c as usize];
        k.input = (0..h as usize * w as usize * c as usize)
            .map(|_| rng.next_u32() as i8)
            .collect();
        let p = params(&k);
        let mut kernel_scratch = vec![0i8; kh as usize * kh as usize * c as usize];
        let mut want = vec![0i8; k.input.len()];
        conv2d(&p, &k.input, &mut want, &mut kernel_scratch).unwrap();
        let row = w as usize * c as usize;
        let rows = band_rows(k.shape) as usize;
        let mut band = vec![0i8; (rows + top as usize).min(h as usize) * row];
        let tensor = in_place(&p, &k, rows, &mut kernel_scratch, &mut band).unwrap();
        assert_eq!(tensor, want, "{h}×{w}×{c}, {kh}×{kh} top {top}");
    }
}

#[test]
fn add_in_place_equals_add() {
    use crate::ops::add::AddOperand;
    let mut rng = XorShift32::new(99);
    for case in 0..200 {
        let n = 1 + rng.below(3 * IN_PLACE_ADD_CHUNK as u32) as usize;
        let a: Vec<i8> = (0..n).map(|_| rng.next_u32() as i8).collect();
        let b: Vec<i8> = (0..n).map(|_| rng.next_u32() as i8).collect();
        let operand = |z: i8, m: i32| AddOperand {
            zero_point: z,
            multiplier: m,
            shift: -1,
        };
        let p = AddParams {
            inputs: [operand(-3, 1 << 30), operand(7, 1_500_000_000)],
            left_shift: 20,
            output_multiplier: 1_300_000_000,
            output_shift: -19,
            output_zero_point: 2,
            clamp: Clamp {
                min: -100,
                max: 127,
            },
            rounding: if case % 2 == 0 {
                Rounding::Double
            } else {
                Rounding::Single
            },
        };
        let chunk_len = n.min(IN_PLACE_ADD_CHUNK as usize);
        let mut chunk = vec![0i8; chunk_len];
        for which in 0..3 {
            let (x1, x2) = match which {
                0 => (&a, &b),
                1 => (&b, &a),
                _ => (&a, &a),
            };
            let mut want = vec![0i8; n];
            add(&p, x1, x2, &mut want).unwrap();
            let mut tensor = x1.clone();
            let other = if which == 2 { None } else { Some(&x2[..]) };
            add_in_place(&p, None, other, &mut tensor, &mut chunk).unwrap();
            assert_eq!(tensor, want, "case {case}, first input overwritten");
            let mut tensor = x2.clone();
            let other = if which == 2 { None } else { Some(&x1[..]) };
            add_in_place(&p, other, None, &mut tensor, &mut chunk).unwrap();
            assert_eq!(tensor, want, "case {case}, second input overwritten");
        }
    }
}
