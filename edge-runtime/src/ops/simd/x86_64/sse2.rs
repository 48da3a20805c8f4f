//! The x86-64 host kernels: the same exact integer sums as the reference loops, sixteen bytes at
//! a time with SSE2's `PMADDWD` (eight 16×16-bit products summed pairwise into four 32-bit
//! lanes). SSE2 is part of the x86-64 baseline, so every x86-64 CPU runs them. The convolution
//! and depthwise kernels have AVX2 and AVX-512 VNNI twins ([`super::avx2`], [`super::avx512`]);
//! their parent module, [`x86_64`](super), picks one at run time.
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
//! Depthwise convolutions ([`depthwise_pixel`]) need no horizontal sums: in NHWC a tap's
//! channels are contiguous, so each 32-bit lane is one channel, and `PMADDWD` adds the products
//! of two taps (their bytes interleaved) instead of two neighbouring elements.
//!
//! The output stage of the blocked kernels is vectorised too ([`BlockStages`]; of plain stages
//! four channels a step, [`PlainStages`]): with one output per 9 MACs it was half of a
//! depthwise convolution's time. Where the chosen level is AVX-512 VNNI, plain stages go to
//! `avx512::output_stage` (eight channels a step) instead, and single-rounding ones that are not
//! plain too ([`SingleLanes`]).
//!
//! The module's `unsafe` is calling the `#[target_feature(enable = "sse2")]` functions, which is
//! sound on every x86-64 target, and the depthwise kernel's vector loads (`load16_at`,
//! `load8_at`), unchecked because [`super::depthwise_pixel`] bounds-checks every tap of the
//! pixel first: checking each load cost as many instructions as the arithmetic. The other bodies use safe
//! intrinsics and `bytemuck` loads.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_add_epi64, _mm_adds_epi16, _mm_and_si128, _mm_cmpgt_epi32,
    _mm_cvtsi32_si128, _mm_cvtsi64_si128, _mm_loadl_epi64, _mm_loadu_si128, _mm_madd_epi16,
    _mm_max_epi16, _mm_min_epi16, _mm_mul_epu32, _mm_or_si128, _mm_packs_epi16, _mm_packs_epi32,
    _mm_set1_epi16, _mm_set1_epi32, _mm_set1_epi64x, _mm_setzero_si128, _mm_slli_epi64,
    _mm_sra_epi32, _mm_srai_epi16, _mm_srai_epi32, _mm_srl_epi64, _mm_srli_epi64, _mm_sub_epi16,
    _mm_sub_epi32, _mm_sub_epi64, _mm_unpackhi_epi8, _mm_unpackhi_epi16, _mm_unpacklo_epi8,
    _mm_unpacklo_epi16,
};

use super::Isa;
use super::avx512::{SingleLanes, StageLanes};
use crate::ops::conv::BLOCK;
use crate::ops::simd::{Runs, Tap};
use crate::requant::ChannelRequant;
use shared_format::Clamp;

/// `Σ w·x` over the common length of `w` and `x`.
#[inline]
pub(crate) fn dot(w: &[i8], x: &[i8]) -> i32 {
    // SAFETY: SSE2 is in the x86-64 baseline: every CPU this code is compiled for has it.
    unsafe { dot_sse2(w, x) }
}

