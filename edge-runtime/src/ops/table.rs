//! The format's table: each output element is the entry its input byte indexes (NUMERICS.md).
//!
//! The host evaluated the op the table stands for (an int8 → int8 QUANTIZE, a MUL or ADD by a
//! constant) once per input byte, so there is no arithmetic here to get wrong: one load per
//! element. The 256 entries are taken as an array once, so the `u8` index cannot miss and the
//! loop has no panic path.

use shared_format::TABLE_LEN;

use super::{KernelError, KernelResult};

/// Writes `values[x as u8]` for every input element `x`.
pub fn table(values: &[u8], input: &[i8], output: &mut [i8]) -> KernelResult {
    let values: &[u8; TABLE_LEN] = values
        .try_into()
        .map_err(|_| KernelError("a table holds 256 values"))?;
    if input.len() != output.len() {
        return Err(KernelError("table input and output lengths differ"));
    }
    for (&x, y) in input.iter().zip(output.iter_mut()) {
        *y = values[x as u8 as usize] as i8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_each_byte_up() {
        let values: Vec<u8> = (0..=255u8).map(|b| b.wrapping_mul(3)).collect();
        let x = [0i8, 1, -1, 127, -128, 85];
        let mut y = [0i8; 6];
        table(&values, &x, &mut y).unwrap();
        let want: Vec<i8> = x.iter().map(|&v| (v as u8).wrapping_mul(3) as i8).collect();
        assert_eq!(y.to_vec(), want);
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let values = [0u8; 256];
        assert!(table(&values[..255], &[0; 3], &mut [0; 3]).is_err());
        assert!(table(&values, &[0; 3], &mut [0; 2]).is_err());
    }
}
