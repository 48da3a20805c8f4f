//! Ops that write their output over a dying input (format 1.6, `shared_format::plan::in_place`):
//! the memory plan gives such an output its input's bytes, so the arena holds the pair once.
//!
//! Both run the ordinary kernels, unchanged, on pieces small enough to keep aside in the op's
//! scratch (after the kernel's own scratch, sized by `shared_format::plan::in_place_scratch`):
//!
//! - an add copies a chunk of the input it overwrites aside, then adds that chunk into place;
//! - a stride-1 convolution (or depthwise convolution) whose output has its input's rows and row
//!   bytes computes bands of output rows as sub-convolutions (the input rows a band reads, with
//!   the padding the band sees) into scratch, and copies each finished row back over the input
//!   row of the same index as soon as no later band reads that row: `pad_top` rows behind the
//!   band, since output row `y` reads input rows from `y − pad_top` on.
//!
//! Each output value is computed from the same input values by the same kernel as without the
//! aliasing, so the results are bit-exact.

use shared_format::Window;

use crate::ops::add::{AddParams, add};
use crate::ops::conv::{ConvParams, conv2d};
use crate::ops::depthwise::depthwise_conv2d;
use crate::ops::{KernelError, KernelResult};

/// Which kernel a band runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// [`conv2d`].
    Conv,
    /// [`depthwise_conv2d`].
    Depthwise,
}

/// Adds into the bytes of one input: `x1`/`x2` are the inputs, `None` for the one that
/// `tensor` holds (both, for `x + x`); `chunk` is the scratch a chunk is copied aside into.
pub(crate) fn add_in_place(
    p: &AddParams,
    x1: Option<&[i8]>,
    x2: Option<&[i8]>,
    tensor: &mut [i8],
    chunk: &mut [i8],
) -> KernelResult {
    let step = chunk.len();
    if step == 0 && !tensor.is_empty() {
        return Err(KernelError("in-place add without scratch"));
    }
    let mut start = 0;
    while start < tensor.len() {
        let end = tensor.len().min(start + step);
        let n = end - start;
        let out = tensor
            .get_mut(start..end)
            .ok_or(KernelError("in-place add range"))?;
        let held = chunk
            .get_mut(..n)
            .ok_or(KernelError("in-place add chunk"))?;
        held.copy_from_slice(out);
        let held: &[i8] = held;
        let lengths = KernelError("add operand lengths differ");
        let a = match x1 {
            Some(x) => x.get(start..end).ok_or(lengths)?,
            None => held,
        };
        let b = match x2 {
            Some(x) => x.get(start..end).ok_or(lengths)?,
            None => held,
        };
        add(p, a, b, out)?;
        start = end;
    }
    Ok(())
}

/// Runs a convolution whose output overwrites its input `tensor` (validated: stride 1 along
/// the height, as many rows and bytes per row as the input), `rows` output rows at a time
/// (`shared_format::plan::band_rows`) through `band` (at least `min(rows + pad_top, H)` rows);
/// `kernel_scratch` is the kernel's own.
pub(crate) fn conv_in_place(
    p: &ConvParams<'_>,
    kernel: Kernel,
    rows: usize,
    tensor: &mut [i8],
    kernel_scratch: &mut [i8],
    band: &mut [i8],
) -> KernelResult {
    let geometry = KernelError("in-place convolution geometry");
    let (x, y, w) = (p.input_shape, p.output_shape, p.window);
    let h = x.h as usize;
    let row = x.w as usize * x.c as usize;
    if y.h != x.h || y.w as usize * y.c as usize != row || w.stride_h != 1 || w.kernel_h == 0 {
        return Err(geometry);
    }
    if h.checked_mul(row) != Some(tensor.len()) {
        return Err(geometry);
    }
    let eff = (w.kernel_h as usize - 1) * w.dilation_h as usize + 1;
    let pad_top = w.padding.top as usize;
    if rows == 0 {
        return Err(geometry);
    }
    if band.len() < (rows + pad_top).min(h) * row {
        return Err(KernelError("in-place band scratch"));
    }
    // Rows [0, done) hold output; the output rows [done, r0) are pending in `band`.
    let (mut done, mut r0) = (0usize, 0usize);
    while r0 < h {
        let r1 = h.min(r0 + rows);
        // The input rows the band reads, and the padding it sees in their coordinates.
        let a = r0.saturating_sub(pad_top);
        let b = h.min((r1 + eff).saturating_sub(1 + pad_top));
        let top = pad_top - (r0 - a);
        let bottom = (r1 - r0 + eff - 1)
            .checked_sub(b.checked_sub(a).ok_or(geometry)? + top)
            .ok_or(geometry)?;
        let sub = ConvParams {
            window: Window {
                padding: shared_format::Padding {
                    top: u8::try_from(top).map_err(|_| geometry)?,
                    bottom: u8::try_from(bottom).map_err(|_| geometry)?,
                    ..w.padding
                },
                ..w
            },
            input_shape: shared_format::Shape {
                h: u16::try_from(b - a).map_err(|_| geometry)?,
                ..x
            },
            output_shape: shared_format::Shape {
                h: u16::try_from(r1 - r0).map_err(|_| geometry)?,
                ..y
            },
            ..*p
        };
        let pending = r0 - done;
        let input = tensor.get(a * row..b * row).ok_or(geometry)?;
        let output = band
            .get_mut(pending * row..(r1 - done) * row)
            .ok_or(geometry)?;
        match kernel {
            Kernel::Conv => conv2d(&sub, input, output, kernel_scratch)?,
            Kernel::Depthwise => depthwise_conv2d(&sub, input, output, kernel_scratch)?,
        }
        // No later band reads input rows before r1 − pad_top: write those output rows back.
        let safe = if r1 == h {
            h
        } else {
            r1.saturating_sub(pad_top).max(done)
        };
        let n = (safe - done) * row;
        tensor
            .get_mut(done * row..safe * row)
            .ok_or(geometry)?
            .copy_from_slice(band.get(..n).ok_or(geometry)?);
        band.copy_within(n..(r1 - done) * row, 0);
        done = safe;
        r0 = r1;
    }
    Ok(())
}

#[cfg(test)]
#[path = "inplace_tests.rs"]
mod tests;
