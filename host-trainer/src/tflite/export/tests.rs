use super::*;
use crate::export::graph::{QuantOp, QuantOpKind, QuantTensor, QuantWeights};
use crate::quant::lower::Activation;
use crate::tflite::schema::{self, ActivationFunctionType, BuiltinOperator, Padding, TensorType};
use crate::tflite::{ImportError, import};
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
