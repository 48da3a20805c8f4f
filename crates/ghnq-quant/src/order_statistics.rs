//! Exact order statistics of large tensors without a sort: the percentile ranges of every
//! percentile-clipped GHN-QAT step and calibration, one per activation tensor per batch.
//!
//! A small deterministic sample brackets each rank; a scan of the tensor counts the values
//! below and inside each bracket and keeps those inside (about 2 % of them), and a selection
//! among those finds the rank. A bracket that misses (the check is exact) falls back to
//! selecting in a copy of everything.
//!
//! The scan is the whole cost. On AVX-512 hosts it is one pass that compresses the values inside
//! each bracket out of 16-value registers ([`avx512`]); elsewhere two passes, a vectorised count,
//! then a bit mask per 16 values whose set bits alone are visited.

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Values sampled to place the brackets.
const SAMPLE: usize = 4096;

/// What a scan of the tensor found, per bracket `[a, b]` (keys, inclusive).
#[derive(Debug, Default, PartialEq)]
struct Scan {
    /// Values below `a`.
    below: [usize; 2],
    /// Values inside `[a, b]`.
    within: [usize; 2],
    /// The values inside, in any order, where the bracket's rank lies inside it (the others may
    /// be empty).
    inside: [Vec<f32>; 2],
}

/// The `ranks[i]`-th smallest of `values` in `f32::total_cmp` order, exactly.
pub(crate) fn order_statistics(values: &[f32], ranks: [usize; 2]) -> [f32; 2] {
    let n = values.len();
    let select = |k: usize| {
        let mut v = values.to_vec();
        *v.select_nth_unstable_by(k, f32::total_cmp).1
    };
    if n <= 8 * SAMPLE {
        return ranks.map(select);
    }
    let brackets = brackets(values, ranks);
    let mut scan = scan(values, brackets, ranks);
    let mut out = [0.0f32; 2];
    for j in 0..2 {
        let (a, b) = brackets[j];
        let (below, within) = (scan.below[j], scan.within[j]);
        out[j] = if !(below <= ranks[j] && ranks[j] < below + within) {
            select(ranks[j])
        } else if a == b {
            // The bracket is one value (the zeros of a ReLU output), so it is the answer.
            f32::from_bits(total_key_inverse(a))
        } else {
            let mut inside = std::mem::take(&mut scan.inside[j]);
            *inside
                .select_nth_unstable_by(ranks[j] - below, f32::total_cmp)
                .1
        };
    }
    out
}

/// Each rank's bracket of keys, from a hashed sample: five standard errors of the rank's
/// position in the sample on either side, so that a bracket misses (and the fallback runs)
/// about once in a million calls on any data without a period the hash could meet.
fn brackets(values: &[f32], ranks: [usize; 2]) -> [(i32, i32); 2] {
    let n = values.len();
    // Hashed positions, so a period in the data (channels of an NHWC tensor) cannot alias.
    let mut sample: Vec<i32> = (0..SAMPLE as u64)
        .map(|i| {
            let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            total_key(values[((h >> 11) % n as u64) as usize])
        })
        .collect();
    sample.sort_unstable();
    ranks.map(|k| {
        let q = k as f64 / (n - 1) as f64;
        let margin = (5.0 * (SAMPLE as f64 * q * (1.0 - q)).sqrt()).ceil() as usize + 2;
        let at = k * (SAMPLE - 1) / (n - 1);
        (
            sample[at.saturating_sub(margin)],
            sample[(at + margin).min(SAMPLE - 1)],
        )
    })
}

/// The scan on the best path this CPU has.
fn scan(values: &[f32], brackets: [(i32, i32); 2], ranks: [usize; 2]) -> Scan {
    #[cfg(target_arch = "x86_64")]
    if let Some(scan) = avx512::scan(values, brackets) {
        return scan;
    }
    portable_scan(values, brackets, ranks)
}

/// `k − a ≤ b − a` in wrapping unsigned arithmetic is `a ≤ k ≤ b` in one compare.
#[inline(always)]
fn inside(key: i32, (a, b): (i32, i32)) -> bool {
    (key.wrapping_sub(a) as u32) <= b.wrapping_sub(a) as u32
}

