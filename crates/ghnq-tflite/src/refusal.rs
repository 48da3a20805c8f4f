//! Why the importer refuses an op or a model input/output, as values a caller can match on.
//! [`crate::ImportError`] adds the op's index and name (or the tensor's role, index and name);
//! every message states what the runtime or format lacks, with the values that make it so.

use shared_format::op::MAX_CONCAT_INPUTS;
use shared_format::{Shape, TensorId};

use super::fold::FoldError;
use super::params::ParamError;

/// Why a tensor cannot be an activation the runtime holds, or a constant operand.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// A dimension that is not positive or does not fit the format's u16.
    #[error("shape {shape:?} has a dimension outside 1..=65535")]
    DimensionRange {
        /// The file's shape.
        shape: Vec<i32>,
    },
    /// A rank or batch the runtime's HWC tensors cannot hold.
    #[error("shape {shape:?} is not [1, H, W, C], [1, N] or [N] (batch 1 only)")]
    Layout {
        /// The file's shape.
        shape: Vec<i32>,
    },
    /// An activation of another type than int8.
    #[error("tensor '{name}' is {ty}; the runtime's activations are int8")]
    NotInt8 {
        /// Tensor name.
        name: String,
        /// Its type.
        ty: &'static str,
    },
    /// An activation zero point outside int8.
    #[error("tensor '{name}' has zero point {zero_point}, which is not an int8")]
    ZeroPoint {
        /// Tensor name.
        name: String,
        /// The file's zero point.
        zero_point: i64,
    },
    /// An activation without quantization parameters.
    #[error("tensor '{name}' is not quantized")]
    NotQuantized {
        /// Tensor name.
        name: String,
    },
    /// An activation with several scales, or one that is not positive and finite.
    #[error("tensor '{name}' has {count} scales; activations need one positive scale")]
    Scales {
        /// Tensor name.
        name: String,
        /// How many scales it has.
        count: usize,
    },
    /// A constant operand of the wrong type.
    #[error("{what} '{name}' are {ty}; {expected} is supported")]
    ConstantType {
        /// Its role ("weights", "bias", ...).
        what: &'static str,
        /// Tensor name.
        name: String,
        /// Its type.
        ty: &'static str,
        /// The type the op reads.
        expected: &'static str,
    },
    /// An operand that must be constant has no data.
    #[error("{what} '{name}' are not a constant tensor")]
    NotConstant {
        /// Its role ("weights", "bias", ...).
        what: &'static str,
        /// Tensor name.
        name: String,
    },
    /// A constant whose byte count does not match its element count.
    #[error("{what} '{name}' hold {bytes} bytes; {elements} values need {expected}")]
    ConstantSize {
        /// Its role ("weights", "bias", ...).
        what: &'static str,
        /// Tensor name.
        name: String,
        /// Bytes in the buffer.
        bytes: usize,
        /// Values the op reads.
        elements: usize,
        /// Bytes those values take.
        expected: usize,
    },
}

/// Why the model's input or output tensor cannot be the blob's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IoRefusal {
    /// The tensor is not an activation the runtime holds (shape, type or quantization).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A float32 model input read by anything but one QUANTIZE to int8.
    #[error(
        "is float32 and feeds something other than one QUANTIZE to int8 (only a float \
         interface around an int8 model is supported)"
    )]
    FloatInput,
    /// A float32 model output made by anything but a DEQUANTIZE from int8.
    #[error(
        "is float32 and not made by a DEQUANTIZE from int8 (only a float interface around an \
         int8 model is supported)"
    )]
    FloatOutput,
}

