//! Mean's validation rules (format 1.3), each triggered on purpose.

use std::vec::Vec;

use crate::builder::{BuildError, ModelBuilder, TensorSpec};
use crate::error::{FormatError, OpProblem};
use crate::header::{Header, MODEL_MAGIC};
use crate::model::Model;
use crate::op::{MAX_MEAN_CELLS, Mean, Op, OpKind};
use crate::tensor::Shape;

const GOOD: Mean = Mean {
    input: 0,
    output: 1,
    multiplier: 991_673_632,
    shift: -6,
};

/// A one-op model: input of `shape` (`in_bits`) → mean → `out` shape, `out_bits`.
fn mean_model(
    shape: Shape,
    mean: Mean,
    in_bits: u8,
    out: Shape,
    out_bits: u8,
) -> Result<Vec<u8>, BuildError> {
    let mut b = ModelBuilder::new(
        TensorSpec {
            shape,
            zero_point: -1,
            bits: in_bits,
        },
        0.05,
    );
    let y = b.tensor(TensorSpec {
        shape: out,
        zero_point: 3,
        bits: out_bits,
    });
    b.push(&Op::Mean(Mean { output: y, ..mean }))?;
    b.finish(y, 0.02)
}

fn problem(shape: Shape, mean: Mean, in_bits: u8, out: Shape, out_bits: u8) -> OpProblem {
    match mean_model(shape, mean, in_bits, out, out_bits) {
        Err(BuildError::Invalid(FormatError::Op {
            index: 0,
            kind: OpKind::Mean,
            problem,
        })) => problem,
        other => panic!("expected a mean error, got {other:?}"),
    }
}

#[test]
fn mean_is_validated_and_stamps_minor_three() {
    let shape = Shape::new(7, 7, 5);
    let pooled = Shape::new(1, 1, 5);
    let blob = mean_model(shape, GOOD, 8, pooled, 8).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, 3);
    assert_eq!(crate::FORMAT_MINOR, 6);
    assert_eq!(model.scratch_bytes(), 0);
    let op = model.ops().next().unwrap().unwrap();
    assert_eq!(op, Op::Mean(GOOD));
    assert_eq!(op.kind().name(), "mean");
    assert_eq!(op.inputs().as_slice(), &[0]);
    // Any input bit-width: |x − z_x| ≤ 255 holds for all of them.
    mean_model(shape, GOOD, 3, pooled, 8).unwrap();

    assert_eq!(
        problem(shape, GOOD, 8, Shape::new(1, 1, 4), 8),
        OpProblem::OutputShape {
            h: 1,
            w: 1,
            c: 5,
            found_h: 1,
            found_w: 1,
            found_c: 4
        }
    );
    assert_eq!(
        problem(shape, GOOD, 8, Shape::new(7, 7, 5), 8),
        OpProblem::OutputShape {
            h: 1,
            w: 1,
            c: 5,
            found_h: 7,
            found_w: 7,
            found_c: 5
        }
    );
    let e = problem(shape, GOOD, 8, pooled, 4);
    assert_eq!(e, OpProblem::MeanOutputBits(4));
    assert!(e.to_string().contains("8-bit"), "{e}");
    for multiplier in [0, -5, i32::MIN] {
        assert_eq!(
            problem(shape, Mean { multiplier, ..GOOD }, 8, pooled, 8),
            OpProblem::MeanMultiplier(multiplier)
        );
    }
    // Folded multipliers below 2^30 are TFLM's when its shift cap bites.
    mean_model(
        shape,
        Mean {
            multiplier: 1,
            ..GOOD
        },
        8,
        pooled,
        8,
    )
    .unwrap();
    for shift in [-32, 31, i8::MIN, i8::MAX] {
        assert_eq!(
            problem(shape, Mean { shift, ..GOOD }, 8, pooled, 8),
            OpProblem::Shift {
                index: 0,
                value: shift,
                min: -31,
                max: 30
            }
        );
    }
    for shift in [-31, 30] {
        mean_model(shape, Mean { shift, ..GOOD }, 8, pooled, 8).unwrap();
    }
}

/// `255·H·W` must fit i32: 8,421,504 positions do, one more does not. (Checked on the
/// validator directly: a blob that large would be 8 MB of activations.)
#[test]
fn mean_sums_must_fit_i32() {
    assert_eq!(MAX_MEAN_CELLS, 8_421_504);
    assert!(255 * MAX_MEAN_CELLS as i64 <= i32::MAX as i64);
    assert!(255 * (MAX_MEAN_CELLS as i64 + 1) > i32::MAX as i64);
    // 2,902 × 2,902 = 8,421,604: 100 positions over. Rewrite a small blob's input shape.
    let blob = mean_model(Shape::new(2, 2, 1), GOOD, 8, Shape::new(1, 1, 1), 8).unwrap();
    let (header, body) = Header::read_file(&blob, MODEL_MAGIC).unwrap();
    let mut payload: crate::model::Payload<'_> = postcard::from_bytes(body).unwrap();
    let mut tensors = payload.tensors.to_vec();
    // Record 0 (the input) starts with its shape (h, w, c as u16 LE) and holds its arena offset
    // at bytes 8..12: grow it and move it past the other tensors, into an arena grown to match,
    // so the tensor checks (which come first) pass and the op's own check speaks.
    tensors[0..2].copy_from_slice(&2902u16.to_le_bytes());
    tensors[2..4].copy_from_slice(&2902u16.to_le_bytes());
    tensors[8..12].copy_from_slice(&header.activation_bytes.to_le_bytes());
    payload.tensors = &tensors;
    let body = postcard::to_stdvec(&payload).unwrap();
    let sealed = Header::write_file(
        MODEL_MAGIC,
        header.minor,
        header.rounding,
        header.activation_bytes + 2902 * 2902,
        header.scratch_bytes,
        &body,
    );
    match Model::from_bytes(&sealed) {
        Err(FormatError::Op {
            index: 0,
            kind: OpKind::Mean,
            problem,
        }) => assert_eq!(
            problem,
            OpProblem::MeanCells {
                cells: 2902 * 2902,
                max: MAX_MEAN_CELLS
            }
        ),
        other => panic!("expected a mean error, got {other:?}"),
    }
}
