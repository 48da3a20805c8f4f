//! DepthwiseConv2d (TFLM `reference_integer_ops::DepthwiseConvPerChannel`, depth multiplier 1),
//! NHWC input, weights `[ky][kx][c]` (TFLite 1HWC, channel fastest).
//!
//! `acc = b[c] + Σ_valid w·(x − z_x) − z_w·Σ_valid (x − z_x)` with `ci = co = c` (NUMERICS.md).
//! Both tensors have the channel index fastest, so one tap of a run of consecutive channels is
//! contiguous in the input and in the weights: the inner loop is a lane-wise multiply-accumulate
//! over a tile of [`DEPTHWISE_TILE`] (32) channels into that many i32 accumulators,
//! `wx[j] += w[tap][c0 + j]·x[iy][ix][c0 + j]`, which compilers turn into SIMD on hosts and
//! which on MCUs reads both operands sequentially. As in the conv kernel the raw `Σ w·x` is
//! corrected once per pixel: `Σ w·(x − z_x) = Σ w·x − z_x·Σ_valid w` (`Σ_valid w` precomputed
//! per tile for windows wholly inside the input) and `Σ (x − z_x) = Σ x − valid·z_x` (lane sums
//! of x only when `z_w ≠ 0`). The output stage is `requantize`, with each channel's constants
//! worked out once per tile ([`ChannelRequant`]).
//!
//! Loop order: channel tile (its sub-byte weights unpacked once into a `kh·kw·min(C, 32)`
//! scratch; 8-bit weights are read in place at stride C), output row (valid `ky` range computed
//! once), output column (valid `kx` range computed once), valid taps, then the tile's lanes.
//!
//! All sums wrap (no panic paths even with overflow checks on). That is exact: the terms are
//! combined modulo 2^32, and validation proves the final accumulator fits in i32 (per channel,
//! `Σ(|w| + |z_w|)·255 + |b| ≤ i32::MAX`, the channel's taps summed at stride C).
//!
//! On Armv7E-M (Cortex-M4/M7) and an M33 built with `+dsp` (`cfg(edge_dsp)`), every weight
//! format (symmetric or affine) goes instead to [`depthwise_tiled_block`]: per pixel and tap, four channels a step through
//! `armv7em::lanes4` (`SXTAB16` centring both operands, then `SMLABB`/`SMLATT`),
//! `Σ (w − z_w)·(x − z_x)` formed directly; the same exact accumulators. 8-bit weights are read
//! in place ([`depthwise_tiled`]); 2/4-bit weights are unpacked one tile at a time into the same
//! scratch as here ([`depthwise_tiled_packed`], issue 18), so they cost what 8-bit ones do.
//!
//! On x86-64 every weight format goes to `depthwise_simd` (issue 18/17): the same block
//! structure, the pixel's valid taps listed once and run sixteen channels and two taps at a
//! time through SSE2's `PMADDWD` (`sse2::depthwise_pixel`; AVX2's `VPMADDWD`, `avx2::
//! depthwise_pixel`, on CPUs that have it, chosen at run time by
//! `simd::x86_64::depthwise_pixel`); 2/4-bit weights are unpacked one
//! tile at a time into the same scratch as here. aarch64 takes the same path with NEON's
//! widening multiply-accumulate in its place (`simd::aarch64::depthwise_pixel`, through the
//! same names, `simd`). `depthwise_reference` keeps this file's
//! portable loop callable on every target, for the tests.
//!
//! [`DEPTHWISE_TILE`]: shared_format::plan::DEPTHWISE_TILE

use shared_format::Rounding;
use shared_format::packing::{packed_len, unpack_into};
use shared_format::plan::DEPTHWISE_TILE as TILE;

use super::conv::{BLOCK, ConvParams, output_stage};
use super::simd::armv7em;
use super::{KernelError, KernelResult, Taps, expect_len, expect_window_output};
use crate::requant::ChannelRequant;

/// Runs a depthwise convolution. The parameters are those of a convolution whose input and
/// output have the same channel count; for 2/4-bit weights `scratch` must hold one tile of
/// filters, `kh·kw·min(C, TILE)` values (`plan::scratch_bytes`).
pub fn depthwise_conv2d(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> KernelResult {
    depthwise_as::<true>(p, input, output, scratch)
}

/// The portable depthwise convolution, whatever the target: the reference the per-target
/// kernels are tested against (arguments as [`depthwise_conv2d`]). Crate-private, so that on a
/// device it is not compiled at all and the dispatcher's code stays as it was.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn depthwise_reference(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> KernelResult {
    depthwise_as::<false>(p, input, output, scratch)
}

