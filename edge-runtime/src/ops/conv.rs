//! Conv2d (TFLM `reference_integer_ops::ConvPerChannel`), NHWC input, OHWI weights.
//!
//! `acc = b[co] + Σ_valid Σ_ci w·(x − z_x) − z_w·Σ_valid Σ_ci (x − z_x)` (NUMERICS.md), then the
//! output stage. It is computed as `Σ w·x − z_x·Σ w − z_w·(Σ x − n·z_x)` so that the inner loop
//! is a plain i8 dot product (see `DotAcc`), with `Σ w` per tap precomputed once per channel.
//!
//! Loop order: output channel (its filter unpacked once), output row (valid `ky` range computed
//! once), output column (valid `kx` range computed once), valid tap rows, then a contiguous dot
//! product over input channels. With dilation 1 along the width, the valid part of a tap row is
//! contiguous in both the input (`kx·C_in` consecutive bytes) and the OHWI filter, so it is a
//! single dot product; a 1×1 convolution degenerates to one dot of `C_in` per pixel, which is
//! why it needs no separate fast path.
//!
//! On Armv7E-M (Cortex-M4/M7, `cfg(edge_dsp)`) and x86-64, 8-bit weights (symmetric or affine)
//! go instead to [`conv2d_blocked`], which does four output channels per pass
//! (`SXTAB16`/`SMLAD` in module `simd::armv7em`; on x86-64 SSE2's `PMADDWD` in module
//! `simd::x86_64::sse2`, or AVX2's `VPMADDWD` in module `avx2` on CPUs that have it, chosen at
//! run time in module `simd::x86_64`, all through one dispatch, `simd::window`) and
//! forms the same exact accumulators. On x86-64, 2- and 4-bit weights take the same kernel through
//! `conv2d_unpacked`, a block of filters unpacked at a time into a bounded stack buffer, and
//! plain output stages are requantized four channels a step (`simd::BlockStages`; eight with
//! AVX-512, which with NEON also takes single rounding's stages that are not plain, most of a
//! 2-bit layer's). On Armv7E-M,
//! 2- and 4-bit weights take the SMLAD kernel too (issue 18): small filters (four within 1 KiB)
//! unpacked a block at a time on the stack (`conv2d_unpacked_dsp`), larger ones read packed and
//! unpacked in registers (`conv2d_packed`, `armv7em::window_packed`; `C_in` a multiple of 8 at 4
//! bits, of 16 at 2 bits). Both form the same exact accumulators. On aarch64 the x86-64 paths
//! are taken with NEON kernels in their place (module `simd::aarch64`: `SMULL`/`SADALP`, or `SDOT`
//! where the build enables `dotprod`), reached through the same names (`simd`); there, pixels
//! whose window has no padded tap go to zero-padded copies of the block's filters instead
//! (`aarch64::DenseFilters`, `z_x·Σ w` per channel folded at the copy: the same sums).
//!
//! On Armv7E-M, before all of these, 1×1 convolutions without padding whose output stages fit
//! a fused one (single rounding, a clamp of all 2-, 4- or 8-bit codes: what the host exports;
//! or double rounding and all 8-bit codes: TFLite imports) go to `conv2d_pointwise` (issue 18):
//! weights of every width widened once into a stack table with the affine and
//! input-zero-point corrections folded into the bias, and the output stage run inside the
//! kernel's loop (`armv7em::pointwise`); W2A2 ones with one stage for all channels first try
//! `pointwise_a2`, four MACs per `SMLAD` over packed 2-bit codes. The other Armv7E-M kernels
//! requantize a strip of sums at a time, through `armv7em::stage_narrow` where the
//! accumulators' bound allows (double rounding in half the instructions of
//! `armv7em::stage_double`).

use shared_format::packing::{packed_len, unpack_into};
use shared_format::{
    Clamp, Conv2d, DepthwiseConv2d, LeI32s, Linear, Op, Requant, Rounding, Shape, TensorRecord,
    Weights, Window,
};

use super::simd::{self, Runs, armv7em};
use super::{
    DotAcc, KernelError, KernelResult, Taps, channel_filter, elements, expect_len,
    expect_window_output, sum,
};
use crate::requant::{ChannelRequant, requantize};

#[cfg(any(edge_dsp, test))]
mod pointwise_a2;

/// Everything a convolution needs besides the activations.
#[derive(Debug, Clone, Copy)]
pub struct ConvParams<'w> {
    /// Kernel, stride, dilation and padding.
    pub window: Window,
    /// Input shape (H, W, C_in).
    pub input_shape: Shape,
    /// Input zero point `z_x`.
    pub input_zero_point: i8,
    /// Output shape (OH, OW, C_out).
    pub output_shape: Shape,
    /// Output zero point `z_y`.
    pub output_zero_point: i8,
    /// Packed weights `[co][ky][kx][ci]`.
    pub weights: Weights<'w>,
    /// i32 bias per output channel.
    pub bias: LeI32s<'w>,
    /// Per-tensor or per-channel multipliers and shifts.
    pub requant: Requant<'w>,
    /// Output clamp.
    pub clamp: Clamp,
    /// Requantization rounding of the model.
    pub rounding: Rounding,
}

/// What a weighted op of the blob stores (window, weights, bias, requantization, clamp): the
/// one shape the interpreter hands convolutions, depthwise convolutions and linear layers.
#[derive(Debug, Clone, Copy)]
pub struct Weighted<'w> {
    /// Kernel, stride, dilation and padding (1×1 for a linear layer).
    pub window: Window,
    /// Packed weights.
    pub weights: Weights<'w>,
    /// i32 bias per output channel.
    pub bias: LeI32s<'w>,
    /// Per-tensor or per-channel multipliers and shifts.
    pub requant: Requant<'w>,
    /// Output clamp.
    pub clamp: Clamp,
}

impl<'w> Weighted<'w> {
    /// The weighted part of a convolution, depthwise convolution or linear layer (a linear
    /// layer is a 1×1 window); `None` for any other op.
    pub fn of(op: &Op<'w>) -> Option<Self> {
        match *op {
            Op::Conv2d(Conv2d {
                window,
                weights,
                bias,
                requant,
                clamp,
                ..
            })
            | Op::DepthwiseConv2d(DepthwiseConv2d {
                window,
                weights,
                bias,
                requant,
                clamp,
                ..
            }) => Some(Self {
                window,
                weights,
                bias,
                requant,
                clamp,
            }),
            Op::Linear(Linear {
                weights,
                bias,
                requant,
                clamp,
                ..
            }) => Some(Self {
                window: Window::square(1, 1, 1, 0),
                weights,
                bias,
                requant,
                clamp,
            }),
            _ => None,
        }
    }
}

impl<'w> ConvParams<'w> {
    /// A weighted op's parameters (see [`Weighted::of`]) between its input tensor `x` and output
    /// tensor `y`; `None` for an op without weights.
    pub fn of(op: &Op<'w>, x: &TensorRecord, y: &TensorRecord, rounding: Rounding) -> Option<Self> {
        Weighted::of(op).map(|w| Self::new(w, x, y, rounding))
    }

    /// A weighted op's parameters between its input tensor `x` and output tensor `y`.
    pub fn new(op: Weighted<'w>, x: &TensorRecord, y: &TensorRecord, rounding: Rounding) -> Self {
        ConvParams {
            window: op.window,
            input_shape: x.shape,
            input_zero_point: x.zero_point,
            output_shape: y.shape,
            output_zero_point: y.zero_point,
            weights: op.weights,
            bias: op.bias,
            requant: op.requant,
            clamp: op.clamp,
            rounding,
        }
    }
}

/// Runs a convolution; `scratch` must hold one filter (`kh·kw·C_in`) for 2/4-bit weights.
pub fn conv2d(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> KernelResult {
    // Armv7E-M, x86-64 and aarch64: 8-bit weights (symmetric or affine) go to the
    // channel-blocked kernel (SMLAD, PMADDWD or SMULL/SDOT; the same sums).
    // Armv7E-M: pointwise convolutions whose output stages fit the fused one (issue 18).
    #[cfg(edge_dsp)]
    if let Some(done) = conv2d_pointwise(p, input, output) {
        return done;
    }
    // Armv7E-M: other convolutions with C_in a multiple of 4, whatever their weight bits,
    // through a table of 16-bit weights (issue 18).
    #[cfg(edge_dsp)]
    if wide_eligible(p) {
        return conv2d_wide(p, input, output);
    }
    // Armv7E-M: small filters over C_in not a multiple of 4 (an RGB stem): windows gathered
    // into one run for the same kernel (issue 18).
    #[cfg(edge_dsp)]
    if im2col_eligible(p) {
        return conv2d_im2col(p, input, output);
    }
    // Armv7E-M: larger filters over such C_in (a 7×7 RGB stem): each output row's input rows
    // copied once into a padded band for the same kernel (issue 18).
    #[cfg(edge_dsp)]
    if band_eligible(p) {
        return conv2d_band(p, input, output);
    }
    #[cfg(any(edge_dsp, target_arch = "x86_64", target_arch = "aarch64"))]
    if blocked_eligible(p) {
        return conv2d_blocked(p, input, output);
    }
    // Armv7E-M: 4- and 2-bit weights, kernels larger than 1×1 with a kernel row of four filters
    // in 1 KiB (a 7×7 RGB stem, a 7×7 over 32 channels): chunks of kernel rows unpacked and
    // centred on z_w into 1 KiB of stack for the 8-bit kernel, the fastest (same sums).
    #[cfg(edge_dsp)]
    if row_blocks_eligible(p) {
        return conv2d_row_blocks(p, input, output);
    }
    // Armv7E-M: 4- and 2-bit weights with small filters (1×1 up to 256 input channels): a block
    // unpacked at a time into 1 KiB of stack for the 8-bit kernel (same sums).
    #[cfg(edge_dsp)]
    if unpacked_eligible(p) {
        return conv2d_unpacked_dsp(p, input, output);
    }
    // Armv7E-M, larger 4- and 2-bit filters: read packed, unpacked in registers (same sums).
    #[cfg(edge_dsp)]
    if packed_eligible(p) {
        return conv2d_packed(p, input, output);
    }
    // x86-64 and aarch64: 2- and 4-bit weights too, a block of filters unpacked at a time
    // (same sums).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if unpacked_eligible(p) {
        return conv2d_unpacked(p, input, output);
    }
    conv2d_reference(p, input, output, scratch)
}

/// The portable convolution: every weight format, one output channel at a time (its filter
/// unpacked into `scratch` when sub-byte), `z_x·Σw` from per-tap weight sums and the affine
/// correction `z_w·Σ(x − z_x)` per pixel. The reference the fast kernels are tested against.
// Armv7E-M: not inlined either, so `conv2d` is a frameless dispatcher (see `conv2d_blocked`).
#[cfg_attr(edge_dsp, inline(never))]
pub(crate) fn conv2d_reference(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> KernelResult {
    let win = p.window;
    let Dims {
        in_h,
        in_w,
        cin,
        out_h,
        out_w,
        cout,
        filter_len,
    } = Dims::checked(p, input, output)?;
    let kw = win.kernel_w as usize;
    let taps = win.kernel_h as usize * kw;
    let z_x = p.input_zero_point as i32;
    let z_w = p.weights.zero_point as i32;
    let row_stride = in_w * cin; // ≤ input.len(), checked above
    // Σ_ci w per tap, so `z_x·Σ_valid w` costs a few adds per pixel instead of a pass per tap.
    // A kernel with more taps than this stack table holds (format 1.2 allows up to 16×16) sums
    // its valid weight runs per pixel instead, and only when z_x ≠ 0: a rare shape should not
    // cost every conv a kilobyte of stack.
    let mut tap_sums = [0i32; TAP_SUMS];
    let tabled = taps <= TAP_SUMS;
    let run_w_sums = !tabled && z_x != 0;
    for co in 0..cout {
        let filter = channel_filter(p.weights.data, p.weights.bits, co, filter_len, scratch)?;
        let bias = p
            .bias
            .get(co)
            .ok_or(KernelError("bias shorter than C_out"))?;
        let (m, e) = p
            .requant
            .get(co)
            .ok_or(KernelError("requant table shorter than C_out"))?;
        if tabled {
            for (s, w) in tap_sums.iter_mut().zip(filter.chunks_exact(cin.max(1))) {
                *s = sum(w);
            }
        }
        let mut pixels = output.chunks_exact_mut(cout);
        for oy in 0..out_h {
            let ty = Taps::rows(&win, oy, in_h);
            for ox in 0..out_w {
                let tx = Taps::cols(&win, ox, in_w);
                let mut wx = DotAcc::new(); // Σ w·x
                let mut w_sum = 0i32; // Σ w
                let mut x_sum = 0i32; // Σ x, only needed when z_w ≠ 0
                for ky in ty.k0..ty.k1 {
                    let row = ty.input_index(ky, win.dilation_h) * row_stride;
                    let w_row = ky * kw * cin;
                    if tabled {
                        let sums = tap_sums
                            .get(ky * kw + tx.k0..ky * kw + tx.k1)
                            .ok_or(KernelError("conv tap sums"))?;
                        w_sum =
                            w_sum.wrapping_add(sums.iter().fold(0i32, |a, &s| a.wrapping_add(s)));
                    }
                    if win.dilation_w == 1 {
                        // The valid part of this tap row is one contiguous run in both tensors.
                        let ix0 = tx.input_index(tx.k0, 1);
                        let n = tx.count() * cin;
                        let x0 = row + ix0 * cin;
                        let w0 = w_row + tx.k0 * cin;
                        let xs = input.get(x0..x0 + n).ok_or(KernelError("conv input tap"))?;
                        let ws = filter
                            .get(w0..w0 + n)
                            .ok_or(KernelError("conv filter tap"))?;
                        wx.add(ws, xs);
                        if z_w != 0 {
                            x_sum = x_sum.wrapping_add(sum(xs));
                        }
                        if run_w_sums {
                            w_sum = w_sum.wrapping_add(sum(ws));
                        }
                    } else {
                        for kx in tx.k0..tx.k1 {
                            let x0 = row + tx.input_index(kx, win.dilation_w) * cin;
                            let w0 = w_row + kx * cin;
                            let xs = input
                                .get(x0..x0 + cin)
                                .ok_or(KernelError("conv input tap"))?;
                            let ws = filter
                                .get(w0..w0 + cin)
                                .ok_or(KernelError("conv filter tap"))?;
                            wx.add(ws, xs);
                            if z_w != 0 {
                                x_sum = x_sum.wrapping_add(sum(xs));
                            }
                            if run_w_sums {
                                w_sum = w_sum.wrapping_add(sum(ws));
                            }
                        }
                    }
                }
                // Σ w·(x − z_x) = Σ w·x − z_x·Σ w, and for per-tensor-affine weights
                // z_w·Σ(x − z_x) = z_w·(Σ x − n·z_x): the stored weights are never widened.
                let valid = (ty.count() * tx.count() * cin) as i32;
                let centred_x_sum = x_sum.wrapping_sub(valid.wrapping_mul(z_x));
                let acc = bias
                    .wrapping_add(wx.total())
                    .wrapping_sub(z_x.wrapping_mul(w_sum))
                    .wrapping_sub(z_w.wrapping_mul(centred_x_sum));
                let y = requantize(acc, m, e, p.output_zero_point, p.clamp, p.rounding);
                let px = pixels.next().ok_or(KernelError("conv output pixel"))?;
                *px.get_mut(co).ok_or(KernelError("conv output channel"))? = y;
            }
        }
    }
    Ok(())
}

/// The sizes both convolution kernels loop over, known to match the slices they were given.
struct Dims {
    in_h: usize,
    in_w: usize,
    cin: usize,
    out_h: usize,
    out_w: usize,
    cout: usize,
    /// Bytes of one unpacked filter, `kh·kw·C_in`.
    filter_len: usize,
}

impl Dims {
    /// Checks the slice lengths against the shapes and the window against both shapes, so every
    /// index the kernels form from these sizes stays below a checked length.
    fn checked(p: &ConvParams<'_>, input: &[i8], output: &[i8]) -> Result<Self, KernelError> {
        expect_len(input.len(), p.input_shape, "conv input length")?;
        expect_len(output.len(), p.output_shape, "conv output length")?;
        expect_window_output(&p.window, p.input_shape, p.output_shape)?;
        let (i, o) = (p.input_shape, p.output_shape);
        Ok(Self {
            in_h: i.h as usize,
            in_w: i.w as usize,
            cin: i.c as usize,
            out_h: o.h as usize,
            out_w: o.w as usize,
            cout: o.c as usize,
            filter_len: elements(Shape::new(
                p.window.kernel_h as u16,
                p.window.kernel_w as u16,
                i.c,
            ))?,
        })
    }
}

/// Taps whose weight sums the conv kernel keeps in a stack table (256 bytes): every kernel up
/// to 8×8, and the long thin ones of audio models (10×4, 16×4).
const TAP_SUMS: usize = 64;

/// Whether [`conv2d_blocked`] handles `p`: 8-bit weights, symmetric or per-tensor affine, and
/// contiguous tap rows (dilation 1 along the width). Sub-byte weights and column dilation stay
/// on the reference loop.
pub(crate) fn blocked_eligible(p: &ConvParams<'_>) -> bool {
    p.weights.bits == 8 && p.window.dilation_w == 1
}

/// Whether [`conv2d_unpacked`] handles `p` (x86-64 and aarch64; on Armv7E-M
/// `conv2d_unpacked_dsp`, tried before [`packed_eligible`] since the 8-bit kernel is faster): 2-
/// or 4-bit weights, symmetric or per-tensor affine, contiguous tap rows, and filters small
/// enough that four of them fit the bytes it unpacks into: [`UNPACKED_FILTERS`] on x86-64 and
/// aarch64 (`kh·kw·C_in ≤ 4096`: every 3×3 up to 455 input channels), [`UNPACKED_FILTERS_DSP`]
/// on Armv7E-M (`kh·kw·C_in ≤ 256`: a 7×7 RGB stem, a 5×5 over 8 channels). Elsewhere always
/// false, so the M0/M3/M33/RISC-V paths are untouched.
pub(crate) fn unpacked_eligible(p: &ConvParams<'_>) -> bool {
    let filter_len =
        p.window.kernel_h as usize * p.window.kernel_w as usize * p.input_shape.c as usize;
    let room = if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        UNPACKED_FILTERS
    } else if cfg!(edge_dsp) {
        UNPACKED_FILTERS_DSP
    } else {
        0
    };
    matches!(p.weights.bits, 2 | 4) && p.window.dilation_w == 1 && filter_len * 4 <= room
}

