//! The bracket scan of [`super::order_statistics`] on AVX-512, in one pass: per 16 values, the
//! keys, two compares per bracket, and the values inside each bracket compressed to the front
//! of a register (`VPCOMPRESSD`) and appended.
//!
//! Safe code: `pulp`'s `V4` token proves the CPU has the instructions and its intrinsics take
//! and return registers, never pointers.

use core::arch::x86_64::__m512i;

use pulp::x86::V4;

use super::{Scan, inside, total_key};

/// The scan, or `None` where the CPU lacks AVX-512. It keeps the values inside both brackets
/// (unless a bracket is a single value): the counts that would say which are needed come from
/// the same pass.
pub(super) fn scan(values: &[f32], brackets: [(i32, i32); 2]) -> Option<Scan> {
    let simd = V4::try_new()?;
    Some(simd.vectorize(
        #[inline(always)]
        || {
            let x86 = simd.avx512f;
            let low = brackets.map(|(a, _)| x86._mm512_set1_epi32(a));
            let width = brackets.map(|(a, b)| x86._mm512_set1_epi32(b.wrapping_sub(a)));
            let keep = brackets.map(|(a, b)| a != b);
            let mut scan = Scan::default();
            let mut chunks = values.chunks_exact(16);
            for chunk in &mut chunks {
                let chunk: [f32; 16] = chunk.try_into().expect("chunks of 16");
                let x: __m512i = pulp::cast(chunk);
                // total_key: flip the magnitude bits of negative values.
                let sign = x86._mm512_srai_epi32::<31>(x);
                let key = x86._mm512_xor_si512(x, x86._mm512_srli_epi32::<1>(sign));
                for j in 0..2 {
                    let below = x86._mm512_cmplt_epi32_mask(key, low[j]);
                    scan.below[j] += below.count_ones() as usize;
                    let offset = x86._mm512_sub_epi32(key, low[j]);
                    let hit = x86._mm512_cmple_epu32_mask(offset, width[j]);
                    // Most blocks hold nothing inside. (Writing all 16 lanes at the list's end
                    // unconditionally, to spare the mispredicted branches, measured slower or
                    // no faster here.)
                    if hit == 0 {
                        continue;
                    }
                    let count = hit.count_ones() as usize;
                    scan.within[j] += count;
                    if keep[j] {
                        let packed: [f32; 16] = pulp::cast(x86._mm512_maskz_compress_epi32(hit, x));
                        scan.inside[j].extend_from_slice(&packed[..count]);
                    }
                }
            }
            for &v in chunks.remainder() {
                let k = total_key(v);
                for j in 0..2 {
                    scan.below[j] += usize::from(k < brackets[j].0);
                    if inside(k, brackets[j]) {
                        scan.within[j] += 1;
                        if keep[j] {
                            scan.inside[j].push(v);
                        }
                    }
                }
            }
            scan
        },
    ))
}