/// [`depthwise_conv2d`] (`FAST`: the per-target kernel where there is one) or
/// [`depthwise_reference`]: one body, so both check their arguments the same way.
#[inline(always)]
fn depthwise_as<const FAST: bool>(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> KernelResult {
    let win = p.window;
    let (in_h, in_w, channels) = (
        p.input_shape.h as usize,
        p.input_shape.w as usize,
        p.input_shape.c as usize,
    );
    let (out_h, out_w) = (p.output_shape.h as usize, p.output_shape.w as usize);
    expect_len(input.len(), p.input_shape, "depthwise input length")?;
    expect_len(output.len(), p.output_shape, "depthwise output length")?;
    expect_window_output(&win, p.input_shape, p.output_shape)?;
    if p.output_shape.c != p.input_shape.c {
        return Err(KernelError("depthwise channel counts differ"));
    }
    let kw = win.kernel_w as usize;
    // Both factors are at most 255 (u8 kernel sides) and C ≤ u16::MAX: below 2^32.
    let taps = win.kernel_h as usize * kw;
    let weight_count = taps
        .checked_mul(channels)
        .ok_or(KernelError("depthwise weight count overflows"))?;
    let bits = p.weights.bits;
    let all_weights: &[i8] = match bits {
        8 => {
            let bytes = p
                .weights
                .data
                .get(..weight_count)
                .ok_or(KernelError("depthwise weights shorter than kh·kw·C"))?;
            bytemuck::try_cast_slice(bytes).map_err(|_| KernelError("weight cast"))?
        }
        2 | 4 => {
            // unpack_into indexes the packed bytes directly: prove first that they are all there.
            match packed_len(weight_count as u64, bits) {
                Some(need) if need <= p.weights.data.len() as u64 => {}
                _ => return Err(KernelError("packed depthwise weights shorter than kh·kw·C")),
            }
            &[]
        }
        _ => return Err(KernelError("weight bit-width is not 2, 4 or 8")),
    };
    let z_x = p.input_zero_point as i32;
    let z_w = p.weights.zero_point as i32;
    let row_stride = in_w * channels; // ≤ input.len(), checked above
    // Armv7E-M: every bit-width and scheme goes to the register-tiled kernel (same sums); 2/4-bit
    // weights unpacked a tile at a time into `scratch`.
    #[cfg(edge_dsp)]
    if FAST && paired_eligible(p) {
        return depthwise_paired(p, input, output, all_weights);
    }
    #[cfg(edge_dsp)]
    if FAST {
        return if bits == 8 {
            depthwise_tiled(p, input, output, all_weights)
        } else {
            depthwise_tiled_packed(p, input, output, scratch)
        };
    }
    // x86-64 and aarch64: every bit-width and scheme goes to the SIMD kernel (same sums).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if FAST && taps <= MAX_TAPS {
        return depthwise_simd(p, input, output, all_weights, scratch);
    }

    let mut c0 = 0;
    while c0 < channels {
        let n = (channels - c0).min(TILE);
        // This tile's weights: tap `t`'s `n` weights are `tile[t·stride + offset..][..n]`.
        let (tile, stride, offset): (&[i8], usize, usize) = if bits == 8 {
            (all_weights, channels, c0)
        } else {
            let tile = scratch
                .get_mut(..taps * n)
                .ok_or(KernelError("scratch smaller than one depthwise tile"))?;
            for (t, dst) in tile.chunks_exact_mut(n).enumerate() {
                // t·C + c0 + n ≤ taps·C = weight_count, whose bytes were checked above.
                unpack_into(p.weights.data, bits, t * channels + c0, dst);
            }
            (tile, n, 0)
        };
        // Per-channel bias and output stage of the tile, worked out once (one output per
        // kh·kw MACs makes the output stage a large share of the kernel).
        let mut bias = [0i32; TILE];
        let mut stage = [ChannelRequant::new(0, 0, p.rounding); TILE];
        for (c, (b, rq)) in (c0..c0 + n).zip(bias.iter_mut().zip(&mut stage)) {
            *b = p.bias.get(c).ok_or(KernelError("bias shorter than C"))?;
            let (m, e) = p
                .requant
                .get(c)
                .ok_or(KernelError("requant table shorter than C"))?;
            *rq = ChannelRequant::new(m, e, p.rounding);
        }
        // Σ w over all taps per channel: the `z_x·Σ_valid w` term of every pixel whose window
        // lies wholly inside the input. Border pixels sum their valid taps as they go.
        let mut all_taps_w_sum = [0i32; TILE];
        for t in 0..taps {
            let w0 = t * stride + offset;
            let ws = tile
                .get(w0..w0 + n)
                .ok_or(KernelError("depthwise filter tap"))?;
            add_lanes(&mut all_taps_w_sum, ws);
        }

        let mut pixels = output.chunks_exact_mut(channels);
        for oy in 0..out_h {
            let ty = Taps::rows(&win, oy, in_h);
            for ox in 0..out_w {
                let tx = Taps::cols(&win, ox, in_w);
                let valid = ty.count() * tx.count();
                // Σ w over the valid taps is needed only for z_x ≠ 0, and only summed here for
                // a window cut by the border.
                let border_w_sum = z_x != 0 && valid != taps;
                let mut wx = [0i32; TILE]; // Σ w·x
                let mut w_sum = [0i32; TILE]; // Σ_valid w, border pixels only
                let mut x_sum = [0i32; TILE]; // Σ x, only for z_w ≠ 0
                for ky in ty.k0..ty.k1 {
                    let row = ty.input_index(ky, win.dilation_h) * row_stride + c0;
                    for kx in tx.k0..tx.k1 {
                        let x0 = row + tx.input_index(kx, win.dilation_w) * channels;
                        let w0 = (ky * kw + kx) * stride + offset;
                        let xs = input
                            .get(x0..x0 + n)
                            .ok_or(KernelError("depthwise input tap"))?;
                        let ws = tile
                            .get(w0..w0 + n)
                            .ok_or(KernelError("depthwise filter tap"))?;
                        mac(&mut wx, ws, xs);
                        if border_w_sum {
                            add_lanes(&mut w_sum, ws);
                        }
                        if z_w != 0 {
                            add_lanes(&mut x_sum, xs);
                        }
                    }
                }
                let w_sum = if border_w_sum {
                    &w_sum
                } else {
                    &all_taps_w_sum
                };
                // Σ_valid (x − z_x) = Σ x − valid·z_x (valid ≤ kh·kw ≤ 256 in a valid blob).
                let centring = (valid as i32).wrapping_mul(z_x);
                let px = pixels
                    .next()
                    .and_then(|px| px.get_mut(c0..c0 + n))
                    .ok_or(KernelError("depthwise output pixel"))?;
                let terms = wx.iter().zip(w_sum).zip(&x_sum);
                let lanes = bias.iter().zip(&stage).zip(terms);
                for (y, ((&b, rq), ((&wx, &ws), &xs))) in px.iter_mut().zip(lanes) {
                    // b + Σ w·(x − z_x) − z_w·Σ (x − z_x), wrapping and exact (module docs).
                    let acc = b
                        .wrapping_add(wx)
                        .wrapping_sub(z_x.wrapping_mul(ws))
                        .wrapping_sub(z_w.wrapping_mul(xs.wrapping_sub(centring)));
                    *y = rq.apply(acc, p.output_zero_point, p.clamp);
                }
            }
        }
        c0 += n;
    }
    Ok(())
}

/// Words of the centred weight table [`depthwise_paired`] keeps on the stack (1 KiB): two per
/// tap and group of four channels.
const PAIRED_TABLE: usize = 256;

/// Channels [`depthwise_paired`] runs per pass over the output (their bias and output stage
/// worked out once).
const PAIRED_BLOCK: usize = 32;

/// Whether [`depthwise_paired`] handles `p` (Armv7E-M; elsewhere only tested): `C` a multiple
/// of 4, a kernel whose table for four channels fits [`PAIRED_TABLE`] (at most 128 taps: every
/// kernel up to 11×11), and an input step along a row (`C·dilation_w`) that
/// [`armv7em::dw_taps4`] takes as an immediate. Every weight width and scheme.
#[cfg_attr(not(edge_dsp), allow(dead_code))]
pub(crate) fn paired_eligible(p: &ConvParams<'_>) -> bool {
    let c = p.input_shape.c as usize;
    let taps = p.window.kernel_h as usize * p.window.kernel_w as usize;
    let step = c * p.window.dilation_w as usize;
    c > 0
        && c.is_multiple_of(4)
        && taps > 0
        && 2 * taps <= PAIRED_TABLE
        && step <= armv7em::DW_MAX_STEP
        && matches!(p.weights.bits, 2 | 4 | 8)
}

