//! The ops of format 1.x, in the order the runtime executes them.
//!
//! Every op names its input and output tensors by id; shapes, zero points and arena offsets come
//! from the tensor table. Integer quantization parameters (multipliers, shifts, clamps) are
//! computed once on the host (EDGE_ANCHORS §3.2) and stored: the device never derives them.
//!
//! Conv and linear keep each output channel's filter contiguous (conv OHWI, linear O·I) so a
//! kernel can unpack one channel's sub-byte filter into a small scratch at a time. Depthwise
//! uses TFLite's 1HWC (`[kh][kw][c]`, channel fastest) so that, on NHWC activations, one tap of a
//! run of channels is contiguous in both the weights and the input; its kernel unpacks a tile of
//! channels at a time (see `plan::scratch_bytes`).

use serde::{Deserialize, Serialize};

use crate::le::LeI32s;
use crate::tensor::TensorId;

mod hard_swish;
mod logistic;
mod mean;
mod mul;
mod table;
pub use hard_swish::{HardSwish, down_scale_int32_to_int16_multiplier};
pub use logistic::Logistic;
pub use mean::{MAX_MEAN_CELLS, Mean};
pub use mul::{MAX_MUL_SHIFT, Mul};
#[cfg(feature = "std")]
pub use table::table_of;
pub use table::{TABLE_LEN, Table};

/// Most inputs a [`Concat`] may have.
pub const MAX_CONCAT_INPUTS: usize = 8;

/// One op. New kinds may only be appended (postcard encodes the variant index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op<'a> {
    /// Regular convolution (groups = 1).
    Conv2d(#[serde(borrow)] Conv2d<'a>),
    /// Depthwise convolution (groups = channels, multiplier 1).
    DepthwiseConv2d(#[serde(borrow)] DepthwiseConv2d<'a>),
    /// Max pooling.
    MaxPool(Pool),
    /// Average pooling; padded cells are excluded from the count (TFLM).
    AvgPool(Pool),
    /// Average over all rows and columns, to 1×1×C.
    GlobalAvgPool(GlobalAvgPool),
    /// Elementwise addition with requantization of each input (TFLM Add).
    Add(Add),
    /// Channel concatenation with requantization of each input.
    Concat(Concat),
    /// Fully connected layer over the flattened (HWC) input.
    Linear(#[serde(borrow)] Linear<'a>),
    /// Softmax over the channels of each position (format 1.2).
    Softmax(Softmax),
    /// Mean over rows and columns with requantization, TFLite's MEAN (format 1.3).
    Mean(Mean),
    /// Elementwise multiplication with broadcasting, TFLite's int8 MUL (format 1.4).
    Mul(Mul),
    /// The sigmoid, TFLite's int8 LOGISTIC (format 1.4).
    Logistic(Logistic),
    /// Hard swish, TFLite's int8 HARD_SWISH (format 1.4).
    HardSwish(HardSwish),
    /// An elementwise function given by its 256 values (format 1.5): what the host makes of
    /// TFLite's int8 → int8 QUANTIZE and of MUL or ADD by one constant.
    Table(#[serde(borrow)] Table<'a>),
}

/// The op kind alone, for messages, reports and profiling hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// [`Op::Conv2d`].
    Conv2d,
    /// [`Op::DepthwiseConv2d`].
    DepthwiseConv2d,
    /// [`Op::MaxPool`].
    MaxPool,
    /// [`Op::AvgPool`].
    AvgPool,
    /// [`Op::GlobalAvgPool`].
    GlobalAvgPool,
    /// [`Op::Add`].
    Add,
    /// [`Op::Concat`].
    Concat,
    /// [`Op::Linear`].
    Linear,
    /// [`Op::Softmax`].
    Softmax,
    /// [`Op::Mean`].
    Mean,
    /// [`Op::Mul`].
    Mul,
    /// [`Op::Logistic`].
    Logistic,
    /// [`Op::HardSwish`].
    HardSwish,
    /// [`Op::Table`].
    Table,
}

impl OpKind {
    /// Short name, as in reports.
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::Conv2d => "conv2d",
            OpKind::DepthwiseConv2d => "depthwise_conv2d",
            OpKind::MaxPool => "max_pool",
            OpKind::AvgPool => "avg_pool",
            OpKind::GlobalAvgPool => "global_avg_pool",
            OpKind::Add => "add",
            OpKind::Concat => "concat",
            OpKind::Linear => "linear",
            OpKind::Softmax => "softmax",
            OpKind::Mean => "mean",
            OpKind::Mul => "mul",
            OpKind::Logistic => "logistic",
            OpKind::HardSwish => "hard_swish",
            OpKind::Table => "table",
        }
    }
}

