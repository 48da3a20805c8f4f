//! Typed decoding errors. Each names the place (op index or tensor id) and what is wrong, so a
//! firmware log line is enough to find the fault without the host.

use thiserror::Error;

use crate::op::OpKind;

/// Why a blob or bundle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FormatError {
    /// Fewer bytes than the fixed header.
    #[error("file is {len} bytes, shorter than the {need}-byte header")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The first four bytes are not the expected magic: not a file of this kind.
    #[error("not a {} file: it starts with {found:02x?}", MagicName(*.expected))]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
        /// The magic expected.
        expected: [u8; 4],
    },
    /// A format major version this reader does not know.
    #[error(
        "format version {found_major}.{found_minor} is not readable by this runtime, which reads {supported_major}.x (writes {supported_major}.{supported_minor}); {}",
        if *.found_major > *.supported_major { "update the runtime" } else { "re-export the model" }
    )]
    UnsupportedVersion {
        /// Major version in the file.
        found_major: u16,
        /// Minor version in the file.
        found_minor: u16,
        /// Major version this reader supports.
        supported_major: u16,
        /// Minor version this reader writes.
        supported_minor: u16,
    },
    /// The header's payload length disagrees with the bytes present (truncated or padded file).
    #[error(
        "header declares a {declared}-byte payload but {actual} bytes follow (truncated or padded file)"
    )]
    PayloadLength {
        /// Length in the header.
        declared: u32,
        /// Length present.
        actual: usize,
    },
    /// The CRC does not match: the file was corrupted in storage or transfer.
    #[error(
        "CRC-32 mismatch: header says {stored:#010x}, content gives {computed:#010x} (corrupt file)"
    )]
    Checksum {
        /// CRC stored in the header.
        stored: u32,
        /// CRC of the bytes present.
        computed: u32,
    },
    /// A rounding mode other than double (0) or single (1).
    #[error("unknown rounding mode {0}")]
    UnknownRounding(u8),
    /// Flags or reserved bits set that format 1.x does not define.
    #[error("unknown header flags {0:#04x}")]
    UnknownFlags(u8),
    /// The postcard payload does not decode into the expected structure.
    #[error("payload does not decode ({0})")]
    Payload(&'static str),
    /// Bytes left over after the payload structure.
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),
    /// A problem with one entry of the tensor table.
    #[error("tensor {tensor}: {problem}")]
    Tensor {
        /// Tensor id.
        tensor: u16,
        /// What is wrong.
        problem: TensorProblem,
    },
    /// A problem with one op.
    #[error("op {index} ({kind}): {problem}")]
    Op {
        /// Op index in execution order.
        index: u16,
        /// Op kind, for the message.
        kind: OpKind,
        /// What is wrong.
        problem: OpProblem,
    },
    /// An op that does not decode at all (unknown kind or truncated).
    #[error("op {index} does not decode ({reason})")]
    OpDecode {
        /// Op index in execution order.
        index: u16,
        /// Decoder's reason.
        reason: &'static str,
    },
    /// Two activation tensors live at the same time share arena bytes.
    #[error("memory plan: tensors {a} and {b} are live at the same time and overlap in the arena")]
    Overlap {
        /// First tensor.
        a: u16,
        /// Second tensor.
        b: u16,
    },
    /// The model has no ops.
    #[error("the model has no ops")]
    Empty,
    /// The tensor table must hold the input and one output per op.
    #[error("tensor table has {tensors} entries; a model with {ops} ops needs exactly {}", *.ops as usize + 1)]
    TensorCount {
        /// Entries in the table.
        tensors: usize,
        /// Ops in the model.
        ops: u16,
    },
    /// The header's scratch bytes are fewer than an op needs.
    #[error("op {index} needs {need} scratch bytes but the header reserves {have}")]
    Scratch {
        /// Op index.
        index: u16,
        /// Scratch bytes needed.
        need: u32,
        /// Scratch bytes in the header.
        have: u32,
    },
    /// The model output is the model input, or is not live until the end.
    #[error(
        "model output tensor {0} is invalid: it must be produced by an op and live until the last op"
    )]
    Output(u16),
    /// A test-vector bundle whose sizes do not add up.
    #[error("test vectors: {0}")]
    Vectors(&'static str),
}

