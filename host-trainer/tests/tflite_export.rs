//! `ghnq export --format tflite`, checked against the real TFLite Micro: random nets from the
//! project's architecture generators (conv, depthwise-separable, dilated, max/avg pools with
//! SAME and non-SAME padding, add, concat with requantized inputs, linear, hidden FC with ReLU,
//! flattening linear, lone BatchNorm), exported W8A8 per-channel with double rounding and written
//! as `.tflite`, must give TFLM's reference kernels (PyPI `tflite-micro`, installed by
//! `cargo xtask setup`) and the edge runtime on the exported blob the same output bytes for
//! random int8 inputs. Each file must also import back (`tflite::import`) into a blob that
//! computes the exported blob's outputs. A missing TFLM fails the suite; it never skips.

mod common;
use common::{diff, ghnq, run_blob, text};

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use ghnq_core::arch::generator::{self, BnMode};
use ghnq_core::arch::splits::Split;
use ghnq_core::arch::{ImageShape, Net, NetBuilder, Op};
use ghnq_core::cnn::ParamSet;
use ghnq_core::sources::{SyntheticImages, random_small_net};
use ghnq_core::train::{ImageSource, LabeledBatch};
use ghnq_export::graph::{QuantGraph, QuantOpKind};
use ghnq_export::{self as export, Exported, Provenance};
use ghnq_quant::config::{Precision, QuantConfig};
use ghnq_tflite::tflm::Tflm;
use ghnq_tflite::{self as tflite, Requantize};
use rand::{Rng, SeedableRng};
use shared_format::{Model, Rounding, WeightScheme};

const SHAPE: ImageShape = ImageShape::FASHION_MNIST;
const CLASSES: usize = 10;
/// Random int8 inputs per net (the bar: at least 100 per model).
const SAMPLES: usize = 100;

fn calibration(seed: u64) -> Vec<LabeledBatch> {
    let mut src = SyntheticImages::new(SHAPE, CLASSES, 1000, seed);
    (0..2).map(|_| src.next_batch(16)).collect()
}

fn config(precision: Precision) -> QuantConfig {
    QuantConfig {
        scheme: WeightScheme::PerChannelSymmetric,
        ..QuantConfig::paper(precision)
    }
}

fn export_net(net: &Net, config: &QuantConfig, rounding: Rounding, dev: &Device) -> Exported {
    // Seeded per net, so a failure reproduces: burn's own generator is shared with the tests
    // running beside this one.
    export::export(
        net,
        ParamSet::init_random_seeded(net, export::fingerprint(net.name.as_bytes()), dev),
        config,
        rounding,
        SHAPE,
        &calibration(1),
        &Provenance::default(),
        dev,
    )
    .unwrap_or_else(|e| panic!("exporting {}: {e}", net.name))
}

/// Small DARTS-style nets of the `train` split's generator: 2–4 cells (one or two reductions:
/// 28 → 14 → 7, so strided pools meet both even sizes, where PyTorch's padding is not SAME, and
/// odd ones, where it is), narrow, with and without BatchNorm and a hidden FC layer.
fn generated_nets(count: usize) -> Vec<Net> {
    let cfg = generator::GeneratorConfig {
        cells: (2, 4),
        deep_threshold: vec![4],
        steps: (1, 3),
        medium_steps: 2,
        channels: vec![4, 6, 8],
        stem_mult: vec![1, 2],
        reductions: (1, 2),
        bn: BnMode::Random(0.5),
        hidden_fc: vec![None, Some(16)],
        budget: 40_000,
        ..Split::Train.config().expect("a generated split")
    };
    (0..count)
        .map(|i| {
            generator::generate(
                &cfg,
                &format!("gen-{i:02}"),
                SHAPE,
                CLASSES,
                generator::net_seed("tflite-export", 0, i as u64),
            )
            .expect("the generator meets its budget")
            .0
        })
        .collect()
}

