//! The exported model as the exporter saw it, before the blob encodes it as integers only: every
//! tensor's f32 scale and zero point, and every op's quantized weights, f32 weight scales and i32
//! bias. A format that stores float scales and lets its interpreter derive the multipliers (a
//! TFLite file: TFLM recomputes them at Prepare time) carries exactly these values, so its
//! interpreter derives exactly the blob's integers (EDGE_ANCHORS §3.2): see
//! `ghnq_tflite::export()`.
//!
//! Indices are the blob's: tensor `t` here is tensor `t` of the blob (0 is the input), op `k` is
//! the blob's op `k`.

use shared_format::{Clamp, Rounding, WeightScheme, Window};

use ghnq_quant::lower::Activation;

/// The exported model, described.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantGraph {
    /// The net's name.
    pub name: String,
    /// Requantization rounding the blob's integers were derived for.
    pub rounding: Rounding,
    /// Activation tensors by blob id; 0 is the model input.
    pub tensors: Vec<QuantTensor>,
    /// Ops in the blob's order.
    pub ops: Vec<QuantOp>,
    /// The logits tensor.
    pub output: usize,
}

/// One activation tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantTensor {
    /// The IR node whose value it holds ("input" for the image).
    pub name: String,
    /// `(h, w, c)`.
    pub shape: [usize; 3],
    /// Real value of one step.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i8,
    /// Activation bit-width.
    pub bits: u8,
}

/// Quantized weights of one op, in the layout TFLite stores them (which is also the blob's
/// before packing): conv `[cout, kh, kw, cin]`, depthwise `[1, kh, kw, c]`, linear
/// `[cout, cin]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantWeights {
    /// Dimensions of `values`.
    pub shape: Vec<usize>,
    /// One value per weight (sub-byte widths are not packed here).
    pub values: Vec<i8>,
    /// One scale per tensor, or one per output channel.
    pub scales: Vec<f32>,
    /// Weight zero point (0 for symmetric schemes).
    pub zero_point: i8,
    /// Bit-width the values were quantized to.
    pub bits: u8,
    /// Scheme.
    pub scheme: WeightScheme,
    /// i32 bias per output channel, at scale `s_x·s_w[c]`.
    pub bias: Vec<i32>,
}

impl QuantWeights {
    /// Scale of output channel `c`.
    pub fn scale(&self, c: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[c]
        }
    }
}

/// What an op computes.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantOpKind {
    /// Regular or depthwise (multiplier 1) convolution; a lone BatchNorm is a 1×1 depthwise one.
    Conv {
        /// Depthwise.
        depthwise: bool,
        /// Input tensor.
        input: usize,
        /// Geometry.
        window: Window,
        /// Weights and bias.
        weights: QuantWeights,
    },
    /// Max or average pool (padding excluded); a ReLU op is a 1×1 max pool with a clamp.
    Pool {
        /// Max (else average).
        max: bool,
        /// Input tensor (same scale and zero point as the output).
        input: usize,
        /// Geometry.
        window: Window,
    },
    /// Average over all rows and columns.
    GlobalAvgPool {
        /// Input tensor (same scale and zero point as the output).
        input: usize,
    },
    /// Elementwise sum with TFLM's requantization.
    Add {
        /// The two inputs.
        inputs: [usize; 2],
    },
    /// Channel concatenation, each input requantized to the output's scale and zero point.
    Concat {
        /// Inputs in channel order.
        inputs: Vec<usize>,
    },
    /// Mean over all rows and columns, requantized to the output's scale and zero point
    /// (TFLite's MEAN; no clamp of its own).
    Mean {
        /// Input tensor.
        input: usize,
    },
    /// Fully connected over the HWC-flattened input.
    Linear {
        /// Input tensor.
        input: usize,
        /// Weights `[cout, cin]` and bias.
        weights: QuantWeights,
    },
}

/// One op.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantOp {
    /// The IR node that names it in messages.
    pub name: String,
    /// What it computes.
    pub kind: QuantOpKind,
    /// Output tensor.
    pub output: usize,
    /// Fused activation the clamp came from.
    pub act: Activation,
    /// The blob's output clamp.
    pub clamp: Clamp,
}

impl QuantOp {
    /// The tensors the op reads.
    pub fn inputs(&self) -> Vec<usize> {
        match &self.kind {
            QuantOpKind::Conv { input, .. }
            | QuantOpKind::Pool { input, .. }
            | QuantOpKind::GlobalAvgPool { input }
            | QuantOpKind::Mean { input }
            | QuantOpKind::Linear { input, .. } => vec![*input],
            QuantOpKind::Add { inputs } => inputs.to_vec(),
            QuantOpKind::Concat { inputs } => inputs.clone(),
        }
    }

    /// Short kind name for messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            QuantOpKind::Conv {
                depthwise: false, ..
            } => "conv2d",
            QuantOpKind::Conv {
                depthwise: true, ..
            } => "depthwise_conv2d",
            QuantOpKind::Pool { max: true, .. } => "max_pool",
            QuantOpKind::Pool { max: false, .. } => "avg_pool",
            QuantOpKind::GlobalAvgPool { .. } => "global_avg_pool",
            QuantOpKind::Mean { .. } => "mean",
            QuantOpKind::Add { .. } => "add",
            QuantOpKind::Concat { .. } => "concat",
            QuantOpKind::Linear { .. } => "linear",
        }
    }
}
