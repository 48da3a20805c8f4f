//! Reference kernels, one op per file as in TFLM's `kernels/`.
//!
//! Each kernel is a plain function of (parameters, input slices, output slice, scratch) that knows
//! nothing about the blob or the arena, so it can be tested alone and later replaced by a
//! per-target kernel (CMSIS-NN style) behind the same signature.
//!
//! Kernels check at entry that every slice has the length its shape implies (with checked
//! arithmetic); every index computed inside is then below a length already checked, so nothing
//! can overflow or index out of bounds. Accumulations use wrapping arithmetic, which is exact
//! because validation proves the sums fit in i32 (NUMERICS.md), and keeps the kernels free of
//! panic paths even when overflow checks are on.

pub mod add;
pub mod concat;
pub mod conv;
pub mod depthwise;
pub mod hard_swish;
pub mod linear;
pub mod logistic;
pub mod mean;
pub mod mul;
pub mod pool;
mod simd;
pub mod softmax;
#[cfg(test)]
mod speed_tests;
pub mod table;
#[cfg(test)]
pub(crate) mod test_cases;

/// The x86-64 kernels' instruction-set choice (`Isa`, `set_isa`, `isa`), public for benchmarks
/// that compare the levels in one process; the kernels themselves live in `simd::x86_64`.
#[cfg(target_arch = "x86_64")]
pub use simd::x86_64 as x86;

use shared_format::packing::{packed_len, unpack_into};
use shared_format::{Shape, Window};

/// A slice or parameter a kernel was given does not match what validation guarantees. The
/// interpreter turns it into [`crate::Error::Internal`] with the op's index and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelError(pub &'static str);

/// Result of a kernel.
pub type KernelResult = Result<(), KernelError>;

/// Elements of an NHWC tensor of `shape`, or an error if that overflows `usize`.
pub(crate) fn elements(shape: Shape) -> Result<usize, KernelError> {
    (shape.h as usize)
        .checked_mul(shape.w as usize)
        .and_then(|hw| hw.checked_mul(shape.c as usize))
        .ok_or(KernelError("tensor size overflows usize"))
}

/// Checks that `len` is the element count of `shape`.
pub(crate) fn expect_len(len: usize, shape: Shape, what: &'static str) -> KernelResult {
    if elements(shape)? == len {
        Ok(())
    } else {
        Err(KernelError(what))
    }
}

/// The taps of one window axis that land inside the input, as a half-open range `k0..k1` of
/// kernel indices, for output position `out`.
///
/// Computed once per output row (or column) so the inner loops never test taps one by one
/// (TFLM's `is_point_inside_image`, hoisted). Tap `k` reads input index
/// `out·stride − pad + k·dilation`; all quantities are at most 2^16, so i64 is ample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taps {
    /// First valid kernel index.
    pub k0: usize,
    /// One past the last valid kernel index (`k0 ≤ k1`).
    pub k1: usize,
    /// Input index of kernel index 0 (may be negative: padding).
    pub origin: i64,
}

impl Taps {
    /// Valid kernel rows of output row `oy` of a window over `in_h` input rows.
    #[inline]
    pub fn rows(window: &Window, oy: usize, in_h: usize) -> Self {
        let w = window;
        Self::along(
            oy,
            w.stride_h,
            w.padding.top,
            w.dilation_h,
            w.kernel_h,
            in_h,
        )
    }

    /// Valid kernel columns of output column `ox` of a window over `in_w` input columns.
    #[inline]
    pub fn cols(window: &Window, ox: usize, in_w: usize) -> Self {
        let w = window;
        Self::along(
            ox,
            w.stride_w,
            w.padding.left,
            w.dilation_w,
            w.kernel_w,
            in_w,
        )
    }

    /// Valid taps along an axis of `len` input cells.
    #[inline]
    pub fn along(
        out: usize,
        stride: u8,
        pad_before: u8,
        dilation: u8,
        kernel: u8,
        len: usize,
    ) -> Self {
        let origin = out as i64 * stride as i64 - pad_before as i64;
        let kernel = kernel as i64;
        if dilation <= 1 {
            // Dilation 1 (nearly every layer): no division on this per-pixel path.
            let k0 = (-origin).clamp(0, kernel);
            let k1 = (len as i64 - origin).clamp(k0, kernel.max(k0));
            return Self {
                k0: k0 as usize,
                k1: k1 as usize,
                origin,
            };
        }
        let d = dilation as i64;
        // Smallest k with origin + k·d ≥ 0.
        let k0 = if origin >= 0 {
            0
        } else {
            (-origin + d - 1) / d
        };
        // One past the largest k with origin + k·d ≤ len − 1.
        let room = len as i64 - origin; // cells from origin to the end
        let k1 = if room <= 0 { 0 } else { (room + d - 1) / d };
        let k0 = k0.min(kernel);
        let k1 = k1.clamp(k0, kernel.max(k0));
        Self {
            k0: k0 as usize,
            k1: k1 as usize,
            origin,
        }
    }

