//! Keras heads made by the TF converter, checked against the real TFLM: Flatten and
//! `Reshape((-1,))` heads whose dynamic batch becomes SHAPE → STRIDED_SLICE → PACK (or
//! CONCATENATION, GATHER) → RESHAPE, standalone RELU / RELU6 (also on a flattened `[1, N]`
//! tensor), MUL, LOGISTIC, HARD_SWISH, a mid-graph int8 → int8 QUANTIZE and hard-sigmoid gates
//! (MUL and ADD by a constant), STRIDED_SLICEs that only add axes and one that drops channels, as
//! `tools/tflite-models/generate.py` writes them (committed under `tools/tflite-models/models/`).
//! Each is imported, and 100 seeded random inputs run through TFLM's reference kernels (PyPI
//! `tflite-micro`, installed by `cargo xtask setup`) and through the edge runtime must give the
//! same output bytes. A missing TFLM fails the suite; it never skips (as `tflm_interop.rs`).

use std::path::{Path, PathBuf};

mod common;

use ghnq_tflite as tflite;
use ghnq_tflite::tflm::Tflm;
use ghnq_tflite::{FoldError, ImportError, OpRefusal};
use rand::{Rng, SeedableRng};
use shared_format::Model;
use shared_format::op::OpKind;

const SAMPLES: usize = 100;

fn model_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/tflite-models/models")
        .join(format!("{name}.tflite"))
}