/// Depthwise conv on Armv7E-M for parameters that pass [`paired_eligible`] (issue 18), every
/// weight width, symmetric or per-tensor affine: a block of up to [`PAIRED_BLOCK`] channels at
/// a time has its weights centred (`w − z_w`) and widened into a table of 16-bit pairs on the
/// stack (as many groups of four channels as [`PAIRED_TABLE`] holds), then per output pixel each
/// group's valid taps run through [`armv7em::dw_taps4`] (four accumulators in registers, eight
/// instructions per four MACs) and the block is requantized by [`output_stage`]. The
/// accumulators are the same exact integers as the reference loop's, `Σ (w − z_w)·(x − z_x)`.
/// `weights` holds the 8-bit weights (empty for 2/4-bit ones, which are unpacked from the blob
/// as the table is filled). Arguments as checked by [`depthwise_conv2d`].
#[cfg_attr(not(edge_dsp), allow(dead_code))]
#[inline(never)]
pub(crate) fn depthwise_paired(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    weights: &[i8],
) -> KernelResult {
    if !paired_eligible(p) {
        return Err(KernelError(
            "depthwise parameters unfit for the paired kernel",
        ));
    }
    let win = p.window;
    let (in_h, in_w, channels) = (
        p.input_shape.h as usize,
        p.input_shape.w as usize,
        p.input_shape.c as usize,
    );
    let (out_h, out_w) = (p.output_shape.h as usize, p.output_shape.w as usize);
    let kw = win.kernel_w as usize;
    let taps = win.kernel_h as usize * kw;
    let bits = p.weights.bits;
    let z_w = i32::from(p.weights.zero_point);
    let centre = armv7em::splat16(-(p.input_zero_point as i16));
    let row_stride = in_w * channels;
    let step = channels * win.dilation_w as usize;
    let x_row = row_stride * win.dilation_h as usize;
    // Channels per block: whole groups whose tables fit, at most PAIRED_BLOCK.
    let block = (PAIRED_TABLE / (2 * taps) * 4).min(PAIRED_BLOCK);
    let mut table = [0u32; PAIRED_TABLE];
    let mut c0 = 0;
    // |w − z_w| over the weights' codes and |x − z_x| over all inputs bound every accumulator
    // (for the fast stages' scaling).
    let half = 1i32 << (bits - 1);
    let (w_lo, w_hi) = (-half - z_w, half - 1 - z_w);
    let w_max = u64::from(w_lo.unsigned_abs().max(w_hi.unsigned_abs()));
    let z_x = i32::from(p.input_zero_point);
    let x_max = u64::from((127 - z_x).max(z_x + 128).unsigned_abs());
    while c0 < channels {
        let nb = (channels - c0).min(block);
        let mut bias = [0i32; PAIRED_BLOCK];
        let mut stage = [ChannelRequant::new(0, 0, p.rounding); PAIRED_BLOCK];
        for ((b, rq), c) in bias.iter_mut().zip(&mut stage).zip(c0..c0 + nb) {
            *b = p.bias.get(c).ok_or(KernelError("bias shorter than C"))?;
            let (m, e) = p
                .requant
                .get(c)
                .ok_or(KernelError("requant table shorter than C"))?;
            *rq = ChannelRequant::new(m, e, p.rounding);
        }
        // Single rounding into a whole k-bit clamp (nearly every exported model): the output
        // stage runs in the kernel's own loop (`armv7em::FastStage`), four instructions an output,
        // with the channel's weights and bias scaled by its `pre` (0 where `all_fast` fails).
        let mut fast = [armv7em::FastStage::default(); PAIRED_BLOCK];
        let mut pre = [0u32; PAIRED_BLOCK];
        let mut fast_bias = [0i32; PAIRED_BLOCK];
        let mut all_fast = p.rounding == Rounding::Single;
        for (((f, sc), fb), (c, &b)) in fast
            .iter_mut()
            .zip(&mut pre)
            .zip(&mut fast_bias)
            .zip((c0..c0 + nb).zip(&bias))
        {
            let (m, e) = p
                .requant
                .get(c)
                .ok_or(KernelError("requant table shorter than C"))?;
            let max_acc = u64::from(b.unsigned_abs()) + taps as u64 * w_max * x_max;
            let (lo, hi) = (p.clamp.min, p.clamp.max);
            match armv7em::FastStage::single(m, e, p.output_zero_point, lo, hi, max_acc) {
                // The scaled weights must fit the table's signed 16-bit halves.
                Some((s, k))
                    if all_fast
                        && i16::try_from(i64::from(w_lo) << k).is_ok()
                        && i16::try_from(i64::from(w_hi) << k).is_ok() =>
                {
                    // |b|·2^k ≤ max_acc·2^k < 2^31.
                    (*f, *sc, *fb) = (s, k, b << k);
                }
                _ => all_fast = false,
            }
        }
        if !all_fast {
            pre.fill(0);
        }
        // Group g's tap t: words 2·(g·taps + t) and + 1.
        paired_table(p, weights, c0, nb, &pre, &mut table)?;
        let (Some(bias), Some(stage), Some(fast_bias)) =
            (bias.get(..nb), stage.get(..nb), fast_bias.get(..nb))
        else {
            return Err(KernelError("depthwise block"));
        };
        let plain = stage.iter().all(ChannelRequant::is_plain);
        let fast = fast.get(..nb).ok_or(KernelError("depthwise block"))?;
        let mut acc = [0i32; PAIRED_BLOCK];
        let acc = acc.get_mut(..nb).ok_or(KernelError("depthwise block"))?;
        let mut pixels = output.chunks_exact_mut(channels);
        for oy in 0..out_h {
            let ty = Taps::rows(&win, oy, in_h);
            for ox in 0..out_w {
                let tx = Taps::cols(&win, ox, in_w);
                let ys = pixels
                    .next()
                    .and_then(|px| px.get_mut(c0..c0 + nb))
                    .ok_or(KernelError("depthwise output pixel"))?;
                if ty.count() == 0 || tx.count() == 0 {
                    // No valid tap (a blob validation refuses): the bias alone.
                    acc.fill(0);
                } else {
                    let x0 = ty.input_index(ty.k0, win.dilation_h) * row_stride
                        + tx.input_index(tx.k0, win.dilation_w) * channels
                        + c0;
                    let w0 = 2 * (ty.k0 * kw + tx.k0);
                    let geometry = armv7em::DwTaps {
                        rows: ty.count(),
                        cols: tx.count(),
                        step,
                        x_row,
                        kw,
                    };
                    let x = input.get(x0..).unwrap_or_default();
                    let w = table.get(w0..).unwrap_or_default();
                    if all_fast {
                        let out = armv7em::DwOut::Stage {
                            y: ys,
                            bias: fast_bias,
                            stages: fast,
                        };
                        if !armv7em::dw_pixel(x, w, 2 * taps, geometry, centre, out) {
                            return Err(KernelError("depthwise window outside its tensors"));
                        }
                        continue;
                    }
                    if !armv7em::dw_pixel(
                        x,
                        w,
                        2 * taps,
                        geometry,
                        centre,
                        armv7em::DwOut::Sums(acc),
                    ) {
                        return Err(KernelError("depthwise window outside its tensors"));
                    }
                }
                output_stage(ys, stage, bias, acc, plain, p);
            }
        }
        c0 += nb;
    }
    Ok(())
}

