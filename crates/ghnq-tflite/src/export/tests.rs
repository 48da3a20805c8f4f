use super::*;
use crate::schema::{self, ActivationFunctionType, BuiltinOperator, Padding, TensorType};
use crate::{ImportError, import};
use ghnq_export::graph::{QuantOp, QuantOpKind, QuantTensor, QuantWeights};
use ghnq_quant::lower::Activation;
use shared_format::{Clamp, WeightScheme};
use shared_format::{Rounding, Window};

fn tensor(name: &str, shape: [usize; 3], scale: f32, zero_point: i8) -> QuantTensor {
    QuantTensor {
        name: name.into(),
        shape,
        scale,
        zero_point,
        bits: 8,
    }
}

const FULL: Clamp = Clamp {
    min: -128,
    max: 127,
};

/// input 4×4×2 → 3×3 conv (padding 1) → GAP → linear 3.
fn tiny() -> QuantGraph {
    let conv_w = QuantWeights {
        shape: vec![2, 3, 3, 2],
        values: (0..36).map(|i| (i * 7 % 19) as i8 - 9).collect(),
        scales: vec![0.01, 0.02],
        zero_point: 0,
        bits: 8,
        scheme: WeightScheme::PerChannelSymmetric,
        bias: vec![5, -7],
    };
    let fc_w = QuantWeights {
        shape: vec![3, 2],
        values: vec![10, -20, 30, -40, 50, -60],
        scales: vec![0.03, 0.01, 0.02],
        zero_point: 0,
        bits: 8,
        scheme: WeightScheme::PerChannelSymmetric,
        bias: vec![1, 2, 3],
    };
    QuantGraph {
        name: "tiny".into(),
        rounding: Rounding::Double,
        tensors: vec![
            tensor("input", [4, 4, 2], 0.05, -3),
            tensor("conv", [4, 4, 2], 0.04, -128),
            tensor("gap", [1, 1, 2], 0.04, -128),
            tensor("fc", [1, 1, 3], 0.1, 7),
        ],
        ops: vec![
            QuantOp {
                name: "conv".into(),
                kind: QuantOpKind::Conv {
                    depthwise: false,
                    input: 0,
                    window: Window::square(3, 1, 1, 1),
                    weights: conv_w,
                },
                output: 1,
                act: Activation::Relu { six: false },
                clamp: Clamp {
                    min: -128,
                    max: 127,
                },
            },
            QuantOp {
                name: "gap".into(),
                kind: QuantOpKind::GlobalAvgPool { input: 1 },
                output: 2,
                act: Activation::Linear,
                clamp: FULL,
            },
            QuantOp {
                name: "fc".into(),
                kind: QuantOpKind::Linear {
                    input: 2,
                    weights: fc_w,
                },
                output: 3,
                act: Activation::Linear,
                clamp: FULL,
            },
        ],
        output: 3,
    }
}

#[test]
fn a_tiny_graph_is_written_and_imported_back() {
    let g = tiny();
    let bytes = export(&g).unwrap();
    let imported = import(&bytes, "tiny").unwrap();
    assert_eq!(imported.input.zero_point, -3);
    assert_eq!(imported.output.scale, 0.1);
    assert_eq!(imported.output.shape.c, 3);
    let names: Vec<&str> = imported.ops.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"]);
}

#[test]
fn refusals_name_the_op_and_the_fix() {
    let mut g = tiny();
    g.rounding = Rounding::Single;
    let e = export(&g).unwrap_err().to_string();
    assert!(
        e.contains("single rounding") && e.contains("--rounding double"),
        "{e}"
    );

    let mut g = tiny();
    g.tensors[1].bits = 4;
    let e = export(&g).unwrap_err().to_string();
    assert!(
        e.contains("4-bit activations") && e.contains("'conv'"),
        "{e}"
    );

    let mut g = tiny();
    if let QuantOpKind::Conv { weights, .. } = &mut g.ops[0].kind {
        weights.zero_point = 3;
        weights.scheme = WeightScheme::PerTensorAffine;
        weights.scales.truncate(1);
    }
    let e = export(&g).unwrap_err().to_string();
    assert!(
        e.contains("op 0 ('conv', conv2d)") && e.contains("export with --per-channel"),
        "{e}"
    );

    // A clamp narrower than RELU gives (what 4-bit activations would leave behind).
    let mut g = tiny();
    g.ops[0].clamp = Clamp { min: -128, max: 7 };
    let e = export(&g).unwrap_err().to_string();
    assert!(e.contains("clamp [-128, 7]") && e.contains("RELU6"), "{e}");
}

