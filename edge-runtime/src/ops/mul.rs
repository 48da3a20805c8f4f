//! Elementwise Mul with broadcasting (TFLM `reference_integer_ops::Mul` / `MulElementwise` for
//! equal shapes, `BroadcastMul6DSlow` otherwise).
//!
//! Both compute, per output element, `clamp(MBQM((x_1 − z_1)·(x_2 − z_2), m, e) + z_y)`: the
//! product of the centred inputs is requantized once to the output scale `s_1·s_2 / s_y`. The
//! broadcast path differs only in which input element it reads, so one formula serves both.

use shared_format::{Clamp, Rounding, Shape, TensorRecord};

use super::{KernelError, KernelResult, elements};
use crate::requant::requantize;

/// Everything Mul needs besides the activations.
#[derive(Debug, Clone, Copy)]
pub struct MulParams {
    /// The inputs' shapes: along each axis the output's length or 1.
    pub input_shapes: [Shape; 2],
    /// The output's shape.
    pub output_shape: Shape,
    /// The inputs' zero points.
    pub input_zero_points: [i8; 2],
    /// Output zero point.
    pub output_zero_point: i8,
    /// Q31 multiplier of `s_1·s_2 / s_y`.
    pub multiplier: i32,
    /// Its shift (≤ 15, so `product · 2^shift` stays in i32).
    pub shift: i32,
    /// Output clamp.
    pub clamp: Clamp,
    /// Requantization rounding of the model.
    pub rounding: Rounding,
}

impl MulParams {
    /// The op's parameters between its input tensors `x` and output tensor `y`.
    pub fn new(
        op: &shared_format::Mul,
        x: [&TensorRecord; 2],
        y: &TensorRecord,
        rounding: Rounding,
    ) -> Self {
        MulParams {
            input_shapes: x.map(|t| t.shape),
            output_shape: y.shape,
            input_zero_points: x.map(|t| t.zero_point),
            output_zero_point: y.zero_point,
            multiplier: op.multiplier,
            shift: op.shift as i32,
            clamp: op.clamp,
            rounding,
        }
    }
}

