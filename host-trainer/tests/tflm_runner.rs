//! TensorFlow Lite Micro's reference interpreter runs from the test suite: each MLPerf Tiny
//! reference model gives deterministic outputs of the right length, which depend on the input.
//!
//! These tests fail, never skip, when TFLM is not installed: `cargo xtask setup` installs it
//! (see `ghnq_tflite::tflm`).

use ghnq_tflite::tflm::Tflm;

const SAMPLES: usize = 3;

/// Seeded SplitMix64 bytes as int8: the same inputs on every run and every machine.
fn random_inputs(seed: u64, len: usize) -> Vec<i8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)).to_le_bytes()[0] as i8
        })
        .collect()
}

fn tflm() -> Tflm {
    Tflm::locate().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `SAMPLES` random inputs of `input_len` bytes through `name` twice and checks
/// determinism, the output length, and that the inputs are not all mapped to one output.
fn check_model(name: &str, seed: u64, input_len: usize, output_len: usize) {
    let Some(model) = model_for(&format!("tflm_runner::{name}"), name) else {
        return;
    };
    let tflm = tflm();
    let inputs = random_inputs(seed, SAMPLES * input_len);
    let first = tflm
        .run(&model, &inputs, SAMPLES)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let second = tflm
        .run(&model, &inputs, SAMPLES)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        first.len(),
        SAMPLES * output_len,
        "{name}: {SAMPLES} samples should give {output_len} int8 outputs each"
    );
    assert_eq!(first, second, "{name}: TFLM is not deterministic");
    let outputs: Vec<&[i8]> = first.chunks(output_len).collect();
    assert!(
        outputs.iter().any(|o| *o != outputs[0]),
        "{name}: {SAMPLES} different inputs all gave the output {:?}",
        outputs[0]
    );
}

#[test]
fn resnet8_cifar10() {
    check_model("pretrainedResnet_quant.tflite", 1, 32 * 32 * 3, 10);
}

#[test]
fn kws_ds_cnn() {
    check_model("kws_ref_model.tflite", 2, 49 * 10, 12);
}

#[test]
fn vww_mobilenet_v1() {
    check_model("vww_96_int8.tflite", 3, 96 * 96 * 3, 2);
}

#[test]
fn anomaly_detection_autoencoder() {
    check_model("ad01_int8.tflite", 4, 640, 640);
}

#[test]
fn input_of_the_wrong_size_is_refused() {
    let Some(ad01) = model_for(
        "tflm_runner::input_of_the_wrong_size_is_refused",
        "ad01_int8.tflite",
    ) else {
        return;
    };
    let err = tflm()
        .run(&ad01, &[0; 639], 1)
        .expect_err("639 bytes are not one 640-byte input");
    assert!(
        err.to_string().contains("640"),
        "the error should name the expected size: {err}"
    );
}

#[test]
fn bench_reports_a_time() {
    let Some(ad01) = model_for("tflm_runner::bench_reports_a_time", "ad01_int8.tflite") else {
        return;
    };
    let ms = tflm().bench(&ad01, 5).unwrap_or_else(|e| panic!("{e}"));
    assert!(ms > 0.0 && ms < 10_000.0, "{ms} ms per inference");
}

/// MLPerf Tiny model `name` for `test`, or `None` after the skip is reported.
fn model_for(test: &str, name: &str) -> Option<std::path::PathBuf> {
    ghnq_core::shared_data::for_test(test, &format!("mlperf-tiny/{name}"))
}