#[test]
fn a_pool_without_a_tflite_form_is_refused() {
    // 2×2 stride-2 padding-1 max pool on 4×4: neither SAME nor a stride-1 SAME pool.
    let mut g = tiny();
    g.tensors.insert(2, tensor("pool", [3, 3, 2], 0.04, -128));
    g.ops.insert(
        1,
        QuantOp {
            name: "pool".into(),
            kind: QuantOpKind::Pool {
                max: true,
                input: 1,
                window: Window::square(2, 2, 1, 1),
            },
            output: 2,
            act: Activation::Linear,
            clamp: FULL,
        },
    );
    if let QuantOpKind::GlobalAvgPool { input } = &mut g.ops[2].kind {
        *input = 2;
    }
    g.ops[2].output = 3;
    if let QuantOpKind::Linear { input, .. } = &mut g.ops[3].kind {
        *input = 3;
    }
    g.ops[3].output = 4;
    g.output = 4;
    let e = export(&g).unwrap_err().to_string();
    assert!(
        e.contains("op 1 ('pool', max_pool)") && e.contains("no TFLite form"),
        "{e}"
    );
}

#[test]
fn padding_that_is_neither_same_nor_valid_is_detected() {
    // 3×3 stride 2 padding 1: SAME on odd sizes, not on even ones.
    let w = Window::square(3, 2, 1, 1);
    assert_eq!(expressible(&w, 7, 7), Some(Padding::SAME));
    assert_eq!(expressible(&w, 8, 8), None);
    assert_eq!(
        expressible(&Window::square(3, 1, 1, 1), 8, 8),
        Some(Padding::SAME)
    );
    assert_eq!(
        expressible(&Window::square(2, 2, 1, 0), 8, 8),
        Some(Padding::VALID)
    );
    // Dilation 2, padding 2: SAME at stride 1.
    assert_eq!(
        expressible(&Window::square(3, 1, 2, 2), 9, 9),
        Some(Padding::SAME)
    );
    assert_eq!(expressible(&Window::square(3, 1, 2, 1), 9, 9), None);
}

