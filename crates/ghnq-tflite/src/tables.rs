//! The 256 values of a [`Table`](shared_format::Table) for each TFLite op the importer turns
//! into one: TFLM's integer arithmetic run once per input byte, through the edge runtime's own
//! kernels where it has one (those are what the byte-for-byte TFLM suites check), so a table
//! holds exactly what TFLM would have computed for that byte.

use edge_runtime::ops::add::{AddOperand, AddParams as KernelAddParams, add};
use edge_runtime::ops::mul::{MulParams, mul};
use edge_runtime::requant::multiply_by_quantized_multiplier;
use ghnq_quant::integer::{AddParams, quantize_multiplier};
use shared_format::op::{Mul, TABLE_LEN, table_of};
use shared_format::{Clamp, Rounding, Shape};

/// Every int8 value, in table order (entry `b` is input byte `b`).
fn every_input() -> Vec<i8> {
    (0..TABLE_LEN).map(|b| b as u8 as i8).collect()
}

/// TFLM's int8 → int8 QUANTIZE (`reference_ops::Requantize`, set up in `PrepareQuantize` with
/// `QuantizeMultiplier(double(s_x) / double(s_y))`): `clamp(MBQM(x − z_x, m, e) + z_y, −128,
/// 127)`, with the MBQM of TFLM's default (double-rounding) build. Its same-scale fast path only
/// applies between int8 and uint8. `None` for a ratio of 2^30 or more, whose shift TFLM's MBQM
/// cannot apply without overflow.
pub(crate) fn requantize(s_x: f32, z_x: i8, s_y: f32, z_y: i8) -> Option<Vec<u8>> {
    let (m, e) = quantize_multiplier(f64::from(s_x) / f64::from(s_y), Rounding::Double);
    if e > 30 {
        return None;
    }
    Some(table_of(|x| {
        let centred = i32::from(x) - i32::from(z_x);
        let y = multiply_by_quantized_multiplier(centred, m, e, Rounding::Double) + i32::from(z_y);
        y.clamp(-128, 127) as i8
    }))
}

/// One operand of a binary op whose other operand is a single constant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Constant {
    /// The constant's stored int8 value.
    pub value: i8,
    /// Its zero point.
    pub zero_point: i8,
    /// Its scale.
    pub scale: f32,
    /// Whether it is the op's first input (TFLite's ADD treats its inputs' parameters apart).
    pub first: bool,
}

/// The operands of a binary op with one constant, ordered as the op takes them: the input
/// byte sequence and a same-length run of the constant.
fn operands(constant: Constant) -> (Vec<i8>, Vec<i8>) {
    let (x, c) = (every_input(), vec![constant.value; TABLE_LEN]);
    if constant.first { (c, x) } else { (x, c) }
}

/// TFLM's int8 MUL of the activation (scale `s_x`, zero point `z_x`) by one constant, into
/// scale `s_y`, zero point `z_y` and `clamp`: the runtime's MUL kernel (TFLM's
/// `MulElementwise`; its broadcast form computes the same per element) over every input byte.
/// `None` where [`Mul::from_scales`] finds no blob form for the scales.
pub(crate) fn mul_by(
    (s_x, z_x): (f32, i8),
    constant: Constant,
    (s_y, z_y): (f32, i8),
    clamp: Clamp,
) -> Option<Vec<u8>> {
    let op = Mul::from_scales(
        [0, 1],
        2,
        [s_x, constant.scale, s_y],
        clamp,
        Rounding::Double,
    )?;
    let shape = Shape::new(1, 1, TABLE_LEN as u16);
    let zero_points = if constant.first {
        [constant.zero_point, z_x]
    } else {
        [z_x, constant.zero_point]
    };
    let p = MulParams {
        input_shapes: [shape, shape],
        output_shape: shape,
        input_zero_points: zero_points,
        output_zero_point: z_y,
        multiplier: op.multiplier,
        shift: i32::from(op.shift),
        clamp,
        rounding: Rounding::Double,
    };
    let (a, b) = operands(constant);
    let mut y = vec![0i8; TABLE_LEN];
    mul(&p, &a, &b, &mut y).ok()?;
    Some(y.iter().map(|&v| v as u8).collect())
}

