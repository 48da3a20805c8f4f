//! The x86-64 host kernels: the same exact integer sums as the reference loops, sixteen bytes at
//! a time with SSE2's `PMADDWD` (eight 16×16-bit products summed pairwise into four 32-bit
//! lanes). SSE2 is part of the x86-64 baseline, so every x86-64 CPU runs them and no run-time
//! detection is needed.
//!
//! Why by hand: rustc's auto-vectoriser turns the portable i8 dot product into scalar
//! `MOVSX`/`IMUL` with spilled partial sums (measured on the ResNet-8 convolutions), which left
//! the host runtime slower than TFLM's reference kernels.
//!
//! Each 16-byte chunk is widened to two vectors of 16-bit lanes (`PUNPCKxBW` with itself, then
//! an arithmetic shift right by 8: sign extension without SSE4.1); activations are centred on
//! their zero point there, `x − z_x` in −255..=255, so a product `w·(x − z_x)` fits in 17 bits
//! and `PMADDWD`'s pairwise sum cannot overflow its 32-bit lane. Lanes add wrapping, like every
//! other accumulator of the runtime, so results equal the reference loops bit for bit.
//!
//! The module's only `unsafe` is calling the `#[target_feature(enable = "sse2")]` functions,
//! which is sound on every x86-64 target; the bodies use safe intrinsics and `bytemuck` loads.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_cvtsi64_si128, _mm_madd_epi16, _mm_set1_epi16, _mm_setzero_si128,
    _mm_srai_epi16, _mm_sub_epi16, _mm_unpackhi_epi8, _mm_unpacklo_epi8,
};

use super::dsp::Runs;

/// `Σ w·x` over the common length of `w` and `x`.
#[inline]
pub(crate) fn dot(w: &[i8], x: &[i8]) -> i32 {
    // SAFETY: SSE2 is in the x86-64 baseline: every CPU this code is compiled for has it.
    unsafe { dot_sse2(w, x) }
}

/// [`super::dsp::window`]'s work for `4·acc.len()` channels: `acc[q][k]` becomes
/// `Σ_runs Σ_i w[(4q + k)·stride + r·w_step + i]·(x[r·x_step + i] − z_x)`. The caller has
/// checked that every run lies inside `x` and `w`; a run that did not would be left out.
#[inline]
pub(crate) fn quad_words(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    acc: &mut [[i32; 4]],
) {
    // SAFETY: SSE2 is in the x86-64 baseline: every CPU this code is compiled for has it.
    unsafe { quad_words_sse2(x, w, stride, runs, z_x, acc) }
}

#[target_feature(enable = "sse2")]
fn dot_sse2(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len());
    let (w16, w_rest) = w[..n].as_chunks::<16>();
    let (x16, x_rest) = x[..n].as_chunks::<16>();
    let mut acc = _mm_setzero_si128();
    for (w, x) in w16.iter().zip(x16) {
        let (wl, wh) = widen(load16(w));
        let (xl, xh) = widen(load16(x));
        acc = _mm_add_epi32(acc, _mm_madd_epi16(wl, xl));
        acc = _mm_add_epi32(acc, _mm_madd_epi16(wh, xh));
    }
    let (w8, w_rest) = w_rest.as_chunks::<8>();
    let (x8, x_rest) = x_rest.as_chunks::<8>();
    for (w, x) in w8.iter().zip(x8) {
        let (wl, _) = widen(load8(w));
        let (xl, _) = widen(load8(x));
        acc = _mm_add_epi32(acc, _mm_madd_epi16(wl, xl));
    }
    let tail = w_rest
        .iter()
        .zip(x_rest)
        .fold(0i32, |a, (&w, &x)| a.wrapping_add(w as i32 * x as i32));
    lane_sum(acc).wrapping_add(tail)
}

#[target_feature(enable = "sse2")]
fn quad_words_sse2(x: &[i8], w: &[i8], stride: usize, runs: Runs, z_x: i8, acc: &mut [[i32; 4]]) {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    let centre = _mm_set1_epi16(z_x as i16);
    for (q, out) in acc.iter_mut().enumerate() {
        let mut lanes = [_mm_setzero_si128(); 4];
        let mut tail = [0i32; 4];
        for r in 0..rows {
            let xs = x.get(r * x_step..).and_then(|x| x.get(..len));
            let filter = |k: usize| {
                let start = (4 * q + k) * stride + r * w_step;
                w.get(start..).and_then(|w| w.get(..len))
            };
            let (Some(xs), Some(w0), Some(w1), Some(w2), Some(w3)) =
                (xs, filter(0), filter(1), filter(2), filter(3))
            else {
                continue;
            };
            quad_run(xs, [w0, w1, w2, w3], centre, &mut lanes, &mut tail, z_x);
        }
        for ((o, l), t) in out.iter_mut().zip(lanes).zip(tail) {
            *o = lane_sum(l).wrapping_add(t);
        }
    }
}

