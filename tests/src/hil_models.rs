//! Deterministic models and test vectors for the hardware-in-the-loop suite: a small but
//! realistic CNN (every op kind: conv, depthwise, 1x1 conv, residual add, max pool, a
//! conv/avg-pool branch joined by concat, global average pool, linear to 10 classes) at W8A8,
//! W4A4 and W2A2, with expected logits from the host build of the edge runtime.
//!
//! The parameters are random (a fixed LCG), scaled layer by layer so activations use their
//! range instead of saturating; labels are synthetic (the host's top-1 for two samples in three,
//! a random class otherwise), so the top-1 counts are non-trivial but mean nothing beyond
//! "device and host count the same".

use edge_runtime::Interpreter;
use shared_format::le::i32s_to_le;
use shared_format::packing::pack;
use shared_format::{
    Add, AddInput, Clamp, Concat, ConcatInput, Conv2d, DepthwiseConv2d, GlobalAvgPool, LeI32s,
    Linear, Model, ModelBuilder, Op, Pool, Requant, Rounding, Shape, TensorId, TensorSpec,
    TestVectorsBuilder, WeightScheme, Weights, Window,
};

/// Weight and activation bit-widths of one suite model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    /// Label, as in the blob's metadata.
    pub name: &'static str,
    /// Weight bits.
    pub weights: u8,
    /// Activation bits (the model input and the logits stay 8-bit).
    pub activations: u8,
}

/// The three precisions every board runs.
pub const PRECISIONS: [Precision; 3] = [
    Precision {
        name: "w8a8",
        weights: 8,
        activations: 8,
    },
    Precision {
        name: "w4a4",
        weights: 4,
        activations: 4,
    },
    Precision {
        name: "w2a2",
        weights: 2,
        activations: 2,
    },
];

/// Deterministic pseudo-random values (a 64-bit LCG).
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// Next 31 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u32() % (hi - lo + 1) as u32) as i32
    }
}

/// `scale ≈ m · 2^(e − 31)` with `m` in [2^30, 2^31): TFLM's QuantizeMultiplier.
pub fn quantize_multiplier(scale: f64) -> (i32, i8) {
    assert!(scale > 0.0);
    let mut e = scale.log2().floor() as i32 + 1;
    let mut m = (scale / 2f64.powi(e) * 2f64.powi(31)).round() as i64;
    if m == 1 << 31 {
        m /= 2;
        e += 1;
    }
    (m as i32, e.clamp(-31, 30) as i8)
}

fn qmin(bits: u8) -> i8 {
    (-(1i32 << (bits - 1))) as i8
}

fn qmax(bits: u8) -> i8 {
    ((1i32 << (bits - 1)) - 1) as i8
}

/// Owned parameters of one weighted op.
struct Params {
    weights: Vec<u8>,
    bias: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
    bits: u8,
    scheme: WeightScheme,
}

impl Params {
    /// `cout` filters of `per_channel` weights, requantized so the output spreads over about
    /// `target` steps given inputs of mean square `input_ms`.
    fn new(
        rng: &mut Lcg,
        cout: usize,
        per_channel: usize,
        bits: u8,
        per_channel_scheme: bool,
        input_ms: f64,
        target: f64,
    ) -> Self {
        // Symmetric weight range: the paper's and TFLite's weights never use the lone qmin code.
        let top = i32::from(qmax(bits));
        let values: Vec<i8> = (0..cout * per_channel)
            .map(|_| rng.range(-top, top) as i8)
            .collect();
        let weight_ms = f64::from(top * (top + 1)) / 3.0;
        let acc_rms = (per_channel as f64 * weight_ms * input_ms).sqrt().max(1.0);
        let entries = if per_channel_scheme { cout } else { 1 };
        let mut multipliers = Vec::new();
        let mut shifts = Vec::new();
        for _ in 0..entries {
            let jitter = 0.8 + 0.4 * f64::from(rng.range(0, 1000)) / 1000.0;
            let (m, e) = quantize_multiplier(target / acc_rms * jitter);
            multipliers.push(m);
            shifts.push(e as u8);
        }
        let bias: Vec<i32> = (0..cout)
            .map(|_| rng.range(-(acc_rms as i32) / 4, acc_rms as i32 / 4))
            .collect();
        Self {
            weights: pack(&values, bits).expect("values fit their bits"),
            bias: i32s_to_le(&bias),
            multipliers: i32s_to_le(&multipliers),
            shifts,
            bits,
            scheme: if per_channel_scheme {
                WeightScheme::PerChannelSymmetric
            } else {
                WeightScheme::PerTensorAffine
            },
        }
    }

