//! Blob ops → TFLite tensors and ops: padding forms, requantized concat inputs, reshapes,
//! and the refusals.

use super::*;
use crate::params::{activation_range, axis_padding};
use crate::schema::{ActivationFunctionType, BuiltinOperator, Padding, TensorType};
use ghnq_export::graph::{QuantGraph, QuantOp, QuantOpKind, QuantTensor, QuantWeights};
use ghnq_quant::lower::Activation;
use shared_format::{Rounding, WeightScheme, Window};

/// Why one blob op has no TFLite form; [`plan`] adds the op's index, name and kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(super) enum PlanError {
    /// A clamp no fused activation gives at the output's quantization.
    #[error(
        "its output clamp [{min}, {max}] is not one a TFLite fused activation gives at scale \
         {scale} and zero point {zero_point} ({})",
        show_ranges(.ranges)
    )]
    Clamp {
        /// The op's clamp, low end.
        min: i8,
        /// The op's clamp, high end.
        max: i8,
        /// Output scale.
        scale: f32,
        /// Output zero point.
        zero_point: i8,
        /// The clamp each fused activation gives there.
        ranges: Vec<(ActivationFunctionType, i8, i8)>,
    },
    /// Per-tensor affine weights with a non-zero zero point.
    #[error(
        "its weights are {scheme:?} with zero point {zero_point}; TFLite's int8 weights are \
         symmetric: export with --per-channel"
    )]
    AsymmetricWeights {
        /// The weights' scheme.
        scheme: WeightScheme,
        /// Their zero point.
        zero_point: i8,
    },
    /// Weights wider than int8.
    #[error("its weights have {bits} bits")]
    WeightBits {
        /// Their bit-width.
        bits: u8,
    },
    /// A dilated pool.
    #[error("TFLite pools have no dilation")]
    PoolDilation,
    /// Pool padding neither SAME, VALID, nor SAME at stride 1 reaches.
    #[error(
        "a {}x{} pool with stride {}x{} and padding (top {}, left {}, bottom {}, right {}) on a \
         {h}x{w} input has no TFLite form: TFLite pools pad SAME (the odd cell after) or VALID, \
         the same pool at stride 1 is not SAME either, and a PAD cannot stand in (max pool skips \
         padded cells, average pool leaves them out of its count)",
        .window.kernel_h,
        .window.kernel_w,
        .window.stride_h,
        .window.stride_w,
        .window.padding.top,
        .window.padding.left,
        .window.padding.bottom,
        .window.padding.right
    )]
    PoolPadding {
        /// The pool's window.
        window: Window,
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
    },
    /// A clamped mean (TFLite's MEAN has no fused activation).
    #[error(
        "its output clamp [{min}, {max}] is narrower than int8's; TFLite's MEAN takes no fused \
         activation"
    )]
    MeanClamp {
        /// The op's clamp, low end.
        min: i8,
        /// The op's clamp, high end.
        max: i8,
    },
}