/// `y = clamp(MBQM((x_1 − z_1)·(x_2 − z_2), m, e) + z_y)`, an input axis of length 1 repeated
/// along the output's.
pub fn mul(p: &MulParams, input1: &[i8], input2: &[i8], output: &mut [i8]) -> KernelResult {
    let [s1, s2] = p.input_shapes;
    let so = p.output_shape;
    if elements(s1)? != input1.len()
        || elements(s2)? != input2.len()
        || elements(so)? != output.len()
    {
        return Err(KernelError("mul lengths do not match the shapes"));
    }
    let [z1, z2] = p.input_zero_points.map(i32::from);
    // |x − z| ≤ 255, so the product fits i32 exactly.
    let one = |a: i8, b: i8| {
        let product = (a as i32 - z1) * (b as i32 - z2);
        requantize(
            product,
            p.multiplier,
            p.shift,
            p.output_zero_point,
            p.clamp,
            p.rounding,
        )
    };
    if s1 == so && s2 == so {
        for ((y, &a), &b) in output.iter_mut().zip(input1).zip(input2) {
            *y = one(a, b);
        }
        return Ok(());
    }
    // Each input axis is the output's length or 1 (checked here so that a shape validation
    // refused cannot index out of bounds); a length-1 axis has stride 0.
    let stride = |s: Shape| -> Result<[usize; 3], KernelError> {
        let ok = |i: u16, o: u16| i == o || i == 1;
        if !(ok(s.h, so.h) && ok(s.w, so.w) && ok(s.c, so.c)) {
            return Err(KernelError("mul input does not broadcast to the output"));
        }
        let (w, c) = (s.w as usize, s.c as usize);
        let pick = |len: u16, step: usize| if len == 1 { 0 } else { step };
        Ok([pick(s.h, w * c), pick(s.w, c), pick(s.c, 1)])
    };
    let (t1, t2) = (stride(s1)?, stride(s2)?);
    let (w, c) = (so.w as usize, so.c as usize);
    let mut out = output.iter_mut();
    for h in 0..so.h as usize {
        for x in 0..w {
            let (b1, b2) = (h * t1[0] + x * t1[1], h * t2[0] + x * t2[1]);
            for k in 0..c {
                let a = input1.get(b1 + k * t1[2]).copied();
                let b = input2.get(b2 + k * t2[2]).copied();
                let (Some(a), Some(b), Some(y)) = (a, b, out.next()) else {
                    return Err(KernelError("mul index outside its input"));
                };
                *y = one(a, b);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Clamp = Clamp {
        min: i8::MIN,
        max: i8::MAX,
    };

    fn params(s1: Shape, s2: Shape, so: Shape, m: i32, e: i32) -> MulParams {
        MulParams {
            input_shapes: [s1, s2],
            output_shape: so,
            input_zero_points: [-3, -128],
            output_zero_point: 5,
            multiplier: m,
            shift: e,
            clamp: FULL,
            rounding: Rounding::Double,
        }
    }

    fn run(p: &MulParams, a: &[i8], b: &[i8]) -> Vec<i8> {
        let mut y = vec![0; elements(p.output_shape).unwrap()];
        mul(p, a, b, &mut y).unwrap();
        y
    }

    #[test]
    fn elementwise_by_hand() {
        let s = Shape::new(1, 1, 4);
        // m·2^(e−31) = 2^30·2^−37 = 1/128.
        let p = params(s, s, s, 1 << 30, -6);
        // (x − (−3))·(y − (−128)) / 128 + 5, rounded half away from zero:
        // 0·…, 10·64 = 640 → 5 → 10; −7·255 = −1785 → −13.9… → −14 → −9; 130·255 = 33150 → 258.98
        // → 259 → 264 → clamped to 127; 1·1 = 1 → 0.0078 → 0 → 5.
        let y = run(&p, &[-3, 7, -10, -2], &[0, -64, 127, -127]);
        assert_eq!(y, [5, 10, -9, 5]);
        // The product rescaled up: shift +2 multiplies by 2 (m = 2^30 is 0.5).
        let p = params(s, s, s, 1 << 30, 2);
        assert_eq!(
            run(&p, &[-2, -1, -3, 0], &[-127, -126, 100, -128]),
            [7, 13, 5, 5]
        );
    }

    #[test]
    fn fused_clamp_applies() {
        let s = Shape::new(1, 1, 3);
        let mut p = params(s, s, s, 1 << 30, -6);
        p.clamp = Clamp { min: 5, max: 20 };
        // −9 → 5 (ReLU at the zero point); 10 stays; 127 → 20.
        assert_eq!(run(&p, &[-10, 7, 127], &[127, -64, 127]), [5, 10, 20]);
    }

    #[test]
    fn broadcast_repeats_the_gate_over_rows_and_columns() {
        let map = Shape::new(2, 3, 2);
        let gate = Shape::new(1, 1, 2);
        let p = params(map, gate, map, 1 << 30, -6);
        let x: Vec<i8> = (0..12).map(|i| i * 9 - 50).collect();
        let g = [0i8, 100];
        let y = run(&p, &x, &g);
        let s = Shape::new(1, 1, 12);
        let repeated: Vec<i8> = (0..12).map(|i| g[i % 2]).collect();
        assert_eq!(y, run(&params(s, s, s, 1 << 30, -6), &x, &repeated));
        // The operands swapped give the same (the product commutes).
        let mut q = p;
        q.input_shapes = [gate, map];
        q.input_zero_points = [-128, -3];
        assert_eq!(run(&q, &g, &x), y);
    }

    #[test]
    fn broadcast_along_each_axis() {
        let so = Shape::new(2, 2, 3);
        let x: Vec<i8> = (0..12).map(|i| (i * 21 - 120) as i8).collect();
        for s2 in [
            Shape::new(1, 2, 3),
            Shape::new(2, 1, 3),
            Shape::new(2, 2, 1),
            Shape::new(1, 1, 1),
        ] {
            let n = elements(s2).unwrap();
            let b: Vec<i8> = (0..n).map(|i| ((i * 37) as i8).wrapping_sub(60)).collect();
            let y = run(&params(so, s2, so, 1_518_500_250, -7), &x, &b);
            for h in 0..2usize {
                for w in 0..2usize {
                    for c in 0..3usize {
                        let i2 = (if s2.h == 1 { 0 } else { h }) * (s2.w as usize * s2.c as usize)
                            + (if s2.w == 1 { 0 } else { w }) * s2.c as usize
                            + if s2.c == 1 { 0 } else { c };
                        let i = (h * 2 + w) * 3 + c;
                        let want = requantize(
                            (x[i] as i32 + 3) * (b[i2] as i32 + 128),
                            1_518_500_250,
                            -7,
                            5,
                            FULL,
                            Rounding::Double,
                        );
                        assert_eq!(y[i], want, "{s2:?} at {h},{w},{c}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_lengths_and_shapes_are_errors() {
        let s = Shape::new(1, 2, 2);
        let p = params(s, s, s, 1 << 30, 0);
        let mut y = [0i8; 4];
        assert!(mul(&p, &[0; 3], &[0; 4], &mut y).is_err());
        assert!(mul(&p, &[0; 4], &[0; 4], &mut y[..3]).is_err());
        // An axis that neither matches nor is 1.
        let p = params(s, Shape::new(1, 2, 2), Shape::new(1, 2, 4), 1 << 30, 0);
        assert!(mul(&p, &[0; 4], &[0; 4], &mut [0; 8]).is_err());
    }
}