    /// Input index of kernel index `k` (only called for `k` in `k0..k1`, where it is in range).
    #[inline]
    pub fn input_index(&self, k: usize, dilation: u8) -> usize {
        (self.origin + k as i64 * dilation as i64) as usize
    }

    /// Number of valid taps.
    #[inline]
    pub fn count(&self) -> usize {
        self.k1 - self.k0
    }
}

/// Output height and width of `window` over `input`, checked against the output shape.
pub(crate) fn expect_window_output(window: &Window, input: Shape, output: Shape) -> KernelResult {
    // `Window::output_len` subtracts 1 from the kernel size: refuse what validation refuses
    // (zero kernel, stride or dilation) before calling it.
    let w = window;
    if [
        w.kernel_h,
        w.kernel_w,
        w.stride_h,
        w.stride_w,
        w.dilation_h,
        w.dilation_w,
    ]
    .contains(&0)
    {
        return Err(KernelError("zero kernel size, stride or dilation"));
    }
    let oh = window.output_h(input.h as u32);
    let ow = window.output_w(input.w as u32);
    if oh == Some(output.h as u32) && ow == Some(output.w as u32) {
        Ok(())
    } else {
        Err(KernelError("output shape does not match the window"))
    }
}

/// One output channel's filter of `len` weights as i8: borrowed in place from the blob for 8-bit
/// weights, unpacked into `scratch` for 2- and 4-bit weights (EDGE_ANCHORS §3.6 order).
///
/// Unpacking one channel at a time keeps the scratch at one filter (`plan::scratch_bytes`)
/// instead of a whole widened weight tensor, which would not fit an MCU's RAM.
#[inline]
pub(crate) fn channel_filter<'x>(
    data: &'x [u8],
    bits: u8,
    channel: usize,
    len: usize,
    scratch: &'x mut [i8],
) -> Result<&'x [i8], KernelError> {
    let start = channel
        .checked_mul(len)
        .ok_or(KernelError("weight offset overflows"))?;
    let end = start
        .checked_add(len)
        .ok_or(KernelError("weight offset overflows"))?;
    if bits == 8 {
        let bytes = data
            .get(start..end)
            .ok_or(KernelError("weights shorter than the filter"))?;
        return bytemuck::try_cast_slice(bytes).map_err(|_| KernelError("weight cast"));
    }
    if bits != 2 && bits != 4 {
        return Err(KernelError("weight bit-width is not 2, 4 or 8"));
    }
    // unpack_into indexes the packed bytes directly: prove first that they are all there.
    match packed_len(end as u64, bits) {
        Some(need) if need <= data.len() as u64 => {}
        _ => return Err(KernelError("packed weights shorter than the filter")),
    }
    let out = scratch
        .get_mut(..len)
        .ok_or(KernelError("scratch smaller than one filter"))?;
    unpack_into(data, bits, start, out);
    Ok(out)
}

/// Accumulator of `Σ w·x` over several runs of two i8 slices: the inner loop of every weighted
/// kernel.
///
/// Raw i8 × i8 products (`|w·x| ≤ 2^14`) are summed; centring `x − z_x` inside the loop would
/// cost a widening subtract per element, so kernels subtract `z_x·Σ w` afterwards instead.
/// On x86-64 each run goes through SSE2's `PMADDWD` ([`simd::dot`]): rustc turned the portable
/// loop into scalar multiplies there. On other 64-bit hosts the sum is kept in [`LANES`]
/// independent lanes across all runs of one output value and reduced once at the end, so each
/// run is straight multiply-adds the vectoriser can take. On 32-bit MCUs `LANES` is 1, a single
/// register accumulator, since 16 lanes would spill.
///
/// Sums wrap: a partial sum may leave i32 only if the final accumulator does, which validation
/// rules out, so the wrapped result is exact.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DotAcc {
    lanes: [i32; LANES],
}

/// Independent partial sums in [`DotAcc`].
pub(crate) const LANES: usize = if cfg!(target_arch = "x86_64") {
    1
} else if cfg!(target_pointer_width = "64") {
    16
} else {
    1
};

impl DotAcc {
    #[inline(always)]
    pub(crate) const fn new() -> Self {
        Self { lanes: [0; LANES] }
    }