/// [`depthwise_paired`]'s table of the block of channels `c0..c0 + nb` (`nb` a multiple of 4,
/// `pre` one scale per channel): group `g`'s tap `t` at words `2·(g·taps + t)` and `+ 1`,
/// [`armv7em::pair16`] of its channels 0 and 2, then 1 and 3, each `(w − z_w)·2^pre`. Never
/// inlined: built once per block, it stays out of the pixel loop's registers.
#[cfg_attr(not(edge_dsp), allow(dead_code))]
#[inline(never)]
fn paired_table(
    p: &ConvParams<'_>,
    weights: &[i8],
    c0: usize,
    nb: usize,
    pre: &[u32],
    table: &mut [u32],
) -> KernelResult {
    let channels = p.input_shape.c as usize;
    let taps = p.window.kernel_h as usize * p.window.kernel_w as usize;
    let bits = p.weights.bits;
    let z_w = i32::from(p.weights.zero_point);
    match bits {
        4 => return paired_table_packed::<4, 2>(p, c0, nb, pre, table),
        2 => return paired_table_packed::<2, 1>(p, c0, nb, pre, table),
        _ => {}
    }
    let mut quad = [0i8; 4];
    for g in 0..nb / 4 {
        let Some(&[s0, s1, s2, s3]) = pre.get(4 * g..4 * g + 4) else {
            return Err(KernelError("depthwise block"));
        };
        for t in 0..taps {
            let at = t * channels + c0 + 4 * g;
            let w = weights
                .get(at..at + 4)
                .ok_or(KernelError("depthwise weights"))?;
            quad.copy_from_slice(w);
            let [q0, q1, q2, q3] = quad.map(|w| i32::from(w) - z_w);
            let [w0, w1, w2, w3] = [q0 << s0, q1 << s1, q2 << s2, q3 << s3];
            let k = 2 * (g * taps + t);
            let pair = table
                .get_mut(k..k + 2)
                .ok_or(KernelError("depthwise table"))?;
            pair[0] = armv7em::pair16(w0, w2);
            pair[1] = armv7em::pair16(w1, w3);
        }
    }
    Ok(())
}

/// [`paired_table`] for `BITS`-wide weights (2 or 4, `PER = BITS / 2` bytes to a group of four
/// codes), read straight from the packed bytes: each group's tap is whole bytes (`C`, `c0` and
/// `nb` multiples of 4), decoded by shifts into its four centred, scaled weights (no
/// intermediate bytes; the same values as `unpack_into`: two's complement, 4-bit codes low
/// nibble first, 2-bit codes LSB first).
#[cfg_attr(not(edge_dsp), allow(dead_code))]
#[inline(always)]
fn paired_table_packed<const BITS: u32, const PER: usize>(
    p: &ConvParams<'_>,
    c0: usize,
    nb: usize,
    pre: &[u32],
    table: &mut [u32],
) -> KernelResult {
    let channels = p.input_shape.c as usize;
    let taps = p.window.kernel_h as usize * p.window.kernel_w as usize;
    let z_w = i32::from(p.weights.zero_point);
    let data = p.weights.data;
    if !channels.is_multiple_of(4) || !c0.is_multiple_of(4) {
        return Err(KernelError("depthwise block"));
    }
    // Bytes from one tap's codes to the next's.
    let tap_bytes = channels / 4 * PER;
    let (pre, _) = pre.as_chunks::<4>();
    for (g, &[s0, s1, s2, s3]) in pre.iter().take(nb / 4).enumerate() {
        let words = table
            .get_mut(2 * g * taps..2 * (g + 1) * taps)
            .ok_or(KernelError("depthwise table"))?;
        let (words, _) = words.as_chunks_mut::<2>();
        // Codes c0 + 4g.. of tap 0 (a multiple of 4): bytes from there·BITS/8.
        let mut at = (c0 / 4 + g) * PER;
        for pair in words {
            let bytes: &[u8; PER] = data
                .get(at..at + PER)
                .and_then(|b| b.try_into().ok())
                .ok_or(KernelError("depthwise weights"))?;
            // Each code shifted to the top of a word, then arithmetically back down.
            let top = |byte: usize, field: u32| -> i32 {
                let v = u32::from(bytes[byte]) << (32 - BITS * (field + 1));
                ((v as i32) >> (32 - BITS)) - z_w
            };
            let [q0, q1, q2, q3] = if PER == 2 {
                [top(0, 0), top(0, 1), top(1 % PER, 0), top(1 % PER, 1)]
            } else {
                [top(0, 0), top(0, 1), top(0, 2), top(0, 3)]
            };
            pair[0] = armv7em::pair16(q0 << s0, q2 << s2);
            pair[1] = armv7em::pair16(q1 << s1, q3 << s3);
            at += tap_bytes;
        }
    }
    Ok(())
}

/// Depthwise conv for 8-bit weights (symmetric or per-tensor affine) on Armv7E-M: blocks of
/// [`BLOCK`] channels read in place (taps `C` bytes apart), each through
/// [`depthwise_tiled_block`]. Arguments as checked by [`depthwise_conv2d`]; elsewhere than
/// Armv7E-M only tested.
#[cfg_attr(not(edge_dsp), allow(dead_code))]
#[inline(never)]
fn depthwise_tiled(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    weights: &[i8],
) -> KernelResult {
    let channels = p.input_shape.c as usize;
    let mut c0 = 0;
    while c0 < channels {
        let nb = (channels - c0).min(BLOCK);
        let w = weights.get(c0..).ok_or(KernelError("depthwise weights"))?;
        depthwise_tiled_block(p, input, output, c0, nb, w, channels)?;
        c0 += nb;
    }
    Ok(())
}

