//! The x86-64 host kernels' entry points: the one place that picks an instruction set (issues
//! 17/18). AVX-512 VNNI (`avx512`) where the CPU has it, else AVX2 (`avx2`),
//! else SSE2 (`sse2`, part of every x86-64 CPU), chosen at run time so that one binary
//! runs on every x86-64 CPU; no `-C target-feature` is needed or assumed.
//!
//! Detection is RustCrypto's `cpufeatures` (no_std): `CPUID` leaf 7 for AVX2, AVX-512F/BW/VL
//! plus `XGETBV` for the OS saving the YMM (and for AVX-512 the ZMM and mask) registers. Its
//! 0.3 release has no name for AVX512_VNNI, so that one bit (leaf 7, ECX bit 11) is read here
//! with the same `CPUID`, only once `cpufeatures` has vouched for the rest. The choice is made
//! once and cached in an atomic, so each call costs one relaxed load. (On
//! `x86_64-unknown-none` `cpufeatures` reports none of them: SSE2 there.)
//!
//! With AVX-512 VNNI a convolution's whole windows go through `broadcast` instead (GEMM form:
//! a block's filters packed once per call, 512-bit vectors of sixteen filters).
//!
//! Besides the two sums (`quad_words`, `depthwise_pixel`) the level picks the output stage
//! of plain requantization blocks: `sse2::PlainStages::apply` asks `plain_output_stage`
//! first, so conv.rs and depthwise.rs see one type (`sse2::BlockStages`) whatever the level.
//! At AVX-512 VNNI that type also takes single-rounding blocks that are not plain
//! (`avx512::SingleLanes`, built only where the CPU has it), which the lower levels leave to
//! the scalar loop.
//!
//! Benchmarks compare the levels in one process by capping the choice ([`set_isa`]; in `std`
//! builds also the `GHNQ_X86_ISA` environment variable, read once at the first dispatch:
//! `sse2`, `avx2` or `avx512vnni`, e.g. `GHNQ_X86_ISA=avx2 ghnq eval …`; other values are
//! ignored). A cap
//! only ever lowers the level below what the CPU reported: the soundness of the dispatch rests
//! on never raising it. Tests hold one thread to one level instead (`with_isa`), so that a
//! host checks every level it has against the reference loops (`each_isa`) while other tests
//! run beside it.

#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU8, Ordering};

mod avx2;
mod avx512;
mod broadcast;
pub(super) mod sse2;

use super::{Runs, Tap, WindowTaps};

pub(crate) use broadcast::{BroadcastFilters, PIXELS};

cpufeatures::new!(cpuid_avx2, "avx2");
cpufeatures::new!(cpuid_avx512, "avx2", "avx512f", "avx512bw", "avx512vl");

/// An instruction set the x86-64 kernels can run with, lowest first (`Ord` follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// 128-bit `PMADDWD` (every x86-64 CPU).
    Sse2,
    /// 256-bit `VPMADDWD`, on CPUs (and OSes) that have AVX2.
    Avx2,
    /// 256-bit `VPDPBUSD` with AVX-512 masked loads, on CPUs (and OSes) that have AVX-512
    /// F/BW/VL and VNNI (Ice Lake and later, Zen 4 and later).
    Avx512Vnni,
}

impl Isa {
    /// Every level, lowest first.
    pub const ALL: [Self; 3] = [Self::Sse2, Self::Avx2, Self::Avx512Vnni];

    /// The highest level this CPU (and OS) can run, whatever cap [`set_isa`] holds. `CPUID`
    /// once, then cached: in a virtual machine each `CPUID` traps to the hypervisor, and
    /// `BlockStages::new` asks once per block of channels.
    #[inline]
    pub fn detected() -> Self {
        match Self::from_code(DETECTED.load(Ordering::Relaxed)) {
            Some(isa) => isa,
            None => detect(),
        }
    }

    /// The short lower-case name [`Self::from_name`] reads (`sse2`, `avx2`, `avx512vnni`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sse2 => "sse2",
            Self::Avx2 => "avx2",
            Self::Avx512Vnni => "avx512vnni",
        }
    }

    /// The level named `name` ([`Self::name`], any case; `avx512` also accepted).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|isa| name.eq_ignore_ascii_case(isa.name()))
            .or_else(|| {
                name.eq_ignore_ascii_case("avx512")
                    .then_some(Self::Avx512Vnni)
            })
    }

    /// What the kernels use now: the cached choice, or (first call) [`Self::detected`] capped by
    /// `GHNQ_X86_ISA` in `std` builds, unless a test holds this thread to a level. Never above
    /// [`Self::detected`]: the soundness of the dispatch below rests on that.
    #[inline]
    pub(crate) fn chosen() -> Self {
        #[cfg(test)]
        if let Some(isa) = HELD.get() {
            return isa;
        }
        match Self::from_code(CHOSEN.load(Ordering::Relaxed)) {
            Some(isa) => isa,
            None => choose(),
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }
}