/// What is wrong with a tensor table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TensorProblem {
    /// The id is not in the table.
    #[error("no such tensor in the table")]
    Missing,
    /// A zero dimension.
    #[error("zero dimension in shape {h}x{w}x{c}")]
    ZeroDim {
        /// Height.
        h: u16,
        /// Width.
        w: u16,
        /// Channels.
        c: u16,
    },
    /// Bits outside 2..=8.
    #[error("activation bit-width {0} is outside 2..=8")]
    Bits(u8),
    /// Zero point outside the range of its bit-width.
    #[error("zero point {zero_point} is outside the {bits}-bit range")]
    ZeroPoint {
        /// Zero point.
        zero_point: i8,
        /// Bits.
        bits: u8,
    },
    /// offset + size beyond the activation region.
    #[error("bytes {offset}..{end} lie outside the {arena}-byte activation region")]
    OutOfArena {
        /// Start.
        offset: u32,
        /// End (exclusive), saturated.
        end: u64,
        /// Activation bytes in the header.
        arena: u32,
    },
    /// Lifetime interval malformed.
    #[error("lifetime {first}..={last} is malformed (ops: {ops})")]
    Lifetime {
        /// First op.
        first: u16,
        /// Last op.
        last: u16,
        /// Number of ops.
        ops: u16,
    },
    /// The input tensor must be live from op 0.
    #[error("the model input must be live from op 0")]
    InputLifetime,
    /// Table length not a multiple of the record size.
    #[error("tensor table is {0} bytes, not a whole number of 16-byte records")]
    TableLength(usize),
}

