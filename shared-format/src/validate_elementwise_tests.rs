//! Validation of the format 1.4 elementwise ops, each rule triggered on purpose.

use std::vec::Vec;

use crate::builder::{BuildError, ModelBuilder, TensorSpec};
use crate::error::{FormatError, OpProblem};
use crate::header::Rounding;
use crate::model::Model;
use crate::op::{Clamp, HardSwish, Logistic, MAX_MUL_SHIFT, Mul, Op, OpKind};
use crate::tensor::Shape;

const FULL: Clamp = Clamp {
    min: i8::MIN,
    max: i8::MAX,
};

const GOOD_MUL: Mul = Mul {
    inputs: [0, 1],
    output: 2,
    multiplier: 1 << 30,
    shift: -6,
    clamp: FULL,
};

/// Input `map` → global average pool → `gate` (1×1×C) → `Mul(mul.inputs[0], gate)` → `out`.
fn mul_model(map: Shape, gate: Shape, out: Shape, mul: Mul) -> Result<Vec<u8>, BuildError> {
    let mut b = ModelBuilder::new(
        TensorSpec {
            shape: map,
            zero_point: -1,
            bits: 8,
        },
        0.05,
    );
    let g = b.tensor(TensorSpec {
        shape: gate,
        zero_point: -1,
        bits: 8,
    });
    b.push(&Op::GlobalAvgPool(crate::op::GlobalAvgPool {
        input: 0,
        output: g,
        clamp: FULL,
    }))?;
    let y = b.tensor(TensorSpec {
        shape: out,
        zero_point: 4,
        bits: 8,
    });
    b.push(&Op::Mul(Mul {
        inputs: [mul.inputs[0], g],
        output: y,
        ..mul
    }))?;
    b.finish(y, 0.02)
}

fn mul_problem(map: Shape, gate: Shape, out: Shape, mul: Mul) -> OpProblem {
    match mul_model(map, gate, out, mul) {
        Err(BuildError::Invalid(FormatError::Op {
            index: 1,
            kind: OpKind::Mul,
            problem,
        })) => problem,
        other => panic!("expected a mul error, got {other:?}"),
    }
}

#[test]
fn mul_broadcasts_a_gate_and_stamps_minor_four() {
    let map = Shape::new(4, 3, 5);
    let gate = Shape::new(1, 1, 5);
    let blob = mul_model(map, gate, map, GOOD_MUL).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, 4);
    assert_eq!(crate::FORMAT_MINOR, 6);
    let op = model.ops().nth(1).unwrap().unwrap();
    assert_eq!(op.kind().name(), "mul");
    assert_eq!(op.inputs().as_slice(), &[0, 1]);
    // The extreme shift that keeps 255² · 2^shift inside i32.
    let edge = Mul {
        shift: MAX_MUL_SHIFT,
        ..GOOD_MUL
    };
    assert!(mul_model(map, gate, map, edge).is_ok());
    // A zero multiplier is QuantizeMultiplier's output for tiny ratios: valid.
    let zero = Mul {
        multiplier: 0,
        ..GOOD_MUL
    };
    assert!(mul_model(map, gate, map, zero).is_ok());
}

#[test]
fn mul_refuses_shapes_that_do_not_broadcast() {
    let map = Shape::new(4, 3, 5);
    let gate = Shape::new(1, 1, 5);
    // The output must be the larger shape.
    assert!(matches!(
        mul_problem(map, gate, Shape::new(4, 3, 6), GOOD_MUL),
        OpProblem::InputShape(_)
    ));
    assert!(matches!(
        mul_problem(map, gate, Shape::new(1, 1, 5), GOOD_MUL),
        OpProblem::InputShape(0)
    ));
    // Both inputs 1×1 along H and W, the output larger: broadcasting only repeats what is there.
    let blob = {
        let mut b = ModelBuilder::new(
            TensorSpec {
                shape: gate,
                zero_point: 0,
                bits: 8,
            },
            0.05,
        );
        let y = b.tensor(TensorSpec {
            shape: map,
            zero_point: 0,
            bits: 8,
        });
        b.push(&Op::Mul(Mul {
            inputs: [0, 0],
            output: y,
            ..GOOD_MUL
        }))
        .and_then(|_| b.finish(y, 0.1))
    };
    assert!(matches!(
        blob,
        Err(BuildError::Invalid(FormatError::Op {
            problem: OpProblem::OutputShape { .. },
            ..
        }))
    ));
}

