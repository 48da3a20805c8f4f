//! Each validation rule, triggered on purpose: the error must name the place and the problem.

use std::vec::Vec;

use crate::builder::{BuildError, ModelBuilder, TensorSpec};
use crate::error::{FormatError, OpProblem, TensorProblem};
use crate::header::Rounding;
use crate::header::{Header, MODEL_MAGIC};
use crate::le::{LeI32s, i32s_to_le};
use crate::model::{Model, Payload};
use crate::op::{
    Clamp, Conv2d, DepthwiseConv2d, GlobalAvgPool, Linear, MAX_SOFTMAX_CHANNELS, Op, OpKind,
    Padding, Requant, Softmax, WeightScheme, Weights, Window,
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
        kernel: 17,
        conv_out: Shape::new(4, 4, 3),
        ..Knobs::default()
    });
    assert!(
        matches!(problem, OpProblem::Kernel { h: 17, max: 16, .. }),
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
        let op = model.ops().next().unwrap().unwrap();
        let kernel = crate::plan::kernel_scratch_bytes(&op, model.tensors());
        assert_eq!(kernel, want as u64, "C = {c}, W{bits}");
        // Written in place over the input (format 1.6), the op's bands come after the kernel's.
        let bands = match crate::plan::aliased_input(&op, model.tensors()) {
            Some(x) => crate::plan::in_place_scratch(&op, model.tensors().get(x).unwrap().shape),
            None => 0,
        };
        assert_eq!(
            model.scratch_bytes() as u64,
            kernel + bands,
            "C = {c}, W{bits}"
        );
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
    assert_eq!(crate::FORMAT_MINOR, 6);
}

/// TFLM's parameters for CMSIS-NN's softmax test vector (input scale 1/255 as float32, beta 1):
/// `input_mult`, `input_left_shift` and `diff_min` as CMSIS-NN's generator, which runs TFLite,
/// recorded them. (Its older vector, scale 16/255, was derived from a double scale and records
/// 1,077,952,576; float32 16/255 rounds up, giving 1,077,952,640.)
#[test]
fn softmax_params_match_tflm() {
    let p = Softmax::from_scale(0, 1, 1.0, 16.0 / 255.0, Rounding::Double).unwrap();
    assert_eq!(
        (p.input_multiplier, p.input_left_shift, p.diff_min),
        (1_077_952_640, 23, -248)
    );
    let p = Softmax::from_scale(0, 1, 1.0, 1.0 / 255.0, Rounding::Double).unwrap();
    assert_eq!(
        (p.input_multiplier, p.input_left_shift, p.diff_min),
        (1_077_952_640, 19, -3968)
    );
    // The real multiplier is capped at 2^31 − 1 (double) or 2^30 − 1 (single rounding).
    let p = Softmax::from_scale(0, 1, 1.0, 1000.0, Rounding::Double).unwrap();
    assert_eq!(
        (p.input_multiplier, p.input_left_shift, p.diff_min),
        (i32::MAX, 31, 0)
    );
    let p = Softmax::from_scale(0, 1, 1.0, 1000.0, Rounding::Single).unwrap();
    assert_eq!(
        (p.input_multiplier, p.input_left_shift, p.diff_min),
        (i32::MAX - 1, 30, -1)
    );
    // QuantizeMultiplierGreaterThanOne refuses a real multiplier ≤ 1.
    assert!(Softmax::from_scale(0, 1, 1.0, 1e-9, Rounding::Double).is_none());
    assert!(Softmax::from_scale(0, 1, 1.0, f32::NAN, Rounding::Double).is_none());
    // CalculateInputRadius(5, shift) = floor(31·2^26 / 2^shift).
    assert_eq!(Softmax::input_radius(0), 31 << 26);
    assert_eq!(Softmax::input_radius(26), 31);
    assert_eq!(Softmax::input_radius(30), 1);
    assert_eq!(Softmax::input_radius(31), 0);
    assert_eq!(Softmax::input_radius(-1), 0);
}

