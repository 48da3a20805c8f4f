//! Exported model → int8 `.tflite` that TFLite Micro runs bit-exactly like the blob.
//!
//! A `.tflite` file stores float scales; TFLM derives every multiplier from them at Prepare time
//! (`QuantizeMultiplier` of `s_x·s_w[c]/s_y` in double from f32 scales, ADD's twice-max rule,
//! QUANTIZE's `s_in/s_out`) and every clamp from the fused activation. The exporter derived the
//! blob's integers from the same f32 scales the same way ([`crate::quant::integer`]), so writing
//! exactly the [`QuantGraph`]'s scales, zero points, int8 weights and i32 biases makes TFLM
//! compute exactly what the blob computes.
//!
//! Op mapping (blob op → TFLite ops):
//! - conv / depthwise → CONV_2D (weights `[cout, kh, kw, cin]`, quantized dimension 0) /
//!   DEPTHWISE_CONV_2D (`[1, kh, kw, C]`, quantized dimension 3, multiplier 1). Padding that is
//!   neither SAME (odd cell after) nor VALID becomes a PAD before a VALID convolution: PAD pads
//!   with the zero point, which is what convolution padding computes.
//! - max / average pool → MAX_POOL_2D / AVERAGE_POOL_2D. PAD cannot stand in for a pool's
//!   padding (max pool skips padded cells, average pool leaves them out of its count), so
//!   padding SAME cannot express (PyTorch's 3×3 stride-2 padding-1 pool on an even size puts a
//!   padded cell before) is written as the same pool at stride 1, which is SAME, followed by a
//!   1×1 stride-s MAX_POOL_2D that keeps every s-th window: the same windows, the same integers.
//!   Geometry neither form reaches is refused.
//! - ReLU op (a 1×1 max pool with a clamp) → MAX_POOL_2D 1×1 with fused RELU/RELU6.
//! - global average pool → AVERAGE_POOL_2D with one VALID window over the whole input.
//! - add → ADD.
//! - concat → CONCATENATION on the channel axis. TFLM's int8 concatenation requires every input
//!   quantized exactly like the output, so an input quantized otherwise is first requantized to
//!   the output's scale and zero point ([`Requantize`]); a clamped concat (fused ReLU) gets a
//!   1×1 MAX_POOL_2D with that activation after it (TFLM's concatenation takes none).
//! - linear → FULLY_CONNECTED (per-channel weights `[cout, cin]`), after a RESHAPE to `[1, N]`
//!   when its input is not `1×1×N`.
//!
//! Fused activations: TFLM derives the clamp from NONE (`[−128, 127]`), RELU (`[max(−128, z),
//! 127]`) or RELU6; an op whose clamp none of them gives is refused. Also refused: activations
//! narrower than 8 bits, per-tensor affine weights with a non-zero zero point (TFLite's int8
//! weights are symmetric), and single rounding (see [`TfliteExportError::SingleRounding`]).
//! Weights quantized to fewer than 8 bits are fine: their values are int8 values.

use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};

use super::params::{activation_range, axis_padding};
use super::schema::{
    self, ActivationFunctionType, BuiltinOperator, BuiltinOptions, Padding, TensorType,
};
use crate::export::graph::{QuantGraph, QuantOp, QuantOpKind, QuantTensor, QuantWeights};
use crate::quant::lower::Activation;
use shared_format::{Rounding, Window};

/// How a concatenation input quantized unlike the output is brought to the output's scale and
/// zero point (TFLM computes the multiplier of both from `s_in / s_out` in double, as the blob's
/// concat does, and both compute `clamp(MBQM(x − z_in) + z_out)`: the same bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Requantize {
    /// A 1×1 DEPTHWISE_CONV_2D with unit weights of scale 1.0 and zero bias: TFLM's multiplier
    /// is `s_in·1.0/s_out`, exactly `s_in/s_out`. Every TFLite runtime and this crate's own
    /// importer ([`super::import()`]) read it, so the file imports back to an equivalent blob.
    #[default]
    Depthwise,
    /// TFLite's own QUANTIZE (int8 → int8 requantize). TFLM runs it; this crate's importer does
    /// not import QUANTIZE (yet).
    Quantize,
}

