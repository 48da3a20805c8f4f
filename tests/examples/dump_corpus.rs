//! Writes valid models as seed inputs for the `decode_run` and `decode_run_sealed` fuzz targets.
//!
//! `cargo run -p tests --example dump_corpus -- edge-runtime/fuzz/corpus/decode_run 64`
//!
//! Each file is `[blob_len: u16 LE][blob][input]`, the layout `decode_run` expects. `seed-NNN`
//! are `count` property-generated models: small maps, so formats 1.0–1.5 with tables among them
//! and only the odd in-place add. `inplace-NN` are `count / 2` hand-built chains on maps of
//! several bands (2.5–4 KiB), where the builder plans convolutions, depthwise convolutions and
//! adds in place (format 1.6): residual blocks, separable chains, a conv that trades columns for
//! channels, table gates and broadcast muls beside them. A chain that gains nothing keeps its
//! plain plan, so some of those stay 1.0 or 1.5. Every seed is checked to decode and run before
//! it is written, and the formats, table ops and in-place ops written are printed.

use std::collections::BTreeMap;

use edge_runtime::Interpreter;
use shared_format::le::i32s_to_le;
use shared_format::packing::pack;
use shared_format::plan::aliased_input;
use shared_format::tensor::{qmax, qmin};
use shared_format::{
    Add, AddInput, BuildError, Clamp, GlobalAvgPool, Model, ModelBuilder, Mul, Op, Padding,
    Rounding, Shape, TABLE_LEN, Table, TensorId, TensorSpec, WeightScheme, Window,
};
use tests::generator::{
    GenConfig, Rng, WeightSet, conv_op, depthwise_op, generate, input_spec, random_input,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "edge-runtime/fuzz/corpus/decode_run".into());
    let count: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    std::fs::create_dir_all(&dir).expect("create corpus directory");
    let mut summary = Summary::default();
    let mut hand_built = Summary::default();
    for seed in 0..count {
        let Ok(g) = generate(0xF022_0000 + seed, GenConfig::default()) else {
            continue;
        };
        write_seed(
            &dir,
            &format!("seed-{seed:03}"),
            &g.blob,
            &g.input,
            &mut summary,
        );
    }
    // Hand-built models for the paths small generated maps cannot reach: in-place ops need
    // tensors larger than one band (2 KiB and 128 pixels).
    for seed in 0..count.div_ceil(2) {
        let Ok((blob, mut rng)) = in_place_model(Rng::new(0x1A_0000 + seed), seed) else {
            continue;
        };
        let model = Model::from_bytes(&blob).expect("built blobs validate");
        let input = random_input(&mut rng, input_spec(&model));
        write_seed(
            &dir,
            &format!("inplace-{seed:02}"),
            &blob,
            &input,
            &mut hand_built,
        );
    }
    summary.print(&dir, "generated (seed-NNN)");
    hand_built.print(&dir, "hand-built (inplace-NN)");
}

#[derive(Default)]
struct Summary {
    written: usize,
    /// Seeds per format minor version.
    minors: BTreeMap<u16, usize>,
    /// Seeds with at least one Table op (format 1.5).
    with_table: usize,
    /// Seeds with at least one op writing over its input (format 1.6), and those ops.
    with_in_place: usize,
    in_place_ops: BTreeMap<&'static str, usize>,
}

impl Summary {
    fn print(&self, dir: &str, what: &str) {
        println!("wrote {} {what} seeds to {dir}", self.written);
        for (minor, n) in &self.minors {
            println!("  format 1.{minor}: {n}");
        }
        println!("  with a table op: {}", self.with_table);
        println!(
            "  with in-place ops: {} ({:?})",
            self.with_in_place, self.in_place_ops
        );
    }
}

