//! One-time validation of a decoded blob. Every check the runtime would otherwise need on its hot
//! path happens here, so a model that passes cannot make a kernel index out of bounds or
//! overflow an accumulator.

use crate::accumulator::{fits_i32, weight_term_bound};
use crate::error::{FormatError, OpProblem, TensorProblem};
use crate::header::Rounding;
use crate::model::Model;
use crate::op::{
    Clamp, HardSwish, Logistic, MAX_MEAN_CELLS, MAX_MUL_SHIFT, MAX_SOFTMAX_CHANNELS, Mean, Op,
    Requant, Softmax, TABLE_LEN, Table, WeightScheme, Weights, Window,
};
use crate::packing::{packed_len, unpack_one};
use crate::plan::{IN_PLACE_MINOR, in_place, scratch_bytes};
use crate::tensor::{TensorId, TensorRecord, TensorTable, qmax, qmin};

/// Largest conv/depthwise kernel side (format 1.2; 7 before). Pools keep 3.
pub(crate) const MAX_CONV_KERNEL: u8 = 16;

pub(crate) fn validate(m: &Model<'_>) -> Result<(), FormatError> {
    let ops = m.op_count();
    if ops == 0 {
        return Err(FormatError::Empty);
    }
    let tensors = m.tensors();
    if tensors.len() != ops as usize + 1 {
        return Err(FormatError::TensorCount {
            tensors: tensors.len(),
            ops,
        });
    }
    for (id, t) in tensors.iter().enumerate() {
        check_tensor(id as u16, &t, ops, m.activation_bytes() as u32)?;
    }
    let input = tensors.get(m.input().tensor).ok_or(FormatError::Tensor {
        tensor: m.input().tensor,
        problem: TensorProblem::Missing,
    })?;
    if input.first_op != 0 {
        return Err(FormatError::Tensor {
            tensor: m.input().tensor,
            problem: TensorProblem::InputLifetime,
        });
    }
    let out_id = m.output().tensor;
    match tensors.get(out_id) {
        Some(t) if out_id != m.input().tensor && t.last_op == ops => {}
        _ => return Err(FormatError::Output(out_id)),
    }
    check_overlaps(m, tensors)?;

    let ctx = Ctx {
        tensors,
        model_input: m.input().tensor,
        rounding: m.rounding(),
    };
    let mut iter = m.ops();
    for index in 0..ops {
        let op = iter.next().ok_or(FormatError::OpDecode {
            index,
            reason: "missing",
        })??;
        let kind = op.kind();
        ctx.check_op(index, &op)
            .map_err(|problem| FormatError::Op {
                index,
                kind,
                problem,
            })?;
        let need = scratch_bytes(&op, tensors);
        if need > m.scratch_bytes() as u64 {
            return Err(FormatError::Scratch {
                index,
                need: need.min(u32::MAX as u64) as u32,
                have: m.scratch_bytes() as u32,
            });
        }
    }
    if iter.remaining() != 0 {
        return Err(FormatError::TrailingBytes(iter.remaining()));
    }
    Ok(())
}

fn check_tensor(id: u16, t: &TensorRecord, ops: u16, arena: u32) -> Result<(), FormatError> {
    let err = |problem| {
        Err(FormatError::Tensor {
            tensor: id,
            problem,
        })
    };
    let s = t.shape;
    if s.h == 0 || s.w == 0 || s.c == 0 {
        return err(TensorProblem::ZeroDim {
            h: s.h,
            w: s.w,
            c: s.c,
        });
    }
    if !(2..=8).contains(&t.bits) {
        return err(TensorProblem::Bits(t.bits));
    }
    if t.zero_point < qmin(t.bits) || t.zero_point > qmax(t.bits) {
        return err(TensorProblem::ZeroPoint {
            zero_point: t.zero_point,
            bits: t.bits,
        });
    }
    let end = t.offset as u64 + t.bytes();
    if end > arena as u64 {
        return err(TensorProblem::OutOfArena {
            offset: t.offset,
            end,
            arena,
        });
    }
    if t.first_op > t.last_op || t.last_op > ops {
        return err(TensorProblem::Lifetime {
            first: t.first_op,
            last: t.last_op,
            ops,
        });
    }
    Ok(())
}