impl core::fmt::Display for OpKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Padding in rows/columns added before and after the input; padded cells count as the input's
/// zero point (TFLM skips them, which is the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Padding {
    /// Rows above.
    pub top: u8,
    /// Columns left.
    pub left: u8,
    /// Rows below.
    pub bottom: u8,
    /// Columns right.
    pub right: u8,
}

/// Sliding-window geometry shared by convolutions and pools. Explicit per-side padding expresses
/// both PyTorch's symmetric padding and TFLite's SAME (extra cell at the end) exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Kernel height.
    pub kernel_h: u8,
    /// Kernel width.
    pub kernel_w: u8,
    /// Vertical stride.
    pub stride_h: u8,
    /// Horizontal stride.
    pub stride_w: u8,
    /// Vertical dilation.
    pub dilation_h: u8,
    /// Horizontal dilation.
    pub dilation_w: u8,
    /// Padding.
    pub padding: Padding,
}

impl Window {
    /// A square window with symmetric padding.
    pub const fn square(kernel: u8, stride: u8, dilation: u8, pad: u8) -> Self {
        Self {
            kernel_h: kernel,
            kernel_w: kernel,
            stride_h: stride,
            stride_w: stride,
            dilation_h: dilation,
            dilation_w: dilation,
            padding: Padding {
                top: pad,
                left: pad,
                bottom: pad,
                right: pad,
            },
        }
    }

    /// Output length along one axis, or `None` if the window does not fit.
    pub const fn output_len(
        input: u32,
        kernel: u8,
        stride: u8,
        dilation: u8,
        pad_before: u8,
        pad_after: u8,
    ) -> Option<u32> {
        let effective = (kernel as u32 - 1) * dilation as u32 + 1;
        let padded = input + pad_before as u32 + pad_after as u32;
        if stride == 0 || padded < effective {
            return None;
        }
        Some((padded - effective) / stride as u32 + 1)
    }

    /// Output height for an input of `h` rows.
    pub const fn output_h(&self, h: u32) -> Option<u32> {
        Self::output_len(
            h,
            self.kernel_h,
            self.stride_h,
            self.dilation_h,
            self.padding.top,
            self.padding.bottom,
        )
    }

    /// Output width for an input of `w` columns.
    pub const fn output_w(&self, w: u32) -> Option<u32> {
        Self::output_len(
            w,
            self.kernel_w,
            self.stride_w,
            self.dilation_w,
            self.padding.left,
            self.padding.right,
        )
    }
}

/// The output clamp: ReLU, ReLU6 and the activation bit-width folded into two integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clamp {
    /// Lowest output value.
    pub min: i8,
    /// Highest output value.
    pub max: i8,
}

/// How weights are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightScheme {
    /// One scale and one zero point per tensor: the paper's scheme. The kernel handles the zero
    /// point as `Σ w·(x−z_x) − z_w·Σ(x−z_x)` rather than widening the stored weights.
    PerTensorAffine,
    /// One scale per output channel, zero point 0: TFLite's int8 practice.
    PerChannelSymmetric,
}

/// Packed weights (EDGE_ANCHORS §3.6: 4-bit low nibble first, 2-bit LSB first, two's complement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights<'a> {
    /// Storage bit-width: 2, 4 or 8.
    pub bits: u8,
    /// Quantization scheme.
    pub scheme: WeightScheme,
    /// Weight zero point (0 for symmetric).
    pub zero_point: i8,
    /// Packed values, each output channel's filter contiguous.
    #[serde(borrow)]
    pub data: &'a [u8],
}

/// Per-tensor (one entry) or per-channel (one per output channel) requantization: `M ≈ m·2^(e−31)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requant<'a> {
    /// Q31 multipliers `m` in [2^30, 2^31 − 1] (or 0).
    #[serde(borrow)]
    pub multipliers: LeI32s<'a>,
    /// Shifts `e` as i8 (positive = left).
    #[serde(borrow)]
    pub shifts: &'a [u8],
}

impl Requant<'_> {
    /// Multiplier and shift for output channel `c` (per-tensor tables repeat their one entry).
    #[inline]
    pub fn get(&self, c: usize) -> Option<(i32, i32)> {
        let i = if self.shifts.len() == 1 { 0 } else { c };
        Some((self.multipliers.get(i)?, *self.shifts.get(i)? as i8 as i32))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.shifts.len()
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.shifts.is_empty()
    }
}