    fn weights(&self) -> Weights<'_> {
        Weights {
            bits: self.bits,
            scheme: self.scheme,
            zero_point: 0,
            data: &self.weights,
        }
    }

    fn bias(&self) -> LeI32s<'_> {
        LeI32s::new(&self.bias)
    }

    fn requant(&self) -> Requant<'_> {
        Requant {
            multipliers: LeI32s::new(&self.multipliers),
            shifts: &self.shifts,
        }
    }
}

/// The suite CNN for an `side`×`side`×3 input at `precision`; returns the blob.
///
/// conv 3x3 (3→8) → depthwise 3x3 stride 2 → conv 1x1 (8→16) ─┬─ conv 3x3 (16→16) ─ add ─ max pool 2
///                                                          └──────────────────────┘
/// → [conv 1x1 (16→8) ‖ avg pool 3x3] concat (24) → global avg pool → linear (24→10).
pub fn model(precision: Precision, side: u16) -> Vec<u8> {
    let (wb, ab) = (precision.weights, precision.activations);
    let mut rng = Lcg(0x6869_6c00 + u64::from(wb) * 16 + u64::from(ab) + u64::from(side) * 256);
    let per_channel = wb == 8;
    let act = |h: u16, c: u16| TensorSpec {
        shape: Shape::new(h, h, c),
        zero_point: qmin(ab),
        bits: ab,
    };
    // ReLU outputs: real 0 at the bottom code, so the clamp is the whole range.
    let relu = Clamp {
        min: qmin(ab),
        max: qmax(ab),
    };
    let levels = f64::from(1u32 << ab);
    let act_ms = (0.35 * levels).powi(2);
    let target = 0.5 * levels;

    let mut b = ModelBuilder::new(
        TensorSpec {
            shape: Shape::new(side, side, 3),
            zero_point: 0,
            bits: 8,
        },
        1.0 / 64.0,
    );
    b.metadata(
        &format!("hil-{}-{side}px", precision.name),
        precision.name,
        "synthetic",
        u64::from(side),
        0,
        0,
    );
    let half = side / 2;

    let p = Params::new(&mut rng, 8, 27, wb, per_channel, 5461.0, target);
    let t1 = b.tensor(act(side, 8));
    push(
        &mut b,
        Op::Conv2d(Conv2d {
            input: 0,
            output: t1,
            window: Window::square(3, 1, 1, 1),
            weights: p.weights(),
            bias: p.bias(),
            requant: p.requant(),
            clamp: relu,
        }),
    );

    let p = Params::new(&mut rng, 8, 9, wb, per_channel, act_ms, target);
    let t2 = b.tensor(act(half, 8));
    push(
        &mut b,
        Op::DepthwiseConv2d(DepthwiseConv2d {
            input: t1,
            output: t2,
            window: Window::square(3, 2, 1, 1),
            weights: p.weights(),
            bias: p.bias(),
            requant: p.requant(),
            clamp: relu,
        }),
    );

    let p = Params::new(&mut rng, 16, 8, wb, per_channel, act_ms, target);
    let t3 = b.tensor(act(half, 16));
    push(
        &mut b,
        Op::Conv2d(Conv2d {
            input: t2,
            output: t3,
            window: Window::square(1, 1, 1, 0),
            weights: p.weights(),
            bias: p.bias(),
            requant: p.requant(),
            clamp: relu,
        }),
    );

    let p = Params::new(&mut rng, 16, 144, wb, per_channel, act_ms, target);
    let t4 = b.tensor(act(half, 16));
    push(
        &mut b,
        Op::Conv2d(Conv2d {
            input: t3,
            output: t4,
            window: Window::square(3, 1, 1, 1),
            weights: p.weights(),
            bias: p.bias(),
            requant: p.requant(),
            clamp: relu,
        }),
    );

    // Residual add with TFLM's left shift of 20: each input ×0.5, the sum ×2^-19, so the output
    // is (d1 + d2) / 2 above the zero point.
    let t5 = b.tensor(act(half, 16));
    let input = |tensor| AddInput {
        tensor,
        multiplier: 1 << 30,
        shift: 0,
    };
    push(
        &mut b,
        Op::Add(Add {
            inputs: [input(t3), input(t4)],
            output: t5,
            left_shift: 20,
            output_multiplier: 1 << 30,
            output_shift: -19,
            clamp: relu,
        }),
    );

    let quarter = half / 2;
    let t6 = b.tensor(act(quarter, 16));
    push(
        &mut b,
        Op::MaxPool(Pool {
            input: t5,
            output: t6,
            window: Window::square(2, 2, 1, 0),
            clamp: relu,
        }),
    );

    let p = Params::new(&mut rng, 8, 16, wb, per_channel, act_ms, target);
    let t7 = b.tensor(act(quarter, 8));
    push(
        &mut b,
        Op::Conv2d(Conv2d {
            input: t6,
            output: t7,
            window: Window::square(1, 1, 1, 0),
            weights: p.weights(),
            bias: p.bias(),
            requant: p.requant(),
            clamp: relu,
        }),
    );

    let t8 = b.tensor(act(quarter, 16));
    push(
        &mut b,
        Op::AvgPool(Pool {
            input: t6,
            output: t8,
            window: Window::square(3, 1, 1, 1),
            clamp: relu,
        }),
    );

    let t9 = b.tensor(act(quarter, 24));
    let mut inputs = heapless::Vec::new();
    for tensor in [t7, t8] {
        // ×1: multiplier 0.5 with shift 1.
        inputs
            .push(ConcatInput {
                tensor,
                multiplier: 1 << 30,
                shift: 1,
            })
            .expect("two inputs");
    }
    push(
        &mut b,
        Op::Concat(Concat {
            inputs,
            output: t9,
            clamp: relu,
        }),
    );

    let t11 = head(
        &mut b,
        &mut rng,
        (t9, act(1, 24)),
        (wb, per_channel),
        (relu, act_ms),
    );
    b.finish(t11, 0.1).expect("the suite model is valid")
}