/// No two tensors whose lifetimes intersect may share a byte, with one exception (format 1.6):
/// an op's output may occupy exactly its input's bytes when that input dies at the op and the
/// op can run in place ([`may_alias`]). Quadratic, but the table of an MCU model has tens to
/// hundreds of entries and this runs once.
fn check_overlaps(m: &Model<'_>, tensors: &TensorTable<'_>) -> Result<(), FormatError> {
    for (a, ta) in tensors.iter().enumerate() {
        for (b, tb) in tensors.iter().enumerate().skip(a + 1) {
            let time = ta.first_op <= tb.last_op && tb.first_op <= ta.last_op;
            let (ra, rb) = (ta.range(), tb.range());
            if time
                && ra.start < rb.end
                && rb.start < ra.end
                && !may_alias(m, (a as u16, &ta), (b as u16, &tb))
            {
                return Err(FormatError::Overlap {
                    a: a as u16,
                    b: b as u16,
                });
            }
        }
    }
    Ok(())
}

/// Two live tensors may share bytes only if they have the same offset and size, one (`x`) dies
/// at the op that produces the other (`y`), that op reads `x`, writes `y` and can run in place
/// ([`in_place`]), and the blob is 1.6 or later. Anything else is an overlap.
fn may_alias(m: &Model<'_>, a: (u16, &TensorRecord), b: (u16, &TensorRecord)) -> bool {
    let same_bytes = a.1.offset == b.1.offset && a.1.bytes() == b.1.bytes();
    if !same_bytes || m.header().minor < IN_PLACE_MINOR {
        return false;
    }
    let ((x_id, x), (y_id, y)) = if a.1.last_op == b.1.first_op {
        (a, b)
    } else if b.1.last_op == a.1.first_op {
        (b, a)
    } else {
        return false;
    };
    if y_id == m.input().tensor {
        return false;
    }
    let Some(Ok(op)) = m.ops().nth(y.first_op as usize) else {
        return false;
    };
    op.output() == y_id && op.inputs().contains(&x_id) && in_place(&op, x_id, x, y)
}

struct Ctx<'t> {
    tensors: &'t TensorTable<'t>,
    model_input: TensorId,
    rounding: Rounding,
}

type Check<T = ()> = Result<T, OpProblem>;

