//! `ghnq export` as a user runs it: a net and its parameters in, a blob and a test-vector bundle
//! out that `ghnq run` replays with zero disagreements; bad input is a clear error.

mod common;
use common::{ghnq, text};

use std::path::Path;

use burn::tensor::Device;
use ghnq_core::arch::ImageShape;
use ghnq_core::cnn::ParamSet;
use ghnq_core::sources::random_small_net;
use rand::SeedableRng;

/// A random 28x28x1 net and random parameters, written as `ghnq predict` would.
fn net_and_params(dir: &Path) -> (String, String) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let net = random_small_net(&mut rng, ImageShape::FASHION_MNIST, 10, "cli-export");
    let arch = dir.join("net.json");
    ghnq_core::arch::text::write_net(&net, &arch).unwrap();
    let params = dir.join("net.safetensors");
    ParamSet::init_random(&net, &Device::flex())
        .save_safetensors(&net, &params)
        .unwrap();
    (
        arch.to_str().unwrap().to_owned(),
        params.to_str().unwrap().to_owned(),
    )
}

#[test]
fn export_writes_a_blob_and_vectors_that_run_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (arch, params) = net_and_params(dir.path());
    for bits in ["w8a8", "w4a4"] {
        let blob = dir.path().join(format!("{bits}.ghnq"));
        let vectors = dir.path().join(format!("{bits}.ghnv"));
        let (blob, vectors) = (blob.to_str().unwrap(), vectors.to_str().unwrap());
        let out = ghnq(&[
            "export",
            "--params",
            &params,
            "--arch",
            &arch,
            "--bits",
            bits,
            "--dataset",
            "synthetic-gray",
            "--calib",
            "64",
            "--images",
            "64",
            "--samples",
            "32",
            "-o",
            blob,
            "--vectors",
            vectors,
            "--json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(report["bits"], bits);
        assert_eq!(report["comparison"]["samples"], 64);
        assert!(
            report["comparison"]["top1_agreement"].as_f64().unwrap() >= 95.0,
            "{report}"
        );

        let run = ghnq(&["run", blob, "--vectors", vectors]);
        let stdout = text(&run.stdout);
        assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
        assert!(stdout.contains("samples 32"), "{stdout}");
        assert!(stdout.contains("disagreements 0"), "{stdout}");

        let inspect = ghnq(&["inspect", blob]);
        let stdout = text(&inspect.stdout);
        assert!(stdout.contains(&format!("precision  {bits}")), "{stdout}");
        assert!(stdout.contains("rounding single"), "{stdout}");
    }
}

#[test]
fn export_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (arch, params) = net_and_params(dir.path());
    let blob = dir.path().join("x.ghnq");
    let blob = blob.to_str().unwrap();
    let bad_bits = ghnq(&[
        "export", "--params", &params, "--arch", &arch, "--bits", "w9a8", "-o", blob,
    ]);
    assert!(!bad_bits.status.success());
    assert!(
        text(&bad_bits.stderr).contains("w<bits>a<bits>"),
        "{}",
        text(&bad_bits.stderr)
    );

    let cifar_net = ghnq(&[
        "export",
        "--params",
        &params,
        "--arch",
        &arch,
        "--dataset",
        "synthetic",
        "-o",
        blob,
    ]);
    assert!(!cifar_net.status.success());
    let err = text(&cifar_net.stderr);
    assert!(err.contains("28x28x1") && err.contains("32x32x3"), "{err}");
    assert!(!Path::new(blob).exists(), "nothing written on failure");
}
