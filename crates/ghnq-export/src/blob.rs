//! Lowered net + calibrated parameters → a model blob, through the shared-format builder. Every
//! integer the device runs with is derived here (EDGE_ANCHORS §3.2), from the same folded floats
//! the simulation quantizes.

use burn::tensor::Tensor;
use shared_format::le::i32s_to_le;
use shared_format::op::{
    Add, AddInput, Clamp, Concat, ConcatInput, Conv2d, DepthwiseConv2d, GlobalAvgPool, Linear,
    MAX_CONCAT_INPUTS, Op as DevOp, Pool, Requant, WeightScheme, Weights, Window,
};
use shared_format::packing::pack;
use shared_format::{BuildError, LeI32s, ModelBuilder, Rounding, Shape, TensorSpec};

use super::ExportError;
use super::graph::{QuantGraph, QuantOp, QuantOpKind, QuantTensor, QuantWeights};
use ghnq_core::arch::{Net, Op};
use ghnq_core::cnn::{LayerParams, ParamSet};
use ghnq_quant::affine::{AffineParams, Range, WeightQuant};
use ghnq_quant::config::{Clip, QuantConfig};
use ghnq_quant::fake::host_values;
use ghnq_quant::integer::{
    AddParams, activation_clamp, concat_multiplier, conv_multipliers, fit_bias_to_accumulator,
    quantize_bias,
};
use ghnq_quant::lower::{Activation, Lowered, Step};
use ghnq_quant::sim::{affine, bn_params, fold};

/// Provenance written into the blob's metadata.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// Data set name.
    pub dataset: String,
    /// Hash of the architecture's JSON.
    pub arch_hash: u64,
    /// Hash of the GHN checkpoint (0 if none).
    pub ghn_hash: u64,
    /// Calibration images.
    pub calibration_samples: u32,
}

/// Quantize a weight tensor given in the burn layout (output channel first).
fn quantize_weights(values: &[f32], cout: usize, config: &QuantConfig, bits: u8) -> WeightQuant {
    match config.scheme {
        WeightScheme::PerChannelSymmetric => WeightQuant::per_channel_symmetric(values, cout, bits),
        WeightScheme::PerTensorAffine => {
            let range = match config.weight_clip {
                Clip::Absolute => Range::of(values),
                Clip::Percentile(p) => Range::percentile(values, p),
            };
            WeightQuant::per_tensor_affine(values, bits, range)
        }
    }
}

/// The owned bytes of a weighted op (packed weights, i32 bias, requantization table), which the
/// op borrows while it is pushed.
struct Weighted {
    q: WeightQuant,
    scheme: WeightScheme,
    /// The quantized values in the device layout, unpacked.
    ordered: Vec<i8>,
    bias_values: Vec<i32>,
    data: Vec<u8>,
    bias: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
}

impl Weighted {
    /// `values` and `shift` (the folded bias) in the burn layout; `device_order` maps the
    /// quantized burn-layout values to the device layout before packing.
    #[allow(clippy::too_many_arguments)]
    fn new(
        values: &[f32],
        shift: &[f32],
        cout: usize,
        config: &QuantConfig,
        weight_bits: u8,
        s_x: f32,
        s_y: f32,
        rounding: Rounding,
        device_order: impl FnOnce(&[i8]) -> Vec<i8>,
    ) -> Result<Weighted, ExportError> {
        let q = quantize_weights(values, cout, config, weight_bits);
        let ordered = device_order(&q.values);
        let data = pack(&ordered, q.bits).map_err(|e| ExportError::Pack(format!("{e:?}")))?;
        let mut bias = quantize_bias(shift, s_x, |c| q.scale(c));
        fit_bias_to_accumulator(&mut bias, &q);
        let (mults, shifts) = conv_multipliers(s_x, &q.scales, s_y, rounding);
        Ok(Weighted {
            scheme: config.scheme,
            ordered,
            data,
            bias: i32s_to_le(&bias),
            bias_values: bias,
            multipliers: i32s_to_le(&mults),
            shifts: shifts.iter().map(|&s| s as u8).collect(),
            q,
        })
    }