impl Ctx<'_> {
    fn tensor(&self, id: TensorId) -> Check<TensorRecord> {
        self.tensors.get(id).ok_or(OpProblem::UnknownTensor(id))
    }

    /// An input must have been produced before this op (or be the model input) and still be live.
    fn input(&self, index: u16, id: TensorId) -> Check<TensorRecord> {
        let t = self.tensor(id)?;
        let produced = id == self.model_input || t.first_op < index;
        if !produced || t.last_op < index {
            return Err(OpProblem::NotLive(id));
        }
        Ok(t)
    }

    /// The output must start its life at this op. With one output per op and exactly
    /// `ops + 1` tensors, this makes every non-input tensor produced by exactly one op.
    fn output(&self, index: u16, id: TensorId) -> Check<TensorRecord> {
        let t = self.tensor(id)?;
        if id == self.model_input || t.first_op != index {
            return Err(OpProblem::NotProducer(id));
        }
        Ok(t)
    }

    fn check_op(&self, index: u16, op: &Op<'_>) -> Check {
        let out = self.output(index, op.output())?;
        // Softmax's and Logistic's output quantization is fixed, Mean's and HardSwish's
        // outputs are plain int8 and a Table's range is its values'; their own checks name
        // those problems precisely.
        if !matches!(
            op,
            Op::Softmax(_) | Op::Mean(_) | Op::Logistic(_) | Op::HardSwish(_) | Op::Table(_)
        ) {
            check_clamp(op.clamp(), &out)?;
        }
        match op {
            Op::Conv2d(c) => {
                let x = self.input(index, c.input)?;
                check_window(&c.window, 1, MAX_CONV_KERNEL, 4)?;
                let cout = out.shape.c as u32;
                check_shape(&c.window, &x, cout, &out)?;
                let per_channel =
                    c.window.kernel_h as u64 * c.window.kernel_w as u64 * x.shape.c as u64;
                check_weighted(
                    &c.weights,
                    c.bias.0,
                    &c.requant,
                    cout,
                    per_channel,
                    Layout::ChannelMajor,
                )
            }
            Op::DepthwiseConv2d(d) => {
                let x = self.input(index, d.input)?;
                check_window(&d.window, 1, MAX_CONV_KERNEL, 4)?;
                let c = x.shape.c as u32;
                check_shape(&d.window, &x, c, &out)?;
                let per_channel = d.window.kernel_h as u64 * d.window.kernel_w as u64;
                // `[kh][kw][c]`: channel `c`'s taps sit at stride C.
                check_weighted(
                    &d.weights,
                    d.bias.0,
                    &d.requant,
                    c,
                    per_channel,
                    Layout::ChannelFastest,
                )
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let x = self.input(index, p.input)?;
                check_window(&p.window, 1, 3, 1)?;
                check_shape(&p.window, &x, x.shape.c as u32, &out)?;
                same_quant(&x, &out)
            }
            Op::GlobalAvgPool(g) => {
                let x = self.input(index, g.input)?;
                expect_shape(&out, 1, 1, x.shape.c as u32)?;
                same_quant(&x, &out)
            }
            Op::Add(a) => {
                if a.left_shift > 20 {
                    return Err(OpProblem::LeftShift(a.left_shift));
                }
                for (k, i) in a.inputs.iter().enumerate() {
                    let x = self.input(index, i.tensor)?;
                    if x.shape != out.shape {
                        return Err(OpProblem::InputShape(i.tensor));
                    }
                    check_multiplier(k as u32, i.multiplier, i.shift, 0)?;
                }
                check_multiplier(2, a.output_multiplier, a.output_shift, 30)
            }
            Op::Concat(c) => {
                if c.inputs.len() < 2 {
                    return Err(OpProblem::ConcatInputs(c.inputs.len()));
                }
                let mut channels = 0u32;
                for (k, i) in c.inputs.iter().enumerate() {
                    let x = self.input(index, i.tensor)?;
                    if x.shape.h != out.shape.h || x.shape.w != out.shape.w {
                        return Err(OpProblem::InputShape(i.tensor));
                    }
                    channels += x.shape.c as u32;
                    check_multiplier(k as u32, i.multiplier, i.shift, 30)?;
                }
                expect_shape(&out, out.shape.h as u32, out.shape.w as u32, channels)
            }
            Op::Linear(l) => {
                let x = self.input(index, l.input)?;
                let cout = out.shape.c as u32;
                expect_shape(&out, 1, 1, cout)?;
                check_weighted(
                    &l.weights,
                    l.bias.0,
                    &l.requant,
                    cout,
                    x.shape.elements(),
                    Layout::ChannelMajor,
                )
            }
            Op::Softmax(sm) => {
                let x = self.input(index, sm.input)?;
                let s = x.shape;
                expect_shape(&out, s.h as u32, s.w as u32, s.c as u32)?;
                if out.bits != 8 || out.zero_point != -128 {
                    return Err(OpProblem::SoftmaxOutput {
                        bits: out.bits,
                        zero_point: out.zero_point,
                    });
                }
                if s.c > MAX_SOFTMAX_CHANNELS {
                    return Err(OpProblem::SoftmaxChannels {
                        channels: s.c,
                        max: MAX_SOFTMAX_CHANNELS,
                    });
                }
                check_softmax_params(sm, self.rounding)
            }
            Op::Mean(mean) => {
                let x = self.input(index, mean.input)?;
                expect_shape(&out, 1, 1, x.shape.c as u32)?;
                check_mean(mean, &x, &out)
            }
            Op::Mul(mul) => {
                let [a, b] = [
                    self.input(index, mul.inputs[0])?,
                    self.input(index, mul.inputs[1])?,
                ];
                broadcasts_to(mul.inputs[0], &a, &out)?;
                broadcasts_to(mul.inputs[1], &b, &out)?;
                // Broadcasting only repeats: the output is as large as the larger input.
                let (sa, sb) = (a.shape, b.shape);
                expect_shape(
                    &out,
                    sa.h.max(sb.h) as u32,
                    sa.w.max(sb.w) as u32,
                    sa.c.max(sb.c) as u32,
                )?;
                // Centred i8 values multiply to at most 255² < 2^16, so a shift up to
                // MAX_MUL_SHIFT keeps TFLM's `product · 2^shift` inside i32.
                check_multiplier(0, mul.multiplier, mul.shift, MAX_MUL_SHIFT)
            }
            Op::Logistic(l) => {
                let x = self.input(index, l.input)?;
                let s = x.shape;
                expect_shape(&out, s.h as u32, s.w as u32, s.c as u32)?;
                if out.bits != 8 || out.zero_point != -128 {
                    return Err(OpProblem::FixedOutput {
                        bits: out.bits,
                        zero_point: out.zero_point,
                    });
                }
                check_logistic_params(l, self.rounding)
            }
            Op::HardSwish(hs) => {
                let x = self.input(index, hs.input)?;
                let s = x.shape;
                expect_shape(&out, s.h as u32, s.w as u32, s.c as u32)?;
                // TFLM clamps to the int8 range, not to the output's bits.
                if out.bits != 8 {
                    return Err(OpProblem::FixedOutput {
                        bits: out.bits,
                        zero_point: out.zero_point,
                    });
                }
                check_hard_swish_params(hs)
            }
            Op::Table(t) => {
                let x = self.input(index, t.input)?;
                let s = x.shape;
                expect_shape(&out, s.h as u32, s.w as u32, s.c as u32)?;
                check_table(t, &out)
            }
        }
    }
}