/// The scan in two passes of plain Rust, compiled for the best instruction set there is: a count,
/// then, for the brackets whose rank lies inside, a bit mask per 16 values whose set bits alone
/// are visited.
fn portable_scan(values: &[f32], brackets: [(i32, i32); 2], ranks: [usize; 2]) -> Scan {
    ghnq_core::cnn::native::simd(
        #[inline(always)]
        || {
            let mut scan = Scan::default();
            for chunk in values.chunks(4096) {
                // u32 lanes the compiler vectorises; a chunk's counts cannot overflow them.
                let mut c = [0u32; 4];
                for &v in chunk {
                    let k = total_key(v);
                    c[0] += u32::from(k < brackets[0].0);
                    c[1] += u32::from(inside(k, brackets[0]));
                    c[2] += u32::from(k < brackets[1].0);
                    c[3] += u32::from(inside(k, brackets[1]));
                }
                scan.below[0] += c[0] as usize;
                scan.within[0] += c[1] as usize;
                scan.below[1] += c[2] as usize;
                scan.within[1] += c[3] as usize;
            }
            let keep = [0, 1].map(|j| {
                let (a, b) = brackets[j];
                let (below, within) = (scan.below[j], scan.within[j]);
                a != b && below <= ranks[j] && ranks[j] < below + within
            });
            if keep == [false, false] {
                return scan;
            }
            // A bracket not kept borrows the kept one's test, so it adds no visits; its list is
            // dropped at the end.
            let test = [0, 1].map(|j| {
                if keep[j] {
                    brackets[j]
                } else {
                    brackets[1 - j]
                }
            });
            for (j, list) in scan.inside.iter_mut().enumerate() {
                if keep[j] {
                    list.reserve(scan.within[j]);
                }
            }
            let mut chunks = values.chunks_exact(16);
            for chunk in &mut chunks {
                let chunk: &[f32; 16] = chunk.try_into().expect("chunks of 16");
                let mut masks = [0u32; 2];
                for (i, &v) in chunk.iter().enumerate() {
                    let k = total_key(v);
                    for (m, &t) in masks.iter_mut().zip(&test) {
                        *m |= u32::from(inside(k, t)) << i;
                    }
                }
                if masks == [0, 0] {
                    continue;
                }
                for (list, mut m) in scan.inside.iter_mut().zip(masks) {
                    while m != 0 {
                        list.push(chunk[m.trailing_zeros() as usize]);
                        m &= m - 1;
                    }
                }
            }
            for &v in chunks.remainder() {
                let k = total_key(v);
                for (list, &t) in scan.inside.iter_mut().zip(&test) {
                    if inside(k, t) {
                        list.push(v);
                    }
                }
            }
            for (list, keep) in scan.inside.iter_mut().zip(keep) {
                if !keep {
                    *list = Vec::new();
                }
            }
            scan
        },
    )
}

/// `f32::total_cmp`'s order as an `i32` (the same bit trick): integer compares vectorise.
#[inline(always)]
fn total_key(v: f32) -> i32 {
    let b = v.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}

/// The bits whose [`total_key`] is `k`: the flip leaves the sign bit alone, so it undoes itself.
#[inline(always)]
fn total_key_inverse(k: i32) -> u32 {
    (k ^ (((k >> 31) as u32) >> 1) as i32) as u32
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `n` test values of `kind`: 0 uniform; 1 a few levels (ties, like ReLU zeros and 4-bit
    /// codes); 2 a channel period whose last channel is far larger (a strided sample would
    /// miss it).
    pub(crate) fn values(rng: &mut impl Rng, n: usize, kind: usize) -> Vec<f32> {
        (0..n)
            .map(|i| match kind {
                0 => rng.random_range(-5.0f32..7.0),
                1 => (rng.random_range(0..5) as f32 - 1.0).max(0.0),
                _ => rng.random_range(-1.0f32..1.0) + if i % 64 == 63 { 40.0 } else { 0.0 },
            })
            .collect()
    }

    /// Both scans find the same counts and, where a rank lies inside its bracket, the same
    /// values (as multisets), on uniform data, few levels with ties, and channel periods.
    #[test]
    fn avx512_scan_equals_the_portable_scan() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for (n, kind) in [40_000usize, 65_537, 300_001]
            .into_iter()
            .flat_map(|n| [(n, 0), (n, 1), (n, 2)])
        {
            let v = values(&mut rng, n, kind);
            for p in [0.5f64, 0.01, 0.2] {
                let ranks = [
                    (p * (n - 1) as f64) as usize,
                    ((1.0 - p) * (n - 1) as f64) as usize,
                ];
                let b = brackets(&v, ranks);
                let want = portable_scan(&v, b, ranks);
                #[cfg(target_arch = "x86_64")]
                if let Some(mut got) = avx512::scan(&v, b) {
                    assert_eq!((got.below, got.within), (want.below, want.within));
                    for j in 0..2 {
                        if want.inside[j].is_empty() && !got.inside[j].is_empty() {
                            // The AVX-512 scan keeps every bracket's values.
                            got.inside[j].clear();
                        }
                        let mut g = std::mem::take(&mut got.inside[j]);
                        let mut w = want.inside[j].clone();
                        g.sort_by(f32::total_cmp);
                        w.sort_by(f32::total_cmp);
                        assert_eq!(g, w, "n {n}, kind {kind}, p {p}, bracket {j}");
                    }
                }
                assert_eq!(order_statistics(&v, ranks), {
                    let mut s = v.clone();
                    s.sort_by(f32::total_cmp);
                    ranks.map(|k| s[k])
                });
            }
        }
    }
}
