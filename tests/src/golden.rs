//! The golden interpreter: NUMERICS.md written out as plain nested loops over `i64`.
//!
//! It shares no code with `edge-runtime` (nor with `shared_format::packing`'s unpackers): the
//! only thing it takes from `shared-format` is the decoded [`Model`] and its ops, which is the
//! contract under test. It is deliberately slow and obvious: one loop per index, every value
//! widened to `i64`, every wrap-around and saturation of NUMERICS.md spelled out where it happens,
//! so a reader can check it against the contract line by line.

use shared_format::{
    Add, Clamp, Concat, Conv2d, DepthwiseConv2d, FormatError, GlobalAvgPool, HardSwish, Linear,
    Logistic, Mean, Model, Mul, Op, Pool, Requant, Rounding, Shape, Softmax, Table, TensorId,
    TensorRecord, WeightScheme, Weights, Window,
};

/// Why the golden interpreter refused to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoldenError {
    /// The input slice does not have `H·W·C` values.
    InputLength {
        /// Values expected.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// An input value outside the input tensor's bit range.
    InputRange {
        /// Position in the input slice.
        index: usize,
        /// The value.
        value: i8,
        /// Input bit-width.
        bits: u8,
    },
    /// An op failed to decode (cannot happen for a model that `Model::from_bytes` accepted).
    Format(FormatError),
}

/// Runs `model` on `input` and returns the output tensor (the logits), HWC order.
pub fn run(model: &Model<'_>, input: &[i8]) -> Result<Vec<i8>, GoldenError> {
    let all = run_all(model, input)?;
    Ok(all[model.output().tensor as usize].clone())
}

/// Runs `model` on `input` and returns every tensor's values, indexed by tensor id (for
/// pinpointing the first op where two implementations diverge).
pub fn run_all(model: &Model<'_>, input: &[i8]) -> Result<Vec<Vec<i8>>, GoldenError> {
    let input_id = model.input().tensor;
    let x = record(model, input_id);
    let expected = (x.shape.h as usize) * (x.shape.w as usize) * (x.shape.c as usize);
    if input.len() != expected {
        return Err(GoldenError::InputLength {
            expected,
            found: input.len(),
        });
    }
    let (lo, hi) = bit_range(x.bits);
    for (index, &value) in input.iter().enumerate() {
        if (value as i64) < lo || (value as i64) > hi {
            return Err(GoldenError::InputRange {
                index,
                value,
                bits: x.bits,
            });
        }
    }

    let mut values: Vec<Vec<i8>> = vec![Vec::new(); model.tensors().len()];
    values[input_id as usize] = input.to_vec();
    let rounding = model.rounding();
    for op in model.ops() {
        let op = op.map_err(GoldenError::Format)?;
        let out = match &op {
            Op::Conv2d(c) => conv2d(model, &values, rounding, c),
            Op::DepthwiseConv2d(d) => depthwise(model, &values, rounding, d),
            Op::MaxPool(p) => pool(model, &values, p, PoolKind::Max),
            Op::AvgPool(p) => pool(model, &values, p, PoolKind::Avg),
            Op::GlobalAvgPool(g) => global_avg_pool(model, &values, g),
            Op::Add(a) => add(model, &values, rounding, a),
            Op::Concat(c) => concat(model, &values, rounding, c),
            Op::Linear(l) => linear(model, &values, rounding, l),
            Op::Softmax(sm) => softmax(model, &values, rounding, sm),
            Op::Mean(m) => mean(model, &values, rounding, m),
            Op::Mul(m) => mul(model, &values, rounding, m),
            Op::Logistic(l) => logistic(model, &values, rounding, l),
            Op::HardSwish(hs) => hard_swish(model, &values, hs),
            Op::Table(t) => table(model, &values, t),
        };
        let rec = record(model, op.output());
        assert_eq!(
            out.len() as u64,
            rec.shape.elements(),
            "golden: output size"
        );
        values[op.output() as usize] = out;
    }
    Ok(values)
}

// ---------------------------------------------------------------------------------------------
// Fixed-point primitives (NUMERICS.md "Requantization"), all in i64.

/// Wraps an `i64` to two's-complement 32 bits (what `wrapping_*` on `i32` does).
pub fn wrap_i32(v: i64) -> i64 {
    let low = v & 0xFFFF_FFFF;
    if low >= 1 << 31 { low - (1 << 32) } else { low }
}

/// `SaturatingRoundingDoublingHighMul(a, b)`, gemmlowp.
pub fn srdhm(a: i64, b: i64) -> i64 {
    let min = i32::MIN as i64;
    if a == min && b == min {
        return i32::MAX as i64;
    }
    let p = a * b;
    let nudge = if p >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Rust's `/` on integers truncates toward zero, as the contract asks.
    (p + nudge) / (1i64 << 31)
}

/// `RoundingDivideByPOT(x, n)`, gemmlowp: divide by 2^n rounding half away from zero.
pub fn rdbpot(x: i64, n: u32) -> i64 {
    let mask = (1i64 << n) - 1;
    let r = x & mask;
    let t = (mask >> 1) + if x < 0 { 1 } else { 0 };
    (x >> n) + if r > t { 1 } else { 0 }
}