/// What is wrong with an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OpProblem {
    /// A tensor id not in the table.
    #[error("tensor {0} does not exist")]
    UnknownTensor(u16),
    /// An input not produced yet or no longer live.
    #[error(
        "input tensor {0} is not live at this op (produced later, or freed earlier in the plan)"
    )]
    NotLive(u16),
    /// The output's lifetime does not start at this op, or the output is the model input.
    #[error("output tensor {0} is not produced by this op in the plan")]
    NotProducer(u16),
    /// Kernel size outside the supported range.
    #[error("kernel {h}x{w} is outside the supported {min}..={max}")]
    Kernel {
        /// Kernel height.
        h: u8,
        /// Kernel width.
        w: u8,
        /// Smallest supported.
        min: u8,
        /// Largest supported.
        max: u8,
    },
    /// Stride outside 1..=2.
    #[error("stride {h}x{w} is outside 1..=2")]
    Stride {
        /// Vertical.
        h: u8,
        /// Horizontal.
        w: u8,
    },
    /// Dilation outside the supported range.
    #[error("dilation {h}x{w} is outside 1..={max}")]
    Dilation {
        /// Vertical.
        h: u8,
        /// Horizontal.
        w: u8,
        /// Largest supported.
        max: u8,
    },
    /// Padding as large as the effective kernel (a window entirely in padding).
    #[error("padding {0} is not smaller than the effective kernel")]
    Padding(u8),
    /// Output shape disagrees with the input shape and geometry.
    #[error("output shape {found_h}x{found_w}x{found_c} should be {h}x{w}x{c}")]
    OutputShape {
        /// Expected height.
        h: u32,
        /// Expected width.
        w: u32,
        /// Expected channels.
        c: u32,
        /// Found height.
        found_h: u16,
        /// Found width.
        found_w: u16,
        /// Found channels.
        found_c: u16,
    },
    /// Input shapes of an elementwise or concat op disagree.
    #[error("input tensor {0} has a shape that does not fit this op")]
    InputShape(u16),
    /// Weight bit-width other than 2, 4 or 8.
    #[error("weight bit-width {0} is not 2, 4 or 8")]
    WeightBits(u8),
    /// Packed weight bytes do not match the element count.
    #[error("weights hold {found} bytes; {elements} {bits}-bit values need {expected}")]
    WeightLength {
        /// Elements.
        elements: u32,
        /// Bits.
        bits: u8,
        /// Bytes expected.
        expected: u32,
        /// Bytes found.
        found: usize,
    },
    /// Weight zero point out of range or non-zero for a symmetric scheme.
    #[error("weight zero point {0} is invalid for this scheme and bit-width")]
    WeightZeroPoint(i8),
    /// Bias length wrong.
    #[error("bias holds {found} bytes; {channels} channels need {}", *.channels as usize * 4)]
    BiasLength {
        /// Output channels.
        channels: u32,
        /// Bytes found.
        found: usize,
    },
    /// Requantization table length wrong.
    #[error(
        "requantization has {multipliers} multipliers and {shifts} shifts; expected {expected} of each"
    )]
    RequantCount {
        /// Multipliers present.
        multipliers: usize,
        /// Shifts present.
        shifts: usize,
        /// Entries expected.
        expected: u32,
    },
    /// A multiplier outside {0} ∪ [2^30, 2^31 − 1] (QuantizeMultiplier's output range).
    #[error("multiplier {value} at {index} is outside [2^30, 2^31-1] (or 0)")]
    Multiplier {
        /// Entry.
        index: u32,
        /// Value.
        value: i32,
    },
    /// A shift outside the supported range.
    #[error("shift {value} at {index} is outside {min}..={max}")]
    Shift {
        /// Entry.
        index: u32,
        /// Value.
        value: i8,
        /// Smallest allowed.
        min: i8,
        /// Largest allowed.
        max: i8,
    },
    /// Clamp bounds inverted or outside the output's bit range.
    #[error("activation clamp {min}..={max} is empty or outside the output's {bits}-bit range")]
    Clamp {
        /// Lower bound.
        min: i8,
        /// Upper bound.
        max: i8,
        /// Output bits.
        bits: u8,
    },
    /// Worst-case accumulator of an output channel exceeds i32.
    #[error("output channel {channel}: worst-case accumulator {bound} overflows i32")]
    AccumulatorOverflow {
        /// Channel.
        channel: u32,
        /// Bound computed in i64.
        bound: i64,
    },
    /// Pooling requires equal zero points and bit-widths on input and output.
    #[error("input and output must share zero point and bit-width")]
    QuantMismatch,
    /// Concat input count outside 2..=MAX.
    #[error("concat has {0} inputs; 2..={max} are supported", max = crate::op::MAX_CONCAT_INPUTS)]
    ConcatInputs(usize),
    /// Add left shift too large.
    #[error("add left shift {0} is outside 0..=20")]
    LeftShift(u8),
    /// A softmax output that is not TFLM's fixed int8 softmax quantization.
    #[error(
        "softmax output is {bits}-bit with zero point {zero_point}; it must be 8-bit with zero point -128 (scale 1/256)"
    )]
    SoftmaxOutput {
        /// Output bits.
        bits: u8,
        /// Output zero point.
        zero_point: i8,
    },
    /// A softmax input multiplier outside QuantizeMultiplierGreaterThanOne's range.
    #[error("softmax input multiplier {0} is outside [2^30, 2^31-1]")]
    SoftmaxMultiplier(i32),
    /// A softmax `diff_min` above 0, or below `−CalculateInputRadius`, where `diff · 2^shift`
    /// would overflow i32.
    #[error(
        "softmax diff_min {value} is outside {min}..=0 (below -CalculateInputRadius(5, left shift) the rescaling overflows)"
    )]
    SoftmaxDiffMin {
        /// Value found.
        value: i32,
        /// Most negative value allowed for the op's left shift.
        min: i32,
    },
    /// More softmax channels than the sum of exponentials can hold.
    #[error(
        "softmax over {channels} channels; at most {max} keep the sum of exponentials inside i32"
    )]
    SoftmaxChannels {
        /// Channels of the input.
        channels: u16,
        /// Most channels supported.
        max: u16,
    },
    /// A mean output that is not 8-bit.
    #[error(
        "mean output is {0}-bit; TFLite's int8 MEAN writes 8-bit values (clamped to [-128, 127])"
    )]
    MeanOutputBits(u8),
    /// A mean over more positions than its i32 channel sums can hold.
    #[error(
        "mean over {cells} positions (H·W); at most {max} keep the worst-case sum 255·H·W inside i32"
    )]
    MeanCells {
        /// `H·W` of the input.
        cells: u64,
        /// Most positions supported.
        max: u32,
    },
    /// A mean multiplier that is zero or negative.
    #[error(
        "mean multiplier {0} is not positive (the fold of a QuantizeMultiplier result always is; a zero one would output the zero point whatever the input)"
    )]
    MeanMultiplier(i32),
    /// An activation whose output quantization TFLM fixes (logistic, hard swish: 8-bit; logistic
    /// also zero point −128) written to a tensor that differs.
    #[error(
        "output is {bits}-bit with zero point {zero_point}; this op writes 8-bit values (the sigmoid from zero point -128)"
    )]
    FixedOutput {
        /// Output bits.
        bits: u8,
        /// Output zero point.
        zero_point: i8,
    },
    /// A 16-bit multiplier outside what `DownScaleInt32ToInt16Multiplier` makes of
    /// `QuantizeMultiplier`'s range.
    #[error("16-bit multiplier {value} at {index} is outside [2^14, 2^15-1] (or 0)")]
    Multiplier16 {
        /// Which multiplier.
        index: u32,
        /// Value found.
        value: i16,
    },
    /// An input radius beyond the one whose rescaling fits i32 (TFLM's `CalculateInputRadius`).
    #[error("input range radius {value} is outside 0..={max} for the op's left shift")]
    InputRadius {
        /// Value found.
        value: i32,
        /// Largest radius allowed for the op's left shift.
        max: i32,
    },
    /// A table without exactly one entry per input byte: a lookup could read past it.
    #[error("table holds {0} values; it needs one per input byte (256)")]
    TableLength(usize),
    /// A table entry outside the output's bit range: the output would hold a value its
    /// bit-width cannot, which every later op assumes it never does.
    #[error("table entry {index} is {value}, outside the {bits}-bit output's range")]
    TableValue {
        /// Input byte whose entry it is.
        index: u16,
        /// Value found.
        value: i8,
        /// Output bits.
        bits: u8,
    },
}

/// Prints a magic as text for messages.
struct MagicName([u8; 4]);

impl core::fmt::Display for MagicName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            b"GHNQ" => f.write_str("GHNQ model blob"),
            b"GHNV" => f.write_str("GHNV test-vector bundle"),
            other => write!(f, "{other:02x?}"),
        }
    }
}
