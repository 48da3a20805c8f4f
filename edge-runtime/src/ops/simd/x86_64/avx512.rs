//! The x86-64 host kernels of [`super::avx2`] again with AVX-512 VNNI (issue 17): the same exact
//! integer sums, four byte products per 32-bit lane and instruction (`VPDPBUSD`) instead of two
//! 16-bit ones after a widening. Only [`x86_64`](super) calls them, and only after the CPU reported
//! AVX-512 F/BW/VL and VNNI (run-time detection: the binary still runs on every x86-64 CPU,
//! taking the AVX2 or SSE2 kernels where they are missing). The vectors are 256-bit (`VL`): on
//! Zen 4 a 512-bit operation is two 256-bit halves anyway, and short runs (a 3×3 window's rows
//! of 3·C_in bytes) would leave more of a 64-byte vector empty.
//!
//! `VPDPBUSD` multiplies *unsigned* bytes by signed ones and adds each group of four products
//! into a 32-bit lane without saturating (`|Σ| ≤ 4·255·128 < 2^17`). Activations are signed,
//! so they go in as `x ^ 0x80 = x + 128` (as u8) and the sum is corrected exactly:
//! `Σ w·(x − z_x) = Σ w·(x + 128) − (128 + z_x)·Σ w`, with `Σ w` from a second `VPDPBUSD`
//! against a vector of ones. Every lane adds wrapping, like every accumulator here, and the
//! identity holds modulo 2^32, so the results equal the reference loops bit for bit.
//! * [`quad_words`] flips 32 activations once and multiplies them into eight filters;
//!   [`quad_words_summed`] is the same given the filters' sums, which a convolution's whole
//!   windows (every pixel off the border) share: half the `VPDPBUSD`s;
//! * [`depthwise_pixel`] interleaves four taps' channels byte by byte (`PUNPCKxBW` then
//!   `PUNPCKxWD`), so one `VPDPBUSD` adds four taps' products of eight channels, channel `j` in
//!   lane `j` (after one lane reordering per 32 channels). Affine weights (`z_w ≠ 0`) add
//!   `−z_w·Σ (x + 128) + z_w·(128 + z_x)·T` over the `T` taps;
//! * [`output_stage`] requantizes eight channels a step, written as the scalar `scale_plain`
//!   is (AVX2's signed `VPMULDQ` and per-lane `VPSRAVD`, AVX-512's `VPMOVDB` to narrow) instead
//!   of SSE2's four a step with unsigned-multiply corrections: with one output per nine MACs
//!   it was most of a depthwise convolution's time once the sums were fast.
//!
//! Measured on Zen 4 (the runtime's `kernel_speed` test, all levels in one process): 1.5–2.3×
//! AVX2's speed on 8/4/2-bit convolutions, 1.5–2.2× on depthwise ones with symmetric weights
//! (1.1× affine), and 1.2× less CPU time for a whole `ghnq eval` of CIFAR-10 nets at W8A8 and
//! W4A4.
//!
//! The summed kernel (the block's filter sums, once per block, for every whole window) took
//! 8–20 % off 1×1 and 3×3 convolutions over 32–128 channels and left 3×3 ones over 16 or at
//! 8×8 pixels as they were (`kernel_speed`, the old and new builds alternated twice, pinned,
//! every other process stopped).
//!
//! Tails (fewer than 32 bytes of a run, fewer than 32 channels) are AVX-512BW masked loads
//! (`VMOVDQU8` with a zeroing mask): lanes past the tail read as zero weights and never touch
//! memory, so there is no scalar loop and no read past a slice.
//!
//! The module's `unsafe`: those masked loads, [`depthwise_pixel`]'s unchecked as in the other
//! kernels once [`super::depthwise_pixel`] has bounds-checked every tap of the pixel. Its callers' `unsafe` is the requirement of the
//! `#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]` functions, met by
//! the detection in [`x86_64`](super).

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m256i, __mmask32, _mm_add_epi32, _mm256_add_epi32, _mm256_add_epi64, _mm256_and_si256,
    _mm256_blend_epi32, _mm256_castsi256_si128, _mm256_cmpgt_epi32, _mm256_cvtepi32_epi8,
    _mm256_dpbusd_epi32, _mm256_extracti128_si256, _mm256_hadd_epi32, _mm256_maskz_loadu_epi8,
    _mm256_max_epi32, _mm256_min_epi32, _mm256_mul_epi32, _mm256_mullo_epi32,
    _mm256_permute2x128_si256, _mm256_set1_epi8, _mm256_set1_epi32, _mm256_set1_epi64x,
    _mm256_setzero_si256, _mm256_slli_epi64, _mm256_sllv_epi64, _mm256_srai_epi32,
    _mm256_srav_epi32, _mm256_srav_epi64, _mm256_srli_epi64, _mm256_sub_epi32, _mm256_sub_epi64,
    _mm256_unpackhi_epi8, _mm256_unpackhi_epi16, _mm256_unpacklo_epi8, _mm256_unpacklo_epi16,
    _mm256_xor_si256,
};