/// `MultiplyByQuantizedMultiplier(a, m, e)` in the model's rounding mode.
pub fn mbqm(a: i64, m: i64, e: i64, rounding: Rounding) -> i64 {
    assert!(
        a >= i32::MIN as i64 && a <= i32::MAX as i64,
        "MBQM input must be an i32"
    );
    match rounding {
        Rounding::Double => {
            let left = e.max(0);
            let right = (-e).max(0);
            // `a.wrapping_mul(1 << left)`: the multiply wraps in 32 bits.
            let shifted = wrap_i32(a * (1i64 << left));
            rdbpot(srdhm(shifted, m), right as u32)
        }
        Rounding::Single => {
            let total = 31 - e;
            assert!(
                (1..=62).contains(&total),
                "single rounding: 31 - e = {total}"
            );
            let p = a * m + (1i64 << (total - 1));
            // `as i32` truncates to the low 32 bits.
            wrap_i32(p >> total)
        }
    }
}

/// The output stage of every requantizing op:
/// `clamp(MBQM(acc, m, e).saturating_add(z_y), lo, hi)`.
fn output_stage(acc: i64, (m, e): (i64, i64), z_y: i64, clamp: Clamp, rounding: Rounding) -> i8 {
    let y = mbqm(acc, m, e, rounding);
    let y = (y + z_y).clamp(i32::MIN as i64, i32::MAX as i64); // saturating_add on i32
    clamp_to(y, clamp)
}

fn clamp_to(y: i64, clamp: Clamp) -> i8 {
    let y = y.max(clamp.min as i64).min(clamp.max as i64);
    y as i8
}

/// Signed range of a `bits`-wide integer.
pub fn bit_range(bits: u8) -> (i64, i64) {
    (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
}

// ---------------------------------------------------------------------------------------------
// Sub-byte weights (EDGE_ANCHORS §3.6), written from the description, not from `packing`.

/// Weight `index` of a packed array: 8-bit plain two's complement; 4-bit two per byte with even
/// elements in the low nibble; 2-bit four per byte, element 0 in the two least significant bits.
pub fn weight_at(w: &Weights<'_>, index: usize) -> i64 {
    let bits = w.bits as usize;
    let per_byte = 8 / bits;
    let byte = w.data[index / per_byte] as i64;
    let field = (byte >> (bits * (index % per_byte))) & ((1 << bits) - 1);
    // Sign-extend the `bits`-wide field.
    if field >= 1 << (bits - 1) {
        field - (1 << bits)
    } else {
        field
    }
}

fn bias_at(bias: &shared_format::LeI32s<'_>, c: usize) -> i64 {
    let b = &bias.0[4 * c..4 * c + 4];
    i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64
}

/// `(m, e)` of output channel `c`; a per-tensor table repeats its one entry.
fn requant_at(rq: &Requant<'_>, c: usize) -> (i64, i64) {
    let i = if rq.shifts.len() == 1 { 0 } else { c };
    let b = &rq.multipliers.0[4 * i..4 * i + 4];
    let m = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
    let e = rq.shifts[i] as i8 as i64;
    (m, e)
}

fn weight_zero_point(w: &Weights<'_>) -> i64 {
    match w.scheme {
        WeightScheme::PerTensorAffine => w.zero_point as i64,
        WeightScheme::PerChannelSymmetric => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Ops.

fn record(model: &Model<'_>, id: TensorId) -> TensorRecord {
    model.tensors().get(id).expect("validated tensor id")
}

/// A tensor's values with its shape, indexed `(y, x, c)`.
struct View<'v> {
    data: &'v [i8],
    h: i64,
    w: i64,
    c: i64,
    zero_point: i64,
}

impl View<'_> {
    fn at(&self, y: i64, x: i64, c: i64) -> i64 {
        self.data[((y * self.w + x) * self.c + c) as usize] as i64
    }
}

fn view<'v>(model: &Model<'_>, values: &'v [Vec<i8>], id: TensorId) -> View<'v> {
    let r = record(model, id);
    let data = &values[id as usize];
    assert_eq!(
        data.len() as u64,
        r.shape.elements(),
        "golden: tensor {id} not computed"
    );
    View {
        data,
        h: r.shape.h as i64,
        w: r.shape.w as i64,
        c: r.shape.c as i64,
        zero_point: r.zero_point as i64,
    }
}

fn out_shape(model: &Model<'_>, id: TensorId) -> (i64, i64, i64, i64) {
    let r = record(model, id);
    (
        r.shape.h as i64,
        r.shape.w as i64,
        r.shape.c as i64,
        r.zero_point as i64,
    )
}

/// Input row/column of kernel tap `k` at output position `o` along one axis.
fn tap(o: i64, k: i64, stride: u8, pad_before: u8, dilation: u8) -> i64 {
    o * stride as i64 - pad_before as i64 + k * dilation as i64
}

fn conv2d(model: &Model<'_>, values: &[Vec<i8>], rounding: Rounding, op: &Conv2d<'_>) -> Vec<i8> {
    let x = view(model, values, op.input);
    let (oh, ow, oc, z_y) = out_shape(model, op.output);
    let acc = conv2d_acc(&x, (oh, ow, oc), op);
    requantize(&acc, oc, &op.requant, z_y, op.clamp, rounding)
}

/// Conv2d accumulators, HWC: `b + Σ w·(x − z_x) − z_w·Σ(x − z_x)` over the valid taps.
fn conv2d_acc(x: &View<'_>, (oh, ow, oc): (i64, i64, i64), op: &Conv2d<'_>) -> Vec<i64> {
    let win: &Window = &op.window;
    let (kh, kw) = (win.kernel_h as i64, win.kernel_w as i64);
    let z_w = weight_zero_point(&op.weights);
    let mut out = Vec::with_capacity((oh * ow * oc) as usize);
    for oy in 0..oh {
        for ox in 0..ow {
            for co in 0..oc {
                let mut sum_wx = 0i64;
                let mut sum_x = 0i64;
                for ky in 0..kh {
                    let iy = tap(oy, ky, win.stride_h, win.padding.top, win.dilation_h);
                    for kx in 0..kw {
                        let ix = tap(ox, kx, win.stride_w, win.padding.left, win.dilation_w);
                        if iy < 0 || iy >= x.h || ix < 0 || ix >= x.w {
                            continue; // padded: skipped, i.e. x = z_x
                        }
                        for ci in 0..x.c {
                            let xc = x.at(iy, ix, ci) - x.zero_point;
                            let w = weight_at(
                                &op.weights,
                                (((co * kh + ky) * kw + kx) * x.c + ci) as usize,
                            );
                            sum_wx += w * xc;
                            sum_x += xc;
                        }
                    }
                }
                out.push(bias_at(&op.bias, co as usize) + sum_wx - z_w * sum_x);
            }
        }
    }
    out
}

/// The output stage over HWC accumulators whose channel is `index % channels`.
fn requantize(
    acc: &[i64],
    channels: i64,
    rq: &Requant<'_>,
    z_y: i64,
    clamp: Clamp,
    rounding: Rounding,
) -> Vec<i8> {
    acc.iter()
        .enumerate()
        .map(|(i, &a)| {
            // Validation bounds every partial sum below 2^31; an i32 accumulator never wraps.
            assert!(i32::try_from(a).is_ok(), "accumulator {a} exceeds i32");
            let c = i % channels as usize;
            output_stage(a, requant_at(rq, c), z_y, clamp, rounding)
        })
        .collect()
}

fn depthwise(
    model: &Model<'_>,
    values: &[Vec<i8>],
    rounding: Rounding,
    op: &DepthwiseConv2d<'_>,
) -> Vec<i8> {
    let x = view(model, values, op.input);
    let (oh, ow, oc, z_y) = out_shape(model, op.output);
    let acc = depthwise_acc(&x, (oh, ow, oc), op);
    requantize(&acc, oc, &op.requant, z_y, op.clamp, rounding)
}

/// DepthwiseConv2d accumulators, HWC: Conv2d with `ci = co` only.
fn depthwise_acc(
    x: &View<'_>,
    (oh, ow, oc): (i64, i64, i64),
    op: &DepthwiseConv2d<'_>,
) -> Vec<i64> {
    let win = &op.window;
    let (kh, kw) = (win.kernel_h as i64, win.kernel_w as i64);
    let z_w = weight_zero_point(&op.weights);
    let mut out = Vec::with_capacity((oh * ow * oc) as usize);
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..oc {
                let mut sum_wx = 0i64;
                let mut sum_x = 0i64;
                for ky in 0..kh {
                    let iy = tap(oy, ky, win.stride_h, win.padding.top, win.dilation_h);
                    for kx in 0..kw {
                        let ix = tap(ox, kx, win.stride_w, win.padding.left, win.dilation_w);
                        if iy < 0 || iy >= x.h || ix < 0 || ix >= x.w {
                            continue;
                        }
                        let xc = x.at(iy, ix, c) - x.zero_point;
                        // Weights `[ky][kx][c]` (1HWC): the channel index is fastest.
                        let w = weight_at(&op.weights, ((ky * kw + kx) * oc + c) as usize);
                        sum_wx += w * xc;
                        sum_x += xc;
                    }
                }
                out.push(bias_at(&op.bias, c as usize) + sum_wx - z_w * sum_x);
            }
        }
    }
    out
}

