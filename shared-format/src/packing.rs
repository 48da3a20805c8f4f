//! Sub-byte weight packing, as TFLM and CMSIS-NN store it (EDGE_ANCHORS §3.6): two's complement,
//! 4-bit values two per byte with element `2i` in the low nibble, 2-bit values four per byte
//! LSB first. Matching that order keeps blobs convertible to and from `.tflite` without repacking.

/// Bytes needed for `count` values of `bits` (2, 4 or 8), or `None` on overflow.
pub const fn packed_len(count: u64, bits: u8) -> Option<u64> {
    match count.checked_mul(bits as u64) {
        Some(b) => Some(b.div_ceil(8)),
        None => None,
    }
}

/// Value `index` of a packed array. `bits` must be 2, 4 or 8 and `index` in range.
#[inline]
pub fn unpack_one(data: &[u8], bits: u8, index: usize) -> i8 {
    match bits {
        8 => data[index] as i8,
        4 => {
            let byte = data[index / 2];
            let nibble = if index.is_multiple_of(2) {
                byte << 4
            } else {
                byte & 0xF0
            };
            (nibble as i8) >> 4
        }
        _ => {
            let byte = data[index / 4];
            let shift = 6 - 2 * (index % 4);
            ((byte << shift) as i8) >> 6
        }
    }
}

/// Unpacks `out.len()` values starting at element `start` into `out`.
///
/// Whole bytes are unpacked as straight-line loops over `chunks_exact` (two 4-bit or four 2-bit
/// values per byte: shifts only, no per-element index arithmetic, so they vectorize); only a
/// misaligned head and a partial tail go value by value. This is the tile unpacker the kernels
/// call once per output channel (conv, linear) or per channel tile and tap (depthwise).
#[inline]
pub fn unpack_into(data: &[u8], bits: u8, start: usize, out: &mut [i8]) {
    match bits {
        8 => {
            let n = out.len();
            for (o, &b) in out.iter_mut().zip(&data[start..start + n]) {
                *o = b as i8;
            }
        }
        4 => unpack_sub_byte::<4, 2>(data, start, out, |b, o| {
            o[0] = ((b << 4) as i8) >> 4;
            o[1] = (b as i8) >> 4;
        }),
        _ => unpack_sub_byte::<2, 4>(data, start, out, |b, o| {
            o[0] = ((b << 6) as i8) >> 6;
            o[1] = ((b << 4) as i8) >> 6;
            o[2] = ((b << 2) as i8) >> 6;
            o[3] = (b as i8) >> 6;
        }),
    }
}

/// `unpack_into` for `BITS`-wide values, `PER` to a byte: value by value up to a byte boundary,
/// then whole bytes through `byte`, then the remaining values of a last partial byte.
#[inline(always)]
fn unpack_sub_byte<const BITS: u8, const PER: usize>(
    data: &[u8],
    start: usize,
    out: &mut [i8],
    byte: impl Fn(u8, &mut [i8]),
) {
    let head = ((PER - start % PER) % PER).min(out.len());
    let (first, rest) = out.split_at_mut(head);
    for (k, o) in first.iter_mut().enumerate() {
        *o = unpack_one(data, BITS, start + k);
    }
    let e = start + head; // a multiple of PER whenever `rest` is not empty
    let whole = rest.len() / PER;
    let (body, tail) = rest.split_at_mut(whole * PER);
    for (o, &b) in body
        .chunks_exact_mut(PER)
        .zip(&data[e / PER..e / PER + whole])
    {
        byte(b, o);
    }
    let e = e + whole * PER;
    for (k, o) in tail.iter_mut().enumerate() {
        *o = unpack_one(data, BITS, e + k);
    }
}

/// Why values could not be packed.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// Bit-width other than 2, 4 or 8.
    #[error("cannot pack {0}-bit values: storage is 2, 4 or 8 bits")]
    Bits(u8),
    /// A value outside the signed range of the bit-width.
    #[error("value {value} at {index} does not fit in {bits} signed bits")]
    Range {
        /// Value.
        value: i8,
        /// Position.
        index: usize,
        /// Bits.
        bits: u8,
    },
}

/// Packs signed values into `bits`-wide storage.
#[cfg(feature = "std")]
pub fn pack(values: &[i8], bits: u8) -> Result<std::vec::Vec<u8>, PackError> {
    if !matches!(bits, 2 | 4 | 8) {
        return Err(PackError::Bits(bits));
    }
    let (lo, hi) = (crate::tensor::qmin(bits), crate::tensor::qmax(bits));
    if let Some((index, &value)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !(lo..=hi).contains(*v))
    {
        return Err(PackError::Range { value, index, bits });
    }
    let per_byte = 8 / bits as usize;
    let mask = ((1u16 << bits) - 1) as u8;
    Ok(values
        .chunks(per_byte)
        .map(|chunk| {
            chunk.iter().enumerate().fold(0u8, |acc, (k, &v)| {
                acc | (((v as u8) & mask) << (k * bits as usize))
            })
        })
        .collect())
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_tflm_examples() {
        // EDGE_ANCHORS §3.6: [1,2,3,4] → [0x21, 0x43]; 0x12 → {−2, 0, 1, 0}.
        assert_eq!(pack(&[1, 2, 3, 4], 4).unwrap(), vec![0x21, 0x43]);
        let mut out = [0i8; 4];
        unpack_into(&[0x12], 2, 0, &mut out);
        assert_eq!(out, [-2, 0, 1, 0]);
        assert_eq!(pack(&[-2, 0, 1, 0], 2).unwrap(), vec![0x12]);
        assert_eq!(
            pack(&[1, 2, 3], 4).unwrap(),
            vec![0x21, 0x03],
            "odd tail in a low nibble"
        );
    }

    #[test]
    fn refuses_out_of_range() {
        assert_eq!(
            pack(&[0, 8], 4),
            Err(PackError::Range {
                value: 8,
                index: 1,
                bits: 4
            })
        );
        assert_eq!(
            pack(&[2], 2),
            Err(PackError::Range {
                value: 2,
                index: 0,
                bits: 2
            })
        );
        assert_eq!(pack(&[0], 3), Err(PackError::Bits(3)));
    }

    proptest! {
        #[test]
        fn round_trips(bits in prop::sample::select(vec![2u8, 4, 8]), seed in prop::collection::vec(any::<i8>(), 0..64), start in 0usize..8) {
            let values: Vec<i8> = seed.iter().map(|v| v >> (8 - bits)).collect();
            let packed = pack(&values, bits).unwrap();
            prop_assert_eq!(packed.len() as u64, packed_len(values.len() as u64, bits).unwrap());
            let start = start.min(values.len());
            let mut out = vec![0i8; values.len() - start];
            unpack_into(&packed, bits, start, &mut out);
            prop_assert_eq!(&out[..], &values[start..]);
            for (i, v) in values.iter().enumerate() {
                prop_assert_eq!(unpack_one(&packed, bits, i), *v);
            }
        }
    }
}