/// Scales from which TFLM's Prepare derives no parameters the blob can hold (or none at all).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScaleRefusal {
    /// SOFTMAX whose `beta · input scale` is below what TFLM's int8 kernel resolves.
    #[error("beta {beta} × input scale {input} is too small for TFLM's int8 softmax")]
    Softmax {
        /// The op's beta.
        beta: f32,
        /// Input scale.
        input: f32,
    },
    /// MUL (of two activations, or of one and a constant) whose multiplier shift is above 15.
    #[error(
        "input scales {a} × {b} / output scale {output} has no blob form: its shift is above \
         15, where TFLM's int32 product · 2^shift can overflow"
    )]
    Mul {
        /// First input's scale.
        a: f32,
        /// Second input's (or the constant's) scale.
        b: f32,
        /// Output scale.
        output: f32,
    },
    /// LOGISTIC whose input scale TFLM's Prepare cannot turn into a multiplier.
    #[error(
        "input scale {input} has no blob form: TFLM's Prepare would shift by a negative amount \
         (scale below 2^-28) or overflow its multiplier"
    )]
    Logistic {
        /// Input scale.
        input: f32,
    },
    /// HARD_SWISH whose scales give an output or reluish exponent TFLM refuses or leaves
    /// undefined.
    #[error(
        "input scale {input} and output scale {output} have no blob form: TFLM's Prepare \
         refuses an output multiplier of 2^8 · s_y / s_x or more (exponent above 0), and a \
         reluish exponent above 31 is undefined in its kernel"
    )]
    HardSwish {
        /// Input scale.
        input: f32,
        /// Output scale.
        output: f32,
    },
    /// MEAN whose folded `1/(H·W)` multiplier is zero or shifts outside [-31, 30].
    #[error(
        "input scale {input} / output scale {output} averaged over {h}x{w} positions has no \
         blob form: TFLM's folded multiplier is zero (its output would be the zero point \
         whatever the input) or its shift is outside [-31, 30]"
    )]
    Mean {
        /// Input scale.
        input: f32,
        /// Output scale.
        output: f32,
        /// Rows averaged.
        h: i32,
        /// Columns averaged.
        w: i32,
    },
    /// A mid-graph int8 → int8 QUANTIZE whose scale ratio is 2^30 or more.
    #[error(
        "input scale {input} / output scale {output} is 2^30 or more, which TFLM's \
         requantization cannot shift by"
    )]
    Requantize {
        /// Input scale.
        input: f32,
        /// Output scale.
        output: f32,
    },
    /// ADD of an activation and a constant whose operands TFLM's add kernel cannot prepare.
    #[error("the add kernel refused the table's operands")]
    AddTable,
}