#[derive(Clone, Copy)]
enum PoolKind {
    Max,
    Avg,
}

/// TFLM's rounded average: `(s ± n/2) / n` with truncating division.
fn rounded_average(s: i64, n: i64) -> i64 {
    if s > 0 {
        (s + n / 2) / n
    } else {
        (s - n / 2) / n
    }
}

fn pool(model: &Model<'_>, values: &[Vec<i8>], op: &Pool, kind: PoolKind) -> Vec<i8> {
    let x = view(model, values, op.input);
    let (oh, ow, oc, _) = out_shape(model, op.output);
    let win = &op.window;
    let mut out = Vec::with_capacity((oh * ow * oc) as usize);
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..oc {
                let mut max = i64::MIN;
                let mut sum = 0i64;
                let mut n = 0i64;
                for ky in 0..win.kernel_h as i64 {
                    let iy = tap(oy, ky, win.stride_h, win.padding.top, win.dilation_h);
                    for kx in 0..win.kernel_w as i64 {
                        let ix = tap(ox, kx, win.stride_w, win.padding.left, win.dilation_w);
                        if iy < 0 || iy >= x.h || ix < 0 || ix >= x.w {
                            continue;
                        }
                        let v = x.at(iy, ix, c);
                        max = max.max(v);
                        sum += v;
                        n += 1;
                    }
                }
                assert!(n > 0, "validation guarantees a valid tap in every window");
                let r = match kind {
                    PoolKind::Max => max,
                    PoolKind::Avg => rounded_average(sum, n),
                };
                out.push(clamp_to(r, op.clamp));
            }
        }
    }
    out
}

fn global_avg_pool(model: &Model<'_>, values: &[Vec<i8>], op: &GlobalAvgPool) -> Vec<i8> {
    let x = view(model, values, op.input);
    let mut out = Vec::with_capacity(x.c as usize);
    for c in 0..x.c {
        let mut sum = 0i64;
        for y in 0..x.h {
            for xx in 0..x.w {
                sum += x.at(y, xx, c);
            }
        }
        out.push(clamp_to(rounded_average(sum, x.h * x.w), op.clamp));
    }
    out
}