/// A chain of W2A2 pointwise convolutions over every input width the 2-bit pointwise kernel
/// is unrolled for (8, 16, 32 and 64 channels; issue 18), one of them at stride 2, after a 3×3
/// stem: conv 3x3 (3→8) → 1x1 (8→16) → 1x1 (16→32) → 1x1 (32→64) → 1x1 stride 2 (64→32) →
/// 1x1 (32→8) → global avg pool → linear (8→10). Returns the blob.
pub fn pointwise_chain(side: u16) -> Vec<u8> {
    let bits = 2;
    let mut rng = Lcg(0x7077_0002 + u64::from(side));
    let relu = Clamp {
        min: qmin(bits),
        max: qmax(bits),
    };
    let act = |h: u16, c: u16| TensorSpec {
        shape: Shape::new(h, h, c),
        zero_point: qmin(bits),
        bits,
    };
    let act_ms = (0.35 * 4.0f64).powi(2);
    let mut b = ModelBuilder::new(
        TensorSpec {
            shape: Shape::new(side, side, 3),
            zero_point: 0,
            bits: 8,
        },
        1.0 / 64.0,
    );
    // Single rounding, as this SDK's exporter writes (the 2-bit kernel takes no other).
    b.rounding(Rounding::Single);
    b.metadata(
        &format!("hil-pointwise-w2a2-{side}px"),
        "w2a2",
        "synthetic",
        u64::from(side),
        0,
        0,
    );
    let p = Params::new(&mut rng, 8, 27, bits, false, 5461.0, 2.0);
    let mut x = b.tensor(act(side, 8));
    push(
        &mut b,
        Op::Conv2d(Conv2d {
            input: 0,
            output: x,
            window: Window::square(3, 1, 1, 1),
            weights: p.weights(),
            bias: p.bias(),
            requant: p.requant(),
            clamp: relu,
        }),
    );
    let mut h = side;
    for (cin, cout, stride) in [
        (8, 16, 1),
        (16, 32, 1),
        (32, 64, 1),
        (64, 32, 2),
        (32, 8, 1),
    ] {
        let p = Params::new(&mut rng, cout, cin, bits, false, act_ms, 2.0);
        h = h.div_ceil(stride);
        let y = b.tensor(act(h, cout as u16));
        push(
            &mut b,
            Op::Conv2d(Conv2d {
                input: x,
                output: y,
                window: Window::square(1, stride as u8, 1, 0),
                weights: p.weights(),
                bias: p.bias(),
                requant: p.requant(),
                clamp: relu,
            }),
        );
        x = y;
    }
    let logits = head(
        &mut b,
        &mut rng,
        (x, act(1, 8)),
        (bits, false),
        (relu, act_ms),
    );
    b.finish(logits, 0.1).expect("the pointwise chain is valid")
}

/// The classifier both suite models end in: global average pooling of `x` into `pooled` (a
/// 1×1×C tensor of the activations' spec), then a linear layer to 10 int8 logits, whose
/// tensor it returns. `(bits, per_channel)` are the linear layer's weights, `(clamp, act_ms)`
/// the pooling's clamp and the activations' mean square.
fn head(
    b: &mut ModelBuilder,
    rng: &mut Lcg,
    (x, pooled): (TensorId, TensorSpec),
    (bits, per_channel): (u8, bool),
    (clamp, act_ms): (Clamp, f64),
) -> TensorId {
    let channels = pooled.shape.c as usize;
    let pooled = b.tensor(pooled);
    push(
        b,
        Op::GlobalAvgPool(GlobalAvgPool {
            input: x,
            output: pooled,
            clamp,
        }),
    );
    let p = Params::new(rng, 10, channels, bits, per_channel, act_ms, 40.0);
    let logits = b.tensor(TensorSpec {
        shape: Shape::new(1, 1, 10),
        zero_point: 0,
        bits: 8,
    });
    push(
        b,
        Op::Linear(Linear {
            input: pooled,
            output: logits,
            weights: p.weights(),
            bias: p.bias(),
            requant: p.requant(),
            clamp: Clamp {
                min: -128,
                max: 127,
            },
        }),
    );
    logits
}

