//! A convolution's whole windows with AVX-512 VNNI in GEMM form (issue 17): one block's filters
//! packed once per call so that a 512-bit vector holds four bytes of sixteen filters, and each
//! four activation bytes of a window are broadcast to all sixteen lanes. One `VPDPBUSD` then
//! adds 64 products into sixteen output channels, and a window ends with its sums in place: no
//! lane sums per pixel and filter, no masked tails (the packed filters are zero past a run's
//! end), and up to four pixels share each weight load.
//!
//! WHY: [`super::avx512::quad_words_summed`] multiplies one pixel's run against eight filters
//! 32 bytes at a time and reduces eight lanes per filter at the end; on the 3×3 and 1×1
//! convolutions of CIFAR-10 nets (runs of 48–576 bytes) it reached about 17 MACs per cycle on
//! Zen 4, where `VPDPBUSD` alone could do 64. The integer runtime was a third of a `ghnq eval`'s
//! time.
//!
//! Exactness: as in [`super::avx512`], activations go in as `x + 128` (unsigned) and the caller
//! subtracts `(128 + z_x)·Σ w` with the filters' sums ([`super::filter_sums`]), all wrapping;
//! zero padding (past a run's last group of four, past the block's last filter) adds nothing.
//!
//! The `unsafe`: the packed buffer is uninitialised stack memory written before it is read, and
//! the kernel's loads are unchecked once [`BroadcastFilters::windows`] has checked the bounds
//! of every byte they read.

#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m512i, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_set1_epi8, _mm512_set1_epi32,
    _mm512_setzero_si512, _mm512_storeu_si512, _mm512_xor_si512,
};
use core::mem::MaybeUninit;

use super::Isa;
use crate::ops::conv::BLOCK;

/// The packed bytes a block may take: 3×3 windows over up to 85 input channels at 64 filters,
/// or over 170 at 32 (larger blocks keep the per-pixel kernel). On the host's stack only.
const CAPACITY: usize = 48 * 1024;

/// Filters per vector.
const LANES: usize = 16;

/// Pixels sharing one pass over the packed filters.
pub(crate) const PIXELS: usize = 4;

/// One block's filters, packed `[row][group of four bytes][filter][4]` with the filters
/// rounded up to a multiple of 16 (zero filters past the block's last), each row's bytes
/// rounded up to a multiple of four (zeros past its end).
pub(crate) struct BroadcastFilters {
    bytes: MaybeUninit<[u8; CAPACITY]>,
    /// The loaded block's shape; `vectors == 0` while nothing is loaded.
    rows: usize,
    groups: usize,
    vectors: usize,
    filters: usize,
}

impl BroadcastFilters {
    /// An empty buffer (nothing written: packing writes every byte it will read).
    pub(crate) fn new() -> Self {
        BroadcastFilters {
            bytes: MaybeUninit::uninit(),
            rows: 0,
            groups: 0,
            vectors: 0,
            filters: 0,
        }
    }

