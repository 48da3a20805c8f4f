//! The .tflite file before serialization (tensors, ops, options) and its flatbuffer writer.

use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};

use crate::schema::{
    self, ActivationFunctionType, BuiltinOperator, BuiltinOptions, Padding, TensorType,
};

/// One tensor of the file, before serialization.
#[derive(Debug, Clone)]
pub(super) struct TfTensor {
    pub(super) name: String,
    pub(super) shape: Vec<i32>,
    pub(super) ty: TensorType,
    pub(super) scales: Vec<f32>,
    pub(super) zero_points: Vec<i64>,
    pub(super) quantized_dimension: i32,
    /// Constant data (little-endian), or `None` for an activation.
    pub(super) data: Option<Vec<u8>>,
}

/// Builtin options of one op.
#[derive(Debug, Clone)]
pub(super) enum TfOptions {
    Conv {
        padding: Padding,
        stride: (i32, i32),
        dilation: (i32, i32),
        act: ActivationFunctionType,
    },
    Depthwise {
        padding: Padding,
        stride: (i32, i32),
        dilation: (i32, i32),
        act: ActivationFunctionType,
    },
    Pool {
        padding: Padding,
        stride: (i32, i32),
        filter: (i32, i32),
        act: ActivationFunctionType,
    },
    FullyConnected {
        act: ActivationFunctionType,
    },
    Add {
        act: ActivationFunctionType,
    },
    Concat {
        axis: i32,
    },
    Reshape {
        new_shape: Vec<i32>,
    },
    Pad,
    Quantize,
    Reducer {
        keep_dims: bool,
    },
    /// No options table (ops such as TANH).
    #[cfg_attr(not(test), allow(dead_code))]
    None,
}

/// One op of the file, before serialization.
#[derive(Debug, Clone)]
pub(super) struct TfOp {
    pub(super) code: BuiltinOperator,
    pub(super) inputs: Vec<i32>,
    pub(super) outputs: Vec<i32>,
    pub(super) options: TfOptions,
}

/// The whole file, before serialization: one subgraph.
#[derive(Debug, Clone, Default)]
pub(super) struct TfModel {
    pub(super) description: String,
    pub(super) tensors: Vec<TfTensor>,
    pub(super) ops: Vec<TfOp>,
    pub(super) inputs: Vec<i32>,
    pub(super) outputs: Vec<i32>,
}

impl TfModel {
    pub(super) fn push_tensor(&mut self, t: TfTensor) -> i32 {
        self.tensors.push(t);
        (self.tensors.len() - 1) as i32
    }

    pub(super) fn serialize(&self) -> Vec<u8> {
        let data_bytes: usize = self
            .tensors
            .iter()
            .filter_map(|t| t.data.as_ref().map(Vec::len))
            .sum();
        let mut fbb = FlatBufferBuilder::with_capacity(data_bytes + 4096 + 256 * self.ops.len());
        // Buffer 0 is the empty sentinel every activation tensor refers to.
        let mut buffers = vec![schema::Buffer::create(
            &mut fbb,
            &schema::BufferArgs { data: None },
        )];
        let mut tensors = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let buffer = match &t.data {
                Some(bytes) => {
                    let data = fbb.create_vector(bytes);
                    buffers.push(schema::Buffer::create(
                        &mut fbb,
                        &schema::BufferArgs { data: Some(data) },
                    ));
                    (buffers.len() - 1) as u32
                }
                None => 0,
            };
            let shape = fbb.create_vector(&t.shape);
            let name = fbb.create_string(&t.name);
            let quantization = (!t.scales.is_empty()).then(|| {
                let scale = fbb.create_vector(&t.scales);
                let zero_point = fbb.create_vector(&t.zero_points);
                schema::QuantizationParameters::create(
                    &mut fbb,
                    &schema::QuantizationParametersArgs {
                        scale: Some(scale),
                        zero_point: Some(zero_point),
                        quantized_dimension: t.quantized_dimension,
                        ..Default::default()
                    },
                )
            });
            tensors.push(schema::Tensor::create(
                &mut fbb,
                &schema::TensorArgs {
                    shape: Some(shape),
                    type_: t.ty,
                    buffer,
                    name: Some(name),
                    quantization,
                    ..Default::default()
                },
            ));
        }
        let mut codes: Vec<BuiltinOperator> = Vec::new();
        let mut operators = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            let opcode_index = match codes.iter().position(|&c| c == op.code) {
                Some(i) => i,
                None => {
                    codes.push(op.code);
                    codes.len() - 1
                }
            } as u32;
            let (options_type, options) = write_options(&mut fbb, &op.options);
            let inputs = fbb.create_vector(&op.inputs);
            let outputs = fbb.create_vector(&op.outputs);
            operators.push(schema::Operator::create(
                &mut fbb,
                &schema::OperatorArgs {
                    opcode_index,
                    inputs: Some(inputs),
                    outputs: Some(outputs),
                    builtin_options_type: options_type,
                    builtin_options: options,
                    ..Default::default()
                },
            ));
        }
        let codes: Vec<_> = codes
            .iter()
            .map(|&code| {
                schema::OperatorCode::create(
                    &mut fbb,
                    &schema::OperatorCodeArgs {
                        // Codes above 127 live in `builtin_code` only (schema 3a).
                        deprecated_builtin_code: code.0.min(127) as i8,
                        custom_code: None,
                        version: 1,
                        builtin_code: code,
                    },
                )
            })
            .collect();
        let tensors = fbb.create_vector(&tensors);
        let inputs = fbb.create_vector(&self.inputs);
        let outputs = fbb.create_vector(&self.outputs);
        let operators = fbb.create_vector(&operators);
        let name = fbb.create_string("main");
        let subgraph = schema::SubGraph::create(
            &mut fbb,
            &schema::SubGraphArgs {
                tensors: Some(tensors),
                inputs: Some(inputs),
                outputs: Some(outputs),
                operators: Some(operators),
                name: Some(name),
            },
        );
        let subgraphs = fbb.create_vector(&[subgraph]);
        let codes = fbb.create_vector(&codes);
        let buffers = fbb.create_vector(&buffers);
        let description = fbb.create_string(&self.description);
        let model = schema::Model::create(
            &mut fbb,
            &schema::ModelArgs {
                version: 3,
                operator_codes: Some(codes),
                subgraphs: Some(subgraphs),
                description: Some(description),
                buffers: Some(buffers),
                ..Default::default()
            },
        );
        schema::finish_model_buffer(&mut fbb, model);
        fbb.finished_data().to_vec()
    }
}

