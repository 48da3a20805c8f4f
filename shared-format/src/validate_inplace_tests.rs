//! In-place ops (format 1.6): the planner writes an output over a dying input where that lowers
//! the arena, and validation admits exactly those aliasings and refuses every other overlap.

use std::vec::Vec;

use crate::builder::{BuildError, ModelBuilder, TensorSpec};
use crate::error::FormatError;
use crate::header::{Header, MODEL_MAGIC};
use crate::le::{LeI32s, i32s_to_le};
use crate::model::{Model, Payload};
use crate::op::{
    Add, AddInput, Clamp, Conv2d, DepthwiseConv2d, GlobalAvgPool, Op, Pool, Requant, WeightScheme,
    Weights, Window,
};
use crate::plan::{IN_PLACE_MINOR, aliased_input, in_place_scratch};
use crate::tensor::{Shape, TensorId, TensorRecord};

const FULL: Clamp = Clamp {
    min: -128,
    max: 127,
};

fn spec(h: u16, w: u16, c: u16) -> TensorSpec {
    TensorSpec {
        shape: Shape::new(h, w, c),
        zero_point: 0,
        bits: 8,
    }
}

/// Weights, bias and requantization tables the ops borrow.
struct Tables {
    weights: Vec<u8>,
    bias: Vec<u8>,
    mults: Vec<u8>,
    shifts: Vec<u8>,
}

fn tables() -> Tables {
    Tables {
        weights: vec![1; 64 * 9 * 64],
        bias: i32s_to_le(&[0; 64]),
        mults: i32s_to_le(&[1 << 30]),
        shifts: vec![(-8i8) as u8],
    }
}

fn conv<'t>(
    t: &'t Tables,
    input: TensorId,
    output: TensorId,
    cin: usize,
    cout: usize,
    window: Window,
) -> Op<'t> {
    let n = cout * window.kernel_h as usize * window.kernel_w as usize * cin;
    Op::Conv2d(Conv2d {
        input,
        output,
        window,
        weights: Weights {
            bits: 8,
            scheme: WeightScheme::PerTensorAffine,
            zero_point: 0,
            data: &t.weights[..n],
        },
        bias: LeI32s::new(&t.bias[..4 * cout]),
        requant: Requant {
            multipliers: LeI32s::new(&t.mults),
            shifts: &t.shifts,
        },
        clamp: FULL,
    })
}

fn add(a: TensorId, b: TensorId, output: TensorId) -> Op<'static> {
    let input = |tensor| AddInput {
        tensor,
        multiplier: 1 << 30,
        shift: 0,
    };
    Op::Add(Add {
        inputs: [input(a), input(b)],
        output,
        left_shift: 20,
        output_multiplier: 1 << 30,
        output_shift: -19,
        clamp: FULL,
    })
}

/// ResNet-8's first stack: stem conv → x0 (32×32×16) → conv → conv → add(x0, ·) → GAP.
fn resnet_stack(t: &Tables) -> Vec<u8> {
    let mut b = ModelBuilder::new(spec(32, 32, 3), 1.0);
    let x0 = b.tensor(spec(32, 32, 16));
    let c1 = b.tensor(spec(32, 32, 16));
    let c2 = b.tensor(spec(32, 32, 16));
    let s = b.tensor(spec(32, 32, 16));
    let g = b.tensor(spec(1, 1, 16));
    let same = Window::square(3, 1, 1, 1);
    b.push(&conv(t, 0, x0, 3, 16, same)).unwrap();
    b.push(&conv(t, x0, c1, 16, 16, same)).unwrap();
    b.push(&conv(t, c1, c2, 16, 16, same)).unwrap();
    b.push(&add(x0, c2, s)).unwrap();
    b.push(&Op::GlobalAvgPool(GlobalAvgPool {
        input: s,
        output: g,
        clamp: FULL,
    }))
    .unwrap();
    b.finish(g, 1.0).unwrap()
}

