//! The model blob: decoding (with full validation) and read access for the runtime and tools.

use serde::{Deserialize, Serialize};

use crate::error::FormatError;
use crate::header::{Header, MODEL_MAGIC, Rounding};
use crate::op::Op;
use crate::tensor::{TensorId, TensorRecord, TensorTable};

/// Model input or output: which tensor, and its real-valued scale for hosts that quantize
/// inputs or dequantize logits (the device never uses the scale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IoSpec {
    /// Tensor id.
    pub tensor: TensorId,
    /// Real value of one quantization step.
    pub scale: f32,
}

/// Provenance, for reports and for matching a device's model with the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metadata<'a> {
    /// Human-readable model name.
    pub name: &'a str,
    /// Hash of the architecture (IR) the model was exported from.
    pub arch_hash: u64,
    /// Hash of the GHN checkpoint that predicted the parameters (0 if none).
    pub ghn_checkpoint_hash: u64,
    /// Precision label such as `w4a4`, or `mixed`.
    pub precision: &'a str,
    /// Samples used to calibrate BN statistics and activation ranges.
    pub calibration_samples: u32,
    /// Dataset the model was calibrated and evaluated on.
    pub dataset: &'a str,
}

/// The postcard payload after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Payload<'a> {
    pub input: IoSpec,
    pub output: IoSpec,
    /// Fixed 16-byte records, see [`crate::tensor`].
    #[serde(borrow)]
    pub tensors: &'a [u8],
    pub op_count: u16,
    /// `op_count` postcard-encoded [`Op`]s back to back.
    #[serde(borrow)]
    pub ops: &'a [u8],
    #[serde(borrow)]
    pub metadata: Metadata<'a>,
}

/// A validated model borrowing its bytes from the blob.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    header: Header,
    input: IoSpec,
    output: IoSpec,
    tensors: TensorTable<'a>,
    op_count: u16,
    ops: &'a [u8],
    metadata: Metadata<'a>,
}

impl<'a> Model<'a> {
    /// Decodes and validates a blob. After this returns `Ok`, every tensor id, shape, offset,
    /// weight length, kernel geometry and quantization parameter is known to be in range and the
    /// memory plan is known to be free of overlaps.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let (header, body) = Header::read_file(bytes, MODEL_MAGIC)?;
        let (payload, rest): (Payload<'a>, _) = postcard::take_from_bytes(body)
            .map_err(|e| FormatError::Payload(postcard_reason(&e)))?;
        if !rest.is_empty() {
            return Err(FormatError::TrailingBytes(rest.len()));
        }
        let model = Model {
            header,
            input: payload.input,
            output: payload.output,
            tensors: TensorTable::new(payload.tensors)?,
            op_count: payload.op_count,
            ops: payload.ops,
            metadata: payload.metadata,
        };
        crate::validate::validate(&model)?;
        Ok(model)
    }

    /// The file header.
    pub const fn header(&self) -> &Header {
        &self.header
    }

    /// Rounding mode of all requantizations.
    pub const fn rounding(&self) -> Rounding {
        self.header.rounding
    }

    /// Input spec.
    pub const fn input(&self) -> IoSpec {
        self.input
    }

    /// Output spec.
    pub const fn output(&self) -> IoSpec {
        self.output
    }

    /// The input tensor's record.
    pub fn input_tensor(&self) -> TensorRecord {
        self.tensors.get(self.input.tensor).expect("validated")
    }

    /// The output tensor's record.
    pub fn output_tensor(&self) -> TensorRecord {
        self.tensors.get(self.output.tensor).expect("validated")
    }

    /// The tensor table.
    pub const fn tensors(&self) -> &TensorTable<'a> {
        &self.tensors
    }

    /// Number of ops.
    pub const fn op_count(&self) -> u16 {
        self.op_count
    }

    /// Ops in execution order.
    pub fn ops(&self) -> OpIter<'a> {
        OpIter {
            rest: self.ops,
            index: 0,
            count: self.op_count,
        }
    }

    /// Provenance.
    pub const fn metadata(&self) -> &Metadata<'a> {
        &self.metadata
    }

    /// Peak activation bytes of the memory plan.
    pub const fn activation_bytes(&self) -> usize {
        self.header.activation_bytes as usize
    }

    /// Kernel scratch bytes, placed after the activations.
    pub const fn scratch_bytes(&self) -> usize {
        self.header.scratch_bytes as usize
    }

    /// Total bytes of arena a caller must provide: activations plus scratch.
    ///
    /// Saturating: both are header `u32`s, whose sum can exceed `usize` on a 32-bit target; no
    /// arena that large exists, so the caller is told "too small" instead of the sum panicking.
    pub const fn arena_bytes(&self) -> usize {
        self.activation_bytes().saturating_add(self.scratch_bytes())
    }
}

/// Decodes ops one at a time from the blob; nothing is copied or allocated.
#[derive(Debug, Clone)]
pub struct OpIter<'a> {
    rest: &'a [u8],
    index: u16,
    count: u16,
}

impl<'a> Iterator for OpIter<'a> {
    type Item = Result<Op<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index == self.count {
            return None;
        }
        let index = self.index;
        self.index += 1;
        match postcard::take_from_bytes::<Op<'a>>(self.rest) {
            Ok((op, rest)) => {
                self.rest = rest;
                Some(Ok(op))
            }
            Err(e) => {
                self.index = self.count;
                Some(Err(FormatError::OpDecode {
                    index,
                    reason: postcard_reason(&e),
                }))
            }
        }
    }
}

impl<'a> OpIter<'a> {
    /// Bytes left after the ops decoded so far (validation requires none after the last op).
    pub(crate) const fn remaining(&self) -> usize {
        self.rest.len()
    }
}

/// A static description of a postcard error, so [`FormatError`] stays `Copy` and allocation-free.
pub(crate) fn postcard_reason(e: &postcard::Error) -> &'static str {
    use postcard::Error as E;
    match e {
        E::DeserializeUnexpectedEnd => "unexpected end of data",
        E::DeserializeBadVarint => "bad varint",
        E::DeserializeBadBool => "bad bool",
        E::DeserializeBadChar => "bad char",
        E::DeserializeBadUtf8 => "bad UTF-8 in a string",
        E::DeserializeBadOption => "bad option tag",
        E::DeserializeBadEnum => "unknown enum variant (op kind or scheme from a newer format?)",
        E::DeserializeBadEncoding => "bad encoding",
        E::DeserializeBadCrc => "bad CRC",
        _ => "malformed data",
    }
}
