//! The runtime's Mean (format 1.3) against the real TFLite Micro: small graphs CONV → MEAN → FC
//! and input → MEAN → FC, built by hand as a `QuantGraph` over many H×W (1×1 up to 64×64) with
//! random scales and zero points, including ratios `s_in/s_out` so small that TFLM's fold caps its
//! shift at `31 + shift`. Each graph becomes a blob directly (integers derived here, the way the
//! exporter derives them) and a `.tflite` file (float scales only, from which TFLM derives its
//! own). 100 seeded random inputs through TFLM's reference kernels (PyPI `tflite-micro`, installed
//! by `cargo xtask setup`) and through the edge runtime must give the same bytes, and the file
//! must import back into a blob whose Mean is the same op computing the same bytes. A missing
//! TFLM fails the suite; it never skips.

mod common;
use common::{diff, run_blob};

use ghnq_export::graph::{QuantGraph, QuantOp, QuantOpKind, QuantTensor, QuantWeights};
use ghnq_quant::integer::conv_multipliers;
use ghnq_quant::lower::Activation;
use ghnq_tflite as tflite;
use ghnq_tflite::tflm::Tflm;
use rand::{Rng, SeedableRng};
use shared_format::le::i32s_to_le;
use shared_format::{
    Clamp, Conv2d, LeI32s, Linear, Mean, Model, ModelBuilder, Op, OpKind, Requant, Rounding, Shape,
    TensorSpec, WeightScheme, Weights, Window,
};

/// Random int8 inputs per graph.
const SAMPLES: usize = 100;

const INT8: Clamp = Clamp {
    min: i8::MIN,
    max: i8::MAX,
};

/// One case: the pooled map's size, whether a conv produces it, the mean's `log2(s_in/s_out)`
/// range (`None`: the input's scale and zero point exactly), and whether an FC follows the mean
/// (without one, the mean's own bytes are the model output).
struct Case {
    h: usize,
    w: usize,
    conv: bool,
    log2_ratio: Option<(f64, f64)>,
    fc: bool,
}

fn tensor(name: &str, shape: [usize; 3], scale: f32, zero_point: i8) -> QuantTensor {
    QuantTensor {
        name: name.into(),
        shape,
        scale,
        zero_point,
        bits: 8,
    }
}

/// Per-channel symmetric int8 weights `[cout, …]` with `per_channel` values each, scaled so a
/// typical accumulator lands near the output's range.
fn weights(
    rng: &mut impl Rng,
    shape: Vec<usize>,
    s_x: f32,
    s_y: f32,
    per_channel: usize,
) -> QuantWeights {
    let cout = shape[0];
    let values: Vec<i8> = (0..cout * per_channel).map(|_| rng.random()).collect();
    // |x − z_x| ~ 64 and |w| ~ 64: a typical |acc| of 64·64·√K should map to ~64 output steps.
    let typical = 64.0 * 64.0 * (per_channel as f32).sqrt();
    let scales: Vec<f32> = (0..cout)
        .map(|_| 64.0 * s_y / (typical * s_x) * rng.random_range(0.5f32..2.0))
        .collect();
    let bias = (0..cout).map(|_| rng.random_range(-2000..2000)).collect();
    QuantWeights {
        shape,
        values,
        scales,
        zero_point: 0,
        bits: 8,
        scheme: WeightScheme::PerChannelSymmetric,
        bias,
    }
}

fn zero_point(rng: &mut impl Rng) -> i8 {
    rng.random_range(-100..=100)
}

fn op(name: &str, kind: QuantOpKind, output: usize) -> QuantOp {
    QuantOp {
        name: name.into(),
        kind,
        output,
        act: Activation::Linear,
        clamp: INT8,
    }
}

