//! `.tflite` (int8) → model blob. Ops map one-to-one onto the runtime's, except RESHAPE (a
//! view: no data moves in NHWC), PAD (folded into the next convolution's padding, which pads
//! with the zero point exactly as PAD does), int32 shape arithmetic (SHAPE, STRIDED_SLICE,
//! PACK, ... evaluated here by [`crate::fold`], so that the RESHAPE of a dynamic-batch Keras head
//! reads a constant shape), standalone RELU/RELU6 (onto the runtime's clamping ops, see
//! `Mapper::relu`), and a mid-graph int8 → int8 QUANTIZE or a MUL / ADD by one constant (a
//! hard-sigmoid gate's `· 1/6`), each a 256-entry table of TFLM's results ([`crate::tables`]).
//! A flatten read only by FULLY_CONNECTED and by elementwise ops in between stays a view
//! (`Mapper::view`). A float32 interface (QUANTIZE after the input, DEQUANTIZE before the output,
//! the converter's default) is left to the host: the blob starts and ends at the int8 tensors
//! between them, whose scales [`Imported`] reports. Every multiplier is derived from the file's float
//! scales the way TFLM derives it at Prepare time (MEAN's, as its kernel folds it at every
//! invoke), so the blob computes TFLM's integers.

use shared_format::le::i32s_to_le;
use shared_format::op::{
    Add, AddInput, Clamp, Concat, ConcatInput, Conv2d, DepthwiseConv2d, GlobalAvgPool, HardSwish,
    Linear, Logistic, MAX_CONCAT_INPUTS, Mean, Mul, Op, OpKind, Padding as Pad, Pool, Requant,
    Softmax, Table, WeightScheme, Weights, Window,
};
use shared_format::{LeI32s, ModelBuilder, Rounding, Shape, TensorId, TensorSpec};

use super::error::ImportError;
use super::fold::{FoldError, Folded, fold_static_shapes, resolve_reshape, strided_slice};
use super::graph::{Graph, OpInfo, TensorInfo};
use super::params::{ParamError, activation_range, axis_padding};
use super::refusal::{IoRefusal, OpRefusal, ScaleRefusal, TensorError};
use super::schema::{self, ActivationFunctionType, BuiltinOperator, Operator, TensorType};
use super::tables::{self, Constant};
use ghnq_quant::integer::{AddParams, concat_multiplier, conv_multipliers};

/// What [`import`] made.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The blob.
    pub blob: Vec<u8>,
    /// Input shape (HWC), scale and zero point.
    pub input: IoInfo,
    /// Output shape (HWC), scale and zero point.
    pub output: IoInfo,
    /// For each TFLite op: its index, builtin name and the runtime op it became (`None`: folded
    /// into a neighbour, as RESHAPE and PAD are, evaluated at import time, as static shape
    /// arithmetic is, or the QUANTIZE / DEQUANTIZE of a float interface).
    pub ops: Vec<(usize, String, Option<OpKind>)>,
    /// The `.tflite` file takes and gives float32 (the converter's default interface): its
    /// QUANTIZE after the input and DEQUANTIZE before the output are left to the host, which
    /// quantizes inputs with [`Imported::input`]'s scale and zero point and dequantizes outputs
    /// with [`Imported::output`]'s (`ghnq run --inputs x.npy` with float32 arrays does both).
    pub float_interface: bool,
}

/// Shape and quantization of the model's input or output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IoInfo {
    /// Shape as the runtime holds it.
    pub shape: Shape,
    /// Real value of one step.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i8,
}

/// An activation tensor already in the blob, as TFLite tensors refer to it.
#[derive(Debug, Clone, Copy)]
struct Mapped {
    id: TensorId,
    /// Rows/columns a PAD added that the consuming convolution must add: top, bottom, left,
    /// right.
    pad: [i32; 4],
}

/// Reads a `.tflite` file's bytes and builds the equivalent blob, named `name` in its metadata.
pub fn import(bytes: &[u8], name: &str) -> Result<Imported, ImportError> {
    let model = schema::root_as_model(bytes)?;
    let subgraphs = model.subgraphs().map_or(0, |s| s.len());
    if subgraphs != 1 {
        return Err(ImportError::Subgraphs(subgraphs));
    }
    let graph = Graph::new(&model).map_err(ImportError::Graph)?;
    if graph.inputs.len() != 1 || graph.outputs.len() != 1 {
        return Err(ImportError::Io {
            inputs: graph.inputs.len(),
            outputs: graph.outputs.len(),
        });
    }
    let (float_in, float_out) = float_boundary(&graph)?;
    let in_index = float_in.map_or(graph.inputs[0] as usize, |(_, t)| t);
    let out_index = float_out.map_or(graph.outputs[0] as usize, |(_, t)| t);
    let io_error = |role, index: usize, e: TensorError| ImportError::IoTensor {
        role,
        index,
        name: graph.tensors[index].name.clone(),
        reason: e.into(),
    };
    let input = io_info(&graph.tensors[in_index]).map_err(|w| io_error("input", in_index, w))?;
    let output =
        io_info(&graph.tensors[out_index]).map_err(|w| io_error("output", out_index, w))?;

    let folded = fold_static_shapes(&graph)?;
    let mut b = ModelBuilder::new(
        TensorSpec {
            shape: input.shape,
            zero_point: input.zero_point,
            bits: 8,
        },
        input.scale,
    );
    b.rounding(Rounding::Double)
        .metadata(name, "w8a8", "tflite", 0, 0, 0);
    let mut mapped: Vec<Option<Mapped>> = vec![None; graph.tensors.len()];
    mapped[in_index] = Some(Mapped {
        id: b.input(),
        pad: [0; 4],
    });
    let mut ops = Vec::with_capacity(graph.ops.len());
    for op in &graph.ops {
        if [float_in, float_out]
            .iter()
            .flatten()
            .any(|&(i, _)| i == op.index)
        {
            ops.push((op.index, op.name(), None));
            continue;
        }
        let kind = Mapper {
            graph: &graph,
            folded: &folded,
            op,
            mapped: &mut mapped,
            b: &mut b,
        }
        .map()
        .map_err(|e| match e {
            MapError::Build(e) => ImportError::Build(e),
            MapError::Refused(reason) => ImportError::Op {
                index: op.index,
                op: op.name(),
                reason,
            },
        })?;
        ops.push((op.index, op.name(), kind));
    }
    let out = mapped[out_index]
        .filter(|m| m.pad == [0; 4])
        .ok_or(ImportError::OutputNotProduced(out_index))?;
    let blob = b.finish(out.id, output.scale)?;
    Ok(Imported {
        blob,
        input,
        output,
        ops,
        float_interface: float_in.is_some() || float_out.is_some(),
    })
}