use crate::ops::conv::BLOCK;
use crate::ops::simd::{Runs, Tap};
use crate::requant::ChannelRequant;
use shared_format::Clamp;

/// The bytes `mask` selects of the 32 from `at` in `v`, zeros in the other lanes.
///
/// # Safety
/// `at ≤ v.len()`, and every byte `mask` selects lies inside `v`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn load_masked(v: &[i8], at: usize, mask: __mmask32) -> __m256i {
    // SAFETY: the caller's bounds put `at` inside `v` or one past it, and every byte the mask
    // selects inside `v`; masked-off bytes are not accessed (AVX-512 fault suppression).
    unsafe { _mm256_maskz_loadu_epi8(mask, v.as_ptr().add(at)) }
}

/// The mask of the first `len` bytes of 32 (`len ≤ 32`).
#[inline(always)]
fn first(len: usize) -> __mmask32 {
    if len >= 32 { !0 } else { (1u32 << len) - 1 }
}

/// [`super::sse2::quad_words`] with AVX-512 VNNI: `acc[q][k]` becomes
/// `Σ_runs Σ_i w[(4q + k)·stride + r·w_step + i]·(x[r·x_step + i] − z_x)`. A run outside `x`
/// or `w` (which the caller has ruled out) would be left out, as in [`super::avx2`].
///
/// Eight channels a pass (a lone last quad four), as in [`super::avx2`]: each 32 activations
/// are flipped once for all eight filters, and the slicing and lane sums are paid once per
/// eight channels.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
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
        *out = channels::<8, 2, true>(x, w, stride, runs, z_x, 8 * o);
    }
    if let Some(out) = quads.first_mut() {
        let [s] = channels::<4, 1, true>(x, w, stride, runs, z_x, 8 * octs.len());
        *out = s;
    }
}

/// [`quad_words`] given each channel's weight sum over its runs, `w_sums[4q + k]` (wrapping),
/// which the caller has for every run inside `x` and `w` (a left-out run would leave its
/// weights in the sum): then each 32 activations cost one `VPDPBUSD` per filter instead of two.
/// A convolution's whole windows (every pixel off the border) are such runs, and it sums each
/// block's filters once per call instead of once per pixel.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn quad_words_summed(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    w_sums: &[i32],
    acc: &mut [[i32; 4]],
) {
    let (octs, quads) = acc.as_chunks_mut::<2>();
    for (o, out) in octs.iter_mut().enumerate() {
        *out = channels::<8, 2, false>(x, w, stride, runs, z_x, 8 * o);
    }
    if let Some(out) = quads.first_mut() {
        let [s] = channels::<4, 1, false>(x, w, stride, runs, z_x, 8 * octs.len());
        *out = s;
    }
    // Σ w·(x − z_x) = Σ w·(x + 128) − (128 + z_x)·Σ w (wrapping), as in `channels`.
    let c = 128 + i32::from(z_x);
    for (a, &s) in acc.as_flattened_mut().iter_mut().zip(w_sums) {
        *a = a.wrapping_sub(s.wrapping_mul(c));
    }
}