/// `CPUID.(EAX=7, ECX=0):ECX[11]`, AVX512_VNNI (asked only after `cpufeatures` found AVX-512
/// F/BW/VL, whose `XGETBV` check covers the registers VNNI uses).
fn vnni_bit() -> bool {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU and only reads identification registers.
    let leaf7 = unsafe { core::arch::x86_64::__cpuid_count(7, 0) };
    leaf7.ecx & (1 << 11) != 0
}

/// The level the kernels run with, 0 until first chosen (then [`Isa::code`]).
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// [`Isa::detected`]'s answer, 0 until first asked (then [`Isa::code`]).
static DETECTED: AtomicU8 = AtomicU8::new(0);

/// [`Isa::detected`]'s first call.
#[cold]
fn detect() -> Isa {
    let isa = if cpuid_avx512::get() && vnni_bit() {
        Isa::Avx512Vnni
    } else if cpuid_avx2::get() {
        Isa::Avx2
    } else {
        Isa::Sse2
    };
    DETECTED.store(isa.code(), Ordering::Relaxed);
    isa
}

/// The first dispatch's choice: [`Isa::detected`], capped by `GHNQ_X86_ISA` where there is an
/// environment (`std` builds) and it names a level.
#[cold]
fn choose() -> Isa {
    let isa = Isa::detected();
    #[cfg(feature = "std")]
    let isa = {
        extern crate std;
        match std::env::var("GHNQ_X86_ISA")
            .ok()
            .as_deref()
            .map(Isa::from_name)
        {
            Some(Some(cap)) => isa.min(cap),
            _ => isa,
        }
    };
    // A racing `set_isa` wins: keep whatever is already there.
    match CHOSEN.compare_exchange(0, isa.code(), Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => isa,
        Err(code) => Isa::from_code(code).unwrap_or(Isa::Sse2),
    }
}

/// Caps the kernels' instruction set at `cap` for the whole process from now on (benchmarks
/// comparing levels in one run; `GHNQ_X86_ISA` is the same without code), and returns the level
/// they will use: `cap`, or [`Isa::detected`] where the CPU lacks `cap`. Results do not change,
/// only speed: every level computes the same integers bit for bit.
pub fn set_isa(cap: Isa) -> Isa {
    let isa = Isa::detected().min(cap);
    CHOSEN.store(isa.code(), Ordering::Relaxed);
    isa
}

/// The level the kernels use now (on this thread).
pub fn isa() -> Isa {
    Isa::chosen()
}

/// [`super::window`]'s work for `4·acc.len()` channels: `acc[q][k]` becomes
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
        // SAFETY: `chosen` is never above what CPUID and XGETBV reported usable.
        Isa::Avx512Vnni => unsafe { avx512::quad_words(x, w, stride, runs, z_x, acc) },
        // SAFETY: as above.
        Isa::Avx2 => unsafe { avx2::quad_words(x, w, stride, runs, z_x, acc) },
        Isa::Sse2 => sse2::quad_words(x, w, stride, runs, z_x, acc),
    }
}

/// [`quad_words`] given each channel's weight sum over its runs (`w_sums[c]`, wrapping, for
/// `4·acc.len()` channels), which only AVX-512 VNNI reads: its sums need a second `VPDPBUSD`
/// per 32 bytes and filter otherwise (the other levels multiply signed activations and need no
/// sum). The caller has checked that every run lies inside `x` and `w`; too short a `w_sums`
/// takes [`quad_words`].
#[inline]
pub(crate) fn quad_words_summed(
    x: &[i8],
    w: &[i8],
    stride: usize,
    runs: Runs,
    z_x: i8,
    w_sums: &[i32],
    acc: &mut [[i32; 4]],
) {
    match Isa::chosen() {
        // SAFETY: `chosen` is never above what CPUID and XGETBV reported usable.
        Isa::Avx512Vnni if w_sums.len() >= 4 * acc.len() => unsafe {
            avx512::quad_words_summed(x, w, stride, runs, z_x, w_sums, acc)
        },
        _ => quad_words(x, w, stride, runs, z_x, acc),
    }
}