/// One run of four channels: each activation chunk is widened and centred once, then multiplied
/// into all four filters.
#[inline]
#[target_feature(enable = "sse2")]
fn quad_run(
    xs: &[i8],
    ws: [&[i8]; 4],
    centre: __m128i,
    lanes: &mut [__m128i; 4],
    tail: &mut [i32; 4],
    z_x: i8,
) {
    let (x16, x_rest) = xs.as_chunks::<16>();
    let [(a16, a_rest), (b16, b_rest), (c16, c_rest), (d16, d_rest)] =
        ws.map(|w| w.as_chunks::<16>());
    let [mut la, mut lb, mut lc, mut ld] = *lanes;
    for ((((x, a), b), c), d) in x16.iter().zip(a16).zip(b16).zip(c16).zip(d16) {
        let (xl, xh) = widen(load16(x));
        let (xl, xh) = (_mm_sub_epi16(xl, centre), _mm_sub_epi16(xh, centre));
        la = mac(la, load16(a), xl, xh);
        lb = mac(lb, load16(b), xl, xh);
        lc = mac(lc, load16(c), xl, xh);
        ld = mac(ld, load16(d), xl, xh);
    }
    // At most one 8-byte chunk, then fewer than 8 single bytes.
    let (x8, x_rest) = x_rest.as_chunks::<8>();
    let rests = [a_rest, b_rest, c_rest, d_rest].map(|w| w.as_chunks::<8>());
    if let Some(x) = x8.first() {
        let (xl, _) = widen(load8(x));
        let xl = _mm_sub_epi16(xl, centre);
        let half = |l: __m128i, w: &[[i8; 8]]| match w.first() {
            Some(w) => _mm_add_epi32(l, _mm_madd_epi16(widen(load8(w)).0, xl)),
            None => l,
        };
        la = half(la, rests[0].0);
        lb = half(lb, rests[1].0);
        lc = half(lc, rests[2].0);
        ld = half(ld, rests[3].0);
    }
    for (t, (_, w)) in tail.iter_mut().zip(rests) {
        for (&w, &x) in w.iter().zip(x_rest) {
            *t = t.wrapping_add(w as i32 * (x as i32 - z_x as i32));
        }
    }
    *lanes = [la, lb, lc, ld];
}

/// `l + Σ w·x` over 16 bytes of `w` and the widened, centred activations `(xl, xh)`.
#[inline]
#[target_feature(enable = "sse2")]
fn mac(l: __m128i, w: __m128i, xl: __m128i, xh: __m128i) -> __m128i {
    let (wl, wh) = widen(w);
    _mm_add_epi32(
        _mm_add_epi32(l, _mm_madd_epi16(wl, xl)),
        _mm_madd_epi16(wh, xh),
    )
}

/// The low and high eight bytes of `v`, sign-extended to 16-bit lanes.
#[inline]
#[target_feature(enable = "sse2")]
fn widen(v: __m128i) -> (__m128i, __m128i) {
    (
        _mm_srai_epi16::<8>(_mm_unpacklo_epi8(v, v)),
        _mm_srai_epi16::<8>(_mm_unpackhi_epi8(v, v)),
    )
}

#[inline]
#[target_feature(enable = "sse2")]
fn load16(b: &[i8; 16]) -> __m128i {
    bytemuck::cast(*b)
}

/// Eight bytes in the low half, zeros above.
#[inline]
#[target_feature(enable = "sse2")]
fn load8(b: &[i8; 8]) -> __m128i {
    _mm_cvtsi64_si128(i64::from_le_bytes(b.map(|v| v as u8)))
}

/// The wrapping sum of the four 32-bit lanes.
#[inline]
#[target_feature(enable = "sse2")]
fn lane_sum(v: __m128i) -> i32 {
    let l: [i32; 4] = bytemuck::cast(v);
    l.iter().fold(0i32, |a, &x| a.wrapping_add(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift32;

    /// A deterministic byte stream covering the extremes (xorshift, then forced corners).
    fn bytes(n: usize, seed: u32) -> Vec<i8> {
        let mut rng = XorShift32::new(seed | 1);
        (0..n)
            .map(|i| {
                let s = rng.next_u32();
                match i % 11 {
                    0 => -128,
                    5 => 127,
                    _ => s as i8,
                }
            })
            .collect()
    }

    #[test]
    fn dot_equals_scalar_sum_at_every_length() {
        for n in 0..80 {
            let (w, x) = (bytes(n, 7 + n as u32), bytes(n + 3, 99));
            let expect = w
                .iter()
                .zip(&x)
                .fold(0i32, |a, (&w, &x)| a.wrapping_add(w as i32 * x as i32));
            assert_eq!(dot(&w, &x), expect, "n = {n}");
        }
        // All −128: the largest products, still exact.
        assert_eq!(dot(&[-128; 64], &[-128; 64]), 64 * 16384);
    }

    #[test]
    fn quads_equal_centred_sums() {
        for len in [1usize, 7, 8, 9, 15, 16, 17, 24, 31, 48, 192] {
            for z_x in [-128i8, -1, 0, 3, 127] {
                let (rows, x_step, w_step, stride) = (3, len + 5, len + 2, 3 * (len + 2) + 1);
                let runs = Runs {
                    rows,
                    len,
                    x_step,
                    w_step,
                };
                let x = bytes(rows * x_step, len as u32);
                let w = bytes(8 * stride, (300 + z_x as i32) as u32);
                let mut got = [[0i32; 4]; 2];
                quad_words(&x, &w, stride, runs, z_x, &mut got);
                for (c, &g) in got.as_flattened().iter().enumerate() {
                    let mut e = 0i32;
                    for r in 0..rows {
                        for i in 0..len {
                            let (wv, xv) = (w[c * stride + r * w_step + i], x[r * x_step + i]);
                            e = e.wrapping_add(wv as i32 * (xv as i32 - z_x as i32));
                        }
                    }
                    assert_eq!(g, e, "len {len} z_x {z_x} channel {c}");
                }
            }
        }
    }
}
