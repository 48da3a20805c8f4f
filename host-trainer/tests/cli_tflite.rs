//! `ghnq import` as a user runs it, through to the emulated Cortex-M4: the bundle it writes holds
//! TFLM's outputs (checked here against TFLM itself), and the device reproduces them byte for
//! byte. Bad input is a clear error naming the file.

mod common;
use common::{ghnq, text};

use ghnq_tflite::tflm::{Tflm, mlperf_model};
use shared_format::TestVectors;

#[test]
fn resnet8_and_ds_cnn_run_on_the_cortex_m4_as_tflm_does() {
    let test = "cli_tflite::resnet8_and_ds_cnn_run_on_the_cortex_m4_as_tflm_does";
    if ["pretrainedResnet_quant", "kws_ref_model"].iter().any(|n| {
        ghnq_core::shared_data::for_test(test, &format!("mlperf-tiny/{n}.tflite")).is_none()
    }) {
        return;
    }
    let tflm = Tflm::locate().expect("TFLM's reference interpreter (run `cargo xtask setup`)");
    let dir = tempfile::tempdir().unwrap();
    let mut hil_args = vec![
        "hil".to_owned(),
        "--board".into(),
        "mps2-an386".into(),
        "--json".into(),
    ];
    for name in ["pretrainedResnet_quant", "kws_ref_model"] {
        let tflite = mlperf_model(&format!("{name}.tflite"));
        let blob = dir.path().join(format!("{name}.ghnq"));
        let vectors = dir.path().join(format!("{name}.ghnv"));
        let out = ghnq(&[
            "import",
            tflite.to_str().unwrap(),
            "-o",
            blob.to_str().unwrap(),
            "--vectors",
            vectors.to_str().unwrap(),
            "--samples",
            "6",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("softmax"),
            "{}",
            text(&out.stdout)
        );
        // The bundle's expected outputs (the host runtime's) are TFLM's.
        let bytes = std::fs::read(&vectors).unwrap();
        let bundle = TestVectors::from_bytes(&bytes).unwrap();
        let inputs: Vec<i8> = bundle.iter().flat_map(|s| s.input.to_vec()).collect();
        let expected: Vec<i8> = bundle.iter().flat_map(|s| s.expected.to_vec()).collect();
        assert_eq!(
            tflm.run(&tflite, &inputs, bundle.len()).unwrap(),
            expected,
            "{name}"
        );
        hil_args.extend(["--model".into(), blob.to_str().unwrap().into()]);
        hil_args.extend(["--vectors".into(), vectors.to_str().unwrap().into()]);
    }
    let args: Vec<&str> = hil_args.iter().map(String::as_str).collect();
    let out = ghnq(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{stdout}");
    for row in rows {
        assert_eq!(row["samples"], 6, "{row}");
        assert_eq!(row["disagreements"], 0, "{row}");
    }
}

#[test]
fn a_bad_tflite_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.tflite");
    std::fs::write(&bad, b"definitely not a flatbuffer").unwrap();
    let out_path = dir.path().join("x.ghnq");
    let out = ghnq(&[
        "import",
        bad.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("broken.tflite"), "{err}");
    assert!(
        err.contains("not a valid TensorFlow Lite flatbuffer"),
        "{err}"
    );
    assert!(!out_path.exists(), "nothing is written on failure");
}
