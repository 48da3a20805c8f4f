//! The fixed-size file header shared by model blobs (`GHNQ`) and test-vector bundles (`GHNV`).
//!
//! Layout, little-endian, 28 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic |
//! | 4 | 2 | format major version |
//! | 6 | 2 | format minor version |
//! | 8 | 4 | CRC-32 of bytes 12..end (the rest of the header and the payload) |
//! | 12 | 1 | rounding mode |
//! | 13 | 1 | flags (none defined in 1.x; must be 0) |
//! | 14 | 2 | reserved, 0 |
//! | 16 | 4 | payload length in bytes |
//! | 20 | 4 | activation bytes (peak of the memory plan) |
//! | 24 | 4 | scratch bytes (largest kernel scratch) |
//!
//! Magic and version sit before the checksum so that a reader can tell "this is a newer format"
//! apart from "this is corrupt" even if a later major version changes what the CRC covers.

use crate::error::FormatError;

/// Model blob magic.
pub const MODEL_MAGIC: [u8; 4] = *b"GHNQ";
/// Test-vector bundle magic.
pub const VECTORS_MAGIC: [u8; 4] = *b"GHNV";
/// Major format version this crate writes and reads. A blob with a higher major is refused.
pub const FORMAT_MAJOR: u16 = 1;
/// Newest minor format version this crate reads and writes. Minor versions only add, so a 1.x
/// reader reads any 1.y blob that uses nothing newer than it knows, and a writer stamps each blob
/// with the lowest minor its ops need ([`crate::op::Op::min_minor`]), so older runtimes keep
/// reading the blobs they can run:
/// - 1.0: the initial op set;
/// - 1.1: max/avg pools with a 1×1 window — with a clamp starting at the zero point, that is ReLU
///   on a tensor that other ops also read unclamped (a DARTS cell input feeding both a
///   ReLU-conv and a skip connection);
/// - 1.2: [`crate::op::Softmax`] (TFLM's int8 kernel), and conv/depthwise kernels up to 16 per
///   side (the keyword-spotting DS-CNN opens with a 10×4 conv); blobs with neither stay 1.0/1.1;
/// - 1.3: [`crate::op::Mean`] (TFLite's MEAN over H and W: a global average pool that
///   requantizes, which converters emit where Keras has `GlobalAveragePooling2D`);
/// - 1.4: the elementwise ops int8 Keras models carry beyond those: [`crate::op::Mul`]
///   (squeeze-and-excite gates and gated branches), [`crate::op::Logistic`] (the sigmoid) and
///   [`crate::op::HardSwish`] (MobileNetV3's activation);
/// - 1.5: [`crate::op::Table`], an elementwise function given by its 256 values, which is what
///   a mid-graph int8 → int8 QUANTIZE and a MUL or ADD by one constant (a hard-sigmoid gate's
///   `+ 3` and `· 1/6`) are on an 8-bit input;
/// - 1.6: in-place ops ([`crate::plan::in_place`]): an add, or a stride-1 convolution or
///   depthwise convolution whose output has its input's rows and row bytes, may write its
///   output over an input that dies at it (same offset, same size), which the memory plan then
///   counts once (ResNet-8 needs 35,328 arena bytes instead of 49,152). Nothing in the
///   encoding changes: the tensor table's offsets say it, and a 1.0–1.5 reader refuses such a
///   blob as an overlap of live tensors. The builder stamps 1.6 only on blobs whose plan uses
///   it.
pub const FORMAT_MINOR: u16 = 6;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 28;
/// Offset of the first byte covered by the CRC.
const CRC_START: usize = 12;

/// How requantization rounds: the two TFLite-Micro builds (EDGE_ANCHORS §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Rounding {
    /// `SaturatingRoundingDoublingHighMul` then `RoundingDivideByPOT`: TFLM's default build.
    Double = 0,
    /// One 64-bit multiply and one rounding shift (`TFLITE_SINGLE_ROUNDING`).
    Single = 1,
}

impl Rounding {
    fn from_u8(v: u8) -> Result<Self, FormatError> {
        match v {
            0 => Ok(Self::Double),
            1 => Ok(Self::Single),
            other => Err(FormatError::UnknownRounding(other)),
        }
    }
}

/// The decoded header of a model blob or a test-vector bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `GHNQ` or `GHNV`.
    pub magic: [u8; 4],
    /// Format major version.
    pub major: u16,
    /// Format minor version.
    pub minor: u16,
    /// CRC-32 of everything after the CRC field.
    pub crc32: u32,
    /// Rounding mode of every requantization in the model.
    pub rounding: Rounding,
    /// Flags; none are defined in format 1.x.
    pub flags: u8,
    /// Length of the postcard payload that follows the header.
    pub payload_len: u32,
    /// Peak bytes of activation tensors in the memory plan.
    pub activation_bytes: u32,
    /// Bytes of kernel scratch, placed after the activations in the arena.
    pub scratch_bytes: u32,
}

impl Header {
    /// Writes `header ++ payload` with the CRC filled in.
    #[cfg(feature = "std")]
    pub fn write_file(
        magic: [u8; 4],
        minor: u16,
        rounding: Rounding,
        activation_bytes: u32,
        scratch_bytes: u32,
        payload: &[u8],
    ) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&magic);
        out.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
        out.extend_from_slice(&minor.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(rounding as u8);
        out.push(0);
        out.extend_from_slice(&[0; 2]);
        let len = u32::try_from(payload.len()).expect("payload larger than 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&activation_bytes.to_le_bytes());
        out.extend_from_slice(&scratch_bytes.to_le_bytes());
        out.extend_from_slice(payload);
        let crc = crate::CRC32.checksum(&out[CRC_START..]);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks magic, version, length, CRC, rounding and flags; returns the header and the payload.
    pub fn read_file(bytes: &[u8], magic: [u8; 4]) -> Result<(Self, &[u8]), FormatError> {
        if bytes.len() < HEADER_LEN {
            return Err(FormatError::Truncated {
                len: bytes.len(),
                need: HEADER_LEN,
            });
        }
        let found: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if found != magic {
            return Err(FormatError::BadMagic {
                found,
                expected: magic,
            });
        }
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != FORMAT_MAJOR {
            return Err(FormatError::UnsupportedVersion {
                found_major: major,
                found_minor: minor,
                supported_major: FORMAT_MAJOR,
                supported_minor: FORMAT_MINOR,
            });
        }
        let payload_len = u32_at(16);
        let body = &bytes[HEADER_LEN..];
        if body.len() != payload_len as usize {
            return Err(FormatError::PayloadLength {
                declared: payload_len,
                actual: body.len(),
            });
        }
        let crc32 = u32_at(8);
        let actual = crate::CRC32.checksum(&bytes[CRC_START..]);
        if actual != crc32 {
            return Err(FormatError::Checksum {
                stored: crc32,
                computed: actual,
            });
        }
        let rounding = Rounding::from_u8(bytes[12])?;
        let flags = bytes[13];
        if flags != 0 || u16_at(14) != 0 {
            return Err(FormatError::UnknownFlags(flags));
        }
        let header = Header {
            magic,
            major,
            minor,
            crc32,
            rounding,
            flags,
            payload_len,
            activation_bytes: u32_at(20),
            scratch_bytes: u32_at(24),
        };
        Ok((header, body))
    }
}