/// A float32 interface: the QUANTIZE (op index, int8 output tensor) that the float32 graph input
/// feeds, and the DEQUANTIZE (op index, int8 input tensor) that produces the float32 graph output.
/// Only this exact boundary is accepted; a float tensor anywhere else is refused where it is used.
#[allow(clippy::type_complexity)]
fn float_boundary(
    graph: &Graph<'_>,
) -> Result<(Option<(usize, usize)>, Option<(usize, usize)>), ImportError> {
    let (input, output) = (graph.inputs[0], graph.outputs[0]);
    let refuse = |role, index: i32, reason| ImportError::IoTensor {
        role,
        index: index as usize,
        name: graph.tensors[index as usize].name.clone(),
        reason,
    };
    let float = |t: i32| graph.tensors[t as usize].ty == TensorType::FLOAT32;
    // `op`, if it is a `code` whose int8 side (the outputs of QUANTIZE, the inputs of
    // DEQUANTIZE) is one int8 tensor: its index and that tensor.
    let boundary = |op: &OpInfo<'_>, code, int8_side: &[i32]| match *int8_side {
        [t] if op.code == code && graph.tensors[t as usize].ty == TensorType::INT8 => {
            Some((op.index, t as usize))
        }
        _ => None,
    };
    let float_in = if float(input) {
        let users: Vec<&OpInfo<'_>> = graph.readers(input).collect();
        let quantize = match users[..] {
            [op] => boundary(op, BuiltinOperator::QUANTIZE, &op.outputs),
            _ => None,
        };
        Some(quantize.ok_or_else(|| refuse("input", input, IoRefusal::FloatInput))?)
    } else {
        None
    };
    let float_out = if float(output) {
        let dequantize = graph
            .ops
            .iter()
            .find(|op| op.outputs.contains(&output))
            .and_then(|op| boundary(op, BuiltinOperator::DEQUANTIZE, &op.inputs));
        Some(dequantize.ok_or_else(|| refuse("output", output, IoRefusal::FloatOutput))?)
    } else {
        None
    };
    Ok((float_in, float_out))
}

/// The runtime's HWC shape of a TFLite activation shape: `[1, H, W, C]`, `[1, N]` or `[N]`.
fn hwc(shape: &[i32]) -> Result<Shape, TensorError> {
    let dims: Vec<u16> = shape
        .iter()
        .map(|&d| u16::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| TensorError::DimensionRange {
            shape: shape.to_vec(),
        })?;
    match dims[..] {
        [1, h, w, c] => Ok(Shape { h, w, c }),
        [1, h, c] => Ok(Shape { h: 1, w: h, c }),
        [1, c] | [c] => Ok(Shape { h: 1, w: 1, c }),
        _ => Err(TensorError::Layout {
            shape: shape.to_vec(),
        }),
    }
}

/// One scale and an int8 zero point, as every activation needs.
fn activation_quant(t: &TensorInfo<'_>) -> Result<(f32, i8), TensorError> {
    if t.ty != TensorType::INT8 {
        return Err(TensorError::NotInt8 {
            name: t.name.clone(),
            ty: t.type_name(),
        });
    }
    match (&t.scales[..], &t.zero_points[..]) {
        ([s], [z]) if *s > 0.0 && s.is_finite() => {
            let z = i8::try_from(*z).map_err(|_| TensorError::ZeroPoint {
                name: t.name.clone(),
                zero_point: *z,
            })?;
            Ok((*s, z))
        }
        ([], _) => Err(TensorError::NotQuantized {
            name: t.name.clone(),
        }),
        (s, _) => Err(TensorError::Scales {
            name: t.name.clone(),
            count: s.len(),
        }),
    }
}

/// The model input's or output's shape and quantization.
fn io_info(t: &TensorInfo<'_>) -> Result<IoInfo, TensorError> {
    let (scale, zero_point) = activation_quant(t)?;
    Ok(IoInfo {
        shape: hwc(&t.shape)?,
        scale,
        zero_point,
    })
}

/// The bytes of a constant tensor of type `ty` holding `elements` values of `size` bytes.
fn constant<'a>(
    t: &TensorInfo<'a>,
    what: &'static str,
    ty: TensorType,
    size: usize,
    elements: usize,
) -> Result<&'a [u8], TensorError> {
    if t.ty != ty {
        return Err(TensorError::ConstantType {
            what,
            name: t.name.clone(),
            ty: t.type_name(),
            expected: ty.variant_name().unwrap_or("?"),
        });
    }
    let data = t.data.ok_or_else(|| TensorError::NotConstant {
        what,
        name: t.name.clone(),
    })?;
    if data.len() != elements * size {
        return Err(TensorError::ConstantSize {
            what,
            name: t.name.clone(),
            bytes: data.len(),
            elements,
            expected: elements * size,
        });
    }
    Ok(data)
}

/// Why one op could not be mapped: a refusal, which [`import`] reports with the op's index and
/// name, or a limit of the format the builder hit.
#[derive(Debug)]
enum MapError {
    /// The op (or one of its tensors) has no runtime equivalent.
    Refused(OpRefusal),
    /// The blob builder refused the op (a limit of the format).
    Build(shared_format::BuildError),
}

/// `?` on the errors a mapper meets: each is a refusal but the builder's.
macro_rules! refusal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for MapError {
            fn from(e: $t) -> Self {
                MapError::Refused(e.into())
            }
        }
    )*};
}
refusal_from!(OpRefusal, TensorError, ParamError, FoldError, ScaleRefusal);

impl From<shared_format::BuildError> for MapError {
    fn from(e: shared_format::BuildError) -> Self {
        MapError::Build(e)
    }
}

/// Owned bytes a weighted op borrows while it is pushed.
struct WeightBytes {
    data: Vec<u8>,
    bias: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
}

impl WeightBytes {
    fn weights(&self) -> Weights<'_> {
        Weights {
            bits: 8,
            scheme: WeightScheme::PerChannelSymmetric,
            zero_point: 0,
            data: &self.data,
        }
    }

    fn bias(&self) -> LeI32s<'_> {
        LeI32s::new(&self.bias)
    }

    fn requant(&self) -> Requant<'_> {
        Requant {
            multipliers: LeI32s::new(&self.multipliers),
            shifts: &self.shifts,
        }
    }

    /// The bytes of a 1×1 convolution of `channels` outputs whose every channel has the same
    /// bias and requantization: `data` holds its weights.
    fn pointwise(
        data: Vec<u8>,
        channels: usize,
        bias: i32,
        (multiplier, shift): (i32, i8),
    ) -> Self {
        WeightBytes {
            data,
            bias: i32s_to_le(&vec![bias; channels]),
            multipliers: i32s_to_le(&vec![multiplier; channels]),
            shifts: vec![shift as u8; channels],
        }
    }

    /// The convolution (`depthwise` or not) of `input` to `output` these bytes parameterize.
    fn conv(
        &self,
        depthwise: bool,
        (input, output): (TensorId, TensorId),
        window: Window,
        clamp: Clamp,
    ) -> Op<'_> {
        // The two ops have the same fields; a macro spells them once.
        macro_rules! conv {
            ($op:ident) => {
                Op::$op($op {
                    input,
                    output,
                    window,
                    weights: self.weights(),
                    bias: self.bias(),
                    requant: self.requant(),
                    clamp,
                })
            };
        }
        if depthwise {
            conv!(DepthwiseConv2d)
        } else {
            conv!(Conv2d)
        }
    }
}

struct Mapper<'g, 'a> {
    graph: &'g Graph<'a>,
    folded: &'g Folded,
    op: &'g OpInfo<'a>,
    mapped: &'g mut Vec<Option<Mapped>>,
    b: &'g mut ModelBuilder,
}