/// Regular 2-D convolution, weights `[cout][kh][kw][cin]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv2d<'a> {
    /// Input activation.
    pub input: TensorId,
    /// Output activation.
    pub output: TensorId,
    /// Geometry.
    pub window: Window,
    /// Packed weights.
    #[serde(borrow)]
    pub weights: Weights<'a>,
    /// i32 bias per output channel at scale s_x·s_w.
    #[serde(borrow)]
    pub bias: LeI32s<'a>,
    /// Requantization to the output scale.
    #[serde(borrow)]
    pub requant: Requant<'a>,
    /// Output clamp.
    pub clamp: Clamp,
}

/// Depthwise convolution (one filter per channel, depth multiplier 1), weights `[kh][kw][c]`
/// (TFLite's 1HWC: the channel index is fastest, so weight `(ky, kx)` of channel `c` is element
/// `(ky·kw + kx)·C + c`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthwiseConv2d<'a> {
    /// Input activation.
    pub input: TensorId,
    /// Output activation.
    pub output: TensorId,
    /// Geometry.
    pub window: Window,
    /// Packed weights.
    #[serde(borrow)]
    pub weights: Weights<'a>,
    /// i32 bias per channel.
    #[serde(borrow)]
    pub bias: LeI32s<'a>,
    /// Requantization to the output scale.
    #[serde(borrow)]
    pub requant: Requant<'a>,
    /// Output clamp.
    pub clamp: Clamp,
}

/// Max or average pooling; input and output share scale and zero point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Input activation.
    pub input: TensorId,
    /// Output activation.
    pub output: TensorId,
    /// Geometry (dilation must be 1).
    pub window: Window,
    /// Output clamp.
    pub clamp: Clamp,
}

/// Global average pooling to 1×1×C; input and output share scale and zero point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalAvgPool {
    /// Input activation.
    pub input: TensorId,
    /// Output activation.
    pub output: TensorId,
    /// Output clamp.
    pub clamp: Clamp,
}

/// One input of an [`Add`]: `MBQM((x − z)·2^left_shift, multiplier, shift)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddInput {
    /// Input activation.
    pub tensor: TensorId,
    /// Q31 multiplier.
    pub multiplier: i32,
    /// Shift (≤ 0: TFLM's input multipliers are below one).
    pub shift: i8,
}

/// Elementwise addition, TFLM's integer Add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Add {
    /// The two inputs.
    pub inputs: [AddInput; 2],
    /// Output activation.
    pub output: TensorId,
    /// Left shift applied to each centred input (TFLM: 20 for int8).
    pub left_shift: u8,
    /// Output Q31 multiplier.
    pub output_multiplier: i32,
    /// Output shift.
    pub output_shift: i8,
    /// Output clamp.
    pub clamp: Clamp,
}

/// One input of a [`Concat`]: requantized as `MBQM(x − z, multiplier, shift) + z_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcatInput {
    /// Input activation.
    pub tensor: TensorId,
    /// Q31 multiplier of s_in / s_out.
    pub multiplier: i32,
    /// Shift.
    pub shift: i8,
}

/// Channel concatenation (NHWC axis 3) with requantization of each input to the output scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concat {
    /// Inputs in channel order.
    pub inputs: heapless::Vec<ConcatInput, MAX_CONCAT_INPUTS>,
    /// Output activation.
    pub output: TensorId,
    /// Output clamp.
    pub clamp: Clamp,
}

/// Fully connected layer over the flattened input, weights `[cout][cin]`; output is 1×1×cout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linear<'a> {
    /// Input activation (any shape; flattened in HWC order).
    pub input: TensorId,
    /// Output activation.
    pub output: TensorId,
    /// Packed weights.
    #[serde(borrow)]
    pub weights: Weights<'a>,
    /// i32 bias per output.
    #[serde(borrow)]
    pub bias: LeI32s<'a>,
    /// Requantization to the output scale.
    #[serde(borrow)]
    pub requant: Requant<'a>,
    /// Output clamp.
    pub clamp: Clamp,
}

/// Softmax over the channels of each position, TFLM's int8→int8 kernel (`reference_ops::Softmax`
/// with gemmlowp fixed point): output scale 1/256, zero point −128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Softmax {
    /// Input activation (the logits). Its zero point cancels in `x − max`, so only its scale
    /// matters, and that is folded into `input_multiplier`.
    pub input: TensorId,
    /// Output activation: the input's shape, 8-bit, zero point −128.
    pub output: TensorId,
    /// TFLM's `input_multiplier` (Q31, from PreprocessSoftmaxScaling with 5 integer bits).
    pub input_multiplier: i32,
    /// TFLM's `input_left_shift` (≥ 0).
    pub input_left_shift: i8,
    /// TFLM's `diff_min` (≤ 0): differences below it give exp = 0.
    pub diff_min: i32,
}

