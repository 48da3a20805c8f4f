//! The x86-64 host kernels of [`super::sse2`] again with AVX2 (issues 17/18): the same exact
//! integer sums, sixteen 16-bit lanes per `VPMADDWD` instead of eight. Only [`x86_64`](super) calls
//! them, and only after the CPU reported AVX2 (run-time detection: the binary still runs on
//! every x86-64 CPU, taking the SSE2 kernels where AVX2 is missing).
//!
//! Widening is one `VPMOVSXBW` per sixteen bytes (SSE4.1's sign extension, which AVX2 implies)
//! instead of SSE2's unpack-and-shift pairs, and the lanes keep the order of the bytes, so:
//! * [`quad_words`] centres sixteen activations once (`x − z_x` in −255..=255) and multiplies
//!   them into eight filters with one `VPMADDWD` each; each product fits in 17 bits and a pair
//!   in 18, so the 32-bit lanes are exact and add wrapping, like every accumulator here;
//! * [`depthwise_pixel`] interleaves two taps' sixteen channels (`PUNPCKxBW`), widens each half
//!   to sixteen 16-bit lanes, and one `VPMADDWD` gives eight channels' `(w₀ − z_w)(x₀ − z_x) +
//!   (w₁ − z_w)(x₁ − z_x)`, channel `j` in lane `j`.
//!
//! The module's `unsafe`: [`depthwise_pixel`] loads its vectors unchecked, as the SSE2 kernel
//! does, once [`super::depthwise_pixel`] has bounds-checked every tap of the pixel. Its
//! callers' `unsafe` is the AVX2 requirement of the `#[target_feature(enable = "avx2")]`
//! functions, met by the detection in [`x86_64`](super).

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128i, __m256i, _mm_add_epi32, _mm_unpackhi_epi8, _mm_unpacklo_epi8, _mm256_add_epi32,
    _mm256_castsi256_si128, _mm256_cvtepi8_epi16, _mm256_cvtepu16_epi32, _mm256_extracti128_si256,
    _mm256_hadd_epi32, _mm256_madd_epi16, _mm256_set1_epi16, _mm256_setzero_si256,
    _mm256_sub_epi16,
};

use super::sse2::{load8, load8_at, load16, load16_at};
use crate::ops::simd::{Runs, Tap};

/// [`super::sse2::quad_words`] with AVX2: `acc[q][k]` becomes
/// `Σ_runs Σ_i w[(4q + k)·stride + r·w_step + i]·(x[r·x_step + i] − z_x)`. A run outside `x`
/// or `w` (which the caller has ruled out) would be left out.
///
/// Eight channels a pass (a lone last quad four): each sixteen activations are widened and
/// centred once for all eight filters, and a pixel's short runs (a 1×1 convolution's is one run
/// of C_in bytes) pay their slicing and the final lane sums once per eight channels.
#[target_feature(enable = "avx2")]
pub(super) fn quad_words(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    acc: &mut [[i32; 4]],
) {
    let (octs, quads) = acc.as_chunks_mut::<2>();
    for (o, out) in octs.iter_mut().enumerate() {
        let s = channels::<8, 2>(x, w, stride, runs, z_x, 8 * o);
        *out = s;
    }
    if let Some(out) = quads.first_mut() {
        let [s] = channels::<4, 1>(x, w, stride, runs, z_x, 8 * octs.len());
        *out = s;
    }
}

/// The sums of [`quad_words`] for the `N = 4·Q` channels from `first`.
#[inline]
#[target_feature(enable = "avx2")]
fn channels<const N: usize, const Q: usize>(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    first: usize,
) -> [[i32; 4]; Q] {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    let centre = _mm256_set1_epi16(z_x as i16);
    let mut lanes = [_mm256_setzero_si256(); N];
    let mut tail = [0i32; N];
    'rows: for r in 0..rows {
        let Some(xs) = run(x, r * x_step, len) else {
            continue;
        };
        let mut ws = [&[][..]; N];
        for (k, ws) in ws.iter_mut().enumerate() {
            let Some(f) = run(w, (first + k) * stride + r * w_step, len) else {
                continue 'rows;
            };
            *ws = f;
        }
        accumulate(xs, ws, centre, &mut lanes, &mut tail, z_x);
    }
    let mut out = [[0i32; 4]; Q];
    let (l4, _) = lanes.as_chunks::<4>();
    let (t4, _) = tail.as_chunks::<4>();
    for ((o, l), t) in out.iter_mut().zip(l4).zip(t4) {
        for ((o, s), t) in o.iter_mut().zip(lane_sums(*l)).zip(t) {
            *o = s.wrapping_add(*t);
        }
    }
    out
}

/// `v[start..start + len]`, if inside `v`. A plain function, not `Option` combinators with
/// closures: those were left uninlined in the AVX2 function, a call per run with its
/// accumulators spilled around it.
#[inline(always)]
fn run(v: &[i8], start: usize, len: usize) -> Option<&[i8]> {
    v.get(start..)?.get(..len)
}