/// Whether `conv2d_packed` handles `p` (Armv7E-M only, after [`unpacked_eligible`] and
/// `row_blocks_eligible`, so in practice filters with `4·kw·C_in > 1024`): 4-bit weights with `C_in` a multiple
/// of 8 or 2-bit weights with `C_in` a multiple of 16 (one word of packed weights per step, so
/// every filter row starts on a byte), symmetric or per-tensor affine, contiguous tap rows, and
/// at most [`armv7em::PACKED_WINDOW_MAX`] values per filter. Elsewhere always false.
pub(crate) fn packed_eligible(p: &ConvParams<'_>) -> bool {
    let cin = p.input_shape.c as usize;
    let filter_len = p.window.kernel_h as usize * p.window.kernel_w as usize * cin;
    cfg!(edge_dsp)
        && match p.weights.bits {
            4 => cin.is_multiple_of(8),
            2 => cin.is_multiple_of(16),
            _ => false,
        }
        && p.window.dilation_w == 1
        && filter_len <= armv7em::PACKED_WINDOW_MAX
}

/// The most input channels [`conv2d_pointwise`] takes: one group of four output channels must
/// fit its table ([`armv7em::PW_TABLE_WORDS`]).
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
pub(crate) const PW_MAX_CIN: usize = 120;

/// The output bits `K` (2, 4 or 8) if [`conv2d_pointwise`] may take `p` on its shape: a 1×1
/// kernel without padding (any stride), `C_in` a multiple of 8 up to [`PW_MAX_CIN`], `C_out` a
/// multiple of 4, 2-, 4- or 8-bit weights, and an output clamp that is all `K`-bit codes with
/// single rounding, or all 8-bit codes with double rounding (TFLM's imports: the skip
/// projections of a ResNet). Its stages decide the rest ([`armv7em::PwStage::single`],
/// [`armv7em::PwStage::double`]).
#[cfg_attr(not(any(edge_dsp, test)), allow(dead_code))]
fn pointwise_bits(p: &ConvParams<'_>) -> Option<u32> {
    let w = p.window;
    let pad = w.padding;
    let (cin, cout) = (p.input_shape.c as usize, p.output_shape.c as usize);
    let shape = w.kernel_h == 1
        && w.kernel_w == 1
        && (pad.top, pad.left, pad.bottom, pad.right) == (0, 0, 0, 0)
        && cin.is_multiple_of(8)
        && (8..=PW_MAX_CIN).contains(&cin)
        && cout.is_multiple_of(4)
        && cout > 0
        && matches!(p.weights.bits, 2 | 4 | 8);
    if !shape {
        return None;
    }
    if p.rounding == Rounding::Double {
        return ((p.clamp.min, p.clamp.max) == (i8::MIN, i8::MAX)).then_some(8);
    }
    [8u32, 4, 2].into_iter().find(|&k| {
        i32::from(p.clamp.min) == -(1 << (k - 1)) && i32::from(p.clamp.max) == (1 << (k - 1)) - 1
    })
}

/// Pointwise (1×1) convolutions on Armv7E-M (issue 18), for parameters that pass
/// `pointwise_bits` and whose every channel has a [`armv7em::PwStage`]: `None` (nothing written)
/// for any other, which then takes the other kernels. The output channels go a block at a time
/// through a 1 KiB table on the stack ([`armv7em::PW_TABLE_WORDS`]) holding, per channel, its
/// weights widened to 16 bits, centred on `z_w` and scaled by the stage's `2^pre`, its bias
/// less `z_x·Σ(w − z_w)` (so `acc = b + Σ (w − z_w)·(x − z_x)`, the reference's exact
/// accumulator, up to the scale: no per-pixel affine correction and no centring of the
/// activations) and its output stage; then every pixel runs through [`armv7em::pointwise`], which
/// forms the sums and requantizes them in one loop. Both the sums and the stage are exact (see
/// [`armv7em::PwStage`]), so the outputs are the reference kernel's.
#[cfg(any(edge_dsp, test))]
#[cfg_attr(edge_dsp, inline(never))]
pub(crate) fn conv2d_pointwise(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
) -> Option<KernelResult> {
    let k = pointwise_bits(p)?;
    let Dims {
        in_w,
        cin,
        out_h,
        out_w,
        cout,
        ..
    } = match Dims::checked(p, input, output) {
        Ok(d) => d,
        Err(e) => return Some(Err(e)),
    };
    let stage = pointwise_stage(p, cin, k);
    // Every channel first, so that nothing is written unless all of them take this kernel.
    if !(0..cout).all(|c| stage(c).is_some()) {
        return None;
    }
    let shape = pointwise_a2::PwShape {
        in_w,
        cin,
        out_h,
        out_w,
        cout,
    };
    if let Some(done) = pointwise_a2::conv2d_pointwise_a2(p, input, output, shape, k, &stage) {
        return Some(done);
    }
    Some(pointwise_blocks(
        p,
        input,
        output,
        (in_w, cin, out_h, out_w, cout),
        (
            i32::from(p.input_zero_point),
            i32::from(p.weights.zero_point),
            k,
        ),
        stage,
    ))
}

/// Each output channel's bias and [`armv7em::PwStage`] for [`conv2d_pointwise`] with `cin`
/// inputs and `k`-bit outputs, `None` for a channel whose stage the kernels cannot take.
#[cfg(any(edge_dsp, test))]
fn pointwise_stage<'a>(
    p: &'a ConvParams<'_>,
    cin: usize,
    k: u32,
) -> impl Fn(usize) -> Option<(i32, armv7em::PwStage)> + 'a {
    let bits = p.weights.bits;
    let z_w = i32::from(p.weights.zero_point);
    let z_x = i32::from(p.input_zero_point);
    // |w − z_w| over the weights' codes and |x − z_x| over all inputs bound every accumulator.
    let half = 1i32 << (bits - 1);
    let (w_lo, w_hi) = (-half - z_w, half - 1 - z_w);
    let w_max = w_lo.unsigned_abs().max(w_hi.unsigned_abs());
    let x_max = (127 - z_x).max(z_x + 128).unsigned_abs();
    let double = p.rounding == Rounding::Double;
    move |c: usize| -> Option<(i32, armv7em::PwStage)> {
        let b = p.bias.get(c)?;
        let (m, e) = p.requant.get(c)?;
        let sums = cin as u64 * u64::from(w_max * x_max);
        let st = if double {
            armv7em::PwStage::double(m, e, b, p.output_zero_point, sums)?
        } else {
            let max_acc = u64::from(b.unsigned_abs()) + sums;
            armv7em::PwStage::single(m, e, p.output_zero_point, k, max_acc)?
        };
        // The scaled weights must fit the table's signed 16-bit halves.
        let fits = |v: i32| i16::try_from(i64::from(v) << st.pre).is_ok();
        (fits(w_lo) && fits(w_hi)).then_some((b, st))
    }
}

/// The blocks of [`conv2d_pointwise`] with `K`-bit outputs: the table of each, then its
/// pixels.
#[cfg(any(edge_dsp, test))]
#[inline(always)]
fn pointwise_blocks(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    (in_w, cin, out_h, out_w, cout): (usize, usize, usize, usize, usize),
    (z_x, z_w, k): (i32, i32, u32),
    stage: impl Fn(usize) -> Option<(i32, armv7em::PwStage)>,
) -> KernelResult {
    let bits = p.weights.bits;
    filters_fit(p, cin, cout)?;
    let gw = armv7em::pw_group_words(cin);
    let per_block = (armv7em::PW_TABLE_WORDS / gw).max(1);
    let (s_h, s_w) = (p.window.stride_h as usize, p.window.stride_w as usize);
    let mut table = [0u32; armv7em::PW_TABLE_WORDS];
    let mut filter = [0i8; PW_MAX_CIN];
    let filter = filter.get_mut(..cin).ok_or(KernelError("pointwise C_in"))?;
    let mut c0 = 0;
    while c0 < cout {
        let groups = ((cout - c0) / 4).min(per_block);
        for g in 0..groups {
            let t = table
                .get_mut(g * gw..(g + 1) * gw)
                .ok_or(KernelError("pointwise table"))?;
            for j in 0..4 {
                let c = c0 + 4 * g + j;
                let (b, st) = stage(c).ok_or(KernelError("pointwise stage"))?;
                // c·cin + cin ≤ weight_count, whose packed bytes were checked above.
                unpack_into(p.weights.data, bits, c * cin, filter);
                let centred = |v: i8| (i32::from(v) - z_w) << st.pre;
                // Σ(w − z_w): at most PW_MAX_CIN·255 in magnitude, so i32 holds it.
                let mut w_sum = 0i32;
                for (k, q) in filter.chunks_exact(4).enumerate() {
                    let at = 4 + 8 * k + 2 * j;
                    let pair = t
                        .get_mut(at..at + 2)
                        .ok_or(KernelError("pointwise table"))?;
                    pair[0] = armv7em::pair16(centred(q[0]), centred(q[2]));
                    pair[1] = armv7em::pair16(centred(q[1]), centred(q[3]));
                    w_sum += q.iter().map(|&v| i32::from(v) - z_w).sum::<i32>();
                }
                // b − z_x·Σ(w − z_w), scaled: exact when pre > 0 (the stage's bound), the
                // accumulator modulo 2^32 (like the reference's wrapping sums) when pre = 0.
                let bias = ((i64::from(b) - i64::from(z_x) * i64::from(w_sum)) << st.pre) as i32;
                let at = 4 + 2 * cin + 3 * j;
                let words = t
                    .get_mut(at..at + 3)
                    .ok_or(KernelError("pointwise table"))?;
                words.copy_from_slice(&[st.m as u32, st.ra as u32, st.s]);
                *t.get_mut(j).ok_or(KernelError("pointwise table"))? = bias as u32;
            }
        }
        let table = table.get(..groups * gw).unwrap_or_default();
        // Stride 1: the pixels are contiguous in both tensors, one call; else one per row.
        let (calls, run) = if s_h == 1 && s_w == 1 {
            (1, out_h * out_w)
        } else {
            (out_h, out_w)
        };
        for r in 0..calls {
            let x = input
                .get(r * s_h * in_w * cin..)
                .ok_or(KernelError("pointwise input row"))?;
            let y = output
                .get_mut(r * out_w * cout + c0..)
                .ok_or(KernelError("pointwise output row"))?;
            let geometry = armv7em::PwRun {
                pixels: run,
                cin,
                x_step: s_w * cin,
                y_step: cout,
            };
            let inside = match (k, p.rounding) {
                (8, Rounding::Double) => {
                    armv7em::pointwise::<8, true>(x, table, groups, geometry, y)
                }
                (8, _) => armv7em::pointwise::<8, false>(x, table, groups, geometry, y),
                (4, _) => armv7em::pointwise::<4, false>(x, table, groups, geometry, y),
                _ => armv7em::pointwise::<2, false>(x, table, groups, geometry, y),
            };
            if !inside {
                return Err(KernelError("pointwise pixels outside their tensors"));
            }
        }
        c0 += 4 * groups;
    }
    Ok(())
}

/// `Ok` if `p`'s packed weights hold `cout` filters of `filter_len` values each, the check
/// every kernel that indexes filters by output channel makes before it reads one.
#[cfg(any(edge_dsp, test))]
fn filters_fit(p: &ConvParams<'_>, filter_len: usize, cout: usize) -> KernelResult {
    let weight_count = filter_len
        .checked_mul(cout)
        .ok_or(KernelError("weight count overflows"))?;
    match packed_len(weight_count as u64, p.weights.bits) {
        Some(need) if need <= p.weights.data.len() as u64 => Ok(()),
        _ => Err(KernelError("weights shorter than C_out filters")),
    }
}

/// Output channels whose bias and output stage [`conv2d_blocked`] works out once per pass.
pub(crate) const BLOCK: usize = 64;

/// Bytes of unpacked sub-byte filters [`conv2d_unpacked`] keeps on the stack (x86-64 and
/// aarch64 hosts only; devices keep the one-filter arena scratch of `plan::scratch_bytes`).
pub(crate) const UNPACKED_FILTERS: usize = 16 * 1024;

/// Bytes of unpacked sub-byte filters `conv2d_unpacked_dsp` keeps on the stack on Armv7E-M:
/// four filters of up to 256 values (boards reserve about 4 KiB of stack besides the arena).
pub(crate) const UNPACKED_FILTERS_DSP: usize = 1024;