/// One entry per input byte, so the lookup can never miss, and each inside the output's range,
/// as every other op's clamp keeps its output (any input bit-width: the lookup reads the byte).
fn check_table(t: &Table<'_>, out: &TensorRecord) -> Check {
    if t.values.len() != TABLE_LEN {
        return Err(OpProblem::TableLength(t.values.len()));
    }
    match t
        .values
        .iter()
        .map(|&v| v as i8)
        .enumerate()
        .find(|&(_, v)| v < out.qmin() || v > out.qmax())
    {
        Some((index, value)) => Err(OpProblem::TableValue {
            index: index as u16,
            value,
            bits: out.bits,
        }),
        None => Ok(()),
    }
}

/// The channel sums must fit i32 and the folded requantization must be one `MBQM` accepts.
/// The multiplier may sit below 2^30 (TFLM's fold drops precision when it caps its shift),
/// but never at or below zero: TFLM's fold of a valid `QuantizeMultiplier` result is positive
/// on every input the format admits.
fn check_mean(mean: &Mean, x: &TensorRecord, out: &TensorRecord) -> Check {
    if out.bits != 8 {
        return Err(OpProblem::MeanOutputBits(out.bits));
    }
    let cells = x.shape.h as u64 * x.shape.w as u64;
    if cells > MAX_MEAN_CELLS as u64 {
        return Err(OpProblem::MeanCells {
            cells,
            max: MAX_MEAN_CELLS,
        });
    }
    if mean.multiplier <= 0 {
        return Err(OpProblem::MeanMultiplier(mean.multiplier));
    }
    if !(-31..=30).contains(&mean.shift) {
        return Err(OpProblem::Shift {
            index: 0,
            value: mean.shift,
            min: -31,
            max: 30,
        });
    }
    Ok(())
}

/// TFLM derives these with `PreprocessSoftmaxScaling` and `CalculateInputRadius`; anything
/// those cannot produce either overflows the kernel's i32 arithmetic or cannot be run by a
/// single-rounding build, so it is refused here rather than defined.
fn check_softmax_params(sm: &Softmax, rounding: Rounding) -> Check {
    if sm.input_multiplier < (1 << 30) {
        return Err(OpProblem::SoftmaxMultiplier(sm.input_multiplier));
    }
    // Double rounding multiplies by 2^shift in i32 (31 is reachable: the real multiplier is
    // capped at 2^31 − 1); single rounding shifts right by 31 − shift, which needs shift ≤ 30
    // (TFLM caps its real multiplier at 2^30 − 1 for exactly that reason).
    let max_shift = match rounding {
        Rounding::Double => 31,
        Rounding::Single => 30,
    };
    if !(0..=max_shift).contains(&sm.input_left_shift) {
        return Err(OpProblem::Shift {
            index: 0,
            value: sm.input_left_shift,
            min: 0,
            max: max_shift,
        });
    }
    let min = -Softmax::input_radius(sm.input_left_shift);
    if !(min..=0).contains(&sm.diff_min) {
        return Err(OpProblem::SoftmaxDiffMin {
            value: sm.diff_min,
            min,
        });
    }
    Ok(())
}

/// TFLM derives these in Prepare; anything it cannot produce either overflows the kernel's i32
/// rescaling (a radius past `CalculateInputRadius`) or cannot be run by a single-rounding build
/// (a shift of 31), so it is refused here rather than defined.
fn check_logistic_params(l: &Logistic, rounding: Rounding) -> Check {
    if l.input_multiplier < (1 << 30) {
        return Err(OpProblem::Multiplier {
            index: 0,
            value: l.input_multiplier,
        });
    }
    let max_shift = match rounding {
        Rounding::Double => 31,
        Rounding::Single => 30,
    };
    if !(0..=max_shift).contains(&l.input_left_shift) {
        return Err(OpProblem::Shift {
            index: 0,
            value: l.input_left_shift,
            min: 0,
            max: max_shift,
        });
    }
    let max = Logistic::input_radius(l.input_left_shift);
    if !(0..=max).contains(&l.input_range_radius) {
        return Err(OpProblem::InputRadius {
            value: l.input_range_radius,
            max,
        });
    }
    Ok(())
}