/// `[conv 3×3 SAME →] mean [→ fc]` over an `h × w` map, random scales and zero points.
fn graph(rng: &mut impl Rng, case: &Case, name: &str) -> QuantGraph {
    let (h, w) = (case.h, case.w);
    let cin = rng.random_range(1..=3);
    let c = if case.conv {
        rng.random_range(1..=6)
    } else {
        cin
    };
    let classes = rng.random_range(2..=10);
    let s_in = 2f32.powf(rng.random_range(-8.0..-3.0));
    let mut tensors = vec![tensor("input", [h, w, cin], s_in, zero_point(rng))];
    let mut ops = Vec::new();
    if case.conv {
        let s = 2f32.powf(rng.random_range(-6.0..-1.0));
        tensors.push(tensor("conv", [h, w, c], s, zero_point(rng)));
        let weights = weights(rng, vec![c, 3, 3, cin], s_in, s, 9 * cin);
        let kind = QuantOpKind::Conv {
            depthwise: false,
            input: 0,
            window: Window::square(3, 1, 1, 1),
            weights,
        };
        ops.push(op("conv", kind, 1));
    }
    let pooled = tensors.len() - 1;
    let s_pooled = tensors[pooled].scale;
    let mean = match case.log2_ratio {
        Some((lo, hi)) => {
            let log2_ratio = rng.random_range(lo..=hi);
            let s_mean = (f64::from(s_pooled) / log2_ratio.exp2()) as f32;
            tensor("mean", [1, 1, c], s_mean, zero_point(rng))
        }
        None => tensor("mean", [1, 1, c], s_pooled, tensors[pooled].zero_point),
    };
    let s_mean = mean.scale;
    tensors.push(mean);
    ops.push(op("mean", QuantOpKind::Mean { input: pooled }, pooled + 1));
    if !case.fc {
        return QuantGraph {
            name: name.into(),
            rounding: Rounding::Double,
            output: tensors.len() - 1,
            tensors,
            ops,
        };
    }
    let s_fc = 2f32.powf(rng.random_range(-5.0..0.0));
    tensors.push(tensor("fc", [1, 1, classes], s_fc, zero_point(rng)));
    let fc_w = weights(rng, vec![classes, c], s_mean, s_fc, c);
    let kind = QuantOpKind::Linear {
        input: pooled + 1,
        weights: fc_w,
    };
    ops.push(op("fc", kind, pooled + 2));
    QuantGraph {
        name: name.into(),
        rounding: Rounding::Double,
        output: tensors.len() - 1,
        tensors,
        ops,
    }
}

/// A weighted op's tables in blob form, owned while the op borrows them.
struct Tables {
    data: Vec<u8>,
    bias: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
}

impl Tables {
    /// Per-channel requantization of `s_x·s_w[c]/s_y`, exactly as the exporter derives it.
    fn new(weights: &QuantWeights, s_x: f32, s_y: f32) -> Self {
        let (m, e) = conv_multipliers(s_x, &weights.scales, s_y, Rounding::Double);
        Self {
            data: weights.values.iter().map(|&v| v as u8).collect(),
            bias: i32s_to_le(&weights.bias),
            multipliers: i32s_to_le(&m),
            shifts: e.iter().map(|&s| s as u8).collect(),
        }
    }

    fn weights(&self) -> Weights<'_> {
        Weights {
            bits: 8,
            scheme: WeightScheme::PerChannelSymmetric,
            zero_point: 0,
            data: &self.data,
        }
    }

    fn requant(&self) -> Requant<'_> {
        Requant {
            multipliers: LeI32s::new(&self.multipliers),
            shifts: &self.shifts,
        }
    }
}

