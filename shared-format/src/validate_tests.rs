//! Each validation rule, triggered on purpose: the error must name the place and the problem.

use std::vec::Vec;

use crate::builder::{BuildError, ModelBuilder, TensorSpec};
use crate::error::{FormatError, OpProblem, TensorProblem};
use crate::header::{Header, MODEL_MAGIC};
use crate::le::{LeI32s, i32s_to_le};
use crate::model::{Model, Payload};
use crate::op::{
    Clamp, Conv2d, DepthwiseConv2d, GlobalAvgPool, Linear, Op, OpKind, Requant, WeightScheme,
    Weights, Window,
};
use crate::packing::pack;
use crate::tensor::{RECORD_LEN, Shape};

/// Knobs for the base model: 4x4x2 → conv 3x3 → 4x4x3 → GAP → linear → 2.
struct Knobs {
    kernel: u8,
    conv_out: Shape,
    multiplier: i32,
    weight_bytes: Option<usize>,
    bias: i32,
    clamp: Clamp,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            kernel: 3,
            conv_out: Shape::new(4, 4, 3),
            multiplier: 1 << 30,
            weight_bytes: None,
            bias: 10,
            clamp: Clamp {
                min: -128,
                max: 127,
            },
        }
    }
}

fn build(k: Knobs) -> Result<Vec<u8>, BuildError> {
    let spec = |shape, bits| TensorSpec {
        shape,
        zero_point: 0,
        bits,
    };
    let mut b = ModelBuilder::new(spec(Shape::new(4, 4, 2), 8), 1.0);
    let n = 3 * k.kernel as usize * k.kernel as usize * 2;
    let weights = vec![1u8; k.weight_bytes.unwrap_or(n)];
    let bias = i32s_to_le(&[k.bias; 3]);
    let mults = i32s_to_le(&[k.multiplier]);
    let shifts = [(-1i8) as u8];
    let conv = b.tensor(spec(k.conv_out, 8));
    let pad = k.kernel / 2;
    b.push(&Op::Conv2d(Conv2d {
        input: 0,
        output: conv,
        window: Window::square(k.kernel, 1, 1, pad),
        weights: Weights {
            bits: 8,
            scheme: WeightScheme::PerTensorAffine,
            zero_point: 0,
            data: &weights,
        },
        bias: LeI32s::new(&bias),
        requant: Requant {
            multipliers: LeI32s::new(&mults),
            shifts: &shifts,
        },
        clamp: k.clamp,
    }))?;
    let gap = b.tensor(spec(Shape::new(1, 1, 3), 8));
    b.push(&Op::GlobalAvgPool(GlobalAvgPool {
        input: conv,
        output: gap,
        clamp: Clamp {
            min: -128,
            max: 127,
        },
    }))?;
    let lw = [1u8; 6];
    let lb = i32s_to_le(&[0; 2]);
    let out = b.tensor(spec(Shape::new(1, 1, 2), 8));
    b.push(&Op::Linear(Linear {
        input: gap,
        output: out,
        weights: Weights {
            bits: 8,
            scheme: WeightScheme::PerTensorAffine,
            zero_point: 0,
            data: &lw,
        },
        bias: LeI32s::new(&lb),
        requant: Requant {
            multipliers: LeI32s::new(&mults),
            shifts: &shifts,
        },
        clamp: Clamp {
            min: -128,
            max: 127,
        },
    }))?;
    b.finish(out, 0.5)
}

fn op_problem(k: Knobs) -> (u16, OpKind, OpProblem) {
    match build(k) {
        Err(BuildError::Invalid(FormatError::Op {
            index,
            kind,
            problem,
        })) => (index, kind, problem),
        other => panic!("expected an op error, got {other:?}"),
    }
}

/// Rewrites the payload of a valid blob and re-seals it with a fresh CRC.
fn reseal(blob: &[u8], edit: impl FnOnce(&mut Payload<'_>, &mut Vec<u8>)) -> Vec<u8> {
    let (header, body) = Header::read_file(blob, MODEL_MAGIC).unwrap();
    let mut payload: Payload<'_> = postcard::from_bytes(body).unwrap();
    let mut tensors = payload.tensors.to_vec();
    edit(&mut payload, &mut tensors);
    payload.tensors = &tensors;
    let body = postcard::to_stdvec(&payload).unwrap();
    Header::write_file(
        MODEL_MAGIC,
        header.minor,
        header.rounding,
        header.activation_bytes,
        header.scratch_bytes,
        &body,
    )
}

#[test]
fn base_model_is_valid() {
    let blob = build(Knobs::default()).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.op_count(), 3);
    assert_eq!(model.tensors().len(), 4);
}