/// Why one op could not be mapped onto the runtime's; [`crate::ImportError::Op`] adds the op's
/// index and name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpRefusal {
    /// An activation or constant operand the runtime cannot hold.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A fused activation or window geometry without a TFLM equivalent.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A slice spec or reshape shape that cannot be resolved.
    #[error(transparent)]
    Fold(#[from] FoldError),
    /// Scales the op's kernel cannot be prepared from.
    #[error(transparent)]
    NoBlobForm(#[from] ScaleRefusal),
    /// An op type the runtime has no kernel for.
    #[error(
        "the runtime has no such op (it imports CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, \
         ADD, MUL, AVERAGE_POOL_2D, MAX_POOL_2D, CONCATENATION, SOFTMAX, MEAN, LOGISTIC, \
         HARD_SWISH, RELU, RELU6, int8 QUANTIZE, RESHAPE, SQUEEZE, PAD and static int32 shape \
         arithmetic)"
    )]
    NoSuchOp,
    /// An op without the builtin options its mapping reads.
    #[error("{op} without its options")]
    MissingOptions {
        /// TFLite builtin name ("pooling" for both pools).
        op: &'static str,
    },
    /// The op lacks an input it needs.
    #[error("input {k} is missing")]
    MissingInput {
        /// Input position.
        k: usize,
    },
    /// An input that no earlier op produced.
    #[error(
        "input {k} (tensor {tensor} '{name}') is not an activation an earlier op produced \
         (constant activations are not supported)"
    )]
    NotProduced {
        /// Input position.
        k: usize,
        /// Tensor index.
        tensor: i32,
        /// Tensor name.
        name: String,
    },
    /// The op lists no output tensor.
    #[error("the op has no output")]
    NoOutput,
    /// The op has several outputs; the runtime's ops have one.
    #[error("{n} outputs; one is supported")]
    Outputs {
        /// How many outputs it lists.
        n: usize,
    },
    /// An op other than a convolution reads a PAD's output.
    #[error("its input comes from a PAD, which only CONV_2D and DEPTHWISE_CONV_2D can absorb")]
    PadNotAbsorbed,
    /// A blob tensor the builder has not declared (a bug of this crate, not of the file).
    #[error("blob tensor {id} is not declared")]
    Undeclared {
        /// The blob tensor.
        id: TensorId,
    },
    /// Weights with a nonzero zero point (TFLite's int8 weights are symmetric).
    #[error(
        "weights '{name}' have zero point {zero_point}; TFLite's int8 weights are symmetric (0)"
    )]
    WeightZeroPoint {
        /// Tensor name.
        name: String,
        /// The first nonzero zero point.
        zero_point: i64,
    },
    /// Weights quantized neither per tensor nor per output channel.
    #[error(
        "weights '{name}' have {count} scales along axis {axis}; expected 1 or {channels} along \
         axis {expected_axis}"
    )]
    WeightScaleCount {
        /// Tensor name.
        name: String,
        /// How many scales they have.
        count: usize,
        /// Their quantized dimension.
        axis: i32,
        /// Output channels.
        channels: usize,
        /// The output-channel axis.
        expected_axis: i32,
    },
    /// A weight scale that is not positive and finite.
    #[error("weights '{name}' have scale {scale}")]
    WeightScale {
        /// Tensor name.
        name: String,
        /// The offending scale.
        scale: f32,
    },
    /// Weights of another rank than the op reads (4 for convolutions, 2 for FULLY_CONNECTED).
    #[error("weights of shape {shape:?} are not {rank}-D")]
    WeightRank {
        /// The weights' shape.
        shape: Vec<i32>,
        /// The rank the op needs.
        rank: usize,
    },
    /// DEPTHWISE_CONV_2D with a depth multiplier above 1.
    #[error("depth multiplier {multiplier} (the runtime's depthwise convolution has multiplier 1)")]
    DepthMultiplier {
        /// The option's value.
        multiplier: i32,
    },
    /// Depthwise weights that are not `[1, kh, kw, C]` for the input's C channels.
    #[error("depthwise weights {shape:?} do not match {channels} input channels with multiplier 1")]
    DepthwiseWeights {
        /// The weights' shape.
        shape: Vec<i32>,
        /// Input channels.
        channels: i32,
    },
    /// CONV_2D weights for another channel count than the input's (grouped convolution).
    #[error(
        "weights expect {weights} input channels but the input has {input} (grouped \
         convolution is not supported)"
    )]
    InputChannels {
        /// Channels the weights read.
        weights: i32,
        /// Channels of the input.
        input: i32,
    },
    /// FULLY_CONNECTED weights for another input length than the input's.
    #[error("weights take {weights} inputs but the input has {elements} elements")]
    InputLength {
        /// Inputs the weights read.
        weights: i32,
        /// Elements of the input.
        elements: usize,
    },
    /// FULLY_CONNECTED with shuffled weights.
    #[error("shuffled weights are not supported")]
    ShuffledWeights,
    /// A window value (kernel, stride, dilation, padding) the format's u8 cannot hold.
    #[error("{what} {value} is outside 0..=255")]
    WindowRange {
        /// Which value ("kernel height", "stride", "pool geometry value", ...).
        what: &'static str,
        /// The value.
        value: i32,
    },
    /// A convolution output whose shape is not what the geometry gives.
    #[error("output shape {got:?} should be {want:?} for this geometry")]
    OutputShape {
        /// The file's output shape.
        got: Vec<i32>,
        /// The shape the geometry gives.
        want: Vec<i32>,
    },
    /// A pooling output whose shape is not what the geometry gives.
    #[error("output shape {got:?} does not follow from the geometry")]
    PoolOutputShape {
        /// The file's output shape.
        got: Vec<i32>,
    },
    /// A FULLY_CONNECTED output of another size than the weights' output count.
    #[error("output {shape:?} should hold {values} values")]
    OutputLength {
        /// The file's output shape.
        shape: Vec<i32>,
        /// Values the weights give.
        values: usize,
    },
    /// A unary op (SOFTMAX, LOGISTIC, HARD_SWISH, QUANTIZE) whose output shape is not its
    /// input's.
    #[error("input and output shapes differ")]
    ShapesDiffer,
    /// A standalone RELU or RELU6 whose output shape is not its input's.
    #[error("input {input:?} and output {output:?} differ in shape")]
    ReluShapes {
        /// Input shape.
        input: Vec<i32>,
        /// Output shape.
        output: Vec<i32>,
    },
    /// ADD of two activations of different shapes.
    #[error("inputs of shapes {a:?} and {b:?} need broadcasting, which is not supported")]
    Broadcast {
        /// First input's shape.
        a: Vec<i32>,
        /// Second input's shape.
        b: Vec<i32>,
    },
    /// MUL of two activations that do not broadcast (by length-1 axes) to the output.
    #[error("inputs of shapes {a:?} and {b:?} do not broadcast to the output's {output:?}")]
    MulBroadcast {
        /// First input's shape.
        a: Vec<i32>,
        /// Second input's shape.
        b: Vec<i32>,
        /// Output shape.
        output: Vec<i32>,
    },
    /// MUL or ADD by a constant that enlarges the activation.
    #[error(
        "the constant broadcasts input {input:?} to {output:?}; only a constant that keeps the \
         activation's shape is supported"
    )]
    ConstantBroadcast {
        /// The activation's shape.
        input: Vec<i32>,
        /// Output shape.
        output: Vec<i32>,
    },
    /// MUL or ADD of two constants.
    #[error("both inputs are constants")]
    BothConstant,
    /// MUL or ADD by a constant mapped without one (a bug of this crate, not of the file).
    #[error("neither input is a constant")]
    NoConstant,
    /// A constant operand without values.
    #[error("constant input {k} '{name}' is empty")]
    EmptyConstant {
        /// Input position.
        k: usize,
        /// Tensor name.
        name: String,
    },
    /// A constant operand holding more than one value (a per-element table would be needed).
    #[error(
        "constant input {k} '{name}' of shape {shape:?} holds different values; only one value \
         broadcast over the activation is supported (a per-element table)"
    )]
    ConstantValues {
        /// Input position.
        k: usize,
        /// Tensor name.
        name: String,
        /// Its shape.
        shape: Vec<i32>,
    },
    /// The constant operand of a MUL or ADD is not quantized like an activation.
    #[error("constant input {k}: {source}")]
    ConstantOperand {
        /// Input position.
        k: usize,
        /// What is wrong with it.
        source: TensorError,
    },
    /// CONCATENATION along another axis than the channels.
    #[error(
        "axis {axis} of a rank-{rank} tensor; the runtime concatenates channels (the last axis)"
    )]
    ConcatAxis {
        /// The option's axis.
        axis: i32,
        /// The output's rank.
        rank: i32,
    },
    /// CONCATENATION with a fused activation.
    #[error("a fused activation on CONCATENATION is not supported")]
    ConcatActivation,
    /// CONCATENATION of no inputs or more than the format holds.
    #[error("{n} inputs; the runtime concatenates up to {MAX_CONCAT_INPUTS}")]
    ConcatInputs {
        /// How many inputs it has.
        n: usize,
    },
    /// A CONCATENATION input quantized unlike the output (TFLM's int8 kernel copies bytes).
    #[error(
        "input {k} is quantized (scale {scale}, zero point {zero_point}) unlike the output \
         ({output_scale}, {output_zero_point}); TFLM's int8 concatenation requires them equal"
    )]
    ConcatQuantization {
        /// Input position.
        k: usize,
        /// Its scale.
        scale: f32,
        /// Its zero point.
        zero_point: i8,
        /// The output's scale.
        output_scale: f32,
        /// The output's zero point.
        output_zero_point: i8,
    },
    /// A SOFTMAX output not at scale 1/256 from −128.
    #[error(
        "output quantized at scale {scale}, zero point {zero_point}; TFLM's int8 softmax needs \
         1/256 and −128"
    )]
    SoftmaxOutput {
        /// Output scale.
        scale: f32,
        /// Output zero point.
        zero_point: i8,
    },
    /// A LOGISTIC output whose zero point is not −128.
    #[error("output zero point {zero_point}; TFLM's int8 LOGISTIC needs −128")]
    LogisticZeroPoint {
        /// Output zero point.
        zero_point: i8,
    },
    /// A view (RESHAPE, SQUEEZE, STRIDED_SLICE) or PAD whose output is quantized unlike its
    /// input.
    #[error("input and output are quantized differently")]
    QuantizedDifferently,
    /// MEAN of a tensor that is not `[1, H, W, C]`.
    #[error(
        "input of shape {shape:?} is not [1, H, W, C]; MEAN is imported as global pooling over \
         H and W of a rank-4 tensor"
    )]
    MeanInput {
        /// Input shape.
        shape: Vec<i32>,
    },
    /// MEAN over other axes than H and W.
    #[error("MEAN over axes {axes:?}: only global pooling over H and W (axes 1, 2) is supported")]
    MeanAxes {
        /// The axes operand, as the file holds it.
        axes: Vec<i32>,
    },
    /// A MEAN output whose shape is not the pooled one.
    #[error(
        "output shape {got:?} should be {want:?} for MEAN over H and W with keep_dims {keep_dims}"
    )]
    MeanOutputShape {
        /// The file's output shape.
        got: Vec<i32>,
        /// The pooled shape.
        want: Vec<i32>,
        /// The option.
        keep_dims: bool,
    },
    /// A RESHAPE whose shape operand is computed from activations.
    #[error(
        "its shape operand (tensor {tensor} '{name}') is not static: neither a constant nor \
         computed from shapes alone"
    )]
    ReshapeNotStatic {
        /// Tensor index of the shape operand.
        tensor: i32,
        /// Its name.
        name: String,
    },
    /// A RESHAPE whose recorded output shape is not the shape its operand asks for.
    #[error(
        "the shape operand evaluates to {wanted:?} but the file records output shape \
         {recorded:?} (the converter could not infer it); TFLM reads the recorded shape and \
         refuses this model too. Give the reshape a static size, e.g. `Reshape((n,))` or \
         `tf.reshape(x, [tf.shape(x)[0], n])`"
    )]
    ReshapeRecorded {
        /// The shape the operand asks for.
        wanted: Vec<i32>,
        /// The output shape the file records.
        recorded: Vec<i32>,
    },
    /// A view whose output holds another number of elements than its input.
    #[error("{input:?} → {output:?} changes the element count")]
    ElementCount {
        /// Input shape.
        input: Vec<i32>,
        /// Output shape.
        output: Vec<i32>,
    },
    /// A view that changes the HWC layout for a reader that does not flatten it anyway.
    #[error(
        "{input:?} → {output:?} changes the channel layout for a reader other than \
         FULLY_CONNECTED (directly, or through RELU, RELU6, LOGISTIC, HARD_SWISH, QUANTIZE or \
         a MUL / ADD by one constant), or is the model's output"
    )]
    ChannelLayout {
        /// Input shape.
        input: Vec<i32>,
        /// Output shape.
        output: Vec<i32>,
    },
    /// A STRIDED_SLICE operand (begin, end, strides) that is not static.
    #[error("its {what} (tensor {tensor}) is not a constant or static shape arithmetic")]
    SliceOperand {
        /// "begin", "end" or "strides".
        what: &'static str,
        /// Tensor index.
        tensor: i32,
    },
    /// STRIDED_SLICE operands of different lengths.
    #[error("begin, end and strides have {begin}, {end} and {strides} entries")]
    SliceSpecLengths {
        /// Entries of begin.
        begin: usize,
        /// Entries of end.
        end: usize,
        /// Entries of strides.
        strides: usize,
    },
    /// A STRIDED_SLICE spec for more axes than its input has.
    #[error("the slice spec addresses more axes than {shape:?} has")]
    SliceAxes {
        /// Input shape.
        shape: Vec<i32>,
    },
    /// A STRIDED_SLICE of an activation that drops elements along an axis other than the
    /// channels.
    #[error(
        "it takes {picks:?} of the {positions} positions along axis {axis} of {shape:?}: a \
         slice that drops elements anywhere but along the channels needs a copy the runtime \
         has no op for (slices that keep every element, as new axes and ellipses do, are \
         views; channel slices are 1x1 convolutions)"
    )]
    SliceCopy {
        /// The positions kept.
        picks: Vec<i32>,
        /// Positions along the axis.
        positions: i32,
        /// The axis.
        axis: usize,
        /// Input shape.
        shape: Vec<i32>,
    },
    /// A channel slice whose output is not the input with the kept channels.
    #[error(
        "a channel slice of {input:?} keeping {kept} channels should give {kept} channels at the \
         same height and width, not {output:?}"
    )]
    ChannelSlice {
        /// Input blob shape.
        input: Shape,
        /// Channels kept.
        kept: usize,
        /// Output blob shape.
        output: Shape,
    },
    /// A PAD whose paddings are not constant.
    #[error("paddings are not a constant tensor")]
    PaddingsNotConstant,
    /// A PAD whose paddings are neither int32 nor int64.
    #[error("paddings are neither int32 nor int64")]
    PaddingsType,
    /// A PAD of other axes than the rows and columns of a rank-4 tensor.
    #[error("paddings {paddings:?}: only rows and columns of a [1, H, W, C] tensor can be padded")]
    PaddedAxes {
        /// The paddings, as the file holds them.
        paddings: Vec<i64>,
    },
    /// A PAD of a tensor that is not rank 4.
    #[error("input {shape:?} is not [1, H, W, C]")]
    PadInput {
        /// Input shape.
        shape: Vec<i32>,
    },
    /// PADV2 with a pad value other than the input's zero point.
    #[error("PADV2 with a value other than the zero point")]
    PadValue,
    /// A PAD read by something other than a convolution, which alone can absorb it.
    #[error("PAD is imported only when CONV_2D or DEPTHWISE_CONV_2D reads it")]
    PadReaders,
    /// Paddings the format's u8 window padding cannot hold.
    #[error("paddings {paddings:?} are outside 0..=255")]
    PaddingRange {
        /// The paddings, as the file holds them.
        paddings: Vec<i64>,
    },
}

