//! Bit-exactness: the edge runtime and the independent golden interpreter must produce identical
//! logits on thousands of random valid models (NUMERICS.md is the contract for both).
//!
//! Every case also poisons the arena with random bytes first (a kernel must not rely on zeroed
//! memory) and runs the same interpreter twice with different inputs (no state may leak between
//! inferences). After each property, the summed [`Features`] must cover every op kind, every
//! weight × activation bit-width pair, both weight schemes and both rounding modes, so the
//! generator cannot silently narrow.
//!
//! Runs are deterministic (fixed proptest seed); set `BIT_EXACT_RANDOM=1` to explore with a
//! fresh seed, `BIT_EXACT_SCALE=k` to run k times as many cases. A failure prints the model's
//! generator seed and op list; `generate(seed, GenConfig { max_ops, .. })` rebuilds it.

use std::sync::Mutex;
use std::time::Instant;

use edge_runtime::{Interpreter, Model};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use tests::generator::{Features, GenConfig, GeneratedModel, Rng, arb_model, random_input};
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

    let second = random_input(&mut rng, model_input_spec(&model));
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

fn model_input_spec(model: &Model<'_>) -> shared_format::TensorSpec {
    let t = model.input_tensor();
    shared_format::TensorSpec {
        shape: t.shape,
        zero_point: t.zero_point,
        bits: t.bits,
    }
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
    let ops = [
        "conv2d",
        "depthwise_conv2d",
        "max_pool",
        "avg_pool",
        "global_avg_pool",
        "add",
        "concat",
        "linear",
    ];
    for op in ops {
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
        (1..=7).collect(),
        "kernel sizes 1..=7 not all generated"
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