/// What `HardSwishPrepare` can produce: 16-bit multipliers rounded from `QuantizeMultiplier`'s
/// range (or 0), an output exponent in `[−31, 0]` (TFLM refuses a positive one), a reluish
/// exponent in `[−31, 31]` (beyond 31 TFLM's `1 << (exponent − 1)` is undefined).
fn check_hard_swish_params(hs: &HardSwish) -> Check {
    for (index, m) in [(0, hs.reluish_multiplier), (1, hs.output_multiplier)] {
        if m != 0 && m < (1 << 14) {
            return Err(OpProblem::Multiplier16 { index, value: m });
        }
    }
    for (index, value, max) in [(0, hs.reluish_shift, 31), (1, hs.output_shift, 0)] {
        if !(-31..=max).contains(&value) {
            return Err(OpProblem::Shift {
                index,
                value,
                min: -31,
                max,
            });
        }
    }
    Ok(())
}

fn check_window(w: &Window, kmin: u8, kmax: u8, dmax: u8) -> Check {
    if !(kmin..=kmax).contains(&w.kernel_h) || !(kmin..=kmax).contains(&w.kernel_w) {
        return Err(OpProblem::Kernel {
            h: w.kernel_h,
            w: w.kernel_w,
            min: kmin,
            max: kmax,
        });
    }
    if !(1..=2).contains(&w.stride_h) || !(1..=2).contains(&w.stride_w) {
        return Err(OpProblem::Stride {
            h: w.stride_h,
            w: w.stride_w,
        });
    }
    if !(1..=dmax).contains(&w.dilation_h) || !(1..=dmax).contains(&w.dilation_w) {
        return Err(OpProblem::Dilation {
            h: w.dilation_h,
            w: w.dilation_w,
            max: dmax,
        });
    }
    let eff_h = (w.kernel_h as u16 - 1) * w.dilation_h as u16 + 1;
    let eff_w = (w.kernel_w as u16 - 1) * w.dilation_w as u16 + 1;
    let p = w.padding;
    for (pad, eff) in [
        (p.top, eff_h),
        (p.bottom, eff_h),
        (p.left, eff_w),
        (p.right, eff_w),
    ] {
        if pad as u16 >= eff {
            return Err(OpProblem::Padding(pad));
        }
    }
    Ok(())
}

fn check_shape(w: &Window, x: &TensorRecord, c: u32, out: &TensorRecord) -> Check {
    let oh = w.output_h(x.shape.h as u32).unwrap_or(0);
    let ow = w.output_w(x.shape.w as u32).unwrap_or(0);
    expect_shape(out, oh, ow, c)
}

fn expect_shape(out: &TensorRecord, h: u32, w: u32, c: u32) -> Check {
    let s = out.shape;
    if (s.h as u32, s.w as u32, s.c as u32) != (h, w, c) {
        return Err(OpProblem::OutputShape {
            h,
            w,
            c,
            found_h: s.h,
            found_w: s.w,
            found_c: s.c,
        });
    }
    Ok(())
}

/// Along each axis the input has the output's length or 1 (TFLite's broadcasting of
/// `[1, H, W, C]` shapes, which is all `BroadcastMul6DSlow` needs here).
fn broadcasts_to(id: TensorId, x: &TensorRecord, out: &TensorRecord) -> Check {
    let (a, b) = (x.shape, out.shape);
    let fits = |i: u16, o: u16| i == o || i == 1;
    if fits(a.h, b.h) && fits(a.w, b.w) && fits(a.c, b.c) {
        Ok(())
    } else {
        Err(OpProblem::InputShape(id))
    }
}

fn same_quant(x: &TensorRecord, out: &TensorRecord) -> Check {
    if x.zero_point != out.zero_point || x.bits != out.bits {
        return Err(OpProblem::QuantMismatch);
    }
    Ok(())
}

fn check_clamp(c: Clamp, out: &TensorRecord) -> Check {
    if c.min > c.max || c.min < out.qmin() || c.max > out.qmax() {
        return Err(OpProblem::Clamp {
            min: c.min,
            max: c.max,
            bits: out.bits,
        });
    }
    Ok(())
}