    /// Packs `nb` filters (filter `f` at `filters[f·filter_len..]`, `rows` runs of `run`
    /// bytes, `run` apart) for [`Self::windows`]. `false`, leaving nothing loaded, unless the
    /// kernels run with AVX-512 VNNI, `1 ≤ nb ≤ BLOCK`, `rows, run ≥ 1`,
    /// `rows·run == filter_len` and the packed block fits [`CAPACITY`].
    pub(crate) fn load(
        &mut self,
        filters: &[i8],
        filter_len: usize,
        nb: usize,
        rows: usize,
        run: usize,
    ) -> bool {
        self.vectors = 0;
        let groups = run.div_ceil(4);
        let vectors = nb.div_ceil(LANES);
        let fits = rows
            .checked_mul(groups)
            .and_then(|n| n.checked_mul(vectors * LANES * 4))
            .is_some_and(|n| n <= CAPACITY);
        if Isa::chosen() != Isa::Avx512Vnni
            || !(1..=BLOCK).contains(&nb)
            || run == 0
            || rows == 0
            || rows.checked_mul(run) != Some(filter_len)
            || filters.len() < nb * filter_len
            || !fits
        {
            return false;
        }
        let width = vectors * LANES; // filters per packed group, zero ones included
        let base = self.bytes.as_mut_ptr().cast::<u8>();
        // Word `k` of filter `f` goes to `(k·width + f)·4`; every write below has
        // `k < rows·groups` and `f < width`, so it ends inside the `rows·groups·width·4 ≤
        // CAPACITY` bytes checked above.
        let put = |k: usize, f: usize, word: [u8; 4]| {
            // SAFETY: in bounds, as said above.
            unsafe {
                base.add((k * width + f) * 4)
                    .cast::<[u8; 4]>()
                    .write_unaligned(word)
            }
        };
        for f in 0..nb {
            let filter = &filters[f * filter_len..][..filter_len];
            if run.is_multiple_of(4) {
                // Rows of whole groups (C_in a multiple of 4: every layer but an RGB stem): the
                // filter's words in order. The packing is a transpose of 32-bit words, about
                // two cycles a word, against four pixels' worth of MACs per word and pixel.
                for (k, word) in filter.chunks_exact(4).enumerate() {
                    put(
                        k,
                        f,
                        [word[0] as u8, word[1] as u8, word[2] as u8, word[3] as u8],
                    );
                }
            } else {
                for (r, row) in filter.chunks_exact(run).enumerate() {
                    for (g, part) in row.chunks(4).enumerate() {
                        let mut word = [0u8; 4];
                        for (d, &b) in word.iter_mut().zip(part) {
                            *d = b as u8;
                        }
                        put(r * groups + g, f, word);
                    }
                }
            }
        }
        for f in nb..width {
            for k in 0..rows * groups {
                put(k, f, [0; 4]);
            }
        }
        (self.rows, self.groups, self.vectors, self.filters) = (rows, groups, vectors, nb);
        true
    }

    /// For `count` (1 to [`PIXELS`]) whole windows, pixel `p`'s rows starting at
    /// `x[first + p·pixel_step + r·x_step]`: `acc[p][c]` = `Σ_r Σ_i w_c[r·run + i]·(x[…] − z_x)`
    /// for the loaded block's `c < nb`, given its filters' sums `w_sums` (wrapping). `false`,
    /// writing nothing, if nothing is loaded, `count` or `w_sums` is out of range, or a read
    /// (each row rounded up to whole groups of four bytes) would leave `x`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn windows(
        &self,
        x: &[i8],
        first: usize,
        pixel_step: usize,
        count: usize,
        x_step: usize,
        z_x: i8,
        w_sums: &[i32],
        acc: &mut [[i32; BLOCK]; PIXELS],
    ) -> bool {
        let (rows, groups, vectors, nb) = (self.rows, self.groups, self.vectors, self.filters);
        if vectors == 0 || !(1..=PIXELS).contains(&count) || w_sums.len() < nb {
            return false;
        }
        // The last byte read: the last pixel's last row's last group.
        let end = (count - 1)
            .checked_mul(pixel_step)
            .and_then(|a| (rows - 1).checked_mul(x_step)?.checked_add(a))
            .and_then(|a| a.checked_add(first)?.checked_add(4 * groups));
        if end.is_none_or(|e| e > x.len()) {
            return false;
        }
        let packed = self.bytes.as_ptr().cast::<u8>();
        let x = x[first..].as_ptr();
        let shape = Shape {
            pixel_step,
            x_step,
            rows,
            groups,
        };
        // SAFETY: the CPU has AVX-512 F and VNNI (`load` checked the chosen level, which is
        // never above what CPUID reported); every activation read lies inside `x` (checked
        // above), and the packed reads cover `rows·groups·vectors·64` bytes, all written by
        // `load`.
        unsafe {
            match (count, vectors) {
                (4, 1) => block::<4, 1>(x, shape, packed, acc),
                (4, 2) => block::<4, 2>(x, shape, packed, acc),
                (4, 3) => block::<4, 3>(x, shape, packed, acc),
                (4, _) => block::<4, 4>(x, shape, packed, acc),
                (3, 1) => block::<3, 1>(x, shape, packed, acc),
                (3, 2) => block::<3, 2>(x, shape, packed, acc),
                (3, 3) => block::<3, 3>(x, shape, packed, acc),
                (3, _) => block::<3, 4>(x, shape, packed, acc),
                (2, 1) => block::<2, 1>(x, shape, packed, acc),
                (2, 2) => block::<2, 2>(x, shape, packed, acc),
                (2, 3) => block::<2, 3>(x, shape, packed, acc),
                (2, _) => block::<2, 4>(x, shape, packed, acc),
                (_, 1) => block::<1, 1>(x, shape, packed, acc),
                (_, 2) => block::<1, 2>(x, shape, packed, acc),
                (_, 3) => block::<1, 3>(x, shape, packed, acc),
                (_, _) => block::<1, 4>(x, shape, packed, acc),
            }
        }
        // Σ w·(x − z_x) = Σ w·(x + 128) − (128 + z_x)·Σ w, wrapping.
        let c = 128 + i32::from(z_x);
        for a in acc.iter_mut().take(count) {
            for (a, &s) in a.iter_mut().zip(&w_sums[..nb]) {
                *a = a.wrapping_sub(s.wrapping_mul(c));
            }
        }
        true
    }
}

