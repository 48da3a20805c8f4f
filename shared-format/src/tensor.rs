//! The activation tensor table: fixed-size records, so a device looks a tensor up by id in O(1)
//! without allocating or decoding a list.
//!
//! Record layout (16 bytes, little-endian): `h: u16, w: u16, c: u16, zero_point: i8, bits: u8,
//! offset: u32, first_op: u16, last_op: u16`. `offset` is the tensor's place in the arena (the
//! memory plan); `first_op..=last_op` is its lifetime in op indices, which validation checks
//! against the ops and uses to prove that no two live tensors share bytes.

use crate::error::{FormatError, TensorProblem};

/// Index into the tensor table.
pub type TensorId = u16;

/// Bytes per tensor record.
pub const RECORD_LEN: usize = 16;

/// Height × width × channels of one sample (NHWC with N = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    /// Rows.
    pub h: u16,
    /// Columns.
    pub w: u16,
    /// Channels.
    pub c: u16,
}

impl Shape {
    /// A shape.
    pub const fn new(h: u16, w: u16, c: u16) -> Self {
        Self { h, w, c }
    }

    /// Number of elements; at most 2^48, so `u64` never overflows.
    pub const fn elements(&self) -> u64 {
        self.h as u64 * self.w as u64 * self.c as u64
    }
}

/// One decoded tensor record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorRecord {
    /// Shape of the activation.
    pub shape: Shape,
    /// Zero point of the activation (real = (q − zero_point) · scale).
    pub zero_point: i8,
    /// Activation bit-width: values lie in `[-2^(bits-1), 2^(bits-1) - 1]`, stored as i8.
    pub bits: u8,
    /// Byte offset in the arena (from the memory plan).
    pub offset: u32,
    /// Index of the op that produces it (0 for the model input, which is live from the start).
    pub first_op: u16,
    /// Index of the last op that reads it (the op count for the model output).
    pub last_op: u16,
}

impl TensorRecord {
    /// Bytes the tensor occupies (one i8 per element).
    pub const fn bytes(&self) -> u64 {
        self.shape.elements()
    }

    /// The byte range in the arena; valid once the model has been validated.
    pub fn range(&self) -> core::ops::Range<usize> {
        self.offset as usize..self.offset as usize + self.bytes() as usize
    }

    /// Smallest value of its bit-width.
    pub const fn qmin(&self) -> i8 {
        qmin(self.bits)
    }

    /// Largest value of its bit-width.
    pub const fn qmax(&self) -> i8 {
        qmax(self.bits)
    }

    /// Serialises the record (host side).
    pub fn to_bytes(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..2].copy_from_slice(&self.shape.h.to_le_bytes());
        b[2..4].copy_from_slice(&self.shape.w.to_le_bytes());
        b[4..6].copy_from_slice(&self.shape.c.to_le_bytes());
        b[6] = self.zero_point as u8;
        b[7] = self.bits;
        b[8..12].copy_from_slice(&self.offset.to_le_bytes());
        b[12..14].copy_from_slice(&self.first_op.to_le_bytes());
        b[14..16].copy_from_slice(&self.last_op.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Self {
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        TensorRecord {
            shape: Shape::new(u16_at(0), u16_at(2), u16_at(4)),
            zero_point: b[6] as i8,
            bits: b[7],
            offset: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            first_op: u16_at(12),
            last_op: u16_at(14),
        }
    }
}

/// Smallest signed value of a `bits`-wide integer held in i8 (`bits` in 1..=8).
pub const fn qmin(bits: u8) -> i8 {
    (-(1i16 << (bits - 1))) as i8
}

/// Largest signed value of a `bits`-wide integer held in i8 (`bits` in 1..=8).
pub const fn qmax(bits: u8) -> i8 {
    ((1i16 << (bits - 1)) - 1) as i8
}

/// The borrowed tensor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorTable<'a>(&'a [u8]);

impl<'a> TensorTable<'a> {
    /// Wraps the table bytes, checking only that they are whole records.
    pub fn new(bytes: &'a [u8]) -> Result<Self, FormatError> {
        if !bytes.len().is_multiple_of(RECORD_LEN) || bytes.len() / RECORD_LEN > u16::MAX as usize {
            return Err(FormatError::Tensor {
                tensor: 0,
                problem: TensorProblem::TableLength(bytes.len()),
            });
        }
        Ok(Self(bytes))
    }

    /// Number of tensors.
    pub const fn len(&self) -> usize {
        self.0.len() / RECORD_LEN
    }

    /// True for an empty table.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The record of tensor `id`, if it exists.
    #[inline]
    pub fn get(&self, id: TensorId) -> Option<TensorRecord> {
        let start = id as usize * RECORD_LEN;
        self.0
            .get(start..start + RECORD_LEN)
            .map(TensorRecord::from_bytes)
    }

    /// All records in id order.
    pub fn iter(&self) -> impl Iterator<Item = TensorRecord> + 'a {
        self.0
            .chunks_exact(RECORD_LEN)
            .map(TensorRecord::from_bytes)
    }
}