fn import(name: &str) -> Result<tflite::Imported, ImportError> {
    let path = model_path(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    tflite::import(&bytes, name)
}

/// Imports `name`, runs `SAMPLES` random inputs through both interpreters and returns the
/// number of differing output bytes, the number compared, a description of the first
/// difference and how many distinct outputs TFLM gave.
fn compare(tflm: &Tflm, name: &str, seed: u64) -> (usize, usize, String, usize) {
    let imported = import(name).unwrap_or_else(|e| panic!("importing {name}: {e}"));
    let model = Model::from_bytes(&imported.blob).expect("the importer's blob decodes");
    let input_len = model.input_tensor().bytes() as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let inputs: Vec<i8> = (0..input_len * SAMPLES).map(|_| rng.random()).collect();
    let expected = tflm
        .run(&model_path(name), &inputs, SAMPLES)
        .unwrap_or_else(|e| panic!("TFLM on {name}: {e}"));
    let output_len = expected.len() / SAMPLES;
    assert_eq!(
        output_len,
        model.output_tensor().bytes() as usize,
        "{name}: output size"
    );
    let ours = common::run_blob(&imported.blob, &inputs, input_len);
    let (differing, first) = common::diff(&ours, &expected, output_len);
    let mut distinct: Vec<&[i8]> = expected.chunks(output_len).collect();
    distinct.sort_unstable();
    distinct.dedup();
    (differing, output_len * SAMPLES, first, distinct.len())
}

/// The TFLite ops of `name` that became no runtime op (views and folded shape arithmetic),
/// and the runtime ops the others became.
fn mapping(name: &str) -> (Vec<String>, Vec<(String, OpKind)>) {
    let imported = import(name).unwrap_or_else(|e| panic!("importing {name}: {e}"));
    let mut folded = Vec::new();
    let mut mapped = Vec::new();
    for (_, op, kind) in imported.ops {
        match kind {
            None => folded.push(op),
            Some(kind) => mapped.push((op, kind)),
        }
    }
    (folded, mapped)
}

#[test]
fn keras_heads_match_tflm_byte_for_byte() {
    let tflm = Tflm::locate().expect("TFLM's reference interpreter (run `cargo xtask setup`)");
    let mut failures = Vec::new();
    for (k, name) in [
        "conv_flatten_dense",
        "conv_reshape_dense",
        "relu_between",
        "flatten_spellings",
        "gather_flatten_twin",
        "mul_broadcast",
        "mul_head",
        "se_block",
        "logistic_head",
        "hard_swish",
        "flatten_activations",
        "requantize_between",
        "hard_sigmoid_se",
        "hard_sigmoid_head",
        "newaxis_gate",
        "channel_slice",
    ]
    .into_iter()
    .enumerate()
    {
        let (differing, total, first, distinct) = compare(&tflm, name, 2000 + k as u64);
        println!(
            "{name}: {SAMPLES} inputs, {distinct} distinct outputs, {differing} of {total} output \
             bytes differ from TFLM"
        );
        if differing > 0 {
            failures.push(format!(
                "{name}: {differing} bytes differ; first at {first}"
            ));
        }
        // Outputs that ignore the input would make the comparison vacuous.
        if distinct < SAMPLES / 2 {
            failures.push(format!(
                "{name}: only {distinct} distinct outputs for {SAMPLES} inputs"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shape_chains_fold_to_views() {
    let (folded, mapped) = mapping("conv_reshape_dense");
    assert_eq!(folded, ["SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"]);
    let kinds: Vec<OpKind> = mapped.iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, [OpKind::Conv2d, OpKind::Linear, OpKind::Softmax]);

    let (folded, _) = mapping("flatten_spellings");
    for op in ["SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION"] {
        assert!(
            folded.iter().any(|f| f == op),
            "{op} not folded: {folded:?}"
        );
    }
    assert_eq!(folded.iter().filter(|f| *f == "RESHAPE").count(), 2);
}

/// TFLM's GATHER has no int32 kernel, so TFLM cannot run a GATHER-of-the-shape flatten. Its
/// twin (same seed, weights and calibration; STRIDED_SLICE instead of GATHER) is in the TFLM
/// comparison above, and the two must import to the same blob.
#[test]
fn a_gathered_shape_folds_to_the_blob_of_its_sliced_twin() {
    let (folded, _) = mapping("gather_flatten");
    assert_eq!(folded, ["SHAPE", "GATHER", "CONCATENATION", "RESHAPE"]);
    let twin = import("gather_flatten_twin").expect("its twin imports");
    // Imported under the twin's name, so that the metadata agrees too.
    let renamed = tflite::import(
        &std::fs::read(model_path("gather_flatten")).unwrap(),
        "gather_flatten_twin",
    )
    .unwrap();
    assert_eq!(
        renamed.blob, twin.blob,
        "the two heads import to different blobs"
    );
}

#[test]
fn standalone_relus_map_onto_clamping_ops() {
    let (_, mapped) = mapping("relu_between");
    let relus: Vec<&(String, OpKind)> = mapped
        .iter()
        .filter(|(op, _)| op.starts_with("RELU"))
        .collect();
    // The converter quantizes each activation's output apart from its input: RELU requantizes
    // (a 1×1 depthwise with weight 1), RELU6 keeps TFLM's input-quantized clamp (a depthwise identity
    // where the zero points differ).
    assert_eq!(relus.len(), 3, "{mapped:?}");
    assert_eq!(relus[0].1, OpKind::DepthwiseConv2d);
    assert!(
        relus[1..]
            .iter()
            .all(|(_, k)| matches!(k, OpKind::DepthwiseConv2d | OpKind::MaxPool)),
        "{relus:?}"
    );
}

/// The converter keeps Keras's Multiply as MUL (never fused): a squeeze-and-excite gate
/// broadcast over the feature map and a same-shape product of two branches.
#[test]
fn multiplies_map_onto_mul() {
    let (_, mapped) = mapping("mul_broadcast");
    let muls: Vec<_> = mapped.iter().filter(|(op, _)| op == "MUL").collect();
    assert_eq!(muls.len(), 2, "{mapped:?}");
    assert!(
        muls.iter().all(|(_, kind)| *kind == OpKind::Mul),
        "{muls:?}"
    );
}

/// Keras's sigmoid stays a LOGISTIC of its own (on the model input and after a Dense, whose
/// FULLY_CONNECTED fuses only ReLU-like activations); the gate it makes multiplies the map.
#[test]
fn sigmoids_map_onto_logistic() {
    let (_, mapped) = mapping("se_block");
    let kinds: Vec<_> = mapped
        .iter()
        .filter(|(op, _)| op == "LOGISTIC" || op == "MUL")
        .map(|(op, kind)| (op.as_str(), *kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("LOGISTIC", OpKind::Logistic),
            ("LOGISTIC", OpKind::Logistic),
            ("MUL", OpKind::Mul)
        ],
        "{mapped:?}"
    );
}

/// The converter fuses `x * relu6(x + 3) / 6` into HARD_SWISH, on the model input and after a
/// conv (the model's output).
#[test]
fn hard_swish_maps_onto_hard_swish() {
    let (folded, mapped) = mapping("hard_swish");
    assert!(folded.is_empty(), "{folded:?}");
    let kinds: Vec<_> = mapped
        .iter()
        .map(|(op, kind)| (op.as_str(), *kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("HARD_SWISH", OpKind::HardSwish),
            ("CONV_2D", OpKind::Conv2d),
            ("HARD_SWISH", OpKind::HardSwish)
        ]
    );
}

/// A Flatten with several readers keeps its activations after it: RELU, RELU6 and LOGISTIC on
/// the `[1, N]` tensor, which the blob holds in the conv's `H×W×C` shape (a view), their outputs
/// too, each read by a FULLY_CONNECTED.
#[test]
fn activations_after_a_flatten_keep_it_a_view() {
    let (folded, mapped) = mapping("flatten_activations");
    assert_eq!(folded, ["RESHAPE"], "{mapped:?}");
    let acts: Vec<_> = mapped
        .iter()
        .filter(|(op, _)| matches!(op.as_str(), "RELU" | "RELU6" | "LOGISTIC"))
        .map(|(op, _)| op.as_str())
        .collect();
    assert_eq!(acts, ["RELU", "RELU6", "LOGISTIC"], "{mapped:?}");
    let imported = import("flatten_activations").unwrap();
    let model = Model::from_bytes(&imported.blob).unwrap();
    // The activations' outputs keep the conv's 4×4×4 shape.
    let shapes: Vec<_> = model
        .ops()
        .map(|op| op.unwrap())
        .filter(|op| {
            matches!(
                op.kind(),
                OpKind::DepthwiseConv2d | OpKind::MaxPool | OpKind::Logistic
            )
        })
        .map(|op| model.tensors().get(op.output()).unwrap().shape)
        .collect();
    assert_eq!(shapes.len(), 3, "{shapes:?}");
    assert!(
        shapes.iter().all(|s| (s.h, s.w, s.c) == (4, 4, 4)),
        "{shapes:?}"
    );
}

/// The converter's mid-graph int8 → int8 QUANTIZE becomes a table of TFLM's requantization.
#[test]
fn a_mid_graph_quantize_becomes_a_table() {
    let (folded, mapped) = mapping("requantize_between");
    assert!(folded.is_empty(), "{folded:?}");
    let quantize: Vec<_> = mapped.iter().filter(|(op, _)| op == "QUANTIZE").collect();
    assert_eq!(quantize.len(), 1, "{mapped:?}");
    assert_eq!(quantize[0].1, OpKind::Table);
}

/// Hard-sigmoid gates: every MUL or ADD by a constant (the `· 1/6`, the `+ 3` where nothing
/// could absorb it) becomes a table, every MUL of two activations stays a MUL.
#[test]
fn hard_sigmoid_gates_become_tables() {
    let (_, mapped) = mapping("hard_sigmoid_se");
    let kinds: Vec<_> = mapped
        .iter()
        .filter(|(op, _)| op == "MUL" || op == "ADD")
        .map(|(op, kind)| (op.as_str(), *kind))
        .collect();
    let tables = kinds.iter().filter(|(_, k)| *k == OpKind::Table).count();
    let muls = kinds.iter().filter(|(_, k)| *k == OpKind::Mul).count();
    assert_eq!((tables, muls), (4, 3), "{kinds:?}");
    assert!(kinds.contains(&("ADD", OpKind::Table)), "{kinds:?}");
    let (_, mapped) = mapping("hard_sigmoid_head");
    assert!(
        mapped.iter().all(|(_, kind)| *kind == OpKind::Table),
        "{mapped:?}"
    );
}

/// STRIDED_SLICEs of activations that keep every element (a new-axis mask, an ellipsis) are
/// views; one that drops channels is a one-hot 1×1 convolution (bit-exact against TFLM in
/// `keras_heads_match_tflm_byte_for_byte`).
#[test]
fn slices_that_keep_every_element_are_views_and_channel_slices_convolutions() {
    let (folded, mapped) = mapping("newaxis_gate");
    assert!(
        folded.iter().any(|op| op == "STRIDED_SLICE"),
        "{folded:?} {mapped:?}"
    );
    assert!(
        mapped.iter().all(|(op, _)| op != "STRIDED_SLICE"),
        "{mapped:?}"
    );
    let (_, mapped) = mapping("channel_slice");
    assert!(
        mapped
            .iter()
            .any(|(op, kind)| op == "STRIDED_SLICE" && *kind == OpKind::Conv2d),
        "{mapped:?}"
    );
}

#[test]
fn a_reshape_whose_width_the_converter_lost_is_refused() {
    let err = import("flatten_unknown_width").expect_err("TFLM refuses it too");
    let ImportError::Op {
        op,
        reason: OpRefusal::ReshapeRecorded { wanted, recorded },
        ..
    } = &err
    else {
        panic!("expected a RESHAPE refused for its recorded output shape, got {err}");
    };
    assert_eq!(op, "RESHAPE");
    assert_eq!(wanted, &[1, 36], "{err}");
    // The converter could not infer the width and recorded [1, 1] (see `generate.py`).
    assert_eq!(recorded, &[1, 1], "{err}");
    let text = err.to_string();
    assert!(text.contains("records output shape"), "{text}");
    assert!(text.contains("[1, 36]"), "{text}");
}

#[test]
fn a_data_dependent_shape_is_refused_by_name() {
    let err = import("data_dependent_reshape").expect_err("not static");
    let ImportError::NotStatic {
        op,
        reason: FoldError::ActivationInput { .. },
        ..
    } = &err
    else {
        panic!("expected a NotStatic error for an int8 activation input, got {err}");
    };
    assert_eq!(op, "ARG_MAX", "{err}");
    let text = err.to_string();
    assert!(text.contains("int8 activation"), "{text}");
    assert!(
        text.starts_with("op ") && text.contains("ARG_MAX"),
        "{text}"
    );
}

/// The converter's default interface (float32 in and out, QUANTIZE after the input, DEQUANTIZE
/// before the output): the boundary ops are left to the host, the int8 inside matches TFLM
/// byte for byte, and the blob's input and output carry the boundary's scales.
#[test]
fn a_float_interface_model_imports_and_matches_tflm() {
    let name = "float_interface";
    let imported = import(name).unwrap_or_else(|e| panic!("importing {name}: {e}"));
    assert!(imported.float_interface);
    let (folded, mapped) = mapping(name);
    assert_eq!(folded, ["QUANTIZE", "RESHAPE", "DEQUANTIZE"], "{mapped:?}");
    let kinds: Vec<OpKind> = mapped.iter().map(|(_, k)| *k).collect();
    assert_eq!(
        kinds,
        [
            OpKind::Conv2d,
            OpKind::MaxPool,
            OpKind::Linear,
            OpKind::Softmax
        ]
    );

    let tflm = Tflm::locate().expect("TFLM's reference interpreter (run `cargo xtask setup`)");
    let model = Model::from_bytes(&imported.blob).expect("the importer's blob decodes");
    let input_len = model.input_tensor().bytes() as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3000);
    let inputs: Vec<i8> = (0..input_len * SAMPLES).map(|_| rng.random()).collect();
    let (i, o) = (imported.input, imported.output);
    let expected = tflm
        .run_float_io(
            &model_path(name),
            &inputs,
            SAMPLES,
            (i.scale, i.zero_point),
            (o.scale, o.zero_point),
        )
        .unwrap_or_else(|e| panic!("TFLM on {name}: {e}"));
    let output_len = model.output_tensor().bytes() as usize;
    assert_eq!(expected.len(), output_len * SAMPLES);
    let ours = common::run_blob(&imported.blob, &inputs, input_len);
    let (differing, first) = common::diff(&ours, &expected, output_len);
    let mut distinct: Vec<&[i8]> = expected.chunks(output_len).collect();
    distinct.sort_unstable();
    distinct.dedup();
    println!(
        "{name}: {SAMPLES} inputs, {} distinct outputs, {differing} of {} output bytes differ \
         from TFLM",
        distinct.len(),
        output_len * SAMPLES
    );
    assert_eq!(differing, 0, "first difference at {first}");
    assert!(distinct.len() >= SAMPLES / 2, "outputs ignore the input");
}