/// Where [`block`]'s pixels and rows lie.
#[derive(Clone, Copy)]
struct Shape {
    pixel_step: usize,
    x_step: usize,
    rows: usize,
    groups: usize,
}

/// `acc[p][16v..16v + 16]` = `Σ w·(x + 128)` for `P` pixels and `V` vectors of filters.
///
/// # Safety
/// The CPU has AVX-512 F and VNNI; for every `p < P`, `r < rows`, `g < groups` the four bytes
/// at `x + p·pixel_step + r·x_step + 4g` are readable, and `packed` holds
/// `rows·groups·V·64` initialised bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn block<const P: usize, const V: usize>(
    x: *const i8,
    s: Shape,
    packed: *const u8,
    acc: &mut [[i32; BLOCK]; PIXELS],
) {
    let flip = _mm512_set1_epi8(-128);
    let mut sums = [[_mm512_setzero_si512(); V]; P];
    let mut w = packed;
    for r in 0..s.rows {
        // SAFETY (all pointer arithmetic and reads below): inside the regions of the contract.
        let row = unsafe { x.add(r * s.x_step) };
        for g in 0..s.groups {
            let mut ws = [_mm512_setzero_si512(); V];
            for (v, wv) in ws.iter_mut().enumerate() {
                *wv = unsafe { _mm512_loadu_si512(w.add(64 * v).cast::<__m512i>()) };
            }
            w = unsafe { w.add(64 * V) };
            for (p, sums) in sums.iter_mut().enumerate() {
                let four = unsafe {
                    row.add(p * s.pixel_step + 4 * g)
                        .cast::<i32>()
                        .read_unaligned()
                };
                let xu = _mm512_xor_si512(_mm512_set1_epi32(four), flip);
                for (sum, wv) in sums.iter_mut().zip(ws) {
                    *sum = _mm512_dpbusd_epi32(*sum, xu, wv);
                }
            }
        }
    }
    for (out, sums) in acc.iter_mut().zip(sums) {
        for (v, sum) in sums.into_iter().enumerate() {
            // SAFETY: 16·v + 16 ≤ 16·V ≤ 64 = BLOCK: inside `out`.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(16 * v).cast::<__m512i>(), sum) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::simd::x86_64::{available, with_isa};
    use crate::test_rng::XorShift32;

    /// Against the plain sum, on random blocks: every pixel count and vector count, runs not a
    /// multiple of four, rows apart by more than a run, filters not a multiple of 16, zero
    /// points at their ends; windows reaching the very end of `x` are taken and one byte
    /// further refused, with nothing written.
    #[test]
    fn windows_equal_the_plain_sums() {
        if !available().any(|isa| isa == Isa::Avx512Vnni) {
            return; // nothing to check on a CPU without it: the conv tests cover the rest
        }
        with_isa(Isa::Avx512Vnni, || {
            let mut rng = XorShift32::new(0x0B40_ADCA);
            let mut checked = 0;
            for case in 0..1500 {
                let rows = 1 + rng.below(4) as usize;
                let run = 1 + rng.below(90) as usize;
                let nb = 1 + rng.below(BLOCK as u32) as usize;
                let filter_len = rows * run;
                let filters: Vec<i8> = (0..nb * filter_len).map(|_| rng.next_u32() as i8).collect();
                let mut packed = BroadcastFilters::new();
                if !packed.load(&filters, filter_len, nb, rows, run) {
                    assert!(rows * run.div_ceil(4) * nb.div_ceil(16) * 64 > CAPACITY);
                    continue;
                }
                let count = 1 + rng.below(PIXELS as u32) as usize;
                let x_step = run + rng.below(40) as usize;
                let pixel_step = rng.below(64) as usize;
                let first = rng.below(50) as usize;
                let last = first + (count - 1) * pixel_step + (rows - 1) * x_step;
                let len = last + 4 * run.div_ceil(4) + if case % 3 == 0 { 0 } else { 7 };
                let x: Vec<i8> = (0..len).map(|_| rng.next_u32() as i8).collect();
                let z_x = match case % 4 {
                    0 => -128,
                    1 => 127,
                    _ => rng.next_u32() as i8,
                };
                let sums: Vec<i32> = filters
                    .chunks(filter_len)
                    .map(|f| f.iter().map(|&w| i32::from(w)).sum())
                    .collect();
                let mut acc = [[7i32; BLOCK]; PIXELS];
                assert!(packed.windows(&x, first, pixel_step, count, x_step, z_x, &sums, &mut acc));
                for (p, acc) in acc.iter().enumerate().take(count) {
                    for (c, &got) in acc.iter().enumerate().take(nb) {
                        let mut want = 0i32;
                        for r in 0..rows {
                            for i in 0..run {
                                let xv = x[first + p * pixel_step + r * x_step + i];
                                let wv = filters[c * filter_len + r * run + i];
                                want += i32::from(wv) * (i32::from(xv) - i32::from(z_x));
                            }
                        }
                        assert_eq!(got, want, "case {case} pixel {p} filter {c}");
                    }
                }
                // One byte short of the last read: refused, nothing written.
                let mut untouched = [[7i32; BLOCK]; PIXELS];
                let short = &x[..last + 4 * run.div_ceil(4) - 1];
                assert!(!packed.windows(
                    short,
                    first,
                    pixel_step,
                    count,
                    x_step,
                    z_x,
                    &sums,
                    &mut untouched
                ));
                assert!(untouched.iter().flatten().all(|&a| a == 7));
                checked += 1;
            }
            assert!(checked > 1000, "{checked}");
        });
    }

    /// Below AVX-512 VNNI nothing loads, and nothing is computed.
    #[test]
    fn other_levels_load_nothing() {
        for isa in available().filter(|&isa| isa != Isa::Avx512Vnni) {
            with_isa(isa, || {
                let mut packed = BroadcastFilters::new();
                assert!(!packed.load(&[1; 16], 4, 4, 1, 4));
                let mut acc = [[0; BLOCK]; PIXELS];
                assert!(!packed.windows(&[0; 64], 0, 4, 1, 4, 0, &[0; 4], &mut acc));
            });
        }
    }
}