/// `sums[c]` = the wrapping sum of `filters[c·len..][..len]` for every `c` of `sums`, 32 bytes
/// a `VPDPBUSD` against ones (what [`quad_words`] spends per pixel, here once per block of
/// filters: [`quad_words_summed`]'s sums). `filters` holds at least `sums.len()·len` bytes
/// (else the sums past its end are left as they were).
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn filter_sums(filters: &[i8], len: usize, sums: &mut [i32]) {
    let ones = _mm256_set1_epi8(1);
    for (s, f) in sums.iter_mut().zip(filters.chunks_exact(len.max(1))) {
        let (f32s, rest) = f.as_chunks::<32>();
        let mut acc = _mm256_setzero_si256();
        for w in f32s {
            acc = _mm256_dpbusd_epi32(acc, ones, bytemuck::cast(*w));
        }
        if !rest.is_empty() {
            // SAFETY: the first `rest.len()` (< 32) bytes of `rest`; the others are not read.
            let w = unsafe { load_masked(rest, 0, first(rest.len())) };
            acc = _mm256_dpbusd_epi32(acc, ones, w);
        }
        let [a, _, _, _] = lane_sums([
            acc,
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
        ]);
        *s = a;
    }
}

/// The sums of [`quad_words`] for the `N = 4·Q` channels from `first_channel`; without `SUMS`
/// the raw `Σ w·(x + 128)` of [`quad_words_summed`], whose caller subtracts the rest.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn channels<const N: usize, const Q: usize, const SUMS: bool>(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    first_channel: usize,
) -> [[i32; 4]; Q] {
    let Runs {
        rows,
        len,
        x_step,
        w_step,
    } = runs;
    // Per filter: Σ w·(x + 128) and (with `SUMS`) Σ w, lane by lane.
    let mut products = [_mm256_setzero_si256(); N];
    let mut sums = [_mm256_setzero_si256(); N];
    'rows: for r in 0..rows {
        let Some(xs) = run(x, r * x_step, len) else {
            continue;
        };
        let mut ws = [&[][..]; N];
        for (k, ws) in ws.iter_mut().enumerate() {
            let Some(f) = run(w, (first_channel + k) * stride + r * w_step, len) else {
                continue 'rows;
            };
            *ws = f;
        }
        accumulate::<N, SUMS>(xs, ws, &mut products, &mut sums);
    }
    let mut lanes = products;
    if SUMS {
        // Σ w·(x − z_x) = Σ w·(x + 128) − (128 + z_x)·Σ w, lane by lane (wrapping), then summed.
        let c = _mm256_set1_epi32(128 + z_x as i32);
        for (l, s) in lanes.iter_mut().zip(sums) {
            *l = _mm256_sub_epi32(*l, _mm256_mullo_epi32(s, c));
        }
    }
    let mut out = [[0i32; 4]; Q];
    let (l4, _) = lanes.as_chunks::<4>();
    for (o, l) in out.iter_mut().zip(l4) {
        *o = lane_sums(*l);
    }
    out
}

/// `v[start..start + len]`, if inside `v` (a plain function: see [`super::avx2`]'s twin).
#[inline(always)]
fn run(v: &[i8], start: usize, len: usize) -> Option<&[i8]> {
    v.get(start..)?.get(..len)
}