/// One run of `N` channels (runs of equal length): each sixteen activations are widened and
/// centred once, then multiplied into all `N` filters.
#[inline]
#[target_feature(enable = "avx2")]
fn accumulate<const N: usize>(
    xs: &[i8],
    ws: [&[i8]; N],
    centre: __m256i,
    lanes: &mut [__m256i; N],
    tail: &mut [i32; N],
    z_x: i8,
) {
    let (x16, x_rest) = xs.as_chunks::<16>();
    // Every filter's chunks cut to exactly the activations' count, so that the compiler sees
    // each index below in bounds (otherwise a check per filter and chunk).
    let n = x16.len();
    let mut w16: [&[[i8; 16]]; N] = [&[]; N];
    let mut w_rest: [&[i8]; N] = [&[]; N];
    for ((c, r), w) in w16.iter_mut().zip(&mut w_rest).zip(ws) {
        let (chunks, rest) = w.as_chunks::<16>();
        // Runs of equal length: never short.
        let Some(chunks) = chunks.get(..n) else {
            return;
        };
        (*c, *r) = (chunks, rest);
    }
    let mut l = *lanes;
    for (i, x) in x16.iter().enumerate() {
        let xc = _mm256_sub_epi16(_mm256_cvtepi8_epi16(load16(x)), centre);
        for (l, w) in l.iter_mut().zip(&w16) {
            if let Some(w) = w.get(i) {
                *l = mac(*l, load16(w), xc);
            }
        }
    }
    // At most one 8-byte chunk: its upper eight 16-bit lanes hold −z_x, against weights that
    // widen to 0 there, so they add nothing. Then fewer than 8 single bytes.
    // (Loops, not `array::map`: that was left uninlined here too.)
    let (x8, x_rest) = x_rest.as_chunks::<8>();
    if let Some(x) = x8.first() {
        let xc = _mm256_sub_epi16(_mm256_cvtepi8_epi16(load8(x)), centre);
        for (l, w) in l.iter_mut().zip(&w_rest) {
            if let Some(w) = w.as_chunks::<8>().0.first() {
                *l = mac(*l, load8(w), xc);
            }
        }
    }
    if !x_rest.is_empty() {
        for (t, w) in tail.iter_mut().zip(w_rest) {
            for (&w, &x) in w.as_chunks::<8>().1.iter().zip(x_rest) {
                *t = t.wrapping_add(w as i32 * (x as i32 - z_x as i32));
            }
        }
    }
    *lanes = l;
}

/// `l + Σ w·x` over sixteen bytes of `w` and sixteen widened, centred activations `xc`.
#[inline]
#[target_feature(enable = "avx2")]
fn mac(l: __m256i, w: __m128i, xc: __m256i) -> __m256i {
    _mm256_add_epi32(l, _mm256_madd_epi16(_mm256_cvtepi8_epi16(w), xc))
}

/// The wrapping sums of the eight 32-bit lanes of each of four vectors (`VPHADDD` wraps).
#[inline]
#[target_feature(enable = "avx2")]
fn lane_sums([a, b, c, d]: [__m256i; 4]) -> [i32; 4] {
    // [a01 a23 b01 b23 | a45 a67 b45 b67], the same for c and d, then [a b c d] per half.
    let abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    let s = _mm_add_epi32(
        _mm256_castsi256_si128(abcd),
        _mm256_extracti128_si256::<1>(abcd),
    );
    bytemuck::cast(s)
}

/// [`super::sse2::depthwise_pixel`] with AVX2: `acc[j] = Σ_taps (w[t.w + j] − z_w)·(x[t.x + j]
/// − z_x)`, wrapping, sixteen channels and two taps at a time (a lone last tap paired with
/// zeros), then eight channels the same way, then fewer than eight in plain Rust.
///
/// # Safety
/// The CPU has AVX2, and for every tap `t`: `t.x + acc.len() ≤ x.len()` and
/// `t.w + acc.len() ≤ w.len()` (the vector loads are unchecked).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn depthwise_pixel(
    x: &[i8],
    w: &[i8],
    taps: &[Tap],
    z_x: i8,
    z_w: i8,
    acc: &mut [i32],
) {
    // SAFETY: this function's contract, passed on.
    unsafe {
        if z_w == 0 {
            pixel::<false>(x, w, taps, z_x, z_w, acc);
        } else {
            pixel::<true>(x, w, taps, z_x, z_w, acc);
        }
    }
}