/// Conv2d for Armv7E-M's DSP instructions (CMSIS-NN's `arm_convolve_s8` idea, without its im2col
/// buffer), for parameters that pass [`blocked_eligible`]. The accumulator is the same exact
/// integer as [`conv2d_reference`]'s, `b + Σ_valid (w − z_w)·(x − z_x)`, so the outputs are
/// identical. Affine weights cost one more sum per pixel, shared by every channel:
/// `Σ (w − z_w)(x − z_x) = Σ w·(x − z_x) − z_w·Σ(x − z_x)` (issue 18: affine at symmetric speed).
///
/// Loop order: a block of up to [`BLOCK`] output channels (bias and output stage worked out
/// once; 1.5 KiB of stack), output pixels, then the whole block through [`simd::window`]: the
/// pixel's valid tap rows are runs contiguous in input and filter, each input word is loaded and
/// widened (centred by `SXTAB16`, so padded taps need no correction and no `Σ w` term) once for
/// four channels, and two `SMLAD`s per word and channel do the MACs. No scratch is needed, so
/// the plan and every blob's arena are unchanged. The outputs are then requantized together
/// ([`output_stage`]).
///
/// On Armv7E-M (`cfg(edge_dsp)`), x86-64 and aarch64 [`conv2d`] dispatches here; elsewhere
/// (Cortex-M0, M33 without DSP, RISC-V) the reference loop stays.
#[cfg_attr(
    not(any(edge_dsp, target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
// Armv7E-M: not inlined into `conv2d`, so its 1.7 KiB frame and `conv2d_unpacked_dsp`'s 2.8 KiB
// (1 KiB of filters) are never stacked on each other (boards reserve about 4 KiB of stack).
#[cfg_attr(edge_dsp, inline(never))]
pub(crate) fn conv2d_blocked(p: &ConvParams<'_>, input: &[i8], output: &mut [i8]) -> KernelResult {
    conv2d_blocks(p, input, output, &mut [])
}

/// [`conv2d_blocked`] for 2- and 4-bit weights on x86-64 and aarch64 (issue 18/17), for
/// parameters that pass [`unpacked_eligible`]: each block of output channels first has its
/// filters unpacked into [`UNPACKED_FILTERS`] bytes of stack (`⌊16 KiB / (4·kh·kw·C_in)⌋·4`
/// channels, at most [`BLOCK`]; every filter is unpacked once per call, as in the reference
/// loop), then runs on the 8-bit kernel. The arena and the blob format are unchanged.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn conv2d_unpacked(p: &ConvParams<'_>, input: &[i8], output: &mut [i8]) -> KernelResult {
    let mut filters = [0i8; UNPACKED_FILTERS];
    conv2d_blocks(p, input, output, &mut filters)
}

/// [`conv2d_blocked`] for 4- and 2-bit weights on Armv7E-M (issue 18), for parameters that pass
/// [`packed_eligible`] but not [`unpacked_eligible`] (filters too large for its stack buffer;
/// about 1.5× the 8-bit kernel's instructions per MAC): the same loops, with each pixel's window going to
/// [`armv7em::window_packed`], which reads the packed weights in place and unpacks them in
/// registers (a shift, a mask and `SXTB16` per eight or sixteen values and channel). No scratch
/// and no stack buffer, so the plan and every blob's arena are unchanged.
#[cfg(edge_dsp)]
#[inline(never)]
pub(crate) fn conv2d_packed(p: &ConvParams<'_>, input: &[i8], output: &mut [i8]) -> KernelResult {
    conv2d_blocks(p, input, output, &mut [])
}

/// [`conv2d_unpacked`] on Armv7E-M with [`UNPACKED_FILTERS_DSP`] bytes of stack, for the 2- and
/// 4-bit convolutions that pass [`unpacked_eligible`] (issue 18), whatever their `C_in`. Not
/// inlined, so only these convolutions pay for the buffer's stack.
#[cfg(edge_dsp)]
#[inline(never)]
pub(crate) fn conv2d_unpacked_dsp(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
) -> KernelResult {
    let mut filters = [0i8; UNPACKED_FILTERS_DSP];
    conv2d_blocks(p, input, output, &mut filters)
}

/// Output pixels whose sums [`conv2d_row_blocks`] keeps at a time: 1 KiB of stack for a group
/// of four channels.
#[cfg(any(edge_dsp, test))]
const ROW_STRIP: usize = 64;

/// Whether [`conv2d_row_blocks`] handles `p` (Armv7E-M, tried first for sub-byte weights): 4- or 2-bit
/// weights, symmetric or per-tensor affine, a kernel larger than 1×1 with contiguous tap rows,
/// one kernel row of four filters
/// in [`UNPACKED_FILTERS_DSP`] bytes (`4·kw·C_in ≤ 1024`: a 7×7 over 32 channels, a 3×3 over
/// 85), and weights whose codes less `z_w` fit a byte (every 2- and 4-bit zero point in range).
#[cfg(any(edge_dsp, test))]
pub(crate) fn row_blocks_eligible(p: &ConvParams<'_>) -> bool {
    let bits = p.weights.bits;
    if !matches!(bits, 2 | 4) || p.window.dilation_w != 1 {
        return false;
    }
    // 1×1 kernels stay on `conv2d_unpacked_dsp`: one chunk and no taps to share.
    if p.window.kernel_h == 1 && p.window.kernel_w == 1 {
        return false;
    }
    let row = p.window.kernel_w as usize * p.input_shape.c as usize;
    row > 0 && 4 * row <= UNPACKED_FILTERS_DSP && centred_codes_fit(bits, p.weights.zero_point)
}

/// Whether every `bits`-wide code less `z_w` fits a byte (every 2- and 4-bit zero point in the
/// codes' range), so that unpacked filters can hold `w − z_w` ([`centre_bytes`]).
fn centred_codes_fit(bits: u8, z_w: i8) -> bool {
    let half = 1i32 << (bits.clamp(1, 8) - 1);
    let z_w = i32::from(z_w);
    let fits = |v: i32| i8::try_from(v).is_ok();
    fits(-half - z_w) && fits(half - 1 - z_w)
}

/// `v − z` for every byte `v` of `f`, wrapping, four bytes a step (the borrow kept inside each
/// byte: Hacker's Delight 2-18).
#[inline(always)]
fn centre_bytes(f: &mut [i8], z: i8) {
    const H: u32 = 0x8080_8080;
    let zz = u32::from_ne_bytes([z as u8; 4]);
    let (words, rest) = f.as_chunks_mut::<4>();
    for q in words {
        let a = u32::from_ne_bytes(q.map(|v| v as u8));
        let d = (a | H).wrapping_sub(zz & !H) ^ ((a ^ !zz) & H);
        *q = d.to_ne_bytes().map(|v| v as i8);
    }
    for v in rest {
        *v = v.wrapping_sub(z);
    }
}

/// 4- and 2-bit convolutions on Armv7E-M whose filters are too large for
/// [`conv2d_unpacked_dsp`]'s buffer (issue 18), for parameters that pass
/// [`row_blocks_eligible`]: for each group of four output channels and each strip of
/// [`ROW_STRIP`] output pixels, the filters' kernel rows go a chunk at a time (as many rows as
/// fit [`UNPACKED_FILTERS_DSP`] bytes) through the stack buffer, unpacked and centred on `z_w`
/// (so no per-pixel affine correction), and every pixel of the strip adds the chunk's valid
/// taps to its four sums through the 8-bit kernel ([`simd::window`]); then the strip is
/// requantized ([`output_stage`]). The sums are the reference's exact accumulators
/// `Σ_valid (w − z_w)·(x − z_x)` (modulo 2^32 like its wrapping sums), so the outputs are
/// identical. About 2.1 KiB of stack; no scratch, so the plan and the arena are unchanged.
#[cfg(any(edge_dsp, test))]
#[cfg_attr(edge_dsp, inline(never))]
pub(crate) fn conv2d_row_blocks(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
) -> KernelResult {
    if !row_blocks_eligible(p) {
        return Err(KernelError(
            "conv parameters unfit for the row-chunk kernel",
        ));
    }
    let win = p.window;
    let Dims {
        in_h,
        in_w,
        cin,
        out_h,
        out_w,
        cout,
        filter_len,
    } = Dims::checked(p, input, output)?;
    let bits = p.weights.bits;
    let weight_count = filter_len
        .checked_mul(cout)
        .ok_or(KernelError("weight count overflows"))?;
    match packed_len(weight_count as u64, bits) {
        Some(need) if need <= p.weights.data.len() as u64 => {}
        _ => return Err(KernelError("packed weights shorter than C_out filters")),
    }
    let (kh, kw) = (win.kernel_h as usize, win.kernel_w as usize);
    let run = kw * cin; // one kernel row of one filter, > 0 (eligibility)
    let per_chunk = (UNPACKED_FILTERS_DSP / (4 * run)).clamp(1, kh.max(1));
    let z_x = p.input_zero_point;
    // Fits a byte for every code (eligibility), so the centred weights are exact.
    let z_w = p.weights.zero_point;
    let row_stride = in_w * cin; // ≤ input.len(), checked above
    let x_step = row_stride * win.dilation_h as usize;
    let pixels = out_h * out_w;
    let mut filters = [0i8; UNPACKED_FILTERS_DSP];
    let mut strip = [[0i32; 4]; ROW_STRIP];
    let mut c0 = 0;
    while c0 < cout {
        let nb = (cout - c0).min(4);
        let mut bias = [0i32; 4];
        let mut stage = [ChannelRequant::new(0, 0, p.rounding); 4];
        for ((b, rq), c) in bias.iter_mut().zip(&mut stage).zip(c0..c0 + nb) {
            *b = p
                .bias
                .get(c)
                .ok_or(KernelError("bias shorter than C_out"))?;
            let (m, e) = p
                .requant
                .get(c)
                .ok_or(KernelError("requant table shorter than C_out"))?;
            *rq = ChannelRequant::new(m, e, p.rounding);
        }
        let (bias, stage) = (
            bias.get(..nb).unwrap_or_default(),
            stage.get(..nb).unwrap_or_default(),
        );
        let plain = stage.iter().all(ChannelRequant::is_plain);
        let mut p0 = 0;
        while p0 < pixels {
            let sums = strip
                .get_mut(..(pixels - p0).min(ROW_STRIP))
                .ok_or(KernelError("conv pixel strip"))?;
            sums.fill([0; 4]);
            let mut ky0 = 0;
            while ky0 < kh {
                let ky1 = (ky0 + per_chunk).min(kh);
                let chunk = (ky1 - ky0) * run; // 4·chunk ≤ UNPACKED_FILTERS_DSP
                for j in 0..nb {
                    let f = filters
                        .get_mut(j * chunk..(j + 1) * chunk)
                        .ok_or(KernelError("unpacked filter chunk"))?;
                    // (c0 + j)·filter_len + ky1·run ≤ weight_count, whose packed bytes were
                    // checked above.
                    unpack_into(p.weights.data, bits, (c0 + j) * filter_len + ky0 * run, f);
                    if z_w != 0 {
                        centre_bytes(f, z_w);
                    }
                }
                let (mut oy, mut ox) = (p0 / out_w, p0 % out_w);
                let mut ty = Taps::rows(&win, oy, in_h);
                for s in sums.iter_mut() {
                    let (k0, k1) = (ty.k0.max(ky0), ty.k1.min(ky1));
                    let tx = Taps::cols(&win, ox, in_w);
                    let len = tx.count() * cin;
                    if k0 < k1 && len > 0 {
                        let x0 = ty.input_index(k0, win.dilation_h) * row_stride
                            + tx.input_index(tx.k0, 1) * cin;
                        let w0 = (k0 - ky0) * run + tx.k0 * cin;
                        let runs = Runs {
                            rows: k1 - k0,
                            len,
                            x_step,
                            w_step: run,
                        };
                        let x = input.get(x0..).ok_or(KernelError("conv input tap"))?;
                        let w = filters.get(w0..).ok_or(KernelError("conv filter run"))?;
                        let mut acc = [0i32; 4];
                        let acc = acc.get_mut(..nb).unwrap_or_default();
                        if !simd::window(x, w, chunk, runs, z_x, None, acc) {
                            return Err(KernelError("conv window outside its tensors"));
                        }
                        for (s, &a) in s.iter_mut().zip(acc.iter()) {
                            *s = s.wrapping_add(a);
                        }
                    }
                    ox += 1;
                    if ox == out_w {
                        (oy, ox) = (oy + 1, 0);
                        ty = Taps::rows(&win, oy, in_h);
                    }
                }
                ky0 = ky1;
            }
            let ys = output
                .get_mut(p0 * cout + c0..)
                .ok_or(KernelError("conv output pixel"))?;
            strip_stage(ys, cout, sums, stage, bias, plain, p);
            p0 += sums.len();
        }
        c0 += nb;
    }
    Ok(())
}

/// Output pixels whose sums [`conv2d_wide`] keeps at a time: 512 bytes of stack for a group of
/// four channels (32: whole output rows 8, 16 or 32 wide, and a frame no deeper than before its
/// table grew to 200 inputs and its single-rounding stages were kept for a group).
#[cfg(any(edge_dsp, test))]
const WIDE_STRIP: usize = 32;

/// Whether [`conv2d_wide`] handles `p` (Armv7E-M, tried after the pointwise kernel): 8-, 4- or
/// 2-bit weights, symmetric or per-tensor affine, contiguous tap rows, and `C_in` a multiple of
/// 4 whose one tap of four filters fits [`armv7em::WIDE_TABLE_WORDS`] (`C_in ≤ 200`).
#[cfg(any(edge_dsp, test))]
pub(crate) fn wide_eligible(p: &ConvParams<'_>) -> bool {
    let cin = p.input_shape.c as usize;
    matches!(p.weights.bits, 2 | 4 | 8)
        && p.window.dilation_w == 1
        && cin > 0
        && cin.is_multiple_of(4)
        && 2 * cin <= armv7em::WIDE_TABLE_WORDS
}

/// Regular convolutions on Armv7E-M (issue 18), for parameters that pass [`wide_eligible`]: for
/// each group of four output channels and each strip of [`WIDE_STRIP`] output pixels, the
/// filters go a chunk of taps at a time (whole kernel rows, or part of one, as many as fit)
/// through a 1,600-byte stack table of 16-bit weights centred on `z_w` ([`armv7em::wide_pairs`],
/// [`armv7em::packed_pairs`]; a filter of one chunk, a 3×3 over up to 22 channels or a 5×5 over 8,
/// is tabled once per group), and the strip's
/// pixels add the chunk's valid taps to their four sums through [`armv7em::window_wide`] (15
/// instructions per 16 MACs: no weight widening in the loop), the pixels of an output row whose
/// chunk taps are all inside the input in one call. Then the strip is requantized
/// ([`strip_stage`]). The sums are the reference's exact accumulators
/// `Σ_valid (w − z_w)·(x − z_x)` (modulo 2^32 like its wrapping sums), so the outputs are
/// identical. About 2.8 KiB of stack; no scratch, so the plan and the arena are unchanged.
#[cfg(any(edge_dsp, test))]
#[cfg_attr(edge_dsp, inline(never))]
pub(crate) fn conv2d_wide(p: &ConvParams<'_>, input: &[i8], output: &mut [i8]) -> KernelResult {
    if !wide_eligible(p) {
        return Err(KernelError("conv parameters unfit for the wide kernel"));
    }
    let win = p.window;
    let Dims {
        in_h,
        in_w,
        cin,
        out_h,
        out_w,
        cout,
        filter_len,
    } = Dims::checked(p, input, output)?;
    filters_fit(p, filter_len, cout)?;
    let (kh, kw) = (win.kernel_h as usize, win.kernel_w as usize);
    // Inputs of one filter per chunk: whole kernel rows if one fits, else taps of one row.
    let room = armv7em::WIDE_TABLE_WORDS / 2; // ≥ C_in (eligibility)
    let (rows_per, cols_per) = if kw * cin <= room {
        ((room / (kw * cin).max(1)).clamp(1, kh.max(1)), kw)
    } else {
        (1, (room / cin).max(1))
    };
    let single = rows_per >= kh && cols_per >= kw;
    let z_x = p.input_zero_point;
    let minus_z_w = armv7em::splat16(-i16::from(p.weights.zero_point));
    let row_stride = in_w * cin; // ≤ input.len(), checked above
    let x_step = row_stride * win.dilation_h as usize;
    let pixels = out_h * out_w;
    let mut table = [0u32; armv7em::WIDE_TABLE_WORDS];
    let mut strip = [[0i32; 4]; WIDE_STRIP];
    let mut c0 = 0;
    while c0 < cout {
        let nb = (cout - c0).min(4);
        let mut bias = [0i32; 4];
        let mut stage = [ChannelRequant::new(0, 0, p.rounding); 4];
        for ((b, rq), c) in bias.iter_mut().zip(&mut stage).zip(c0..c0 + nb) {
            *b = p
                .bias
                .get(c)
                .ok_or(KernelError("bias shorter than C_out"))?;
            let (m, e) = p
                .requant
                .get(c)
                .ok_or(KernelError("requant table shorter than C_out"))?;
            *rq = ChannelRequant::new(m, e, p.rounding);
        }
        let (bias, stage) = (
            bias.get(..nb).unwrap_or_default(),
            stage.get(..nb).unwrap_or_default(),
        );
        let plain = stage.iter().all(ChannelRequant::is_plain);
        let single_stages = match p.rounding {
            Rounding::Single => SingleStages::of(p, c0, nb),
            Rounding::Double => None,
        };
        let mut tabled = false;
        let mut p0 = 0;
        while p0 < pixels {
            let sums = strip
                .get_mut(..(pixels - p0).min(WIDE_STRIP))
                .ok_or(KernelError("conv pixel strip"))?;
            sums.fill([0; 4]);
            let mut ky0 = 0;
            while ky0 < kh {
                let ky1 = (ky0 + rows_per).min(kh);
                let mut kx0 = 0;
                while kx0 < kw {
                    let kx1 = (kx0 + cols_per).min(kw);
                    let cw = (kx1 - kx0) * cin; // inputs of a chunk row
                    if !tabled {
                        for j in 0..nb {
                            for ky in ky0..ky1 {
                                // (c0 + j)·filter_len + ky·kw·cin + kx1·cin ≤ weight_count.
                                let from = (c0 + j) * filter_len + (ky * kw + kx0) * cin;
                                let at = 2 * (ky - ky0) * cw;
                                wide_fill(p, from, cw, minus_z_w, &mut table, at, j)?;
                            }
                        }
                        tabled = single;
                    }
                    // Output columns whose chunk taps are all inside the input: [lo, hi).
                    let (s_w, pad) = (i64::from(win.stride_w.max(1)), i64::from(win.padding.left));
                    let lo = ((pad - kx0 as i64).max(0) + s_w - 1) / s_w;
                    let hi = (in_w as i64 + pad - kx1 as i64).div_euclid(s_w) + 1;
                    let (lo, hi) = (
                        lo.clamp(0, out_w as i64) as usize,
                        hi.clamp(0, out_w as i64) as usize,
                    );
                    let mut i = 0;
                    while i < sums.len() {
                        let (oy, ox0) = ((p0 + i) / out_w, (p0 + i) % out_w);
                        let ox1 = (ox0 + sums.len() - i).min(out_w);
                        let ty = Taps::rows(&win, oy, in_h);
                        let (k0, k1) = (ty.k0.max(ky0), ty.k1.min(ky1));
                        let row_sums = sums
                            .get_mut(i..i + (ox1 - ox0))
                            .ok_or(KernelError("conv pixel strip"))?;
                        i += ox1 - ox0;
                        if k0 >= k1 {
                            continue;
                        }
                        let (a, b) = (
                            lo.clamp(ox0, ox1),
                            hi.clamp(ox0, ox1).max(lo.clamp(ox0, ox1)),
                        );
                        // Pixels ox0..a and b..ox1 one at a time, a..b together.
                        let mut ox = ox0;
                        while ox < ox1 {
                            let (tx, count) = if ox == a && a < b {
                                (Taps::cols(&win, ox, in_w), b - a)
                            } else {
                                (Taps::cols(&win, ox, in_w), 1)
                            };
                            let (j0, j1) = (tx.k0.max(kx0), tx.k1.min(kx1));
                            let acc = row_sums
                                .get_mut(ox - ox0..ox - ox0 + count)
                                .ok_or(KernelError("conv pixel strip"))?;
                            ox += count;
                            if j0 >= j1 {
                                continue;
                            }
                            let x0 = ty.input_index(k0, win.dilation_h) * row_stride
                                + tx.input_index(j0, 1) * cin;
                            let t0 = 2 * ((k0 - ky0) * cw + (j0 - kx0) * cin);
                            let runs = armv7em::WideRuns {
                                rows: k1 - k0,
                                len: (j1 - j0) * cin,
                                x_step,
                                t_step: 2 * cw,
                            };
                            let x = input.get(x0..).ok_or(KernelError("conv input tap"))?;
                            let t = table.get(t0..).ok_or(KernelError("conv table run"))?;
                            let x_pixel = usize::from(win.stride_w) * cin;
                            if !armv7em::window_wide(x, t, runs, x_pixel, z_x, acc) {
                                return Err(KernelError("conv window outside its tensors"));
                            }
                        }
                    }
                    kx0 = kx1;
                }
                ky0 = ky1;
            }
            let ys = output
                .get_mut(p0 * cout + c0..)
                .ok_or(KernelError("conv output pixel"))?;
            // The double-rounding fused stages are worked out per strip: kept for the block,
            // they cost the window loop above registers (measured: slower sub-byte
            // convolutions); single rounding's are kept (measured: faster).
            let fused = if let Some(st) = &single_stages {
                st.apply(ys, cout, sums)
            } else {
                fused_strip(ys, cout, sums, (c0, nb), p, None)
            };
            if !fused {
                strip_stage(ys, cout, sums, stage, bias, plain, p);
            }
            p0 += sums.len();
        }
        c0 += nb;
    }
    Ok(())
}

/// Bytes of gathered windows [`conv2d_im2col`] keeps at a time.
#[cfg(any(edge_dsp, test))]
const IM2COL_BYTES: usize = 512;

/// Table words [`conv2d_im2col`] keeps (1 KiB): the whole filters of as many groups of four
/// output channels as fit.
#[cfg(any(edge_dsp, test))]
const IM2COL_TABLE_WORDS: usize = 256;

/// Groups of four output channels whose narrow stages [`conv2d_im2col`] keeps for a whole
/// block (272 bytes of stack): all of an RGB stem's 16 channels.
#[cfg(any(edge_dsp, test))]
const IM2COL_NARROW_GROUPS: usize = 4;

/// Pixels whose sums [`conv2d_im2col`] keeps at a time (512 bytes).
#[cfg(any(edge_dsp, test))]
const IM2COL_STRIP: usize = 32;

/// Whether [`conv2d_im2col`] handles `p` (Armv7E-M, for what [`wide_eligible`] leaves for `C_in`
/// not a multiple of 4: an RGB stem): 8-, 4- or 2-bit weights, symmetric or per-tensor affine,
/// and a filter of at most 128 values rounded up to a word (`kh·kw·C_in`, a 3×3 over up to 14
/// channels, a 5×5 over 5).
#[cfg(any(edge_dsp, test))]
pub(crate) fn im2col_eligible(p: &ConvParams<'_>) -> bool {
    let w = p.window;
    let filter_len = w.kernel_h as usize * w.kernel_w as usize * p.input_shape.c as usize;
    matches!(p.weights.bits, 2 | 4 | 8) && filter_len > 0 && filter_len.next_multiple_of(4) <= 128
}

/// Convolutions with small filters whose `C_in` is not a multiple of 4 on Armv7E-M (issue 18),
/// for parameters that pass [`im2col_eligible`]: the filters of as many groups of four output
/// channels as fit go once into a 1 KiB stack table of 16-bit weights centred on `z_w`
/// ([`armv7em::wide_pairs`]; padded with zeros to a word), then for each strip of output pixels
/// every pixel's window is gathered into one run of bytes (padded taps and the padding to a word
/// take `z_x`, so they add 0), and each group adds the whole strip through one call of
/// [`armv7em::window_wide`] before it is requantized ([`strip_stage`]). The sums are the
/// reference's exact accumulators, so the outputs are identical. About 2.6 KiB of stack.
#[cfg(any(edge_dsp, test))]
#[cfg_attr(edge_dsp, inline(never))]
pub(crate) fn conv2d_im2col(p: &ConvParams<'_>, input: &[i8], output: &mut [i8]) -> KernelResult {
    if !im2col_eligible(p) {
        return Err(KernelError("conv parameters unfit for the im2col kernel"));
    }
    let win = p.window;
    let Dims {
        in_h,
        in_w,
        cin,
        out_h,
        out_w,
        cout,
        filter_len,
    } = Dims::checked(p, input, output)?;
    filters_fit(p, filter_len, cout)?;
    let kw = win.kernel_w as usize;
    let fl4 = filter_len.next_multiple_of(4); // ≤ 128 (eligibility)
    let group_words = 2 * fl4;
    let per_block = (IM2COL_TABLE_WORDS / group_words).max(1);
    let n_max = (IM2COL_BYTES / fl4).clamp(1, IM2COL_STRIP);
    let z_x = p.input_zero_point;
    let minus_z_w = armv7em::splat16(-i16::from(p.weights.zero_point));
    let row_stride = in_w * cin; // ≤ input.len(), checked above
    let pixels = out_h * out_w;
    // The interior pixels' shortcut (see the gathering loop): contiguous kernel rows.
    let (kh, row_len) = (win.kernel_h as usize, kw * cin);
    let (s_h, s_w) = (usize::from(win.stride_h), usize::from(win.stride_w));
    let d_h = usize::from(win.dilation_h);
    let span_h = kh.saturating_sub(1) * d_h + 1; // input rows the kernel covers
    let (pad_top, pad_left) = (usize::from(win.padding.top), usize::from(win.padding.left));
    let interior_cols = win.dilation_w == 1 && row_len > 0;
    let mut table = [0u32; IM2COL_TABLE_WORDS];
    let mut strip = [[0i32; 4]; IM2COL_STRIP];
    let mut cols = [0i8; IM2COL_BYTES];
    let mut c0 = 0;
    while c0 < cout {
        let groups = (cout - c0).div_ceil(4).min(per_block);
        let block = (4 * groups).min(cout - c0);
        for j in 0..block {
            let (g, jj) = (j / 4, j % 4);
            // (c0 + j + 1)·filter_len ≤ weight_count.
            let from = (c0 + j) * filter_len;
            let at = g * group_words;
            wide_fill(p, from, filter_len, minus_z_w, &mut table, at, jj)?;
        }
        // The first groups' narrow stages, once for all the block's strips (an RGB stem's
        // four groups); later groups work theirs out per strip.
        let mut narrow_cache = [None; IM2COL_NARROW_GROUPS];
        let narrow_cache = narrow_cache
            .get_mut(..groups.min(IM2COL_NARROW_GROUPS))
            .unwrap_or_default();
        for (g, cached) in narrow_cache.iter_mut().enumerate() {
            let cg = c0 + 4 * g;
            *cached = narrow_stages(p, cg, (cout - cg).min(4));
        }
        let narrow_cache = &*narrow_cache;
        let mut p0 = 0;
        while p0 < pixels {
            let n = (pixels - p0).min(n_max);
            let gathered = cols
                .get_mut(..n * fl4)
                .ok_or(KernelError("conv gathered windows"))?;
            // Padded taps and the padding to a word take z_x, so they add 0 (one fill for the
            // strip costs less than a few bytes per pixel).
            gathered.fill(z_x);
            for (i, col) in gathered.chunks_exact_mut(fl4).enumerate() {
                let (oy, ox) = ((p0 + i) / out_w, (p0 + i) % out_w);
                // A pixel whose taps all lie inside the input (all but the border): its kernel
                // rows are runs of kw·C_in bytes `d_h` input rows apart, copied without working
                // out its taps (the same bytes as below).
                let (y0, x0) = (oy * s_h, ox * s_w); // tap (0, 0) + padding
                if interior_cols
                    && y0 >= pad_top
                    && y0 - pad_top + span_h <= in_h
                    && x0 >= pad_left
                    && x0 - pad_left + kw <= in_w
                {
                    let mut from = (y0 - pad_top) * row_stride + (x0 - pad_left) * cin;
                    for dst in col.chunks_exact_mut(row_len).take(kh) {
                        let src = input
                            .get(from..from + row_len)
                            .ok_or(KernelError("conv input tap"))?;
                        copy_run(dst, src);
                        from = from.saturating_add(d_h.saturating_mul(row_stride));
                    }
                    continue;
                }
                let (ty, tx) = (Taps::rows(&win, oy, in_h), Taps::cols(&win, ox, in_w));
                for ky in ty.k0..ty.k1 {
                    let row = ty.input_index(ky, win.dilation_h) * row_stride;
                    if win.dilation_w == 1 {
                        let (x0, len) = (row + tx.input_index(tx.k0, 1) * cin, tx.count() * cin);
                        let at = (ky * kw + tx.k0) * cin;
                        let src = input
                            .get(x0..x0 + len)
                            .ok_or(KernelError("conv input tap"))?;
                        let dst = col
                            .get_mut(at..at + len)
                            .ok_or(KernelError("conv gathered tap"))?;
                        copy_run(dst, src);
                    } else {
                        for kx in tx.k0..tx.k1 {
                            let x0 = row + tx.input_index(kx, win.dilation_w) * cin;
                            let at = (ky * kw + kx) * cin;
                            let src = input
                                .get(x0..x0 + cin)
                                .ok_or(KernelError("conv input tap"))?;
                            col.get_mut(at..at + cin)
                                .ok_or(KernelError("conv gathered tap"))?
                                .copy_from_slice(src);
                        }
                    }
                }
            }
            let runs = armv7em::WideRuns {
                rows: 1,
                len: fl4,
                x_step: fl4,
                t_step: group_words,
            };
            for g in 0..groups {
                let cg = c0 + 4 * g;
                let nb = (cout - cg).min(4);
                let sums = strip.get_mut(..n).ok_or(KernelError("conv pixel strip"))?;
                sums.fill([0; 4]);
                let t = table
                    .get(g * group_words..)
                    .ok_or(KernelError("conv table run"))?;
                if !armv7em::window_wide(gathered, t, runs, fl4, z_x, sums) {
                    return Err(KernelError("conv window outside its tensors"));
                }
                let ys = output
                    .get_mut(p0 * cout + cg..)
                    .ok_or(KernelError("conv output pixel"))?;
                // The fused stages first: the generic ones are worked out only where they fail.
                if fused_strip(ys, cout, sums, (cg, nb), p, narrow_cache.get(g)) {
                    continue;
                }
                let mut bias = [0i32; 4];
                let mut stage = [ChannelRequant::new(0, 0, p.rounding); 4];
                for ((b, rq), c) in bias.iter_mut().zip(&mut stage).zip(cg..cg + nb) {
                    *b = p
                        .bias
                        .get(c)
                        .ok_or(KernelError("bias shorter than C_out"))?;
                    let (m, e) = p
                        .requant
                        .get(c)
                        .ok_or(KernelError("requant table shorter than C_out"))?;
                    *rq = ChannelRequant::new(m, e, p.rounding);
                }
                let (bias, stage) = (
                    bias.get(..nb).unwrap_or_default(),
                    stage.get(..nb).unwrap_or_default(),
                );
                let plain = stage.iter().all(ChannelRequant::is_plain);
                strip_stage(ys, cout, sums, stage, bias, plain, p);
            }
            p0 += n;
        }
        c0 += block;
    }
    Ok(())
}
/// Table words [`conv2d_band`] keeps (1,344 bytes): the four filters of a group, each kernel
/// row padded to a word, up to a 7×7 RGB stem's.
#[cfg(any(edge_dsp, test))]
const BAND_TABLE_WORDS: usize = 336;

/// Bytes of padded input rows [`conv2d_band`] keeps: a 7×7 RGB stem's seven rows of a 32-wide
/// input padded by 3 on each side (7·38·3 = 798) and the 3 bytes its last run reads past them.
#[cfg(any(edge_dsp, test))]
const BAND_BYTES: usize = 808;

/// Output pixels whose sums [`conv2d_band`] keeps at a time (240 bytes: 15, so that its frame
/// is no deeper than the other convolution kernels'; 16 would cost 16 bytes more).
#[cfg(any(edge_dsp, test))]
const BAND_STRIP: usize = 15;

/// The geometry of [`conv2d_band`] for `p`, if it takes it: `(row4, band_row)`, the words of
/// a kernel row's inputs (`kw·C_in` rounded up to a multiple of 4) and the bytes of one padded
/// input row (`((OW − 1)·s_w + kw)·C_in`, every column an output row's windows cover, at least
/// `row4`).
#[cfg(any(edge_dsp, test))]
fn band_geometry(p: &ConvParams<'_>) -> Option<(usize, usize)> {
    let w = p.window;
    let (kh, kw) = (usize::from(w.kernel_h), usize::from(w.kernel_w));
    let (cin, out_w) = (usize::from(p.input_shape.c), usize::from(p.output_shape.w));
    let ok = matches!(p.weights.bits, 2 | 4 | 8)
        && (w.dilation_h, w.dilation_w) == (1, 1)
        && kh > 0
        && kw > 0
        && cin > 0
        && out_w > 0;
    if !ok {
        return None;
    }
    let row4 = (kw * cin).next_multiple_of(4);
    // At least one run, so that the rows are not closer than a run's length.
    let band_row = (((out_w - 1) * usize::from(w.stride_w.max(1)) + kw) * cin).max(row4);
    (2 * kh * row4 <= BAND_TABLE_WORDS && kh * band_row + 3 <= BAND_BYTES)
        .then_some((row4, band_row))
}

/// Whether [`conv2d_band`] handles `p` (Armv7E-M, after [`wide_eligible`] and
/// [`im2col_eligible`]: filters over `C_in` not a multiple of 4 too large to gather, a 7×7 RGB
/// stem): 8-, 4- or 2-bit weights, symmetric or per-tensor affine, no dilation, four filters
/// with kernel rows padded to a word in [`BAND_TABLE_WORDS`], and the input rows of an output
/// row, padded, in [`BAND_BYTES`].
#[cfg(any(edge_dsp, test))]
pub(crate) fn band_eligible(p: &ConvParams<'_>) -> bool {
    band_geometry(p).is_some()
}

/// Convolutions with filters over `C_in` not a multiple of 4 too large for [`conv2d_im2col`]
/// (a 7×7 RGB stem) on Armv7E-M (issue 18), for parameters that pass [`band_eligible`]: for
/// each group of four output channels, the filters go once into a stack table of 16-bit weights
/// centred on `z_w` ([`armv7em::wide_pairs`]), each kernel row of `kw·C_in` weights padded with
/// zeros to a word; then for each output row its valid input rows are copied into a band,
/// padded at both ends with `z_x` (padded taps add 0), so that every window's kernel row is one
/// run of bytes and an output row's pixels `s_w·C_in` bytes apart go through one call of
/// [`armv7em::window_wide`] a strip at a time (the up to 3 bytes a run reads past its kernel row
/// meet zero weights), before they are requantized ([`strip_stage`]). The sums are the
/// reference's exact accumulators, so the outputs are identical. About 2.8 KiB of stack.
#[cfg(any(edge_dsp, test))]
#[cfg_attr(edge_dsp, inline(never))]
pub(crate) fn conv2d_band(p: &ConvParams<'_>, input: &[i8], output: &mut [i8]) -> KernelResult {
    let (row4, band_row) =
        band_geometry(p).ok_or(KernelError("conv parameters unfit for the band kernel"))?;
    let win = p.window;
    let Dims {
        in_h,
        in_w,
        cin,
        out_h,
        out_w,
        cout,
        filter_len,
    } = Dims::checked(p, input, output)?;
    filters_fit(p, filter_len, cout)?;
    let (kh, kw) = (usize::from(win.kernel_h), usize::from(win.kernel_w));
    let row_len = kw * cin; // weights (and input bytes) of a kernel row
    let z_x = p.input_zero_point;
    let minus_z_w = armv7em::splat16(-i16::from(p.weights.zero_point));
    let row_stride = in_w * cin; // ≤ input.len(), checked above
    let pad_left = usize::from(win.padding.left);
    // The input columns inside a band row: padded column u is input column u − pad_left.
    let (a, n_in) = (
        (pad_left * cin).min(band_row),
        (in_w * cin).min(band_row.saturating_sub(pad_left * cin)),
    );
    let x_pixel = usize::from(win.stride_w) * cin;
    let mut table = [0u32; BAND_TABLE_WORDS];
    let mut band = [0i8; BAND_BYTES];
    let mut strip = [[0i32; 4]; BAND_STRIP];
    let mut c0 = 0;
    while c0 < cout {
        let nb = (cout - c0).min(4);
        for j in 0..nb {
            for ky in 0..kh {
                // (c0 + j)·filter_len + (ky + 1)·row_len ≤ weight_count.
                let from = (c0 + j) * filter_len + ky * row_len;
                wide_fill(p, from, row_len, minus_z_w, &mut table, 2 * ky * row4, j)?;
            }
        }
        // The fused single-rounding stages once for the group (a quickstart stem's); the others
        // per strip, out of this frame (`fused_strip`, `strip_generic`).
        let single = SingleStages::of(p, c0, nb);
        for oy in 0..out_h {
            let ty = Taps::rows(&win, oy, in_h);
            let rows = ty.k1 - ty.k0;
            // The valid input rows, padded with z_x at both ends.
            for (i, ky) in (ty.k0..ty.k1).enumerate() {
                let from = ty.input_index(ky, 1) * row_stride;
                let src = input
                    .get(from..from + n_in)
                    .ok_or(KernelError("conv input row"))?;
                let dst = band
                    .get_mut(i * band_row..(i + 1) * band_row)
                    .ok_or(KernelError("conv band"))?;
                let (left, rest) = dst.split_at_mut(a);
                let (mid, right) = rest.split_at_mut(n_in);
                left.fill(z_x);
                mid.copy_from_slice(src);
                right.fill(z_x);
            }
            let t = table
                .get(2 * ty.k0 * row4..)
                .ok_or(KernelError("conv table run"))?;
            let runs = armv7em::WideRuns {
                rows,
                len: row4,
                x_step: band_row,
                t_step: 2 * row4,
            };
            let mut ox0 = 0;
            while ox0 < out_w {
                let sums = strip
                    .get_mut(..(out_w - ox0).min(BAND_STRIP))
                    .ok_or(KernelError("conv pixel strip"))?;
                sums.fill([0; 4]);
                let x = band.get(ox0 * x_pixel..).ok_or(KernelError("conv band"))?;
                if !armv7em::window_wide(x, t, runs, x_pixel, z_x, sums) {
                    return Err(KernelError("conv window outside its band"));
                }
                let ys = output
                    .get_mut((oy * out_w + ox0) * cout + c0..)
                    .ok_or(KernelError("conv output pixel"))?;
                // Each fallback called from here, so that no chain of frames stacks on this
                // one more than one of them.
                let fused = match &single {
                    Some(st) => st.apply(ys, cout, sums),
                    None => fused_strip(ys, cout, sums, (c0, nb), p, None),
                };
                if !fused {
                    strip_generic(ys, cout, sums, (c0, nb), p)?;
                }
                ox0 += sums.len();
            }
        }
        c0 += nb;
    }
    Ok(())
}

/// `dst.copy_from_slice(src)` for the short runs [`conv2d_im2col`] gathers (a tap row of an RGB
/// stem: 9 bytes), a word at a time: the library `memcpy` that `copy_from_slice` calls costs
/// several times more on a few unaligned bytes. Copies the shorter length.
#[cfg(any(edge_dsp, test))]
#[inline(always)]
fn copy_run(dst: &mut [i8], src: &[i8]) {
    let mut d = dst.chunks_exact_mut(4);
    let mut s = src.chunks_exact(4);
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    // At most three bytes left: spelled out, so that no loop becomes a `memcpy` call again.
    match (d.into_remainder(), s.remainder()) {
        ([d0, d1, d2, ..], [s0, s1, s2, ..]) => (*d0, *d1, *d2) = (*s0, *s1, *s2),
        ([d0, d1, ..], [s0, s1, ..]) => (*d0, *d1) = (*s0, *s1),
        ([d0, ..], [s0, ..]) => *d0 = *s0,
        _ => {}
    }
}

/// The fused double-rounding stages ([`armv7em::DoubleStage`]) of the four output channels from
/// `c0`, if the model rounds twice (TFLM's default), its output clamp is the whole int8 range
/// and every one of the four channels has one; else `None` ([`strip_stage`] then).
#[cfg(any(edge_dsp, test))]
fn double_stages(p: &ConvParams<'_>, c0: usize, nb: usize) -> Option<[armv7em::DoubleStage; 4]> {
    if nb != 4 || p.rounding != Rounding::Double || (p.clamp.min, p.clamp.max) != (-128, 127) {
        return None;
    }
    let stage = |j: usize| {
        let (m, e) = p.requant.get(c0 + j)?;
        armv7em::DoubleStage::new(m, e, p.bias.get(c0 + j)?)
    };
    Some([stage(0)?, stage(1)?, stage(2)?, stage(3)?])
}

/// The most any accumulator of `p` (`Σ (w − z_w)·(x − z_x)` over a filter, before the bias)
/// can be in magnitude: the filter's length times the largest `|w − z_w|` the weights' codes
/// allow times the largest `|x − z_x|` an int8 input allows.
#[cfg(any(edge_dsp, test))]
fn acc_bound(p: &ConvParams<'_>) -> u64 {
    let w = p.window;
    // kh·kw < 2^16 and C_in < 2^16: the filter's length fits 32 bits.
    let filter_len = u32::from(w.kernel_h) * u32::from(w.kernel_w) * u32::from(p.input_shape.c);
    let bits = u32::from(p.weights.bits.clamp(1, 8));
    let (z_w, z_x) = (
        i32::from(p.weights.zero_point),
        i32::from(p.input_zero_point),
    );
    let half = 1i32 << (bits - 1);
    let w_max = (-half - z_w)
        .unsigned_abs()
        .max((half - 1 - z_w).unsigned_abs());
    let x_max = (127 - z_x).unsigned_abs().max((z_x + 128).unsigned_abs());
    // Both at most 255: the product is below 2^16, the bound below 2^48 (no overflow).
    u64::from(filter_len) * u64::from(w_max * x_max)
}

/// The [`armv7em::NarrowStage`]s of the four output channels from `c0`, if the model rounds twice,
/// its output clamp is the whole int8 range and every channel's accumulator bound
/// ([`acc_bound`]) and stage let it be exact; else `None` ([`double_stages`] then).
/// Not inlined: in the kernels' frames its code would cost their loops registers.
#[cfg(any(edge_dsp, test))]
#[inline(never)]
fn narrow_stages(p: &ConvParams<'_>, c0: usize, nb: usize) -> Option<[armv7em::NarrowStage; 4]> {
    if nb != 4 || p.rounding != Rounding::Double || (p.clamp.min, p.clamp.max) != (-128, 127) {
        return None;
    }
    let max_acc = acc_bound(p);
    let stage = |j: usize| {
        let (m, e) = p.requant.get(c0 + j)?;
        let b = p.bias.get(c0 + j)?;
        armv7em::NarrowStage::new(m, e, b, p.output_zero_point, max_acc)
    };
    Some([stage(0)?, stage(1)?, stage(2)?, stage(3)?])
}

/// The outputs of a strip of the `nb` channels from `c0` through [`armv7em::stage_narrow`] if they
/// have [`narrow_stages`] (half the instructions; `cached` if the caller worked them out once
/// for all its strips, else worked out here), else through [`armv7em::stage_double`] if they have
/// [`double_stages`]: `false`, nothing written, if neither ([`strip_stage`] then; single
/// rounding's fused stages are the kernels' own, [`SingleStages`]). Not inlined, so the fused
/// stages stay off the kernels' frames.
#[cfg(any(edge_dsp, test))]
#[inline(never)]
fn fused_strip(
    ys: &mut [i8],
    cout: usize,
    sums: &[[i32; 4]],
    (c0, nb): (usize, usize),
    p: &ConvParams<'_>,
    cached: Option<&Option<[armv7em::NarrowStage; 4]>>,
) -> bool {
    let narrow = match cached {
        Some(narrow) => *narrow,
        // The call only where it can succeed (it refuses single rounding at once).
        None if p.rounding == Rounding::Double => narrow_stages(p, c0, nb),
        None => None,
    };
    if let Some(st) = narrow {
        return armv7em::stage_narrow(sums, &st, ys, cout);
    }
    double_stages(p, c0, nb)
        .is_some_and(|st| armv7em::stage_double(sums, &st, p.output_zero_point, ys, cout))
}

/// The outputs of a strip of the `nb` channels from `c0` through [`strip_stage`], the channels'
/// biases and requantizers worked out here: for a kernel that keeps none of them in its frame
/// (see [`conv2d_band`]).
#[cfg(any(edge_dsp, test))]
#[inline(never)]
fn strip_generic(
    ys: &mut [i8],
    cout: usize,
    sums: &[[i32; 4]],
    (c0, nb): (usize, usize),
    p: &ConvParams<'_>,
) -> KernelResult {
    let mut bias = [0i32; 4];
    let mut stage = [ChannelRequant::new(0, 0, p.rounding); 4];
    for ((b, rq), c) in bias.iter_mut().zip(&mut stage).zip(c0..c0 + nb) {
        *b = p
            .bias
            .get(c)
            .ok_or(KernelError("bias shorter than C_out"))?;
        let (m, e) = p
            .requant
            .get(c)
            .ok_or(KernelError("requant table shorter than C_out"))?;
        *rq = ChannelRequant::new(m, e, p.rounding);
    }
    let (bias, stage) = (
        bias.get(..nb).unwrap_or_default(),
        stage.get(..nb).unwrap_or_default(),
    );
    let plain = stage.iter().all(ChannelRequant::is_plain);
    strip_stage(ys, cout, sums, stage, bias, plain, p);
    Ok(())
}

/// The single-rounding fused stages ([`armv7em::stage_single`]) of the four channels from `c0`:
/// their output bits `K` and stages.
#[cfg(any(edge_dsp, test))]
#[derive(Debug, Clone, Copy)]
struct SingleStages {
    k: u32,
    stages: [armv7em::SingleStage; 4],
}

#[cfg(any(edge_dsp, test))]
impl SingleStages {
    /// The stages of the `nb` channels from `c0`, if the model rounds once, its output clamp is
    /// all 8-, 4- or 2-bit codes, `nb` is 4 and each channel has a [`armv7em::PwStage`] for its
    /// accumulators' bound (its bias's magnitude plus [`acc_bound`]). Not inlined: in the
    /// kernels' frames its code would cost their loops registers.
    #[inline(never)]
    fn of(p: &ConvParams<'_>, c0: usize, nb: usize) -> Option<Self> {
        let (lo, hi) = (i32::from(p.clamp.min), i32::from(p.clamp.max));
        let k = [8u32, 4, 2]
            .into_iter()
            .find(|&k| lo == -(1 << (k - 1)) && hi == (1 << (k - 1)) - 1)?;
        if nb != 4 || p.rounding != Rounding::Single {
            return None;
        }
        let sums_bound = acc_bound(p);
        let mut st = Self {
            k,
            stages: [armv7em::SingleStage::default(); 4],
        };
        for (j, s) in st.stages.iter_mut().enumerate() {
            let (m, e) = p.requant.get(c0 + j)?;
            let b = p.bias.get(c0 + j)?;
            let max_acc = u64::from(b.unsigned_abs()) + sums_bound;
            let pw = armv7em::PwStage::single(m, e, p.output_zero_point, k, max_acc)?;
            // b·2^pre: exact when pre > 0 (the stage's bound covers |b|).
            *s = armv7em::SingleStage::new(pw, b);
        }
        Some(st)
    }

    /// The outputs of a strip of sums (see [`armv7em::stage_single`]).
    fn apply(&self, ys: &mut [i8], cout: usize, sums: &[[i32; 4]]) -> bool {
        let st = &self.stages;
        match self.k {
            8 => armv7em::stage_single::<8>(sums, st, ys, cout),
            4 => armv7em::stage_single::<4>(sums, st, ys, cout),
            _ => armv7em::stage_single::<2>(sums, st, ys, cout),
        }
    }
}

/// `ys[i·cout + j] = requantize(bias[j] + sums[i][j])` for the strip's pixels `i` and the
/// group's channels `j` (`stage.len()` of them): [`output_stage`] for a strip, the rounding
/// matched once outside its loops. Not inlined: in its own frame the loop spills less.
#[cfg(any(edge_dsp, test))]
#[inline(never)]
fn strip_stage(
    ys: &mut [i8],
    cout: usize,
    sums: &[[i32; 4]],
    stage: &[ChannelRequant],
    bias: &[i32],
    plain: bool,
    p: &ConvParams<'_>,
) {
    #[inline(always)]
    fn each(
        ys: &mut [i8],
        cout: usize,
        sums: &[[i32; 4]],
        stage: &[ChannelRequant],
        bias: &[i32],
        f: impl Fn(&ChannelRequant, i32) -> i8,
    ) {
        for (y, s) in ys.chunks_mut(cout.max(1)).zip(sums) {
            for (((y, rq), &b), &a) in y.iter_mut().zip(stage).zip(bias).zip(s) {
                *y = f(rq, b.wrapping_add(a));
            }
        }
    }
    let (z_y, clamp) = (p.output_zero_point, p.clamp);
    match p.rounding {
        Rounding::Double if plain => each(ys, cout, sums, stage, bias, |rq, a| {
            rq.apply_plain::<true>(a, z_y, clamp)
        }),
        Rounding::Single if plain => each(ys, cout, sums, stage, bias, |rq, a| {
            rq.apply_plain::<false>(a, z_y, clamp)
        }),
        Rounding::Double => each(ys, cout, sums, stage, bias, |rq, a| {
            rq.apply_as::<true>(a, z_y, clamp)
        }),
        Rounding::Single => each(ys, cout, sums, stage, bias, |rq, a| {
            rq.apply_as::<false>(a, z_y, clamp)
        }),
    }
}

/// Channel `j`'s `n` weights from weight index `from` into a [`armv7em::window_wide`] table from
/// word `at` (input `at/2`), less `z_w`, widened to 16 bits ([`armv7em::wide_pairs`]), a last
/// partial word padded with `z_w` (centred weights 0). Sub-byte weights are decoded from whole
/// packed bytes when `from` and `n` are multiples of 4 (every [`conv2d_wide`] fill;
/// [`wide_fill_packed`]), else unpacked 32 at a time ([`wide_fill_unpacked`]).
#[cfg(any(edge_dsp, test))]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn wide_fill(
    p: &ConvParams<'_>,
    from: usize,
    n: usize,
    minus_z_w: u32,
    table: &mut [u32],
    at: usize,
    j: usize,
) -> KernelResult {
    // Every word this writes, checked once: ⌈n/4⌉ blocks of eight from `at`.
    let dst = table
        .get_mut(at..at + 8 * n.div_ceil(4))
        .ok_or(KernelError("conv table"))?;
    let j = 2 * (j & 3); // < 8: the pair's place in each block
    // Block k's pair (inside `dst`: checked above).
    let put = |dst: &mut [u32], k: usize, q: [u8; 4]| {
        if let Some(t) = dst.get_mut(8 * k..8 * k + 8) {
            let [a, b] = armv7em::wide_pairs(u32::from_le_bytes(q), minus_z_w);
            (t[j], t[j + 1]) = (a, b);
        }
    };
    // A last word of fewer than four weights: the rest `z_w`, so their centred weights are 0.
    let z_w = p.weights.zero_point;
    fn padded(z_w: i8, rest: impl Iterator<Item = i8>) -> [u8; 4] {
        let mut q = [z_w as u8; 4];
        for (q, v) in q.iter_mut().zip(rest) {
            *q = v as u8;
        }
        q
    }
    if p.weights.bits == 8 {
        let ws = p
            .weights
            .data
            .get(from..from + n)
            .ok_or(KernelError("weights shorter than C_out filters"))?;
        let (words, rest) = ws.as_chunks::<4>();
        for (t, q) in dst.chunks_exact_mut(8).zip(words) {
            let [a, b] = armv7em::wide_pairs(u32::from_le_bytes(*q), minus_z_w);
            (t[j], t[j + 1]) = (a, b);
        }
        if !rest.is_empty() {
            put(dst, words.len(), padded(z_w, rest.iter().map(|&v| v as i8)));
        }
        return Ok(());
    }
    let bits = p.weights.bits;
    // Whole bytes of packed weights (both ends on a byte: 4 values are one or two bytes).
    if from.is_multiple_of(4) && n.is_multiple_of(4) {
        let per_log2 = if bits == 4 { 1 } else { 2 }; // 2 or 4 values a byte
        let bytes = p
            .weights
            .data
            .get(from >> per_log2..(from + n) >> per_log2)
            .ok_or(KernelError("weights shorter than C_out filters"))?;
        if bits == 4 {
            wide_fill_packed::<4>(dst, bytes, j, minus_z_w);
        } else {
            wide_fill_packed::<2>(dst, bytes, j, minus_z_w);
        }
        return Ok(());
    }
    wide_fill_unpacked(p, from, n, minus_z_w, dst, j);
    Ok(())
}