impl<'g, 'a> Mapper<'g, 'a> {
    fn map(&mut self) -> Result<Option<OpKind>, MapError> {
        if self.folded.is_folded(self.op.index) {
            return Ok(None);
        }
        let kind = match self.op.code {
            BuiltinOperator::CONV_2D => self.conv(false)?,
            BuiltinOperator::DEPTHWISE_CONV_2D => self.conv(true)?,
            BuiltinOperator::FULLY_CONNECTED => self.fully_connected()?,
            BuiltinOperator::ADD | BuiltinOperator::MUL if self.constant_operand()?.is_some() => {
                self.with_constant()?
            }
            BuiltinOperator::ADD => self.add()?,
            BuiltinOperator::AVERAGE_POOL_2D => self.pool(true)?,
            BuiltinOperator::MAX_POOL_2D => self.pool(false)?,
            BuiltinOperator::CONCATENATION => self.concat()?,
            BuiltinOperator::SOFTMAX => self.softmax()?,
            BuiltinOperator::MEAN => self.mean()?,
            BuiltinOperator::MUL => self.mul()?,
            BuiltinOperator::LOGISTIC => self.logistic()?,
            BuiltinOperator::HARD_SWISH => self.hard_swish()?,
            BuiltinOperator::RELU => self.relu(false)?,
            BuiltinOperator::RELU6 => self.relu(true)?,
            BuiltinOperator::QUANTIZE => self.quantize()?,
            BuiltinOperator::RESHAPE
            | BuiltinOperator::SQUEEZE
            | BuiltinOperator::STRIDED_SLICE => {
                return self.view();
            }
            BuiltinOperator::PAD | BuiltinOperator::PADV2 => return self.pad(),
            _ => return Err(OpRefusal::NoSuchOp.into()),
        };
        Ok(Some(kind))
    }

    /// The op's builtin options, as `get` reads them; refused, named `op`, where the file has
    /// none.
    fn options<T>(
        &self,
        get: fn(&Operator<'a>) -> Option<T>,
        op: &'static str,
    ) -> Result<T, OpRefusal> {
        get(&self.op.raw).ok_or(OpRefusal::MissingOptions { op })
    }

    fn tensor(&self, index: i32) -> &'g TensorInfo<'a> {
        &self.graph.tensors[index as usize]
    }

    /// Input `k` of the op (a tensor index), or an error if the op has no such input.
    fn input_index(&self, k: usize) -> Result<i32, MapError> {
        match self.op.inputs.get(k) {
            Some(&t) if t >= 0 => Ok(t),
            _ => Err(OpRefusal::MissingInput { k }.into()),
        }
    }

    /// Output 0 of the op (a tensor index), or an error if it has none.
    fn output_index(&self) -> Result<i32, MapError> {
        Ok(*self
            .op
            .outputs
            .first()
            .filter(|&&t| t >= 0)
            .ok_or(OpRefusal::NoOutput)?)
    }

    /// Output 0 of an op that passes its input's bytes on unchanged (a view, a PAD): it must be
    /// quantized as the input is, `(s_x, z_x)`.
    fn output_quantized_as(&self, s_x: f32, z_x: i8) -> Result<i32, MapError> {
        let out = self.output_index()?;
        if activation_quant(self.tensor(out))? != (s_x, z_x) {
            return Err(OpRefusal::QuantizedDifferently.into());
        }
        Ok(out)
    }

    /// Pushes `op` into the blob.
    fn push(&mut self, op: &Op<'_>) -> Result<OpKind, MapError> {
        self.b.push(op)?;
        Ok(op.kind())
    }

    /// Activation input `k`: already produced, with its quantization.
    fn activation(&self, k: usize) -> Result<(Mapped, &'g TensorInfo<'a>, f32, i8), MapError> {
        let index = self.input_index(k)?;
        let t = self.tensor(index);
        let m = self.mapped[index as usize].ok_or_else(|| OpRefusal::NotProduced {
            k,
            tensor: index,
            name: t.name.clone(),
        })?;
        let (scale, zp) = activation_quant(t)?;
        Ok((m, t, scale, zp))
    }

    /// Unpadded activation input `k` (only convolutions absorb a PAD).
    fn plain_activation(
        &self,
        k: usize,
    ) -> Result<(TensorId, &'g TensorInfo<'a>, f32, i8), MapError> {
        let (m, t, s, z) = self.activation(k)?;
        if m.pad != [0; 4] {
            return Err(OpRefusal::PadNotAbsorbed.into());
        }
        Ok((m.id, t, s, z))
    }

    /// Declares output 0 and records it.
    fn output(&mut self) -> Result<(TensorId, &'g TensorInfo<'a>, f32, i8), MapError> {
        self.declare_output(None)
    }

    /// Declares output 0 with the shape of the blob tensor `like`, for an elementwise op: its
    /// output holds the input's elements in the input's order, so it takes the input's blob
    /// shape, which differs from the file's where the input is a flatten kept as a view.
    fn output_like(
        &mut self,
        like: TensorId,
    ) -> Result<(TensorId, &'g TensorInfo<'a>, f32, i8), MapError> {
        let shape = self.blob_shape(like)?;
        self.declare_output(Some(shape))
    }

    /// Declares output 0 in `shape` (the file's, as HWC, if `None`) and records it.
    fn declare_output(
        &mut self,
        shape: Option<Shape>,
    ) -> Result<(TensorId, &'g TensorInfo<'a>, f32, i8), MapError> {
        let index = self.output_index()?;
        if self.op.outputs.len() != 1 {
            let n = self.op.outputs.len();
            return Err(OpRefusal::Outputs { n }.into());
        }
        let t = self.tensor(index);
        let (scale, zero_point) = activation_quant(t)?;
        let shape = match shape {
            Some(shape) => shape,
            None => hwc(&t.shape)?,
        };
        let id = self.b.tensor(TensorSpec {
            shape,
            zero_point,
            bits: 8,
        });
        self.mapped[index as usize] = Some(Mapped { id, pad: [0; 4] });
        Ok((id, t, scale, zero_point))
    }

    /// The shape the blob holds tensor `id` in.
    fn blob_shape(&self, id: TensorId) -> Result<Shape, MapError> {
        self.b
            .spec(id)
            .map(|s| s.shape)
            .ok_or(OpRefusal::Undeclared { id }.into())
    }

    fn clamp(&self, act: ActivationFunctionType, scale: f32, zp: i8) -> Result<Clamp, ParamError> {
        let (min, max) = activation_range(act, scale, zp)?;
        Ok(Clamp { min, max })
    }

    /// int8 symmetric weights of `cout` channels along `axis`, as scales per channel and bytes.
    fn weights(&self, k: usize, cout: usize, axis: i32) -> Result<(Vec<f32>, Vec<u8>), MapError> {
        let t = self.tensor(self.input_index(k)?);
        let data = constant(t, "weights", TensorType::INT8, 1, t.elements())?;
        if let Some(&zero_point) = t.zero_points.iter().find(|&&z| z != 0) {
            return Err(OpRefusal::WeightZeroPoint {
                name: t.name.clone(),
                zero_point,
            }
            .into());
        }
        let scales = match t.scales.len() {
            1 => vec![t.scales[0]; cout],
            n if n == cout && t.quantized_dimension == axis => t.scales.clone(),
            count => {
                return Err(OpRefusal::WeightScaleCount {
                    name: t.name.clone(),
                    count,
                    axis: t.quantized_dimension,
                    channels: cout,
                    expected_axis: axis,
                }
                .into());
            }
        };
        if let Some(&scale) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(OpRefusal::WeightScale {
                name: t.name.clone(),
                scale,
            }
            .into());
        }
        Ok((scales, data.to_vec()))
    }