/// Most channels a [`Softmax`] may normalise over. Each channel adds at most 2^19 (1.0) to TFLM's
/// Q12.19 sum of exponentials, so 4,095 channels cannot overflow it; TFLM leaves that overflow
/// undefined, and the format refuses what it cannot define.
pub const MAX_SOFTMAX_CHANNELS: u16 = 4095;

impl Softmax {
    /// Integer bits of the scaled differences fed to `exp` (TFLM's `kScaledDiffIntegerBits`).
    pub const SCALED_DIFF_INTEGER_BITS: u32 = 5;

    /// TFLM's `CalculateInputRadius(5, input_left_shift)`: the largest `|x − max|` whose
    /// `|x − max| · 2^input_left_shift` still fits in i32 (`floor(31 · 2^26 / 2^shift)`, exact in
    /// integers). `−radius` is the `diff_min` TFLM computes, and the most negative one the format
    /// accepts, since a larger difference would overflow the rescaling multiply. 0 for shifts
    /// outside `0..=31`.
    pub const fn input_radius(input_left_shift: i8) -> i32 {
        if input_left_shift < 0 || input_left_shift > 31 {
            return 0;
        }
        let limit =
            ((1i64 << Self::SCALED_DIFF_INTEGER_BITS) - 1) << (31 - Self::SCALED_DIFF_INTEGER_BITS);
        (limit >> input_left_shift) as i32
    }

    /// The op TFLM's `CalculateSoftmaxParams` would set up for an int8 input of real scale
    /// `input_scale` and the op's `beta` (both float32 in a .tflite file, widened to double as
    /// TFLM does): `PreprocessSoftmaxScaling(beta, input_scale, 5)` gives the multiplier and left
    /// shift, `−CalculateInputRadius(5, shift)` the `diff_min`.
    ///
    /// `rounding` matters because a `TFLITE_SINGLE_ROUNDING` build caps the real multiplier at
    /// 2^30 − 1 instead of 2^31 − 1 (its multiply cannot shift left by 31). `None` where TFLM's
    /// `QuantizeMultiplierGreaterThanOne` would abort: `beta · input_scale · 2^26 ≤ 1`, or a
    /// value that is not finite.
    #[cfg(feature = "std")]
    pub fn from_scale(
        input: TensorId,
        output: TensorId,
        beta: f32,
        input_scale: f32,
        rounding: crate::header::Rounding,
    ) -> Option<Self> {
        let cap = match rounding {
            crate::header::Rounding::Double => ((1u64 << 31) - 1) as f64,
            crate::header::Rounding::Single => ((1u64 << 30) - 1) as f64,
        };
        let scaled = (1u64 << (31 - Self::SCALED_DIFF_INTEGER_BITS)) as f64;
        let real = beta as f64 * input_scale as f64 * scaled;
        // `is_finite` first: it also refuses NaN, which compares false with anything.
        if !real.is_finite() || real <= 1.0 {
            return None;
        }
        let real = real.min(cap);
        let (q, mut e) = crate::multiplier::frexp(real);
        // `f64::round` is half away from zero, like TfLiteRound.
        let mut m = (q * (1u64 << 31) as f64).round() as i64;
        if m == 1 << 31 {
            m = 1 << 30;
            e += 1;
        }
        let shift = e as i8;
        Some(Self {
            input,
            output,
            input_multiplier: m as i32,
            input_left_shift: shift,
            diff_min: -Self::input_radius(shift),
        })
    }
}

/// Iterates over an op's input tensor ids (at most [`MAX_CONCAT_INPUTS`]).
pub type Inputs = heapless::Vec<TensorId, MAX_CONCAT_INPUTS>;