/// Checks that `blob` decodes and runs on `input`, records what it exercises, writes the seed.
fn write_seed(dir: &str, name: &str, blob: &[u8], input: &[i8], summary: &mut Summary) {
    let Ok(len) = u16::try_from(blob.len()) else {
        return;
    };
    let model = Model::from_bytes(blob).expect("seed blob validates");
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interpreter = Interpreter::new(&model, &mut arena).expect("arena of arena_bytes()");
    interpreter.run(input).expect("seed runs on its input");
    let ops: Vec<Op<'_>> = model.ops().map(|op| op.expect("validated op")).collect();
    *summary.minors.entry(model.header().minor).or_default() += 1;
    summary.with_table += ops.iter().any(|op| matches!(op, Op::Table(_))) as usize;
    let mut any = false;
    for op in &ops {
        if aliased_input(op, model.tensors()).is_some() {
            any = true;
            *summary.in_place_ops.entry(op.kind().name()).or_default() += 1;
        }
    }
    summary.with_in_place += any as usize;
    let mut data = len.to_le_bytes().to_vec();
    data.extend_from_slice(blob);
    data.extend(input.iter().map(|&v| v as u8));
    std::fs::write(format!("{dir}/{name}"), data).expect("write seed");
    summary.written += 1;
}

fn spec(h: u16, w: u16, c: u16, bits: u8, zero_point: i8) -> TensorSpec {
    TensorSpec {
        shape: Shape::new(h, w, c),
        zero_point,
        bits,
    }
}

/// An activation spec of `shape`: mostly 8-bit, sometimes 4- or 2-bit, a random zero point.
fn act(rng: &mut Rng, (h, w, c): (u16, u16, u16)) -> TensorSpec {
    let bits = rng.pick(&[8, 8, 8, 4, 2]);
    let zero_point = rng.range(qmin(bits) as i64, qmax(bits) as i64) as i8;
    spec(h, w, c, bits, zero_point)
}

/// The clamp of an output spec: its whole range, sometimes a ReLU from its zero point.
fn clamp(rng: &mut Rng, out: TensorSpec) -> Clamp {
    let min = if rng.chance(0.3) {
        out.zero_point
    } else {
        qmin(out.bits)
    };
    Clamp {
        min,
        max: qmax(out.bits),
    }
}

/// Packed weights, bias and requantization of a weighted op with `channels` output channels of
/// `per_channel` weights each.
fn weight_set(rng: &mut Rng, channels: usize, per_channel: usize) -> WeightSet {
    let bits = rng.pick(&[8, 8, 4, 2]);
    let (lo, hi) = (qmin(bits) as i64, qmax(bits) as i64);
    let scheme = if rng.chance(0.5) {
        WeightScheme::PerChannelSymmetric
    } else {
        WeightScheme::PerTensorAffine
    };
    let (zero_point, entries) = match scheme {
        WeightScheme::PerChannelSymmetric => (0, channels),
        WeightScheme::PerTensorAffine => (rng.range(lo, hi) as i8 / 4, 1),
    };
    let values: Vec<i8> = (0..channels * per_channel)
        .map(|_| rng.range(lo, hi) as i8)
        .collect();
    let bias: Vec<i32> = (0..channels)
        .map(|_| rng.range(-4000, 4000) as i32)
        .collect();
    // Shifts that put a sum of `per_channel` products near the output range.
    let log2 = (per_channel.max(1) as f64).log2().ceil() as i64;
    let shift = -(log2 + i64::from(bits) + 1).min(31);
    let multipliers: Vec<i32> = (0..entries)
        .map(|_| rng.range(1 << 30, (1i64 << 31) - 1) as i32)
        .collect();
    let shifts: Vec<u8> = (0..entries)
        .map(|_| (shift + rng.range(-1, 1)).clamp(-31, 30) as i8 as u8)
        .collect();
    WeightSet {
        bits,
        scheme,
        zero_point,
        packed: pack(&values, bits).expect("values in range"),
        bias: i32s_to_le(&bias),
        multipliers: i32s_to_le(&multipliers),
        shifts,
    }
}

/// The model under construction with the spec of each tensor and the stream it draws from.
struct Net {
    b: ModelBuilder,
    specs: Vec<TensorSpec>,
    rng: Rng,
}

type Hwc = (u16, u16, u16);