    /// Adds `Σ w·x` over the common length of `w` and `x`.
    #[inline(always)]
    pub(crate) fn add(&mut self, w: &[i8], x: &[i8]) {
        #[cfg(target_arch = "x86_64")]
        {
            self.lanes[0] = self.lanes[0].wrapping_add(simd::dot(w, x));
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.add_portable(w, x);
    }

    /// [`Self::add`] in plain Rust.
    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn add_portable(&mut self, w: &[i8], x: &[i8]) {
        let n = w.len().min(x.len());
        let (w, x) = (&w[..n], &x[..n]);
        let wc = w.chunks_exact(LANES);
        let xc = x.chunks_exact(LANES);
        let (wr, xr) = (wc.remainder(), xc.remainder());
        for (wc, xc) in wc.zip(xc) {
            for ((l, &w), &x) in self.lanes.iter_mut().zip(wc).zip(xc) {
                *l = l.wrapping_add((w as i32).wrapping_mul(x as i32));
            }
        }
        for ((l, &w), &x) in self.lanes.iter_mut().zip(wr).zip(xr) {
            *l = l.wrapping_add((w as i32).wrapping_mul(x as i32));
        }
    }

    /// The accumulated `Σ w·x`.
    #[inline(always)]
    pub(crate) fn total(&self) -> i32 {
        self.lanes.iter().fold(0i32, |a, &l| a.wrapping_add(l))
    }
}

/// Runs `f` once per instruction set the dispatched kernels can take on this machine (on x86-64
/// SSE2, then AVX2 where the CPU has it; elsewhere the one build), with that set's name.
#[cfg(test)]
pub(crate) fn each_isa(mut f: impl FnMut(&'static str)) {
    #[cfg(target_arch = "x86_64")]
    simd::x86_64::each_isa(|isa| f(isa.name()));
    #[cfg(not(target_arch = "x86_64"))]
    f("portable");
}

/// `Σ x` over raw values.
#[inline(always)]
pub(crate) fn sum(x: &[i8]) -> i32 {
    x.iter().fold(0i32, |acc, &x| acc.wrapping_add(x as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tap range must equal the brute-force set of taps inside the input, for every kernel
    /// side up to format 1.2's 16 and padding up to one less than the kernel.
    #[test]
    fn taps_match_brute_force() {
        for len in 1..12usize {
            for kernel in 1..=16u8 {
                for dilation in 1..5u8 {
                    for stride in 1..3u8 {
                        for pad in 0..kernel.max(2) {
                            for out in 0..12usize {
                                let t = Taps::along(out, stride, pad, dilation, kernel, len);
                                let valid: Vec<usize> = (0..kernel as usize)
                                    .filter(|&k| {
                                        let i = out as i64 * stride as i64 - pad as i64
                                            + k as i64 * dilation as i64;
                                        (0..len as i64).contains(&i)
                                    })
                                    .collect();
                                let got: Vec<usize> = (t.k0..t.k1).collect();
                                assert_eq!(
                                    got, valid,
                                    "len {len} k {kernel} d {dilation} s {stride} p {pad} o {out}"
                                );
                                for k in t.k0..t.k1 {
                                    assert!(t.input_index(k, dilation) < len);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn dot(w: &[i8], x: &[i8]) -> i32 {
        let mut acc = DotAcc::new();
        acc.add(w, x);
        acc.total()
    }

    #[test]
    fn dot_products() {
        assert_eq!(dot(&[1, -2, 3], &[4, 5, -6]), 4 - 10 - 18);
        assert_eq!(dot(&[-128, -128], &[-128, -128]), 2 * 16384);
        assert_eq!(dot(&[1, 2, 3], &[1, 1]), 3, "common length only");
        assert_eq!(sum(&[1, 2, -128]), -125);
        // Several runs of assorted lengths (tails included) accumulate into one total.
        let w: Vec<i8> = (0..200).map(|i| (i * 37 % 256) as u8 as i8).collect();
        let x: Vec<i8> = (0..200).map(|i| (i * 91 % 256) as u8 as i8).collect();
        let mut acc = DotAcc::new();
        let mut expect = 0i64;
        let mut at = 0;
        for len in [1, 15, 16, 17, 33, 0, 96, 22] {
            acc.add(&w[at..at + len], &x[at..at + len]);
            expect += (at..at + len)
                .map(|i| w[i] as i64 * x[i] as i64)
                .sum::<i64>();
            at += len;
        }
        assert_eq!(acc.total() as i64, expect);
    }

    #[test]
    fn filters_unpack_one_channel() {
        let mut scratch = [0i8; 4];
        // 4-bit [1,2,3,4 | -1,-2,-3,-4]
        let data = [0x21, 0x43, 0xEF, 0xCD];
        assert_eq!(
            channel_filter(&data, 4, 1, 4, &mut scratch).unwrap(),
            &[-1, -2, -3, -4]
        );
        assert!(channel_filter(&data, 4, 2, 4, &mut scratch).is_err());
        assert!(channel_filter(&data, 3, 0, 4, &mut scratch).is_err());
        assert_eq!(
            channel_filter(&data, 8, 1, 2, &mut scratch).unwrap(),
            &[-17, -51]
        );
    }
}