/// The weight sums [`quad_words_summed`] reads, `sums[c]` = the wrapping sum of
/// `filters[c·len..][..len]`, if the level in use reads them (AVX-512 VNNI) and `filters` holds
/// `sums.len()` filters: `false` otherwise, and a convolution then calls [`quad_words`].
#[inline]
pub(crate) fn filter_sums(filters: &[i8], len: usize, sums: &mut [i32]) -> bool {
    if Isa::chosen() != Isa::Avx512Vnni || filters.len() < sums.len().saturating_mul(len) {
        return false;
    }
    // SAFETY: `chosen` is never above what CPUID and XGETBV reported usable.
    unsafe { avx512::filter_sums(filters, len, sums) };
    true
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
    if !Tap::all_inside(taps, acc.len(), x, w) {
        return false;
    }
    // SAFETY: every tap's channels lie inside `x` and `w` (checked above).
    unsafe { depthwise_unchecked(x, w, taps, z_x, z_w, acc) };
    true
}

/// [`depthwise_pixel`] for a whole window (every tap valid), its taps relative to `x` as
/// [`WindowTaps`] holds them: the same sums, checked with two comparisons.
#[inline]
pub(crate) fn depthwise_window(
    x: &[i8],
    w: &[i8],
    taps: &WindowTaps<'_>,
    z_x: i8,
    z_w: i8,
    acc: &mut [i32],
) -> bool {
    if !taps.inside(acc.len(), x, w) {
        return false;
    }
    // SAFETY: every tap's offsets are at most `taps.far`'s (`WindowTaps::new`), whose channels
    // lie inside `x` and `w` (checked above).
    unsafe { depthwise_unchecked(x, w, taps.taps, z_x, z_w, acc) };
    true
}

/// The chosen level's depthwise kernel.
///
/// # Safety
/// Every tap's `acc.len()` channels lie inside `x` and `w` (the kernels' contract).
#[inline]
unsafe fn depthwise_unchecked(x: &[i8], w: &[i8], taps: &[Tap], z_x: i8, z_w: i8, acc: &mut [i32]) {
    // SAFETY: the caller's contract is the kernels'; `chosen` is never above what CPUID and
    // XGETBV reported usable.
    unsafe {
        match Isa::chosen() {
            Isa::Avx512Vnni => avx512::depthwise_pixel(x, w, taps, z_x, z_w, acc),
            Isa::Avx2 => avx2::depthwise_pixel(x, w, taps, z_x, z_w, acc),
            Isa::Sse2 => sse2::depthwise_pixel(x, w, taps, z_x, z_w, acc),
        }
    }
}

/// The output stage of a block of plain stages with AVX-512 ([`avx512::output_stage`]) if
/// that is the chosen level, returning whether it ran (else the caller's SSE2 stage runs):
/// [`sse2::PlainStages::apply`] asks here, so that its callers need not know the levels.
#[inline]
pub(crate) fn plain_output_stage(
    lanes: &avx512::StageLanes,
    double: bool,
    acc: &[i32],
    ys: &mut [i8],
) -> bool {
    if Isa::chosen() != Isa::Avx512Vnni {
        return false;
    }
    // SAFETY: `chosen` is never above what CPUID and XGETBV reported usable.
    unsafe {
        if double {
            avx512::output_stage::<true, false>(lanes, acc, ys);
        } else {
            avx512::output_stage::<false, false>(lanes, acc, ys);
        }
    }
    true
}

#[cfg(test)]
std::thread_local! {
    /// The level this thread's kernels are held to, if any ([`with_isa`]).
    static HELD: core::cell::Cell<Option<Isa>> = const { core::cell::Cell::new(None) };
}

/// Runs `f` with this thread's kernels held to `isa` (tests and the speed test only).
///
/// # Panics
/// If the CPU lacks `isa`: holding a thread to it would run instructions the CPU does not have.
#[cfg(test)]
pub(crate) fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            HELD.set(self.0);
        }
    }
    assert!(isa <= Isa::detected(), "this CPU lacks {}", isa.name());
    let _restore = Restore(HELD.replace(Some(isa)));
    f()
}

/// The levels this CPU can run the kernels with, lowest first.
#[cfg(test)]
pub(crate) fn available() -> impl Iterator<Item = Isa> {
    let top = Isa::detected();
    Isa::ALL.into_iter().filter(move |&isa| isa <= top)
}