    fn weights(&self) -> Weights<'_> {
        Weights {
            bits: self.q.bits,
            scheme: self.scheme,
            zero_point: self.q.zero_point,
            data: &self.data,
        }
    }

    fn bias(&self) -> LeI32s<'_> {
        LeI32s::new(&self.bias)
    }

    /// The unpacked values, float scales and bias, with `shape` the dimensions of the device
    /// layout.
    fn described(&self, shape: Vec<usize>) -> QuantWeights {
        debug_assert_eq!(shape.iter().product::<usize>(), self.ordered.len());
        QuantWeights {
            shape,
            values: self.ordered.clone(),
            scales: self.q.scales.clone(),
            zero_point: self.q.zero_point,
            bits: self.q.bits,
            scheme: self.scheme,
            bias: self.bias_values.clone(),
        }
    }

    fn requant(&self) -> Requant<'_> {
        Requant {
            multipliers: LeI32s::new(&self.multipliers),
            shifts: &self.shifts,
        }
    }
}

fn clamp_of(p: AffineParams, act: Activation) -> Clamp {
    let relu = match act {
        Activation::Linear => None,
        Activation::Relu { six } => Some(six),
    };
    let (min, max) = activation_clamp(p.zero_point, p.scale, p.bits, relu);
    Clamp { min, max }
}

fn shape_of(s: [usize; 3]) -> Shape {
    Shape::new(s[0] as u16, s[1] as u16, s[2] as u16)
}

/// Build the blob. `params` must carry calibrated running statistics for every BatchNorm the
/// net folds; `acts` holds one entry per lowered tensor.
pub fn build(
    net: &Net,
    lowered: &Lowered,
    params: &ParamSet,
    acts: &[AffineParams],
    config: &QuantConfig,
    rounding: Rounding,
    provenance: &Provenance,
) -> Result<Vec<u8>, ExportError> {
    build_described(net, lowered, params, acts, config, rounding, provenance).map(|(b, _)| b)
}

