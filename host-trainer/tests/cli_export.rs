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
    ParamSet::init_random_seeded(&net, 5, &Device::flex())
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

/// `ghnq run --inputs` with a user's own files: the bundle's inputs as raw bytes, as an int8
/// `.npy` and as a float32 `.npy` (dequantized, so quantizing them back gives the same codes)
/// all give the bundle's logits, written as raw bytes, int8 `.npy` and dequantized float32
/// `.npy`; a wrong shape and a float32 raw output are refused by name.
#[test]
fn run_takes_a_users_own_inputs_and_writes_the_logits() {
    use npyz::WriterBuilder;
    let dir = tempfile::tempdir().unwrap();
    let (arch, params) = net_and_params(dir.path());
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (blob, vectors) = (p("m.ghnq"), p("m.ghnv"));
    let out = ghnq(&[
        "export",
        "--params",
        &params,
        "--arch",
        &arch,
        "--bits",
        "w8a8",
        "--dataset",
        "synthetic-gray",
        "--calib",
        "32",
        "--images",
        "32",
        "--samples",
        "16",
        "-o",
        &blob,
        "--vectors",
        &vectors,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let vector_bytes = std::fs::read(&vectors).unwrap();
    let bundle = shared_format::TestVectors::from_bytes(&vector_bytes).unwrap();
    let blob_bytes = std::fs::read(&blob).unwrap();
    let model = shared_format::Model::from_bytes(&blob_bytes).unwrap();
    let inputs: Vec<i8> = bundle.iter().flat_map(|s| s.input.to_vec()).collect();
    let expected: Vec<i8> = bundle.iter().flat_map(|s| s.expected.to_vec()).collect();
    let (n, k) = (bundle.len() as u64, bundle.output_len() as u64);
    let write_npy = |path: &str, shape: &[u64], f32s: Option<Vec<f32>>| {
        let mut bytes = Vec::new();
        match f32s {
            Some(v) => {
                let mut w = npyz::WriteOptions::new()
                    .default_dtype()
                    .shape(shape)
                    .writer(&mut bytes)
                    .begin_nd()
                    .unwrap();
                w.extend(v).unwrap();
                w.finish().unwrap();
            }
            None => {
                let mut w = npyz::WriteOptions::new()
                    .default_dtype()
                    .shape(shape)
                    .writer(&mut bytes)
                    .begin_nd()
                    .unwrap();
                w.extend(inputs.iter().copied()).unwrap();
                w.finish().unwrap();
            }
        }
        std::fs::write(path, bytes).unwrap();
    };
    std::fs::write(
        p("x.bin"),
        inputs.iter().map(|&v| v as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    write_npy(&p("x.npy"), &[n, 28, 28, 1], None);
    let input = model.input_tensor();
    let scale = model.input().scale;
    let floats: Vec<f32> = inputs
        .iter()
        .map(|&q| scale * (f32::from(q) - f32::from(input.zero_point)))
        .collect();
    write_npy(&p("xf.npy"), &[n, 784], Some(floats));
    let read_npy = |path: &str| {
        npyz::NpyFile::new(std::io::Cursor::new(std::fs::read(path).unwrap())).unwrap()
    };
    for (x, y) in [("x.bin", "y.bin"), ("x.npy", "y.npy"), ("xf.npy", "yf.npy")] {
        let run = ghnq(&["run", &blob, "--inputs", &p(x), "--out", &p(y)]);
        assert!(run.status.success(), "{x}: {}", text(&run.stderr));
        assert!(
            text(&run.stdout).contains(&format!("samples {n}")),
            "{}",
            text(&run.stdout)
        );
        let got: Vec<i8> = if y.ends_with(".npy") {
            let npy = read_npy(&p(y));
            assert_eq!(npy.shape(), &[n, k]);
            npy.into_vec::<i8>().unwrap()
        } else {
            std::fs::read(p(y))
                .unwrap()
                .into_iter()
                .map(|b| b as i8)
                .collect()
        };
        assert_eq!(got, expected, "{x}: logits differ from the bundle's");
    }
    let run = ghnq(&[
        "run",
        &blob,
        "--inputs",
        &p("x.npy"),
        "--out",
        &p("yd.npy"),
        "--dequantize",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let deq: Vec<f32> = read_npy(&p("yd.npy")).into_vec::<f32>().unwrap();
    let (s, zp) = (
        model.output().scale,
        f32::from(model.output_tensor().zero_point),
    );
    for (d, &q) in deq.iter().zip(&expected) {
        assert!(
            (d - s * (f32::from(q) - zp)).abs() <= 1e-6 * s.max(1.0),
            "{d} vs {q}"
        );
    }

    // Refused by name: NCHW-looking floats, raw bytes of the wrong size, float32 raw output.
    write_npy(
        &p("bad.npy"),
        &[n, 1, 28, 28],
        Some(vec![0.0; (n * 784) as usize]),
    );
    let bad = ghnq(&["run", &blob, "--inputs", &p("bad.npy")]);
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.contains("(N, 28, 28, 1)"), "{err}");
    std::fs::write(p("short.bin"), [0u8; 100]).unwrap();
    let bad = ghnq(&["run", &blob, "--inputs", &p("short.bin")]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("784 bytes"),
        "{}",
        text(&bad.stderr)
    );
    let bad = ghnq(&[
        "run",
        &blob,
        "--inputs",
        &p("x.bin"),
        "--out",
        &p("z.bin"),
        "--dequantize",
    ]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains(".npy"), "{}", text(&bad.stderr));
    assert!(
        !Path::new(&p("z.bin")).exists(),
        "nothing written on failure"
    );
}