impl Net {
    fn new(mut rng: Rng, input: Hwc) -> Self {
        let input = act(&mut rng, input);
        let mut b = ModelBuilder::new(input, 1.0);
        b.rounding(if rng.chance(0.5) {
            Rounding::Double
        } else {
            Rounding::Single
        });
        Self {
            b,
            specs: vec![input],
            rng,
        }
    }

    fn tensor(&mut self, spec: TensorSpec) -> TensorId {
        let id = self.b.tensor(spec);
        debug_assert_eq!(id as usize, self.specs.len());
        self.specs.push(spec);
        id
    }

    /// A random activation spec of `shape` and its clamp.
    fn out(&mut self, shape: Hwc) -> (TensorSpec, Clamp) {
        let out = act(&mut self.rng, shape);
        (out, clamp(&mut self.rng, out))
    }

    fn conv(&mut self, x: TensorId, shape: Hwc, window: Window) -> Result<TensorId, BuildError> {
        let cin = self.specs[x as usize].shape.c as usize;
        let per_channel = window.kernel_h as usize * window.kernel_w as usize * cin;
        let ws = weight_set(&mut self.rng, shape.2 as usize, per_channel);
        let (out, clamp) = self.out(shape);
        let y = self.tensor(out);
        self.b.push(&conv_op(x, y, window, &ws, clamp))
    }

    fn depthwise(&mut self, x: TensorId, window: Window) -> Result<TensorId, BuildError> {
        let s = self.specs[x as usize].shape;
        let per_channel = window.kernel_h as usize * window.kernel_w as usize;
        let ws = weight_set(&mut self.rng, s.c as usize, per_channel);
        let (out, clamp) = self.out((s.h, s.w, s.c));
        let y = self.tensor(out);
        self.b.push(&depthwise_op(x, y, window, &ws, clamp))
    }

    /// TFLM's int8 Add parameters (left shift 20, input multipliers below one).
    fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId, BuildError> {
        let s = self.specs[a as usize].shape;
        let rng = &mut self.rng;
        let mut input = |tensor| AddInput {
            tensor,
            multiplier: rng.range(1 << 30, (1i64 << 31) - 1) as i32,
            shift: rng.range(-2, 0) as i8,
        };
        let inputs = [input(a), input(b)];
        let output_multiplier = self.rng.range(1 << 30, (1i64 << 31) - 1) as i32;
        let output_shift = self.rng.range(-20, -17) as i8;
        let (out, clamp) = self.out((s.h, s.w, s.c));
        let y = self.tensor(out);
        self.b.push(&Op::Add(Add {
            inputs,
            output: y,
            left_shift: 20,
            output_multiplier,
            output_shift,
            clamp,
        }))
    }

    /// An 8-bit table: random values, or a hard-sigmoid-like ramp (a gate's `relu6(x + 3) / 6`).
    fn table(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let s = self.specs[x as usize].shape;
        let (lo, hi) = (-128i64, 127i64);
        let ramp = self.rng.chance(0.5);
        let values: Vec<u8> = (0..TABLE_LEN)
            .map(|i| {
                let v = if ramp {
                    (((i as u8 as i8 as i64) + 48) * (hi - lo) / 96 + lo).clamp(lo, hi)
                } else {
                    self.rng.range(lo, hi)
                };
                v as i8 as u8
            })
            .collect();
        let out = spec(s.h, s.w, s.c, 8, if ramp { -128 } else { 0 });
        let y = self.tensor(out);
        self.b.push(&Op::Table(Table {
            input: x,
            output: y,
            values: &values,
        }))
    }

    /// `x · gate`, the gate of `x`'s shape or a `1×1×C` broadcast.
    fn mul(&mut self, x: TensorId, gate: TensorId) -> Result<TensorId, BuildError> {
        let s = self.specs[x as usize].shape;
        let multiplier = self.rng.range(1 << 30, (1i64 << 31) - 1) as i32;
        let shift = self.rng.range(-9, -6) as i8;
        let (out, clamp) = self.out((s.h, s.w, s.c));
        let y = self.tensor(out);
        self.b.push(&Op::Mul(Mul {
            inputs: [x, gate],
            output: y,
            multiplier,
            shift,
            clamp,
        }))
    }