/// A TANH (which the runtime lacks), built with the schema builders, makes the importer fail
/// with an error naming the op's index and "TANH".
#[test]
fn an_unsupported_op_is_named_by_the_importer() {
    let q = |name: &str| TfTensor {
        name: name.into(),
        shape: vec![1, 2, 2, 4],
        ty: TensorType::INT8,
        scales: vec![0.05],
        zero_points: vec![0],
        quantized_dimension: 0,
        data: None,
    };
    let mut m = TfModel {
        description: "tanh".into(),
        ..TfModel::default()
    };
    let x = m.push_tensor(q("x"));
    let y = m.push_tensor(q("y"));
    let z = m.push_tensor(TfTensor {
        scales: vec![1.0 / 128.0],
        ..q("z")
    });
    m.ops.push(TfOp {
        code: BuiltinOperator::MAX_POOL_2D,
        inputs: vec![x],
        outputs: vec![y],
        options: TfOptions::Pool {
            padding: Padding::VALID,
            stride: (1, 1),
            filter: (1, 1),
            act: ActivationFunctionType::NONE,
        },
    });
    m.ops.push(TfOp {
        code: BuiltinOperator::TANH,
        inputs: vec![y],
        outputs: vec![z],
        options: TfOptions::None,
    });
    m.inputs = vec![x];
    m.outputs = vec![z];
    let bytes = m.serialize();
    // The file itself is well formed: the verifier accepts it and sees the TANH.
    let model = schema::root_as_model(&bytes).unwrap();
    let codes = model.operator_codes().unwrap();
    assert_eq!(codes.get(1).builtin_code(), BuiltinOperator::TANH);
    let err = import(&bytes, "tanh").unwrap_err();
    assert!(
        matches!(&err, ImportError::Op { index: 1, op, .. } if op == "TANH"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("op 1 (TANH)"), "{text}");
}

/// A runtime mean is written as MEAN over the int32 axes [1, 2] with keep_dims (output
/// `[1, 1, 1, C]`), and the importer reads it back as the same mean op.
#[test]
fn a_mean_is_written_as_mean_and_imported_back() {
    let mut g = tiny();
    g.ops[1].name = "mean".into();
    g.ops[1].kind = QuantOpKind::Mean { input: 1 };
    g.tensors[2] = tensor("mean", [1, 1, 2], 0.013, 9);
    let bytes = export(&g).unwrap();
    let model = schema::root_as_model(&bytes).unwrap();
    let sub = model.subgraphs().unwrap().get(0);
    let op = sub.operators().unwrap().get(1);
    assert!(op.builtin_options_as_reducer_options().unwrap().keep_dims());
    let tensors = sub.tensors().unwrap();
    let axes = tensors.get(op.inputs().unwrap().get(1) as usize);
    assert_eq!(axes.type_(), TensorType::INT32);
    let buffer = model.buffers().unwrap().get(axes.buffer() as usize);
    assert_eq!(buffer.data().unwrap().bytes(), [1, 0, 0, 0, 2, 0, 0, 0]);
    let out = tensors.get(op.outputs().unwrap().get(0) as usize);
    assert_eq!(
        out.shape().unwrap().iter().collect::<Vec<_>>(),
        [1, 1, 1, 2]
    );

    let imported = import(&bytes, "mean").unwrap();
    let ops: Vec<_> = imported
        .ops
        .iter()
        .map(|(_, n, k)| (n.as_str(), *k))
        .collect();
    assert_eq!(
        ops,
        [
            ("CONV_2D", Some(shared_format::OpKind::Conv2d)),
            ("MEAN", Some(shared_format::OpKind::Mean)),
            ("FULLY_CONNECTED", Some(shared_format::OpKind::Linear)),
        ]
    );
    let blob = shared_format::Model::from_bytes(&imported.blob).unwrap();
    let mean = blob.ops().nth(1).unwrap().unwrap();
    let want = shared_format::Mean::from_scales(1, 2, 0.04, 0.013, 16, Rounding::Double).unwrap();
    assert_eq!(mean, shared_format::Op::Mean(want));
    assert_eq!(blob.header().minor, 3);

    // TFLite's MEAN has no fused activation.
    g.ops[1].clamp = Clamp { min: 9, max: 127 };
    let e = export(&g).unwrap_err().to_string();
    assert!(
        e.contains("op 1 ('mean', mean)") && e.contains("no fused activation"),
        "{e}"
    );
}

/// A file `[1, 3, 4, 2]` → MEAN(axes) → `out_shape`, built with the schema builders.
fn mean_file(axes: &[i32], axes_type: TensorType, keep_dims: bool, out_shape: Vec<i32>) -> Vec<u8> {
    let q = |name: &str, shape: Vec<i32>, scale: f32| TfTensor {
        name: name.into(),
        shape,
        ty: TensorType::INT8,
        scales: vec![scale],
        zero_points: vec![-3],
        quantized_dimension: 0,
        data: None,
    };
    let mut m = TfModel {
        description: "mean".into(),
        ..TfModel::default()
    };
    let x = m.push_tensor(q("x", vec![1, 3, 4, 2], 0.05));
    let data = match axes_type {
        TensorType::INT64 => axes
            .iter()
            .flat_map(|&a| i64::from(a).to_le_bytes())
            .collect(),
        _ => i32_bytes(axes),
    };
    let a = m.push_tensor(TfTensor {
        name: "axes".into(),
        shape: vec![axes.len() as i32],
        ty: axes_type,
        scales: Vec::new(),
        zero_points: Vec::new(),
        quantized_dimension: 0,
        data: Some(data),
    });
    let y = m.push_tensor(q("y", out_shape, 0.02));
    m.ops.push(TfOp {
        code: BuiltinOperator::MEAN,
        inputs: vec![x, a],
        outputs: vec![y],
        options: TfOptions::Reducer { keep_dims },
    });
    m.inputs = vec![x];
    m.outputs = vec![y];
    m.serialize()
}

/// MEAN over H and W imports whatever the axes' order, sign or repeats and either keep_dims;
/// anything else is refused with the op's index, its type and what is missing.
#[test]
fn the_importer_takes_only_global_means() {
    let i32s = TensorType::INT32;
    for (axes, keep_dims, shape) in [
        (&[1, 2][..], true, vec![1, 1, 1, 2]),
        (&[2, 1], false, vec![1, 2]),
        (&[-3, -2], true, vec![1, 1, 1, 2]),
        (&[2, -3, 1], false, vec![1, 2]),
    ] {
        let imported = import(&mean_file(axes, i32s, keep_dims, shape), "m")
            .unwrap_or_else(|e| panic!("{axes:?}: {e}"));
        assert_eq!(imported.ops[0].2, Some(shared_format::OpKind::Mean));
        let blob = shared_format::Model::from_bytes(&imported.blob).unwrap();
        let want = shared_format::Mean::from_scales(0, 1, 0.05, 0.02, 12, Rounding::Double);
        assert_eq!(
            blob.ops().next().unwrap().unwrap(),
            shared_format::Op::Mean(want.unwrap())
        );
    }
    let refused = |bytes: Vec<u8>| import(&bytes, "m").unwrap_err().to_string();
    let e = refused(mean_file(&[3], i32s, true, vec![1, 3, 4, 1]));
    assert!(
        e.contains("op 0 (MEAN): MEAN over axes [3]: only global pooling over H and W"),
        "{e}"
    );
    let e = refused(mean_file(&[1], i32s, true, vec![1, 1, 4, 2]));
    assert!(e.contains("MEAN over axes [1]"), "{e}");
    let e = refused(mean_file(
        &[1, 2],
        TensorType::INT64,
        true,
        vec![1, 1, 1, 2],
    ));
    assert!(
        e.contains("op 0 (MEAN)") && e.contains("INT64; INT32 is supported"),
        "{e}"
    );
    let e = refused(mean_file(&[1, 2], i32s, false, vec![1, 1, 1, 2]));
    assert!(
        e.contains("should be [1, 2]") && e.contains("keep_dims false"),
        "{e}"
    );
}