/// TFLM's int8 ADD of the activation and one constant (`AddParams` derived as its Prepare
/// does, each input with its own multiplier, so the order matters): the runtime's ADD kernel
/// over every input byte. `None` if the kernel refuses (it cannot for these lengths).
pub(crate) fn add_to(
    (s_x, z_x): (f32, i8),
    constant: Constant,
    (s_y, z_y): (f32, i8),
    clamp: Clamp,
) -> Option<Vec<u8>> {
    let (s1, s2, z1, z2) = if constant.first {
        (constant.scale, s_x, constant.zero_point, z_x)
    } else {
        (s_x, constant.scale, z_x, constant.zero_point)
    };
    let q = AddParams::new(s1, s2, s_y, Rounding::Double);
    let operand = |zero_point, (multiplier, shift): (i32, i8)| AddOperand {
        zero_point,
        multiplier,
        shift: i32::from(shift),
    };
    let p = KernelAddParams {
        inputs: [operand(z1, q.inputs[0]), operand(z2, q.inputs[1])],
        left_shift: q.left_shift,
        output_multiplier: q.output.0,
        output_shift: i32::from(q.output.1),
        output_zero_point: z_y,
        clamp,
        rounding: Rounding::Double,
    };
    let (a, b) = operands(constant);
    let mut y = vec![0i8; TABLE_LEN];
    add(&p, &a, &b, &mut y).ok()?;
    Some(y.iter().map(|&v| v as u8).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Clamp = Clamp {
        min: -128,
        max: 127,
    };

    fn at(table: &[u8], x: i8) -> i8 {
        table[usize::from(x as u8)] as i8
    }

    #[test]
    fn requantize_follows_tflm() {
        // Same scale, zero point moved by 5: a shift of every value, saturating at the top.
        let t = requantize(0.1, 0, 0.1, 5).unwrap();
        assert_eq!(at(&t, 0), 5);
        assert_eq!(at(&t, -128), -123);
        assert_eq!(at(&t, 122), 127);
        assert_eq!(at(&t, 127), 127);
        // Half the scale: doubles, (x − z_x)·2 + z_y.
        let t = requantize(0.2, -10, 0.1, 3).unwrap();
        assert_eq!(at(&t, -10), 3);
        assert_eq!(at(&t, 0), 23);
        assert_eq!(at(&t, 100), 127);
        // Twice the scale: multiplier 2^30, shift 0, so all rounding is SRDHM's, whose ties go
        // toward +∞: 3/2 → 2, −3/2 → −1, −1/2 → 0.
        let t = requantize(0.1, 0, 0.2, 0).unwrap();
        assert_eq!(
            (at(&t, 3), at(&t, -3), at(&t, 2), at(&t, -1)),
            (2, -1, 1, 0)
        );
        // A ratio past 2^30 has no MBQM TFLM can apply.
        assert!(requantize(1.0, 0, 1e-10, 0).is_none());
    }

    #[test]
    fn mul_by_a_constant_is_the_kernels_product() {
        // A hard-sigmoid's · 1/6 as the converter stores it: 1/6 at 127 from −128.
        let c = Constant {
            value: 127,
            zero_point: -128,
            scale: (1.0 / 6.0) / 255.0,
            first: false,
        };
        let (s_x, s_y) = (6.0f32 / 255.0, 1.0f32 / 255.0);
        let t = mul_by((s_x, -128), c, (s_y, -128), FULL).unwrap();
        // x at its zero point is 0 → 0 at −128; x = 127 (6.0) → 1.0 → 127.
        assert_eq!(at(&t, -128), -128);
        assert_eq!(at(&t, 127), 127);
        // Either operand order gives the same product.
        let swapped = mul_by(
            (s_x, -128),
            Constant { first: true, ..c },
            (s_y, -128),
            FULL,
        );
        assert_eq!(swapped.unwrap(), t);
        // A clamp holds.
        let clamp = Clamp { min: -100, max: 50 };
        let t = mul_by((s_x, -128), c, (s_y, -128), clamp).unwrap();
        assert!(t.iter().all(|&v| (-100..=50).contains(&(v as i8))));
    }

    #[test]
    fn add_of_a_constant_is_the_kernels_sum() {
        // x + 3 at equal scales 0.05 and zero points 0: the constant 3.0 is 60 steps.
        let c = Constant {
            value: 60,
            zero_point: 0,
            scale: 0.05,
            first: true,
        };
        let t = add_to((0.05, 0), c, (0.05, 0), FULL).unwrap();
        assert_eq!(at(&t, 0), 60);
        assert_eq!(at(&t, -60), 0);
        assert_eq!(at(&t, 67), 127);
        assert_eq!(at(&t, -128), -68);
    }
}
