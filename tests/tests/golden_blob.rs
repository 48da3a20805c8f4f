//! Format stability: a blob written by format 1.0 must decode to the same model forever, and run
//! to the same logits. Users have flashed devices with such blobs.
//!
//! `tests/golden/v1.0/` holds a blob covering every op kind, every weight bit-width, both weight
//! schemes and sub-8-bit activations, plus a bundle of expected logits. They were written by this
//! file: `GHNQ_BLESS=1 cargo test -p tests --test golden_blob` regenerates them — do that only
//! for a deliberate format change, together with a format version bump.

use std::path::PathBuf;

use edge_runtime::Interpreter;
use shared_format::le::i32s_to_le;
use shared_format::packing::pack;
use shared_format::{
    Add, AddInput, Clamp, Concat, ConcatInput, Conv2d, DepthwiseConv2d, GlobalAvgPool, LeI32s,
    Linear, Model, ModelBuilder, Op, Pool, Requant, Rounding, Shape, TensorSpec, TestVectors,
    TestVectorsBuilder, WeightScheme, Weights, Window,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/v1.0")
}

/// Deterministic pseudo-random values (a 64-bit LCG), so the fixture needs no RNG crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (hi - lo + 1) as u32) as i32
    }
    fn values(&mut self, n: usize, bits: u8) -> Vec<i8> {
        let half = 1i32 << (bits - 1);
        (0..n).map(|_| self.range(-half, half - 1) as i8).collect()
    }
    fn multiplier(&mut self) -> i32 {
        (1 << 30) + self.range(0, (1 << 30) - 1)
    }
}

/// Owned bytes for one weighted op.
struct Params {
    weights: Vec<u8>,
    bias: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
}

fn params(
    rng: &mut Lcg,
    count: usize,
    cout: usize,
    bits: u8,
    per_channel: bool,
    shift: i8,
) -> Params {
    let entries = if per_channel { cout } else { 1 };
    let bias: Vec<i32> = (0..cout).map(|_| rng.range(-2000, 2000)).collect();
    let mults: Vec<i32> = (0..entries).map(|_| rng.multiplier()).collect();
    Params {
        weights: pack(&rng.values(count, bits), bits).unwrap(),
        bias: i32s_to_le(&bias),
        multipliers: i32s_to_le(&mults),
        shifts: (0..entries)
            .map(|k| (shift - (k % 2) as i8) as u8)
            .collect(),
    }
}

fn weights(p: &Params, bits: u8, scheme: WeightScheme, zero_point: i8) -> Weights<'_> {
    Weights {
        bits,
        scheme,
        zero_point,
        data: &p.weights,
    }
}

fn requant(p: &Params) -> Requant<'_> {
    Requant {
        multipliers: LeI32s::new(&p.multipliers),
        shifts: &p.shifts,
    }
}