#[test]
fn header_errors_say_what_is_wrong() {
    let blob = build(Knobs::default()).unwrap();
    let mut bad = blob.clone();
    bad[0] = b'X';
    let e = Model::from_bytes(&bad).unwrap_err();
    assert!(matches!(e, FormatError::BadMagic { .. }));
    assert!(e.to_string().contains("not a GHNQ model blob"), "{e}");

    let mut newer = blob.clone();
    newer[4..6].copy_from_slice(&2u16.to_le_bytes());
    let e = Model::from_bytes(&newer).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("2.0") && text.contains("1.x") && text.contains("update the runtime"),
        "{text}"
    );

    let e = Model::from_bytes(&blob[..blob.len() - 1]).unwrap_err();
    assert!(matches!(e, FormatError::PayloadLength { .. }), "{e}");
    assert!(matches!(
        Model::from_bytes(&blob[..10]).unwrap_err(),
        FormatError::Truncated { len: 10, need: 28 }
    ));

    let mut flipped = blob.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    assert!(matches!(
        Model::from_bytes(&flipped).unwrap_err(),
        FormatError::Checksum { .. }
    ));
}

#[test]
fn op_errors_name_the_op() {
    let (index, kind, problem) = op_problem(Knobs {
        conv_out: Shape::new(3, 4, 3),
        ..Knobs::default()
    });
    assert_eq!((index, kind), (0, OpKind::Conv2d));
    assert!(
        matches!(
            problem,
            OpProblem::OutputShape {
                h: 4,
                w: 4,
                c: 3,
                found_h: 3,
                ..
            }
        ),
        "{problem:?}"
    );

    let (_, _, problem) = op_problem(Knobs {
        kernel: 9,
        conv_out: Shape::new(4, 4, 3),
        ..Knobs::default()
    });
    assert!(
        matches!(problem, OpProblem::Kernel { h: 9, .. }),
        "{problem:?}"
    );

    let (_, _, problem) = op_problem(Knobs {
        multiplier: 12345,
        ..Knobs::default()
    });
    assert_eq!(
        problem,
        OpProblem::Multiplier {
            index: 0,
            value: 12345
        }
    );

    let (_, _, problem) = op_problem(Knobs {
        weight_bytes: Some(53),
        ..Knobs::default()
    });
    assert!(
        matches!(
            problem,
            OpProblem::WeightLength {
                expected: 54,
                found: 53,
                ..
            }
        ),
        "{problem:?}"
    );

    let (_, _, problem) = op_problem(Knobs {
        bias: i32::MAX - 100,
        ..Knobs::default()
    });
    assert!(
        matches!(problem, OpProblem::AccumulatorOverflow { channel: 0, .. }),
        "{problem:?}"
    );

    let (_, _, problem) = op_problem(Knobs {
        clamp: Clamp { min: 5, max: 4 },
        ..Knobs::default()
    });
    assert!(
        matches!(
            problem,
            OpProblem::Clamp {
                min: 5,
                max: 4,
                bits: 8
            }
        ),
        "{problem:?}"
    );

    let e = FormatError::Op {
        index: 7,
        kind: OpKind::Add,
        problem: OpProblem::NotLive(3),
    };
    assert_eq!(
        e.to_string(),
        "op 7 (add): input tensor 3 is not live at this op (produced later, or freed earlier in the plan)"
    );
}

#[test]
fn plan_errors_name_the_tensors() {
    let blob = build(Knobs::default()).unwrap();
    // Move tensor 2 (the GAP output, live at ops 1..=2) onto tensor 1 (live at ops 0..=1).
    let overlapping = reseal(&blob, |_, t| {
        let offset1: [u8; 4] = t[RECORD_LEN + 8..RECORD_LEN + 12].try_into().unwrap();
        t[2 * RECORD_LEN + 8..2 * RECORD_LEN + 12].copy_from_slice(&offset1);
    });
    assert_eq!(
        Model::from_bytes(&overlapping).unwrap_err(),
        FormatError::Overlap { a: 1, b: 2 }
    );

    // A tensor whose bytes run past the activation region.
    let outside = reseal(&blob, |_, t| {
        t[8..12].copy_from_slice(&u32::MAX.to_le_bytes())
    });
    let e = Model::from_bytes(&outside).unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::Tensor {
                tensor: 0,
                problem: TensorProblem::OutOfArena { .. }
            }
        ),
        "{e}"
    );

    // The linear layer reading a tensor freed before it runs.
    let freed = reseal(&blob, |_, t| {
        t[2 * RECORD_LEN + 14..2 * RECORD_LEN + 16].copy_from_slice(&1u16.to_le_bytes())
    });
    let e = Model::from_bytes(&freed).unwrap_err();
    assert_eq!(
        e,
        FormatError::Op {
            index: 2,
            kind: OpKind::Linear,
            problem: OpProblem::NotLive(2)
        }
    );

    // An output tensor id past the table.
    let missing = reseal(&blob, |p, _| p.output.tensor = 9);
    assert_eq!(
        Model::from_bytes(&missing).unwrap_err(),
        FormatError::Output(9)
    );
}