/// `NONE [-128, 127], RELU [z, 127], ...`
fn show_ranges(ranges: &[(ActivationFunctionType, i8, i8)]) -> String {
    ranges
        .iter()
        .map(|(f, lo, hi)| format!("{} [{lo}, {hi}]", f.variant_name().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A SAME or VALID padding that gives `window` exactly on an `h × w` input: the same output
/// size and the same first window position (so the same windows; cells a window would read
/// beyond the padded input are never read).
pub(super) fn expressible(window: &Window, h: usize, w: usize) -> Option<Padding> {
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

pub(super) fn activation_name(act: Activation) -> ActivationFunctionType {
    match act {
        Activation::Linear => ActivationFunctionType::NONE,
        Activation::Relu { six: false } => ActivationFunctionType::RELU,
        Activation::Relu { six: true } => ActivationFunctionType::RELU6,
    }
}

/// Builds the file's tensors and ops from the graph, refusing what TFLite cannot express.
pub(super) struct Planner<'g> {
    pub(super) graph: &'g QuantGraph,
    pub(super) requantize: Requantize,
    pub(super) model: TfModel,
    /// Blob tensor id → file tensor index.
    pub(super) activation: Vec<i32>,
}

pub(super) fn plan(
    graph: &QuantGraph,
    requantize: Requantize,
) -> Result<TfModel, TfliteExportError> {
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
        p.op(op).map_err(|e| TfliteExportError::Op {
            index,
            name: op.name.clone(),
            kind: op.kind_name(),
            what: e.to_string(),
        })?;
    }
    Ok(p.model)
}

pub(super) fn activation_tensor(name: &str, shape: Vec<i32>, t: &QuantTensor) -> TfTensor {
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

pub(super) fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Planner<'_> {
    pub(super) fn tensor(&self, t: usize) -> &QuantTensor {
        &self.graph.tensors[t]
    }

    /// The fused activation whose TFLM clamp is `op`'s clamp (the op's own activation first).
    pub(super) fn fused(&self, op: &QuantOp) -> Result<ActivationFunctionType, PlanError> {
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
        let ranges = candidates[1..]
            .iter()
            .map(|&f| {
                let (lo, hi) = activation_range(f, y.scale, y.zero_point).unwrap_or((0, 0));
                (f, lo, hi)
            })
            .collect();
        Err(PlanError::Clamp {
            min: want.0,
            max: want.1,
            scale: y.scale,
            zero_point: y.zero_point,
            ranges,
        })
    }

    /// A new activation tensor quantized like blob tensor `like`.
    pub(super) fn intermediate(&mut self, name: String, shape: Vec<i32>, like: usize) -> i32 {
        let t = activation_tensor(&name, shape, &self.graph.tensors[like]);
        self.model.push_tensor(t)
    }

    pub(super) fn push(
        &mut self,
        code: BuiltinOperator,
        inputs: Vec<i32>,
        output: i32,
        options: TfOptions,
    ) {
        self.model.ops.push(TfOp {
            code,
            inputs,
            outputs: vec![output],
            options,
        });
    }

    /// Weight and bias tensors of a weighted op reading `input` (for the bias scales).
    pub(super) fn weight_tensors(
        &mut self,
        op: &QuantOp,
        weights: &QuantWeights,
        input: usize,
        axis: i32,
    ) -> Result<(i32, i32), PlanError> {
        if weights.zero_point != 0 {
            return Err(PlanError::AsymmetricWeights {
                scheme: weights.scheme,
                zero_point: weights.zero_point,
            });
        }
        if weights.bits > 8 {
            return Err(PlanError::WeightBits { bits: weights.bits });
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

    pub(super) fn op(&mut self, op: &QuantOp) -> Result<(), PlanError> {
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
                    return Err(PlanError::PoolDilation);
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
                    return Err(PlanError::PoolPadding {
                        window: *window,
                        h,
                        w,
                    });
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
            QuantOpKind::Mean { input } => {
                let full = (i8::MIN, i8::MAX);
                if (op.clamp.min, op.clamp.max) != full {
                    return Err(PlanError::MeanClamp {
                        min: op.clamp.min,
                        max: op.clamp.max,
                    });
                }
                // TFLM recomputes the blob's folded multiplier from the two scales and the
                // input's H·W; keep_dims keeps the output [1, 1, 1, C], the blob's 1×1×C.
                let axes = self.model.push_tensor(TfTensor {
                    name: format!("{}/axes", op.name),
                    shape: vec![2],
                    ty: TensorType::INT32,
                    scales: Vec::new(),
                    zero_points: Vec::new(),
                    quantized_dimension: 0,
                    data: Some(i32_bytes(&[1, 2])),
                });
                let x = self.activation[*input];
                let options = TfOptions::Reducer { keep_dims: true };
                self.push(BuiltinOperator::MEAN, vec![x, axes], y, options);
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
    pub(super) fn requantize(
        &mut self,
        name: &str,
        k: usize,
        x: i32,
        channels: usize,
        s_in: f32,
        r: i32,
    ) {
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