/// The blob of `g`, built directly: every integer derived from the graph's float scales the way
/// the exporter derives them (`conv_multipliers`, `Mean::from_scales`), not through the importer.
fn blob_of(g: &QuantGraph) -> Vec<u8> {
    let spec = |t: &QuantTensor| TensorSpec {
        shape: Shape::new(t.shape[0] as u16, t.shape[1] as u16, t.shape[2] as u16),
        zero_point: t.zero_point,
        bits: t.bits,
    };
    let mut b = ModelBuilder::new(spec(&g.tensors[0]), g.tensors[0].scale);
    b.rounding(g.rounding);
    for t in &g.tensors[1..] {
        b.tensor(spec(t));
    }
    for op in &g.ops {
        let y = op.output as u16;
        let s_y = g.tensors[op.output].scale;
        let built = match &op.kind {
            QuantOpKind::Conv {
                depthwise: false,
                input,
                window,
                weights,
            } => {
                let t = Tables::new(weights, g.tensors[*input].scale, s_y);
                b.push(&Op::Conv2d(Conv2d {
                    input: *input as u16,
                    output: y,
                    window: *window,
                    weights: t.weights(),
                    bias: LeI32s::new(&t.bias),
                    requant: t.requant(),
                    clamp: op.clamp,
                }))
            }
            QuantOpKind::Linear { input, weights } => {
                let t = Tables::new(weights, g.tensors[*input].scale, s_y);
                b.push(&Op::Linear(Linear {
                    input: *input as u16,
                    output: y,
                    weights: t.weights(),
                    bias: LeI32s::new(&t.bias),
                    requant: t.requant(),
                    clamp: op.clamp,
                }))
            }
            QuantOpKind::Mean { input } => {
                let x = &g.tensors[*input];
                let cells = (x.shape[0] * x.shape[1]) as u64;
                let mean = Mean::from_scales(*input as u16, y, x.scale, s_y, cells, g.rounding)
                    .expect("a mean with a blob form");
                b.push(&Op::Mean(mean))
            }
            other => panic!("blob_of handles conv, mean and linear, not {other:?}"),
        };
        built.unwrap();
    }
    b.finish(g.output as u16, g.tensors[g.output].scale)
        .unwrap()
}

/// The (first) Mean op of a blob.
fn mean_of(blob: &[u8]) -> Mean {
    let model = Model::from_bytes(blob).unwrap();
    let found = model.ops().find_map(|op| match op.unwrap() {
        Op::Mean(m) => Some(m),
        _ => None,
    });
    found.expect("a Mean op")
}