/// Rewrites the tensor table (and the minor) of a blob and re-seals it with a fresh CRC.
fn reseal(blob: &[u8], minor: Option<u16>, edit: impl FnOnce(&mut Vec<TensorRecord>)) -> Vec<u8> {
    let (header, body) = Header::read_file(blob, MODEL_MAGIC).unwrap();
    let mut payload: Payload<'_> = postcard::from_bytes(body).unwrap();
    let model = Model::from_bytes(blob).unwrap();
    let mut records: Vec<TensorRecord> = model.tensors().iter().collect();
    edit(&mut records);
    let table: Vec<u8> = records.iter().flat_map(|r| r.to_bytes()).collect();
    payload.tensors = &table;
    let body = postcard::to_stdvec(&payload).unwrap();
    Header::write_file(
        MODEL_MAGIC,
        minor.unwrap_or(header.minor),
        header.rounding,
        header.activation_bytes,
        header.scratch_bytes,
        &body,
    )
}

/// The ResNet stack ([`resnet_stack`]) with its tensor table edited by `edit`, re-sealed (at
/// `minor`, if given).
fn edited_stack(minor: Option<u16>, edit: impl FnOnce(&mut Vec<TensorRecord>)) -> Vec<u8> {
    reseal(&resnet_stack(&tables()), minor, edit)
}

/// Validation's refusal of the ResNet stack with its tensor table edited by `edit`.
#[track_caller]
fn refusal(edit: impl FnOnce(&mut Vec<TensorRecord>)) -> FormatError {
    Model::from_bytes(&edited_stack(None, edit)).unwrap_err()
}

/// Every pair of tensors live at once either shares no byte or is an in-place pair: the same
/// bytes, the first dying at the op that produces the second from it.
fn assert_plan_sound(model: &Model<'_>) -> usize {
    let records: Vec<TensorRecord> = model.tensors().iter().collect();
    let ops: Vec<Op<'_>> = model.ops().map(Result::unwrap).collect();
    let mut aliased = 0;
    for (a, ta) in records.iter().enumerate() {
        for (b, tb) in records.iter().enumerate().skip(a + 1) {
            let time = ta.first_op <= tb.last_op && tb.first_op <= ta.last_op;
            let space = ta.range().start < tb.range().end && tb.range().start < ta.range().end;
            if !(time && space) {
                continue;
            }
            assert_eq!(ta.range(), tb.range(), "{a} and {b} overlap partially");
            assert_eq!(
                ta.last_op, tb.first_op,
                "{a} does not die where {b} is made"
            );
            let op = &ops[tb.first_op as usize];
            assert_eq!(op.output() as usize, b);
            assert_eq!(aliased_input(op, model.tensors()), Some(a as TensorId));
            aliased += 1;
        }
    }
    aliased
}

#[test]
fn resnet_stack_runs_its_second_conv_and_its_add_in_place() {
    let t = tables();
    let blob = resnet_stack(&t);
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, IN_PLACE_MINOR);
    // x0 and c1 (= c2 = s) at 16 KiB each, plus one band: four rows of 512 bytes and the row
    // of lag a 3×3 "same" convolution needs. Without in-place ops: 48 KiB.
    assert_eq!(model.activation_bytes(), 2 * 16384);
    assert_eq!(model.scratch_bytes(), 5 * 512);
    let records: Vec<TensorRecord> = model.tensors().iter().collect();
    assert_eq!(
        records[3].offset, records[2].offset,
        "conv2 over conv1's output"
    );
    // The add may take either dying input's bytes: x0's or conv2's.
    assert!(
        [records[1].offset, records[3].offset].contains(&records[4].offset),
        "the add over one of its inputs"
    );
    assert_ne!(records[2].offset, records[1].offset);
    assert_eq!(assert_plan_sound(&model), 2);
    let ops: Vec<Op<'_>> = model.ops().map(Result::unwrap).collect();
    assert_eq!(
        in_place_scratch(&ops[3], records[3].shape),
        crate::plan::IN_PLACE_ADD_CHUNK
    );
}