#[test]
fn mul_refuses_multipliers_and_shifts_tflm_cannot_run() {
    let map = Shape::new(2, 2, 3);
    let gate = Shape::new(1, 1, 3);
    for (multiplier, shift) in [(1 << 29, 0), (-5, 0), (1 << 30, 16), (1 << 30, -32)] {
        let p = mul_problem(
            map,
            gate,
            map,
            Mul {
                multiplier,
                shift,
                ..GOOD_MUL
            },
        );
        assert!(
            matches!(p, OpProblem::Multiplier { .. } | OpProblem::Shift { .. }),
            "{multiplier} {shift}: {p:?}"
        );
    }
    // A clamp outside the output's range.
    let p = mul_problem(
        map,
        gate,
        map,
        Mul {
            clamp: Clamp { min: 10, max: 3 },
            ..GOOD_MUL
        },
    );
    assert!(matches!(p, OpProblem::Clamp { .. }), "{p:?}");
}

/// TFLM's parameters for input scale 1/16 (`frexp(2^−4 · 2^27) = 0.5 · 2^24`, radius
/// `floor(15 · 2^27 / 2^24) = 120`).
const GOOD_LOGISTIC: Logistic = Logistic {
    input: 0,
    output: 1,
    input_multiplier: 1 << 30,
    input_left_shift: 24,
    input_range_radius: 120,
};

/// A one-op model: input of `shape` → logistic → `out` (`out_bits`, `out_zero_point`).
fn logistic_model(
    shape: Shape,
    op: Logistic,
    out: Shape,
    out_bits: u8,
    out_zero_point: i8,
    rounding: Rounding,
) -> Result<Vec<u8>, BuildError> {
    let mut b = ModelBuilder::new(
        TensorSpec {
            shape,
            zero_point: 7,
            bits: 8,
        },
        1.0 / 16.0,
    );
    b.rounding(rounding);
    let y = b.tensor(TensorSpec {
        shape: out,
        zero_point: out_zero_point,
        bits: out_bits,
    });
    b.push(&Op::Logistic(Logistic { output: y, ..op }))?;
    b.finish(y, 1.0 / 256.0)
}

fn logistic_problem(
    op: Logistic,
    out_bits: u8,
    out_zero_point: i8,
    rounding: Rounding,
) -> OpProblem {
    let s = Shape::new(2, 3, 4);
    match logistic_model(s, op, s, out_bits, out_zero_point, rounding) {
        Err(BuildError::Invalid(FormatError::Op {
            index: 0,
            kind: OpKind::Logistic,
            problem,
        })) => problem,
        other => panic!("expected a logistic error, got {other:?}"),
    }
}

#[test]
fn logistic_is_validated_and_stamps_minor_four() {
    let s = Shape::new(2, 3, 4);
    let blob = logistic_model(s, GOOD_LOGISTIC, s, 8, -128, Rounding::Double).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, 4);
    let op = model.ops().next().unwrap().unwrap();
    assert_eq!(op, Op::Logistic(GOOD_LOGISTIC));
    assert_eq!(op.kind().name(), "logistic");
    // A smaller radius only saturates more: valid. Shift 31 with radius 0 (scale ≥ 8) too.
    let small = Logistic {
        input_range_radius: 0,
        ..GOOD_LOGISTIC
    };
    assert!(logistic_model(s, small, s, 8, -128, Rounding::Double).is_ok());
    let wide = Logistic {
        input_left_shift: 31,
        input_range_radius: 0,
        ..GOOD_LOGISTIC
    };
    assert!(logistic_model(s, wide, s, 8, -128, Rounding::Double).is_ok());
    // The host derivation gives exactly these.
    assert_eq!(
        Logistic::from_scale(0, 1, 1.0 / 16.0, Rounding::Double),
        Some(GOOD_LOGISTIC)
    );
}