/// [`wide_fill`]'s sub-byte weights that do not start or end on a byte: up to 32 values at a
/// time unpacked to bytes (the gathered-window and band kernels' filters, once per block), a
/// last partial word padded with `z_w`, into the pairs at words `j` and `j + 1` of each block
/// of `dst`. Out of line, so that the kernels' frames do not carry it.
#[cfg(any(edge_dsp, test))]
#[inline(never)]
fn wide_fill_unpacked(
    p: &ConvParams<'_>,
    from: usize,
    n: usize,
    minus_z_w: u32,
    dst: &mut [u32],
    j: usize,
) {
    let (z_w, j) = (p.weights.zero_point, j & 6);
    let mut done = 0;
    while done < n {
        let m = (n - done).min(32);
        let mut q = [z_w; 32];
        // from + n ≤ the weight count, whose packed bytes the caller checked.
        unpack_into(
            p.weights.data,
            p.weights.bits,
            from + done,
            q.get_mut(..m).unwrap_or_default(),
        );
        let words = q.as_chunks::<4>().0.iter().take(m.div_ceil(4));
        for (k, w) in words.enumerate() {
            let at = 8 * (done / 4 + k);
            if let Some(t) = dst.get_mut(at + j..at + j + 2) {
                let pair = armv7em::wide_pairs(u32::from_le_bytes(w.map(|v| v as u8)), minus_z_w);
                t.copy_from_slice(&pair);
            }
        }
        done += m;
    }
}