#[test]
fn a_model_that_gains_nothing_keeps_its_plain_plan() {
    // A stride-2 chain: nothing can run in place, the blob stays 1.0.
    let t = tables();
    let mut b = ModelBuilder::new(spec(8, 8, 4), 1.0);
    let y = b.tensor(spec(4, 4, 16));
    b.push(&conv(&t, 0, y, 4, 16, Window::square(3, 2, 1, 1)))
        .unwrap();
    let blob = b.finish(y, 1.0).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, 0);
    assert_eq!(assert_plan_sound(&model), 0);
}

/// Depthwise 3×3 → pointwise 1×1 → depthwise → pointwise → GAP over `h×w×c` maps.
fn separable_chain(t: &Tables, h: u16, w: u16, c: u16) -> Vec<u8> {
    let n = c as usize;
    let mut b = ModelBuilder::new(spec(h, w, c), 1.0);
    let mut x = 0;
    for i in 0..4 {
        let y = b.tensor(spec(h, w, c));
        let op = if i % 2 == 0 {
            Op::DepthwiseConv2d(DepthwiseConv2d {
                input: x,
                output: y,
                window: Window::square(3, 1, 1, 1),
                weights: Weights {
                    bits: 8,
                    scheme: WeightScheme::PerTensorAffine,
                    zero_point: 0,
                    data: &t.weights[..9 * n],
                },
                bias: LeI32s::new(&t.bias[..4 * n]),
                requant: Requant {
                    multipliers: LeI32s::new(&t.mults),
                    shifts: &t.shifts,
                },
                clamp: FULL,
            })
        } else {
            conv(t, x, y, n, n, Window::square(1, 1, 1, 0))
        };
        b.push(&op).unwrap();
        x = y;
    }
    let g = b.tensor(spec(1, 1, c));
    b.push(&Op::GlobalAvgPool(GlobalAvgPool {
        input: x,
        output: g,
        clamp: FULL,
    }))
    .unwrap();
    b.finish(g, 1.0).unwrap()
}

#[test]
fn depthwise_and_pointwise_chains_run_in_place() {
    let t = tables();
    // 32×16×32: bands of 8 rows (128 pixels), 9 rows of scratch with the lag.
    let blob = separable_chain(&t, 32, 16, 32);
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, IN_PLACE_MINOR);
    // One map, plus the pooled 32 bytes beside the last one.
    assert_eq!(model.activation_bytes(), 16384 + 32);
    assert_eq!(model.scratch_bytes(), 9 * 512);
    assert_eq!(assert_plan_sound(&model), 4);
    // DS-CNN's 25×5×64 maps: a band of 128 pixels is the whole map, nothing to gain.
    let blob = separable_chain(&t, 25, 5, 64);
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, 0);
    assert_eq!(model.arena_bytes(), 2 * 8000);
}

#[test]
fn aliasing_is_refused_before_format_1_6() {
    let old = edited_stack(Some(IN_PLACE_MINOR - 1), |_| {});
    assert!(matches!(
        Model::from_bytes(&old).unwrap_err(),
        FormatError::Overlap { .. }
    ));
    Model::from_bytes(&edited_stack(None, |_| {})).expect("the same blob at 1.6");
}

#[test]
fn aliasing_an_input_that_lives_on_is_refused() {
    // conv1's output (tensor 2) is overwritten by conv2 (tensor 3); claim a later reader.
    assert_eq!(
        refusal(|r| r[2].last_op += 1),
        FormatError::Overlap { a: 2, b: 3 }
    );
}

