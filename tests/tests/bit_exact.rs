//! Bit-exactness: the edge runtime and the independent golden interpreter must produce identical
//! logits on thousands of random valid models (NUMERICS.md is the contract for both).
//!
//! Every case also poisons the arena with random bytes first (a kernel must not rely on zeroed
//! memory) and runs the same interpreter twice with different inputs (no state may leak between
//! inferences). After each property, the summed [`Features`] must cover every op kind (softmax,
//! mean, mul with a broadcast gate, logistic, hard swish and table included), every weight × activation bit-width pair, both weight schemes, both
//! rounding modes, every conv kernel side up to 16 (and non-square ones), every softmax left
//! shift and a mean whose TFLM fold caps its shift, so the generator cannot silently narrow.
//!
//! Runs are deterministic (fixed proptest seed); set `BIT_EXACT_RANDOM=1` to explore with a
//! fresh seed, `BIT_EXACT_SCALE=k` to run k times as many cases. A failure prints the model's
//! generator seed and op list; `generate(seed, GenConfig { max_ops, .. })` rebuilds it.

use std::sync::Mutex;
use std::time::Instant;

use edge_runtime::{Interpreter, Model};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use shared_format::{ModelBuilder, Op, Padding, Rounding, Shape, Softmax, TensorSpec, Window};
use tests::generator::{
    Features, GenConfig, GeneratedModel, OP_KINDS, Rng, arb_model, input_spec, random_input,
    single_conv_model, tflm_softmax_params,
};
use tests::golden;

fn runner(cases: u32) -> TestRunner {
    let scale: u32 = std::env::var("BIT_EXACT_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let config = Config {
        cases: cases * scale,
        failure_persistence: None,
        max_global_rejects: cases * scale / 10,
        ..Config::default()
    };
    if std::env::var_os("BIT_EXACT_RANDOM").is_some() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }
}

/// Runs `g` through both interpreters; on mismatch reports the model, input and both outputs.
fn check(g: &GeneratedModel) -> Result<(), TestCaseError> {
    let model = Model::from_bytes(&g.blob)
        .map_err(|e| TestCaseError::fail(format!("generated blob does not decode: {e}")))?;
    let mut rng = Rng::new(g.seed ^ 0xA5A5_5A5A_0F0F_F0F0);
    let mut arena: Vec<u8> = (0..model.arena_bytes())
        .map(|_| rng.next_u64() as u8)
        .collect();
    let mut interpreter = Interpreter::new(&model, &mut arena)
        .map_err(|e| TestCaseError::fail(format!("Interpreter::new: {e}")))?;

    let second = random_input(&mut rng, input_spec(&model));
    for input in [&g.input, &second] {
        let expected = golden::run(&model, input)
            .map_err(|e| TestCaseError::fail(format!("golden refused a valid input: {e:?}")))?;
        let got = interpreter
            .run(input)
            .map_err(|e| TestCaseError::fail(format!("runtime error: {e}\n{}", g.description)))?
            .to_vec();
        prop_assert_eq!(
            &got,
            &expected,
            "runtime (left) != golden (right)\nmodel (seed {:#x}, max_ops {}):\n{}input: {:?}",
            g.seed,
            g.max_ops,
            g.description,
            input
        );
    }
    Ok(())
}

/// Runs `cases` models of `config` and returns the features they covered.
fn run_property(name: &str, config: GenConfig, cases: u32) -> Features {
    let covered = Mutex::new((Features::default(), 0u32));
    let start = Instant::now();
    let result = runner(cases).run(&arb_model(config), |g| {
        check(&g)?;
        let mut c = covered.lock().unwrap();
        c.0.merge(&g.features);
        c.1 += 1;
        Ok(())
    });
    let (features, passed) = covered.into_inner().unwrap();
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    eprintln!(
        "{name}: {passed} models bit-exact in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        passed >= cases,
        "{name}: only {passed} of {cases} cases ran"
    );
    features
}