/// [`wide_fill`]'s whole packed bytes of `BITS`-bit weights (2 or 4) straight into their
/// pairs ([`armv7em::packed_pairs`], 16 packed bits at a time: one block of eight table words of
/// 4-bit weights, two of 2-bit), at words `j` and `j + 1` of each block. Out of line, so that
/// its loop keeps its constants in registers (measured: inlined, the 2-bit refills of the
/// quickstart net's 7×7 layers cost 1.5 % more).
#[cfg(any(edge_dsp, test))]
#[inline(never)]
fn wide_fill_packed<const BITS: u32>(dst: &mut [u32], bytes: &[u8], j: usize, minus_z_w: u32) {
    let j = j & 6; // an even word of the block, as `wide_fill` gives it
    let (pairs, rest) = bytes.as_chunks::<2>();
    if BITS == 4 {
        for (t, b) in dst.chunks_exact_mut(8).zip(pairs) {
            let [p, _] = armv7em::packed_pairs::<4>(u32::from(u16::from_le_bytes(*b)), minus_z_w);
            (t[j], t[j + 1]) = p.into();
        }
    } else {
        let mut blocks = dst.chunks_exact_mut(16);
        for (t, b) in (&mut blocks).zip(pairs) {
            let [p, q] = armv7em::packed_pairs::<2>(u32::from(u16::from_le_bytes(*b)), minus_z_w);
            (t[j], t[j + 1]) = p.into();
            (t[j + 8], t[j + 9]) = q.into();
        }
        // An odd last byte: its one block.
        if let ([b], Some(t)) = (rest, blocks.into_remainder().get_mut(j..j + 2)) {
            let [p, _] = armv7em::packed_pairs::<2>(u32::from(*b), minus_z_w);
            t.copy_from_slice(&p);
        }
    }
}

