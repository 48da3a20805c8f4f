//! The interpreter: runs a validated [`Model`]'s ops in order inside one caller-owned arena.
//!
//! Arena layout: activations at `[0, activation_bytes)`, each tensor at the offset the host's
//! memory planner chose (`TensorRecord::offset`), then kernel scratch at
//! `[activation_bytes, activation_bytes + scratch_bytes)`. Nothing is allocated or copied
//! except the model input, which [`Interpreter::run`] writes into its planned place; skip
//! connections are just tensor ids read twice. An op whose output the plan put on its dying
//! input's bytes (format 1.6: an add, or a stride-1 convolution keeping the input's rows) runs
//! in place through the op's scratch (module `inplace`). The arena's slicing (checked splits,
//! tensor ranges, the input's copy) is module `arena`.

use shared_format::plan::{band_rows, in_place_scratch, kernel_scratch_bytes};
use shared_format::{FormatError, Model, Op, OpKind, TensorId, TensorRecord};

use crate::arena::{range_of, split_at_checked, split_output, write_input};
use crate::error::Error;
use crate::inplace::{Kernel, add_in_place, conv_in_place};
use crate::ops::KernelError;
use crate::ops::add::{AddParams, add};
use crate::ops::concat::{ConcatParams, ConcatSource, concat_input};
use crate::ops::conv::{ConvParams, conv2d};
use crate::ops::depthwise::depthwise_conv2d;
use crate::ops::hard_swish::{HardSwishParams, hard_swish};
use crate::ops::linear::linear;
use crate::ops::logistic::{LogisticParams, logistic};
use crate::ops::mean::{MeanParams, mean};
use crate::ops::mul::{MulParams, mul};
use crate::ops::pool::{PoolParams, avg_pool, global_avg_pool, max_pool};
use crate::ops::softmax::{SoftmaxParams, softmax};
use crate::ops::table::table;

/// Hooks called around every op, e.g. to read a cycle counter per layer.
///
/// The interpreter is generic over the observer, so the default `()` observer's empty methods
/// inline away and [`Interpreter::run`] pays nothing for the hook.
pub trait OpObserver {
    /// Called before op `index` runs.
    #[inline(always)]
    fn op_start(&mut self, index: u16, kind: OpKind) {
        let _ = (index, kind);
    }

    /// Called after op `index` has written its output.
    #[inline(always)]
    fn op_end(&mut self, index: u16, kind: OpKind) {
        let _ = (index, kind);
    }
}

/// The no-op observer used by [`Interpreter::run`].
impl OpObserver for () {}

/// Runs one model in one arena; reusable for any number of inferences.
#[derive(Debug)]
pub struct Interpreter<'m, 'a> {
    model: &'m Model<'m>,
    arena: &'a mut [u8],
}

impl<'m, 'a> Interpreter<'m, 'a> {
    /// Binds `model` to `arena`, which must hold at least [`Model::arena_bytes`] bytes.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        // Saturating (shared-format), so a header whose two u32 sizes overflow a 32-bit usize
        // reports "too small" instead of panicking.
        let needed = model.arena_bytes();
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall {
                needed,
                provided: arena.len(),
            });
        }
        Ok(Self { model, arena })
    }

    /// The model this interpreter runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Runs one inference on `input` (H·W·C values of the input tensor, NHWC) and returns the
    /// output tensor, which lives in the arena until the next run.
    pub fn run(&mut self, input: &[i8]) -> Result<&[i8], Error> {
        self.run_observed(input, &mut ())
    }

    /// [`Interpreter::run`], calling `observer` before and after every op.
    pub fn run_observed<O: OpObserver>(
        &mut self,
        input: &[i8],
        observer: &mut O,
    ) -> Result<&[i8], Error> {
        let model = self.model;
        let activation_bytes = model.activation_bytes();
        let scratch_bytes = model.scratch_bytes();
        // `new` checked the arena size, so these cannot fail; should they, the honest report is
        // the same one `new` would have given.
        let too_small = Error::ArenaTooSmall {
            needed: model.arena_bytes(),
            provided: self.arena.len(),
        };
        let arena =
            bytemuck::try_cast_slice_mut::<u8, i8>(&mut *self.arena).map_err(|_| too_small)?;
        let (activations, rest) = split_at_checked(arena, activation_bytes).ok_or(too_small)?;
        let scratch = rest.get_mut(..scratch_bytes).ok_or(too_small)?;

        write_input(model, activations, input)?;

        let rounding = model.rounding();
        for (index, op) in model.ops().enumerate() {
            // At most u16::MAX ops, so the index fits (a `0u16..` counter would overflow
            // one step after the last op of a 65,535-op model).
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            let op = op?;
            let kind = op.kind();
            observer.op_start(index, kind);
            execute(model, &op, activations, scratch, rounding)
                .map_err(|KernelError(what)| Error::Internal { index, kind, what })?;
            observer.op_end(index, kind);
        }

        // Validation proved the output tensor exists and lies inside the activations.
        let out = model.output().tensor;
        tensor(model, out)
            .and_then(|t| range_of(&t))
            .and_then(|r| activations.get(r))
            .ok_or(Error::Format(FormatError::Output(out)))
    }
}