/// The fixture: 8x8x3 input → conv(W8, per-channel) → depthwise(W4, affine, A4) → max pool →
/// conv 1x1 (W2) and avg pool branches → concat → conv → add (residual) → GAP → linear(W8) → 10.
fn fixture() -> Vec<u8> {
    let mut rng = Lcg(0x6768_6e71_2026);
    let spec = |h, w, c, zero_point, bits| TensorSpec {
        shape: Shape::new(h, w, c),
        zero_point,
        bits,
    };
    let mut b = ModelBuilder::new(spec(8, 8, 3, -3, 8), 0.02);
    b.metadata(
        "golden-v1.0",
        "mixed",
        "synthetic",
        0x1234_5678_9abc_def0,
        0x0fed_cba9_8765_4321,
        0,
    );
    let relu8 = Clamp { min: -5, max: 127 };

    let p0 = params(&mut rng, 16 * 3 * 3 * 3, 16, 8, true, -8);
    let t1 = b.tensor(spec(8, 8, 16, -5, 8));
    b.push(&Op::Conv2d(Conv2d {
        input: 0,
        output: t1,
        window: Window::square(3, 1, 1, 1),
        weights: weights(&p0, 8, WeightScheme::PerChannelSymmetric, 0),
        bias: LeI32s::new(&p0.bias),
        requant: requant(&p0),
        clamp: relu8,
    }))
    .unwrap();

    let p1 = params(&mut rng, 16 * 3 * 3, 16, 4, false, -5);
    let t2 = b.tensor(spec(8, 8, 16, -8, 4));
    b.push(&Op::DepthwiseConv2d(DepthwiseConv2d {
        input: t1,
        output: t2,
        window: Window::square(3, 1, 2, 2),
        weights: weights(&p1, 4, WeightScheme::PerTensorAffine, 3),
        bias: LeI32s::new(&p1.bias),
        requant: requant(&p1),
        clamp: Clamp { min: -8, max: 7 },
    }))
    .unwrap();

    let t3 = b.tensor(spec(4, 4, 16, -8, 4));
    b.push(&Op::MaxPool(Pool {
        input: t2,
        output: t3,
        window: Window::square(2, 2, 1, 0),
        clamp: Clamp { min: -8, max: 7 },
    }))
    .unwrap();

    let p2 = params(&mut rng, 8 * 16, 8, 2, true, -3);
    let t4 = b.tensor(spec(4, 4, 8, 1, 8));
    b.push(&Op::Conv2d(Conv2d {
        input: t3,
        output: t4,
        window: Window::square(1, 1, 1, 0),
        weights: weights(&p2, 2, WeightScheme::PerChannelSymmetric, 0),
        bias: LeI32s::new(&p2.bias),
        requant: requant(&p2),
        clamp: Clamp {
            min: -128,
            max: 127,
        },
    }))
    .unwrap();

    let t5 = b.tensor(spec(4, 4, 16, -8, 4));
    let mut avg = Window::square(3, 1, 1, 1);
    avg.padding.bottom = 1;
    b.push(&Op::AvgPool(Pool {
        input: t3,
        output: t5,
        window: avg,
        clamp: Clamp { min: -8, max: 7 },
    }))
    .unwrap();

    let t6 = b.tensor(spec(4, 4, 24, 0, 8));
    let mut inputs = heapless::Vec::new();
    inputs
        .push(ConcatInput {
            tensor: t4,
            multiplier: 1 << 30,
            shift: 1,
        })
        .unwrap();
    inputs
        .push(ConcatInput {
            tensor: t5,
            multiplier: 1_518_500_250,
            shift: 2,
        })
        .unwrap();
    b.push(&Op::Concat(Concat {
        inputs,
        output: t6,
        clamp: Clamp {
            min: -128,
            max: 127,
        },
    }))
    .unwrap();

    let p3 = params(&mut rng, 24 * 3 * 3 * 24, 24, 4, false, -7);
    let t7 = b.tensor(spec(4, 4, 24, 2, 8));
    b.push(&Op::Conv2d(Conv2d {
        input: t6,
        output: t7,
        window: Window::square(3, 1, 1, 1),
        weights: weights(&p3, 4, WeightScheme::PerTensorAffine, -2),
        bias: LeI32s::new(&p3.bias),
        requant: requant(&p3),
        clamp: Clamp { min: 2, max: 127 },
    }))
    .unwrap();

    let t8 = b.tensor(spec(4, 4, 24, -1, 8));
    b.push(&Op::Add(Add {
        inputs: [
            AddInput {
                tensor: t6,
                multiplier: 1_431_655_765,
                shift: -1,
            },
            AddInput {
                tensor: t7,
                multiplier: 1 << 30,
                shift: 0,
            },
        ],
        output: t8,
        left_shift: 20,
        output_multiplier: 1_789_569_707,
        output_shift: -19,
        clamp: Clamp { min: -1, max: 127 },
    }))
    .unwrap();

    let t9 = b.tensor(spec(1, 1, 24, -1, 8));
    b.push(&Op::GlobalAvgPool(GlobalAvgPool {
        input: t8,
        output: t9,
        clamp: Clamp {
            min: -128,
            max: 127,
        },
    }))
    .unwrap();

    let p4 = params(&mut rng, 10 * 24, 10, 8, true, -9);
    let t10 = b.tensor(spec(1, 1, 10, 4, 8));
    b.push(&Op::Linear(Linear {
        input: t9,
        output: t10,
        weights: weights(&p4, 8, WeightScheme::PerChannelSymmetric, 0),
        bias: LeI32s::new(&p4.bias),
        requant: requant(&p4),
        clamp: Clamp {
            min: -128,
            max: 127,
        },
    }))
    .unwrap();

    b.rounding(Rounding::Double);
    b.finish(t10, 0.1).unwrap()
}