/// One run of `N` channels (runs of equal length): 32 activations flipped once, then
/// multiplied into all `N` filters (and, with `SUMS`, into ones for the filters' sums); the last
/// fewer than 32 bytes from masked loads.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn accumulate<const N: usize, const SUMS: bool>(
    xs: &[i8],
    ws: [&[i8]; N],
    products: &mut [__m256i; N],
    sums: &mut [__m256i; N],
) {
    let (flip, ones) = (_mm256_set1_epi8(-128), _mm256_set1_epi8(1));
    let (x32, x_rest) = xs.as_chunks::<32>();
    // Every filter's chunks cut to exactly the activations' count, so that the compiler sees
    // each index below in bounds (otherwise a check per filter and chunk).
    let n = x32.len();
    let mut w32: [&[[i8; 32]]; N] = [&[]; N];
    let mut w_rest: [&[i8]; N] = [&[]; N];
    for ((c, r), w) in w32.iter_mut().zip(&mut w_rest).zip(ws) {
        let (chunks, rest) = w.as_chunks::<32>();
        // Runs of equal length: never short.
        let (Some(chunks), true) = (chunks.get(..n), rest.len() == x_rest.len()) else {
            return;
        };
        (*c, *r) = (chunks, rest);
    }
    let (mut p, mut s) = (*products, *sums);
    for (i, x) in x32.iter().enumerate() {
        let xu = _mm256_xor_si256(bytemuck::cast(*x), flip);
        for ((p, s), w) in p.iter_mut().zip(&mut s).zip(&w32) {
            if let Some(w) = w.get(i) {
                let w = bytemuck::cast(*w);
                *p = _mm256_dpbusd_epi32(*p, xu, w);
                if SUMS {
                    *s = _mm256_dpbusd_epi32(*s, ones, w);
                }
            }
        }
    }
    if !x_rest.is_empty() {
        let mask = first(x_rest.len());
        // SAFETY: each load reads the first `x_rest.len()` (< 32) bytes of a slice of that
        // length (all filters' rests were checked equal to it above).
        let xu = _mm256_xor_si256(unsafe { load_masked(x_rest, 0, mask) }, flip);
        for ((p, s), w) in p.iter_mut().zip(&mut s).zip(w_rest) {
            // SAFETY: as above. Lanes past the tail hold zero weights: they add nothing.
            let w = unsafe { load_masked(w, 0, mask) };
            *p = _mm256_dpbusd_epi32(*p, xu, w);
            if SUMS {
                *s = _mm256_dpbusd_epi32(*s, ones, w);
            }
        }
    }
    (*products, *sums) = (p, s);
}

/// The wrapping sums of the eight 32-bit lanes of each of four vectors (`VPHADDD` wraps).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn lane_sums([a, b, c, d]: [__m256i; 4]) -> [i32; 4] {
    let abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    let s = _mm_add_epi32(
        _mm256_castsi256_si128(abcd),
        _mm256_extracti128_si256::<1>(abcd),
    );
    bytemuck::cast(s)
}

/// [`super::sse2::depthwise_pixel`] with AVX-512 VNNI: `acc[j] = Σ_taps (w[t.w + j] − z_w)·
/// (x[t.x + j] − z_x)`, wrapping, 32 channels and four taps at a time (the last one to three
/// taps padded with zero weights), the last fewer than 32 channels through masked loads.
///
/// # Safety
/// The CPU has AVX2, AVX-512 F/BW/VL and VNNI, and for every tap `t`:
/// `t.x + acc.len() ≤ x.len()` and `t.w + acc.len() ≤ w.len()` (the vector loads are
/// unchecked).
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
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

/// [`depthwise_pixel`]'s body; `AFFINE` false skips the `Σ (x + 128)` term (`z_w = 0`).
///
/// # Safety
/// As [`depthwise_pixel`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pixel<const AFFINE: bool>(
    x: &[i8],
    w: &[i8],
    taps: &[Tap],
    z_x: i8,
    z_w: i8,
    acc: &mut [i32],
) {
    let (full, tail) = acc.as_chunks_mut::<32>();
    for (g, out) in full.iter_mut().enumerate() {
        // SAFETY: 32·g + 32 ≤ acc.len(): the contract covers all 32 bytes of every tap.
        *out = unsafe { group::<AFFINE>(x, w, taps, z_x, z_w, 32 * g, !0) };
    }
    if !tail.is_empty() {
        let c0 = 32 * full.len();
        // SAFETY: c0 + tail.len() = acc.len(): the contract covers the bytes the mask selects.
        let out = unsafe { group::<AFFINE>(x, w, taps, z_x, z_w, c0, first(tail.len())) };
        for (d, o) in tail.iter_mut().zip(out) {
            *d = o;
        }
    }
}