    /// The i32 bias of `cout` channels (input `k`, optional: absent means zeros).
    fn bias(&self, k: usize, cout: usize) -> Result<Vec<i32>, MapError> {
        let Some(&index) = self.op.inputs.get(k).filter(|&&t| t >= 0) else {
            return Ok(vec![0; cout]);
        };
        let t = self.tensor(index);
        let data = constant(t, "bias", TensorType::INT32, 4, cout)?;
        Ok(data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn weight_bytes(
        &self,
        (scales, data): (Vec<f32>, Vec<u8>),
        bias: Vec<i32>,
        s_x: f32,
        s_y: f32,
    ) -> WeightBytes {
        let (multipliers, shifts) = conv_multipliers(s_x, &scales, s_y, Rounding::Double);
        WeightBytes {
            data,
            bias: i32s_to_le(&bias),
            multipliers: i32s_to_le(&multipliers),
            shifts: shifts.iter().map(|&s| s as u8).collect(),
        }
    }

    fn conv(&mut self, depthwise: bool) -> Result<OpKind, MapError> {
        let (x, xt, s_x, _) = self.activation(0)?;
        let in_shape = hwc(&xt.shape)?;
        let (padding, stride, dilation, act) = if depthwise {
            let o = self.options(
                Operator::builtin_options_as_depthwise_conv_2_doptions,
                "DEPTHWISE_CONV_2D",
            )?;
            if o.depth_multiplier() > 1 {
                return Err(OpRefusal::DepthMultiplier {
                    multiplier: o.depth_multiplier(),
                }
                .into());
            }
            (
                o.padding(),
                (o.stride_h(), o.stride_w()),
                (o.dilation_h_factor(), o.dilation_w_factor()),
                o.fused_activation_function(),
            )
        } else {
            let o = self.options(Operator::builtin_options_as_conv_2_doptions, "CONV_2D")?;
            (
                o.padding(),
                (o.stride_h(), o.stride_w()),
                (o.dilation_h_factor(), o.dilation_w_factor()),
                o.fused_activation_function(),
            )
        };
        let wt = self.tensor(self.input_index(1)?);
        let (cout, kh, kw, cin) = match wt.shape[..] {
            [a, b, c, d] => (a, b, c, d),
            _ => {
                return Err(OpRefusal::WeightRank {
                    shape: wt.shape.clone(),
                    rank: 4,
                }
                .into());
            }
        };
        let cin_x = i32::from(in_shape.c);
        let cout = if depthwise {
            if cout != 1 || cin != cin_x {
                return Err(OpRefusal::DepthwiseWeights {
                    shape: wt.shape.clone(),
                    channels: cin_x,
                }
                .into());
            }
            cin
        } else {
            if cin != cin_x {
                return Err(OpRefusal::InputChannels {
                    weights: cin,
                    input: cin_x,
                }
                .into());
            }
            cout
        };
        // The input tensor is a PAD's output when `x.pad` is set: its shape already holds the
        // padded rows and columns, which the window adds to the unpadded tensor the blob reads.
        let [pt, pb, pl, pr] = x.pad;
        let (oh, top, bottom) =
            axis_padding(padding, i32::from(in_shape.h), kh, stride.0, dilation.0)?;
        let (ow, left, right) =
            axis_padding(padding, i32::from(in_shape.w), kw, stride.1, dilation.1)?;
        let window = Window {
            kernel_h: window_value(kh, "kernel height")?,
            kernel_w: window_value(kw, "kernel width")?,
            stride_h: window_value(stride.0, "stride")?,
            stride_w: window_value(stride.1, "stride")?,
            dilation_h: window_value(dilation.0, "dilation")?,
            dilation_w: window_value(dilation.1, "dilation")?,
            padding: Pad {
                top: window_value(top + pt, "padding")?,
                left: window_value(left + pl, "padding")?,
                bottom: window_value(bottom + pb, "padding")?,
                right: window_value(right + pr, "padding")?,
            },
        };
        let cout = cout as usize;
        let axis = if depthwise { 3 } else { 0 };
        let weights = self.weights(1, cout, axis)?;
        let bias = self.bias(2, cout)?;
        let (y, yt, s_y, z_y) = self.output()?;
        let out_shape = hwc(&yt.shape)?;
        if (
            i32::from(out_shape.h),
            i32::from(out_shape.w),
            usize::from(out_shape.c),
        ) != (oh, ow, cout)
        {
            return Err(OpRefusal::OutputShape {
                got: yt.shape.clone(),
                want: vec![1, oh, ow, cout as i32],
            }
            .into());
        }
        let bytes = self.weight_bytes(weights, bias, s_x, s_y);
        let clamp = self.clamp(act, s_y, z_y)?;
        self.push(&bytes.conv(depthwise, (x.id, y), window, clamp))
    }

    fn fully_connected(&mut self) -> Result<OpKind, MapError> {
        let o = self.options(
            Operator::builtin_options_as_fully_connected_options,
            "FULLY_CONNECTED",
        )?;
        if o.weights_format() != schema::FullyConnectedOptionsWeightsFormat::DEFAULT {
            return Err(OpRefusal::ShuffledWeights.into());
        }
        let (x, xt, s_x, _) = self.plain_activation(0)?;
        let wt = self.tensor(self.input_index(1)?);
        let [cout, cin] = wt.shape[..] else {
            return Err(OpRefusal::WeightRank {
                shape: wt.shape.clone(),
                rank: 2,
            }
            .into());
        };
        if cin as usize != xt.elements() {
            return Err(OpRefusal::InputLength {
                weights: cin,
                elements: xt.elements(),
            }
            .into());
        }
        let cout = cout as usize;
        let weights = self.weights(1, cout, 0)?;
        let bias = self.bias(2, cout)?;
        let (y, yt, s_y, z_y) = self.output()?;
        if yt.elements() != cout {
            return Err(OpRefusal::OutputLength {
                shape: yt.shape.clone(),
                values: cout,
            }
            .into());
        }
        let bytes = self.weight_bytes(weights, bias, s_x, s_y);
        let op = Op::Linear(Linear {
            input: x,
            output: y,
            weights: bytes.weights(),
            bias: bytes.bias(),
            requant: bytes.requant(),
            clamp: self.clamp(o.fused_activation_function(), s_y, z_y)?,
        });
        self.push(&op)
    }

    fn add(&mut self) -> Result<OpKind, MapError> {
        let o = self.options(Operator::builtin_options_as_add_options, "ADD")?;
        let (a, at, s1, _) = self.plain_activation(0)?;
        let (c, ct, s2, _) = self.plain_activation(1)?;
        if at.shape != ct.shape {
            return Err(OpRefusal::Broadcast {
                a: at.shape.clone(),
                b: ct.shape.clone(),
            }
            .into());
        }
        let (y, _, s_y, z_y) = self.output()?;
        let p = AddParams::new(s1, s2, s_y, Rounding::Double);
        let input = |tensor, (multiplier, shift): (i32, i8)| AddInput {
            tensor,
            multiplier,
            shift,
        };
        let op = Op::Add(Add {
            inputs: [input(a, p.inputs[0]), input(c, p.inputs[1])],
            output: y,
            left_shift: p.left_shift,
            output_multiplier: p.output.0,
            output_shift: p.output.1,
            clamp: self.clamp(o.fused_activation_function(), s_y, z_y)?,
        });
        self.push(&op)
    }

    fn pool(&mut self, average: bool) -> Result<OpKind, MapError> {
        let o = self.options(Operator::builtin_options_as_pool_2_doptions, "pooling")?;
        let (x, xt, _, _) = self.plain_activation(0)?;
        let s = hwc(&xt.shape)?;
        let (kh, kw) = (o.filter_height(), o.filter_width());
        let (oh, top, bottom) = axis_padding(o.padding(), i32::from(s.h), kh, o.stride_h(), 1)?;
        let (ow, left, right) = axis_padding(o.padding(), i32::from(s.w), kw, o.stride_w(), 1)?;
        let (y, yt, s_y, z_y) = self.output()?;
        let out = hwc(&yt.shape)?;
        if (i32::from(out.h), i32::from(out.w), out.c) != (oh, ow, s.c) {
            return Err(OpRefusal::PoolOutputShape {
                got: yt.shape.clone(),
            }
            .into());
        }
        let clamp = self.clamp(o.fused_activation_function(), s_y, z_y)?;
        // One window holding every input cell (padding excluded from the count, as TFLM's
        // average does) is the runtime's global average, whatever its nominal size.
        if average
            && oh == 1
            && ow == 1
            && kh - top >= i32::from(s.h)
            && kw - left >= i32::from(s.w)
        {
            let op = Op::GlobalAvgPool(GlobalAvgPool {
                input: x,
                output: y,
                clamp,
            });
            return self.push(&op);
        }
        let small = |v: i32| window_value(v, "pool geometry value");
        let pool = Pool {
            input: x,
            output: y,
            window: Window {
                kernel_h: small(kh)?,
                kernel_w: small(kw)?,
                stride_h: small(o.stride_h())?,
                stride_w: small(o.stride_w())?,
                dilation_h: 1,
                dilation_w: 1,
                padding: Pad {
                    top: small(top)?,
                    left: small(left)?,
                    bottom: small(bottom)?,
                    right: small(right)?,
                },
            },
            clamp,
        };
        let op = if average {
            Op::AvgPool(pool)
        } else {
            Op::MaxPool(pool)
        };
        self.push(&op)
    }

    fn concat(&mut self) -> Result<OpKind, MapError> {
        let o = self.options(
            Operator::builtin_options_as_concatenation_options,
            "CONCATENATION",
        )?;
        let yt = self.tensor(self.output_index()?);
        let (s_y0, z_y0) = activation_quant(yt)?;
        let rank = yt.shape.len() as i32;
        if o.axis() != rank - 1 && o.axis() != -1 {
            return Err(OpRefusal::ConcatAxis {
                axis: o.axis(),
                rank,
            }
            .into());
        }
        if o.fused_activation_function() != ActivationFunctionType::NONE {
            return Err(OpRefusal::ConcatActivation.into());
        }
        let n = self.op.inputs.len();
        if !(1..=MAX_CONCAT_INPUTS).contains(&n) {
            return Err(OpRefusal::ConcatInputs { n }.into());
        }
        let mut inputs = heapless::Vec::new();
        for k in 0..n {
            let (x, _, s, z) = self.plain_activation(k)?;
            // TFLM's int8 concatenation copies bytes and refuses inputs quantized otherwise.
            if s != s_y0 || z != z_y0 {
                return Err(OpRefusal::ConcatQuantization {
                    k,
                    scale: s,
                    zero_point: z,
                    output_scale: s_y0,
                    output_zero_point: z_y0,
                }
                .into());
            }
            let (multiplier, shift) = concat_multiplier(s, s_y0, Rounding::Double);
            let _ = inputs.push(ConcatInput {
                tensor: x,
                multiplier,
                shift,
            });
        }
        let (y, _, _, _) = self.output()?;
        let op = Op::Concat(Concat {
            inputs,
            output: y,
            clamp: Clamp {
                min: -128,
                max: 127,
            },
        });
        self.push(&op)
    }

    fn softmax(&mut self) -> Result<OpKind, MapError> {
        let o = self.options(Operator::builtin_options_as_softmax_options, "SOFTMAX")?;
        let (x, xt, s_x, _) = self.plain_activation(0)?;
        let (y, yt, s_y, z_y) = self.output()?;
        // TFLM's int8 softmax writes probabilities at scale 1/256 from −128 (its Prepare allows
        // the scale a relative tolerance of 0.1 %).
        if z_y != -128 || (s_y - 1.0 / 256.0).abs() > 0.001 / 256.0 {
            return Err(OpRefusal::SoftmaxOutput {
                scale: s_y,
                zero_point: z_y,
            }
            .into());
        }
        same_shape(yt, xt, || OpRefusal::ShapesDiffer)?;
        let beta = o.beta();
        let op = Op::Softmax(
            Softmax::from_scale(x, y, beta, s_x, Rounding::Double)
                .ok_or(ScaleRefusal::Softmax { beta, input: s_x })?,
        );
        self.push(&op)
    }

    /// MUL of two activations, equal in shape or broadcasting a length-1 axis (a
    /// squeeze-and-excite gate `[1, 1, 1, C]` over `[1, H, W, C]`). TFLite broadcasts by aligning
    /// trailing axes, which for the shapes `hwc` accepts is the same as comparing their HWC forms.
    fn mul(&mut self) -> Result<OpKind, MapError> {
        let o = self.options(Operator::builtin_options_as_mul_options, "MUL")?;
        let (a, at, s1, _) = self.plain_activation(0)?;
        let (c, ct, s2, _) = self.plain_activation(1)?;
        let (sa, sc) = (hwc(&at.shape)?, hwc(&ct.shape)?);
        let (y, yt, s_y, z_y) = self.output()?;
        let sy = hwc(&yt.shape)?;
        let axis =
            |i: u16, j: u16, o: u16| (i == o || i == 1) && (j == o || j == 1) && o == i.max(j);
        if !(axis(sa.h, sc.h, sy.h) && axis(sa.w, sc.w, sy.w) && axis(sa.c, sc.c, sy.c)) {
            return Err(OpRefusal::MulBroadcast {
                a: at.shape.clone(),
                b: ct.shape.clone(),
                output: yt.shape.clone(),
            }
            .into());
        }
        let clamp = self.clamp(o.fused_activation_function(), s_y, z_y)?;
        let op = Op::Mul(
            Mul::from_scales([a, c], y, [s1, s2, s_y], clamp, Rounding::Double).ok_or(
                ScaleRefusal::Mul {
                    a: s1,
                    b: s2,
                    output: s_y,
                },
            )?,
        );
        self.push(&op)
    }

    /// LOGISTIC (the sigmoid; the converter keeps it after FULLY_CONNECTED, which fuses only
    /// ReLU-like activations). TFLM's Prepare insists on output zero point −128 and never looks
    /// at the output scale (its kernel writes 1/256 steps whatever the file says), so neither
    /// does this.
    fn logistic(&mut self) -> Result<OpKind, MapError> {
        let (x, xt, s_x, _) = self.plain_activation(0)?;
        let (y, yt, _, z_y) = self.output_like(x)?;
        if z_y != -128 {
            return Err(OpRefusal::LogisticZeroPoint { zero_point: z_y }.into());
        }
        same_shape(yt, xt, || OpRefusal::ShapesDiffer)?;
        let op = Op::Logistic(
            Logistic::from_scale(x, y, s_x, Rounding::Double)
                .ok_or(ScaleRefusal::Logistic { input: s_x })?,
        );
        self.push(&op)
    }

    /// HARD_SWISH (the converter fuses Keras's `x * relu6(x + 3) / 6` into it), with the
    /// parameters TFLM's `HardSwishPrepare` derives from the two scales.
    fn hard_swish(&mut self) -> Result<OpKind, MapError> {
        let (x, xt, s_x, _) = self.plain_activation(0)?;
        let (y, yt, s_y, _) = self.output_like(x)?;
        same_shape(yt, xt, || OpRefusal::ShapesDiffer)?;
        let op = Op::HardSwish(
            HardSwish::from_scales(x, y, s_x, s_y, Rounding::Double).ok_or(
                ScaleRefusal::HardSwish {
                    input: s_x,
                    output: s_y,
                },
            )?,
        );
        self.push(&op)
    }

    /// MEAN over H and W of a `[1, H, W, C]` tensor: a global average that requantizes, with
    /// TFLM's fold of `1/(H·W)` done once here. Other axes would need a reduction the runtime
    /// does not have, so they are refused by name.
    fn mean(&mut self) -> Result<OpKind, MapError> {
        // TFLM reads absent options as keep_dims = false, the schema's default.
        let keep_dims = self
            .op
            .raw
            .builtin_options_as_reducer_options()
            .is_some_and(|o| o.keep_dims());
        let (x, xt, s_x, _) = self.plain_activation(0)?;
        let [1, h, w, c] = xt.shape[..] else {
            return Err(OpRefusal::MeanInput {
                shape: xt.shape.clone(),
            }
            .into());
        };
        let at = self.tensor(self.input_index(1)?);
        let data = constant(at, "axes", TensorType::INT32, 4, at.elements())?;
        let axes: Vec<i32> = data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        // TFLM resolves negative axes against the rank and ignores repeats.
        let mut resolved: Vec<i32> = axes
            .iter()
            .map(|&a| if a < 0 { a + 4 } else { a })
            .collect();
        resolved.sort_unstable();
        resolved.dedup();
        if resolved != [1, 2] {
            return Err(OpRefusal::MeanAxes { axes }.into());
        }
        let (y, yt, s_y, _) = self.output()?;
        let want = if keep_dims {
            vec![1, 1, 1, c]
        } else {
            vec![1, c]
        };
        if yt.shape != want {
            return Err(OpRefusal::MeanOutputShape {
                got: yt.shape.clone(),
                want,
                keep_dims,
            }
            .into());
        }
        let cells = h as u64 * w as u64;
        let mean = Mean::from_scales(x, y, s_x, s_y, cells, Rounding::Double).ok_or(
            ScaleRefusal::Mean {
                input: s_x,
                output: s_y,
                h,
                w,
            },
        )?;
        let op = Op::Mean(mean);
        self.push(&op)
    }

    /// RESHAPE/SQUEEZE, and a STRIDED_SLICE that selects every element (new axes and an
    /// ellipsis, as `t[:, tf.newaxis, tf.newaxis, :]` writes them, only reshape): a view of the
    /// same bytes. Allowed when the runtime's HWC shape stays the same, or when every reader
    /// flattens its input anyway (see `only_flattened`).
    fn view(&mut self) -> Result<Option<OpKind>, MapError> {
        let (x, xt, s_x, z_x) = self.plain_activation(0)?;
        let out = self.output_quantized_as(s_x, z_x)?;
        let yt = self.tensor(out);
        if self.op.code == BuiltinOperator::RESHAPE {
            self.check_reshape_operand(&xt.shape, &yt.shape)?;
        }
        if self.op.code == BuiltinOperator::STRIDED_SLICE {
            let picks = self.slice_picks(&xt.shape)?;
            let full = |a: usize| picks[a].iter().copied().eq(0..xt.shape[a]);
            if let Some(axis) = (0..picks.len()).find(|&a| !full(a)) {
                let last = picks.len() - 1;
                if axis == last && hwc(&xt.shape).ok() == Some(self.blob_shape(x)?) {
                    return self.channel_slice(x, &picks[last]).map(Some);
                }
                return Err(OpRefusal::SliceCopy {
                    picks: picks[axis].clone(),
                    positions: xt.shape[axis],
                    axis,
                    shape: xt.shape.clone(),
                }
                .into());
            }
        }
        if xt.elements() != yt.elements() {
            return Err(OpRefusal::ElementCount {
                input: xt.shape.clone(),
                output: yt.shape.clone(),
            }
            .into());
        }
        // The blob keeps the input's shape: the same bytes in the same order, which is the
        // output's shape only where the reshape leaves the runtime's HWC form alone.
        let blob = self.blob_shape(x)?;
        let same = hwc(&yt.shape).ok() == Some(blob);
        if !(same || self.only_flattened(out, blob)) {
            return Err(OpRefusal::ChannelLayout {
                input: xt.shape.clone(),
                output: yt.shape.clone(),
            }
            .into());
        }
        self.mapped[out as usize] = Some(Mapped { id: x, pad: [0; 4] });
        Ok(None)
    }

    /// Whether tensor `t`, held in the blob as `blob` (the shape of a reshape's input), is read
    /// only where that shape cannot matter: by FULLY_CONNECTED (which flattens), by elementwise
    /// ops whose outputs are in turn, or by a RESHAPE back to `blob` or to another such
    /// tensor. Never the model's output, whose shape the host reports.
    fn only_flattened(&self, t: i32, blob: Shape) -> bool {
        if self.graph.outputs.contains(&t) {
            return false;
        }
        self.graph.readers(t).all(|r| {
            let passes_on =
                || matches!(r.outputs[..], [o] if o >= 0 && self.only_flattened(o, blob));
            match r.code {
                BuiltinOperator::FULLY_CONNECTED => r.inputs.first() == Some(&t),
                BuiltinOperator::RELU
                | BuiltinOperator::RELU6
                | BuiltinOperator::LOGISTIC
                | BuiltinOperator::HARD_SWISH
                | BuiltinOperator::QUANTIZE => passes_on(),
                BuiltinOperator::ADD | BuiltinOperator::MUL => {
                    // Elementwise only with one constant operand.
                    let other = r.inputs.iter().find(|&&i| i != t);
                    let constant = other
                        .is_some_and(|&i| i >= 0 && self.graph.tensors[i as usize].data.is_some());
                    constant && passes_on()
                }
                BuiltinOperator::RESHAPE | BuiltinOperator::SQUEEZE => {
                    r.inputs.first() == Some(&t)
                        && matches!(r.outputs[..], [o] if o >= 0
                            && (hwc(&self.tensor(o).shape).ok() == Some(blob)
                                || self.only_flattened(o, blob)))
                }
                _ => false,
            }
        })
    }

    /// The positions a STRIDED_SLICE of an activation keeps along each input axis, after
    /// TensorFlow's expansion of the ellipsis (full axes), new axes (length 1, no input axis)
    /// and the implicit full axes past the spec (a shrunk axis keeps one position).
    fn slice_picks(&self, input: &[i32]) -> Result<Vec<Vec<i32>>, MapError> {
        let o = self.options(
            Operator::builtin_options_as_strided_slice_options,
            "STRIDED_SLICE",
        )?;
        let operand = |k: usize, what| -> Result<Vec<i32>, MapError> {
            let tensor = self.input_index(k)?;
            let v = self
                .folded
                .value(self.graph, tensor)
                .ok_or(OpRefusal::SliceOperand { what, tensor })?;
            Ok(v.values)
        };
        let (begin, end, strides) = (
            operand(1, "begin")?,
            operand(2, "end")?,
            operand(3, "strides")?,
        );
        let n = begin.len();
        if end.len() != n || strides.len() != n {
            return Err(OpRefusal::SliceSpecLengths {
                begin: n,
                end: end.len(),
                strides: strides.len(),
            }
            .into());
        }
        let bit = |mask: i32, i: usize| i < 32 && mask >> i & 1 != 0;
        let (ellipsis, new_axis) = (o.ellipsis_mask(), o.new_axis_mask());
        // Spec entries that consume an input axis (neither the ellipsis nor a new axis).
        let consuming = (0..n)
            .filter(|&i| !bit(ellipsis, i) && !bit(new_axis, i))
            .count();
        let rank = input.len();
        let mut picks = Vec::with_capacity(rank);
        let pick = |axis: usize, i: Option<usize>| -> Result<Vec<i32>, MapError> {
            let dim = *input.get(axis).ok_or_else(|| OpRefusal::SliceAxes {
                shape: input.to_vec(),
            })?;
            let everything: Vec<i32> = (0..dim).collect();
            match i {
                None => Ok(everything),
                Some(i) => Ok(strided_slice(
                    &everything,
                    begin[i],
                    end[i],
                    strides[i],
                    bit(o.begin_mask(), i),
                    bit(o.end_mask(), i),
                    bit(o.shrink_axis_mask(), i),
                )?),
            }
        };
        for i in 0..n {
            if bit(ellipsis, i) {
                for _ in 0..rank.saturating_sub(consuming) {
                    picks.push(pick(picks.len(), None)?);
                }
            } else if !bit(new_axis, i) {
                picks.push(pick(picks.len(), Some(i))?);
            }
        }
        while picks.len() < rank {
            picks.push(pick(picks.len(), None)?);
        }
        Ok(picks)
    }

    /// A slice along the channels (`t[..., :4]`, `t[..., ::2]`): a 1×1 convolution whose
    /// weights are one-hot and whose requantization is the identity (QuantizeMultiplier(1.0)
    /// = 2^30 · 2^(1 − 31), so MBQM(x − z_x) = x − z_x exactly, and the output zero point, the
    /// input's, adds z_x back): each kept channel is copied bit for bit.
    fn channel_slice(&mut self, x: TensorId, keep: &[i32]) -> Result<OpKind, MapError> {
        let xs = self.blob_shape(x)?;
        let (y, _, _, _) = self.output()?;
        let ys = self.blob_shape(y)?;
        if (ys.h, ys.w, usize::from(ys.c)) != (xs.h, xs.w, keep.len()) {
            return Err(OpRefusal::ChannelSlice {
                input: xs,
                kept: keep.len(),
                output: ys,
            }
            .into());
        }
        let (cin, cout) = (usize::from(xs.c), keep.len());
        let mut data = vec![0u8; cout * cin];
        for (o, &c) in keep.iter().enumerate() {
            data[o * cin + c as usize] = 1;
        }
        let bytes = WeightBytes::pointwise(data, cout, 0, (1 << 30, 1));
        let clamp = Clamp {
            min: i8::MIN,
            max: i8::MAX,
        };
        self.push(&bytes.conv(false, (x, y), Window::square(1, 1, 1, 0), clamp))
    }

    fn check_reshape_operand(&self, input: &[i32], output: &[i32]) -> Result<(), MapError> {
        let Some(&t) = self.op.inputs.get(1).filter(|&&t| t >= 0) else {
            return Ok(());
        };
        let value =
            self.folded
                .value(self.graph, t)
                .ok_or_else(|| OpRefusal::ReshapeNotStatic {
                    tensor: t,
                    name: self.tensor(t).name.clone(),
                })?;
        let elements = input.iter().map(|&d| d.max(0) as usize).product();
        let wanted = resolve_reshape(&value.values, elements)?;
        if resolve_reshape(output, elements).ok() != Some(wanted.clone()) {
            return Err(OpRefusal::ReshapeRecorded {
                wanted,
                recorded: output.to_vec(),
            }
            .into());
        }
        Ok(())
    }

    /// Standalone RELU and RELU6 (int8), computing exactly what TFLM's kernels compute:
    ///
    /// - RELU (`ReluQuantized`) requantizes: `clamp(z_y + MBQM(x − z_x, s_x/s_y), z_y, 127)`.
    ///   With equal quantization that is `max(x, z)`: a 1×1 max pool with that clamp, as the
    ///   exporter lowers a ReLU (`ghnq_export` `Step::Relu`); otherwise a 1×1 depthwise
    ///   convolution with weight 1 and bias 0, whose output stage is the same expression with
    ///   the same multiplier (`QuantizeMultiplier(double(s_x) / double(s_y))`, as
    ///   [`concat_multiplier`] derives it). (The format's concatenation, which also requantizes
    ///   per input, needs two inputs or more.)
    /// - RELU6 (`Relu6Quantized`) clamps to `[z_x, round(6 / s_x) + z_x]` computed from the
    ///   *input's* quantization and copies the bytes, ignoring the output's scale and zero
    ///   point even when the converter gave it different ones. A 1×1 max pool reproduces that
    ///   where the zero points agree (the format requires it of pools); otherwise a 1×1
    ///   depthwise convolution with weight 1, bias `z_x − z_y` and multiplier exactly 1 does:
    ///   `(x − z_x) + (z_x − z_y) + z_y = x`, clamped.
    fn relu(&mut self, six: bool) -> Result<OpKind, MapError> {
        let (x, xt, s_x, z_x) = self.plain_activation(0)?;
        let (y, yt, s_y, z_y) = self.output_like(x)?;
        same_shape(xt, yt, || OpRefusal::ReluShapes {
            input: xt.shape.clone(),
            output: yt.shape.clone(),
        })?;
        let max_pool = |clamp| {
            Op::MaxPool(Pool {
                input: x,
                output: y,
                window: Window::square(1, 1, 1, 0),
                clamp,
            })
        };
        let op = if !six {
            let clamp = self.clamp(ActivationFunctionType::RELU, s_y, z_y)?;
            if (s_x, z_x) == (s_y, z_y) {
                max_pool(clamp)
            } else {
                let (multiplier, shift) = concat_multiplier(s_x, s_y, Rounding::Double);
                return self.depthwise_identity(x, y, (0, multiplier, shift), clamp);
            }
        } else {
            // TFLM's Relu6Prepare: zero = z_x, six = FloatToQuantizedType(6, s_x, z_x).
            let clamp = self.clamp(ActivationFunctionType::RELU6, s_x, z_x)?;
            if z_x == z_y {
                max_pool(clamp)
            } else {
                // QuantizeMultiplier(1.0) = 2^30 · 2^(1 − 31): MBQM(acc) = acc exactly.
                let bias = i32::from(z_x) - i32::from(z_y);
                return self.depthwise_identity(x, y, (bias, 1 << 30, 1), clamp);
            }
        };
        self.push(&op)
    }

    /// A 1×1 depthwise convolution with weight 1 on every channel: `clamp(z_y + MBQM(x − z_x +
    /// bias, multiplier, shift))`, the elementwise requantization the format has no op of its
    /// own for.
    fn depthwise_identity(
        &mut self,
        x: TensorId,
        y: TensorId,
        (bias, multiplier, shift): (i32, i32, i8),
        clamp: Clamp,
    ) -> Result<OpKind, MapError> {
        let c = usize::from(self.blob_shape(x)?.c);
        let bytes = WeightBytes::pointwise(vec![1; c], c, bias, (multiplier, shift));
        self.push(&bytes.conv(true, (x, y), Window::square(1, 1, 1, 0), clamp))
    }

    /// QUANTIZE inside the graph: TFLM's int8 → int8 requantization (the converter inserts it
    /// where one tensor feeds ops that need it at two scales), as a table of its 256 results.
    /// (The QUANTIZE of a float32 model input never gets here: it is the host's.)
    fn quantize(&mut self) -> Result<OpKind, MapError> {
        let (x, xt, s_x, z_x) = self.plain_activation(0)?;
        let (y, yt, s_y, z_y) = self.output_like(x)?;
        same_shape(xt, yt, || OpRefusal::ShapesDiffer)?;
        let values = tables::requantize(s_x, z_x, s_y, z_y).ok_or(ScaleRefusal::Requantize {
            input: s_x,
            output: s_y,
        })?;
        self.push_table(x, y, &values)
    }

    /// The one constant operand of a binary op, if it has one: an int8 tensor with data whose
    /// values are all equal (a scalar, or a broadcast of one value), which makes the op a
    /// function of the other operand's byte alone.
    fn constant_operand(&self) -> Result<Option<Constant>, MapError> {
        let [a, b] = self.op.inputs[..] else {
            return Ok(None);
        };
        let is_constant = |t: i32| t >= 0 && self.tensor(t).data.is_some();
        let (k, t) = match (is_constant(a), is_constant(b)) {
            (false, false) => return Ok(None),
            (true, true) => return Err(OpRefusal::BothConstant.into()),
            (true, false) => (0, a),
            (false, true) => (1, b),
        };
        let ct = self.tensor(t);
        let (scale, zero_point) =
            activation_quant(ct).map_err(|source| OpRefusal::ConstantOperand { k, source })?;
        let data = constant(ct, "constant values", TensorType::INT8, 1, ct.elements())?;
        let Some((&first, rest)) = data.split_first() else {
            return Err(OpRefusal::EmptyConstant {
                k,
                name: ct.name.clone(),
            }
            .into());
        };
        if rest.iter().any(|&v| v != first) {
            return Err(OpRefusal::ConstantValues {
                k,
                name: ct.name.clone(),
                shape: ct.shape.clone(),
            }
            .into());
        }
        Ok(Some(Constant {
            value: first as i8,
            zero_point,
            scale,
            first: k == 0,
        }))
    }

    /// MUL or ADD of an activation and one constant (a hard-sigmoid gate's `· 1/6` and `+ 3`,
    /// a scaled branch): TFLM's kernel run on every input byte into a table. The constant
    /// must not enlarge the output, which is the activation's shape.
    fn with_constant(&mut self) -> Result<OpKind, MapError> {
        let constant = self.constant_operand()?.ok_or(OpRefusal::NoConstant)?;
        let k = if constant.first { 1 } else { 0 };
        let (x, xt, s_x, z_x) = self.plain_activation(k)?;
        let (y, yt, s_y, z_y) = self.output_like(x)?;
        same_shape(xt, yt, || OpRefusal::ConstantBroadcast {
            input: xt.shape.clone(),
            output: yt.shape.clone(),
        })?;
        let act = if self.op.code == BuiltinOperator::MUL {
            self.op
                .raw
                .builtin_options_as_mul_options()
                .map(|o| o.fused_activation_function())
        } else {
            self.op
                .raw
                .builtin_options_as_add_options()
                .map(|o| o.fused_activation_function())
        }
        .unwrap_or(ActivationFunctionType::NONE);
        let clamp = self.clamp(act, s_y, z_y)?;
        let values = if self.op.code == BuiltinOperator::MUL {
            tables::mul_by((s_x, z_x), constant, (s_y, z_y), clamp).ok_or(ScaleRefusal::Mul {
                a: s_x,
                b: constant.scale,
                output: s_y,
            })?
        } else {
            tables::add_to((s_x, z_x), constant, (s_y, z_y), clamp).ok_or(ScaleRefusal::AddTable)?
        };
        self.push_table(x, y, &values)
    }

    fn push_table(&mut self, x: TensorId, y: TensorId, values: &[u8]) -> Result<OpKind, MapError> {
        let op = Op::Table(Table {
            input: x,
            output: y,
            values,
        });
        self.push(&op)
    }

    /// PAD/PADV2: remembered and folded into the reading convolution's padding.
    fn pad(&mut self) -> Result<Option<OpKind>, MapError> {
        let (m, xt, s_x, z_x) = self.activation(0)?;
        let pt = self.tensor(self.input_index(1)?);
        let data = pt.data.ok_or(OpRefusal::PaddingsNotConstant)?;
        let p: Vec<i64> = match pt.ty {
            TensorType::INT32 => data
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            TensorType::INT64 => data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8-byte chunk")))
                .collect(),
            _ => return Err(OpRefusal::PaddingsType.into()),
        };
        let [0, 0, top, bottom, left, right, 0, 0] = p[..] else {
            return Err(OpRefusal::PaddedAxes { paddings: p }.into());
        };
        if xt.shape.len() != 4 {
            return Err(OpRefusal::PadInput {
                shape: xt.shape.clone(),
            }
            .into());
        }
        let out = self.output_quantized_as(s_x, z_x)?;
        if self.op.code == BuiltinOperator::PADV2 {
            // The pad value must be the zero point, which is what convolution padding uses.
            let vt = self.tensor(self.input_index(2)?);
            if vt.data.and_then(|d| d.first()).map(|&v| v as i8) != Some(z_x) {
                return Err(OpRefusal::PadValue.into());
            }
        }
        let readers_ok = self.graph.readers(out).all(|r| {
            matches!(
                r.code,
                BuiltinOperator::CONV_2D | BuiltinOperator::DEPTHWISE_CONV_2D
            ) && r.inputs.first() == Some(&out)
        });
        if !readers_ok {
            return Err(OpRefusal::PadReaders.into());
        }
        let v = |x: i64| i32::try_from(x).ok().filter(|v| (0..=255).contains(v));
        let (Some(top), Some(bottom), Some(left), Some(right)) =
            (v(top), v(bottom), v(left), v(right))
        else {
            return Err(OpRefusal::PaddingRange { paddings: p }.into());
        };
        let [a, b, c, d] = m.pad;
        self.mapped[out as usize] = Some(Mapped {
            id: m.id,
            pad: [a + top, b + bottom, c + left, d + right],
        });
        Ok(None)
    }
}

/// A window value (kernel, stride, dilation, padding) as the format's u8 holds it.
fn window_value(value: i32, what: &'static str) -> Result<u8, OpRefusal> {
    u8::try_from(value).map_err(|_| OpRefusal::WindowRange { what, value })
}

/// Refuses with `refusal` unless tensors `a` and `b` have the same HWC shape (`a`'s is checked
/// first, so its layout error is the one reported when neither has one).
fn same_shape(
    a: &TensorInfo<'_>,
    b: &TensorInfo<'_>,
    refusal: impl FnOnce() -> OpRefusal,
) -> Result<(), MapError> {
    if hwc(&a.shape)? != hwc(&b.shape)? {
        return Err(refusal().into());
    }
    Ok(())
}