/// [`build`], also returning the [`QuantGraph`]: the float scales, zero points, quantized
/// weights and biases every integer of the blob was derived from.
pub fn build_described(
    net: &Net,
    lowered: &Lowered,
    params: &ParamSet,
    acts: &[AffineParams],
    config: &QuantConfig,
    rounding: Rounding,
    provenance: &Provenance,
) -> Result<(Vec<u8>, QuantGraph), ExportError> {
    let quant_tensor = |t: usize| QuantTensor {
        name: if t == 0 {
            "input".to_owned()
        } else {
            net.nodes[lowered.tensors[t].node].name.clone()
        },
        shape: lowered.tensors[t].shape,
        scale: acts[t].scale,
        zero_point: acts[t].zero_point,
        bits: acts[t].bits,
    };
    let mut graph = QuantGraph {
        name: net.name.clone(),
        rounding,
        tensors: vec![quant_tensor(0)],
        ops: Vec::with_capacity(lowered.steps.len()),
        output: lowered.output,
    };
    let spec = |t: usize| TensorSpec {
        shape: shape_of(lowered.tensors[t].shape),
        zero_point: acts[t].zero_point,
        bits: acts[t].bits,
    };
    let mut b = ModelBuilder::new(spec(0), acts[0].scale);
    b.rounding(rounding);
    b.metadata(
        &net.name,
        &config.label(),
        &provenance.dataset,
        provenance.arch_hash,
        provenance.ghn_hash,
        provenance.calibration_samples,
    );
    let name_of = |step: &Step| net.nodes[step.node()].name.clone();
    for (k, step) in lowered.steps.iter().enumerate() {
        let out = step.output();
        let id = b.tensor(spec(out));
        debug_assert_eq!(
            id as usize, out,
            "lowered tensors are created in step order"
        );
        let tid = |t: usize| t as u16;
        let py = acts[out];
        let layer_err = |e: BuildError| ExportError::Layer {
            node: name_of(step),
            op: k,
            source: e,
        };
        graph.tensors.push(quant_tensor(out));
        let mut describe = |kind: QuantOpKind, act: Activation| {
            graph.ops.push(QuantOp {
                name: name_of(step),
                kind,
                output: out,
                act,
                clamp: clamp_of(py, act),
            })
        };
        match step {
            Step::Conv {
                conv,
                bn,
                input,
                act,
                ..
            } => {
                let Op::Conv {
                    kernel,
                    stride,
                    dilation,
                    padding,
                    groups,
                    cin,
                    cout,
                    ..
                } = net.nodes[*conv].op
                else {
                    unreachable!("lowering pairs conv steps with conv nodes")
                };
                let LayerParams::Conv { weight, bias } = &params.layers[*conv] else {
                    return Err(ExportError::Params(name_of(step)));
                };
                let (w, shift) = match bn {
                    Some(bn) => {
                        let (gamma, beta, running) = bn_params(params, *bn);
                        let (mean, var) = running.ok_or_else(|| {
                            ExportError::Uncalibrated(net.nodes[*bn].name.clone())
                        })?;
                        fold(weight.clone(), bias.clone(), gamma, beta, mean, var)
                    }
                    None => (
                        weight.clone(),
                        bias.clone()
                            .unwrap_or_else(|| Tensor::zeros([cout], &weight.device())),
                    ),
                };
                let window =
                    Window::square(kernel as u8, stride as u8, dilation as u8, padding as u8);
                let depthwise = groups > 1;
                // burn: (co, ci/g, kh, kw). Device: conv [co][kh][kw][ci]; depthwise [kh][kw][c].
                let order = |v: &[i8]| {
                    let mut out = Vec::with_capacity(v.len());
                    if depthwise {
                        for tap in 0..kernel * kernel {
                            out.extend((0..cout).map(|c| v[c * kernel * kernel + tap]));
                        }
                    } else {
                        for co in 0..cout {
                            for tap in 0..kernel * kernel {
                                out.extend(
                                    (0..cin).map(|ci| v[(co * cin + ci) * kernel * kernel + tap]),
                                );
                            }
                        }
                    }
                    out
                };
                let wb = Weighted::new(
                    &host_values(&w),
                    &host_values(&shift),
                    cout,
                    config,
                    config.layer_precision(net, *conv).weight_bits,
                    acts[*input].scale,
                    py.scale,
                    rounding,
                    order,
                )?;
                let shape = if depthwise {
                    vec![1, kernel, kernel, cout]
                } else {
                    vec![cout, kernel, kernel, cin]
                };
                describe(
                    QuantOpKind::Conv {
                        depthwise,
                        input: *input,
                        window,
                        weights: wb.described(shape),
                    },
                    *act,
                );
                let op = if depthwise {
                    DevOp::DepthwiseConv2d(DepthwiseConv2d {
                        input: tid(*input),
                        output: id,
                        window,
                        weights: wb.weights(),
                        bias: wb.bias(),
                        requant: wb.requant(),
                        clamp: clamp_of(py, *act),
                    })
                } else {
                    DevOp::Conv2d(Conv2d {
                        input: tid(*input),
                        output: id,
                        window,
                        weights: wb.weights(),
                        bias: wb.bias(),
                        requant: wb.requant(),
                        clamp: clamp_of(py, *act),
                    })
                };
                b.push(&op).map_err(layer_err)?;
            }
            Step::Affine { bn, input, act, .. } => {
                let (gamma, beta, running) = bn_params(params, *bn);
                let (mean, var) = running
                    .ok_or_else(|| ExportError::Uncalibrated(net.nodes[*bn].name.clone()))?;
                let (a, shift) = affine(gamma, beta, mean, var);
                let av = host_values(&a);
                let wb = Weighted::new(
                    &av,
                    &host_values(&shift),
                    av.len(),
                    config,
                    config.precision.weight_bits,
                    acts[*input].scale,
                    py.scale,
                    rounding,
                    <[i8]>::to_vec,
                )?;
                describe(
                    QuantOpKind::Conv {
                        depthwise: true,
                        input: *input,
                        window: Window::square(1, 1, 1, 0),
                        weights: wb.described(vec![1, 1, 1, av.len()]),
                    },
                    *act,
                );
                b.push(&DevOp::DepthwiseConv2d(DepthwiseConv2d {
                    input: tid(*input),
                    output: id,
                    window: Window::square(1, 1, 1, 0),
                    weights: wb.weights(),
                    bias: wb.bias(),
                    requant: wb.requant(),
                    clamp: clamp_of(py, *act),
                }))
                .map_err(layer_err)?;
            }
            Step::Relu { six, input, .. } => {
                describe(
                    QuantOpKind::Pool {
                        max: true,
                        input: *input,
                        window: Window::square(1, 1, 1, 0),
                    },
                    Activation::Relu { six: *six },
                );
                b.push(&DevOp::MaxPool(Pool {
                    input: tid(*input),
                    output: id,
                    window: Window::square(1, 1, 1, 0),
                    clamp: clamp_of(py, Activation::Relu { six: *six }),
                }))
                .map_err(layer_err)?;
            }
            Step::MaxPool {
                node, input, act, ..
            }
            | Step::AvgPool {
                node, input, act, ..
            } => {
                let (kernel, stride, padding, max) = match net.nodes[*node].op {
                    Op::MaxPool {
                        kernel,
                        stride,
                        padding,
                    } => (kernel, stride, padding, true),
                    Op::AvgPool {
                        kernel,
                        stride,
                        padding,
                    } => (kernel, stride, padding, false),
                    _ => unreachable!("lowering pairs pool steps with pool nodes"),
                };
                let pool = Pool {
                    input: tid(*input),
                    output: id,
                    window: Window::square(kernel as u8, stride as u8, 1, padding as u8),
                    clamp: clamp_of(py, *act),
                };
                describe(
                    QuantOpKind::Pool {
                        max,
                        input: *input,
                        window: pool.window,
                    },
                    *act,
                );
                let op = if max {
                    DevOp::MaxPool(pool)
                } else {
                    DevOp::AvgPool(pool)
                };
                b.push(&op).map_err(layer_err)?;
            }
            Step::GlobalAvgPool { input, act, .. } => {
                describe(QuantOpKind::GlobalAvgPool { input: *input }, *act);
                b.push(&DevOp::GlobalAvgPool(GlobalAvgPool {
                    input: tid(*input),
                    output: id,
                    clamp: clamp_of(py, *act),
                }))
                .map_err(layer_err)?;
            }
            Step::Add { inputs, act, .. } => {
                describe(QuantOpKind::Add { inputs: *inputs }, *act);
                let p = AddParams::new(
                    acts[inputs[0]].scale,
                    acts[inputs[1]].scale,
                    py.scale,
                    rounding,
                );
                let input = |k: usize| AddInput {
                    tensor: tid(inputs[k]),
                    multiplier: p.inputs[k].0,
                    shift: p.inputs[k].1,
                };
                b.push(&DevOp::Add(Add {
                    inputs: [input(0), input(1)],
                    output: id,
                    left_shift: p.left_shift,
                    output_multiplier: p.output.0,
                    output_shift: p.output.1,
                    clamp: clamp_of(py, *act),
                }))
                .map_err(layer_err)?;
            }
            Step::Concat { inputs, act, .. } => {
                if inputs.len() > MAX_CONCAT_INPUTS {
                    return Err(ExportError::ConcatInputs {
                        node: name_of(step),
                        inputs: inputs.len(),
                    });
                }
                describe(
                    QuantOpKind::Concat {
                        inputs: inputs.clone(),
                    },
                    *act,
                );
                let mut list = heapless::Vec::new();
                for &t in inputs {
                    let (multiplier, shift) = concat_multiplier(acts[t].scale, py.scale, rounding);
                    let _ = list.push(ConcatInput {
                        tensor: tid(t),
                        multiplier,
                        shift,
                    });
                }
                b.push(&DevOp::Concat(Concat {
                    inputs: list,
                    output: id,
                    clamp: clamp_of(py, *act),
                }))
                .map_err(layer_err)?;
            }
            Step::Linear {
                node, input, act, ..
            } => {
                let Op::Linear { cout, .. } = net.nodes[*node].op else {
                    unreachable!("lowering pairs linear steps with linear nodes")
                };
                let LayerParams::Linear { weight, bias } = &params.layers[*node] else {
                    return Err(ExportError::Params(name_of(step)));
                };
                let shift = match bias {
                    Some(b) => host_values(b),
                    None => vec![0.0; cout],
                };
                let wb = Weighted::new(
                    &host_values(weight),
                    &shift,
                    cout,
                    config,
                    config.layer_precision(net, *node).weight_bits,
                    acts[*input].scale,
                    py.scale,
                    rounding,
                    <[i8]>::to_vec,
                )?;
                let cin = wb.ordered.len() / cout.max(1);
                describe(
                    QuantOpKind::Linear {
                        input: *input,
                        weights: wb.described(vec![cout, cin]),
                    },
                    *act,
                );
                b.push(&DevOp::Linear(Linear {
                    input: tid(*input),
                    output: id,
                    weights: wb.weights(),
                    bias: wb.bias(),
                    requant: wb.requant(),
                    clamp: clamp_of(py, *act),
                }))
                .map_err(layer_err)?;
            }
        }
    }
    let out = lowered.output;
    let blob = b.finish(out as u16, acts[out].scale).map_err(|e| match e {
        BuildError::Invalid(shared_format::FormatError::Op { index, .. })
            if (index as usize) < lowered.steps.len() =>
        {
            ExportError::Layer {
                node: name_of(&lowered.steps[index as usize]),
                op: index as usize,
                source: e,
            }
        }
        e => ExportError::Build(e),
    })?;
    Ok((blob, graph))
}