fn assert_covers_everything(f: &Features) {
    for op in OP_KINDS {
        assert!(f.ops.contains(op), "op {op} never generated: {f:?}");
    }
    for w in [2u8, 4, 8] {
        for a in [2u8, 4, 8] {
            assert!(
                f.weight_act_bits.contains(&(w, a)),
                "W{w}A{a} never generated"
            );
        }
    }
    for s in ["per_tensor_affine", "per_channel_symmetric"] {
        assert!(f.schemes.contains(s), "scheme {s} never generated");
    }
    for r in ["double", "single"] {
        assert!(f.rounding.contains(r), "{r} rounding never generated");
    }
    assert_eq!(
        f.kernels,
        (1..=16).collect(),
        "kernel sizes 1..=16 not all generated"
    );
    assert!(f.non_square_kernel, "no non-square conv kernel generated");
    assert!(f.mul_broadcast, "no mul broadcast a gate over a map");
    assert!(
        f.mean_fold_capped,
        "no mean whose TFLM fold caps its shift generated"
    );
    assert_eq!(
        f.softmax_shifts,
        (0..=31).collect(),
        "softmax left shifts 0..=31 not all generated"
    );
    assert_eq!(
        f.dilations,
        (1..=4).collect(),
        "dilations 1..=4 not all generated"
    );
    assert_eq!(
        f.strides,
        [1, 2].into(),
        "strides 1 and 2 not both generated"
    );
    assert!(f.asymmetric_padding, "asymmetric padding never generated");
    assert_eq!(
        f.act_bits,
        (2..=8).collect(),
        "activation bit-widths 2..=8 not all generated"
    );
}

/// 20,000 chains and small DAGs of up to six ops (plus Add/Concat partners).
#[test]
fn runtime_matches_golden_on_random_models() {
    let f = run_property("random models", GenConfig::default(), 20_000);
    assert_covers_everything(&f);
}

/// 5,000 single-op models, so every kernel is also checked in isolation (no upstream op can
/// mask a difference by saturating).
#[test]
fn runtime_matches_golden_on_single_ops() {
    let f = run_property(
        "single ops",
        GenConfig {
            max_ops: 1,
            ..GenConfig::default()
        },
        5_000,
    );
    for op in ["conv2d", "depthwise_conv2d", "linear"] {
        assert!(f.ops.contains(op), "{op} never generated alone");
    }
    for r in ["double", "single"] {
        assert!(f.rounding.contains(r), "{r} rounding never generated");
    }
}

/// 1,000 larger models (spatial up to 16, up to 12 channels), so tiling and channel loops are
/// exercised beyond the tiny sizes above.
#[test]
fn runtime_matches_golden_on_larger_models() {
    run_property(
        "larger models",
        GenConfig {
            max_ops: 4,
            max_spatial: 16,
            max_channels: 12,
            mac_budget: 400_000,
        },
        1_000,
    );
}

/// 1,000 models with up to 80 channels, so depthwise's channel tiles (`DEPTHWISE_TILE` = 32
/// wide: up to two whole tiles plus a partial one) and the wider conv/linear loops are checked
/// against the golden interpreter with every weight scheme, zero point and window the generator
/// makes.
#[test]
fn runtime_matches_golden_on_wide_channels() {
    let f = run_property(
        "wide channels",
        GenConfig {
            max_ops: 4,
            max_spatial: 10,
            max_channels: 80,
            mac_budget: 400_000,
        },
        1_000,
    );
    for op in ["conv2d", "depthwise_conv2d"] {
        assert!(
            f.ops.contains(op),
            "{op} never generated with wide channels"
        );
    }
}