fn add(model: &Model<'_>, values: &[Vec<i8>], rounding: Rounding, op: &Add) -> Vec<i8> {
    let a = view(model, values, op.inputs[0].tensor);
    let b = view(model, values, op.inputs[1].tensor);
    let (_, _, _, z_y) = out_shape(model, op.output);
    let (ia, ib) = (&op.inputs[0], &op.inputs[1]);
    let mut out = Vec::with_capacity(a.data.len());
    for i in 0..a.data.len() {
        let xa = (a.data[i] as i64 - a.zero_point) * (1i64 << op.left_shift);
        let xb = (b.data[i] as i64 - b.zero_point) * (1i64 << op.left_shift);
        let ra = mbqm(xa, ia.multiplier as i64, ia.shift as i64, rounding);
        let rb = mbqm(xb, ib.multiplier as i64, ib.shift as i64, rounding);
        let acc = wrap_i32(ra + rb); // wrapping_add on i32
        out.push(output_stage(
            acc,
            (op.output_multiplier as i64, op.output_shift as i64),
            z_y,
            op.clamp,
            rounding,
        ));
    }
    out
}

fn concat(model: &Model<'_>, values: &[Vec<i8>], rounding: Rounding, op: &Concat) -> Vec<i8> {
    let (oh, ow, oc, z_y) = out_shape(model, op.output);
    let inputs: Vec<View<'_>> = op
        .inputs
        .iter()
        .map(|i| view(model, values, i.tensor))
        .collect();
    let mut out = Vec::with_capacity((oh * ow * oc) as usize);
    for y in 0..oh {
        for x in 0..ow {
            for (input, spec) in inputs.iter().zip(&op.inputs) {
                for c in 0..input.c {
                    let centred = input.at(y, x, c) - input.zero_point;
                    out.push(output_stage(
                        centred,
                        (spec.multiplier as i64, spec.shift as i64),
                        z_y,
                        op.clamp,
                        rounding,
                    ));
                }
            }
        }
    }
    out
}

fn linear(model: &Model<'_>, values: &[Vec<i8>], rounding: Rounding, op: &Linear<'_>) -> Vec<i8> {
    let x = view(model, values, op.input);
    let (_, _, oc, z_y) = out_shape(model, op.output);
    let acc = linear_acc(&x, oc, op);
    requantize(&acc, oc, &op.requant, z_y, op.clamp, rounding)
}