/// Hand-made nets for what the generators never emit: a linear layer over a spatial map (RESHAPE
/// before FULLY_CONNECTED), a lone BatchNorm after a ReLU (a 1×1 depthwise conv), ReLU6, and a
/// stride-2 conv whose padding is SAME on odd sizes.
fn handmade_nets() -> Vec<Net> {
    let mut nets = Vec::new();

    let mut b = NetBuilder::new("flatten-fc", SHAPE, CLASSES);
    let c = b.conv("conv", 0, 4, 3, 2).unwrap();
    let r = b.relu("relu", c, true).unwrap();
    let p = Op::MaxPool {
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    let p = b.push("pool", p, vec![r]).unwrap();
    b.linear("fc", p, CLASSES).unwrap();
    nets.push(b.finish().unwrap());

    let mut b = NetBuilder::new("lone-bn", SHAPE, CLASSES);
    let c = b.conv("conv", 0, 6, 5, 1).unwrap();
    let r = b.relu("relu", c, false).unwrap();
    let n = b.bn("bn", r).unwrap();
    let d = b.dw_conv("dw", n, 3, 2, 1).unwrap();
    let d = b.dw_conv("dw2", d, 3, 2, 1).unwrap();
    let a = b.relu("relu2", d, true).unwrap();
    let g = b.push("gap", Op::GlobalAvgPool, vec![a]).unwrap();
    let h = b.linear("fc1", g, 12).unwrap();
    let h = b.relu("fc1.relu", h, false).unwrap();
    b.linear("fc2", h, CLASSES).unwrap();
    nets.push(b.finish().unwrap());

    let mut b = NetBuilder::new("avg-stride2", SHAPE, CLASSES);
    let c = b.conv("conv", 0, 8, 3, 1).unwrap();
    let p = Op::AvgPool {
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    let p1 = b.push("avg1", p.clone(), vec![c]).unwrap();
    let p2 = b.push("avg2", p, vec![p1]).unwrap();
    let m = Op::MaxPool {
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    let p3 = b.push("max3", m, vec![p2]).unwrap();
    let x = b.conv("conv2", p3, 8, 1, 1).unwrap();
    let s = b.push("sum", Op::Add, vec![x, p3]).unwrap();
    let cat = b.push("cat", Op::Concat, vec![s, p3]).unwrap();
    let r = b.relu("cat.relu", cat, false).unwrap();
    let g = b.push("gap", Op::GlobalAvgPool, vec![r]).unwrap();
    b.linear("fc", g, CLASSES).unwrap();
    nets.push(b.finish().unwrap());

    nets
}

/// What the written file contains, as TFLite builtin names and counts.
fn counts(graph: &QuantGraph, requantize: Requantize) -> BTreeMap<&'static str, usize> {
    tflite::export::op_counts(graph, requantize)
        .expect("writable")
        .into_iter()
        .collect()
}

#[test]
fn exported_models_run_bit_exactly_in_tflm_and_import_back() {
    let tflm = Tflm::locate().expect("TFLM's reference interpreter (run `cargo xtask setup`)");
    let dev = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(41);
    let mut nets: Vec<Net> = (0..34)
        .map(|k| random_small_net(&mut rng, SHAPE, CLASSES, &format!("small-{k:02}")))
        .collect();
    nets.extend(generated_nets(16));
    nets.extend(handmade_nets());
    // The paper's hand-written nets and ResNet-8 / MobileNet-v1-0.25, shaped for 28×28×1.
    nets.extend(Split::Predefined.nets(SHAPE, CLASSES, 0, 10).unwrap());

    let mut coverage: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut total_inputs, mut total_bytes) = (0usize, 0usize);
    let (mut tflm_differ, mut import_differ, mut quantize_differ) = (0usize, 0usize, 0usize);
    let mut quantize_nets = 0usize;
    let (mut identical_ops, mut imported_nets) = (0usize, 0usize);
    let mut failures = Vec::new();
    for (k, net) in nets.iter().enumerate() {
        let ex = export_net(net, &config(Precision::new(8, 8)), Rounding::Double, &dev);
        let g = &ex.graph;
        for op in &g.ops {
            let what = match &op.kind {
                QuantOpKind::Conv {
                    depthwise, window, ..
                } if window.dilation_h > 1 => {
                    if *depthwise {
                        "dilated depthwise"
                    } else {
                        "dilated conv"
                    }
                }
                _ => op.kind_name(),
            };
            *coverage.entry(what).or_default() += 1;
        }
        let written = counts(g, Requantize::Depthwise);
        for (name, n) in &written {
            *coverage.entry(name).or_default() += n;
        }
        let bytes = tflite::export(g).unwrap_or_else(|e| panic!("{}: {e}", net.name));
        let path = dir.path().join(format!("{}.tflite", net.name));
        std::fs::write(&path, &bytes).unwrap();

        let model = Model::from_bytes(&ex.blob).unwrap();
        let input_len = model.input_tensor().bytes() as usize;
        let output_len = model.output_tensor().bytes() as usize;
        let mut inputs_rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + k as u64);
        let inputs: Vec<i8> = (0..input_len * SAMPLES)
            .map(|_| inputs_rng.random())
            .collect();
        let ours = run_blob(&ex.blob, &inputs, input_len);
        let theirs = tflm
            .run(&path, &inputs, SAMPLES)
            .unwrap_or_else(|e| panic!("TFLM on {}: {e}", net.name));
        let (d_tflm, first) = diff(&ours, &theirs, output_len);
        if d_tflm > 0 {
            failures.push(format!(
                "{}: TFLM differs in {d_tflm} bytes; first at {first}",
                net.name
            ));
        }

        // Our importer reads the file back into a blob computing the same bytes.
        let d_import = match tflite::import(&bytes, &net.name) {
            Ok(imported) => {
                let input_t = &g.tensors[0];
                let output_t = &g.tensors[g.output];
                assert_eq!(
                    (imported.input.scale, imported.input.zero_point),
                    (input_t.scale, input_t.zero_point),
                    "{}: input quantization",
                    net.name
                );
                assert_eq!(
                    (imported.output.scale, imported.output.zero_point),
                    (output_t.scale, output_t.zero_point),
                    "{}: output quantization",
                    net.name
                );
                let back = run_blob(&imported.blob, &inputs, input_len);
                let (d, first) = diff(&ours, &back, output_len);
                if d > 0 {
                    failures.push(format!(
                        "{}: the imported blob differs in {d} bytes; first at {first}",
                        net.name
                    ));
                }
                let back_model = Model::from_bytes(&imported.blob).unwrap();
                if back_model.ops().eq(model.ops()) {
                    identical_ops += 1;
                }
                imported_nets += 1;
                import_differ += d;
                d.to_string()
            }
            Err(e) => panic!("importing the exported {}: {e}", net.name),
        };

        // The QUANTIZE form of concat requantization, where the file has one, runs in TFLM too.
        let requantized = counts(g, Requantize::Quantize)
            .get("QUANTIZE")
            .copied()
            .unwrap_or(0);
        let mut d_quantize = 0;
        if requantized > 0 {
            *coverage.entry("concat input requantized").or_default() += requantized;
            let q = tflite::export_with(g, Requantize::Quantize).unwrap();
            let qpath = dir.path().join(format!("{}.quantize.tflite", net.name));
            std::fs::write(&qpath, &q).unwrap();
            let theirs = tflm
                .run(&qpath, &inputs, SAMPLES)
                .unwrap_or_else(|e| panic!("TFLM on {} (QUANTIZE): {e}", net.name));
            let first;
            (d_quantize, first) = diff(&ours, &theirs, output_len);
            if d_quantize > 0 {
                failures.push(format!(
                    "{} (QUANTIZE): TFLM differs in {d_quantize} bytes; first at {first}",
                    net.name
                ));
            }
            quantize_nets += 1;
        }
        println!(
            "{:<14} {:>2} blob ops -> {:>2} TFLite ops {:?}: {SAMPLES} inputs x {output_len} bytes; \
             differing bytes: TFLM {d_tflm}, imported blob {d_import}{}",
            net.name,
            g.ops.len(),
            written.values().sum::<usize>(),
            written,
            if requantized > 0 {
                format!(", TFLM with QUANTIZE {d_quantize}")
            } else {
                String::new()
            }
        );
        total_inputs += SAMPLES;
        total_bytes += SAMPLES * output_len;
        tflm_differ += d_tflm;
        quantize_differ += d_quantize;
    }
    println!(
        "{} nets, {total_inputs} inputs, {total_bytes} output bytes: {tflm_differ} differ from \
         TFLM. Imported back: {imported_nets} nets, {import_differ} bytes differ \
         ({identical_ops} import to identical ops). \
         {quantize_nets} nets also written with QUANTIZE: {quantize_differ} bytes differ from TFLM",
        nets.len()
    );
    println!("coverage (blob ops and TFLite ops written): {coverage:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(nets.len() >= 50);
    for needed in [
        "conv2d",
        "depthwise_conv2d",
        "dilated depthwise",
        "max_pool",
        "avg_pool",
        "global_avg_pool",
        "add",
        "concat",
        "linear",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "MAX_POOL_2D",
        "AVERAGE_POOL_2D",
        "ADD",
        "CONCATENATION",
        "FULLY_CONNECTED",
        "PAD",
        "RESHAPE",
        "concat input requantized",
    ] {
        assert!(
            coverage.get(needed).copied().unwrap_or(0) > 0,
            "no net exercised {needed}: {coverage:?}"
        );
    }
}

/// Weights quantized below 8 bits are int8 values: W4A8 and W2A8 files run bit-exactly too.
#[test]
fn sub_byte_weights_are_int8_values() {
    let tflm = Tflm::locate().expect("TFLM's reference interpreter (run `cargo xtask setup`)");
    let dev = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(43);
    for (k, bits) in [4u8, 2, 4].into_iter().enumerate() {
        let net = random_small_net(&mut rng, SHAPE, CLASSES, &format!("w{bits}a8-{k}"));
        let ex = export_net(
            &net,
            &config(Precision::new(bits, 8)),
            Rounding::Double,
            &dev,
        );
        let bytes = tflite::export(&ex.graph).unwrap();
        let path = dir.path().join("m.tflite");
        std::fs::write(&path, &bytes).unwrap();
        let model = Model::from_bytes(&ex.blob).unwrap();
        let input_len = model.input_tensor().bytes() as usize;
        let output_len = model.output_tensor().bytes() as usize;
        let mut irng = rand_chacha::ChaCha8Rng::seed_from_u64(7 + k as u64);
        let inputs: Vec<i8> = (0..input_len * SAMPLES).map(|_| irng.random()).collect();
        let ours = run_blob(&ex.blob, &inputs, input_len);
        let theirs = tflm.run(&path, &inputs, SAMPLES).unwrap();
        let (d, first) = diff(&ours, &theirs, output_len);
        println!("{}: {SAMPLES} inputs, {d} differing bytes", net.name);
        assert_eq!(d, 0, "{}: first at {first}", net.name);
        let imported = tflite::import(&bytes, &net.name).unwrap();
        let (d, first) = diff(
            &ours,
            &run_blob(&imported.blob, &inputs, input_len),
            output_len,
        );
        assert_eq!(d, 0, "{} imported: first at {first}", net.name);
    }
}

#[test]
fn what_tflite_cannot_express_is_refused_with_the_fix() {
    let dev = Device::flex();
    let mut rng = rand::rngs::StdRng::seed_from_u64(44);
    let net = random_small_net(&mut rng, SHAPE, CLASSES, "refused");

    let ex = export_net(
        &net,
        &QuantConfig::paper(Precision::new(8, 8)),
        Rounding::Double,
        &dev,
    );
    let err = tflite::export(&ex.graph).unwrap_err().to_string();
    assert!(
        err.contains("PerTensorAffine with zero point")
            && err.contains("TFLite's int8 weights are symmetric: export with --per-channel"),
        "{err}"
    );

    let ex = export_net(&net, &config(Precision::new(8, 4)), Rounding::Double, &dev);
    let err = tflite::export(&ex.graph).unwrap_err().to_string();
    assert!(
        err.contains("4-bit activations") && err.contains("8-bit activations"),
        "{err}"
    );

    let ex = export_net(&net, &config(Precision::new(8, 8)), Rounding::Single, &dev);
    let err = tflite::export(&ex.graph).unwrap_err().to_string();
    assert!(
        err.contains("single rounding") && err.contains("--rounding double"),
        "{err}"
    );

    // A 2×2 stride-2 pool padded by one on each side: TFLite's SAME pads 0 before, and at
    // stride 1 it is not SAME either; a PAD would change a max pool's result.
    let mut b = NetBuilder::new("pool-pad", SHAPE, CLASSES);
    let c = b.conv("conv", 0, 4, 3, 1).unwrap();
    let p = Op::MaxPool {
        kernel: 2,
        stride: 2,
        padding: 1,
    };
    let p = b.push("odd.pool", p, vec![c]).unwrap();
    let g = b.push("gap", Op::GlobalAvgPool, vec![p]).unwrap();
    b.linear("fc", g, CLASSES).unwrap();
    let net = b.finish().unwrap();
    let ex = export_net(&net, &config(Precision::new(8, 8)), Rounding::Double, &dev);
    let err = tflite::export(&ex.graph).unwrap_err().to_string();
    assert!(
        err.contains("op 1 ('odd.pool', max_pool)") && err.contains("no TFLite form"),
        "{err}"
    );
}

/// `ghnq export --format tflite` as a user runs it: the file it writes runs in TFLM as the
/// vectors' blob outputs say, and the refusals name the flag to change.
#[test]
fn cli_writes_a_tflite_file_tflm_runs() {
    let tflm = Tflm::locate().expect("TFLM's reference interpreter (run `cargo xtask setup`)");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let net = random_small_net(&mut rng, SHAPE, CLASSES, "cli-tflite");
    let arch = dir.path().join("net.json");
    ghnq_core::arch::text::write_net(&net, &arch).unwrap();
    let params = dir.path().join("net.safetensors");
    ParamSet::init_random_seeded(&net, 5, &Device::flex())
        .save_safetensors(&net, &params)
        .unwrap();
    let (arch, params) = (arch.to_str().unwrap(), params.to_str().unwrap());
    let out = dir.path().join("model.tflite");
    let vectors = dir.path().join("model.ghnv");
    let common = [
        "export",
        "--params",
        params,
        "--arch",
        arch,
        "--dataset",
        "synthetic-gray",
        "--calib",
        "32",
        "--images",
        "32",
        "--samples",
        "16",
        "--format",
        "tflite",
    ];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = common.to_vec();
        args.extend_from_slice(extra);
        ghnq(&args)
    };

    let ok = run(&[
        "--per-channel",
        "-o",
        out.to_str().unwrap(),
        "--vectors",
        vectors.to_str().unwrap(),
    ]);
    let stdout = text(&ok.stdout);
    assert!(ok.status.success(), "{stdout}{}", text(&ok.stderr));
    assert!(
        stdout.contains(&format!("cli-tflite -> {} (int8 TFLite", out.display()))
            && stdout.contains("double rounding"),
        "{stdout}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let vector_bytes = std::fs::read(&vectors).unwrap();
    let bundle = shared_format::TestVectors::from_bytes(&vector_bytes).unwrap();
    let inputs: Vec<i8> = bundle.iter().flat_map(|s| s.input.to_vec()).collect();
    let expected: Vec<i8> = bundle.iter().flat_map(|s| s.expected.to_vec()).collect();
    assert_eq!(tflm.run(&out, &inputs, bundle.len()).unwrap(), expected);
    // And our importer reads it back into a blob that computes the same bytes.
    let imported = tflite::import(&bytes, "cli-tflite").expect("the file imports back");
    let input_len = inputs.len() / bundle.len();
    assert_eq!(run_blob(&imported.blob, &inputs, input_len), expected);

    let refused = dir.path().join("refused.tflite");
    let refused_path = refused.to_str().unwrap();
    for (extra, needle) in [
        (
            &["--per-channel", "--rounding", "single", "-o", refused_path][..],
            "cannot use --rounding single",
        ),
        (
            &["--per-channel", "--bits", "w8a4", "-o", refused_path][..],
            "8-bit activations",
        ),
        (&["-o", refused_path][..], "--per-channel"),
    ] {
        let out = run(extra);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{extra:?} must fail");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(
            !Path::new(refused_path).exists(),
            "nothing written on failure"
        );
    }
}