/// The body of [`conv2d_blocked`] (`unpacked` empty, 8-bit weights read in place), of
/// [`conv2d_unpacked`] (sub-byte weights unpacked a block at a time into `unpacked`) and of
/// `conv2d_packed` (sub-byte weights read packed). The x86-64 and Armv7E-M sub-byte branches
/// are compiled out elsewhere (`cfg!`), leaving the 8-bit code as it was.
#[inline(always)]
fn conv2d_blocks(
    p: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    unpacked: &mut [i8],
) -> KernelResult {
    let win = p.window;
    let Dims {
        in_h,
        in_w,
        cin,
        out_h,
        out_w,
        cout,
        filter_len,
    } = Dims::checked(p, input, output)?;
    // Sub-byte weights unpacked a block at a time into `unpacked`: x86-64 and aarch64, and
    // Armv7E-M given a buffer (a constant `false` elsewhere).
    let sub_byte = (cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
        || cfg!(edge_dsp) && !unpacked.is_empty())
        && p.weights.bits != 8;
    // Sub-byte weights read packed (Armv7E-M only, given no buffer: `false` elsewhere).
    let packed = cfg!(edge_dsp) && unpacked.is_empty() && p.weights.bits != 8;
    if !(blocked_eligible(p) || sub_byte && unpacked_eligible(p) || packed && packed_eligible(p)) {
        return Err(KernelError(
            "conv parameters unfit for the channel-blocked kernel",
        ));
    }
    let kw = win.kernel_w as usize;
    #[cfg(target_arch = "x86_64")]
    let kh = win.kernel_h as usize;
    let weight_bytes = filter_len
        .checked_mul(cout)
        .ok_or(KernelError("weight count overflows"))?;
    let (weights, block): (&[i8], usize) = if sub_byte {
        // unpack_into indexes the packed bytes directly: prove first that they are all there.
        match packed_len(weight_bytes as u64, p.weights.bits) {
            Some(need) if need <= p.weights.data.len() as u64 => {}
            _ => return Err(KernelError("packed weights shorter than C_out filters")),
        }
        // Whole groups of four channels (the kernel's unit), at least one: eligibility.
        let fit = (unpacked.len() / filter_len.max(1)) & !3;
        if fit == 0 {
            return Err(KernelError(
                "unpacked filter block smaller than four filters",
            ));
        }
        (&[], fit.min(BLOCK))
    } else if packed {
        // Read in place by armv7em::window_packed, which checks its bounds.
        (&[], BLOCK)
    } else {
        let weights = bytemuck::try_cast_slice(
            p.weights
                .data
                .get(..weight_bytes)
                .ok_or(KernelError("weights shorter than C_out filters"))?,
        )
        .map_err(|_| KernelError("weight cast"))?;
        (weights, BLOCK)
    };
    let z_x = p.input_zero_point;
    // Sub-byte filters centred on `z_w` as they are unpacked where every code less `z_w` fits a
    // byte: the sums are then the reference's `Σ (w − z_w)·(x − z_x)` directly, and no pixel
    // pays for the affine correction `z_w·Σ(x − z_x)` (a window's sum per pixel and block: 6 %
    // of a W4A4 evaluation's samples on x86-64 with AVX-512).
    let centre = sub_byte
        && p.weights.zero_point != 0
        && centred_codes_fit(p.weights.bits, p.weights.zero_point);
    let z_w = if centre {
        0
    } else {
        i32::from(p.weights.zero_point)
    };
    let row_stride = in_w * cin; // ≤ input.len(), checked above
    let run = kw * cin; // one whole tap row, contiguous in input and filter
    // aarch64: whole windows against zero-padded copies of the block's filters, so blocks no
    // larger than those copies fit (`aarch64::DenseFilters`; the same sums).
    #[cfg(target_arch = "aarch64")]
    let mut dense = simd::DenseFilters::new();
    #[cfg(target_arch = "aarch64")]
    let block = match simd::DenseFilters::block(filter_len) {
        0 => block,
        fit => block.min(fit),
    };

    // x86-64 with VNNI: a block's filters packed for whole windows, and four pixels' sums.
    #[cfg(target_arch = "x86_64")]
    let mut broadcast = simd::x86_64::BroadcastFilters::new();
    #[cfg(target_arch = "x86_64")]
    let mut acc4 = [[0i32; BLOCK]; simd::x86_64::PIXELS];

    let mut c0 = 0;
    while c0 < cout {
        let nb = (cout - c0).min(block);
        // The block's filters: channel c's at `(c·filter_len − from)` of `weights`, `from` being
        // where the unpacked block starts (0 for 8-bit weights, so their code is as it was).
        let (weights, from): (&[i8], usize) = if sub_byte {
            let filters = unpacked
                .get_mut(..nb * filter_len)
                .ok_or(KernelError("unpacked filter block"))?;
            // (c0 + nb)·filter_len ≤ weight_bytes, whose packed bytes were checked above.
            unpack_into(p.weights.data, p.weights.bits, c0 * filter_len, filters);
            if centre {
                centre_bytes(filters, p.weights.zero_point);
            }
            (filters, c0 * filter_len)
        } else {
            (weights, 0)
        };
        #[cfg(target_arch = "aarch64")]
        if !packed {
            let filters = weights
                .get(c0 * filter_len - from..)
                .and_then(|w| w.get(..nb * filter_len))
                .ok_or(KernelError("conv filter block"))?;
            // Too large a filter loads nothing: every pixel takes `simd::window`.
            dense.load(filters, filter_len, run, z_x);
        }
        // x86-64 with VNNI: the block's filter sums, which its whole windows share.
        #[cfg(target_arch = "x86_64")]
        let mut w_sums = [0i32; BLOCK];
        #[cfg(target_arch = "x86_64")]
        let summed = !packed
            && weights
                .get(c0 * filter_len - from..)
                .is_some_and(|f| simd::x86_64::filter_sums(f, filter_len, &mut w_sums[..nb]));
        let mut bias = [0i32; BLOCK];
        let mut stage = [ChannelRequant::new(0, 0, p.rounding); BLOCK];
        for ((b, rq), c) in bias.iter_mut().zip(&mut stage).zip(c0..c0 + nb) {
            *b = p
                .bias
                .get(c)
                .ok_or(KernelError("bias shorter than C_out"))?;
            let (m, e) = p
                .requant
                .get(c)
                .ok_or(KernelError("requant table shorter than C_out"))?;
            *rq = ChannelRequant::new(m, e, p.rounding);
        }
        // Every stage of the block without a left shift (and a sane multiplier): the short path.
        let plain = stage.iter().all(ChannelRequant::is_plain);
        // x86-64 and aarch64: plain stages are requantized four (SSE2) or sixteen (NEON)
        // channels a step.
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        let vector = simd::BlockStages::new(
            stage.get(..nb).unwrap_or_default(),
            bias.get(..nb).unwrap_or_default(),
            p.rounding == Rounding::Double,
            p.output_zero_point,
            p.clamp,
        );
        // x86-64 with VNNI: the block's filters packed for whole windows four pixels at a time
        // (`BroadcastFilters`), where there are enough pixels to repay the packing.
        #[cfg(target_arch = "x86_64")]
        let by_broadcast = summed
            && out_h * out_w >= 8
            && weights
                .get(c0 * filter_len - from..)
                .is_some_and(|f| broadcast.load(f, filter_len, nb, kh, run));
        // The end of a pixel: `z_w`'s correction, then the output stage.
        let finish = |ys: &mut [i8], acc: &mut [i32], x: &[i8], runs: Runs| -> KernelResult {
            if z_w != 0 {
                let centred = centred_sum(x, runs, z_x)?;
                let correction = z_w.wrapping_mul(centred);
                acc.iter_mut().for_each(|a| *a = a.wrapping_sub(correction));
            }
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            if let Some(v) = &vector {
                v.apply(acc, ys);
                return Ok(());
            }
            output_stage(ys, &stage, &bias, acc, plain, p);
            Ok(())
        };
        let mut pixels = output.chunks_exact_mut(cout);
        let mut acc = [0i32; BLOCK]; // Σ w·(x − z_x) of one pixel's channels
        for oy in 0..out_h {
            let ty = Taps::rows(&win, oy, in_h);
            let mut ox = 0;
            while ox < out_w {
                // Up to four whole windows in a row through the packed filters.
                #[cfg(target_arch = "x86_64")]
                if by_broadcast && ty.count() == kh {
                    let whole = (ox..out_w)
                        .take(simd::x86_64::PIXELS)
                        .take_while(|&o| Taps::cols(&win, o, in_w).count() == kw)
                        .count();
                    if whole > 0 {
                        let first = ty.input_index(ty.k0, win.dilation_h) * row_stride
                            + Taps::cols(&win, ox, in_w).input_index(0, 1) * cin;
                        let pixel_step = win.stride_w as usize * cin;
                        let x_step = row_stride * win.dilation_h as usize;
                        if broadcast.windows(
                            input,
                            first,
                            pixel_step,
                            whole,
                            x_step,
                            z_x,
                            &w_sums[..nb],
                            &mut acc4,
                        ) {
                            let runs = Runs {
                                rows: kh,
                                len: run,
                                x_step,
                                w_step: run,
                            };
                            for (i, a) in acc4.iter_mut().take(whole).enumerate() {
                                let ys = pixels
                                    .next()
                                    .and_then(|px| px.get_mut(c0..c0 + nb))
                                    .ok_or(KernelError("conv output pixel"))?;
                                let x = input
                                    .get(first + i * pixel_step..)
                                    .ok_or(KernelError("conv input tap"))?;
                                let acc =
                                    a.get_mut(..nb).ok_or(KernelError("conv channel block"))?;
                                finish(ys, acc, x, runs)?;
                            }
                            ox += whole;
                            continue;
                        }
                    }
                }
                let tx = Taps::cols(&win, ox, in_w);
                ox += 1;
                let ys = pixels
                    .next()
                    .and_then(|px| px.get_mut(c0..c0 + nb))
                    .ok_or(KernelError("conv output pixel"))?;
                // The valid taps: rows ty.k0..ty.k1, each a run of `len` bytes from (x0, w0).
                let len = tx.count() * cin;
                if ty.count() == 0 || len == 0 {
                    // No valid tap (a blob validation refuses): the bias alone.
                    for ((y, rq), &b) in ys.iter_mut().zip(&stage).zip(&bias) {
                        *y = rq.apply(b, p.output_zero_point, p.clamp);
                    }
                    continue;
                }
                let x0 = ty.input_index(ty.k0, win.dilation_h) * row_stride
                    + tx.input_index(tx.k0, 1) * cin;
                let w0 = ty.k0 * run + tx.k0 * cin;
                let runs = Runs {
                    rows: ty.count(),
                    len,
                    x_step: row_stride * win.dilation_h as usize,
                    w_step: run,
                };
                let x = input.get(x0..).ok_or(KernelError("conv input tap"))?;
                let acc = acc.get_mut(..nb).ok_or(KernelError("conv channel block"))?;
                // aarch64: a whole window goes to the padded filters.
                #[cfg(target_arch = "aarch64")]
                let dense_done = dense.window(x, runs, acc);
                #[cfg(not(target_arch = "aarch64"))]
                let dense_done = false;
                let inside = if dense_done {
                    true
                } else if packed {
                    let (data, bits) = (p.weights.data, p.weights.bits);
                    let first = c0 * filter_len + w0;
                    armv7em::window_packed(x, data, bits, first, filter_len, runs, z_x, acc)
                } else {
                    let w = weights
                        .get(c0 * filter_len + w0 - from..)
                        .ok_or(KernelError("conv filter run"))?;
                    // A whole window (every tap valid) reads whole filters: their sums.
                    #[cfg(target_arch = "x86_64")]
                    let sums = (summed && ty.count() == kh && tx.count() == kw)
                        .then(|| w_sums.get(..nb))
                        .flatten();
                    #[cfg(not(target_arch = "x86_64"))]
                    let sums = None;
                    simd::window(x, w, filter_len, runs, z_x, sums, acc)
                };
                if !inside {
                    return Err(KernelError("conv window outside its tensors"));
                }
                finish(ys, acc, x, runs)?;
            }
        }
        c0 += nb;
    }
    Ok(())
}

/// `Σ_runs Σ_i (x[r·x_step + i] − z_x)`: one pixel's centred input sum over its valid taps.
fn centred_sum(x: &[i8], runs: Runs, z_x: i8) -> Result<i32, KernelError> {
    let mut total = 0i32;
    for r in 0..runs.rows {
        let xs = x
            .get(r * runs.x_step..r * runs.x_step + runs.len)
            .ok_or(KernelError("conv input run"))?;
        total = total.wrapping_add(sum(xs));
    }
    let n = (runs.rows * runs.len) as i32;
    Ok(total.wrapping_sub(n.wrapping_mul(i32::from(z_x))))
}

