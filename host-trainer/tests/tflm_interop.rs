//! TFLite interop, checked against the real TFLM rather than our own golden interpreter: each
//! MLPerf Tiny reference model is imported, and 100 seeded random inputs run through TFLM's
//! reference kernels (PyPI `tflite-micro`, installed by `cargo xtask setup`) and through the
//! edge runtime must give the same output bytes. A missing TFLM fails the suite; it never skips.

use std::path::Path;

mod common;

use ghnq_core::shared_data;
use ghnq_tflite as tflite;
use ghnq_tflite::tflm::{Tflm, mlperf_model};
use rand::{Rng, SeedableRng};
use shared_format::Model;

const SAMPLES: usize = 100;

/// Imports `name`, runs `SAMPLES` random inputs through both interpreters and returns the
/// number of differing output bytes with a description of the first difference.
fn compare(tflm: &Tflm, name: &str, seed: u64) -> (usize, usize, String) {
    let path = mlperf_model(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let imported = tflite::import(&bytes, name).unwrap_or_else(|e| panic!("importing {name}: {e}"));
    let model = Model::from_bytes(&imported.blob).expect("the importer's blob decodes");
    let input_len = model.input_tensor().bytes() as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let inputs: Vec<i8> = (0..input_len * SAMPLES).map(|_| rng.random()).collect();
    let expected = tflm
        .run(Path::new(&path), &inputs, SAMPLES)
        .unwrap_or_else(|e| panic!("TFLM on {name}: {e}"));
    let output_len = expected.len() / SAMPLES;
    assert_eq!(
        output_len,
        model.output_tensor().bytes() as usize,
        "{name}: output size"
    );
    let ours = common::run_blob(&imported.blob, &inputs, input_len);
    let (differing, first) = common::diff(&ours, &expected, output_len);
    (differing, output_len * SAMPLES, first)
}

#[test]
fn mlperf_tiny_models_match_tflm_byte_for_byte() {
    let test = "tflm_interop::mlperf_tiny_models_match_tflm_byte_for_byte";
    let names = [
        "pretrainedResnet_quant.tflite",
        "kws_ref_model.tflite",
        "vww_96_int8.tflite",
        "ad01_int8.tflite",
    ];
    if names.iter().any(|n| model_for(test, n).is_none()) {
        return;
    }
    let tflm = Tflm::locate().expect("TFLM's reference interpreter (run `cargo xtask setup`)");
    let mut failures = Vec::new();
    for (k, name) in [
        "pretrainedResnet_quant.tflite",
        "kws_ref_model.tflite",
        "vww_96_int8.tflite",
        "ad01_int8.tflite",
    ]
    .into_iter()
    .enumerate()
    {
        let (differing, total, first) = compare(&tflm, name, 100 + k as u64);
        println!("{name}: {SAMPLES} inputs, {differing} of {total} output bytes differ from TFLM");
        if differing > 0 {
            failures.push(format!(
                "{name}: {differing} bytes differ; first at {first}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Real images, not only noise: the 932 lossless CIFAR-10 test records in `../shared/data/cifar10/`
/// (never copied into the repository) through ResNet-8, whose input is the raw pixel at scale 1
/// and zero point −128. Same bytes as TFLM, and the published model's accuracy as a sanity check.
#[test]
fn resnet8_on_real_cifar10_images_matches_tflm() {
    let test = "tflm_interop::resnet8_on_real_cifar10_images_matches_tflm";
    let (Some(_), Some(cifar)) = (
        model_for(test, "pretrainedResnet_quant.tflite"),
        shared_data::for_test(test, "cifar10/test_batch_lossless_first932.bin"),
    ) else {
        return;
    };
    let tflm = Tflm::locate().expect("TFLM's reference interpreter (run `cargo xtask setup`)");
    let (planar, labels) = ghnq_core::data::cifar10::read_batch(&cifar).expect("CIFAR-10 slice");
    // CHW planes → HWC, pixel − 128.
    let n = labels.len();
    let mut inputs = Vec::with_capacity(planar.len());
    for img in planar.chunks_exact(3 * 1024) {
        for p in 0..1024 {
            for c in 0..3 {
                inputs.push((i16::from(img[c * 1024 + p]) - 128) as i8);
            }
        }
    }
    let path = mlperf_model("pretrainedResnet_quant.tflite");
    let imported = tflite::import(&std::fs::read(&path).unwrap(), "resnet8").unwrap();
    let model = Model::from_bytes(&imported.blob).unwrap();
    let expected = tflm.run(&path, &inputs, n).expect("TFLM");
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interpreter = edge_runtime::Interpreter::new(&model, &mut arena).unwrap();
    let (mut differing, mut correct) = (0, 0);
    for (s, input) in inputs.chunks(3072).enumerate() {
        let ours = interpreter.run(input).unwrap();
        differing += ours
            .iter()
            .zip(&expected[s * 10..(s + 1) * 10])
            .filter(|(a, b)| a != b)
            .count();
        correct += usize::from(shared_format::vectors::top1(ours) == usize::from(labels[s]));
    }
    let accuracy = 100.0 * correct as f64 / n as f64;
    println!(
        "ResNet-8 on {n} CIFAR-10 test images: {differing} output bytes differ from TFLM; top-1 {accuracy:.1} %"
    );
    assert_eq!(differing, 0);
    // MLPerf Tiny's ResNet-8 reaches about 87 % on the CIFAR-10 test set.
    assert!(accuracy > 80.0, "top-1 {accuracy:.1} %");
}

#[test]
fn a_file_that_is_not_tflite_is_a_clear_error() {
    let test = "tflm_interop::a_file_that_is_not_tflite_is_a_clear_error";
    let Some(path) = model_for(test, "pretrainedResnet_quant.tflite") else {
        return;
    };
    let bytes = std::fs::read(path).expect("model");
    for bad in [
        &bytes[..bytes.len() / 3],
        &b"GHNQ not a flatbuffer at all"[..],
        &[][..],
    ] {
        let err = tflite::import(bad, "bad")
            .expect_err("must be refused")
            .to_string();
        assert!(
            err.contains("not a valid TensorFlow Lite flatbuffer"),
            "{err}"
        );
    }
}

/// MLPerf Tiny model `name` for `test`, or `None` after the skip is reported.
fn model_for(test: &str, name: &str) -> Option<std::path::PathBuf> {
    shared_data::for_test(test, &format!("mlperf-tiny/{name}"))
}