/// The 32 channels from `c0` of [`pixel`], those past `mask`'s bytes undefined.
///
/// # Safety
/// The CPU has the features enabled here, and for every tap `t` the bytes `mask` selects from
/// `t.x + c0` and `t.w + c0` lie inside `x` and `w`, with `t.x + c0 ≤ x.len()` and
/// `t.w + c0 ≤ w.len()`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn group<const AFFINE: bool>(
    x: &[i8],
    w: &[i8],
    taps: &[Tap],
    z_x: i8,
    z_w: i8,
    c0: usize,
    mask: __mmask32,
) -> [i32; 32] {
    let flip = _mm256_set1_epi8(-128);
    let (quads, rest) = taps.as_chunks::<4>();
    // Per lane (four channels each of the interleaved quarters): Σ w·(x + 128), Σ w and, for
    // affine weights, Σ (x + 128).
    let mut p = [_mm256_setzero_si256(); 4];
    let mut s = [_mm256_setzero_si256(); 4];
    let mut sx = [_mm256_setzero_si256(); 4];
    // SAFETY (all loads below): each selects bytes this function's contract puts inside its
    // slice, from an offset inside it or one past it.
    for [t0, t1, t2, t3] in quads {
        let xs = unsafe {
            [
                load_masked(x, t0.x + c0, mask),
                load_masked(x, t1.x + c0, mask),
                load_masked(x, t2.x + c0, mask),
                load_masked(x, t3.x + c0, mask),
            ]
        };
        let ws = unsafe {
            [
                load_masked(w, t0.w + c0, mask),
                load_masked(w, t1.w + c0, mask),
                load_masked(w, t2.w + c0, mask),
                load_masked(w, t3.w + c0, mask),
            ]
        };
        dot4::<AFFINE>(xs, ws, &mut p, &mut s, &mut sx);
    }
    if !rest.is_empty() {
        // Padding taps: activations −128 (so x + 128 = 0, adding nothing to Σ (x + 128))
        // against zero weights.
        let (mut xs, mut ws) = ([flip; 4], [_mm256_setzero_si256(); 4]);
        for ((xv, wv), t) in xs.iter_mut().zip(&mut ws).zip(rest) {
            *xv = unsafe { load_masked(x, t.x + c0, mask) };
            *wv = unsafe { load_masked(w, t.w + c0, mask) };
        }
        dot4::<AFFINE>(xs, ws, &mut p, &mut s, &mut sx);
    }
    // Σ (w − z_w)(x − z_x) = Σ w·(x + 128) − (128 + z_x)·Σ w
    //                        [− z_w·Σ (x + 128) + z_w·(128 + z_x)·T], wrapping.
    let c = 128 + z_x as i32;
    let cv = _mm256_set1_epi32(c);
    let zw = _mm256_set1_epi32(z_w as i32);
    let k = _mm256_set1_epi32((z_w as i32).wrapping_mul(c).wrapping_mul(taps.len() as i32));
    let mut r = [_mm256_setzero_si256(); 4];
    for (((r, p), s), sx) in r.iter_mut().zip(p).zip(s).zip(sx) {
        *r = _mm256_sub_epi32(p, _mm256_mullo_epi32(s, cv));
        if AFFINE {
            *r = _mm256_add_epi32(*r, _mm256_sub_epi32(k, _mm256_mullo_epi32(sx, zw)));
        }
    }
    // The quarters hold channels [0–3 | 16–19], [4–7 | 20–23], [8–11 | 24–27] and
    // [12–15 | 28–31] (lane-wise unpacks): back to 0–7, 8–15, 16–23, 24–31.
    bytemuck::cast([
        _mm256_permute2x128_si256::<0x20>(r[0], r[1]),
        _mm256_permute2x128_si256::<0x20>(r[2], r[3]),
        _mm256_permute2x128_si256::<0x31>(r[0], r[1]),
        _mm256_permute2x128_si256::<0x31>(r[2], r[3]),
    ])
}

/// Four taps' 32 channels into the sums of [`group`]: `p += Σ w·(x + 128)`, `s += Σ w`,
/// `sx += Σ (x + 128)` (if `AFFINE`), each lane one channel.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot4<const AFFINE: bool>(
    xs: [__m256i; 4],
    ws: [__m256i; 4],
    p: &mut [__m256i; 4],
    s: &mut [__m256i; 4],
    sx: &mut [__m256i; 4],
) {
    let (flip, ones) = (_mm256_set1_epi8(-128), _mm256_set1_epi8(1));
    let (xq, wq) = (interleave4(xs), interleave4(ws));
    for i in 0..4 {
        let xu = _mm256_xor_si256(xq[i], flip);
        p[i] = _mm256_dpbusd_epi32(p[i], xu, wq[i]);
        s[i] = _mm256_dpbusd_epi32(s[i], ones, wq[i]);
        if AFFINE {
            sx[i] = _mm256_dpbusd_epi32(sx[i], xu, ones);
        }
    }
}