#[test]
fn logistic_refuses_what_tflm_cannot_run() {
    // The output quantization is fixed.
    assert!(matches!(
        logistic_problem(GOOD_LOGISTIC, 8, 0, Rounding::Double),
        OpProblem::FixedOutput {
            bits: 8,
            zero_point: 0
        }
    ));
    assert!(matches!(
        logistic_problem(GOOD_LOGISTIC, 4, -8, Rounding::Double),
        OpProblem::FixedOutput { bits: 4, .. }
    ));
    // A radius past CalculateInputRadius would overflow the rescaling; a negative one is
    // nonsense.
    for radius in [121, -1] {
        let op = Logistic {
            input_range_radius: radius,
            ..GOOD_LOGISTIC
        };
        assert!(matches!(
            logistic_problem(op, 8, -128, Rounding::Double),
            OpProblem::InputRadius { max: 120, .. }
        ));
    }
    // Multipliers below 2^30 (negative included), shifts outside 0..=31, and 31 with single
    // rounding.
    for (m, shift, rounding) in [
        (1 << 29, 24, Rounding::Double),
        (-1, 24, Rounding::Double),
        (1 << 30, -1, Rounding::Double),
        (1 << 30, 32, Rounding::Double),
        (1 << 30, 31, Rounding::Single),
    ] {
        let op = Logistic {
            input_multiplier: m,
            input_left_shift: shift,
            input_range_radius: 0,
            ..GOOD_LOGISTIC
        };
        let p = logistic_problem(op, 8, -128, rounding);
        assert!(
            matches!(p, OpProblem::Multiplier { .. } | OpProblem::Shift { .. }),
            "{m} {shift}: {p:?}"
        );
    }
    // The shape must be the input's.
    let s = Shape::new(2, 3, 4);
    assert!(matches!(
        logistic_model(
            s,
            GOOD_LOGISTIC,
            Shape::new(2, 3, 5),
            8,
            -128,
            Rounding::Double
        ),
        Err(BuildError::Invalid(FormatError::Op {
            problem: OpProblem::OutputShape { .. },
            ..
        }))
    ));
}

/// TFLM's parameters for input scale 3/64, output scale 3/4096 (reluish ratio 4, output 1/2).
const GOOD_HARD_SWISH: HardSwish = HardSwish {
    input: 0,
    output: 1,
    reluish_multiplier: 1 << 14,
    reluish_shift: 3,
    output_multiplier: 1 << 14,
    output_shift: 0,
};

fn hard_swish_model(op: HardSwish, out: Shape, out_bits: u8) -> Result<Vec<u8>, BuildError> {
    let mut b = ModelBuilder::new(
        TensorSpec {
            shape: Shape::new(3, 3, 2),
            zero_point: -7,
            bits: 8,
        },
        3.0 / 64.0,
    );
    let y = b.tensor(TensorSpec {
        shape: out,
        zero_point: 3,
        bits: out_bits,
    });
    b.push(&Op::HardSwish(HardSwish { output: y, ..op }))?;
    b.finish(y, 3.0 / 4096.0)
}

fn hard_swish_problem(op: HardSwish, out: Shape, out_bits: u8) -> OpProblem {
    match hard_swish_model(op, out, out_bits) {
        Err(BuildError::Invalid(FormatError::Op {
            index: 0,
            kind: OpKind::HardSwish,
            problem,
        })) => problem,
        other => panic!("expected a hard swish error, got {other:?}"),
    }
}

#[test]
fn hard_swish_is_validated_and_stamps_minor_four() {
    let s = Shape::new(3, 3, 2);
    let blob = hard_swish_model(GOOD_HARD_SWISH, s, 8).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, 4);
    let op = model.ops().next().unwrap().unwrap();
    assert_eq!(op, Op::HardSwish(GOOD_HARD_SWISH));
    assert_eq!(op.kind().name(), "hard_swish");
    assert_eq!(
        HardSwish::from_scales(0, 1, 3.0 / 64.0, 3.0 / 4096.0, Rounding::Double),
        Some(GOOD_HARD_SWISH)
    );
    // The extremes TFLM can produce: zero multipliers, exponents −31 and 31 / 0.
    let edge = HardSwish {
        reluish_multiplier: 0,
        reluish_shift: 31,
        output_multiplier: i16::MAX,
        output_shift: -31,
        ..GOOD_HARD_SWISH
    };
    assert!(hard_swish_model(edge, s, 8).is_ok());
}

#[test]
fn hard_swish_refuses_what_tflm_cannot_run() {
    let s = Shape::new(3, 3, 2);
    assert!(matches!(
        hard_swish_problem(GOOD_HARD_SWISH, s, 4),
        OpProblem::FixedOutput { bits: 4, .. }
    ));
    assert!(matches!(
        hard_swish_problem(GOOD_HARD_SWISH, Shape::new(3, 3, 3), 8),
        OpProblem::OutputShape { .. }
    ));
    for (rm, om) in [((1 << 14) - 1, 1 << 14), (1 << 14, -1)] {
        let op = HardSwish {
            reluish_multiplier: rm,
            output_multiplier: om,
            ..GOOD_HARD_SWISH
        };
        assert!(matches!(
            hard_swish_problem(op, s, 8),
            OpProblem::Multiplier16 { .. }
        ));
    }
    for (rs, os) in [(32, 0), (-32, 0), (3, 1), (3, -32)] {
        let op = HardSwish {
            reluish_shift: rs,
            output_shift: os,
            ..GOOD_HARD_SWISH
        };
        assert!(matches!(
            hard_swish_problem(op, s, 8),
            OpProblem::Shift { .. }
        ));
    }
}