/// Runs `f` once per instruction set this CPU can run the kernels with, this thread held to it:
/// SSE2, then AVX2 and AVX-512 VNNI where detected.
#[cfg(test)]
pub(crate) fn each_isa(mut f: impl FnMut(Isa)) {
    for isa in available() {
        with_isa(isa, || f(isa));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift32;

    /// A random i8 that is an extreme a quarter of the time.
    fn byte(rng: &mut XorShift32) -> i8 {
        match rng.below(8) {
            0 => -128,
            1 => 127,
            _ => rng.next_u32() as i8,
        }
    }

    fn bytes(rng: &mut XorShift32, n: usize) -> Vec<i8> {
        (0..n).map(|_| byte(rng)).collect()
    }

    /// Every level this CPU has against the reference loop, on random shapes: run lengths on
    /// both sides of the 8-, 16- and 32-byte chunks, one to five quads (the eight-channel passes
    /// and a lone quad), runs ending at the very end of both buffers, zero points at their ends,
    /// and activations cut short so that the last rows' runs leave `x` (left out by every level).
    /// With runs inside `x`, `quad_words_summed` given the filters' sums too.
    #[test]
    fn quad_words_equal_reference_at_every_level() {
        let mut rng = XorShift32::new(0x0A51_2001);
        let (mut checked, mut summed) = (0, 0);
        for case in 0..3000 {
            let len = match case % 3 {
                0 => 1 + rng.below(40) as usize,
                1 => 1 + rng.below(300) as usize,
                _ => [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 96][rng.below(14) as usize],
            };
            let rows = 1 + rng.below(4) as usize;
            let x_step = len + rng.below(3) as usize * rng.below(40) as usize;
            let w_step = len + rng.below(3) as usize * rng.below(20) as usize;
            let quads = 1 + rng.below(5) as usize;
            // Filters may overlap (stride below their extent) or not.
            let extent = (rows - 1) * w_step + len;
            let stride = if rng.below(2) == 0 {
                extent + rng.below(5) as usize
            } else {
                1 + rng.below(extent as u32) as usize
            };
            let runs = Runs {
                rows,
                len,
                x_step,
                w_step,
            };
            let z_x = match rng.below(4) {
                0 => -128,
                1 => 127,
                _ => rng.next_u32() as i8,
            };
            // Exactly as long as the runs need (or cut inside a later row's run).
            let x_len = (rows - 1) * x_step + len;
            let x_len = if case % 7 == 0 {
                x_len - 1 - rng.below(x_len as u32) as usize
            } else {
                x_len
            };
            let x = bytes(&mut rng, x_len);
            let w = bytes(&mut rng, (4 * quads - 1) * stride + extent);
            let mut want = vec![[0i32; 4]; quads];
            for (c, e) in want.as_flattened_mut().iter_mut().enumerate() {
                for r in 0..rows {
                    let Some(xs) = x.get(r * x_step..).and_then(|x| x.get(..len)) else {
                        continue;
                    };
                    let ws = &w[c * stride + r * w_step..][..len];
                    for (&wv, &xv) in ws.iter().zip(xs) {
                        *e = e.wrapping_add(wv as i32 * (xv as i32 - z_x as i32));
                    }
                }
            }
            // Each filter's sum over its runs, for `quad_words_summed` (whose contract is every
            // run inside `x`: not the cut cases).
            let whole = x.len() == (rows - 1) * x_step + len;
            let w_sums: Vec<i32> = (0..4 * quads)
                .map(|c| {
                    (0..rows)
                        .flat_map(|r| &w[c * stride + r * w_step..][..len])
                        .fold(0i32, |a, &v| a.wrapping_add(i32::from(v)))
                })
                .collect();
            each_isa(|isa| {
                let mut got = vec![[7i32; 4]; quads];
                quad_words(&x, &w, stride, runs, z_x, &mut got);
                assert_eq!(
                    got,
                    want,
                    "{} case {case}: {runs:?} quads {quads}",
                    isa.name()
                );
                checked += 1;
                if whole {
                    let mut got = vec![[7i32; 4]; quads];
                    quad_words_summed(&x, &w, stride, runs, z_x, &w_sums, &mut got);
                    assert_eq!(
                        got,
                        want,
                        "{} summed, case {case}: {runs:?} quads {quads}",
                        isa.name()
                    );
                    summed += 1;
                }
            });
        }
        assert!(checked >= 3000);
        assert!(summed >= 2000);
    }

    /// Every level this CPU has against the reference loop, on random pixels: channel counts
    /// on both sides of the 8-, 16- and 32-channel groups, tap counts of every remainder (the
    /// padded last group of four), taps at the very end of both tensors, repeated and
    /// overlapping, zero points at their ends; and taps that leave a tensor, refused by every
    /// level with nothing written.
    #[test]
    fn depthwise_pixel_equals_reference_at_every_level() {
        let mut rng = XorShift32::new(0x0A51_2002);
        let mut checked = 0;
        for case in 0..3000 {
            let n = match case % 2 {
                0 => rng.below(130) as usize,
                _ => [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64][rng.below(13) as usize],
            };
            let taps = rng.below(14) as usize;
            let (x_len, w_len) = (n + rng.below(300) as usize, n + rng.below(200) as usize);
            let (x, w) = (bytes(&mut rng, x_len), bytes(&mut rng, w_len));
            let at = |rng: &mut XorShift32, len: usize| match rng.below(4) {
                0 => len - n,
                _ => rng.below((len - n + 1) as u32) as usize,
            };
            let list: Vec<Tap> = (0..taps)
                .map(|_| Tap {
                    x: at(&mut rng, x_len),
                    w: at(&mut rng, w_len),
                })
                .collect();
            let pick = |rng: &mut XorShift32| match rng.below(5) {
                0 => -128,
                1 => 127,
                2 => 0,
                _ => rng.next_u32() as i8,
            };
            let (z_x, z_w) = (pick(&mut rng), pick(&mut rng));
            let want: Vec<i32> = (0..n)
                .map(|j| {
                    list.iter().fold(0i32, |a, t| {
                        let (wv, xv) = (w[t.w + j] as i32, x[t.x + j] as i32);
                        a.wrapping_add((wv - z_w as i32) * (xv - z_x as i32))
                    })
                })
                .collect();
            each_isa(|isa| {
                let mut got = vec![7i32; n];
                assert!(depthwise_pixel(&x, &w, &list, z_x, z_w, &mut got));
                let name = isa.name();
                assert_eq!(
                    got, want,
                    "{name} case {case}: n {n} taps {list:?} z {z_x} {z_w}"
                );
                // The same taps as a whole window's list: the same sums.
                let mut window = vec![7i32; n];
                assert!(depthwise_window(
                    &x,
                    &w,
                    &WindowTaps::new(&list),
                    z_x,
                    z_w,
                    &mut window
                ));
                assert_eq!(window, want, "{name} case {case}: window");
                checked += 1;
            });
            // One tap moved one byte past the end of a tensor: refused, nothing written.
            if n > 0 && taps > 0 {
                let mut bad = list.clone();
                let t = rng.below(taps as u32) as usize;
                if case % 2 == 0 {
                    bad[t].x = x_len - n + 1;
                } else {
                    bad[t].w = w_len - n + 1;
                }
                each_isa(|isa| {
                    let mut got = vec![7i32; n];
                    assert!(!depthwise_pixel(&x, &w, &bad, z_x, z_w, &mut got));
                    assert!(!depthwise_window(
                        &x,
                        &w,
                        &WindowTaps::new(&bad),
                        z_x,
                        z_w,
                        &mut got
                    ));
                    assert!(got.iter().all(|&g| g == 7), "{} case {case}", isa.name());
                });
            }
        }
        assert!(checked >= 3000);
    }

    /// Names round-trip; a cap never raises the level above what the CPU has.
    #[test]
    fn levels_by_name_and_capped_by_the_cpu() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
            assert_eq!(Isa::from_name(&isa.name().to_uppercase()), Some(isa));
        }
        assert_eq!(Isa::from_name("avx512"), Some(Isa::Avx512Vnni));
        assert_eq!(Isa::from_name("neon"), None);
        let top = Isa::detected();
        assert!(available().eq(Isa::ALL.into_iter().filter(|&i| i <= top)));
        // Process-wide, but every level computes the same integers: other tests running now
        // see only a speed change. Left at the detected level.
        for cap in Isa::ALL {
            assert_eq!(set_isa(cap), cap.min(top));
            assert!(Isa::from_code(CHOSEN.load(Ordering::Relaxed)).is_some_and(|i| i <= top));
        }
        assert_eq!(set_isa(top), top);
        assert_eq!(with_isa(Isa::Sse2, isa), Isa::Sse2);
    }
}