/// [`depthwise_pixel`]'s body; `AFFINE` false skips the weight centring (`z_w = 0`).
///
/// # Safety
/// As [`depthwise_pixel`].
#[target_feature(enable = "avx2")]
unsafe fn pixel<const AFFINE: bool>(
    x: &[i8],
    w: &[i8],
    taps: &[Tap],
    z_x: i8,
    z_w: i8,
    acc: &mut [i32],
) {
    let (cx, cw) = (_mm256_set1_epi16(z_x as i16), _mm256_set1_epi16(z_w as i16));
    let (pairs, lone) = taps.as_chunks::<2>();
    let lone = lone.first();
    let (a16, rest) = acc.as_chunks_mut::<16>();
    for (g, out) in a16.iter_mut().enumerate() {
        let c = 16 * g;
        let mut l = [_mm256_setzero_si256(); 2];
        // SAFETY (all loads of this loop): c + 16 ≤ acc.len(), so every 16-byte load at
        // t.x + c or t.w + c ends inside its slice (this function's contract).
        for [t0, t1] in pairs {
            let (x0, x1) = unsafe { (load16_at(x, t0.x + c), load16_at(x, t1.x + c)) };
            let (w0, w1) = unsafe { (load16_at(w, t0.w + c), load16_at(w, t1.w + c)) };
            let xs = pairs16::<true>(x0, x1, cx);
            let ws = pairs16::<AFFINE>(w0, w1, cw);
            madd(&mut l, xs, ws);
        }
        if let Some(t) = lone {
            let (x0, w0) = unsafe { (load16_at(x, t.x + c), load16_at(w, t.w + c)) };
            madd(&mut l, lone16(x0, cx), lone16(w0, cw));
        }
        *out = bytemuck::cast(l);
    }
    let c = 16 * a16.len();
    let (a8, rest) = rest.as_chunks_mut::<8>();
    if let Some(out) = a8.first_mut() {
        let mut l = [_mm256_setzero_si256(); 1];
        // SAFETY (all loads of this block): c + 8 ≤ acc.len(), so every 8-byte load at t.x + c
        // or t.w + c ends inside its slice (this function's contract).
        for [t0, t1] in pairs {
            let (x0, x1) = unsafe { (load8_at(x, t0.x + c), load8_at(x, t1.x + c)) };
            let (w0, w1) = unsafe { (load8_at(w, t0.w + c), load8_at(w, t1.w + c)) };
            let [xs, _] = pairs16::<true>(x0, x1, cx);
            let [ws, _] = pairs16::<AFFINE>(w0, w1, cw);
            madd(&mut l, [xs], [ws]);
        }
        if let Some(t) = lone {
            let (x0, w0) = unsafe { (load8_at(x, t.x + c), load8_at(w, t.w + c)) };
            let ([xs, _], [ws, _]) = (lone16(x0, cx), lone16(w0, cw));
            madd(&mut l, [xs], [ws]);
        }
        *out = bytemuck::cast(l);
    }
    let c = c + 8 * a8.len();
    for (j, a) in rest.iter_mut().enumerate() {
        let mut sum = 0i32;
        for t in taps {
            let (Some(&xv), Some(&wv)) = (x.get(t.x + c + j), w.get(t.w + c + j)) else {
                continue;
            };
            sum = sum.wrapping_add((wv as i32 - z_w as i32) * (xv as i32 - z_x as i32));
        }
        *a = sum;
    }
}

/// Sixteen channels of two taps `a` and `b`, interleaved byte by byte (`a₀ b₀ a₁ b₁ …`),
/// sign-extended to 16 bits and (if `CENTRE`) centred on `centre`: two vectors of pairs, for
/// channels 0–7 and 8–15. (Only the first is used when the upper eight bytes are not loaded.)
#[inline]
#[target_feature(enable = "avx2")]
fn pairs16<const CENTRE: bool>(a: __m128i, b: __m128i, centre: __m256i) -> [__m256i; 2] {
    let lo = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b));
    let hi = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(a, b));
    if CENTRE {
        [_mm256_sub_epi16(lo, centre), _mm256_sub_epi16(hi, centre)]
    } else {
        [lo, hi]
    }
}

/// Sixteen channels of a lone tap, each centred on `centre` and paired with a 16-bit zero
/// (zero-extended after the centring, so the zeros add nothing whatever the zero points).
#[inline]
#[target_feature(enable = "avx2")]
fn lone16(a: __m128i, centre: __m256i) -> [__m256i; 2] {
    let v = _mm256_sub_epi16(_mm256_cvtepi8_epi16(a), centre);
    [
        _mm256_cvtepu16_epi32(_mm256_castsi256_si128(v)),
        _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(v)),
    ]
}

/// `l[k] += VPMADDWD(xs[k], ws[k])`: per 32-bit lane, the sum of the two products of a pair.
#[inline]
#[target_feature(enable = "avx2")]
fn madd<const N: usize>(l: &mut [__m256i; N], xs: [__m256i; N], ws: [__m256i; N]) {
    for ((l, x), w) in l.iter_mut().zip(xs).zip(ws) {
        *l = _mm256_add_epi32(*l, _mm256_madd_epi16(x, w));
    }
}