fn logits(model: &Model<'_>, input: &[i8]) -> Vec<i8> {
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interpreter = Interpreter::new(model, &mut arena).unwrap();
    interpreter.run(input).unwrap().to_vec()
}

fn vectors(blob: &[u8]) -> Vec<u8> {
    let model = Model::from_bytes(blob).unwrap();
    let mut rng = Lcg(42);
    let mut bundle = TestVectorsBuilder::new(model.header().crc32, 8 * 8 * 3, 10);
    for i in 0..32 {
        let input = rng.values(8 * 8 * 3, 8);
        bundle
            .push(&input, (i % 10) as u8, &logits(&model, &input))
            .unwrap();
    }
    bundle.finish().unwrap()
}

#[test]
fn golden_blob_still_decodes_and_runs_the_same() {
    let (blob_path, vectors_path) = (dir().join("model.ghnq"), dir().join("vectors.ghnv"));
    let rebuilt = fixture();
    if std::env::var_os("GHNQ_BLESS").is_some() {
        std::fs::create_dir_all(dir()).unwrap();
        std::fs::write(&blob_path, &rebuilt).unwrap();
        std::fs::write(&vectors_path, vectors(&rebuilt)).unwrap();
    }
    let golden =
        std::fs::read(&blob_path).unwrap_or_else(|e| panic!("{}: {e}", blob_path.display()));
    let model = Model::from_bytes(&golden).expect("the golden 1.0 blob must still decode");
    let header = model.header();
    assert_eq!((header.major, header.minor), (1, 0));
    assert_eq!(model.op_count(), 10);
    assert_eq!(model.metadata().name, "golden-v1.0");

    // Decodes to the same model: ops, tensor table and header equal what the fixture describes.
    let fresh = Model::from_bytes(&rebuilt).unwrap();
    let ops: Vec<Op<'_>> = model.ops().map(Result::unwrap).collect();
    let fresh_ops: Vec<Op<'_>> = fresh.ops().map(Result::unwrap).collect();
    assert_eq!(ops, fresh_ops);
    assert_eq!(
        model.tensors().iter().collect::<Vec<_>>(),
        fresh.tensors().iter().collect::<Vec<_>>()
    );
    assert_eq!(model.header(), fresh.header());
    assert_eq!(
        golden, rebuilt,
        "the encoder's output for the fixture changed: a format change needs a version bump"
    );

    // Runs the same: every expected logit of the bundle is reproduced.
    let bundle_bytes = std::fs::read(&vectors_path).unwrap();
    let bundle = TestVectors::from_bytes(&bundle_bytes).unwrap();
    assert_eq!(bundle.model_crc(), header.crc32);
    assert_eq!(bundle.len(), 32);
    for (i, sample) in bundle.iter().enumerate() {
        assert_eq!(
            logits(&model, sample.input),
            sample.expected,
            "runtime, sample {i}"
        );
        let golden_logits =
            tests::golden::run(&model, sample.input).expect("golden interpreter runs the blob");
        assert_eq!(
            golden_logits, sample.expected,
            "independent golden interpreter, sample {i}"
        );
    }
}