/// Four taps' 32 channels interleaved byte by byte, channel by channel: each result's 32-bit
/// lanes hold one channel's four tap bytes `[t₀ t₁ t₂ t₃]`, for channels [0–3 | 16–19],
/// [4–7 | 20–23], [8–11 | 24–27] and [12–15 | 28–31] (the unpacks stay within 128-bit halves).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn interleave4([a, b, c, d]: [__m256i; 4]) -> [__m256i; 4] {
    let (ab_lo, ab_hi) = (_mm256_unpacklo_epi8(a, b), _mm256_unpackhi_epi8(a, b));
    let (cd_lo, cd_hi) = (_mm256_unpacklo_epi8(c, d), _mm256_unpackhi_epi8(c, d));
    [
        _mm256_unpacklo_epi16(ab_lo, cd_lo),
        _mm256_unpackhi_epi16(ab_lo, cd_lo),
        _mm256_unpacklo_epi16(ab_hi, cd_hi),
        _mm256_unpackhi_epi16(ab_hi, cd_hi),
    ]
}

/// Per-channel constants of [`output_stage`], one `i32` per channel of a block (lanes past the
/// block's stages zero: their outputs are discarded), built beside [`super::sse2::PlainStages`]'
/// own: of plain stages ([`StageLanes::new`]), or of single rounding's stages of any shift
/// ([`StageLanes::single`]).
#[derive(Clone, Copy)]
pub(crate) struct StageLanes {
    bias: [i32; BLOCK],
    /// `ChannelRequant::plain_parts`' multiplier and mask (the mask unused by `single`).
    m: [i32; BLOCK],
    mask: [i32; BLOCK],
    /// Plain stages: the final arithmetic shift, as `scale_plain` wraps it: double `right`,
    /// single `right − 32` (mod 32). `single`: the whole right shift, 1..=62.
    shift: [i32; BLOCK],
    /// The output zero point and clamp: `clamp(s + z_y)` is `min(max(s, lo), hi) + z_y` with
    /// `lo = min − z_y`, `hi = max − z_y`, which cannot overflow.
    z_y: i32,
    lo: i32,
    hi: i32,
}

impl StageLanes {
    /// The constants of plain `stage`s (at most [`BLOCK`], as checked by `PlainStages::new`).
    pub(super) fn new(
        stage: &[ChannelRequant],
        bias: &[i32],
        double: bool,
        z_y: i8,
        clamp: Clamp,
    ) -> Self {
        let mut l = Self {
            bias: [0; BLOCK],
            m: [0; BLOCK],
            mask: [0; BLOCK],
            shift: [0; BLOCK],
            z_y: z_y as i32,
            lo: clamp.min as i32 - z_y as i32,
            hi: clamp.max as i32 - z_y as i32,
        };
        for (k, (st, &b)) in stage.iter().zip(bias).enumerate().take(BLOCK) {
            let (m, mask, right) = st.plain_parts();
            let shift = if double {
                right as u32
            } else {
                (right as u32).wrapping_sub(32)
            };
            (l.bias[k], l.m[k], l.mask[k], l.shift[k]) = (b, m, mask, (shift & 31) as i32);
        }
        l
    }

    /// The constants of single-rounding `stage`s, plain or not (at most [`BLOCK`]), for
    /// [`output_stage`] with `WHOLE`; `None` unless the CPU has AVX-512 VNNI, so that holding such
    /// lanes proves it does.
    pub(super) fn single(
        stage: &[ChannelRequant],
        bias: &[i32],
        z_y: i8,
        clamp: Clamp,
    ) -> Option<SingleLanes> {
        if super::Isa::detected() != super::Isa::Avx512Vnni {
            return None;
        }
        let mut l = Self::new(&[], &[], false, z_y, clamp);
        for (k, (st, &b)) in stage.iter().zip(bias).enumerate().take(BLOCK) {
            let (m, _, right) = st.plain_parts();
            (l.bias[k], l.m[k], l.shift[k]) = (b, m, i32::from(right));
        }
        Some(SingleLanes(l))
    }
}