/// Linear accumulators over the HWC-flattened input.
fn linear_acc(x: &View<'_>, oc: i64, op: &Linear<'_>) -> Vec<i64> {
    let k = x.data.len() as i64;
    let z_w = weight_zero_point(&op.weights);
    let mut out = Vec::with_capacity(oc as usize);
    for co in 0..oc {
        let mut sum_wx = 0i64;
        let mut sum_x = 0i64;
        for i in 0..k {
            let xc = x.data[i as usize] as i64 - x.zero_point;
            sum_wx += weight_at(&op.weights, (co * k + i) as usize) * xc;
            sum_x += xc;
        }
        out.push(bias_at(&op.bias, co as usize) + sum_wx - z_w * sum_x);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Softmax (NUMERICS.md "Softmax"): gemmlowp's fixed point as i64 arithmetic on the raw values,
// each saturation written as a clamp of the exact result and each plain i32 add as a wrap.

/// `2^31`, the scale of a Q0.31 raw value.
const Q31: i64 = 1 << 31;

/// gemmlowp's saturating `x · 2^k`: the exact product clamped to i32.
fn saturating_mul_pot(x: i64, k: u32) -> i64 {
    (x * (1i64 << k)).clamp(i32::MIN as i64, i32::MAX as i64)
}

/// `exp(a)` for Q0.31 `a ∈ [−1/4, 0)`: the Taylor expansion of gemmlowp around −1/8.
fn exp_near_zero(a: i64) -> i64 {
    let exp_minus_eighth = 1_895_147_668; // exp(−1/8)
    let third = 715_827_883; // 1/3
    let x = wrap_i32(a + (1 << 28)); // a + 1/8
    let x2 = srdhm(x, x);
    let x3 = srdhm(x2, x);
    let x4 = srdhm(x2, x2);
    let cubic_and_quartic = srdhm(wrap_i32(rdbpot(x4, 2) + x3), third); // (x⁴/4 + x³)/3
    let taylor_tail = rdbpot(wrap_i32(cubic_and_quartic + x2), 1); // x⁴/24 + x³/6 + x²/2
    wrap_i32(exp_minus_eighth + srdhm(exp_minus_eighth, wrap_i32(x + taylor_tail)))
}

/// `exp(a)` in Q0.31 for a Q5.26 `a ≤ 0` (softmax's input).
fn exp_of_negative(a: i64) -> i64 {
    exp_of_negative_q(a, 5)
}

/// `exp(a)` in Q0.31 for a `Q{integer_bits}` `a ≤ 0` (4 or 5 integer bits): the fractional
/// quarter by Taylor, then one factor `exp(−2^k)` per set bit of the whole quarters, for the
/// `k < integer_bits` gemmlowp compiles in.
fn exp_of_negative_q(a: i64, integer_bits: u32) -> i64 {
    assert!(integer_bits <= 5, "no clamp below −32 is implemented");
    if a == 0 {
        return i32::MAX as i64; // gemmlowp's One in Q0.31
    }
    let fraction_bits = 31 - integer_bits as i64;
    let quarter = 1i64 << (fraction_bits - 2); // 1/4
    let frac = wrap_i32((a & (quarter - 1)) - quarter); // in [−1/4, 0)
    let mut result = exp_near_zero(saturating_mul_pot(frac, integer_bits)); // → Q0.31
    let whole_quarters = wrap_i32(frac - a);
    let factors = [
        1_672_461_947, // exp(−1/4)
        1_302_514_674, // exp(−1/2)
        790_015_084,   // exp(−1)
        290_630_308,   // exp(−2)
        39_332_535,    // exp(−4)
        720_401,       // exp(−8)
        242,           // exp(−16)
    ];
    for (k, factor) in (-2i64..).zip(factors) {
        if k < integer_bits as i64 && (whole_quarters >> (fraction_bits + k)) & 1 == 1 {
            result = srdhm(result, factor);
        }
    }
    result
}

/// TFLM's int8 LOGISTIC: saturate outside the radius, else σ of the Q4.27 rescaled input as
/// `1 / (1 + exp(−|a|))`, complemented for negative `a`, in 1/256 steps from −128.
fn logistic(model: &Model<'_>, values: &[Vec<i8>], rounding: Rounding, op: &Logistic) -> Vec<i8> {
    let x = view(model, values, op.input);
    let radius = op.input_range_radius as i64;
    x.data
        .iter()
        .map(|&v| {
            let d = v as i64 - x.zero_point;
            if d <= -radius {
                return i8::MIN;
            }
            if d >= radius {
                return i8::MAX;
            }
            let (m, e) = (op.input_multiplier as i64, op.input_left_shift as i64);
            let a = mbqm(d, m, e, rounding); // Q4.27
            let sigma = if a == 0 {
                1 << 30 // exactly 1/2
            } else {
                let positive = reciprocal_of_one_plus(exp_of_negative_q(-a.abs(), 4));
                if a > 0 {
                    positive
                } else {
                    i32::MAX as i64 - positive
                }
            };
            (rdbpot(sigma, 23) - 128).clamp(-128, 127) as i8
        })
        .collect()
}

/// `1 / (1 + a)` in Q0.31 for Q0.31 `a ∈ [0, 1)`: gemmlowp's three Newton–Raphson steps in Q2.29.
fn reciprocal_of_one_plus(a: i64) -> i64 {
    let sum = a + i32::MAX as i64;
    // RoundingHalfSum: (sum ± 1) / 2, truncating toward zero.
    let half_denominator = if sum >= 0 {
        (sum + 1) / 2
    } else {
        (sum - 1) / 2
    };
    let one_q2 = 1i64 << 29;
    let mut x = wrap_i32(1_515_870_810 + srdhm(half_denominator, -1_010_580_540)); // 48/17 − 32/17·d
    for _ in 0..3 {
        let error = wrap_i32(one_q2 - srdhm(half_denominator, x));
        x = wrap_i32(x + saturating_mul_pot(srdhm(x, error), 2));
    }
    saturating_mul_pot(x, 1)
}

fn softmax(model: &Model<'_>, values: &[Vec<i8>], rounding: Rounding, op: &Softmax) -> Vec<i8> {
    let x = view(model, values, op.input);
    let (m, shift) = (op.input_multiplier as i64, op.input_left_shift as i64);
    let mut out = Vec::with_capacity(x.data.len());
    for row in x.data.chunks(x.c as usize) {
        let max = row.iter().map(|&v| v as i64).max().expect("C ≥ 1");
        // Each channel's exp in Q0.31, or None below diff_min.
        let exps: Vec<Option<i64>> = row
            .iter()
            .map(|&v| {
                let d = v as i64 - max;
                if d < op.diff_min as i64 {
                    return None;
                }
                let scaled = match rounding {
                    Rounding::Double => srdhm(wrap_i32(d * (1i64 << shift)), m),
                    Rounding::Single => mbqm(d, m, shift, rounding),
                };
                Some(exp_of_negative(scaled))
            })
            .collect();
        // Σ exp in Q12.19; validation keeps it in [2^19, 2^31).
        let sum: i64 = exps.iter().flatten().map(|&e| rdbpot(e, 12)).sum();
        assert!(
            (1 << 19..Q31).contains(&sum),
            "golden: sum of exps {sum} outside [2^19, 2^31)"
        );
        // GetReciprocal: double the sum into [2^31, 2^32), i.e. [1, 2) in Q0.31 plus one.
        let mut doublings = 0u32;
        while sum << doublings < Q31 {
            doublings += 1;
        }
        let bits_over_unit = 12 - doublings as i64;
        let reciprocal = reciprocal_of_one_plus((sum << doublings) - Q31);
        // Divide by 2^(bits_over_unit + 23): exactly rounded, whatever the exponent.
        let exponent = (bits_over_unit + 31 - 8) as u32;
        for e in exps {
            let y = match e {
                Some(e) => (rdbpot(srdhm(reciprocal, e), exponent) - 128).clamp(-128, 127),
                None => -128,
            };
            out.push(y as i8);
        }
    }
    out
}

// Mean (NUMERICS.md "Mean"): the stored (m, e) already hold TFLM's fold of 1/(H·W), so the op
// is one sum per channel, centred once, through the output stage with int8's full range.

fn mean(model: &Model<'_>, values: &[Vec<i8>], rounding: Rounding, op: &Mean) -> Vec<i8> {
    let x = view(model, values, op.input);
    let (_, _, _, z_y) = out_shape(model, op.output);
    let n = x.h * x.w;
    let int8 = Clamp {
        min: i8::MIN,
        max: i8::MAX,
    };
    let requant = (op.multiplier as i64, op.shift as i64);
    (0..x.c)
        .map(|c| {
            let mut sum = 0i64;
            for y in 0..x.h {
                for xx in 0..x.w {
                    sum += x.at(y, xx, c);
                }
            }
            // `s.wrapping_sub(z_x.wrapping_mul(n))` in i32 (validation keeps it exact).
            let acc = wrap_i32(sum - wrap_i32(x.zero_point * n));
            output_stage(acc, requant, z_y, int8, rounding)
        })
        .collect()
}

/// Wraps an `i64` to two's-complement 16 bits (C++'s conversion of an `int` to `int16_t`).
fn wrap_i16(v: i64) -> i64 {
    let low = v & 0xFFFF;
    if low >= 1 << 15 { low - (1 << 16) } else { low }
}

/// TFLM's `reference_ops::HardSwish` on int8, every `int16_t` intermediate wrapped to 16 bits:
/// gemmlowp's int16 `SaturatingRoundingDoublingHighMul` (nudged) and `RoundingDivideByPOT`
/// (whose mask `2^e − 1` is itself an `int16_t`), TFLM's `SaturatingLeftShift` and truncating
/// `SaturatingDoublingHighMul`.
fn hard_swish(model: &Model<'_>, values: &[Vec<i8>], op: &HardSwish) -> Vec<i8> {
    let x = view(model, values, op.input);
    let (_, _, _, z_y) = out_shape(model, op.output);
    let (i16_min, i16_max) = (i16::MIN as i64, i16::MAX as i64);
    let srdhm16 = |a: i64, b: i64| {
        if a == i16_min && b == i16_min {
            return i16_max;
        }
        let p = a * b;
        let nudge = if p >= 0 { 1 << 14 } else { 1 - (1 << 14) };
        wrap_i16((p + nudge) / (1 << 15))
    };
    let sdhm16 = |a: i64, b: i64| {
        if a == i16_min && b == i16_min {
            return i16_max;
        }
        wrap_i16(a * b / (1 << 15))
    };
    let rdbpot16 = |v: i64, e: i64| {
        let mask = wrap_i16((1i64 << e) - 1);
        let remainder = v & mask;
        let threshold = wrap_i16((mask >> 1) + i64::from(v < 0));
        wrap_i16((v >> e) + i64::from(remainder > threshold))
    };
    let left = |v: i64, amount: i64| (v * (1i64 << amount)).clamp(i16_min, i16_max);
    let (rm, re) = (op.reluish_multiplier as i64, op.reluish_shift as i64);
    let (om, oe) = (op.output_multiplier as i64, op.output_shift as i64);
    x.data
        .iter()
        .map(|&v| {
            let hires = (v as i64 - x.zero_point) * 128;
            let preshift = srdhm16(hires, om);
            let mut reluish = hires;
            if re > 0 {
                reluish = left(reluish, re - 1);
            }
            reluish = srdhm16(reluish, rm);
            if re > 0 {
                reluish = left(reluish, 1);
            }
            if re < 0 {
                reluish = rdbpot16(reluish, -re);
            }
            reluish = (reluish + (1 << 15)) >> 1;
            let y = wrap_i16(rdbpot16(sdhm16(reluish, preshift), -oe) + z_y);
            y.clamp(-128, 127) as i8
        })
        .collect()
}

/// NUMERICS.md's Table: the input byte indexes the stored values.
fn table(model: &Model<'_>, values: &[Vec<i8>], op: &Table<'_>) -> Vec<i8> {
    let x = view(model, values, op.input);
    x.data
        .iter()
        .map(|&v| op.values[usize::from(v as u8)] as i8)
        .collect()
}

/// TFLM's `BroadcastMul6DSlow` (equal shapes are its `MulElementwise`): an input axis of
/// length 1 is read at index 0 whatever the output index.
fn mul(model: &Model<'_>, values: &[Vec<i8>], rounding: Rounding, op: &Mul) -> Vec<i8> {
    let a = view(model, values, op.inputs[0]);
    let b = view(model, values, op.inputs[1]);
    let (oh, ow, oc, z_y) = out_shape(model, op.output);
    let at = |v: &View<'_>, y: i64, x: i64, c: i64| {
        let pick = |len: i64, i: i64| if len == 1 { 0 } else { i };
        v.at(pick(v.h, y), pick(v.w, x), pick(v.c, c)) - v.zero_point
    };
    let mut out = Vec::with_capacity((oh * ow * oc) as usize);
    for y in 0..oh {
        for x in 0..ow {
            for c in 0..oc {
                let product = at(&a, y, x, c) * at(&b, y, x, c);
                out.push(output_stage(
                    product,
                    (op.multiplier as i64, op.shift as i64),
                    z_y,
                    op.clamp,
                    rounding,
                ));
            }
        }
    }
    out
}

/// The i32 accumulators (before requantization) of a weighted op on an input `x` of shape
/// `x_shape` and zero point `x_zero_point`, in HWC order for an output of `out_shape`; `None` for
/// ops without weights. The generator uses this to calibrate realistic multipliers, as a
/// host calibrates on data.
pub fn accumulators(
    op: &Op<'_>,
    x: &[i8],
    x_shape: Shape,
    x_zero_point: i8,
    out_shape: Shape,
) -> Option<Vec<i64>> {
    let v = View {
        data: x,
        h: x_shape.h as i64,
        w: x_shape.w as i64,
        c: x_shape.c as i64,
        zero_point: x_zero_point as i64,
    };
    let o = (out_shape.h as i64, out_shape.w as i64, out_shape.c as i64);
    match op {
        Op::Conv2d(c) => Some(conv2d_acc(&v, o, c)),
        Op::DepthwiseConv2d(d) => Some(depthwise_acc(&v, o, d)),
        Op::Linear(l) => Some(linear_acc(&v, o.2, l)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a one-op model (input 16×16×1: every i8 value once, reversed as a second operand)
    /// through the golden interpreter and the edge runtime, which must agree byte for byte.
    fn golden_equals_runtime(op: impl Fn(TensorId, TensorId) -> Op<'static>, out_zero_point: i8) {
        use shared_format::{ModelBuilder, TensorSpec};
        for (zero_point, rounding) in [(0, Rounding::Double), (-37, Rounding::Single)] {
            let shape = Shape::new(16, 16, 1);
            let mut b = ModelBuilder::new(
                TensorSpec {
                    shape,
                    zero_point,
                    bits: 8,
                },
                0.05,
            );
            b.rounding(rounding);
            let out = b.tensor(TensorSpec {
                shape,
                zero_point: out_zero_point,
                bits: 8,
            });
            b.push(&op(0, out)).unwrap();
            let blob = b.finish(out, 0.05).unwrap();
            let model = Model::from_bytes(&blob).unwrap();
            let input: Vec<i8> = (-128..=127).collect();
            let want = run(&model, &input).unwrap();
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut interpreter = edge_runtime::Interpreter::new(&model, &mut arena).unwrap();
            assert_eq!(
                interpreter.run(&input).unwrap(),
                want.as_slice(),
                "{rounding:?}"
            );
        }
    }

    #[test]
    fn format_1_4_ops_agree_with_the_runtime() {
        use shared_format::{HardSwish, Logistic, Mul};
        let full = Clamp {
            min: i8::MIN,
            max: i8::MAX,
        };
        // The input times itself (x²), at a few requantizations, one with a fused clamp.
        for (multiplier, shift, clamp) in [
            (1 << 30, -6, full),
            (1_518_500_250, -9, full),
            (1_200_000_000, 0, Clamp { min: -20, max: 90 }),
        ] {
            golden_equals_runtime(
                |x, y| {
                    Op::Mul(Mul {
                        inputs: [x, x],
                        output: y,
                        multiplier,
                        shift,
                        clamp,
                    })
                },
                3,
            );
        }
        // Logistic at input scales 1/16 (shift 24) and 0.2 (shift 26: radius 30 saturates).
        for scale in [1.0 / 16.0, 0.2] {
            let l = Logistic::from_scale(0, 1, scale, Rounding::Single).unwrap();
            golden_equals_runtime(
                |x, y| {
                    Op::Logistic(Logistic {
                        input: x,
                        output: y,
                        ..l
                    })
                },
                -128,
            );
        }
        // Hard swish with a positive and a negative reluish exponent, and a zero output exponent.
        for (s_x, s_y) in [
            (0.05f32, 0.03f32),
            (0.002, 0.001),
            (3.0 / 64.0, 3.0 / 4096.0),
        ] {
            let hs = HardSwish::from_scales(0, 1, s_x, s_y, Rounding::Double).unwrap();
            golden_equals_runtime(
                |x, y| {
                    Op::HardSwish(HardSwish {
                        input: x,
                        output: y,
                        ..hs
                    })
                },
                17,
            );
        }
    }

    #[test]
    fn tables_agree_with_the_runtime() {
        let values = shared_format::op::table_of(|x| x.wrapping_mul(7) ^ 0x55);
        golden_equals_runtime(
            |x, y| {
                Op::Table(Table {
                    input: x,
                    output: y,
                    values: Box::leak(values.clone().into_boxed_slice()),
                })
            },
            0,
        );
    }

    #[test]
    fn sub_byte_unpacking_matches_the_anchor_examples() {
        // EDGE_ANCHORS §3.6: [1,2,3,4] packs to [0x21, 0x43]; 0x12 is {−2, 0, 1, 0} in 2 bits.
        let data = [0x21u8, 0x43];
        let w4 = Weights {
            bits: 4,
            scheme: WeightScheme::PerChannelSymmetric,
            zero_point: 0,
            data: &data,
        };
        let got: Vec<i64> = (0..4).map(|i| weight_at(&w4, i)).collect();
        assert_eq!(got, [1, 2, 3, 4]);
        let data = [0x12u8];
        let w2 = Weights {
            bits: 2,
            data: &data,
            ..w4
        };
        let got: Vec<i64> = (0..4).map(|i| weight_at(&w2, i)).collect();
        assert_eq!(got, [-2, 0, 1, 0]);
        let data = [0xF8u8, 0x80];
        let w4 = Weights { data: &data, ..w4 };
        let got: Vec<i64> = (0..4).map(|i| weight_at(&w4, i)).collect();
        assert_eq!(got, [-8, -1, 0, -8]);
    }

    #[test]
    fn srdhm_and_rdbpot_match_gemmlowp() {
        let min = i32::MIN as i64;
        assert_eq!(srdhm(min, min), i32::MAX as i64);
        // 0.5 · 0.5 in Q31 = 0.25.
        assert_eq!(srdhm(1 << 30, 1 << 30), 1 << 29);
        // Ties of RDBPOT round away from zero.
        assert_eq!(rdbpot(5, 1), 3);
        assert_eq!(rdbpot(-5, 1), -3);
        assert_eq!(rdbpot(-4, 1), -2);
        assert_eq!(rdbpot(6, 2), 2);
        assert_eq!(rdbpot(-6, 2), -2);
        assert_eq!(rdbpot(-7, 2), -2);
        assert_eq!(rdbpot(i32::MIN as i64, 31), -1);
        assert_eq!(rdbpot(i32::MAX as i64, 31), 1);
        assert_eq!(rdbpot(7, 0), 7);
    }

    /// A one-op softmax model over `rows` rows of `channels`.
    fn softmax_model(rows: u16, channels: u16, sm: Softmax, rounding: Rounding) -> Vec<u8> {
        use shared_format::{ModelBuilder, TensorSpec};
        let shape = Shape::new(rows, 1, channels);
        let mut b = ModelBuilder::new(
            TensorSpec {
                shape,
                zero_point: 0,
                bits: 8,
            },
            0.1,
        );
        b.rounding(rounding);
        let out = b.tensor(TensorSpec {
            shape,
            zero_point: -128,
            bits: 8,
        });
        b.push(&Op::Softmax(Softmax { output: out, ..sm })).unwrap();
        b.finish(out, 1.0 / 256.0).unwrap()
    }

    fn softmax_params(m: i32, shift: i8, diff_min: i32) -> Softmax {
        Softmax {
            input: 0,
            output: 1,
            input_multiplier: m,
            input_left_shift: shift,
            diff_min,
        }
    }

    /// CMSIS-NN's `arm_softmax_s8` test vectors, whose references come from TFLite.
    #[test]
    fn softmax_matches_tflite_reference_vectors() {
        let blob = softmax_model(
            1,
            5,
            softmax_params(1_077_952_576, 23, -248),
            Rounding::Double,
        );
        let model = Model::from_bytes(&blob).unwrap();
        assert_eq!(
            run(&model, &[-80, -48, 16, 0, -96]).unwrap(),
            [-128, -125, 56, -60, -128]
        );
        let blob = softmax_model(
            2,
            5,
            softmax_params(1_077_952_640, 19, -3968),
            Rounding::Double,
        );
        let model = Model::from_bytes(&blob).unwrap();
        assert_eq!(
            run(&model, &[101, 49, 6, -34, -75, -79, -38, 120, -55, 115]).unwrap(),
            [-57, -70, -79, -86, -92, -94, -88, -54, -91, -56]
        );
    }

    /// Equal logits share the unit: 256/N − 128 exactly for N a power of two; from 512 equal
    /// channels the share rounds to 0 (where TFLM would abort).
    #[test]
    fn softmax_of_equal_logits() {
        for (n, want) in [
            (1u16, 127i8),
            (2, 0),
            (4, -64),
            (64, -124),
            (256, -127),
            (600, -128),
        ] {
            for rounding in [Rounding::Double, Rounding::Single] {
                let sm = softmax_params(1_717_986_918, 23, -248);
                let blob = softmax_model(1, n, sm, rounding);
                let model = Model::from_bytes(&blob).unwrap();
                let y = run(&model, &vec![-7; n as usize]).unwrap();
                assert!(y.iter().all(|&v| v == want), "N {n} {rounding:?}: {}", y[0]);
            }
        }
    }

    /// Mean over 2×3 at s_y = s_x: QuantizeMultiplier(1) = (2^30, 1) folded by 6 gives
    /// k = 2, m = 2^32 / 6 = 715827882 (1/3 in Q31), e = −1: ×1/6.
    #[test]
    fn mean_of_a_hand_case() {
        use shared_format::{ModelBuilder, TensorSpec};
        let mut b = ModelBuilder::new(
            TensorSpec {
                shape: Shape::new(2, 3, 2),
                zero_point: -10,
                bits: 8,
            },
            0.1,
        );
        let out = b.tensor(TensorSpec {
            shape: Shape::new(1, 1, 2),
            zero_point: 20,
            bits: 8,
        });
        b.push(&Op::Mean(Mean {
            input: 0,
            output: out,
            multiplier: 715_827_882,
            shift: -1,
        }))
        .unwrap();
        let blob = b.finish(out, 0.1).unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        // Channel 0: Σ x = 0 + 1 + … + 5 = 15, centred 15 + 60 = 75 → 75 · 0.1666… = 12.5 →
        // SRDHM(75, 715827882) = 25 (24.99… rounds up), RDBPOT(25, 1) = 13 → 33. Channel 1:
        // Σ x = −6·100 = −600, centred −540 → −90 (exact) → −70.
        let x = [0, -100, 1, -100, 2, -100, 3, -100, 4, -100, 5, -100];
        assert_eq!(run(&model, &x).unwrap(), [33, -70]);
    }

    #[test]
    fn mbqm_examples() {
        // EDGE_ANCHORS §3.7's multiplier: m = 1518500250 ≈ 2^31/√2, e = −7.
        let (m, e) = (1_518_500_250, -7);
        assert_eq!(mbqm(1000, m, e, Rounding::Double), 6); // 1000/√2/128 = 5.52
        assert_eq!(mbqm(-1000, m, e, Rounding::Double), -6);
        assert_eq!(mbqm(1000, m, e, Rounding::Single), 6);
        // Double rounding wraps the left shift in 32 bits: 2^30 · 2 = i32::MIN.
        assert_eq!(mbqm(1 << 30, 1 << 30, 1, Rounding::Double), -(1 << 30));
        // Single rounding truncates the 64-bit result to 32 bits.
        assert_eq!(
            mbqm(i32::MAX as i64, i32::MAX as i64, 30, Rounding::Single),
            wrap_i32(((i32::MAX as i64) * (i32::MAX as i64) + 1) >> 1)
        );
        // −2 · 0.5 · 2^−1 = −0.5: double rounding gives −1 (SRDHM −1.5 → −1, then RDBPOT −0.5
        // rounds away from zero), single rounding rounds the half up to 0.
        assert_eq!(mbqm(-2, 1 << 30, -1, Rounding::Double), -1);
        assert_eq!(mbqm(-2, 1 << 30, -1, Rounding::Single), 0);
    }
}