#[test]
fn builder_refuses_reading_before_writing() {
    let spec = TensorSpec {
        shape: Shape::new(1, 1, 2),
        zero_point: 0,
        bits: 8,
    };
    let mut b = ModelBuilder::new(spec, 1.0);
    let a = b.tensor(spec);
    let c = b.tensor(spec);
    let e = b
        .push(&Op::GlobalAvgPool(GlobalAvgPool {
            input: a,
            output: c,
            clamp: Clamp {
                min: -128,
                max: 127,
            },
        }))
        .unwrap_err();
    assert_eq!(e, BuildError::NotProduced { op: 0, tensor: a });
}

/// A one-op model: 3x3xC input → depthwise 3x3 "same" with the given `[kh][kw][c]` weights.
fn depthwise_model(c: u16, bits: u8, weights: &[i8], bias: &[i32]) -> Result<Vec<u8>, BuildError> {
    let spec = |shape| TensorSpec {
        shape,
        zero_point: 0,
        bits: 8,
    };
    let mut b = ModelBuilder::new(spec(Shape::new(3, 3, c)), 1.0);
    let out = b.tensor(spec(Shape::new(3, 3, c)));
    let data = pack(weights, bits).unwrap();
    let bias = i32s_to_le(bias);
    let mults = i32s_to_le(&vec![1 << 30; c as usize]);
    let shifts = vec![0u8; c as usize];
    b.push(&Op::DepthwiseConv2d(DepthwiseConv2d {
        input: 0,
        output: out,
        window: Window::square(3, 1, 1, 1),
        weights: Weights {
            bits,
            scheme: WeightScheme::PerChannelSymmetric,
            zero_point: 0,
            data: &data,
        },
        bias: LeI32s::new(&bias),
        requant: Requant {
            multipliers: LeI32s::new(&mults),
            shifts: &shifts,
        },
        clamp: Clamp {
            min: -128,
            max: 127,
        },
    }))?;
    b.finish(out, 1.0)
}

#[test]
fn depthwise_bound_sums_each_channel_at_stride_c() {
    // Weights `[ky][kx][c]` with C = 2: channel 0 is all −128, channel 1 all 0. Channel 0's
    // bound is 9·128·255; channel 1's is its bias alone. (Read channel-major, each channel would
    // get a mix of both, and both cases below would be judged wrongly.)
    let w: Vec<i8> = (0..9).flat_map(|_| [-128i8, 0]).collect();
    let room0 = i32::MAX - 9 * 128 * 255;
    depthwise_model(2, 8, &w, &[room0, i32::MAX]).expect("both channels exactly at the bound");
    match depthwise_model(2, 8, &w, &[room0 + 1, 0]) {
        Err(BuildError::Invalid(FormatError::Op {
            kind: OpKind::DepthwiseConv2d,
            problem: OpProblem::AccumulatorOverflow { channel: 0, bound },
            ..
        })) => assert_eq!(bound, i32::MAX as i64 + 1),
        other => panic!("expected channel 0 to overflow, got {other:?}"),
    }
}

#[test]
fn depthwise_scratch_is_one_channel_tile() {
    // Sub-byte weights: kh·kw·min(C, DEPTHWISE_TILE); 8-bit weights are read in place.
    let tile = crate::plan::DEPTHWISE_TILE;
    for (c, bits, want) in [
        (3u16, 4u8, 9 * 3),
        (40, 4, 9 * tile),
        (40, 2, 9 * tile),
        (40, 8, 0),
    ] {
        let blob =
            depthwise_model(c, bits, &vec![1; 9 * c as usize], &vec![0; c as usize]).unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        assert_eq!(model.scratch_bytes(), want, "C = {c}, W{bits}");
    }
}

/// A ReLU on a shared tensor is a 1×1 max pool with a clamp from the zero point: format 1.1.
/// Blobs without one keep minor 0, so 1.0 runtimes still read them.
#[test]
fn a_one_by_one_pool_stamps_minor_one_and_only_then() {
    let plain = build(Knobs::default()).unwrap();
    assert_eq!(Header::read_file(&plain, MODEL_MAGIC).unwrap().0.minor, 0);

    let spec = |shape| TensorSpec {
        shape,
        zero_point: -3,
        bits: 8,
    };
    let mut b = ModelBuilder::new(spec(Shape::new(2, 2, 1)), 1.0);
    let relu = b.tensor(spec(Shape::new(2, 2, 1)));
    b.push(&Op::MaxPool(crate::op::Pool {
        input: 0,
        output: relu,
        window: Window::square(1, 1, 1, 0),
        clamp: Clamp { min: -3, max: 127 },
    }))
    .unwrap();
    let blob = b.finish(relu, 1.0).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, 1);
    assert_eq!(crate::FORMAT_MINOR, 1);
}