/// A one-op model: input of `shape` → softmax, output as given.
fn softmax_model(
    shape: Shape,
    sm: Softmax,
    out_bits: u8,
    out_zero_point: i8,
    rounding: Rounding,
) -> Result<Vec<u8>, BuildError> {
    let mut b = ModelBuilder::new(
        TensorSpec {
            shape,
            zero_point: 3,
            bits: 8,
        },
        0.1,
    );
    b.rounding(rounding);
    let out = b.tensor(TensorSpec {
        shape,
        zero_point: out_zero_point,
        bits: out_bits,
    });
    b.push(&Op::Softmax(Softmax {
        input: 0,
        output: out,
        ..sm
    }))?;
    b.finish(out, 1.0 / 256.0)
}

#[test]
fn softmax_is_validated_and_stamps_minor_two() {
    let shape = Shape::new(2, 1, 10);
    let good = Softmax {
        input: 0,
        output: 1,
        input_multiplier: 1_077_952_576,
        input_left_shift: 23,
        diff_min: -248,
    };
    let blob = softmax_model(shape, good, 8, -128, Rounding::Double).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, 2);
    assert_eq!(model.scratch_bytes(), 0);
    let op = model.ops().next().unwrap().unwrap();
    assert_eq!(op, Op::Softmax(Softmax { output: 1, ..good }));
    assert_eq!(op.kind().name(), "softmax");

    let problem = |sm: Softmax, bits: u8, zp: i8, shape: Shape, rounding| match softmax_model(
        shape, sm, bits, zp, rounding,
    ) {
        Err(BuildError::Invalid(FormatError::Op {
            index: 0,
            kind: OpKind::Softmax,
            problem,
        })) => problem,
        other => panic!("expected a softmax error, got {other:?}"),
    };
    let d = Rounding::Double;
    assert_eq!(
        problem(good, 8, -127, shape, d),
        OpProblem::SoftmaxOutput {
            bits: 8,
            zero_point: -127
        }
    );
    assert_eq!(
        problem(good, 4, -8, shape, d),
        OpProblem::SoftmaxOutput {
            bits: 4,
            zero_point: -8
        }
    );
    let e = problem(good, 8, 0, shape, d).to_string();
    assert!(e.contains("zero point -128"), "{e}");
    assert_eq!(
        problem(
            Softmax {
                input_multiplier: (1 << 30) - 1,
                ..good
            },
            8,
            -128,
            shape,
            d
        ),
        OpProblem::SoftmaxMultiplier((1 << 30) - 1)
    );
    assert_eq!(
        problem(
            Softmax {
                input_left_shift: -1,
                ..good
            },
            8,
            -128,
            shape,
            d
        ),
        OpProblem::Shift {
            index: 0,
            value: -1,
            min: 0,
            max: 31
        }
    );
    // Shift 31 is TFLM's (double rounding) at the multiplier cap; single rounding cannot run it.
    let at_cap = Softmax {
        input_multiplier: i32::MAX,
        input_left_shift: 31,
        diff_min: 0,
        ..good
    };
    softmax_model(shape, at_cap, 8, -128, d).unwrap();
    assert_eq!(
        problem(at_cap, 8, -128, shape, Rounding::Single),
        OpProblem::Shift {
            index: 0,
            value: 31,
            min: 0,
            max: 30
        }
    );
    for diff_min in [1, -249, i32::MIN] {
        assert_eq!(
            problem(Softmax { diff_min, ..good }, 8, -128, shape, d),
            OpProblem::SoftmaxDiffMin {
                value: diff_min,
                min: -248
            }
        );
    }
    // Any diff_min between −radius and 0 is valid (0 keeps only the maximum).
    softmax_model(
        shape,
        Softmax {
            diff_min: 0,
            ..good
        },
        8,
        -128,
        d,
    )
    .unwrap();

    let wide = Shape::new(1, 1, MAX_SOFTMAX_CHANNELS + 1);
    assert_eq!(
        problem(good, 8, -128, wide, d),
        OpProblem::SoftmaxChannels {
            channels: MAX_SOFTMAX_CHANNELS + 1,
            max: MAX_SOFTMAX_CHANNELS
        }
    );
    softmax_model(Shape::new(1, 1, MAX_SOFTMAX_CHANNELS), good, 8, -128, d).unwrap();

    // The output must have the input's shape.
    let mut b = ModelBuilder::new(
        TensorSpec {
            shape,
            zero_point: 0,
            bits: 8,
        },
        0.1,
    );
    let out = b.tensor(TensorSpec {
        shape: Shape::new(1, 1, 10),
        zero_point: -128,
        bits: 8,
    });
    b.push(&Op::Softmax(Softmax {
        output: out,
        ..good
    }))
    .unwrap();
    assert!(matches!(
        b.finish(out, 1.0),
        Err(BuildError::Invalid(FormatError::Op {
            problem: OpProblem::OutputShape { h: 2, .. },
            ..
        }))
    ));
}

