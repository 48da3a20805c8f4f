//! Borrowed little-endian integer arrays.
//!
//! Biases and multipliers live in the blob as raw little-endian bytes rather than as postcard
//! varints, so a device reads element `i` in O(1) straight from flash, with no alignment demands.

use serde::{Deserialize, Serialize};

/// A borrowed array of little-endian `i32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct LeI32s<'a>(#[serde(borrow)] pub &'a [u8]);

impl<'a> LeI32s<'a> {
    /// Wraps raw bytes; the length is checked by validation, not here.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// Number of whole elements.
    pub const fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// True when there are no elements.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`, or `None` past the end.
    #[inline]
    pub fn get(&self, i: usize) -> Option<i32> {
        let b = self.0.get(i * 4..i * 4 + 4)?;
        Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// All elements in order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + 'a {
        self.0
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Encodes `values` as little-endian bytes (the inverse of [`LeI32s`]).
#[cfg(feature = "std")]
pub fn i32s_to_le(values: &[i32]) -> std::vec::Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