fn tensor(model: &Model<'_>, id: TensorId) -> Option<TensorRecord> {
    model.tensors().get(id)
}

/// One op: look its tensors up, split the arena, call the kernel.
fn execute(
    model: &Model<'_>,
    op: &Op<'_>,
    activations: &mut [i8],
    scratch: &mut [i8],
    rounding: shared_format::Rounding,
) -> Result<(), KernelError> {
    let record = |id: TensorId| tensor(model, id).ok_or(KernelError("unknown tensor"));
    let out_t = record(op.output())?;
    let out_range = range_of(&out_t).ok_or(KernelError("output range"))?;
    // Validation admits an input with exactly the output's bytes only where the op runs in
    // place (format 1.6): an add, or a convolution run band by band.
    let aliased = |t: &TensorRecord| range_of(t).as_ref() == Some(&out_range);
    let (inputs, output) = split_output(activations, out_range.clone())
        .ok_or(KernelError("output outside the arena"))?;
    let input = |t: &TensorRecord| {
        range_of(t).and_then(|r| inputs.get(r)).ok_or(KernelError(
            "input overlaps the output or lies outside the arena",
        ))
    };

    let c_op = op;
    let weighted = |x_t: &TensorRecord| {
        ConvParams::of(op, x_t, &out_t, rounding).ok_or(KernelError("not a weighted op"))
    };
    match op {
        Op::Conv2d(c) => {
            let x_t = record(c.input)?;
            let p = weighted(&x_t)?;
            if aliased(&x_t) {
                return in_place(model, c_op, &p, Kernel::Conv, output, scratch);
            }
            conv2d(&p, input(&x_t)?, output, scratch)
        }
        Op::DepthwiseConv2d(d) => {
            let x_t = record(d.input)?;
            let p = weighted(&x_t)?;
            if aliased(&x_t) {
                return in_place(model, c_op, &p, Kernel::Depthwise, output, scratch);
            }
            depthwise_conv2d(&p, input(&x_t)?, output, scratch)
        }
        Op::MaxPool(pool) | Op::AvgPool(pool) => {
            let x_t = record(pool.input)?;
            let p = PoolParams::new(pool, &x_t, &out_t);
            if matches!(op, Op::MaxPool(_)) {
                max_pool(&p, input(&x_t)?, output)
            } else {
                avg_pool(&p, input(&x_t)?, output)
            }
        }
        Op::GlobalAvgPool(g) => {
            let x_t = record(g.input)?;
            global_avg_pool(x_t.shape, g.clamp, input(&x_t)?, output)
        }
        Op::Add(a) => {
            let (x1, x2) = (record(a.inputs[0].tensor)?, record(a.inputs[1].tensor)?);
            let p = AddParams::new(a, [&x1, &x2], &out_t, rounding);
            if aliased(&x1) || aliased(&x2) {
                let operand = |t: &TensorRecord| match aliased(t) {
                    true => Ok(None),
                    false => input(t).map(Some),
                };
                // All the scratch is free during the add (validation proved it holds at least
                // `in_place_scratch`): the larger the chunks, the fewer the kernel calls.
                let need = usize::try_from(in_place_scratch(c_op, x1.shape)).unwrap_or(usize::MAX);
                if scratch.len() < need {
                    return Err(KernelError("in-place add scratch"));
                }
                return add_in_place(&p, operand(&x1)?, operand(&x2)?, output, scratch);
            }
            add(&p, input(&x1)?, input(&x2)?, output)
        }
        Op::Concat(c) => {
            let p = ConcatParams::new(c, &out_t, rounding);
            let mut channel_offset = 0usize;
            for i in &c.inputs {
                let x_t = record(i.tensor)?;
                let source = ConcatSource::new(i, &x_t, channel_offset);
                concat_input(&p, &source, input(&x_t)?, output)?;
                channel_offset += source.channels;
            }
            Ok(())
        }
        Op::Linear(l) => {
            let x_t = record(l.input)?;
            let p = weighted(&x_t)?;
            linear(&p, input(&x_t)?, output, scratch)
        }
        Op::Softmax(s) => {
            let x_t = record(s.input)?;
            softmax(&SoftmaxParams::new(s, &x_t, rounding), input(&x_t)?, output)
        }
        Op::Mean(m) => {
            let x_t = record(m.input)?;
            let p = MeanParams::new(m, &x_t, &out_t, rounding);
            mean(&p, input(&x_t)?, output)
        }
        Op::Mul(m) => {
            let (x1, x2) = (record(m.inputs[0])?, record(m.inputs[1])?);
            let p = MulParams::new(m, [&x1, &x2], &out_t, rounding);
            mul(&p, input(&x1)?, input(&x2)?, output)
        }
        Op::Logistic(l) => {
            let x_t = record(l.input)?;
            logistic(
                &LogisticParams::new(l, &x_t, rounding),
                input(&x_t)?,
                output,
            )
        }
        Op::HardSwish(hs) => {
            let x_t = record(hs.input)?;
            hard_swish(
                &HardSwishParams::new(hs, &x_t, &out_t),
                input(&x_t)?,
                output,
            )
        }
        Op::Table(t) => {
            let x_t = record(t.input)?;
            table(t.values, input(&x_t)?, output)
        }
    }
}