/// [`StageLanes`] of single-rounding stages of any shift, which exist only on CPUs with
/// AVX-512 VNNI ([`StageLanes::single`]): [`SingleLanes::apply`] runs their
/// [`output_stage`] on that proof.
#[derive(Clone, Copy)]
pub(crate) struct SingleLanes(StageLanes);

impl SingleLanes {
    /// [`output_stage`] of these lanes.
    #[inline]
    pub(super) fn apply(&self, acc: &[i32], ys: &mut [i8]) {
        // SAFETY: a `SingleLanes` is made only by `StageLanes::single`, after `Isa::detected()`
        // (CPUID and XGETBV) reported AVX-512 F/BW/VL and VNNI usable.
        unsafe { output_stage::<false, true>(&self.0, acc, ys) }
    }
}

/// `ys[j] = clamp(scale_plain(bias[j] + acc[j]) + z_y)` for `j` below the common length of
/// `acc` and `ys` (at most [`BLOCK`]), eight channels a step: the same integers as
/// `ChannelRequant::apply_plain`, written as it is (`VPMULDQ` is AVX2's signed 32×32→64-bit
/// multiply, `VPSRAVD` its per-lane shift: none of SSE2's unsigned-multiply corrections),
/// narrowed by AVX-512's `VPMOVDB`. Beside it, [`super::sse2::PlainStages`] takes four channels
/// per step and some twenty instructions per channel. `WHOLE`: single-rounding stages of any
/// shift ([`StageLanes::single`], [`eight_whole`]) instead.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn output_stage<const DOUBLE: bool, const WHOLE: bool>(
    l: &StageLanes,
    acc: &[i32],
    ys: &mut [i8],
) {
    // Closures inherit the function's target features: `eight` and `eight_whole` are safe
    // to call here.
    let eight = |l: &StageLanes, c: usize, a: __m256i| {
        if WHOLE {
            eight_whole(l, c, a)
        } else {
            eight::<DOUBLE>(l, c, a)
        }
    };
    let n = acc.len().min(ys.len()).min(BLOCK);
    let (a8, a_rest) = acc[..n].as_chunks::<8>();
    let (y8, y_rest) = ys[..n].as_chunks_mut::<8>();
    for (g, (y, a)) in y8.iter_mut().zip(a8).enumerate() {
        *y = eight(l, 8 * g, bytemuck::cast(*a));
    }
    if !y_rest.is_empty() {
        // The last partial eight, through a padded copy (lanes past it ignored).
        let mut a = [0i32; 8];
        for (d, &s) in a.iter_mut().zip(a_rest) {
            *d = s;
        }
        let y = eight(l, 8 * y8.len(), bytemuck::cast(a));
        for (d, s) in y_rest.iter_mut().zip(y) {
            *d = s;
        }
    }
}

/// Eight outputs of [`output_stage`], channels `c..c + 8` (`c + 8 ≤ BLOCK`).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn eight<const DOUBLE: bool>(l: &StageLanes, c: usize, acc: __m256i) -> [i8; 8] {
    let lane = |v: &[i32; BLOCK]| -> __m256i {
        match v.get(c..).and_then(|v| v.first_chunk::<8>()) {
            Some(v) => bytemuck::cast(*v),
            None => _mm256_setzero_si256(),
        }
    };
    let (m, mask, shift) = (lane(&l.m), lane(&l.mask), lane(&l.shift));
    let a = _mm256_add_epi32(acc, lane(&l.bias));
    // a·m per 64-bit lane: channels 0, 2, 4, 6 (low halves), then 1, 3, 5, 7 (high halves).
    let even = _mm256_mul_epi32(a, m);
    let odd = _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(m));
    let scaled = if DOUBLE {
        // high = (a·m + 2^30) >> 31 (its low 32 bits, as the reference's `as i32`): bits
        // 31..=62 of each sum, moved to the even lanes' low and the odd lanes' high halves.
        let half = _mm256_set1_epi64x(1 << 30);
        let e = _mm256_srli_epi64::<31>(_mm256_add_epi64(even, half));
        let o = _mm256_slli_epi64::<1>(_mm256_add_epi64(odd, half));
        let high = _mm256_blend_epi32::<0b1010_1010>(e, o);
        // RDBPOT: + 1 where the remainder exceeds (mask >> 1) + [high < 0].
        let threshold =
            _mm256_sub_epi32(_mm256_srai_epi32::<1>(mask), _mm256_srai_epi32::<31>(high));
        let up = _mm256_cmpgt_epi32(_mm256_and_si256(high, mask), threshold);
        _mm256_sub_epi32(_mm256_srav_epi32(high, shift), up)
    } else {
        // ((a·m >> 32) + mask) >> (right − 32), wrapping: the products' high halves.
        let high = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
        _mm256_srav_epi32(_mm256_add_epi32(high, mask), shift)
    };
    narrow(l, scaled)
}