    fn gap(&mut self, x: TensorId) -> Result<TensorId, BuildError> {
        let s = self.specs[x as usize];
        let out = spec(1, 1, s.shape.c, s.bits, s.zero_point);
        let clamp = clamp(&mut self.rng, out);
        let y = self.tensor(out);
        self.b.push(&Op::GlobalAvgPool(GlobalAvgPool {
            input: x,
            output: y,
            clamp,
        }))
    }

    /// A stride-1 window of `kernel` that keeps the map's size ("same"), padding split either
    /// way, sometimes dilated.
    fn same(&mut self, kernel: u8) -> Window {
        let rng = &mut self.rng;
        let dilation = if kernel > 1 && rng.chance(0.25) { 2 } else { 1 };
        let total = (kernel - 1) * dilation;
        let top = if rng.chance(0.5) {
            total / 2
        } else {
            total - total / 2
        };
        let left = rng.range(0, total as i64) as u8;
        Window {
            kernel_h: kernel,
            kernel_w: kernel,
            stride_h: 1,
            stride_w: 1,
            dilation_h: dilation,
            dilation_w: dilation,
            padding: Padding {
                top,
                left,
                bottom: total - top,
                right: total - left,
            },
        }
    }
}

/// One of four chains on maps of 2.5–4 KiB (several bands), ending in a global average pool.
fn in_place_model(mut rng: Rng, seed: u64) -> Result<(Vec<u8>, Rng), BuildError> {
    let (h, w, c) = rng.pick(&[
        (20, 16, 8),
        (40, 8, 8),
        (24, 12, 12),
        (16, 16, 16),
        (16, 32, 8),
    ]);
    let cin = rng.range(1, 4) as u16;
    let mut n = Net::new(rng, (h, w, cin));
    let win = n.same(3);
    let x0 = n.conv(0, (h, w, c), win)?;
    let last = match seed % 4 {
        // A residual block: conv → conv (or depthwise) → add(x0, ·), sometimes a table after.
        0 => {
            let k = n.rng.pick(&[1, 3, 3, 2]);
            let win = n.same(k);
            let c1 = n.conv(x0, (h, w, c), win)?;
            let win = n.same(k);
            let c2 = if n.rng.chance(0.5) {
                n.conv(c1, (h, w, c), win)?
            } else {
                n.depthwise(c1, win)?
            };
            let s = n.add(x0, c2)?;
            if n.rng.chance(0.5) { n.table(s)? } else { s }
        }
        // A separable chain: depthwise → pointwise, twice.
        1 => {
            let mut x = x0;
            for i in 0..4 {
                x = if i % 2 == 0 {
                    let k = n.rng.pick(&[3, 3, 5]);
                    let win = n.same(k);
                    n.depthwise(x, win)?
                } else {
                    let win = n.same(1);
                    n.conv(x, (h, w, c), win)?
                };
            }
            x
        }
        // A conv that halves the columns and doubles the channels: the same rows and row
        // bytes, so it too may write over its input.
        2 => {
            let win = n.same(3);
            let window = Window {
                stride_w: 2,
                dilation_w: 1,
                padding: Padding {
                    left: 1,
                    right: 0,
                    ..win.padding
                },
                ..win
            };
            let x1 = n.conv(x0, (h, w / 2, 2 * c), window)?;
            let win = n.same(1);
            n.conv(x1, (h, w / 2, 2 * c), win)?
        }
        // A hard-sigmoid gate (a table, then a mul) and a residual add over the gated map.
        _ => {
            let t = n.table(x0)?;
            let gate = if n.rng.chance(0.5) { n.gap(t)? } else { t };
            let g = n.mul(x0, gate)?;
            let win = n.same(1);
            let c1 = n.conv(g, (h, w, c), win)?;
            n.add(g, c1)?
        }
    };
    let out = n.gap(last)?;
    Ok((n.b.finish(out, 0.1)?, n.rng))
}
