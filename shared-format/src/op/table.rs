//! An elementwise function of an 8-bit input given by its 256 values (format 1.5).
//!
//! Every TFLite int8 op of one activation input that treats each element alone is a function
//! from 256 possible bytes to 256: a mid-graph QUANTIZE (int8 → int8 requantization), a MUL or
//! ADD whose other operand is one constant (a hard-sigmoid gate's `· 1/6`, its `+ 3`), and any
//! chain of them. The host evaluates TFLM's integer arithmetic once per input byte, with the
//! same kernels the device would run, and the device only looks the answer up: bit-exact by
//! construction, one load per element, and no parameter that could make a kernel overflow.

use serde::{Deserialize, Serialize};

use crate::tensor::TensorId;

/// Entries of a [`Table`]: one per input byte.
pub const TABLE_LEN: usize = 256;

/// `y = values[x as u8]`: the input's byte (its two's-complement bits, so `−1` reads entry 255)
/// indexes the output's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table<'a> {
    /// Input activation.
    pub input: TensorId,
    /// Output activation: the input's shape.
    pub output: TensorId,
    /// [`TABLE_LEN`] output values as bytes, each inside the output's bit range.
    #[serde(borrow)]
    pub values: &'a [u8],
}

impl Table<'_> {
    /// The output for input `x`; `None` only for a table of the wrong length, which validation
    /// refuses.
    #[inline]
    pub fn lookup(&self, x: i8) -> Option<i8> {
        self.values.get(x as u8 as usize).map(|&v| v as i8)
    }
}

/// The table of `f` over every input byte, in the order [`Table::lookup`] reads it.
#[cfg(feature = "std")]
pub fn table_of(mut f: impl FnMut(i8) -> i8) -> std::vec::Vec<u8> {
    (0..TABLE_LEN).map(|b| f(b as u8 as i8) as u8).collect()
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn the_input_byte_indexes_the_table() {
        let values = table_of(|x| x.saturating_mul(2));
        let t = Table {
            input: 0,
            output: 1,
            values: &values,
        };
        assert_eq!(t.lookup(0), Some(0));
        assert_eq!(t.lookup(3), Some(6));
        assert_eq!(t.lookup(-1), Some(-2));
        assert_eq!(t.lookup(-128), Some(-128));
        assert_eq!(t.lookup(127), Some(127));
        assert_eq!(values[255], (-2i8) as u8);
        let short = Table {
            values: &values[..10],
            ..t
        };
        assert_eq!(short.lookup(-1), None);
    }
}