/// `clamp(scaled + z_y)` as bytes: `min(max(s, lo), hi) + z_y`, which equals the reference's
/// saturating add then clamp and cannot overflow.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn narrow(l: &StageLanes, scaled: __m256i) -> [i8; 8] {
    let (lo, hi) = (_mm256_set1_epi32(l.lo), _mm256_set1_epi32(l.hi));
    let y = _mm256_add_epi32(
        _mm256_min_epi32(_mm256_max_epi32(scaled, lo), hi),
        _mm256_set1_epi32(l.z_y),
    );
    let bytes: [i8; 16] = bytemuck::cast(_mm256_cvtepi32_epi8(y));
    let mut out = [0i8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

/// Eight outputs of single-rounding stages of any shift ([`StageLanes::single`]), channels
/// `c..c + 8` (`c + 8 ≤ BLOCK`), as [`eight`] for plain ones. A stage that is not plain (a right
/// shift of 32 or less: at 2 and 4 bits the output scale is close to the accumulator's, so most
/// stages there) has no 32-bit form: its `(a·m + 2^(right−1)) >> right` is taken whole in 64-bit
/// lanes (`VPSRAVQ`, AVX-512's per-lane arithmetic shift of quadwords), the same integers as
/// `ChannelRequant::scale`'s. Without it those blocks ran the scalar loop.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn eight_whole(l: &StageLanes, c: usize, acc: __m256i) -> [i8; 8] {
    let lane = |v: &[i32; BLOCK]| -> __m256i {
        match v.get(c..).and_then(|v| v.first_chunk::<8>()) {
            Some(v) => bytemuck::cast(*v),
            None => _mm256_setzero_si256(),
        }
    };
    let (m, right) = (lane(&l.m), lane(&l.shift));
    let a = _mm256_add_epi32(acc, lane(&l.bias));
    // a·m per 64-bit lane: channels 0, 2, 4, 6 (low halves), then 1, 3, 5, 7 (high halves);
    // each within ±2^62, so adding 2^(right − 1) ≤ 2^61 cannot overflow.
    let even = _mm256_mul_epi32(a, m);
    let odd = _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(m));
    // The shifts moved into the 64-bit lanes the same way. A lane past the stages has shift 0:
    // `VPSLLVQ` by 2^64 − 1 gives 0 and the lane is discarded.
    let r_even = _mm256_and_si256(right, _mm256_set1_epi64x(0xFFFF_FFFF));
    let r_odd = _mm256_srli_epi64::<32>(right);
    let one = _mm256_set1_epi64x(1);
    let e = _mm256_srav_epi64(
        _mm256_add_epi64(even, _mm256_sllv_epi64(one, _mm256_sub_epi64(r_even, one))),
        r_even,
    );
    let o = _mm256_srav_epi64(
        _mm256_add_epi64(odd, _mm256_sllv_epi64(one, _mm256_sub_epi64(r_odd, one))),
        r_odd,
    );
    // The low 32 bits of each (the reference's `as i32`), back in channel order.
    let scaled = _mm256_blend_epi32::<0b1010_1010>(e, _mm256_slli_epi64::<32>(o));
    narrow(l, scaled)
}