#[cfg(test)]
mod tests {
    use super::{IoRefusal, OpRefusal, ScaleRefusal};
    use crate::{FoldError, GraphDefect, ImportError};

    /// The typed refusals print what the text refusals printed before them.
    #[test]
    fn refusals_print_as_they_did() {
        let op = |reason| {
            ImportError::Op {
                index: 3,
                op: "CONV_2D".into(),
                reason,
            }
            .to_string()
        };
        assert_eq!(
            op(OpRefusal::MissingOptions { op: "CONV_2D" }),
            "op 3 (CONV_2D): CONV_2D without its options"
        );
        assert_eq!(
            op(OpRefusal::OutputShape {
                got: vec![1, 4, 4, 8],
                want: vec![1, 2, 2, 8],
            }),
            "op 3 (CONV_2D): output shape [1, 4, 4, 8] should be [1, 2, 2, 8] for this geometry"
        );
        assert_eq!(
            op(OpRefusal::WindowRange {
                what: "pool geometry value",
                value: 300,
            }),
            "op 3 (CONV_2D): pool geometry value 300 is outside 0..=255"
        );
        assert_eq!(
            op(ScaleRefusal::Mul {
                a: 0.5,
                b: 0.25,
                output: 0.125,
            }
            .into()),
            "op 3 (CONV_2D): input scales 0.5 × 0.25 / output scale 0.125 has no blob form: its \
             shift is above 15, where TFLM's int32 product · 2^shift can overflow"
        );
        assert_eq!(
            op(OpRefusal::ConcatInputs { n: 9 }),
            "op 3 (CONV_2D): 9 inputs; the runtime concatenates up to 8"
        );
        let io = ImportError::IoTensor {
            role: "input",
            index: 0,
            name: "x".into(),
            reason: IoRefusal::FloatInput,
        };
        assert_eq!(
            io.to_string(),
            "model input (tensor 0 'x'): is float32 and feeds something other than one QUANTIZE \
             to int8 (only a float interface around an int8 model is supported)"
        );
        let not_static = ImportError::NotStatic {
            index: 2,
            op: "SHAPE".into(),
            reason: FoldError::OutputType {
                name: "s".into(),
                ty: "INT64",
            },
        };
        assert_eq!(
            not_static.to_string(),
            "op 2 (SHAPE): shape arithmetic that is not static at import time: output 's' is \
             INT64; shape arithmetic is folded in int32"
        );
        assert_eq!(
            ImportError::Graph(GraphDefect::NoSubgraph).to_string(),
            "op 0 (graph): the model has no subgraph"
        );
    }
}