/// A multiplier must be QuantizeMultiplier's output: 0, or in [2^30, 2^31 − 1].
fn check_multiplier(index: u32, m: i32, shift: i8, max_shift: i8) -> Check {
    if m != 0 && m < (1 << 30) {
        return Err(OpProblem::Multiplier { index, value: m });
    }
    if !(-31..=max_shift).contains(&shift) {
        return Err(OpProblem::Shift {
            index,
            value: shift,
            min: -31,
            max: max_shift,
        });
    }
    Ok(())
}

/// Where channel `c`'s `per_channel` weights sit in a weight tensor of `cout` channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Each channel's filter is contiguous: weight `k` of channel `c` is element
    /// `c·per_channel + k` (conv OHWI, linear `[co][k]`).
    ChannelMajor,
    /// The channel index is fastest: weight `k` of channel `c` is element `k·cout + c`
    /// (depthwise `[kh][kw][c]`).
    ChannelFastest,
}

fn check_weighted(
    w: &Weights<'_>,
    bias: &[u8],
    rq: &Requant<'_>,
    cout: u32,
    per_channel: u64,
    layout: Layout,
) -> Check {
    if !matches!(w.bits, 2 | 4 | 8) {
        return Err(OpProblem::WeightBits(w.bits));
    }
    let elements = cout as u64 * per_channel;
    let expected = packed_len(elements, w.bits).unwrap_or(u64::MAX);
    if w.data.len() as u64 != expected {
        return Err(OpProblem::WeightLength {
            elements: elements.min(u32::MAX as u64) as u32,
            bits: w.bits,
            expected: expected.min(u32::MAX as u64) as u32,
            found: w.data.len(),
        });
    }
    let entries = match w.scheme {
        WeightScheme::PerTensorAffine => {
            if w.zero_point < qmin(w.bits) || w.zero_point > qmax(w.bits) {
                return Err(OpProblem::WeightZeroPoint(w.zero_point));
            }
            1
        }
        WeightScheme::PerChannelSymmetric => {
            if w.zero_point != 0 {
                return Err(OpProblem::WeightZeroPoint(w.zero_point));
            }
            cout
        }
    };
    if rq.multipliers.0.len() != entries as usize * 4 || rq.shifts.len() != entries as usize {
        return Err(OpProblem::RequantCount {
            multipliers: rq.multipliers.0.len() / 4,
            shifts: rq.shifts.len(),
            expected: entries,
        });
    }
    for (i, (m, &s)) in rq.multipliers.iter().zip(rq.shifts).enumerate() {
        check_multiplier(i as u32, m, s as i8, 30)?;
    }
    if bias.len() != cout as usize * 4 {
        return Err(OpProblem::BiasLength {
            channels: cout,
            found: bias.len(),
        });
    }
    // Worst case |Σ w·(x−z_x) − z_w·Σ(x−z_x) + b| ≤ Σ(|w| + |z_w|)·255 + |b|; every partial sum
    // is bounded by the same figure, so a channel under i32::MAX can never overflow.
    let bias = crate::le::LeI32s::new(bias);
    for c in 0..cout as u64 {
        let weights = (0..per_channel).map(|k| {
            let index = match layout {
                Layout::ChannelMajor => c * per_channel + k,
                Layout::ChannelFastest => k * cout as u64 + c,
            };
            unpack_one(w.data, w.bits, index as usize) as i64
        });
        let weight_bound = weight_term_bound(weights, w.zero_point);
        let b = bias.get(c as usize).unwrap_or(0);
        if !fits_i32(b, weight_bound) {
            return Err(OpProblem::AccumulatorOverflow {
                channel: c as u32,
                bound: (b as i64).abs().saturating_add(weight_bound),
            });
        }
    }
    Ok(())
}

#[cfg(all(test, feature = "std"))]
#[path = "validate_tests.rs"]
mod tests;

#[cfg(all(test, feature = "std"))]
#[path = "validate_mean_tests.rs"]
mod mean_tests;

#[cfg(all(test, feature = "std"))]
#[path = "validate_elementwise_tests.rs"]
mod elementwise_tests;

#[cfg(all(test, feature = "std"))]
#[path = "validate_table_tests.rs"]
mod table_tests;

#[cfg(all(test, feature = "std"))]
#[path = "validate_inplace_tests.rs"]
mod inplace_tests;