/// Depthwise conv for 2/4-bit weights (symmetric or per-tensor affine) on Armv7E-M: one tile of
/// [`TILE`] channels at a time, its filters unpacked into `scratch` (`plan::scratch_bytes`:
/// `kh·kw·min(C, TILE)`, the reference loop's tile; taps `n` bytes apart) and run through
/// [`depthwise_tiled_block`] as sign-extended 8-bit weights, so a sub-byte MAC costs what an
/// 8-bit one does. Arguments as checked by [`depthwise_conv2d`] (the packed bytes cover
/// `kh·kw·C` codes); elsewhere than Armv7E-M only tested.
#[cfg_attr(not(edge_dsp), allow(dead_code))]
#[inline(never)]
fn depthwise_tiled_packed(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> KernelResult {
    let channels = p.input_shape.c as usize;
    let taps = p.window.kernel_h as usize * p.window.kernel_w as usize;
    let bits = p.weights.bits;
    let mut c0 = 0;
    while c0 < channels {
        let n = (channels - c0).min(TILE);
        let tile = scratch
            .get_mut(..taps * n)
            .ok_or(KernelError("scratch smaller than one depthwise tile"))?;
        for (t, dst) in tile.chunks_exact_mut(n).enumerate() {
            // t·C + c0 + n ≤ taps·C, whose packed bytes depthwise_conv2d checked.
            unpack_into(p.weights.data, bits, t * channels + c0, dst);
        }
        depthwise_tiled_block(p, input, output, c0, n, tile, n)?;
        c0 += n;
    }
    Ok(())
}

/// One block of depthwise channels `c0..c0 + nb` (`nb ≤` [`BLOCK`]) on Armv7E-M, 8-bit weights
/// (symmetric or per-tensor affine) with tap `t`'s `nb` channels at `w[t·w_step..]`: bias and
/// output stage worked out once, then output pixels, the pixel's valid taps, then the block's
/// channels of that tap (contiguous in input and weights) four at a time through
/// `armv7em::lanes4`, `Σ (w − z_w)·(x − z_x)` directly (both factors centred in the registers: no
/// `Σ w` or `Σ x` correction), then [`output_stage`]. The accumulators are the same exact
/// integers as [`depthwise_conv2d`]'s. Inlined into its two callers, which are never inlined:
/// its block-sized frame (bias, stages, accumulators) is theirs, not the dispatcher's.
#[cfg_attr(not(edge_dsp), allow(dead_code))]
#[inline(always)]
fn depthwise_tiled_block(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    c0: usize,
    nb: usize,
    w: &[i8],
    w_step: usize,
) -> KernelResult {
    let win = p.window;
    let (in_h, in_w, channels) = (
        p.input_shape.h as usize,
        p.input_shape.w as usize,
        p.input_shape.c as usize,
    );
    let (out_h, out_w) = (p.output_shape.h as usize, p.output_shape.w as usize);
    let kw = win.kernel_w as usize;
    let z_x = p.input_zero_point as i32;
    let z_w = p.weights.zero_point as i32;
    let centre = armv7em::splat16(-(p.input_zero_point as i16));
    let centre_w = armv7em::splat16(-(p.weights.zero_point as i16));
    let row_stride = in_w * channels;
    let mut bias = [0i32; BLOCK];
    let mut stage = [ChannelRequant::new(0, 0, p.rounding); BLOCK];
    for ((b, rq), c) in bias.iter_mut().zip(&mut stage).zip(c0..c0 + nb) {
        *b = p.bias.get(c).ok_or(KernelError("bias shorter than C"))?;
        let (m, e) = p
            .requant
            .get(c)
            .ok_or(KernelError("requant table shorter than C"))?;
        *rq = ChannelRequant::new(m, e, p.rounding);
    }
    let (Some(bias), Some(stage)) = (bias.get(..nb), stage.get(..nb)) else {
        return Err(KernelError("depthwise block"));
    };
    let plain = stage.iter().all(ChannelRequant::is_plain);
    let mut acc = [0i32; BLOCK];
    let mut pixels = output.chunks_exact_mut(channels);
    for oy in 0..out_h {
        let ty = Taps::rows(&win, oy, in_h);
        for ox in 0..out_w {
            let tx = Taps::cols(&win, ox, in_w);
            let ys = pixels
                .next()
                .and_then(|px| px.get_mut(c0..c0 + nb))
                .ok_or(KernelError("depthwise output pixel"))?;
            let acc = acc.get_mut(..nb).ok_or(KernelError("depthwise block"))?;
            acc.fill(0);
            for ky in ty.k0..ty.k1 {
                let row = ty.input_index(ky, win.dilation_h) * row_stride + c0;
                for kx in tx.k0..tx.k1 {
                    // This tap of the block's channels: contiguous in input and weights.
                    let x0 = row + tx.input_index(kx, win.dilation_w) * channels;
                    let w0 = (ky * kw + kx) * w_step;
                    let (Some(xs), Some(ws)) = (input.get(x0..x0 + nb), w.get(w0..w0 + nb)) else {
                        return Err(KernelError("depthwise tap"));
                    };
                    let ((x4, x1), (w4, w1)) = (xs.as_chunks::<4>(), ws.as_chunks::<4>());
                    let (a4, a1) = acc.as_chunks_mut::<4>();
                    for ((a, x), w) in a4.iter_mut().zip(x4).zip(w4) {
                        armv7em::lanes4(x, w, centre, centre_w, a);
                    }
                    for ((a, &x), &w) in a1.iter_mut().zip(x1).zip(w1) {
                        *a = a.wrapping_add((w as i32 - z_w) * (x as i32 - z_x));
                    }
                }
            }
            output_stage(ys, stage, bias, acc, plain, p);
        }
    }
    Ok(())
}

/// Taps of the largest kernel a valid blob has (16×16, format 1.2): the stack table of one
/// pixel's valid taps in [`depthwise_simd`] (4 KiB, x86-64 and aarch64 hosts only).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const MAX_TAPS: usize = 256;

/// Depthwise conv on x86-64 and aarch64, every weight format, through the host SIMD kernel
/// (`simd::depthwise_pixel`: SSE2 or AVX2 chosen by `simd::x86_64`, NEON on aarch64):
/// [`depthwise_tiled`]'s structure (blocks of channels with their bias and output stage worked
/// out once, output pixels, the pixel's valid taps, contiguous channels of each tap), except
/// that the pixel's valid taps are listed first, so the kernel can keep a group of 16 channels'
/// accumulators in registers across all taps and take the taps two at a time (`PMADDWD`).
/// `Σ (w − z_w)·(x − z_x)` is formed directly, as on Armv7E-M: no `Σ w` or `Σ x` correction.
/// Blocks whose output stages are all plain (nearly all) are requantized four channels a step
/// (`simd::BlockStages`), the others by [`output_stage`].
///
/// 8-bit weights are read in place (blocks of [`BLOCK`] channels, taps `C` bytes apart);
/// 2/4-bit weights are unpacked one tile of [`TILE`] channels at a time into `scratch`
/// (`plan::scratch_bytes`: `kh·kw·min(C, TILE)`, the reference loop's tile), taps `n` bytes
/// apart. Arguments as checked by [`depthwise_conv2d`] (`weights` empty for sub-byte weights).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn depthwise_simd(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    weights: &[i8],
    scratch: &mut [i8],
) -> KernelResult {
    use super::simd::{self, Tap};
    let win = p.window;
    let (in_h, in_w, channels) = (
        p.input_shape.h as usize,
        p.input_shape.w as usize,
        p.input_shape.c as usize,
    );
    let (out_h, out_w) = (p.output_shape.h as usize, p.output_shape.w as usize);
    let kw = win.kernel_w as usize;
    let taps = win.kernel_h as usize * kw;
    let bits = p.weights.bits;
    let (z_x, z_w) = (p.input_zero_point, p.weights.zero_point);
    let row_stride = in_w * channels;
    let block = if bits == 8 { BLOCK } else { TILE };
    let mut list = [Tap::default(); MAX_TAPS];
    // x86-64: a whole window's taps relative to its first (the same for every block but for
    // `w_step`), for the pixels off the border.
    #[cfg(target_arch = "x86_64")]
    let mut whole = [Tap::default(); MAX_TAPS];
    let mut c0 = 0;
    while c0 < channels {
        let nb = (channels - c0).min(block);
        // The block's weights from `w`: tap `t`'s `nb` channels at `t·w_step`.
        let (w, w_step): (&[i8], usize) = if bits == 8 {
            let w = weights.get(c0..).ok_or(KernelError("depthwise weights"))?;
            (w, channels)
        } else {
            let tile = scratch
                .get_mut(..taps * nb)
                .ok_or(KernelError("scratch smaller than one depthwise tile"))?;
            for (t, dst) in tile.chunks_exact_mut(nb).enumerate() {
                // t·C + c0 + nb ≤ taps·C, whose packed bytes depthwise_conv2d checked.
                unpack_into(p.weights.data, bits, t * channels + c0, dst);
            }
            (tile, nb)
        };
        let x = input.get(c0..).ok_or(KernelError("depthwise input"))?;
        let mut bias = [0i32; BLOCK];
        let mut stage = [ChannelRequant::new(0, 0, p.rounding); BLOCK];
        for ((b, rq), c) in bias.iter_mut().zip(&mut stage).zip(c0..c0 + nb) {
            *b = p.bias.get(c).ok_or(KernelError("bias shorter than C"))?;
            let (m, e) = p
                .requant
                .get(c)
                .ok_or(KernelError("requant table shorter than C"))?;
            *rq = ChannelRequant::new(m, e, p.rounding);
        }
        let (bias, stage) = (&bias[..nb], &stage[..nb]);
        let plain = stage.iter().all(ChannelRequant::is_plain);
        // Plain stages (nearly every layer) are requantized four channels a step.
        let double = p.rounding == shared_format::Rounding::Double;
        let vector = simd::BlockStages::new(stage, bias, double, p.output_zero_point, p.clamp);
        let mut acc = [0i32; BLOCK];
        #[cfg(target_arch = "x86_64")]
        let whole = {
            let taps = whole.get_mut(..taps).ok_or(KernelError("depthwise taps"))?;
            for (t, tap) in taps.iter_mut().enumerate() {
                let (ky, kx) = (t / kw, t % kw);
                *tap = Tap {
                    x: ky * win.dilation_h as usize * row_stride
                        + kx * win.dilation_w as usize * channels,
                    w: t * w_step,
                };
            }
            simd::WindowTaps::new(taps)
        };
        let mut pixels = output.chunks_exact_mut(channels);
        for oy in 0..out_h {
            let ty = Taps::rows(&win, oy, in_h);
            for ox in 0..out_w {
                let tx = Taps::cols(&win, ox, in_w);
                let ys = pixels
                    .next()
                    .and_then(|px| px.get_mut(c0..c0 + nb))
                    .ok_or(KernelError("depthwise output pixel"))?;
                // x86-64: a whole window from its first tap, with the block's tap list.
                #[cfg(target_arch = "x86_64")]
                if ty.count() * tx.count() == taps {
                    let first = ty.input_index(0, win.dilation_h) * row_stride
                        + tx.input_index(0, win.dilation_w) * channels;
                    let block = acc.get_mut(..nb).ok_or(KernelError("depthwise block"))?;
                    let x = x.get(first..).unwrap_or_default();
                    if !simd::depthwise_window(x, w, &whole, z_x, z_w, block) {
                        return Err(KernelError("depthwise tap outside its tensors"));
                    }
                    match &vector {
                        Some(v) => v.apply(block, ys),
                        None => output_stage(ys, stage, bias, block, plain, p),
                    }
                    continue;
                }
                let mut n = 0;
                for ky in ty.k0..ty.k1 {
                    let row = ty.input_index(ky, win.dilation_h) * row_stride;
                    for kx in tx.k0..tx.k1 {
                        let tap = list.get_mut(n).ok_or(KernelError("depthwise taps"))?;
                        *tap = Tap {
                            x: row + tx.input_index(kx, win.dilation_w) * channels,
                            w: (ky * kw + kx) * w_step,
                        };
                        n += 1;
                    }
                }
                let list = list.get(..n).ok_or(KernelError("depthwise taps"))?;
                let block = acc.get_mut(..nb).ok_or(KernelError("depthwise block"))?;
                if !simd::depthwise_pixel(x, w, list, z_x, z_w, block) {
                    return Err(KernelError("depthwise tap outside its tensors"));
                }
                match &vector {
                    Some(v) => v.apply(block, ys),
                    None => output_stage(ys, stage, bias, block, plain, p),
                }
            }
        }
        c0 += nb;
    }
    Ok(())
}