/// Why an exported model cannot be written as `.tflite`.
#[derive(Debug, thiserror::Error)]
pub enum TfliteExportError {
    /// The blob was built for single rounding.
    #[error(
        "the model was exported with single rounding, which a .tflite file cannot express: it \
         stores float scales, and TFLM's default build derives its multipliers from them and \
         requantizes with double rounding, so its outputs would differ from the blob's; export \
         with --rounding double (the default for --format tflite)"
    )]
    SingleRounding,
    /// An activation tensor narrower than 8 bits.
    #[error(
        "tensor {index} ('{name}') has {bits}-bit activations; TFLite int8 models need 8-bit \
         activations (export with a8, e.g. --bits w8a8 or w4a8)"
    )]
    ActivationBits {
        /// Blob tensor id.
        index: usize,
        /// Its IR node.
        name: String,
        /// Its bit-width.
        bits: u8,
    },
    /// One op has no TFLite form.
    #[error("op {index} ('{name}', {kind}): {what}")]
    Op {
        /// Blob op index.
        index: usize,
        /// Its IR node.
        name: String,
        /// Its kind.
        kind: &'static str,
        /// What cannot be expressed.
        what: String,
    },
}

/// Writes `graph` as an int8 `.tflite` flatbuffer, requantizing concatenation inputs with
/// [`Requantize::Depthwise`].
pub fn export(graph: &QuantGraph) -> Result<Vec<u8>, TfliteExportError> {
    export_with(graph, Requantize::default())
}

/// [`export`] with a choice of concatenation requantization.
pub fn export_with(
    graph: &QuantGraph,
    requantize: Requantize,
) -> Result<Vec<u8>, TfliteExportError> {
    Ok(plan(graph, requantize)?.serialize())
}