#[test]
fn aliasing_a_tensor_the_op_does_not_read_is_refused() {
    // conv2 (op 2, output 3) reads c1 (2), not x0 (1), which is live until the add.
    let bad = refusal(|r| {
        r[3].offset = r[1].offset;
        r[4].offset = r[1].offset;
    });
    assert_eq!(bad, FormatError::Overlap { a: 1, b: 3 });
    // The add's output may take either dying input's bytes: x0's is as good as conv2's.
    let other = edited_stack(None, |r| r[4].offset = r[1].offset);
    Model::from_bytes(&other).expect("the add over x0");
    // An op's output over an input that is still read later: conv1 over x0.
    assert_eq!(
        refusal(|r| r[2].offset = r[1].offset),
        FormatError::Overlap { a: 1, b: 2 }
    );
}

#[test]
fn partial_overlaps_are_refused() {
    let bad = refusal(|r| {
        // Four bytes off conv1's output, inside the arena either way.
        r[3].offset = if r[2].offset >= 4 {
            r[2].offset - 4
        } else {
            r[2].offset + 4
        };
    });
    assert!(matches!(bad, FormatError::Overlap { .. }));
}

/// Ops that cannot run in place are refused even with the same bytes and a dying input.
#[test]
fn ops_and_geometries_that_cannot_run_in_place_are_refused() {
    let build = |op: &dyn Fn(TensorId, TensorId) -> Op<'static>,
                 x: Shape,
                 y: Shape|
     -> Result<Vec<u8>, BuildError> {
        let mut b = ModelBuilder::new(spec(x.h, x.w, x.c), 1.0);
        let out = b.tensor(spec(y.h, y.w, y.c));
        b.push(&op(0, out))?;
        let g = b.tensor(spec(1, 1, y.c));
        b.push(&Op::GlobalAvgPool(GlobalAvgPool {
            input: out,
            output: g,
            clamp: FULL,
        }))?;
        b.finish(g, 1.0)
    };
    let alias = |blob: Vec<u8>| {
        reseal(&blob, Some(IN_PLACE_MINOR), |r| {
            r[1].offset = r[0].offset;
        })
    };
    // A 3×3 max pool keeps the shape, but pools do not run in place.
    let pool = |x, y| {
        Op::MaxPool(Pool {
            input: x,
            output: y,
            window: Window::square(3, 1, 1, 1),
            clamp: FULL,
        })
    };
    let blob = build(&pool, Shape::new(6, 6, 4), Shape::new(6, 6, 4)).unwrap();
    assert_eq!(
        Model::from_bytes(&alias(blob)).unwrap_err(),
        FormatError::Overlap { a: 0, b: 1 }
    );
    // Same bytes, but stride 2 along the height: output row y reads input rows past y.
    let weights: &'static Tables = Box::leak(Box::new(tables()));
    let strided = |x, y| conv(weights, x, y, 4, 16, Window::square(3, 2, 1, 1));
    let blob = build(&strided, Shape::new(8, 8, 4), Shape::new(4, 4, 16)).unwrap();
    assert_eq!(
        Model::from_bytes(&alias(blob)).unwrap_err(),
        FormatError::Overlap { a: 0, b: 1 }
    );
    // The same convolution at stride 1 may.
    let same = |x, y| conv(weights, x, y, 4, 4, Window::square(3, 1, 1, 1));
    let blob = build(&same, Shape::new(32, 32, 4), Shape::new(32, 32, 4)).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, IN_PLACE_MINOR);
    assert_eq!(assert_plan_sound(&model), 1);
}

#[test]
fn builder_never_plans_a_larger_arena_than_without_in_place_ops() {
    // Tiny tensors: a band costs as much as it saves, so the plain plan stays.
    let t = tables();
    let mut b = ModelBuilder::new(spec(2, 2, 1), 1.0);
    let y = b.tensor(spec(2, 2, 1));
    b.push(&conv(&t, 0, y, 1, 1, Window::square(3, 1, 1, 1)))
        .unwrap();
    let z = b.tensor(spec(2, 2, 1));
    b.push(&add(0, y, z)).unwrap();
    let blob = b.finish(z, 1.0).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert!(model.arena_bytes() <= 3 * 4, "{}", model.arena_bytes());
    assert_plan_sound(&model);
}