/// [`crate::ops::simd::window`]'s work for `4·acc.len()` channels (via [`super::quad_words`]):
/// `acc[q][k]` becomes `Σ_runs Σ_i w[(4q + k)·stride + r·w_step + i]·(x[r·x_step + i] − z_x)`.
/// The caller has checked that every run lies inside `x` and `w`; a run that did not would be
/// left out.
#[inline]
pub(super) fn quad_words(
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

/// One depthwise output pixel of `acc.len()` consecutive channels:
/// `acc[j] = Σ_taps (w[t.w + j] − z_w)·(x[t.x + j] − z_x)`, wrapping, every tap's channels
/// already bounds-checked ([`super::depthwise_pixel`]).
///
/// Sixteen channels at a time, two taps at a time: the two taps' bytes are interleaved
/// (`PUNPCKxBW`), widened and centred, so one `PMADDWD` forms `(w₀ − z_w)(x₀ − z_x) +
/// (w₁ − z_w)(x₁ − z_x)` per channel in a 32-bit lane (both factors in −255..=255, each product
/// below 2^16, the pair below 2^17: exact). A lone last tap is paired with zeros. Then eight
/// channels the same way from 8-byte loads, and fewer than eight in plain Rust. Symmetric
/// weights (`z_w = 0`) skip the weight centring.
///
/// # Safety
/// For every tap `t`: `t.x + acc.len() ≤ x.len()` and `t.w + acc.len() ≤ w.len()`.
#[inline]
pub(super) unsafe fn depthwise_pixel(
    x: &[i8],
    w: &[i8],
    taps: &[Tap],
    z_x: i8,
    z_w: i8,
    acc: &mut [i32],
) {
    // SAFETY: SSE2 is in the x86-64 baseline: every CPU this code is compiled for has it; the
    // taps' bounds are this function's contract, passed on.
    unsafe {
        if z_w == 0 {
            depthwise_pixel_sse2::<false>(x, w, taps, z_x, z_w, acc);
        } else {
            depthwise_pixel_sse2::<true>(x, w, taps, z_x, z_w, acc);
        }
    }
}

/// [`depthwise_pixel`]'s body, its bounds already checked.
///
/// # Safety
/// For every tap `t`: `t.x + acc.len() ≤ x.len()` and `t.w + acc.len() ≤ w.len()`. The vector
/// loads are then unchecked: checking each one cost as many instructions as the arithmetic.
#[target_feature(enable = "sse2")]
unsafe fn depthwise_pixel_sse2<const AFFINE: bool>(
    x: &[i8],
    w: &[i8],
    taps: &[Tap],
    z_x: i8,
    z_w: i8,
    acc: &mut [i32],
) {
    let (cx, cw) = (_mm_set1_epi16(z_x as i16), _mm_set1_epi16(z_w as i16));
    let (pairs, lone) = taps.as_chunks::<2>();
    let lone = lone.first();
    let (a16, rest) = acc.as_chunks_mut::<16>();
    for (g, out) in a16.iter_mut().enumerate() {
        let c = 16 * g;
        let mut l = [_mm_setzero_si128(); 4];
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
        let mut l = [_mm_setzero_si128(); 2];
        // SAFETY (all loads of this block): c + 8 ≤ acc.len(), so every 8-byte load at t.x + c
        // or t.w + c ends inside its slice (this function's contract).
        for [t0, t1] in pairs {
            let (x0, x1) = unsafe { (load8_at(x, t0.x + c), load8_at(x, t1.x + c)) };
            let (w0, w1) = unsafe { (load8_at(w, t0.w + c), load8_at(w, t1.w + c)) };
            let xs = pairs8::<true>(x0, x1, cx);
            let ws = pairs8::<AFFINE>(w0, w1, cw);
            madd(&mut l, xs, ws);
        }
        if let Some(t) = lone {
            let (x0, w0) = unsafe { (load8_at(x, t.x + c), load8_at(w, t.w + c)) };
            let ([x0, x1, ..], [w0, w1, ..]) = (lone16(x0, cx), lone16(w0, cw));
            madd(&mut l, [x0, x1], [w0, w1]);
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

/// Bytes `at..at + 16` of `v`.
///
/// # Safety
/// `at + 16 ≤ v.len()`.
#[inline(always)]
pub(super) unsafe fn load16_at(v: &[i8], at: usize) -> __m128i {
    debug_assert!(at.checked_add(16).is_some_and(|end| end <= v.len()));
    // SAFETY: the 16 bytes lie inside `v` (contract); MOVDQU has no alignment requirement.
    unsafe { _mm_loadu_si128(v.as_ptr().add(at).cast()) }
}

/// Bytes `at..at + 8` of `v` in the low half, zeros above.
///
/// # Safety
/// `at + 8 ≤ v.len()`.
#[inline(always)]
pub(super) unsafe fn load8_at(v: &[i8], at: usize) -> __m128i {
    debug_assert!(at.checked_add(8).is_some_and(|end| end <= v.len()));
    // SAFETY: the 8 bytes lie inside `v` (contract); MOVQ has no alignment requirement.
    unsafe { _mm_loadl_epi64(v.as_ptr().add(at).cast()) }
}

/// Sixteen channels of two taps `a` and `b`, interleaved byte by byte (`a₀ b₀ a₁ b₁ …`),
/// sign-extended to 16 bits and (if `CENTRE`) centred on `centre`: four vectors of pairs, for
/// channels 0–3, 4–7, 8–11 and 12–15.
#[inline]
#[target_feature(enable = "sse2")]
fn pairs16<const CENTRE: bool>(a: __m128i, b: __m128i, centre: __m128i) -> [__m128i; 4] {
    let [l0, l1] = pairs8::<CENTRE>(a, b, centre);
    let (h0, h1) = widen(_mm_unpackhi_epi8(a, b));
    if CENTRE {
        [l0, l1, _mm_sub_epi16(h0, centre), _mm_sub_epi16(h1, centre)]
    } else {
        [l0, l1, h0, h1]
    }
}

/// [`pairs16`] for the low eight channels only.
#[inline]
#[target_feature(enable = "sse2")]
fn pairs8<const CENTRE: bool>(a: __m128i, b: __m128i, centre: __m128i) -> [__m128i; 2] {
    let (l0, l1) = widen(_mm_unpacklo_epi8(a, b));
    if CENTRE {
        [_mm_sub_epi16(l0, centre), _mm_sub_epi16(l1, centre)]
    } else {
        [l0, l1]
    }
}

/// Sixteen channels of a lone tap like [`pairs16`], each centred on `centre` and paired with a
/// 16-bit zero (centred before the pairing, so the zeros add nothing whatever the zero points).
#[inline]
#[target_feature(enable = "sse2")]
fn lone16(a: __m128i, centre: __m128i) -> [__m128i; 4] {
    let (l, h) = widen(a);
    let (l, h) = (_mm_sub_epi16(l, centre), _mm_sub_epi16(h, centre));
    let z = _mm_setzero_si128();
    [
        _mm_unpacklo_epi16(l, z),
        _mm_unpackhi_epi16(l, z),
        _mm_unpacklo_epi16(h, z),
        _mm_unpackhi_epi16(h, z),
    ]
}

/// `l[k] += PMADDWD(xs[k], ws[k])`: per 32-bit lane, the sum of the two products of a pair.
#[inline]
#[target_feature(enable = "sse2")]
fn madd<const N: usize>(l: &mut [__m128i; N], xs: [__m128i; N], ws: [__m128i; N]) {
    for ((l, x), w) in l.iter_mut().zip(xs).zip(ws) {
        *l = _mm_add_epi32(*l, _mm_madd_epi16(x, w));
    }
}

/// The output stage of a block of up to [`BLOCK`] channels whose stages are all plain
/// ([`ChannelRequant::is_plain`]), as vectors: `ys[j] = clamp(scale_plain(b[j] + acc[j]) + z_y)`,
/// four channels a step, the same integers as `conv::output_stage` (unit-tested against it on
/// random and extreme values).
///
/// SSE2 has no 32×32→64-bit signed multiply and no per-lane shift, so both steps of
/// `scale_plain` are written as `⌊(a·b + r) / 2^s⌋` over the two even and the two odd lanes
/// (`PMULUDQ`, with the usual correction `−2^32·(b·[a < 0] + a·[b < 0])` for signed factors),
/// the second step's per-channel shift by `n` being a multiply by `2^(31 − n)`:
/// * double rounding: `h = ⌊(a·m + 2^30) / 2^31⌋` (SRDHM without its saturating case), then
///   `RDBPOT(h, n) = ⌊(h + 2^(n−1) − [h < 0]) / 2^n⌋ = ⌊(h·2^(31−n) + 2^30 − [h < 0]·2^(31−n))
///   / 2^31⌋` for `n ≥ 1` (half away from zero), `h` for `n = 0`;
/// * single rounding: `h = ⌊a·m / 2^32⌋ + 2^(right − 33)` (wrapping), then `⌊h / 2^(right − 32)⌋`.
///
/// Every product lies within ±2^62, so the 64-bit lanes are exact. Then `+ z_y` and the clamp
/// in 16-bit lanes (`PACKSSDW` saturates first: a value past ±2^15 clamps to the same bound
/// either way).
pub(crate) struct PlainStages {
    groups: [Stage4; BLOCK / 4],
    double: bool,
    /// Whether a multiplier is negative (never in a valid blob: 0 or at least 2^30); without
    /// one the first step's signed-multiplier correction is skipped.
    negative_m: bool,
    z_y: __m128i,
    lo: __m128i,
    hi: __m128i,
    /// The same stages per lane for AVX-512's eight-channel output stage, where the CPU has it
    /// ([`super::plain_output_stage`]).
    wide: Option<StageLanes>,
}

/// Four channels' constants of [`PlainStages`].
#[derive(Clone, Copy)]
struct Stage4 {
    /// Bias per lane.
    bias: __m128i,
    /// Multiplier per lane, and those of lanes 1 and 3 moved to lanes 0 and 2.
    m: __m128i,
    m_odd: __m128i,
    /// Added to the first step's result: single rounding's rounding term, else 0.
    add: __m128i,
    /// `2^(31 − n)` per lane (second step's shift `n`), and moved down like `m_odd`.
    p: __m128i,
    p_odd: __m128i,
    /// Per lane, subtracted from the 64-bit sum when `h < 0`: `2^(31 − n)` for double rounding
    /// with `n ≥ 1`, else 0.
    neg: __m128i,
    /// The second step's rounding term per 64-bit lane, for lanes 0/2 and 1/3: `2^30` for
    /// double rounding with `n ≥ 1`, else 0.
    r_even: __m128i,
    r_odd: __m128i,
    /// Whether the four lanes share the second step's shift `n` (every per-tensor stage, many
    /// per-channel ones): then it is one `PSRAD` by `count` (`n` in the low 64 bits), and
    /// double rounding's `RDBPOT` the reference's `mask`/threshold form, `half` = `mask >> 1`.
    uniform: bool,
    count: __m128i,
    mask: __m128i,
    half: __m128i,
}

/// The vector output stage of one block of up to [`BLOCK`] channels, in the form its stages
/// allow, so that conv.rs, depthwise.rs and add.rs hold one type whatever the level and the
/// stages: plain stages at every level, single-rounding stages of any shift only at AVX-512
/// VNNI (the 2- and 4-bit layers' usual case); the lower levels leave those to the scalar loop.
#[allow(
    clippy::large_enum_variant,
    reason = "no allocator to box into; one lives on the stack per block, smaller than both kinds side by side"
)]
pub(crate) enum BlockStages {
    Plain(PlainStages),
    Whole(SingleLanes),
}

impl BlockStages {
    /// The vector stages of `stage` with its `bias`, or `None` if the lengths differ or exceed
    /// [`BLOCK`], or a stage is not plain, unless the rounding is single and the kernels run
    /// AVX-512 VNNI.
    pub(crate) fn new(
        stage: &[ChannelRequant],
        bias: &[i32],
        double: bool,
        z_y: i8,
        clamp: Clamp,
    ) -> Option<Self> {
        if stage.len() != bias.len() || stage.len() > BLOCK {
            None
        } else if stage.iter().all(|s| s.is_plain()) {
            // SAFETY: SSE2 is in the x86-64 baseline: every CPU this code is compiled for has it.
            let plain = unsafe { PlainStages::new_sse2(stage, bias, double, z_y, clamp) };
            Some(Self::Plain(plain))
        } else if !double && Isa::chosen() == Isa::Avx512Vnni {
            StageLanes::single(stage, bias, z_y, clamp).map(Self::Whole)
        } else {
            None
        }
    }

    /// `ys[j] = clamp(scale(bias[j] + acc[j]) + z_y)` for `j` below the common length of `acc`
    /// and `ys` (at most the stages' count).
    #[inline]
    pub(crate) fn apply(&self, acc: &[i32], ys: &mut [i8]) {
        match self {
            Self::Plain(plain) => plain.apply(acc, ys),
            Self::Whole(single) => single.apply(acc, ys),
        }
    }
}

impl PlainStages {
    #[target_feature(enable = "sse2")]
    fn new_sse2(
        stage: &[ChannelRequant],
        bias: &[i32],
        double: bool,
        z_y: i8,
        clamp: Clamp,
    ) -> Self {
        let zero = _mm_setzero_si128();
        let mut groups = [Stage4 {
            bias: zero,
            m: zero,
            m_odd: zero,
            add: zero,
            p: zero,
            p_odd: zero,
            neg: zero,
            r_even: zero,
            r_odd: zero,
            uniform: false,
            count: zero,
            mask: zero,
            half: zero,
        }; BLOCK / 4];
        for (g, out) in groups.iter_mut().enumerate() {
            // Lanes past the stages get a zero multiplier and shift (outputs discarded).
            let mut lanes = [[0u32; 4]; 6];
            let mut r = [0u64; 4];
            let mut shifts = [None; 4];
            for k in 0..4 {
                let Some((st, &b)) = stage.get(4 * g + k).zip(bias.get(4 * g + k)) else {
                    continue;
                };
                let (m, mask, right) = st.plain_parts();
                // Second step's shift: double `right` (0..=31), single `right − 32` (1..=30).
                let n = if double {
                    right as u32
                } else {
                    (right as u32).saturating_sub(32)
                };
                let n = n.min(31);
                let p = 1u32 << (31 - n);
                let rounds = double && n >= 1;
                shifts[k] = Some(n);
                lanes[0][k] = b as u32;
                lanes[1][k] = m as u32;
                lanes[2][k] = if double { 0 } else { mask as u32 };
                lanes[3][k] = p;
                lanes[4][k] = if rounds { p } else { 0 };
                r[k] = if rounds { 1 << 30 } else { 0 };
            }
            let v = |l: [u32; 4]| -> __m128i { bytemuck::cast(l) };
            let (m, p) = (v(lanes[1]), v(lanes[3]));
            // Lanes past the stages take the first lane's shift (their outputs are discarded).
            let n0 = shifts[0].unwrap_or(0);
            let uniform = shifts.iter().all(|&n| n.unwrap_or(n0) == n0);
            let mask = ((1u64 << n0) - 1) as i32;
            *out = Stage4 {
                bias: v(lanes[0]),
                m,
                m_odd: _mm_srli_epi64::<32>(m),
                add: v(lanes[2]),
                p,
                p_odd: _mm_srli_epi64::<32>(p),
                neg: v(lanes[4]),
                r_even: bytemuck::cast([r[0], r[2]]),
                r_odd: bytemuck::cast([r[1], r[3]]),
                uniform,
                count: _mm_cvtsi32_si128(n0 as i32),
                mask: _mm_set1_epi32(mask),
                half: _mm_set1_epi32(mask >> 1),
            };
        }
        Self {
            groups,
            double,
            negative_m: stage.iter().any(|s| s.plain_parts().0 < 0),
            z_y: _mm_set1_epi16(z_y as i16),
            lo: _mm_set1_epi16(clamp.min as i16),
            hi: _mm_set1_epi16(clamp.max as i16),
            wide: (Isa::detected() == Isa::Avx512Vnni)
                .then(|| StageLanes::new(stage, bias, double, z_y, clamp)),
        }
    }

    /// `ys[j] = clamp(scale_plain(bias[j] + acc[j]) + z_y)` for `j` below the common length of
    /// `acc` and `ys` (at most the stages' count).
    #[inline]
    fn apply(&self, acc: &[i32], ys: &mut [i8]) {
        if let Some(wide) = &self.wide
            && super::plain_output_stage(wide, self.double, acc, ys)
        {
            return;
        }
        // SAFETY: SSE2 is in the x86-64 baseline: every CPU this code is compiled for has it.
        unsafe {
            match (self.double, self.negative_m) {
                (true, false) => self.apply_sse2::<true, false>(acc, ys),
                (false, false) => self.apply_sse2::<false, false>(acc, ys),
                (true, true) => self.apply_sse2::<true, true>(acc, ys),
                (false, true) => self.apply_sse2::<false, true>(acc, ys),
            }
        }
    }

    #[target_feature(enable = "sse2")]
    fn apply_sse2<const DOUBLE: bool, const SIGNED_M: bool>(&self, acc: &[i32], ys: &mut [i8]) {
        let n = acc.len().min(ys.len());
        let (acc16, acc_tail) = acc[..n].as_chunks::<16>();
        let (ys16, ys_tail) = ys[..n].as_chunks_mut::<16>();
        let (groups16, _) = self.groups.as_chunks::<4>();
        for ((y, a), g) in ys16.iter_mut().zip(acc16).zip(groups16) {
            *y = self.sixteen::<DOUBLE, SIGNED_M>(a, g);
        }
        if !ys_tail.is_empty()
            && let Some(g) = groups16.get(ys16.len())
        {
            // The last partial sixteen, through a padded copy (lanes past it ignored).
            let mut a = [0i32; 16];
            a[..acc_tail.len()].copy_from_slice(acc_tail);
            let y = self.sixteen::<DOUBLE, SIGNED_M>(&a, g);
            ys_tail.copy_from_slice(&y[..ys_tail.len()]);
        }
    }

    /// Sixteen outputs.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn sixteen<const DOUBLE: bool, const SIGNED_M: bool>(
        &self,
        acc: &[i32; 16],
        g: &[Stage4; 4],
    ) -> [i8; 16] {
        let (a4, _) = acc.as_chunks::<4>();
        let mut s = [_mm_setzero_si128(); 4];
        for ((s, a), g) in s.iter_mut().zip(a4).zip(g) {
            let a: __m128i = bytemuck::cast(*a);
            *s = scale4::<DOUBLE, SIGNED_M>(_mm_add_epi32(a, g.bias), g);
        }
        let lo = _mm_packs_epi32(s[0], s[1]);
        let hi = _mm_packs_epi32(s[2], s[3]);
        let clamp = |v: __m128i| {
            _mm_min_epi16(_mm_max_epi16(_mm_adds_epi16(v, self.z_y), self.lo), self.hi)
        };
        bytemuck::cast(_mm_packs_epi16(clamp(lo), clamp(hi)))
    }
}

/// `scale_plain` of four lanes (see [`PlainStages`]).
#[inline]
#[target_feature(enable = "sse2")]
fn scale4<const DOUBLE: bool, const SIGNED_M: bool>(a: __m128i, g: &Stage4) -> __m128i {
    let zero = _mm_setzero_si128();
    let h = if DOUBLE {
        let half = _mm_set1_epi64x(1 << 30);
        mul_shift::<SIGNED_M>(a, g.m, g.m_odd, half, half, 31)
    } else {
        _mm_add_epi32(
            mul_shift::<SIGNED_M>(a, g.m, g.m_odd, zero, zero, 32),
            g.add,
        )
    };
    if g.uniform {
        let shifted = _mm_sra_epi32(h, g.count);
        if !DOUBLE {
            return shifted;
        }
        // RDBPOT as the reference writes it: + 1 where the remainder exceeds the threshold
        // (half the divisor, rounded down, plus 1 for negative h). Both sides lie in 0..2^31.
        let negative = _mm_srai_epi32::<31>(h);
        let threshold = _mm_sub_epi32(g.half, negative);
        let up = _mm_cmpgt_epi32(_mm_and_si128(h, g.mask), threshold);
        return _mm_sub_epi32(shifted, up);
    }
    if DOUBLE {
        // r − [h < 0]·neg per 64-bit lane: the neg term zero-extended from its 32-bit lane.
        let n = _mm_and_si128(_mm_srai_epi32::<31>(h), g.neg);
        let lo_mask = _mm_set1_epi64x(0xFFFF_FFFF);
        let r_even = _mm_sub_epi64(g.r_even, _mm_and_si128(n, lo_mask));
        let r_odd = _mm_sub_epi64(g.r_odd, _mm_srli_epi64::<32>(n));
        mul_shift::<false>(h, g.p, g.p_odd, r_even, r_odd, 31)
    } else {
        mul_shift::<false>(h, g.p, g.p_odd, zero, zero, 31)
    }
}

/// `⌊(a·b + r) / 2^s⌋` per 32-bit lane (its low 32 bits), `a` signed, `b` signed if `SIGNED_B`
/// else unsigned, `r` the 64-bit addend of lanes 0/2 (`r_even`) and 1/3 (`r_odd`), `b_odd` =
/// `b` with lanes 1 and 3 moved to 0 and 2, `s ≤ 32`. Exact when `a·b + r` fits in i64.
#[inline]
#[target_feature(enable = "sse2")]
fn mul_shift<const SIGNED_B: bool>(
    a: __m128i,
    b: __m128i,
    b_odd: __m128i,
    r_even: __m128i,
    r_odd: __m128i,
    s: i32,
) -> __m128i {
    // PMULUDQ forms a_u·b_u; the signed product is that − 2^32·(b_u·[a < 0] + a_u·[b < 0]).
    let mut fix = _mm_and_si128(_mm_srai_epi32::<31>(a), b);
    if SIGNED_B {
        fix = _mm_add_epi32(fix, _mm_and_si128(_mm_srai_epi32::<31>(b), a));
    }
    let count = _mm_cvtsi32_si128(s);
    let even = _mm_mul_epu32(a, b);
    let even = _mm_add_epi64(_mm_sub_epi64(even, _mm_slli_epi64::<32>(fix)), r_even);
    let even = _mm_srl_epi64(even, count);
    let odd = _mm_mul_epu32(_mm_srli_epi64::<32>(a), b_odd);
    let hi_mask = _mm_set1_epi64x(0xFFFF_FFFF_0000_0000u64 as i64);
    let odd = _mm_add_epi64(_mm_sub_epi64(odd, _mm_and_si128(fix, hi_mask)), r_odd);
    let odd = _mm_srl_epi64(odd, count);
    let lo_mask = _mm_set1_epi64x(0xFFFF_FFFF);
    _mm_or_si128(_mm_and_si128(even, lo_mask), _mm_slli_epi64::<32>(odd))
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
pub(super) fn load16(b: &[i8; 16]) -> __m128i {
    bytemuck::cast(*b)
}

/// Eight bytes in the low half, zeros above.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn load8(b: &[i8; 8]) -> __m128i {
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
    use crate::ops::simd::host_tests::{self as simd_tests, bytes};
    use crate::ops::simd::x86_64::{self as x86, Isa, each_isa};

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
                // Three quads: AVX2's and AVX-512's eight-channel pass and their lone last quad.
                let w = bytes(12 * stride, (300 + z_x as i32) as u32);
                let mut got = [[[0i32; 4]; 3]; Isa::ALL.len()];
                each_isa(|isa| {
                    x86::quad_words(&x, &w, stride, runs, z_x, &mut got[isa as usize]);
                });
                // Levels this CPU lacks: copies of the highest it has.
                let top = Isa::detected() as usize;
                for i in top + 1..got.len() {
                    got[i] = got[top];
                }
                for (i, &g) in got.as_flattened().as_flattened().iter().enumerate() {
                    let (isa, c) = (Isa::ALL[i / 12].name(), i % 12);
                    let mut e = 0i32;
                    for r in 0..rows {
                        for i in 0..len {
                            let (wv, xv) = (w[c * stride + r * w_step + i], x[r * x_step + i]);
                            e = e.wrapping_add(wv as i32 * (xv as i32 - z_x as i32));
                        }
                    }
                    assert_eq!(g, e, "{isa} len {len} z_x {z_x} channel {c}");
                }
            }
        }
    }

    #[test]
    fn depthwise_pixel_equals_centred_sums() {
        each_isa(|isa| {
            simd_tests::depthwise_pixel_equals_centred_sums(isa.name(), x86::depthwise_pixel)
        });
    }

    #[test]
    fn single_stages_of_any_shift_equal_scalar_output_stage() {
        each_isa(|isa| {
            simd_tests::single_stages_equal_scalar_output_stage(
                isa.name(),
                isa == Isa::Avx512Vnni,
                &mut |stage, bias, double, z_y, clamp, acc, out| {
                    BlockStages::new(stage, bias, double, z_y, clamp)
                        .map(|v| v.apply(acc, out))
                        .is_some()
                },
            )
        });
    }

    #[test]
    fn plain_stages_equal_scalar_output_stage() {
        each_isa(|isa| {
            simd_tests::plain_stages_equal_scalar_output_stage(
                isa.name(),
                &mut |stage, bias, double, z_y, clamp, acc, out| {
                    BlockStages::new(stage, bias, double, z_y, clamp)
                        .map(|v| v.apply(acc, out))
                        .is_some()
                },
            )
        });
    }
}