/// TFLite builtins a written file may contain, counted (for reports and tests).
pub fn op_counts(
    graph: &QuantGraph,
    requantize: Requantize,
) -> Result<Vec<(&'static str, usize)>, TfliteExportError> {
    let model = plan(graph, requantize)?;
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for op in &model.ops {
        let name = op.code.variant_name().unwrap_or("?");
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    Ok(counts)
}

/// One tensor of the file, before serialization.
#[derive(Debug, Clone)]
struct TfTensor {
    name: String,
    shape: Vec<i32>,
    ty: TensorType,
    scales: Vec<f32>,
    zero_points: Vec<i64>,
    quantized_dimension: i32,
    /// Constant data (little-endian), or `None` for an activation.
    data: Option<Vec<u8>>,
}

/// Builtin options of one op.
#[derive(Debug, Clone)]
enum TfOptions {
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
    /// No options table (ops such as TANH).
    #[cfg_attr(not(test), allow(dead_code))]
    None,
}

/// One op of the file, before serialization.
#[derive(Debug, Clone)]
struct TfOp {
    code: BuiltinOperator,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    options: TfOptions,
}

/// The whole file, before serialization: one subgraph.
#[derive(Debug, Clone, Default)]
struct TfModel {
    description: String,
    tensors: Vec<TfTensor>,
    ops: Vec<TfOp>,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
}

impl TfModel {
    fn push_tensor(&mut self, t: TfTensor) -> i32 {
        self.tensors.push(t);
        (self.tensors.len() - 1) as i32
    }

    fn serialize(&self) -> Vec<u8> {
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

fn write_options(
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
        TfOptions::None => (BuiltinOptions::NONE, None),
    }
}

/// A SAME or VALID padding that gives `window` exactly on an `h × w` input: the same output
/// size and the same first window position (so the same windows; cells a window would read
/// beyond the padded input are never read).
fn expressible(window: &Window, h: usize, w: usize) -> Option<Padding> {
    let axes = [
        (
            h,
            window.kernel_h,
            window.stride_h,
            window.dilation_h,
            window.padding.top,
            window.padding.bottom,
        ),
        (
            w,
            window.kernel_w,
            window.stride_w,
            window.dilation_w,
            window.padding.left,
            window.padding.right,
        ),
    ];
    [Padding::VALID, Padding::SAME].into_iter().find(|&p| {
        axes.iter().all(|&(len, k, s, d, before, after)| {
            let ours = Window::output_len(len as u32, k, s, d, before, after);
            match axis_padding(p, len as i32, k.into(), s.into(), d.into()) {
                Ok((out, b, _)) => ours == Some(out as u32) && b == i32::from(before),
                Err(_) => false,
            }
        })
    })
}

fn activation_name(act: Activation) -> ActivationFunctionType {
    match act {
        Activation::Linear => ActivationFunctionType::NONE,
        Activation::Relu { six: false } => ActivationFunctionType::RELU,
        Activation::Relu { six: true } => ActivationFunctionType::RELU6,
    }
}

/// Builds the file's tensors and ops from the graph, refusing what TFLite cannot express.
struct Planner<'g> {
    graph: &'g QuantGraph,
    requantize: Requantize,
    model: TfModel,
    /// Blob tensor id → file tensor index.
    activation: Vec<i32>,
}

fn plan(graph: &QuantGraph, requantize: Requantize) -> Result<TfModel, TfliteExportError> {
    if graph.rounding != Rounding::Double {
        return Err(TfliteExportError::SingleRounding);
    }
    if let Some((index, t)) = graph.tensors.iter().enumerate().find(|(_, t)| t.bits != 8) {
        return Err(TfliteExportError::ActivationBits {
            index,
            name: t.name.clone(),
            bits: t.bits,
        });
    }
    let mut p = Planner {
        graph,
        requantize,
        model: TfModel {
            description: format!("ghnq export of {} (int8, TFLM double rounding)", graph.name),
            ..TfModel::default()
        },
        activation: Vec::with_capacity(graph.tensors.len()),
    };
    for (t, tensor) in graph.tensors.iter().enumerate() {
        let [h, w, c] = tensor.shape;
        // A fully connected output only fully connected layers read (the logits) is `[1, N]`,
        // as TFLite writes a classifier's output; every other tensor is `[1, H, W, C]`.
        let linear = |op: &QuantOp| matches!(op.kind, QuantOpKind::Linear { .. });
        let flat = h == 1
            && w == 1
            && graph.ops.iter().any(|op| op.output == t && linear(op))
            && graph
                .ops
                .iter()
                .all(|op| !op.inputs().contains(&t) || linear(op));
        let shape = if flat {
            vec![1, c as i32]
        } else {
            vec![1, h as i32, w as i32, c as i32]
        };
        let index = p
            .model
            .push_tensor(activation_tensor(&tensor.name, shape, tensor));
        p.activation.push(index);
    }
    p.model.inputs = vec![p.activation[0]];
    p.model.outputs = vec![p.activation[graph.output]];
    for (index, op) in graph.ops.iter().enumerate() {
        p.op(op).map_err(|what| TfliteExportError::Op {
            index,
            name: op.name.clone(),
            kind: op.kind_name(),
            what,
        })?;
    }
    Ok(p.model)
}

fn activation_tensor(name: &str, shape: Vec<i32>, t: &QuantTensor) -> TfTensor {
    TfTensor {
        name: name.to_owned(),
        shape,
        ty: TensorType::INT8,
        scales: vec![t.scale],
        zero_points: vec![i64::from(t.zero_point)],
        quantized_dimension: 0,
        data: None,
    }
}

fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Planner<'_> {
    fn tensor(&self, t: usize) -> &QuantTensor {
        &self.graph.tensors[t]
    }

    /// The fused activation whose TFLM clamp is `op`'s clamp (the op's own activation first).
    fn fused(&self, op: &QuantOp) -> Result<ActivationFunctionType, String> {
        let y = self.tensor(op.output);
        let want = (op.clamp.min, op.clamp.max);
        let own = activation_name(op.act);
        let candidates = [
            own,
            ActivationFunctionType::NONE,
            ActivationFunctionType::RELU,
            ActivationFunctionType::RELU6,
        ];
        if let Some(f) = candidates
            .into_iter()
            .find(|&f| activation_range(f, y.scale, y.zero_point) == Ok(want))
        {
            return Ok(f);
        }
        let ranges: Vec<String> = candidates[1..]
            .iter()
            .map(|&f| {
                let (lo, hi) = activation_range(f, y.scale, y.zero_point).unwrap_or((0, 0));
                format!("{} [{lo}, {hi}]", f.variant_name().unwrap_or("?"))
            })
            .collect();
        Err(format!(
            "its output clamp [{}, {}] is not one a TFLite fused activation gives at scale {} and \
             zero point {} ({})",
            want.0,
            want.1,
            y.scale,
            y.zero_point,
            ranges.join(", ")
        ))
    }

    /// A new activation tensor quantized like blob tensor `like`.
    fn intermediate(&mut self, name: String, shape: Vec<i32>, like: usize) -> i32 {
        let t = activation_tensor(&name, shape, &self.graph.tensors[like]);
        self.model.push_tensor(t)
    }

    fn push(&mut self, code: BuiltinOperator, inputs: Vec<i32>, output: i32, options: TfOptions) {
        self.model.ops.push(TfOp {
            code,
            inputs,
            outputs: vec![output],
            options,
        });
    }

    /// Weight and bias tensors of a weighted op reading `input` (for the bias scales).
    fn weight_tensors(
        &mut self,
        op: &QuantOp,
        weights: &QuantWeights,
        input: usize,
        axis: i32,
    ) -> Result<(i32, i32), String> {
        if weights.zero_point != 0 {
            return Err(format!(
                "its weights are {:?} with zero point {}; TFLite's int8 weights are symmetric: \
                 export with --per-channel",
                weights.scheme, weights.zero_point
            ));
        }
        if weights.bits > 8 {
            return Err(format!("its weights have {} bits", weights.bits));
        }
        let s_x = self.tensor(input).scale;
        let channels = weights.bias.len();
        let w = TfTensor {
            name: format!("{}/weights", op.name),
            shape: weights.shape.iter().map(|&d| d as i32).collect(),
            ty: TensorType::INT8,
            scales: weights.scales.clone(),
            zero_points: vec![0; weights.scales.len()],
            quantized_dimension: if weights.scales.len() > 1 { axis } else { 0 },
            data: Some(weights.values.iter().map(|&v| v as u8).collect()),
        };
        // TFLite's bias convention: scale s_x·s_w[c] (f32), zero point 0. TFLM reads only the
        // values; the scales document them.
        let b = TfTensor {
            name: format!("{}/bias", op.name),
            shape: vec![channels as i32],
            ty: TensorType::INT32,
            scales: (0..channels).map(|c| s_x * weights.scale(c)).collect(),
            zero_points: vec![0; channels],
            quantized_dimension: 0,
            data: Some(i32_bytes(&weights.bias)),
        };
        Ok((self.model.push_tensor(w), self.model.push_tensor(b)))
    }

    fn op(&mut self, op: &QuantOp) -> Result<(), String> {
        let y = self.activation[op.output];
        match &op.kind {
            QuantOpKind::Conv {
                depthwise,
                input,
                window,
                weights,
            } => {
                let act = self.fused(op)?;
                let axis = if *depthwise { 3 } else { 0 };
                let (w, b) = self.weight_tensors(op, weights, *input, axis)?;
                let [h, wd, c] = self.tensor(*input).shape;
                let mut x = self.activation[*input];
                let padding = match expressible(window, h, wd) {
                    Some(p) => p,
                    None => {
                        // PAD pads with the zero point: what the convolution's padding means.
                        let pd = window.padding;
                        let paddings = [
                            0,
                            0,
                            i32::from(pd.top),
                            i32::from(pd.bottom),
                            i32::from(pd.left),
                            i32::from(pd.right),
                            0,
                            0,
                        ];
                        let pt = self.model.push_tensor(TfTensor {
                            name: format!("{}/paddings", op.name),
                            shape: vec![4, 2],
                            ty: TensorType::INT32,
                            scales: Vec::new(),
                            zero_points: Vec::new(),
                            quantized_dimension: 0,
                            data: Some(i32_bytes(&paddings)),
                        });
                        let padded = self.intermediate(
                            format!("{}/padded", op.name),
                            vec![
                                1,
                                (h + usize::from(pd.top) + usize::from(pd.bottom)) as i32,
                                (wd + usize::from(pd.left) + usize::from(pd.right)) as i32,
                                c as i32,
                            ],
                            *input,
                        );
                        self.push(BuiltinOperator::PAD, vec![x, pt], padded, TfOptions::Pad);
                        x = padded;
                        Padding::VALID
                    }
                };
                let stride = (i32::from(window.stride_h), i32::from(window.stride_w));
                let dilation = (i32::from(window.dilation_h), i32::from(window.dilation_w));
                let (code, options) = if *depthwise {
                    (
                        BuiltinOperator::DEPTHWISE_CONV_2D,
                        TfOptions::Depthwise {
                            padding,
                            stride,
                            dilation,
                            act,
                        },
                    )
                } else {
                    (
                        BuiltinOperator::CONV_2D,
                        TfOptions::Conv {
                            padding,
                            stride,
                            dilation,
                            act,
                        },
                    )
                };
                self.push(code, vec![x, w, b], y, options);
            }
            QuantOpKind::Pool { max, input, window } => {
                let act = self.fused(op)?;
                let code = if *max {
                    BuiltinOperator::MAX_POOL_2D
                } else {
                    BuiltinOperator::AVERAGE_POOL_2D
                };
                let x = self.activation[*input];
                let [h, w, c] = self.tensor(*input).shape;
                let filter = (i32::from(window.kernel_h), i32::from(window.kernel_w));
                let stride = (i32::from(window.stride_h), i32::from(window.stride_w));
                if window.dilation_h != 1 || window.dilation_w != 1 {
                    return Err("TFLite pools have no dilation".into());
                }
                if let Some(padding) = expressible(window, h, w) {
                    let options = TfOptions::Pool {
                        padding,
                        stride,
                        filter,
                        act,
                    };
                    self.push(code, vec![x], y, options);
                    return Ok(());
                }
                // The same windows at stride 1 (SAME when the padding before is SAME's), then
                // every stride-th of them.
                let pd = window.padding;
                let dense = Window {
                    stride_h: 1,
                    stride_w: 1,
                    padding: shared_format::Padding {
                        top: pd.top,
                        left: pd.left,
                        bottom: (window.kernel_h - 1).saturating_sub(pd.top),
                        right: (window.kernel_w - 1).saturating_sub(pd.left),
                    },
                    ..*window
                };
                let pick = Window::square(1, 1, 1, 0);
                let pick = Window {
                    stride_h: window.stride_h,
                    stride_w: window.stride_w,
                    ..pick
                };
                let [oh, ow, _] = self.tensor(op.output).shape;
                let picked = (
                    Window::output_len(h as u32, 1, window.stride_h, 1, 0, 0),
                    Window::output_len(w as u32, 1, window.stride_w, 1, 0, 0),
                );
                if expressible(&dense, h, w) != Some(Padding::SAME)
                    || picked != (Some(oh as u32), Some(ow as u32))
                {
                    return Err(format!(
                        "a {}x{} pool with stride {}x{} and padding (top {}, left {}, bottom {}, \
                         right {}) on a {h}x{w} input has no TFLite form: TFLite pools pad SAME \
                         (the odd cell after) or VALID, the same pool at stride 1 is not SAME \
                         either, and a PAD cannot stand in (max pool skips padded cells, average \
                         pool leaves them out of its count)",
                        window.kernel_h,
                        window.kernel_w,
                        window.stride_h,
                        window.stride_w,
                        pd.top,
                        pd.left,
                        pd.bottom,
                        pd.right
                    ));
                }
                let dense_out = self.intermediate(
                    format!("{}/stride1", op.name),
                    vec![1, h as i32, w as i32, c as i32],
                    *input,
                );
                let options = TfOptions::Pool {
                    padding: Padding::SAME,
                    stride: (1, 1),
                    filter,
                    act: ActivationFunctionType::NONE,
                };
                self.push(code, vec![x], dense_out, options);
                debug_assert_eq!(expressible(&pick, h, w), Some(Padding::VALID));
                let options = TfOptions::Pool {
                    padding: Padding::VALID,
                    stride,
                    filter: (1, 1),
                    act,
                };
                self.push(BuiltinOperator::MAX_POOL_2D, vec![dense_out], y, options);
            }
            QuantOpKind::GlobalAvgPool { input } => {
                let act = self.fused(op)?;
                let [h, w, _] = self.tensor(*input).shape;
                let options = TfOptions::Pool {
                    padding: Padding::VALID,
                    stride: (1, 1),
                    filter: (h as i32, w as i32),
                    act,
                };
                let x = self.activation[*input];
                self.push(BuiltinOperator::AVERAGE_POOL_2D, vec![x], y, options);
            }
            QuantOpKind::Add { inputs } => {
                let act = self.fused(op)?;
                let (a, b) = (self.activation[inputs[0]], self.activation[inputs[1]]);
                self.push(BuiltinOperator::ADD, vec![a, b], y, TfOptions::Add { act });
            }
            QuantOpKind::Concat { inputs } => {
                let act = self.fused(op)?;
                let out = self.tensor(op.output).clone();
                let mut xs = Vec::with_capacity(inputs.len());
                for (k, &t) in inputs.iter().enumerate() {
                    let x = self.tensor(t).clone();
                    if (x.scale, x.zero_point) == (out.scale, out.zero_point) {
                        xs.push(self.activation[t]);
                        continue;
                    }
                    let [h, w, c] = x.shape;
                    let shape = vec![1, h as i32, w as i32, c as i32];
                    let r = self.intermediate(
                        format!("{}/requantized{k}", op.name),
                        shape.clone(),
                        op.output,
                    );
                    self.requantize(&op.name, k, self.activation[t], c, x.scale, r);
                    xs.push(r);
                }
                let full = (op.clamp.min, op.clamp.max) == (i8::MIN, i8::MAX);
                let [h, w, c] = out.shape;
                let concat = if full {
                    y
                } else {
                    self.intermediate(
                        format!("{}/unclamped", op.name),
                        vec![1, h as i32, w as i32, c as i32],
                        op.output,
                    )
                };
                let axis = 3;
                self.push(
                    BuiltinOperator::CONCATENATION,
                    xs,
                    concat,
                    TfOptions::Concat { axis },
                );
                if !full {
                    // TFLM's concatenation takes no activation: the clamp is a 1×1 max pool.
                    let options = TfOptions::Pool {
                        padding: Padding::VALID,
                        stride: (1, 1),
                        filter: (1, 1),
                        act,
                    };
                    self.push(BuiltinOperator::MAX_POOL_2D, vec![concat], y, options);
                }
            }
            QuantOpKind::Linear { input, weights } => {
                let act = self.fused(op)?;
                let (w, b) = self.weight_tensors(op, weights, *input, 0)?;
                let [h, wd, c] = self.tensor(*input).shape;
                let mut x = self.activation[*input];
                if h * wd != 1 {
                    let n = (h * wd * c) as i32;
                    let st = self.model.push_tensor(TfTensor {
                        name: format!("{}/shape", op.name),
                        shape: vec![2],
                        ty: TensorType::INT32,
                        scales: Vec::new(),
                        zero_points: Vec::new(),
                        quantized_dimension: 0,
                        data: Some(i32_bytes(&[1, n])),
                    });
                    let flat =
                        self.intermediate(format!("{}/flattened", op.name), vec![1, n], *input);
                    let options = TfOptions::Reshape {
                        new_shape: vec![1, n],
                    };
                    self.push(BuiltinOperator::RESHAPE, vec![x, st], flat, options);
                    x = flat;
                }
                let options = TfOptions::FullyConnected { act };
                self.push(BuiltinOperator::FULLY_CONNECTED, vec![x, w, b], y, options);
            }
        }
        Ok(())
    }

    /// Requantizes `x` (`channels` channels at scale `s_in`) into `r` (quantized like the
    /// concat output).
    fn requantize(&mut self, name: &str, k: usize, x: i32, channels: usize, s_in: f32, r: i32) {
        match self.requantize {
            Requantize::Quantize => {
                self.push(BuiltinOperator::QUANTIZE, vec![x], r, TfOptions::Quantize);
            }
            Requantize::Depthwise => {
                let w = self.model.push_tensor(TfTensor {
                    name: format!("{name}/requantize{k}/weights"),
                    shape: vec![1, 1, 1, channels as i32],
                    ty: TensorType::INT8,
                    scales: vec![1.0],
                    zero_points: vec![0],
                    quantized_dimension: 3,
                    data: Some(vec![1; channels]),
                });
                let b = self.model.push_tensor(TfTensor {
                    name: format!("{name}/requantize{k}/bias"),
                    shape: vec![channels as i32],
                    ty: TensorType::INT32,
                    scales: vec![s_in],
                    zero_points: vec![0],
                    quantized_dimension: 0,
                    data: Some(vec![0; channels * 4]),
                });
                let options = TfOptions::Depthwise {
                    padding: Padding::VALID,
                    stride: (1, 1),
                    dilation: (1, 1),
                    act: ActivationFunctionType::NONE,
                };
                self.push(
                    BuiltinOperator::DEPTHWISE_CONV_2D,
                    vec![x, w, b],
                    r,
                    options,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::lower::Activation;
    use crate::tflite::{ImportError, import};
    use shared_format::{Clamp, WeightScheme};

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
}
