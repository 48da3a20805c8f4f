//! The test-vector bundle (`.ghnv`): N input samples, their labels, and the logits the host
//! runtime produced for them. A device that reproduces the expected logits byte for byte has
//! proved it runs the model exactly as the host does.

use serde::{Deserialize, Serialize};

use crate::error::FormatError;
use crate::header::{Header, VECTORS_MAGIC};
use crate::model::postcard_reason;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VectorsPayload<'a> {
    pub model_crc: u32,
    pub count: u32,
    pub input_len: u32,
    pub output_len: u32,
    #[serde(borrow)]
    pub labels: &'a [u8],
    #[serde(borrow)]
    pub inputs: &'a [u8],
    #[serde(borrow)]
    pub expected: &'a [u8],
}

/// A validated, borrowed test-vector bundle.
#[derive(Debug, Clone)]
pub struct TestVectors<'a> {
    payload: VectorsPayload<'a>,
}

/// One sample of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    /// Quantized input, laid out like the model input (HWC).
    pub input: &'a [i8],
    /// Class label.
    pub label: u8,
    /// Logits the host runtime produced.
    pub expected: &'a [i8],
}

impl<'a> TestVectors<'a> {
    /// Decodes and checks that every length adds up.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let (_, body) = Header::read_file(bytes, VECTORS_MAGIC)?;
        let (payload, rest): (VectorsPayload<'a>, _) = postcard::take_from_bytes(body)
            .map_err(|e| FormatError::Payload(postcard_reason(&e)))?;
        if !rest.is_empty() {
            return Err(FormatError::TrailingBytes(rest.len()));
        }
        let n = payload.count as u64;
        if payload.labels.len() as u64 != n {
            return Err(FormatError::Vectors(
                "label count differs from sample count",
            ));
        }
        if payload.inputs.len() as u64 != n * payload.input_len as u64 {
            return Err(FormatError::Vectors(
                "input bytes differ from count × input length",
            ));
        }
        if payload.expected.len() as u64 != n * payload.output_len as u64 {
            return Err(FormatError::Vectors(
                "expected-logit bytes differ from count × output length",
            ));
        }
        Ok(Self { payload })
    }

    /// CRC of the model blob these vectors were made with (its header CRC).
    pub const fn model_crc(&self) -> u32 {
        self.payload.model_crc
    }

    /// Number of samples.
    pub const fn len(&self) -> usize {
        self.payload.count as usize
    }

    /// True for an empty bundle.
    pub const fn is_empty(&self) -> bool {
        self.payload.count == 0
    }

    /// Bytes per input sample.
    pub const fn input_len(&self) -> usize {
        self.payload.input_len as usize
    }

    /// Logits per sample.
    pub const fn output_len(&self) -> usize {
        self.payload.output_len as usize
    }

    /// Sample `i`, or `None` past the end.
    pub fn sample(&self, i: usize) -> Option<Sample<'a>> {
        let (il, ol) = (self.input_len(), self.output_len());
        Some(Sample {
            input: as_i8(self.payload.inputs.get(i * il..(i + 1) * il)?),
            label: *self.payload.labels.get(i)?,
            expected: as_i8(self.payload.expected.get(i * ol..(i + 1) * ol)?),
        })
    }

    /// All samples in order.
    pub fn iter(&self) -> impl Iterator<Item = Sample<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.sample(i))
    }
}

/// Reinterprets bytes as i8 without copying (both are plain bytes).
pub fn as_i8(bytes: &[u8]) -> &[i8] {
    bytemuck::cast_slice(bytes)
}

/// Rank of class `label` among `logits`: how many classes come before it when sorted by logit,
/// highest first, ties broken by lower class index. Top-k is correct when the rank is below k.
/// Host and firmware count top-1/top-5 with this one function so their tallies agree.
pub fn rank_of(logits: &[i8], label: usize) -> usize {
    let Some(&mine) = logits.get(label) else {
        return logits.len();
    };
    logits
        .iter()
        .enumerate()
        .filter(|&(j, &v)| v > mine || (v == mine && j < label))
        .count()
}

/// Index of the largest logit, the first on ties: the class of rank 0 in [`rank_of`].
pub fn top1(logits: &[i8]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::rank_of;

    #[test]
    fn rank_breaks_ties_by_index() {
        let logits = [3, 7, 7, -1, 5];
        assert_eq!(rank_of(&logits, 1), 0);
        assert_eq!(rank_of(&logits, 2), 1);
        assert_eq!(rank_of(&logits, 4), 2);
        assert_eq!(rank_of(&logits, 0), 3);
        assert_eq!(rank_of(&logits, 3), 4);
        assert_eq!(
            rank_of(&logits, 9),
            5,
            "a label past the logits is never in the top-k"
        );
    }
}