pub(super) fn write_options(
    fbb: &mut FlatBufferBuilder<'_>,
    options: &TfOptions,
) -> (BuiltinOptions, Option<WIPOffset<UnionWIPOffset>>) {
    match options {
        TfOptions::Conv {
            padding,
            stride,
            dilation,
            act,
        } => {
            let o = schema::Conv2DOptions::create(
                fbb,
                &schema::Conv2DOptionsArgs {
                    padding: *padding,
                    stride_h: stride.0,
                    stride_w: stride.1,
                    dilation_h_factor: dilation.0,
                    dilation_w_factor: dilation.1,
                    fused_activation_function: *act,
                },
            );
            (BuiltinOptions::Conv2DOptions, Some(o.as_union_value()))
        }
        TfOptions::Depthwise {
            padding,
            stride,
            dilation,
            act,
        } => {
            let o = schema::DepthwiseConv2DOptions::create(
                fbb,
                &schema::DepthwiseConv2DOptionsArgs {
                    padding: *padding,
                    stride_h: stride.0,
                    stride_w: stride.1,
                    depth_multiplier: 1,
                    dilation_h_factor: dilation.0,
                    dilation_w_factor: dilation.1,
                    fused_activation_function: *act,
                },
            );
            (
                BuiltinOptions::DepthwiseConv2DOptions,
                Some(o.as_union_value()),
            )
        }
        TfOptions::Pool {
            padding,
            stride,
            filter,
            act,
        } => {
            let o = schema::Pool2DOptions::create(
                fbb,
                &schema::Pool2DOptionsArgs {
                    padding: *padding,
                    stride_h: stride.0,
                    stride_w: stride.1,
                    filter_height: filter.0,
                    filter_width: filter.1,
                    fused_activation_function: *act,
                },
            );
            (BuiltinOptions::Pool2DOptions, Some(o.as_union_value()))
        }
        TfOptions::FullyConnected { act } => {
            let o = schema::FullyConnectedOptions::create(
                fbb,
                &schema::FullyConnectedOptionsArgs {
                    fused_activation_function: *act,
                    ..Default::default()
                },
            );
            (
                BuiltinOptions::FullyConnectedOptions,
                Some(o.as_union_value()),
            )
        }
        TfOptions::Add { act } => {
            let o = schema::AddOptions::create(
                fbb,
                &schema::AddOptionsArgs {
                    fused_activation_function: *act,
                    ..Default::default()
                },
            );
            (BuiltinOptions::AddOptions, Some(o.as_union_value()))
        }
        TfOptions::Concat { axis } => {
            let o = schema::ConcatenationOptions::create(
                fbb,
                &schema::ConcatenationOptionsArgs {
                    axis: *axis,
                    fused_activation_function: ActivationFunctionType::NONE,
                },
            );
            (
                BuiltinOptions::ConcatenationOptions,
                Some(o.as_union_value()),
            )
        }
        TfOptions::Reshape { new_shape } => {
            let new_shape = fbb.create_vector(new_shape);
            let o = schema::ReshapeOptions::create(
                fbb,
                &schema::ReshapeOptionsArgs {
                    new_shape: Some(new_shape),
                },
            );
            (BuiltinOptions::ReshapeOptions, Some(o.as_union_value()))
        }
        TfOptions::Pad => {
            let o = schema::PadOptions::create(fbb, &schema::PadOptionsArgs {});
            (BuiltinOptions::PadOptions, Some(o.as_union_value()))
        }
        TfOptions::Quantize => {
            let o = schema::QuantizeOptions::create(fbb, &schema::QuantizeOptionsArgs {});
            (BuiltinOptions::QuantizeOptions, Some(o.as_union_value()))
        }
        TfOptions::Reducer { keep_dims } => {
            let o = schema::ReducerOptions::create(
                fbb,
                &schema::ReducerOptionsArgs {
                    keep_dims: *keep_dims,
                },
            );
            (BuiltinOptions::ReducerOptions, Some(o.as_union_value()))
        }
        TfOptions::None => (BuiltinOptions::NONE, None),
    }
}