/// A convolution writing over its input: the kernel's own scratch first, then the bands'.
fn in_place(
    model: &Model<'_>,
    op: &Op<'_>,
    p: &ConvParams<'_>,
    kernel: Kernel,
    tensor: &mut [i8],
    scratch: &mut [i8],
) -> Result<(), KernelError> {
    let own = usize::try_from(kernel_scratch_bytes(op, model.tensors()))
        .map_err(|_| KernelError("scratch size"))?;
    let (own, band) =
        split_at_checked(scratch, own).ok_or(KernelError("in-place convolution scratch"))?;
    let rows = usize::try_from(band_rows(p.input_shape)).map_err(|_| KernelError("band rows"))?;
    conv_in_place(p, kernel, rows, tensor, own, band)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift32;
    use shared_format::le::i32s_to_le;
    use shared_format::{
        Add as AddOp, AddInput, Clamp, Concat, ConcatInput, Conv2d, DepthwiseConv2d, GlobalAvgPool,
        LeI32s, Linear, Mean, ModelBuilder, Pool, Requant, Rounding, Shape, Softmax, TensorSpec,
        WeightScheme, Weights, Window,
    };

    const FULL: Clamp = Clamp {
        min: -128,
        max: 127,
    };

    fn spec(h: u16, w: u16, c: u16, zero_point: i8) -> TensorSpec {
        TensorSpec {
            shape: Shape::new(h, w, c),
            zero_point,
            bits: 8,
        }
    }

    /// Little-endian tables that must outlive the ops borrowing them.
    struct Tables {
        one: Vec<u8>,
        one_shift: Vec<u8>,
        zeros: Vec<u8>,
    }

    fn tables(channels: usize) -> Tables {
        // M = 1 exactly: m = 2^30, e = 1.
        Tables {
            one: i32s_to_le(&[1 << 30]),
            one_shift: vec![1],
            zeros: i32s_to_le(&vec![0; channels]),
        }
    }

    fn requant_one(t: &Tables) -> Requant<'_> {
        Requant {
            multipliers: LeI32s::new(&t.one),
            shifts: &t.one_shift,
        }
    }

    /// input 2×2×1 → 1×1 conv ×2 (w = 2, z_x = 1) → 2×2×1 → maxpool 2×2 → 1×1×1.
    fn tiny_model(weights: &[u8], t: &Tables) -> Vec<u8> {
        let mut b = ModelBuilder::new(spec(2, 2, 1, 1), 1.0);
        let conv_out = b.tensor(spec(2, 2, 1, 0));
        let pooled = b.tensor(spec(1, 1, 1, 0));
        b.push(&Op::Conv2d(Conv2d {
            input: 0,
            output: conv_out,
            window: Window::square(1, 1, 1, 0),
            weights: Weights {
                bits: 8,
                scheme: WeightScheme::PerTensorAffine,
                zero_point: 0,
                data: weights,
            },
            bias: LeI32s::new(&t.zeros[..4]),
            requant: requant_one(t),
            clamp: FULL,
        }))
        .unwrap();
        b.push(&Op::MaxPool(Pool {
            input: conv_out,
            output: pooled,
            window: Window::square(2, 2, 1, 0),
            clamp: FULL,
        }))
        .unwrap();
        b.finish(pooled, 1.0).unwrap()
    }

    #[test]
    fn runs_a_tiny_model_by_hand() {
        let t = tables(1);
        let blob = tiny_model(&[2], &t);
        let model = Model::from_bytes(&blob).unwrap();
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut it = Interpreter::new(&model, &mut arena).unwrap();
        // 2·(x − 1) for x = 3, −5, 10, 0 → 4, −12, 18, −2; max = 18.
        assert_eq!(it.run(&[3, -5, 10, 0]).unwrap(), &[18]);
        // Reusable: a second run with other data: −202, −12, −16, −242 → −12.
        assert_eq!(it.run(&[-100, -5, -7, -120]).unwrap(), &[-12]);
    }

    #[test]
    fn arena_too_small_reports_the_needed_size() {
        let t = tables(1);
        let blob = tiny_model(&[2], &t);
        let model = Model::from_bytes(&blob).unwrap();
        let needed = model.arena_bytes();
        assert!(needed > 0);
        let mut arena = vec![0u8; needed - 1];
        assert_eq!(
            Interpreter::new(&model, &mut arena).unwrap_err(),
            Error::ArenaTooSmall {
                needed,
                provided: needed - 1
            }
        );
        // A larger arena than needed is fine.
        let mut big = vec![0u8; needed + 100];
        assert!(Interpreter::new(&model, &mut big).is_ok());
    }

    #[test]
    fn input_length_and_range_errors() {
        let t = tables(1);
        let blob = tiny_model(&[2], &t);
        let model = Model::from_bytes(&blob).unwrap();
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut it = Interpreter::new(&model, &mut arena).unwrap();
        assert_eq!(
            it.run(&[1, 2, 3]).unwrap_err(),
            Error::InputLength {
                expected: 4,
                found: 3
            }
        );

        // A 4-bit input accepts only [−8, 7].
        let mut b = ModelBuilder::new(
            TensorSpec {
                shape: Shape::new(1, 1, 2),
                zero_point: 0,
                bits: 4,
            },
            1.0,
        );
        let out = b.tensor(TensorSpec {
            shape: Shape::new(1, 1, 2),
            zero_point: 0,
            bits: 4,
        });
        b.push(&Op::GlobalAvgPool(GlobalAvgPool {
            input: 0,
            output: out,
            clamp: Clamp { min: -8, max: 7 },
        }))
        .unwrap();
        let blob = b.finish(out, 1.0).unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut it = Interpreter::new(&model, &mut arena).unwrap();
        assert_eq!(it.run(&[-8, 7]).unwrap(), &[-8, 7]);
        assert_eq!(
            it.run(&[-8, 8]).unwrap_err(),
            Error::InputRange {
                index: 1,
                value: 8,
                bits: 4
            }
        );
        assert_eq!(
            it.run(&[-9, 0]).unwrap_err(),
            Error::InputRange {
                index: 0,
                value: -9,
                bits: 4
            }
        );
    }

    /// Every op kind, with a skip connection (Add reads the conv output and the depthwise
    /// output), a concat of two pools, its global average and its requantizing mean summed, and
    /// a softmax over the logits.
    fn all_ops_model(w4: &[u8], dw: &[u8], lin: &[u8], t: &Tables) -> Vec<u8> {
        let mut b = ModelBuilder::new(spec(4, 4, 2, -3), 1.0);
        let c1 = b.tensor(spec(4, 4, 3, 2));
        let d1 = b.tensor(spec(4, 4, 3, -1));
        let s1 = b.tensor(spec(4, 4, 3, 0));
        let p1 = b.tensor(spec(2, 2, 3, 0));
        let m1 = b.tensor(spec(2, 2, 3, 0));
        let cat = b.tensor(spec(2, 2, 6, 4));
        let g = b.tensor(spec(1, 1, 6, 4));
        let mn = b.tensor(spec(1, 1, 6, -2));
        let gm = b.tensor(spec(1, 1, 6, 0));
        let logits = b.tensor(spec(1, 1, 2, 0));
        let probs = b.tensor(spec(1, 1, 2, -128));
        let half = Requant {
            multipliers: LeI32s::new(&t.one),
            shifts: &[0], // M = 1/2
        };
        b.push(&Op::Conv2d(Conv2d {
            input: 0,
            output: c1,
            window: Window::square(3, 1, 1, 1),
            weights: Weights {
                bits: 4,
                scheme: WeightScheme::PerTensorAffine,
                zero_point: 1,
                data: w4,
            },
            bias: LeI32s::new(&t.zeros[..12]),
            requant: half,
            clamp: FULL,
        }))
        .unwrap();
        b.push(&Op::DepthwiseConv2d(DepthwiseConv2d {
            input: c1,
            output: d1,
            window: Window::square(3, 1, 2, 2),
            weights: Weights {
                bits: 8,
                scheme: WeightScheme::PerTensorAffine,
                zero_point: 0,
                data: dw,
            },
            bias: LeI32s::new(&t.zeros[..12]),
            requant: half,
            clamp: FULL,
        }))
        .unwrap();
        b.push(&Op::Add(AddOp {
            inputs: [
                AddInput {
                    tensor: c1,
                    multiplier: 1 << 30,
                    shift: 0,
                },
                AddInput {
                    tensor: d1,
                    multiplier: 1 << 30,
                    shift: 0,
                },
            ],
            output: s1,
            left_shift: 20,
            output_multiplier: 1 << 30,
            output_shift: -19,
            clamp: Clamp { min: 0, max: 127 },
        }))
        .unwrap();
        b.push(&Op::AvgPool(Pool {
            input: s1,
            output: p1,
            window: Window::square(2, 2, 1, 0),
            clamp: FULL,
        }))
        .unwrap();
        b.push(&Op::MaxPool(Pool {
            input: p1,
            output: m1,
            window: Window::square(3, 1, 1, 1),
            clamp: FULL,
        }))
        .unwrap();
        let mut concat = Concat {
            inputs: Default::default(),
            output: cat,
            clamp: FULL,
        };
        for (tensor, shift) in [(p1, 1), (m1, 0)] {
            concat
                .inputs
                .push(ConcatInput {
                    tensor,
                    multiplier: 1 << 30,
                    shift,
                })
                .unwrap();
        }
        b.push(&Op::Concat(concat)).unwrap();
        b.push(&Op::GlobalAvgPool(GlobalAvgPool {
            input: cat,
            output: g,
            clamp: FULL,
        }))
        .unwrap();
        // Mean at s_y = 3·s_x over 2×2: QuantizeMultiplier(1/3) = (1431655765, −1), folded by 4.
        b.push(&Op::Mean(Mean {
            input: cat,
            output: mn,
            multiplier: 1_431_655_765,
            shift: -3,
        }))
        .unwrap();
        b.push(&Op::Add(AddOp {
            inputs: [
                AddInput {
                    tensor: g,
                    multiplier: 1 << 30,
                    shift: 0,
                },
                AddInput {
                    tensor: mn,
                    multiplier: 1 << 30,
                    shift: 0,
                },
            ],
            output: gm,
            left_shift: 20,
            output_multiplier: 1 << 30,
            output_shift: -19,
            clamp: FULL,
        }))
        .unwrap();
        b.push(&Op::Linear(Linear {
            input: gm,
            output: logits,
            weights: Weights {
                bits: 2,
                scheme: WeightScheme::PerTensorAffine,
                zero_point: -1,
                data: lin,
            },
            bias: LeI32s::new(&t.zeros[..8]),
            requant: requant_one(t),
            clamp: FULL,
        }))
        .unwrap();
        // Logit scale 1/8: TFLM's PreprocessSoftmaxScaling gives m = 2^30, shift 24.
        b.push(&Op::Softmax(Softmax {
            input: logits,
            output: probs,
            input_multiplier: 1 << 30,
            input_left_shift: 24,
            diff_min: -Softmax::input_radius(24),
        }))
        .unwrap();
        b.finish(probs, 1.0 / 256.0).unwrap()
    }

    #[derive(Default)]
    struct Recorder(Vec<(bool, u16, OpKind)>);

    impl OpObserver for Recorder {
        fn op_start(&mut self, index: u16, kind: OpKind) {
            self.0.push((true, index, kind));
        }
        fn op_end(&mut self, index: u16, kind: OpKind) {
            self.0.push((false, index, kind));
        }
    }

    #[test]
    fn observer_sees_every_op_in_order_and_runs_repeat() {
        use shared_format::packing::pack;
        let t = tables(8);
        let w4 = pack(
            &(0..3 * 9 * 2)
                .map(|i| (i % 13) as i8 - 6)
                .collect::<Vec<_>>(),
            4,
        )
        .unwrap();
        let dw: Vec<u8> = (0..3 * 9).map(|i| ((i * 37) % 255) as u8).collect();
        let lin = pack(
            &(0..2 * 6).map(|i| (i % 4) as i8 - 2).collect::<Vec<_>>(),
            2,
        )
        .unwrap();
        let blob = all_ops_model(&w4, &dw, &lin, &t);
        let model = Model::from_bytes(&blob).unwrap();
        assert!(
            model.scratch_bytes() >= 18,
            "4-bit conv filter needs scratch"
        );
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut it = Interpreter::new(&model, &mut arena).unwrap();
        let x: Vec<i8> = (0..32).map(|i| (i * 29 % 256) as u8 as i8).collect();
        let mut rec = Recorder::default();
        let first = it.run_observed(&x, &mut rec).unwrap().to_vec();
        let kinds = [
            OpKind::Conv2d,
            OpKind::DepthwiseConv2d,
            OpKind::Add,
            OpKind::AvgPool,
            OpKind::MaxPool,
            OpKind::Concat,
            OpKind::GlobalAvgPool,
            OpKind::Mean,
            OpKind::Add,
            OpKind::Linear,
            OpKind::Softmax,
        ];
        let expected: Vec<_> = kinds
            .iter()
            .enumerate()
            .flat_map(|(i, &k)| [(true, i as u16, k), (false, i as u16, k)])
            .collect();
        assert_eq!(rec.0, expected);
        assert_eq!(first.len(), 2);
        // Two probabilities in 1/256 steps (zero point −128) that sum to about one.
        let total: i32 = first.iter().map(|&p| p as i32 + 128).sum();
        assert!((255..=257).contains(&total), "{first:?}");
        // Same input, same bits; the arena's previous contents do not leak into the result.
        assert_eq!(it.run(&x).unwrap(), &first[..]);
    }

    #[test]
    fn skip_connection_reads_a_tensor_twice() {
        // x (z = 0) → 1×1 conv y = 3x → add(x, y) with M_1 = M_2 = 1/2 and M_o = 2^-19:
        // out = x/2 + 3x/2 = 2x (x·2^19 and 3x·2^19 are exact, so no rounding happens).
        let t = tables(1);
        let mut b = ModelBuilder::new(spec(1, 2, 1, 0), 1.0);
        let y = b.tensor(spec(1, 2, 1, 0));
        let s = b.tensor(spec(1, 2, 1, 0));
        b.push(&Op::Conv2d(Conv2d {
            input: 0,
            output: y,
            window: Window::square(1, 1, 1, 0),
            weights: Weights {
                bits: 8,
                scheme: WeightScheme::PerChannelSymmetric,
                zero_point: 0,
                data: &[3],
            },
            bias: LeI32s::new(&t.zeros[..4]),
            requant: requant_one(&t),
            clamp: FULL,
        }))
        .unwrap();
        b.push(&Op::Add(AddOp {
            inputs: [
                AddInput {
                    tensor: 0,
                    multiplier: 1 << 30,
                    shift: 0,
                },
                AddInput {
                    tensor: y,
                    multiplier: 1 << 30,
                    shift: 0,
                },
            ],
            output: s,
            left_shift: 20,
            output_multiplier: 1 << 30,
            output_shift: -19,
            clamp: FULL,
        }))
        .unwrap();
        let blob = b.finish(s, 1.0).unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut it = Interpreter::new(&model, &mut arena).unwrap();
        assert_eq!(it.run(&[10, -21]).unwrap(), &[20, -42]);
    }

    #[test]
    fn single_rounding_header_is_honoured() {
        // 1×1 conv, w = 1, M = 1/4: x = 2 → 0.5. Double rounding: SRDHM(2, 2^30) = 1, then
        // RDBPOT(1, 1) = 1. Single rounding: floor(0.5 + 0.5) = 1. x = 1 → 0.25: double gives
        // RDBPOT(SRDHM(1, 2^30) = 1, 1) = 1, single gives floor(0.75) = 0.
        let t = tables(1);
        for (rounding, want) in [(Rounding::Double, [1i8, 1]), (Rounding::Single, [1, 0])] {
            let mut b = ModelBuilder::new(spec(1, 2, 1, 0), 1.0);
            b.rounding(rounding);
            let y = b.tensor(spec(1, 2, 1, 0));
            b.push(&Op::Conv2d(Conv2d {
                input: 0,
                output: y,
                window: Window::square(1, 1, 1, 0),
                weights: Weights {
                    bits: 8,
                    scheme: WeightScheme::PerChannelSymmetric,
                    zero_point: 0,
                    data: &[1],
                },
                bias: LeI32s::new(&t.zeros[..4]),
                requant: Requant {
                    multipliers: LeI32s::new(&t.one),
                    shifts: &[0xFF], // e = −1: M = 2^30 · 2^(−1−31) = 1/4
                },
                clamp: FULL,
            }))
            .unwrap();
            let blob = b.finish(y, 1.0).unwrap();
            let model = Model::from_bytes(&blob).unwrap();
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut it = Interpreter::new(&model, &mut arena).unwrap();
            assert_eq!(it.run(&[2, 1]).unwrap(), &want, "{rounding:?}");
        }
    }

    /// CRC-32 (ISO-HDLC), bitwise, to re-seal mutated blobs so they reach validation.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// Corrupt blobs that still pass validation (bit flips, CRC re-sealed) must run, or fail with
    /// a caller error, never panic nor trip a kernel's internal check.
    #[test]
    fn mutated_blobs_never_panic() {
        use shared_format::packing::pack;
        let t = tables(8);
        let w4 = pack(&(0..54).map(|i| (i % 13) as i8 - 6).collect::<Vec<_>>(), 4).unwrap();
        let dw: Vec<u8> = (0..27).map(|i| ((i * 37) % 255) as u8).collect();
        let lin = pack(&(0..12).map(|i| (i % 4) as i8 - 2).collect::<Vec<_>>(), 2).unwrap();
        let blob = all_ops_model(&w4, &dw, &lin, &t);
        let mut rng = XorShift32::new(0xDEAD_BEEF);
        let mut rnd = || rng.next_u32();
        let (mut accepted, mut ran) = (0, 0);
        for _ in 0..4000 {
            let mut m = blob.clone();
            for _ in 0..1 + rnd() % 3 {
                let at = 12 + (rnd() as usize) % (m.len() - 12);
                m[at] ^= 1 << (rnd() % 8);
            }
            let crc = crc32(&m[12..]);
            m[8..12].copy_from_slice(&crc.to_le_bytes());
            let Ok(model) = Model::from_bytes(&m) else {
                continue;
            };
            accepted += 1;
            if model.arena_bytes() > 1 << 20 {
                continue;
            }
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut it = Interpreter::new(&model, &mut arena).unwrap();
            let n = model.tensors().get(model.input().tensor).unwrap().bytes() as usize;
            let x: Vec<i8> = (0..n).map(|_| (rnd() % 7) as i8 - 3).collect();
            match it.run(&x) {
                Ok(_) => ran += 1,
                // Validation and runtime must agree: no validated blob may hit a kernel check.
                Err(e) => assert!(!matches!(e, Error::Internal { .. }), "{e}"),
            }
        }
        eprintln!("mutated blobs: {accepted} accepted by validation, {ran} ran");
        assert!(accepted > 0 && ran > 0, "accepted {accepted}, ran {ran}");
    }

    /// x (16×16×16) → 3×3 conv (4-bit weights) → 3×3 conv over its input's bytes → add(x, ·)
    /// in place → global average: format 1.6, both in-place paths, the band path with a
    /// kernel scratch before its bands.
    fn in_place_model(w4: &[u8], t: &Tables) -> Vec<u8> {
        let mut b = ModelBuilder::new(spec(16, 16, 16, 1), 1.0);
        let c1 = b.tensor(spec(16, 16, 16, -2));
        let c2 = b.tensor(spec(16, 16, 16, 3));
        let s = b.tensor(spec(16, 16, 16, 0));
        let g = b.tensor(spec(1, 1, 16, 0));
        let small = Requant {
            multipliers: LeI32s::new(&t.one),
            shifts: &[(-6i8) as u8],
        };
        for (input, output, pad) in [(0, c1, 1), (c1, c2, 2)] {
            b.push(&Op::Conv2d(Conv2d {
                input,
                output,
                // 3×3 "same" with the padding all above (pad 2) or centred (pad 1).
                window: Window {
                    padding: shared_format::Padding {
                        top: pad,
                        bottom: 2 - pad,
                        left: 1,
                        right: 1,
                    },
                    ..Window::square(3, 1, 1, 0)
                },
                weights: Weights {
                    bits: 4,
                    scheme: WeightScheme::PerTensorAffine,
                    zero_point: 1,
                    data: w4,
                },
                bias: LeI32s::new(&t.zeros[..64]),
                requant: small,
                clamp: FULL,
            }))
            .unwrap();
        }
        b.push(&Op::Add(AddOp {
            inputs: [
                AddInput {
                    tensor: 0,
                    multiplier: 1 << 30,
                    shift: 0,
                },
                AddInput {
                    tensor: c2,
                    multiplier: 1 << 30,
                    shift: 0,
                },
            ],
            output: s,
            left_shift: 20,
            output_multiplier: 1 << 30,
            output_shift: -19,
            clamp: FULL,
        }))
        .unwrap();
        b.push(&Op::GlobalAvgPool(GlobalAvgPool {
            input: s,
            output: g,
            clamp: FULL,
        }))
        .unwrap();
        b.finish(g, 1.0).unwrap()
    }

    /// The in-place model runs like the golden arithmetic of the same ops on separate tensors
    /// (the plain kernels), and corrupt variants of it never panic.
    #[test]
    fn in_place_ops_run_and_mutations_never_panic() {
        use shared_format::packing::pack;
        let t = tables(16);
        let w4 = pack(
            &(0..16 * 9 * 16)
                .map(|i| (i * 7 % 16) as i8 - 8)
                .collect::<Vec<_>>(),
            4,
        )
        .unwrap();
        let blob = in_place_model(&w4, &t);
        let model = Model::from_bytes(&blob).unwrap();
        assert_eq!(model.header().minor, shared_format::plan::IN_PLACE_MINOR);
        // Two maps of 4 KiB (x and c1 = c2 = the sum) beside bands of 8 rows and 2 of lag,
        // after 144 bytes of the 4-bit filter.
        assert_eq!(model.activation_bytes(), 2 * 4096);
        assert_eq!(model.scratch_bytes(), 144 + 10 * 256);
        let x: Vec<i8> = (0..4096).map(|i| (i * 31 % 256) as u8 as i8).collect();
        let mut arena = vec![0x5Au8; model.arena_bytes()];
        let mut it = Interpreter::new(&model, &mut arena).unwrap();
        let got = it.run(&x).unwrap().to_vec();

        // The same ops through the kernels on separate buffers.
        let records: Vec<TensorRecord> = model.tensors().iter().collect();
        let ops: Vec<Op<'_>> = model.ops().map(Result::unwrap).collect();
        let mut values: Vec<Vec<i8>> = vec![x.clone()];
        let mut scratch = vec![0i8; 256];
        for (i, op) in ops.iter().enumerate() {
            let out = &records[i + 1];
            let mut y = vec![0i8; out.bytes() as usize];
            match op {
                Op::Conv2d(c) => {
                    let xr = &records[c.input as usize];
                    let p = ConvParams::of(op, xr, out, model.rounding()).unwrap();
                    conv2d(&p, &values[c.input as usize], &mut y, &mut scratch).unwrap();
                }
                Op::Add(a) => {
                    let (x1, x2) = (a.inputs[0].tensor as usize, a.inputs[1].tensor as usize);
                    let p = AddParams::new(a, [&records[x1], &records[x2]], out, model.rounding());
                    add(&p, &values[x1], &values[x2], &mut y).unwrap();
                }
                Op::GlobalAvgPool(g) => {
                    let xr = &records[g.input as usize];
                    global_avg_pool(xr.shape, g.clamp, &values[g.input as usize], &mut y).unwrap();
                }
                other => panic!("unexpected {other:?}"),
            }
            values.push(y);
        }
        assert_eq!(&got, values.last().unwrap());

        let mut rng = XorShift32::new(0x1234_5678);
        let mut rnd = || rng.next_u32();
        let (mut accepted, mut in_place) = (0, 0);
        for _ in 0..3000 {
            let mut m = blob.clone();
            for _ in 0..1 + rnd() % 3 {
                let at = 12 + (rnd() as usize) % (m.len() - 12);
                m[at] ^= 1 << (rnd() % 8);
            }
            let crc = crc32(&m[12..]);
            m[8..12].copy_from_slice(&crc.to_le_bytes());
            let Ok(model) = Model::from_bytes(&m) else {
                continue;
            };
            accepted += 1;
            if model.arena_bytes() > 1 << 20 {
                continue;
            }
            if model.header().minor >= shared_format::plan::IN_PLACE_MINOR {
                in_place += 1;
            }
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut it = Interpreter::new(&model, &mut arena).unwrap();
            let n = model.tensors().get(model.input().tensor).unwrap().bytes() as usize;
            let x: Vec<i8> = (0..n).map(|_| (rnd() % 7) as i8 - 3).collect();
            if let Err(e) = it.run(&x) {
                assert!(!matches!(e, Error::Internal { .. }), "{e}");
            }
        }
        eprintln!("mutated in-place blobs: {accepted} accepted, {in_place} still 1.6");
        assert!(accepted > 0 && in_place > 0);
    }
}
