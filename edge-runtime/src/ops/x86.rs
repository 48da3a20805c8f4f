//! The x86-64 host kernels' entry points: the one place that picks an instruction set (issues
//! 17/18). AVX2 ([`super::avx2`]) where the CPU has it, SSE2 ([`super::sse2`], part of every
//! x86-64 CPU) otherwise, chosen at run time so that one binary runs on every x86-64 CPU; no
//! `-C target-feature` is needed or assumed.
//!
//! Detection is RustCrypto's `cpufeatures` (no_std): `CPUID` leaf 7 for AVX2 plus `XGETBV` for
//! the OS saving the YMM registers, done once and cached in an atomic, so each call costs one
//! relaxed load. (On `x86_64-unknown-none` it reports no AVX2: SSE2 there.)
//!
//! Tests can hold a thread to SSE2 (`with_sse2_only`) so that an AVX2 host checks both paths
//! against the reference loops (`each_isa`).

#![allow(unsafe_code)]

use super::dsp::Runs;
use super::sse2::Tap;
use super::{avx2, sse2};

cpufeatures::new!(cpuid_avx2, "avx2");

/// The instruction set the x86-64 kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// 128-bit `PMADDWD` (every x86-64 CPU).
    Sse2,
    /// 256-bit `VPMADDWD`, on CPUs (and OSes) that have AVX2.
    Avx2,
}

impl Isa {
    /// What this CPU has (CPUID once, then cached).
    #[inline]
    pub(crate) fn detected() -> Self {
        if cpuid_avx2::get() {
            Self::Avx2
        } else {
            Self::Sse2
        }
    }

    /// What the kernels use now: [`Self::detected`], unless a test holds this thread to SSE2.
    /// Never `Avx2` on a CPU without it: the soundness of the dispatch below rests on that.
    #[inline]
    pub(crate) fn chosen() -> Self {
        #[cfg(test)]
        if SSE2_ONLY.get() {
            return Self::Sse2;
        }
        Self::detected()
    }

    /// Its name, for test messages and the speed test.
    #[cfg(test)]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sse2 => "SSE2",
            Self::Avx2 => "AVX2",
        }
    }
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
    match Isa::chosen() {
        // SAFETY: `chosen` is `Avx2` only when CPUID and XGETBV reported AVX2 usable.
        Isa::Avx2 => unsafe { avx2::quad_words(x, w, stride, runs, z_x, acc) },
        Isa::Sse2 => sse2::quad_words(x, w, stride, runs, z_x, acc),
    }
}

/// One depthwise output pixel of `acc.len()` consecutive channels:
/// `acc[j] = Σ_taps (w[t.w + j] − z_w)·(x[t.x + j] − z_x)`, wrapping. Returns `false`, touching
/// nothing, if a tap's channels would leave `x` or `w`.
#[inline]
pub(crate) fn depthwise_pixel(
    x: &[i8],
    w: &[i8],
    taps: &[Tap],
    z_x: i8,
    z_w: i8,
    acc: &mut [i32],
) -> bool {
    let n = acc.len();
    let inside = |at: usize, len: usize| at.checked_add(n).is_some_and(|end| end <= len);
    if !taps
        .iter()
        .all(|t| inside(t.x, x.len()) && inside(t.w, w.len()))
    {
        return false;
    }
    // SAFETY: every tap's channels lie inside `x` and `w` (checked above), both kernels'
    // contract; `chosen` is `Avx2` only when CPUID and XGETBV reported AVX2 usable.
    unsafe {
        match Isa::chosen() {
            Isa::Avx2 => avx2::depthwise_pixel(x, w, taps, z_x, z_w, acc),
            Isa::Sse2 => sse2::depthwise_pixel(x, w, taps, z_x, z_w, acc),
        }
    }
    true
}

#[cfg(test)]
std::thread_local! {
    /// Whether this thread's kernels are held to SSE2 ([`with_sse2_only`]).
    static SSE2_ONLY: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Runs `f` with this thread's kernels held to SSE2 (tests and the speed test only).
#[cfg(test)]
pub(crate) fn with_sse2_only<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SSE2_ONLY.set(self.0);
        }
    }
    let _restore = Restore(SSE2_ONLY.replace(true));
    f()
}

/// Runs `f` once per instruction set this CPU can run the kernels with: SSE2, then AVX2 where
/// detected.
#[cfg(test)]
pub(crate) fn each_isa(mut f: impl FnMut(Isa)) {
    with_sse2_only(|| f(Isa::Sse2));
    if Isa::detected() == Isa::Avx2 {
        f(Isa::Avx2);
    }
}