/// The keyword-spotting DS-CNN's first layer: a 10×4 conv, stride 2, TFLite SAME padding (4
/// above, 5 below, 1 left, 2 right) on 49×10×1 → 25×5×64. Kernels above 7 need format 1.2;
/// 7 and below keep the blob at 1.0.
#[test]
fn large_non_square_kernels_validate_and_stamp_minor_two() {
    let conv = |window: Window, input: Shape, cout: u16, depthwise: bool| {
        let spec = |shape| TensorSpec {
            shape,
            zero_point: -1,
            bits: 8,
        };
        let mut b = ModelBuilder::new(spec(input), 1.0);
        let out_shape = Shape::new(
            window.output_h(input.h as u32).unwrap() as u16,
            window.output_w(input.w as u32).unwrap() as u16,
            cout,
        );
        let out = b.tensor(spec(out_shape));
        let per_channel = window.kernel_h as usize
            * window.kernel_w as usize
            * if depthwise { 1 } else { input.c as usize };
        let weights = vec![1u8; per_channel * cout as usize];
        let bias = i32s_to_le(&vec![0; cout as usize]);
        let mults = i32s_to_le(&[1 << 30]);
        let shifts = [(-8i8) as u8];
        let weights = Weights {
            bits: 8,
            scheme: WeightScheme::PerTensorAffine,
            zero_point: 0,
            data: &weights,
        };
        let requant = Requant {
            multipliers: LeI32s::new(&mults),
            shifts: &shifts,
        };
        let clamp = Clamp {
            min: -128,
            max: 127,
        };
        let op = if depthwise {
            Op::DepthwiseConv2d(DepthwiseConv2d {
                input: 0,
                output: out,
                window,
                weights,
                bias: LeI32s::new(&bias),
                requant,
                clamp,
            })
        } else {
            Op::Conv2d(Conv2d {
                input: 0,
                output: out,
                window,
                weights,
                bias: LeI32s::new(&bias),
                requant,
                clamp,
            })
        };
        b.push(&op)?;
        b.finish(out, 1.0).map(|blob| (blob, out_shape))
    };
    let ds_cnn = Window {
        kernel_h: 10,
        kernel_w: 4,
        stride_h: 2,
        stride_w: 2,
        dilation_h: 1,
        dilation_w: 1,
        padding: Padding {
            top: 4,
            left: 1,
            bottom: 5,
            right: 2,
        },
    };
    let (blob, out) = conv(ds_cnn, Shape::new(49, 10, 1), 64, false).unwrap();
    assert_eq!(out, Shape::new(25, 5, 64));
    assert_eq!(Model::from_bytes(&blob).unwrap().header().minor, 2);

    let (blob, _) = conv(Window::square(16, 1, 1, 8), Shape::new(16, 16, 3), 3, true).unwrap();
    assert_eq!(Model::from_bytes(&blob).unwrap().header().minor, 2);
    let (blob, _) = conv(Window::square(7, 1, 1, 3), Shape::new(8, 8, 2), 2, false).unwrap();
    assert_eq!(Model::from_bytes(&blob).unwrap().header().minor, 0);

    match conv(Window::square(17, 1, 1, 8), Shape::new(17, 17, 1), 1, true) {
        Err(BuildError::Invalid(FormatError::Op {
            kind: OpKind::DepthwiseConv2d,
            problem: OpProblem::Kernel { h: 17, max: 16, .. },
            ..
        })) => {}
        other => panic!("expected a kernel error, got {other:?}"),
    }
}