fn push(b: &mut ModelBuilder, op: Op<'_>) -> TensorId {
    b.push(&op).expect("the suite model is well formed")
}

/// `samples` random inputs for `blob` with the host runtime's logits and synthetic labels.
pub fn vectors(blob: &[u8], samples: usize, seed: u64) -> Vec<u8> {
    let model = Model::from_bytes(blob).expect("valid blob");
    let input_len = model.input_tensor().shape.elements() as usize;
    let output_len = model.output_tensor().shape.elements() as usize;
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interpreter = Interpreter::new(&model, &mut arena).expect("arena sized by the model");
    let mut rng = Lcg(seed);
    let mut bundle = TestVectorsBuilder::new(model.header().crc32, input_len, output_len);
    for _ in 0..samples {
        let input: Vec<i8> = (0..input_len).map(|_| rng.range(-128, 127) as i8).collect();
        let logits = interpreter
            .run(&input)
            .expect("the host runtime runs the suite model")
            .to_vec();
        let best = (0..output_len)
            .find(|&c| shared_format::vectors::rank_of(&logits, c) == 0)
            .unwrap_or(0);
        let label = if rng.range(0, 2) == 0 {
            rng.range(0, output_len as i32 - 1) as usize
        } else {
            best
        };
        bundle
            .push(&input, label as u8, &logits)
            .expect("lengths match");
    }
    bundle.finish().expect("bundle encodes")
}

/// `count` random models from the property-test generator ([`crate::generator::generate`],
/// seeds `0..count`), each with a bundle of `samples` inputs (the generator's own input first)
/// and the host runtime's logits: every parameter the format allows, run on the device.
/// Returns `(name, blob, bundle)`; seeds the generator refuses are skipped.
pub fn random_suite(count: u64, samples: usize) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    use crate::generator::{GenConfig, Rng, generate, input_spec, random_input};
    let mut suite = Vec::new();
    for seed in 0..count {
        let Ok(generated) = generate(seed, GenConfig::default()) else {
            continue;
        };
        let model = Model::from_bytes(&generated.blob).expect("the generator validates its blobs");
        let spec = input_spec(&model);
        let output_len = model.output_tensor().shape.elements() as usize;
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut interpreter =
            Interpreter::new(&model, &mut arena).expect("arena sized by the model");
        let mut bundle =
            TestVectorsBuilder::new(model.header().crc32, generated.input.len(), output_len);
        let mut rng = Rng::new(seed ^ 0x5eed);
        for i in 0..samples {
            let input = if i == 0 {
                generated.input.clone()
            } else {
                random_input(&mut rng, spec)
            };
            let logits = interpreter
                .run(&input)
                .expect("the host runtime runs generated models")
                .to_vec();
            let label = (i % output_len.max(1)) as u8;
            bundle.push(&input, label, &logits).expect("lengths match");
        }
        suite.push((
            format!("random-{seed}"),
            generated.blob.clone(),
            bundle.finish().expect("bundle encodes"),
        ));
    }
    suite
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_are_quantize_multiplier_outputs() {
        for scale in [1e-6, 0.0013, 0.5, 0.75, 1.0, 3.9] {
            let (m, e) = quantize_multiplier(scale);
            assert!(m >= 1 << 30, "{scale}: {m}");
            let back = f64::from(m) * 2f64.powi(i32::from(e) - 31);
            assert!((back - scale).abs() / scale < 1e-6, "{scale} -> {back}");
        }
    }

    #[test]
    fn suite_models_have_varied_logits() {
        for precision in PRECISIONS {
            let blob = model(precision, 8);
            let bundle_bytes = vectors(&blob, 50, 7);
            let bundle = shared_format::TestVectors::from_bytes(&bundle_bytes).unwrap();
            let mut distinct = std::collections::BTreeSet::new();
            let mut top1 = 0;
            for s in bundle.iter() {
                distinct.insert(s.expected.to_vec());
                top1 += usize::from(
                    shared_format::vectors::rank_of(s.expected, usize::from(s.label)) == 0,
                );
            }
            assert!(
                distinct.len() > 10,
                "{}: only {} distinct logit vectors",
                precision.name,
                distinct.len()
            );
            assert!(
                top1 > 10 && top1 < 50,
                "{}: top-1 {top1}/50",
                precision.name
            );
        }
    }
}