impl Op<'_> {
    /// The kind, for messages.
    pub const fn kind(&self) -> OpKind {
        match self {
            Op::Conv2d(_) => OpKind::Conv2d,
            Op::DepthwiseConv2d(_) => OpKind::DepthwiseConv2d,
            Op::MaxPool(_) => OpKind::MaxPool,
            Op::AvgPool(_) => OpKind::AvgPool,
            Op::GlobalAvgPool(_) => OpKind::GlobalAvgPool,
            Op::Add(_) => OpKind::Add,
            Op::Concat(_) => OpKind::Concat,
            Op::Linear(_) => OpKind::Linear,
            Op::Softmax(_) => OpKind::Softmax,
            Op::Mean(_) => OpKind::Mean,
            Op::Mul(_) => OpKind::Mul,
            Op::Logistic(_) => OpKind::Logistic,
            Op::HardSwish(_) => OpKind::HardSwish,
            Op::Table(_) => OpKind::Table,
        }
    }

    /// The lowest minor format version that has this op (see [`crate::FORMAT_MINOR`]).
    pub const fn min_minor(&self) -> u16 {
        match self {
            Op::Table(_) => 5,
            Op::Mul(_) | Op::Logistic(_) | Op::HardSwish(_) => 4,
            Op::Mean(_) => 3,
            Op::Softmax(_) => 2,
            Op::Conv2d(Conv2d { window, .. })
            | Op::DepthwiseConv2d(DepthwiseConv2d { window, .. })
                if window.kernel_h > 7 || window.kernel_w > 7 =>
            {
                2
            }
            Op::MaxPool(p) | Op::AvgPool(p) if p.window.kernel_h == 1 || p.window.kernel_w == 1 => {
                1
            }
            _ => 0,
        }
    }

    /// The tensor this op writes.
    pub const fn output(&self) -> TensorId {
        match self {
            Op::Conv2d(o) => o.output,
            Op::DepthwiseConv2d(o) => o.output,
            Op::MaxPool(o) | Op::AvgPool(o) => o.output,
            Op::GlobalAvgPool(o) => o.output,
            Op::Add(o) => o.output,
            Op::Concat(o) => o.output,
            Op::Linear(o) => o.output,
            Op::Softmax(o) => o.output,
            Op::Mean(o) => o.output,
            Op::Mul(o) => o.output,
            Op::Logistic(o) => o.output,
            Op::HardSwish(o) => o.output,
            Op::Table(o) => o.output,
        }
    }

    /// The tensors this op reads.
    pub fn inputs(&self) -> Inputs {
        let mut v = Inputs::new();
        match self {
            Op::Conv2d(o) => v.push(o.input).ok(),
            Op::DepthwiseConv2d(o) => v.push(o.input).ok(),
            Op::MaxPool(o) | Op::AvgPool(o) => v.push(o.input).ok(),
            Op::GlobalAvgPool(o) => v.push(o.input).ok(),
            Op::Add(o) => v
                .extend_from_slice(&[o.inputs[0].tensor, o.inputs[1].tensor])
                .ok(),
            Op::Concat(o) => {
                for i in &o.inputs {
                    let _ = v.push(i.tensor);
                }
                Some(())
            }
            Op::Linear(o) => v.push(o.input).ok(),
            Op::Softmax(o) => v.push(o.input).ok(),
            Op::Mean(o) => v.push(o.input).ok(),
            Op::Mul(o) => v.extend_from_slice(&o.inputs).ok(),
            Op::Logistic(o) => v.push(o.input).ok(),
            Op::HardSwish(o) => v.push(o.input).ok(),
            Op::Table(o) => v.push(o.input).ok(),
        };
        v
    }

    /// The packed weights, for ops that have them.
    pub const fn weights(&self) -> Option<&Weights<'_>> {
        match self {
            Op::Conv2d(o) => Some(&o.weights),
            Op::DepthwiseConv2d(o) => Some(&o.weights),
            Op::Linear(o) => Some(&o.weights),
            _ => None,
        }
    }

    /// The output clamp. Softmax, Mean, Logistic, HardSwish and Table have none of their own:
    /// softmax's and logistic's output quantization is fixed (scale 1/256, zero point −128),
    /// TFLite's MEAN and HARD_SWISH take no fused activation, and a table's values already hold
    /// any clamp; they report the full 8-bit range.
    pub const fn clamp(&self) -> Clamp {
        match self {
            Op::Conv2d(o) => o.clamp,
            Op::DepthwiseConv2d(o) => o.clamp,
            Op::MaxPool(o) | Op::AvgPool(o) => o.clamp,
            Op::GlobalAvgPool(o) => o.clamp,
            Op::Add(o) => o.clamp,
            Op::Concat(o) => o.clamp,
            Op::Linear(o) => o.clamp,
            Op::Mul(o) => o.clamp,
            Op::Softmax(_) | Op::Mean(_) | Op::Logistic(_) | Op::HardSwish(_) | Op::Table(_) => {
                Clamp {
                    min: i8::MIN,
                    max: i8::MAX,
                }
            }
        }
    }
}