/// Runs `blob` on `inputs` in both interpreters and requires identical outputs.
fn same_bits(blob: &[u8], inputs: &[Vec<i8>], what: &str) {
    let model = Model::from_bytes(blob).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interpreter = Interpreter::new(&model, &mut arena).unwrap();
    for (i, input) in inputs.iter().enumerate() {
        let expected = golden::run(&model, input).unwrap();
        let got = interpreter.run(input).unwrap();
        assert_eq!(got, &expected[..], "{what}, input {i}");
    }
}

/// The keyword-spotting DS-CNN's first layer, exactly: 49×10×1 → conv 10×4, stride 2, TFLite
/// SAME padding (4 above, 5 below, 1 left, 2 right) → 25×5×64, in every weight bit-width and
/// with both a 16×16 conv and depthwise beside it.
#[test]
fn runtime_matches_golden_on_large_kernels() {
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
    let mut rng = Rng::new(0xD5C2);
    for (seed, bits) in [2u8, 4, 8].into_iter().enumerate() {
        let cases = [
            (
                single_conv_model(seed as u64, 49, 10, 1, 64, ds_cnn, false, bits, 8),
                49 * 10,
            ),
            (
                single_conv_model(
                    seed as u64,
                    12,
                    9,
                    3,
                    4,
                    Window::square(16, 1, 1, 8),
                    false,
                    bits,
                    8,
                ),
                12 * 9 * 3,
            ),
            (
                single_conv_model(
                    seed as u64,
                    11,
                    16,
                    40,
                    40,
                    Window::square(16, 2, 1, 7),
                    true,
                    bits,
                    8,
                ),
                11 * 16 * 40,
            ),
        ];
        for (blob, n) in cases {
            let inputs: Vec<Vec<i8>> = (0..3)
                .map(|_| (0..n).map(|_| rng.range(-128, 127) as i8).collect())
                .collect();
            assert_eq!(Model::from_bytes(&blob).unwrap().header().minor, 2);
            same_bits(&blob, &inputs, &format!("large kernel W{bits}"));
        }
    }
}

/// Softmax alone over 1 to 4,095 channels with logits crowded near their maximum, so the sum of
/// exponentials spans its whole range, past the 512 where TFLM's output shift exceeds 31 (its
/// abort; the format's rounded 0), in both rounding modes.
#[test]
fn runtime_matches_golden_on_wide_softmax() {
    let mut rng = Rng::new(0x50F7);
    let mut past_512 = 0;
    for case in 0..300u32 {
        let rounding = if case % 2 == 0 {
            Rounding::Double
        } else {
            Rounding::Single
        };
        let channels = match rng.below(3) {
            0 => rng.range(1, 64),
            1 => rng.range(400, 1100),
            _ => rng.range(1, 4095),
        } as u16;
        let rows = rng.range(1, 3) as u16;
        let scale = (rng.unit() * 10.0 - 9.0).exp2() as f32;
        let (m, shift, diff_min) = tflm_softmax_params(1.0, scale, rounding).unwrap();
        let shape = Shape::new(rows, 1, channels);
        let spec = TensorSpec {
            shape,
            zero_point: 0,
            bits: 8,
        };
        let mut b = ModelBuilder::new(spec, scale);
        b.rounding(rounding);
        let out = b.tensor(TensorSpec {
            zero_point: -128,
            ..spec
        });
        b.push(&Op::Softmax(Softmax {
            input: 0,
            output: out,
            input_multiplier: m,
            input_left_shift: shift as i8,
            diff_min,
        }))
        .unwrap();
        let blob = b.finish(out, 1.0 / 256.0).unwrap();
        let spread = rng.range(0, 12);
        let top = rng.range(-128 + spread, 127);
        let input: Vec<i8> = (0..rows as usize * channels as usize)
            .map(|_| (top - rng.range(0, spread)) as i8)
            .collect();
        past_512 += usize::from(channels >= 512 && spread <= 1);
        same_bits(
            &blob,
            &[input],
            &format!("case {case}: {channels} channels, m {m} shift {shift} {rounding:?}"),
        );
    }
    assert!(past_512 > 0, "no row summed past 512");
}