/// `ys[j] = requantize(bias[j] + acc[j])` with each channel's precomputed stage: one loop per
/// rounding, so no per-output branch on it, and `plain` when every stage
/// [`is_plain`](ChannelRequant::is_plain). Not inlined: in its own frame the loop spills less.
#[inline(never)]
pub(crate) fn output_stage(
    ys: &mut [i8],
    stage: &[ChannelRequant],
    bias: &[i32],
    acc: &[i32],
    plain: bool,
    p: &ConvParams<'_>,
) {
    let lanes = stage.iter().zip(bias).zip(acc);
    let (z_y, clamp) = (p.output_zero_point, p.clamp);
    match p.rounding {
        Rounding::Double if plain => {
            for (y, ((rq, &b), &acc)) in ys.iter_mut().zip(lanes) {
                *y = rq.apply_plain::<true>(b.wrapping_add(acc), z_y, clamp);
            }
        }
        Rounding::Single if plain => {
            for (y, ((rq, &b), &acc)) in ys.iter_mut().zip(lanes) {
                *y = rq.apply_plain::<false>(b.wrapping_add(acc), z_y, clamp);
            }
        }
        Rounding::Double => {
            for (y, ((rq, &b), &acc)) in ys.iter_mut().zip(lanes) {
                *y = rq.apply_as::<true>(b.wrapping_add(acc), z_y, clamp);
            }
        }
        Rounding::Single => {
            for (y, ((rq, &b), &acc)) in ys.iter_mut().zip(lanes) {
                *y = rq.apply_as::<false>(b.wrapping_add(acc), z_y, clamp);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ops::test_cases::{
        Case, Codes, Spec, byte, bytes, end_codes, input_shape, output_shape, pick,
        weight_zero_point, window, zero_point,
    };
    use crate::test_rng::XorShift32;
    use shared_format::WeightScheme;
    use shared_format::le::i32s_to_le;
    use shared_format::packing::pack;

    /// Q31 multiplier 2^30 with shift 1: M = 1 exactly, so outputs equal accumulators.
    pub(crate) const ONE: (i32, i8) = (1 << 30, 1);

    pub(crate) struct Owned {
        pub weights: Vec<u8>,
        pub bias: Vec<u8>,
        pub mult: Vec<u8>,
        pub shifts: Vec<u8>,
    }

    pub(crate) fn owned(w: &[i8], bits: u8, bias: &[i32], rq: &[(i32, i8)]) -> Owned {
        Owned {
            weights: pack(w, bits).unwrap(),
            bias: i32s_to_le(bias),
            mult: i32s_to_le(&rq.iter().map(|r| r.0).collect::<Vec<_>>()),
            shifts: rq.iter().map(|r| r.1 as u8).collect(),
        }
    }

    /// Kernel parameters for tests: clamp to the full i8 range, double rounding, output zero
    /// point 0 (override fields with struct-update syntax where a test needs others).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn params<'w>(
        o: &'w Owned,
        bits: u8,
        scheme: WeightScheme,
        z_w: i8,
        window: Window,
        input_shape: Shape,
        z_x: i8,
        output_shape: Shape,
    ) -> ConvParams<'w> {
        ConvParams {
            window,
            input_shape,
            input_zero_point: z_x,
            output_shape,
            output_zero_point: 0,
            weights: Weights {
                bits,
                scheme,
                zero_point: z_w,
                data: &o.weights,
            },
            bias: LeI32s::new(&o.bias),
            requant: Requant {
                multipliers: LeI32s::new(&o.mult),
                shifts: &o.shifts,
            },
            clamp: Clamp {
                min: -128,
                max: 127,
            },
            rounding: Rounding::Double,
        }
    }

    /// Direct transcription of NUMERICS.md, testing every tap (the slow way).
    #[allow(clippy::too_many_arguments)]
    fn naive(
        win: Window,
        x: &[i8],
        s: Shape,
        z_x: i8,
        w: &[i8],
        z_w: i8,
        bias: &[i32],
        o: Shape,
    ) -> Vec<i64> {
        let (kh, kw, ci) = (win.kernel_h as i64, win.kernel_w as i64, s.c as i64);
        let mut out = vec![0i64; (o.h as usize) * (o.w as usize) * (o.c as usize)];
        for oy in 0..o.h as i64 {
            for ox in 0..o.w as i64 {
                for co in 0..o.c as i64 {
                    let mut acc = bias[co as usize] as i64;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = oy * win.stride_h as i64 - win.padding.top as i64
                                + ky * win.dilation_h as i64;
                            let ix = ox * win.stride_w as i64 - win.padding.left as i64
                                + kx * win.dilation_w as i64;
                            if iy < 0 || ix < 0 || iy >= s.h as i64 || ix >= s.w as i64 {
                                continue;
                            }
                            for c in 0..ci {
                                let xv = x[((iy * s.w as i64 + ix) * ci + c) as usize] as i64
                                    - z_x as i64;
                                let wv = w[(((co * kh + ky) * kw + kx) * ci + c) as usize] as i64
                                    - z_w as i64;
                                acc += xv * wv;
                            }
                        }
                    }
                    out[((oy * o.w as i64 + ox) * o.c as i64 + co) as usize] = acc;
                }
            }
        }
        out
    }

    /// `kernel` against the reference loop on case `t` with parameters `p`, output for output;
    /// a tensor too short is refused, not read past.
    fn matches_reference(
        case: u32,
        t: &Case,
        p: &ConvParams<'_>,
        kernel: fn(&ConvParams<'_>, &[i8], &mut [i8]) -> KernelResult,
    ) {
        let mut scratch = vec![0i8; t.filter_len()];
        let mut want = vec![0i8; t.output_len()];
        conv2d_reference(p, &t.x, &mut want, &mut scratch).unwrap();
        let mut got = vec![0i8; want.len()];
        kernel(p, &t.x, &mut got).unwrap();
        assert_eq!(got, want, "case {case}: {t}");
        if !t.x.is_empty() {
            assert!(kernel(p, &t.x[1..], &mut got).is_err());
        }
    }

    #[test]
    fn one_channel_3x3_by_hand() {
        // 3×3 input 1..9, all-ones 3×3 filter, pad 1: each output is the sum of its neighbourhood.
        let x: Vec<i8> = (1..=9).collect();
        let o = owned(&[1; 9], 8, &[0], &[ONE]);
        let s = Shape::new(3, 3, 1);
        let p = params(
            &o,
            8,
            WeightScheme::PerChannelSymmetric,
            0,
            Window::square(3, 1, 1, 1),
            s,
            0,
            s,
        );
        let mut y = [0i8; 9];
        conv2d(&p, &x, &mut y, &mut []).unwrap();
        assert_eq!(y, [12, 21, 16, 27, 45, 33, 24, 39, 28]);
    }

    #[test]
    fn padding_behaves_like_the_zero_point() {
        // z_x = 5: a padded cell contributes nothing, a real cell holding 5 contributes nothing.
        let x = [5i8, 7, 5, 5];
        let o = owned(&[1; 9], 8, &[100], &[ONE]);
        let s = Shape::new(2, 2, 1);
        let p = params(
            &o,
            8,
            WeightScheme::PerChannelSymmetric,
            0,
            Window::square(3, 1, 1, 1),
            s,
            5,
            s,
        );
        let mut y = [0i8; 4];
        conv2d(&p, &x, &mut y, &mut []).unwrap();
        assert_eq!(y, [102; 4]);
    }

    #[test]
    fn affine_weight_zero_point() {
        // 1×1 conv, 2 channels in, 1 out, z_w = 1, z_x = -1: (2−1)(3+1) + (−1−1)(0+1) = 2.
        let o = owned(&[2, -1], 8, &[0], &[ONE]);
        let s = Shape::new(1, 1, 2);
        let p = params(
            &o,
            8,
            WeightScheme::PerTensorAffine,
            1,
            Window::square(1, 1, 1, 0),
            s,
            -1,
            Shape::new(1, 1, 1),
        );
        let mut y = [0i8; 1];
        conv2d(&p, &[3, 0], &mut y, &mut []).unwrap();
        assert_eq!(y, [2]);
    }

    /// Random geometries (strides, dilations, asymmetric padding, all bit-widths, both schemes)
    /// against the naive loop, with M = 1 so any accumulator difference shows.
    #[test]
    fn matches_naive_on_random_geometries() {
        let mut rng = XorShift32::new(0x1234_5678u32);
        for case in 0..300 {
            let bits = pick(&mut rng, &[2u8, 4, 8]);
            // Mostly small kernels; every tenth case up to 16×16, past the tap-sum table.
            let kmax = if case % 10 == 0 { 16 } else { 4 };
            let k = 1 + rng.below(kmax) as u8;
            let kw = 1 + rng.below(kmax) as u8;
            let dil = 1 + rng.below(3) as u8;
            let dil_w = 1 + rng.below(3) as u8;
            let win = window(&mut rng, (k, kw), (dil, dil_w));
            let cin = 1 + rng.below(5) as u16;
            let s = Shape::new(1 + rng.below(7) as u16, 1 + rng.below(7) as u16, cin);
            let cout = 1 + rng.below(4) as u16;
            let Some(os) = output_shape(win, s, cout) else {
                continue;
            };
            let lo = -(1i32 << (bits - 1));
            let span = 1u32 << bits;
            let n_w = cout as usize * k as usize * kw as usize * s.c as usize;
            let w: Vec<i8> = (0..n_w)
                .map(|_| (lo + rng.below(span) as i32) as i8)
                .collect();
            let affine = case % 2 == 0;
            let z_w = if affine {
                (lo + rng.below(span) as i32) as i8
            } else {
                0
            };
            let z_x = byte(&mut rng);
            let x = bytes(&mut rng, s.h as usize * s.w as usize * s.c as usize);
            let bias: Vec<i32> = (0..cout).map(|_| rng.below(2001) as i32 - 1000).collect();
            let expect = naive(win, &x, s, z_x, &w, z_w, &bias, os);
            // Shift so outputs stay well inside i8: M = 2^-10 at most; compare against MBQM of
            // the naive accumulator computed in i64 (which fits i32 for these sizes).
            let rq = [(1 << 30, -9i8)];
            let (scheme, rq): (_, Vec<(i32, i8)>) = if affine {
                (WeightScheme::PerTensorAffine, rq.to_vec())
            } else {
                (
                    WeightScheme::PerChannelSymmetric,
                    (0..cout)
                        .map(|c| (1 << 30 | (c as i32) << 20, -(c as i8) - 5))
                        .collect(),
                )
            };
            let o = owned(&w, bits, &bias, &rq);
            let mut p = params(&o, bits, scheme, z_w, win, s, z_x, os);
            p.output_zero_point = 3;
            let mut scratch = vec![0i8; k as usize * kw as usize * s.c as usize];
            let mut y = vec![0i8; expect.len()];
            conv2d(&p, &x, &mut y, &mut scratch).unwrap();
            for (i, (&got, &acc)) in y.iter().zip(&expect).enumerate() {
                let co = i % cout as usize;
                let (m, e) = rq[if affine { 0 } else { co }];
                let want = requantize(acc as i32, m, e as i32, 3, p.clamp, Rounding::Double);
                assert_eq!(got, want, "case {case} index {i} acc {acc}");
            }
        }
    }

    /// Kernels past the 7×7 of format 1.0, on both sides of the tap-sum table: the DS-CNN's
    /// first layer (10×4, stride 2, SAME padding 4/5 rows and 1/2 columns on 49×10×1), a 16×16
    /// and a dilated 9×12, with an input zero point so `z_x·Σ_valid w` matters, in every
    /// weight bit-width, against the naive loop with M = 1.
    #[test]
    fn large_kernels_match_naive() {
        let cases = [
            (
                Window {
                    kernel_h: 10,
                    kernel_w: 4,
                    stride_h: 2,
                    stride_w: 2,
                    dilation_h: 1,
                    dilation_w: 1,
                    padding: shared_format::Padding {
                        top: 4,
                        left: 1,
                        bottom: 5,
                        right: 2,
                    },
                },
                Shape::new(49, 10, 1),
                Shape::new(25, 5, 3),
            ),
            (
                Window::square(16, 1, 1, 8),
                Shape::new(5, 6, 2),
                Shape::new(6, 7, 2),
            ),
            (
                Window {
                    kernel_h: 9,
                    kernel_w: 12,
                    dilation_h: 2,
                    dilation_w: 1,
                    ..Window::square(1, 1, 1, 0)
                },
                Shape::new(20, 13, 2),
                Shape::new(4, 2, 2),
            ),
        ];
        let mut v = 7i32;
        let mut next = |span: i32| {
            v = (v * 1103 + 12345) % 65521;
            v % span
        };
        for (win, s, os) in cases {
            assert_eq!(win.output_h(s.h as u32), Some(os.h as u32));
            assert_eq!(win.output_w(s.w as u32), Some(os.w as u32));
            for bits in [2u8, 4, 8] {
                let per_channel = win.kernel_h as usize * win.kernel_w as usize * s.c as usize;
                // Sparse weights and inputs near z_x keep the accumulators inside i8, so M = 1
                // compares them exactly; z_x·Σ_valid w (Σ w·x − z_x·Σ w) is still large.
                let z_x = -37;
                let w: Vec<i8> = (0..per_channel * os.c as usize)
                    .map(|_| match next(6) {
                        0 => (next(4) - 2) as i8, // in every bit-width's range
                        _ => 0,
                    })
                    .collect();
                let x: Vec<i8> = (0..s.h as usize * s.w as usize * s.c as usize)
                    .map(|_| (z_x as i32 + next(7) - 3) as i8)
                    .collect();
                let bias = [5, -7, 11][..os.c as usize].to_vec();
                let expect = naive(win, &x, s, z_x, &w, 0, &bias, os);
                let o = owned(&w, bits, &bias, &[ONE]);
                let p = ConvParams {
                    clamp: Clamp {
                        min: i8::MIN,
                        max: i8::MAX,
                    },
                    ..params(
                        &o,
                        bits,
                        WeightScheme::PerChannelSymmetric,
                        0,
                        win,
                        s,
                        z_x,
                        os,
                    )
                };
                let mut scratch = vec![0i8; per_channel];
                let mut y = vec![0i8; expect.len()];
                conv2d(&p, &x, &mut y, &mut scratch).unwrap();
                let mut unsaturated = 0;
                for (i, (&got, &acc)) in y.iter().zip(&expect).enumerate() {
                    let want = acc.clamp(i8::MIN as i64, i8::MAX as i64) as i8;
                    assert_eq!(got, want, "{win:?} W{bits} index {i} acc {acc}");
                    unsaturated += usize::from(acc == want as i64);
                }
                assert!(
                    unsaturated * 10 >= y.len() * 9,
                    "{unsaturated} of {}",
                    y.len()
                );
            }
        }
    }

    /// The Armv7E-M kernel (here on the portable model of its instructions) against the
    /// reference kernel, output for output: random geometries (strides, row dilation, asymmetric
    /// padding, kernels up to 10×4), channel counts on both sides of the 4-channel groups and
    /// the 16-channel blocks, C_in with and without whole words, all zero points and both
    /// roundings, symmetric and affine weights. It refuses what it does not handle (sub-byte
    /// weights, column dilation) instead of computing it wrongly.
    #[test]
    fn blocked_kernel_matches_reference() {
        let mut rng = XorShift32::new(0x5EED_1234u32);
        let mut checked = 0;
        for case in 0..500 {
            let kernel = if case % 7 == 0 {
                (10, 4)
            } else {
                (1 + rng.below(4) as u8, 1 + rng.below(4) as u8)
            };
            let dil_h = 1 + rng.below(2) as u8;
            let cin = pick(&mut rng, &[1u16, 2, 3, 4, 8, 12, 16, 5]);
            let cout = pick(&mut rng, &[1u16, 2, 3, 4, 5, 7, 8, 16, 17, 20, 33]);
            let spec = Spec {
                dilation: (dil_h, 1),
                side: 9,
                codes: Codes::Uniform,
                shifts: (-15, -4),
                // Every third case per-tensor affine, with a zero point anywhere in range.
                affine: case % 3 == 0,
                ..Spec::conv(8, kernel, cin, cout)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let mut p = t.params();
            if case % 5 == 0 {
                p.clamp = Clamp { min: 0, max: 100 };
            }
            let mut want = vec![0i8; t.output_len()];
            conv2d_reference(&p, &t.x, &mut want, &mut []).unwrap();
            // Every instruction set this CPU can run the kernel with (x86-64: SSE2 and AVX2).
            crate::ops::each_isa(|isa| {
                let mut got = vec![0i8; want.len()];
                conv2d_blocked(&p, &t.x, &mut got).unwrap();
                assert_eq!(got, want, "{isa} case {case}: {t}");
            });
            checked += 1;
        }
        assert!(checked > 300, "{checked}");

        // Refused, not miscomputed: sub-byte weights, column dilation.
        let o = owned(&[1; 8], 8, &[0, 0], &[ONE, ONE]);
        let s = Shape::new(2, 2, 2);
        let p = params(
            &o,
            8,
            WeightScheme::PerTensorAffine,
            1,
            Window::square(1, 1, 1, 0),
            s,
            0,
            s,
        );
        assert!(blocked_eligible(&p));
        let p = ConvParams {
            window: Window {
                dilation_w: 2,
                ..Window::square(1, 1, 1, 0)
            },
            weights: Weights {
                zero_point: 0,
                ..p.weights
            },
            ..p
        };
        assert!(!blocked_eligible(&p));
        assert!(conv2d_blocked(&p, &[0; 8], &mut [0; 8]).is_err());
        let p = ConvParams {
            window: Window::square(1, 1, 1, 0),
            weights: Weights {
                bits: 4,
                ..p.weights
            },
            ..p
        };
        assert!(!blocked_eligible(&p));
        assert_eq!(
            unpacked_eligible(&p),
            cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
        );
    }

    /// The pointwise kernel (here on the portable model of its instructions) against the
    /// reference kernel, output for output: 1×1 convolutions with strides 1 and 2, C_in from 8 to
    /// its limit, every weight width with symmetric and affine weights (zero points at the ends
    /// of their range), input zero points at −128/127, output clamps of all 8-, 4- and 2-bit
    /// codes, and shifts from −24 to +16 (right shifts below 32 scaled into the table, or
    /// refused when the bound does not allow it). What it refuses it leaves untouched.
    #[test]
    fn pointwise_kernel_matches_reference() {
        let mut rng = XorShift32::new(0x0901_17E5);
        let (mut fast, mut refused, mut scaled, mut double) = (0, 0, 0, 0);
        for case in 0..900 {
            let bits = pick(&mut rng, &[2u8, 4, 8]);
            // Double rounding (a third of the cases) takes 8-bit outputs only.
            let k = if case % 3 == 0 {
                8
            } else {
                pick(&mut rng, &[2u32, 4, 8])
            };
            let stride = 1 + rng.below(2) as u8;
            let win = Window {
                stride_h: stride,
                stride_w: 1 + rng.below(2) as u8,
                ..Window::square(1, 1, 1, 0)
            };
            let cin = pick(&mut rng, &[8u16, 16, 24, 32, 64, 120]);
            let s = input_shape(&mut rng, 6, cin);
            let cout = pick(&mut rng, &[4u16, 8, 12, 16, 32, 44]);
            let Some(os) = output_shape(win, s, cout) else {
                continue;
            };
            let w = end_codes(&mut rng, bits, cout as usize * cin as usize);
            let x: Vec<i8> = (0..s.h as usize * s.w as usize * cin as usize)
                .map(|_| match rng.below(8) {
                    0 => -128,
                    1 => 127,
                    _ => byte(&mut rng),
                })
                .collect();
            let z_x = zero_point(&mut rng);
            let span = pick(&mut rng, &[100, 1_000, 100_000, 2_000_000_000]);
            let bias: Vec<i32> = (0..cout)
                .map(|_| (rng.below(2 * span + 1) as i64 - span as i64) as i32)
                .collect();
            let per_channel = case % 2 == 1;
            // Mostly the shifts of trained nets (−12..=2), some anywhere in −24..=16.
            let wide = rng.below(4) == 0;
            let rq: Vec<(i32, i8)> = (0..if per_channel { cout } else { 1 })
                .map(|_| {
                    let shift = if wide {
                        rng.below(41) as i8 - 24
                    } else {
                        rng.below(15) as i8 - 12
                    };
                    ((1 << 30) | rng.below(1 << 30) as i32, shift)
                })
                .collect();
            let o = owned(&w, bits, &bias, &rq);
            let (scheme, z_w) = if per_channel {
                (WeightScheme::PerChannelSymmetric, 0)
            } else {
                (
                    WeightScheme::PerTensorAffine,
                    weight_zero_point(&mut rng, bits),
                )
            };
            let mut p = params(&o, bits, scheme, z_w, win, s, z_x, os);
            let lim = 1i32 << (k - 1);
            p.clamp = Clamp {
                min: -lim as i8,
                max: (lim - 1) as i8,
            };
            p.output_zero_point = (rng.below(2 * lim as u32) as i32 - lim) as i8;
            // A third at double rounding (TFLM's imports).
            p.rounding = if case % 3 == 0 {
                Rounding::Double
            } else {
                Rounding::Single
            };
            let mut scratch = vec![0i8; cin as usize];
            let mut want = vec![0i8; os.h as usize * os.w as usize * cout as usize];
            conv2d_reference(&p, &x, &mut want, &mut scratch).unwrap();
            let mut got = vec![55i8; want.len()];
            match conv2d_pointwise(&p, &x, &mut got) {
                Some(r) => {
                    r.unwrap();
                    assert_eq!(
                        got, want,
                        "case {case}: W{bits} K{k} {win:?} {s:?} -> {os:?} z_x {z_x} z_w {z_w} rq {rq:?}"
                    );
                    fast += 1;
                    scaled += usize::from(rq.iter().any(|r| r.1 >= -1));
                    double += usize::from(p.rounding == Rounding::Double);
                }
                None => {
                    assert!(
                        got.iter().all(|&v| v == 55),
                        "case {case} wrote while refusing"
                    );
                    refused += 1;
                }
            }
        }
        assert!(
            fast > 300 && refused > 20 && scaled > 100 && double > 40,
            "{fast} fast ({scaled} scaled, {double} double), {refused} refused"
        );

        // Refused on its shape: padding, a 3×3 kernel, C_in not a multiple of 8, a ReLU clamp,
        // double rounding with a narrower clamp or a shift of 0.
        let o = owned(&[1; 64], 8, &[0; 8], &[(1 << 30, -8)]);
        let s = Shape::new(2, 2, 8);
        let base = ConvParams {
            rounding: Rounding::Single,
            ..params(
                &o,
                8,
                WeightScheme::PerChannelSymmetric,
                0,
                Window::square(1, 1, 1, 0),
                s,
                0,
                s,
            )
        };
        let x = [1i8; 32];
        let mut y = [0i8; 32];
        assert!(conv2d_pointwise(&base, &x, &mut y).is_some());
        let padded = ConvParams {
            window: Window::square(1, 1, 1, 1),
            output_shape: Shape::new(4, 4, 8),
            ..base
        };
        assert!(conv2d_pointwise(&padded, &x, &mut [0; 128]).is_none());
        let relu = ConvParams {
            clamp: Clamp { min: 0, max: 127 },
            ..base
        };
        assert!(conv2d_pointwise(&relu, &x, &mut y).is_none());
        let double = ConvParams {
            rounding: Rounding::Double,
            ..base
        };
        assert!(conv2d_pointwise(&double, &x, &mut y).is_some());
        let double_relu = ConvParams {
            clamp: Clamp { min: 0, max: 127 },
            ..double
        };
        assert!(conv2d_pointwise(&double_relu, &x, &mut y).is_none());
        let o_unit = owned(&[1; 64], 8, &[0; 8], &[(1 << 30, 0)]);
        let double_unit = ConvParams {
            requant: params(
                &o_unit,
                8,
                WeightScheme::PerChannelSymmetric,
                0,
                Window::square(1, 1, 1, 0),
                s,
                0,
                s,
            )
            .requant,
            ..double
        };
        assert!(conv2d_pointwise(&double_unit, &x, &mut y).is_none());
        let narrow = ConvParams {
            input_shape: Shape::new(2, 2, 4),
            ..base
        };
        assert!(conv2d_pointwise(&narrow, &x[..16], &mut y).is_none());
        // Short tensors are errors, not panics.
        assert!(matches!(
            conv2d_pointwise(&base, &x[..31], &mut y),
            Some(Err(_))
        ));
    }

    /// 2- and 4-bit weights through the dispatcher (on x86-64 the unpacked-block kernel, see
    /// [`unpacked_eligible`]) against the reference loop, output for output: codes piled on the
    /// ends of their range, symmetric and affine weights with the weight zero point at those
    /// ends (filters centred on it as they are unpacked) and far past them (not centred), input
    /// zero points at −128/127, strides, row dilation, asymmetric padding, channel counts on both
    /// sides of the 4-channel groups, and filters from 1 byte to past the 4-filter limit (so that
    /// blocks of 4..=64 channels, several blocks per call, and the fallback to the reference loop
    /// all occur), both roundings.
    #[test]
    fn sub_byte_kernel_matches_reference() {
        let mut rng = XorShift32::new(0x5B_B17E);
        let (mut checked, mut unpacked) = (0, 0);
        let (mut centred, mut centred_too_far) = (0, 0);
        for case in 0..400 {
            let bits = pick(&mut rng, &[2u8, 4]);
            let kernel = match case % 9 {
                0 => (1, 1),
                1 => (3, 3),
                _ => (1 + rng.below(4) as u8, 1 + rng.below(4) as u8),
            };
            let dil_h = 1 + rng.below(2) as u8;
            // Every tenth case dilated along the width: not eligible, reference loop.
            let dil_w = if case % 10 == 9 { 2 } else { 1 };
            let cin = pick(&mut rng, &[1u16, 3, 4, 8, 16, 17, 32, 64, 130, 300]);
            let cout = pick(&mut rng, &[1u16, 3, 4, 5, 8, 17, 33, 64, 70]);
            let spec = Spec {
                dilation: (dil_h, dil_w),
                side: if cin > 32 { 5 } else { 8 },
                affine: case % 2 == 0,
                ..Spec::conv(bits, kernel, cin, cout)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let mut p = t.params();
            // Now and then a weight zero point far outside the codes' range (a valid blob may
            // hold one): codes less it no longer fit a byte, so the filters are not centred.
            if case % 6 == 4 {
                p.weights.zero_point = pick(&mut rng, &[-128i8, 127, -100, 90]);
                centred_too_far += usize::from(!centred_codes_fit(bits, p.weights.zero_point));
            }
            let mut scratch = vec![0i8; t.filter_len()];
            let mut want = vec![0i8; t.output_len()];
            conv2d_reference(&p, &t.x, &mut want, &mut scratch).unwrap();
            crate::ops::each_isa(|isa| {
                let mut got = vec![0i8; want.len()];
                conv2d(&p, &t.x, &mut got, &mut scratch).unwrap();
                assert_eq!(got, want, "{isa} case {case}: {t}");
            });
            checked += 1;
            unpacked += usize::from(unpacked_eligible(&p));
            centred += usize::from(
                unpacked_eligible(&p)
                    && p.weights.zero_point != 0
                    && centred_codes_fit(bits, p.weights.zero_point),
            );
        }
        assert!(checked > 250, "{checked}");
        assert!(centred_too_far > 20, "{centred_too_far}");
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert!(unpacked > 150, "{unpacked}");
            assert!(centred > 50, "{centred}");
        }
    }

    /// The row-chunk kernel for 4- and 2-bit filters too large for the unpacked block
    /// (`conv2d_row_blocks`, Armv7E-M), on its host model: random geometries (7×7 over 16 and 32
    /// channels, chunks of one or more kernel rows, strips past [`ROW_STRIP`] pixels, padding
    /// cutting whole chunks off, a last group of fewer than four channels, dilated rows), both
    /// weight schemes with every zero point, both roundings, against the reference loop.
    #[test]
    fn row_blocks_kernel_matches_reference() {
        let mut rng = XorShift32::new(0x0A_77C5);
        let mut checked = 0;
        for case in 0..160 {
            let bits = pick(&mut rng, &[2u8, 4]);
            let (kh, kw) = match case % 4 {
                0 => (7, 7),
                1 => (3, 3),
                _ => (1 + rng.below(7) as u8, 1 + rng.below(7) as u8),
            };
            let cin = pick(&mut rng, &[3u16, 8, 16, 17, 32, 36]);
            let cout = pick(&mut rng, &[1u16, 4, 5, 8, 11, 16]);
            let spec = Spec {
                dilation: (if case % 5 == 4 { 2 } else { 1 }, 1),
                side: 14,
                affine: case % 2 == 0,
                ..Spec::conv(bits, (kh, kw), cin, cout)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let p = t.params();
            let eligible = row_blocks_eligible(&p);
            assert_eq!(
                eligible,
                (kh, kw) != (1, 1) && 4 * kw as usize * cin as usize <= UNPACKED_FILTERS_DSP,
                "case {case}"
            );
            if !eligible {
                continue;
            }
            matches_reference(case, &t, &p, conv2d_row_blocks);
            checked += 1;
        }
        assert!(checked > 80, "{checked}");
    }
    /// The wide kernel (`conv2d_wide`, Armv7E-M), on its host model: random geometries (one
    /// chunk, chunks of kernel rows, chunks of taps of one row, strips past [`WIDE_STRIP`]
    /// pixels, padding cutting whole chunks off, a last group of fewer than four channels,
    /// dilated rows), 8-, 4- and 2-bit weights, both weight schemes, both roundings, against the
    /// reference loop.
    #[test]
    fn wide_kernel_matches_reference() {
        let mut rng = XorShift32::new(0x0B_1DE5);
        let mut checked = 0;
        for case in 0..200 {
            let bits = pick(&mut rng, &[2u8, 4, 8, 8]);
            let kernel = match case % 4 {
                0 => (3, 3),
                1 => (1, 1),
                _ => (1 + rng.below(7) as u8, 1 + rng.below(7) as u8),
            };
            let cin = pick(&mut rng, &[3u16, 4, 8, 12, 16, 32, 64, 68, 200, 204]);
            let cout = pick(&mut rng, &[1u16, 4, 5, 8, 11, 16]);
            let spec = Spec {
                dilation: (if case % 5 == 4 { 2 } else { 1 }, 1),
                side: 12,
                affine: case % 2 == 0,
                ..Spec::conv(bits, kernel, cin, cout)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let mut p = t.params();
            if case % 3 == 0 {
                // Not the whole int8 range: the generic stage, not the fused one.
                p.clamp = Clamp {
                    min: -100,
                    max: 100,
                };
            } else if case % 3 == 1 && case % 2 == 1 {
                // All 4- or 2-bit codes (sub-byte activations): single rounding's fused stage.
                let lim = if case % 4 == 1 { 8 } else { 2 };
                p.clamp = Clamp {
                    min: -lim,
                    max: lim - 1,
                };
            }
            let eligible = wide_eligible(&p);
            assert_eq!(eligible, cin.is_multiple_of(4) && cin <= 200, "case {case}");
            if !eligible {
                continue;
            }
            matches_reference(case, &t, &p, conv2d_wide);
            checked += 1;
        }
        assert!(checked > 80, "{checked}");
    }

    /// A TFLite-style RGB stem (3×3 over 3 channels, padding 1, double rounding, the whole int8
    /// range) takes the narrow fused stages ([`narrow_stages`]), and its outputs through the
    /// im2col kernel (interior pixels' shortcut and border pixels) are the reference's; a bias
    /// past the narrow bound falls back to the general fused stage, with the same outputs.
    #[test]
    fn stem_takes_the_narrow_stages() {
        let mut rng = XorShift32::new(0x57E4_0001);
        let mut rnd = |n: u32| rng.below(n);
        let (cin, cout) = (3u16, 16u16);
        let s = Shape::new(10, 9, cin);
        let win = Window::square(3, 1, 1, 1);
        let os = Shape::new(10, 9, cout);
        let w: Vec<i8> = (0..cout as usize * 27)
            .map(|_| rnd(256) as u8 as i8)
            .collect();
        let x: Vec<i8> = (0..s.h as usize * s.w as usize * 3)
            .map(|_| rnd(256) as u8 as i8)
            .collect();
        for big in [false, true] {
            let bias: Vec<i32> = (0..cout)
                .map(|c| {
                    if big && c == 5 {
                        1 << 30
                    } else {
                        rnd(40_001) as i32 - 20_000
                    }
                })
                .collect();
            let rq: Vec<(i32, i8)> = (0..cout)
                .map(|_| ((1 << 30) | rnd(1 << 30) as i32, -(rnd(12) as i8) - 1))
                .collect();
            let o = owned(&w, 8, &bias, &rq);
            let mut p = params(
                &o,
                8,
                WeightScheme::PerChannelSymmetric,
                0,
                win,
                s,
                -128,
                os,
            );
            p.output_zero_point = rnd(256) as u8 as i8;
            assert!(im2col_eligible(&p));
            assert!(narrow_stages(&p, 0, 4).is_some());
            assert_eq!(narrow_stages(&p, 4, 4).is_some(), !big);
            assert!(double_stages(&p, 4, 4).is_some());
            let mut scratch = vec![0i8; 27];
            let mut want = vec![0i8; os.h as usize * os.w as usize * cout as usize];
            conv2d_reference(&p, &x, &mut want, &mut scratch).unwrap();
            let mut got = vec![0i8; want.len()];
            conv2d_im2col(&p, &x, &mut got).unwrap();
            assert_eq!(got, want, "big bias {big}");
        }
    }

    /// The gathered-window kernel (`conv2d_im2col`, Armv7E-M), on its host model: random
    /// geometries (`C_in` not a multiple of 4, filters padded to a word, strips of pixels,
    /// blocks of groups past the table, dilated rows and columns, padding), 8-, 4- and 2-bit
    /// weights, both weight schemes, both roundings, against the reference loop.
    #[test]
    fn im2col_kernel_matches_reference() {
        let mut rng = XorShift32::new(0x1A_2C01);
        let mut checked = 0;
        for case in 0..200 {
            let bits = pick(&mut rng, &[2u8, 4, 8, 8]);
            let kernel = match case % 4 {
                0 => (3, 3),
                1 => (1, 1),
                _ => (1 + rng.below(5) as u8, 1 + rng.below(5) as u8),
            };
            let dil_w = if case % 7 == 6 { 2 } else { 1 };
            let dil_h = if case % 5 == 4 { 2 } else { 1 };
            let cin = pick(&mut rng, &[1u16, 2, 3, 3, 5, 6, 7, 9, 13, 15]);
            let cout = pick(&mut rng, &[1u16, 4, 5, 8, 11, 16, 32, 37]);
            let spec = Spec {
                dilation: (dil_h, dil_w),
                side: 12,
                affine: case % 2 == 0,
                ..Spec::conv(bits, kernel, cin, cout)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let mut p = t.params();
            if case % 3 == 0 {
                // Not the whole int8 range: the generic stage, not the fused one.
                p.clamp = Clamp {
                    min: -100,
                    max: 100,
                };
            }
            let eligible = im2col_eligible(&p);
            assert_eq!(
                eligible,
                t.filter_len().next_multiple_of(4) <= 128,
                "case {case}"
            );
            assert!(!wide_eligible(&p));
            if !eligible {
                continue;
            }
            matches_reference(case, &t, &p, conv2d_im2col);
            checked += 1;
        }
        assert!(checked > 80, "{checked}");
    }

    /// The padded-band kernel (`conv2d_band`, Armv7E-M), on its host model: random geometries
    /// (`C_in` not a multiple of 4, kernel rows padded to a word, strides, padding, rows of the
    /// band past the input, strips of an output row), 8-, 4- and 2-bit weights, both weight
    /// schemes, both roundings, whole and narrow clamps, against the reference loop; and a
    /// 32×32 7×7 RGB stem (the largest band and table it keeps).
    #[test]
    fn band_kernel_matches_reference() {
        let mut rng = XorShift32::new(0xBA_4D01);
        let mut checked = 0;
        for case in 0..240 {
            let bits = pick(&mut rng, &[2u8, 4, 8]);
            let kernel = pick(
                &mut rng,
                &[(7u8, 7u8), (5, 5), (7, 3), (3, 5), (6, 4), (3, 3)],
            );
            let cin = pick(&mut rng, &[1u16, 2, 3, 3, 5, 6, 7]);
            let cout = pick(&mut rng, &[1u16, 4, 5, 8, 16, 17]);
            let spec = Spec {
                side: if case % 10 == 9 { 40 } else { 12 },
                affine: case % 2 == 0,
                ..Spec::conv(bits, kernel, cin, cout)
            };
            let Some(t) = Case::draw(&mut rng, &spec) else {
                continue;
            };
            let mut p = t.params();
            let k = [8u32, 4, 2, 0][case as usize % 4];
            if k > 0 {
                let lim = 1i32 << (k - 1);
                p.clamp = Clamp {
                    min: -lim as i8,
                    max: (lim - 1) as i8,
                };
            } else {
                p.clamp = Clamp {
                    min: -100,
                    max: 100,
                };
            }
            if !band_eligible(&p) {
                continue;
            }
            matches_reference(case, &t, &p, conv2d_band);
            checked += 1;
        }
        assert!(checked > 100, "{checked}");
        // The stem: 7×7 over 3 channels of a 32×32 input, padding 3, 2-bit weights.
        let spec = Spec::conv(2, (7, 7), 3, 16);
        let mut t = loop {
            if let Some(t) = Case::draw(&mut rng, &spec) {
                break t;
            }
        };
        t.win = Window::square(7, 1, 1, 3);
        t.s = Shape::new(32, 32, 3);
        t.os = Shape::new(32, 32, 16);
        t.x = (0..32 * 32 * 3).map(|_| byte(&mut rng)).collect();
        let p = t.params();
        assert!(band_eligible(&p) && !im2col_eligible(&p) && !wide_eligible(&p));
        matches_reference(0, &t, &p, conv2d_band);
    }
}