/// `acc[j] += w[j]·x[j]` over the common length of `w` and `x` (at most [`TILE`]): raw i8
/// products (`|w·x| ≤ 2^14`), which compilers vectorize as 16-bit multiplies widened into the
/// i32 lanes. Centring `x − z_x` here would make the products 17-bit and force 32-bit
/// multiplies, so the kernel subtracts `z_x·Σ w` once per pixel instead (as `DotAcc` users do).
#[inline(always)]
fn mac(acc: &mut [i32; TILE], w: &[i8], x: &[i8]) {
    for ((a, &w), &x) in acc.iter_mut().zip(w).zip(x) {
        *a = a.wrapping_add((w as i32).wrapping_mul(x as i32));
    }
}

/// `acc[j] += v[j]` over the first `v.len()` lanes (at most [`TILE`]).
#[inline(always)]
fn add_lanes(acc: &mut [i32; TILE], v: &[i8]) {
    for (a, &v) in acc.iter_mut().zip(v) {
        *a = a.wrapping_add(v as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::tests::{ONE, owned, params};
    use crate::ops::test_cases::{Case, Codes, Spec, byte, bytes, code_range, pick, window};
    use crate::test_rng::XorShift32;
    use shared_format::{Clamp, Rounding, Shape, WeightScheme, Weights, Window};

    #[test]
    fn two_channels_by_hand() {
        // 2×2×2 input, 2×2 kernel, no padding: one output pixel per channel.
        // Channel 0: x = 1,2,3,4 with w = 1,1,1,1 → 10. Channel 1: x = −1,−2,−3,−4, z_x = 0,
        // w = 1,−1,2,−2 (4-bit) → −1+2−6+8 = 3, bias 7 → 10; then per-channel M = 1/2 → 5.
        // Weights are `[ky][kx][c]`: the two channels interleave.
        let x = [1i8, -1, 2, -2, 3, -3, 4, -4];
        let o = owned(
            &[1, 1, 1, -1, 1, 2, 1, -2],
            4,
            &[0, 7],
            &[ONE, (1 << 30, 0)],
        );
        let p = params(
            &o,
            4,
            WeightScheme::PerChannelSymmetric,
            0,
            Window::square(2, 1, 1, 0),
            Shape::new(2, 2, 2),
            0,
            Shape::new(1, 1, 2),
        );
        let mut y = [0i8; 2];
        // A scratch smaller than one tile (kh·kw·min(C, TILE) = 8) is an error, not a panic.
        assert!(depthwise_conv2d(&p, &x, &mut y, &mut [0i8; 7]).is_err());
        let mut scratch = [0i8; 8];
        depthwise_conv2d(&p, &x, &mut y, &mut scratch).unwrap();
        assert_eq!(y, [10, 5]);
    }

    #[test]
    fn padded_taps_are_skipped_and_affine_zero_point_applies() {
        // 1×1×1 input x = 3, z_x = 1, 3×3 kernel pad 1: only the centre tap is valid.
        // w centre = 2, z_w = −1: (2 − (−1))·(3 − 1) = 6.
        let o = owned(&[7, 7, 7, 7, 2, 7, 7, 7, 7], 8, &[0], &[ONE]);
        let p = params(
            &o,
            8,
            WeightScheme::PerTensorAffine,
            -1,
            Window::square(3, 1, 1, 1),
            Shape::new(1, 1, 1),
            1,
            Shape::new(1, 1, 1),
        );
        let mut y = [0i8; 1];
        depthwise_conv2d(&p, &[3], &mut y, &mut []).unwrap();
        assert_eq!(y, [6]);
    }

    /// Random geometries, bit-widths, zero points and channel counts (one, several and partial
    /// tiles) against a tap-by-tap i64 loop.
    #[test]
    fn matches_naive_on_random_geometries() {
        let mut rng = XorShift32::new(0x0BAD_F00Du32);
        for case in 0..400 {
            let bits = pick(&mut rng, &[2u8, 4, 8]);
            let kmax = if case % 8 == 0 { 16 } else { 7 };
            let (kh, kw) = (1 + rng.below(kmax) as u8, 1 + rng.below(kmax) as u8);
            let (dh, dw) = (1 + rng.below(4) as u8, 1 + rng.below(4) as u8);
            let win = window(&mut rng, (kh, kw), (dh, dw));
            let s = Shape::new(
                1 + rng.below(12) as u16,
                1 + rng.below(12) as u16,
                1 + rng.below(72) as u16,
            );
            let (Some(oh), Some(ow)) = (win.output_h(s.h as u32), win.output_w(s.w as u32)) else {
                continue;
            };
            let c = s.c as usize;
            let lo = -(1i32 << (bits - 1));
            let w: Vec<i8> = (0..c * kh as usize * kw as usize)
                .map(|_| (lo + rng.below(1 << bits) as i32) as i8)
                .collect();
            let z_w = if case % 2 == 0 {
                (lo + rng.below(1 << bits) as i32) as i8
            } else {
                0
            };
            let z_x = byte(&mut rng);
            let x = bytes(&mut rng, s.h as usize * s.w as usize * c);
            let bias: Vec<i32> = (0..c).map(|_| rng.below(2001) as i32 - 1000).collect();
            let rq = [(1 << 30, -8i8)];
            let o = owned(&w, bits, &bias, &rq);
            let os = Shape::new(oh as u16, ow as u16, s.c);
            let p = ConvParams {
                output_zero_point: -2,
                rounding: Rounding::Single,
                ..params(
                    &o,
                    bits,
                    WeightScheme::PerTensorAffine,
                    z_w,
                    win,
                    s,
                    z_x,
                    os,
                )
            };
            let mut y = vec![0i8; oh as usize * ow as usize * c];
            let mut scratch = vec![0i8; kh as usize * kw as usize * c.min(TILE)];
            depthwise_conv2d(&p, &x, &mut y, &mut scratch).unwrap();
            for oy in 0..oh as i64 {
                for ox in 0..ow as i64 {
                    for ch in 0..c {
                        let mut acc = bias[ch] as i64;
                        for ky in 0..kh as i64 {
                            for kx in 0..kw as i64 {
                                let iy = oy * win.stride_h as i64 - win.padding.top as i64
                                    + ky * dh as i64;
                                let ix = ox * win.stride_w as i64 - win.padding.left as i64
                                    + kx * dw as i64;
                                if iy < 0 || ix < 0 || iy >= s.h as i64 || ix >= s.w as i64 {
                                    continue;
                                }
                                let xv = x[((iy * s.w as i64 + ix) as usize) * c + ch] as i64;
                                let wv = w[(ky * kw as i64 + kx) as usize * c + ch] as i64;
                                acc += (wv - z_w as i64) * (xv - z_x as i64);
                            }
                        }
                        let want = crate::requant::requantize(
                            acc as i32,
                            1 << 30,
                            -8,
                            -2,
                            p.clamp,
                            Rounding::Single,
                        );
                        let got = y[((oy * ow as i64 + ox) as usize) * c + ch];
                        assert_eq!(got, want, "case {case} ({oy},{ox},{ch}) acc {acc}");
                    }
                }
            }
        }
    }

    /// The Armv7E-M kernel (here on the portable model of its instructions) against the
    /// reference path, output for output: random geometries, dilations, paddings, channel counts
    /// on both sides of the 4-channel groups and the 64-channel blocks, zero points, roundings.
    #[test]
    fn tiled_kernel_matches_reference() {
        let mut rng = XorShift32::new(0xD00D_F00Du32);
        let mut checked = 0;
        for case in 0..300 {
            let kernel = (1 + rng.below(5) as u8, 1 + rng.below(5) as u8);
            let dilation = (1 + rng.below(2) as u8, 1 + rng.below(2) as u8);
            let c = pick(&mut rng, &[1u16, 3, 4, 5, 8, 17, 64, 65, 70]);
            let spec = Spec {
                dilation,
                codes: Codes::Uniform,
                shifts: (-8, -1),
                // Every third case per-tensor affine, with a zero point anywhere in range.
                affine: case % 3 == 0,
                ..Spec::depthwise(8, kernel, c)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let p = t.params();
            let mut want = vec![0i8; t.output_len()];
            depthwise_reference(&p, &t.x, &mut want, &mut []).unwrap();
            let mut got = vec![0i8; want.len()];
            let w: &[i8] = bytemuck::cast_slice(&t.o.weights);
            depthwise_tiled(&p, &t.x, &mut got, w).unwrap();
            assert_eq!(got, want, "case {case}: {t}");
            checked += 1;
        }
        assert!(checked > 150, "{checked}");
    }

    /// The Armv7E-M sub-byte kernel (here on the portable model of its instructions) against the
    /// reference path, output for output: 2- and 4-bit codes piled on their range's ends, both
    /// schemes (weights' zero point at the code range's ends or anywhere in it), channel counts
    /// on both sides of the 4-channel groups and the 32-channel tiles, scratch of exactly one
    /// tile (and one byte short: an error, not a panic).
    #[test]
    fn tiled_packed_kernel_matches_reference() {
        let mut rng = XorShift32::new(0xB17E_D0D0u32);
        let mut checked = 0;
        for case in 0..400 {
            let bits = pick(&mut rng, &[2u8, 4]);
            let (kh, kw) = (1 + rng.below(5) as u8, 1 + rng.below(5) as u8);
            let dilation = (1 + rng.below(2) as u8, 1 + rng.below(2) as u8);
            let c = pick(&mut rng, &[1u16, 3, 4, 5, 8, 17, 31, 32, 33, 64, 65, 70]);
            let spec = Spec {
                dilation,
                affine: case % 2 == 0,
                ..Spec::depthwise(bits, (kh, kw), c)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let p = t.params();
            let tile = kh as usize * kw as usize * (c as usize).min(TILE);
            let mut scratch = vec![0i8; tile];
            let mut want = vec![0i8; t.output_len()];
            depthwise_reference(&p, &t.x, &mut want, &mut scratch).unwrap();
            let mut got = vec![0i8; want.len()];
            assert!(depthwise_tiled_packed(&p, &t.x, &mut got, &mut scratch[..tile - 1]).is_err());
            depthwise_tiled_packed(&p, &t.x, &mut got, &mut scratch).unwrap();
            assert_eq!(got, want, "case {case}: {t}");
            checked += 1;
        }
        assert!(checked > 200, "{checked}");
    }

    /// The Armv7E-M paired kernel (here on the instruction model) against the reference, every
    /// weight width and scheme with zero points at the ends of their ranges, channel counts on
    /// both sides of its groups and blocks, kernels up to 11×11 with dilations and padding, steps
    /// up to its immediate limit; ineligible shapes are refused with an error, not a panic.
    #[test]
    fn paired_kernel_matches_reference() {
        let mut rng = XorShift32::new(0x9A1E_D0D0u32);
        let mut checked = 0;
        for case in 0..500 {
            let bits = pick(&mut rng, &[2u8, 4, 8]);
            let (kh, kw) = if case % 40 == 0 {
                (11, 11)
            } else {
                (1 + rng.below(7) as u8, 1 + rng.below(7) as u8)
            };
            let dilation = (1 + rng.below(3) as u8, 1 + rng.below(3) as u8);
            let c = pick(&mut rng, &[3u16, 4, 8, 12, 16, 20, 32, 36, 64, 84, 124]);
            let spec = Spec {
                dilation,
                side: if kh > 8 { 16 } else { 9 },
                input_ends: true,
                // Two cases in three with right shifts only (the kernel's own output stage when
                // the rounding is single), the third with left shifts too.
                shifts: if case % 3 == 0 { (-9, 2) } else { (-23, -2) },
                affine: case % 2 == 0,
                ..Spec::depthwise(bits, (kh, kw), c)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            // Output clamps: all codes of 8, 4, 2 or 1 bits, or a narrower (ReLU-like) one.
            let k = pick(&mut rng, &[8u32, 4, 2, 1]);
            let (lo, hi) = code_range(k);
            let clamp = if case % 5 == 0 {
                Clamp {
                    min: (lo + 1).min(hi) as i8,
                    max: hi as i8,
                }
            } else {
                Clamp {
                    min: lo as i8,
                    max: hi as i8,
                }
            };
            let p = ConvParams {
                output_zero_point: (lo + rng.below((hi - lo + 1) as u32) as i32) as i8,
                rounding: pick(
                    &mut rng,
                    &[Rounding::Double, Rounding::Single, Rounding::Single],
                ),
                clamp,
                ..t.params()
            };
            let mut scratch = vec![0i8; kh as usize * kw as usize * (c as usize).min(TILE)];
            let mut want = vec![0i8; t.output_len()];
            depthwise_reference(&p, &t.x, &mut want, &mut scratch).unwrap();
            let mut got = vec![0i8; want.len()];
            let w8: &[i8] = if bits == 8 {
                bytemuck::cast_slice(&t.o.weights)
            } else {
                &[]
            };
            if !paired_eligible(&p) {
                assert!(depthwise_paired(&p, &t.x, &mut got, w8).is_err());
                continue;
            }
            depthwise_paired(&p, &t.x, &mut got, w8).unwrap();
            assert_eq!(got, want, "case {case}: {t}");
            checked += 1;
        }
        assert!(checked > 250, "{checked}");
    }

    /// [`paired_table`] straight from 2- and 4-bit packed bytes equals the table the 8-bit path
    /// builds from the same codes unpacked by `unpack_into`, for every block of channels, zero
    /// points from symmetric to the code range's ends and per-channel scales `pre`.
    #[test]
    fn packed_table_matches_unpacked() {
        let mut rng = XorShift32::new(0x7AB1_E0D5);
        let mut checked = 0;
        for case in 0..300 {
            let bits = pick(&mut rng, &[2u8, 4]);
            let (kh, kw) = (1 + rng.below(5) as u8, 1 + rng.below(5) as u8);
            let c = pick(&mut rng, &[4u16, 8, 12, 20, 36, 64]);
            let spec = Spec {
                affine: case % 2 == 0,
                ..Spec::depthwise(bits, (kh, kw), c)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let p = t.params();
            let (channels, taps) = (c as usize, kh as usize * kw as usize);
            let mut codes = vec![0i8; taps * channels];
            unpack_into(p.weights.data, bits, 0, &mut codes);
            let p8 = ConvParams {
                weights: Weights {
                    bits: 8,
                    data: bytemuck::cast_slice(&codes),
                    ..p.weights
                },
                ..t.params()
            };
            let mut c0 = 0;
            while c0 < channels {
                let nb = (channels - c0).min(4 * (PAIRED_TABLE / (2 * taps)).min(8));
                let pre: Vec<u32> = (0..nb).map(|_| rng.below(4)).collect();
                let (mut got, mut want) = ([0u32; PAIRED_TABLE], [0u32; PAIRED_TABLE]);
                paired_table(&p, &[], c0, nb, &pre, &mut got).unwrap();
                paired_table(&p8, &codes, c0, nb, &pre, &mut want).unwrap();
                assert_eq!(got, want, "case {case} c0 {c0}: {t}");
                c0 += nb;
            }
            checked += 1;
        }
        assert!(checked > 150, "{checked}");
    }

    /// The dispatcher's kernel (SSE2 and, where the CPU has it, AVX2 on x86-64, the DSP kernel
    /// on Armv7E-M, the reference elsewhere) against the portable reference, output for output: every weight bit-width with
    /// codes piled on the extremes, both schemes with zero points at −128/127 (weights' at their
    /// code range's ends), channel counts on both sides of the 8- and 16-channel groups and of
    /// the 32/64-channel blocks, strides 1–2, dilations 1–3, asymmetric padding, kernels up to
    /// 7×7 (and a 16×16), both roundings, plain and left-shifting multipliers.
    #[test]
    fn dispatched_kernel_matches_reference() {
        let mut rng = XorShift32::new(0x5EE2_D0D0u32);
        let mut checked = 0;
        for case in 0..600 {
            let bits = pick(&mut rng, &[2u8, 4, 8, 8]);
            let (kh, kw) = if case % 50 == 0 {
                (16, 16)
            } else {
                (1 + rng.below(7) as u8, 1 + rng.below(7) as u8)
            };
            let dilation = (1 + rng.below(3) as u8, 1 + rng.below(3) as u8);
            let c = pick(
                &mut rng,
                &[
                    1u16, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 47, 64, 65, 70, 100,
                ],
            );
            let spec = Spec {
                dilation,
                side: if kh > 8 { 20 } else { 9 },
                input_ends: true,
                // Two cases in three with every stage plain (the vector output stage), the
                // third with left shifts too (the scalar one).
                shifts: if case % 3 == 0 { (-9, 2) } else { (-13, -2) },
                affine: case % 2 == 0,
                ..Spec::depthwise(bits, (kh, kw), c)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let p = t.params();
            let mut scratch = vec![0i8; kh as usize * kw as usize * (c as usize).min(TILE)];
            let mut want = vec![0i8; t.output_len()];
            depthwise_reference(&p, &t.x, &mut want, &mut scratch).unwrap();
            // Every instruction set this CPU can run the kernel with (x86-64: SSE2 and AVX2).
            crate::ops::each_isa(|isa| {
                let mut got = vec![0i8; want.len()];
                depthwise_conv2d(&p, &t.x, &mut got, &mut scratch).unwrap();
                assert_eq!(got, want, "{isa} case {case}: {t}");
            });
            checked += 1;
        }
        assert!(checked > 300, "{checked}");
    }
}