#[test]
fn means_run_bit_exactly_in_tflm_and_import_back() {
    let tflm = Tflm::locate().expect("TFLM's reference interpreter (run `cargo xtask setup`)");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x3EA7);
    let near = Some((-2.0, 2.0));
    let mut cases = Vec::new();
    let sizes = [(1, 1), (2, 3), (5, 5), (7, 7), (12, 1), (32, 32), (64, 64)];
    for (h, w) in sizes {
        for (conv, fc) in [(true, true), (false, true), (true, false), (false, false)] {
            cases.push(Case {
                h,
                w,
                conv,
                log2_ratio: near,
                fc,
            });
        }
    }
    // Input and output quantized alike: TFLM still takes the requantizing path.
    for (h, w) in [(2, 3), (7, 7), (32, 32)] {
        for conv in [true, false] {
            let (log2_ratio, fc) = (None, false);
            cases.push(Case {
                h,
                w,
                conv,
                log2_ratio,
                fc,
            });
        }
    }
    // TFLM folds k = min(floor(log2 n), 31 + s) bits, s being QuantizeMultiplier's shift,
    // floor(log2 ratio) + 1: ratios below 2^(floor(log2 n) − 32) cap k (s ≤ −20 on 64×64,
    // ≤ −29 on 12×1), and above 2^−32 TFLM's multiplier is not flushed to zero.
    for (h, w) in [(7, 7), (12, 1), (32, 32), (64, 64), (3, 50)] {
        let log2_n = f64::from(63 - ((h * w) as u64).leading_zeros());
        for (conv, fc) in [(true, true), (false, false)] {
            cases.push(Case {
                h,
                w,
                conv,
                log2_ratio: Some((-31.5, log2_n - 32.2)),
                fc,
            });
        }
    }
    let (mut graphs, mut total_bytes, mut tflm_differ, mut import_differ) = (0, 0, 0, 0);
    let mut cap_bit = 0;
    let mut failures = Vec::new();
    for (k, case) in cases.iter().enumerate() {
        let name = format!(
            "mean-{:02}-{}x{}{}{}",
            k,
            case.h,
            case.w,
            if case.conv { "-conv" } else { "" },
            if case.fc { "-fc" } else { "" }
        );
        let g = graph(&mut rng, case, &name);
        let blob = blob_of(&g);
        let mean = mean_of(&blob);
        let pooled = g.ops.iter().find(|o| o.kind_name() == "mean").unwrap();
        let s_x = g.tensors[pooled.inputs()[0]].scale;
        let s_y = g.tensors[pooled.output].scale;
        let (_, shift) =
            ghnq_quant::quantize_multiplier(f64::from(s_x) / f64::from(s_y), Rounding::Double);
        let cells = (case.h * case.w) as u64;
        let capped_here = 31 + shift < 63 - cells.leading_zeros() as i32;
        cap_bit += capped_here as usize;

        let bytes = tflite::export(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        let path = dir.path().join(format!("{name}.tflite"));
        std::fs::write(&path, &bytes).unwrap();
        let model = Model::from_bytes(&blob).unwrap();
        let input_len = model.input_tensor().bytes() as usize;
        let output_len = model.output_tensor().bytes() as usize;
        let mut inputs_rng = rand_chacha::ChaCha8Rng::seed_from_u64(500 + k as u64);
        let inputs: Vec<i8> = (0..input_len * SAMPLES)
            .map(|_| inputs_rng.random())
            .collect();
        let ours = run_blob(&blob, &inputs, input_len);
        let theirs = tflm
            .run(&path, &inputs, SAMPLES)
            .unwrap_or_else(|e| panic!("TFLM on {name}: {e}"));
        let (d_tflm, first) = diff(&ours, &theirs, output_len);
        if d_tflm > 0 {
            failures.push(format!(
                "{name}: TFLM differs in {d_tflm} bytes; first at {first}"
            ));
        }

        let imported = tflite::import(&bytes, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kinds: Vec<Option<OpKind>> = imported.ops.iter().map(|(_, _, k)| *k).collect();
        let want: Vec<Option<OpKind>> = g
            .ops
            .iter()
            .map(|o| match o.kind {
                QuantOpKind::Conv { .. } => Some(OpKind::Conv2d),
                QuantOpKind::Mean { .. } => Some(OpKind::Mean),
                _ => Some(OpKind::Linear),
            })
            .collect();
        assert_eq!(kinds, want, "{name}: imported ops");
        assert_eq!(mean_of(&imported.blob), mean, "{name}: imported mean");
        let back = run_blob(&imported.blob, &inputs, input_len);
        let (d_import, first) = diff(&ours, &back, output_len);
        if d_import > 0 {
            failures.push(format!(
                "{name}: the imported blob differs in {d_import} bytes; first at {first}"
            ));
        }
        println!(
            "{name:<23} ratio 2^{:>6.2} m {:>10} shift {:>3}{}: {SAMPLES} inputs x {output_len} \
             bytes; differing bytes: TFLM {d_tflm}, imported blob {d_import}",
            (f64::from(s_x) / f64::from(s_y)).log2(),
            mean.multiplier,
            mean.shift,
            if capped_here { " (capped)" } else { "" },
        );
        graphs += 1;
        total_bytes += SAMPLES * output_len;
        tflm_differ += d_tflm;
        import_differ += d_import;
    }
    println!(
        "{graphs} graphs ({cap_bit} with the fold's shift capped), {} inputs, {total_bytes} \
         output bytes: {tflm_differ} differ from TFLM, {import_differ} differ after importing \
         the file back",
        graphs * SAMPLES
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(cap_bit, 10, "graphs whose fold capped its shift");
}
