//! Unit tests of the generator: TFLM parameter derivations against the format's helpers,
//! validity and determinism of generated models.

use shared_format::{Mean, Rounding, Softmax};

use super::*;

#[test]
fn quantize_multiplier_matches_tflm() {
    assert_eq!(quantize_multiplier(0.0, Rounding::Double), (0, 0));
    assert_eq!(quantize_multiplier(0.5, Rounding::Double), (1 << 30, 0));
    assert_eq!(quantize_multiplier(1.0, Rounding::Double), (1 << 30, 1));
    assert_eq!(quantize_multiplier(0.25, Rounding::Double), (1 << 30, -1));
    // 1/√2 → 1518500250 (EDGE_ANCHORS §3.7), shift 0.
    assert_eq!(
        quantize_multiplier(std::f64::consts::FRAC_1_SQRT_2, Rounding::Double),
        (1_518_500_250, 0)
    );
    // q just below 1 rounds up to 2^31 and renormalises.
    assert_eq!(
        quantize_multiplier(1.0 - 1e-12, Rounding::Double),
        (1 << 30, 1)
    );
    // Below 2^-32 flushes to zero.
    assert_eq!(quantize_multiplier(1e-12, Rounding::Double), (0, 0));
    // Single rounding caps the shift at 30.
    assert_eq!(quantize_multiplier(1e12, Rounding::Single), (i32::MAX, 30));
    assert_eq!(quantize_multiplier(1e12, Rounding::Double).1, 40);
}

#[test]
fn generator_builds_valid_models_almost_always() {
    let mut ok = 0;
    for seed in 0..500u64 {
        if generate(seed, GenConfig::default()).is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= 495, "only {ok}/500 generated models were valid");
}

/// The generator's TFLM softmax parameters agree with `Softmax::from_scale`, which the
/// importer uses: two derivations of the same TFLM code (f64 `floor` here, integer shifts
/// there) over scales from 2^−20 to 2^8.
#[test]
fn softmax_params_agree_with_the_format_helper() {
    let mut rng = Rng::new(7);
    for _ in 0..20_000 {
        let scale = (rng.unit() * 28.0 - 20.0).exp2() as f32;
        let beta = if rng.chance(0.5) {
            1.0
        } else {
            rng.unit() as f32 * 3.0
        };
        for rounding in [Rounding::Double, Rounding::Single] {
            let ours = tflm_softmax_params(beta, scale, rounding);
            let theirs = Softmax::from_scale(0, 1, beta, scale, rounding)
                .map(|s| (s.input_multiplier, s.input_left_shift as i32, s.diff_min));
            assert_eq!(ours, theirs, "beta {beta} scale {scale} {rounding:?}");
        }
    }
    assert_eq!(
        tflm_softmax_params(1.0, 1.0 / 255.0, Rounding::Double),
        Some((1_077_952_640, 19, -3968))
    );
}

/// The generator's TFLM mean parameters agree with `Mean::from_scales`, which the importer
/// uses: two writings of TFLM's fold (i128 and a bit search here, i64 and leading zeros
/// there) over ratios from 2^−34 to 2^34 and every cell count a blob may have.
#[test]
fn mean_params_agree_with_the_format_helper() {
    let mut rng = Rng::new(11);
    let mut capped = 0;
    for _ in 0..20_000 {
        let s_in = (rng.unit() * 20.0 - 10.0).exp2() as f32;
        let s_out = (rng.unit() * 48.0 - 24.0).exp2() as f32;
        let cells = match rng.below(3) {
            0 => rng.range(1, 64),
            1 => rng.range(1, 4096),
            _ => rng.range(1, shared_format::MAX_MEAN_CELLS as i64),
        } as u64;
        for rounding in [Rounding::Double, Rounding::Single] {
            let ours = tflm_mean_params(s_in, s_out, cells, rounding);
            let theirs = Mean::from_scales(0, 1, s_in, s_out, cells, rounding)
                .map(|m| (m.multiplier, m.shift as i32));
            assert_eq!(ours, theirs, "{s_in} / {s_out} over {cells} {rounding:?}");
            capped += ours.is_some_and(|(m, _)| m < 1 << 29) as u32;
        }
    }
    assert!(capped > 100, "the shift cap bit only {capped} times");
    // s_in / s_out = 1/2 over 7×7: QuantizeMultiplier(0.5) = (2^30, 0), then k = 5.
    assert_eq!(
        tflm_mean_params(0.5, 1.0, 49, Rounding::Double),
        Some((((1i64 << 35) / 49) as i32, -5))
    );
}

#[test]
fn generation_is_deterministic() {
    let a = generate(42, GenConfig::default()).unwrap();
    let b = generate(42, GenConfig::default()).unwrap();
    assert_eq!(a.blob, b.blob);
    assert_eq!(a.input, b.input);
}
