//! The memory plan: where each activation lives in the arena and how much kernel scratch an op
//! may use. Both host and device compute these with this code, so they cannot disagree.
//!
//! The placement search (host only) is TFLM's `GreedyMemoryPlanner`: buffers sorted by size,
//! largest first, each put at the lowest offset that does not collide with an already placed
//! buffer whose lifetime intersects its own.

use crate::op::{Op, Window};
use crate::tensor::{Shape, TensorId, TensorRecord, TensorTable};

/// Arena offsets are multiples of this, so word-wide kernels can load activations aligned.
pub const ALIGN: u32 = 4;

/// Channels a depthwise kernel processes together: its inner loop is a multiply-accumulate over
/// this many consecutive channels of one tap (contiguous in both the NHWC input and the 1HWC
/// weights), and sub-byte weights are unpacked one such tile at a time.
pub const DEPTHWISE_TILE: usize = 32;

/// Scratch bytes `op` may use, none for 8-bit weights (read in place from the blob) or
/// weightless ops. For 2/4-bit weights: conv and linear, one output channel's unpacked filter
/// (`kh·kw·C_in`, `K`); depthwise, one tile of channels' unpacked filters,
/// `kh·kw·min(C, DEPTHWISE_TILE)` (288 bytes for a 3×3 kernel; 8,192 for the largest, 16×16,
/// which only sub-byte weights with such kernels pay). Softmax needs none: TFLM's kernel
/// recomputes each exponential rather than keeping them.
///
/// An op that writes its output over its input (see [`in_place`]) needs, after those bytes,
/// the in-place buffer of [`in_place_scratch`].
pub fn scratch_bytes(op: &Op<'_>, tensors: &TensorTable<'_>) -> u64 {
    let in_place = aliased_input(op, tensors)
        .and_then(|id| Some(in_place_scratch(op, tensors.get(id)?.shape)))
        .unwrap_or(0);
    kernel_scratch_bytes(op, tensors) + in_place
}

/// Scratch bytes of `op`'s kernel itself (the part before the in-place buffer).
pub fn kernel_scratch_bytes(op: &Op<'_>, tensors: &TensorTable<'_>) -> u64 {
    let Some(weights) = op.weights() else {
        return 0;
    };
    if weights.bits == 8 {
        return 0;
    }
    match op {
        Op::Conv2d(c) => {
            let cin = tensors.get(c.input).map_or(0, |t| t.shape.c as u64);
            c.window.kernel_h as u64 * c.window.kernel_w as u64 * cin
        }
        Op::DepthwiseConv2d(d) => {
            let c = tensors.get(d.input).map_or(0, |t| t.shape.c as u64);
            d.window.kernel_h as u64 * d.window.kernel_w as u64 * c.min(DEPTHWISE_TILE as u64)
        }
        Op::Linear(l) => tensors.get(l.input).map_or(0, |t| t.shape.elements()),
        _ => 0,
    }
}

/// Bytes of output rows an in-place convolution computes per call of its kernel (at least one
/// row): with a 512-byte row (32×32×16, ResNet-8's first stack) four rows, so eight calls.
pub const IN_PLACE_BAND_BYTES: u64 = 2048;

/// Fewest output pixels per band. Each call of a convolution kernel pays a setup in proportion
/// to its weights (widening or unpacking them: on a Cortex-M4 about as much as 5 to 12 output
/// pixels' work), so a band of 128 pixels or more keeps that overhead within a few per cent of
/// the op. A tensor whose bands would be narrower gets fewer, larger ones; where one band is
/// the whole tensor, running in place gains nothing and the planner keeps the plain plan
/// (DS-CNN's 25×5 maps: the pointwise convolutions' setup would cost a third more time).
pub const IN_PLACE_BAND_PIXELS: u64 = 128;

/// Bytes an in-place add needs to copy a chunk aside (the whole tensor when smaller); the
/// runtime uses all of the model's scratch, at least this, so fewer, larger chunks.
pub const IN_PLACE_ADD_CHUNK: u64 = 2048;

/// The format minor version that introduced in-place ops (see [`crate::FORMAT_MINOR`]).
pub const IN_PLACE_MINOR: u16 = 6;

/// Whether `op` may write its output `y` over the bytes of its input `x` (tensor `x_id`),
/// provided `x` dies at this op (no later op reads it): the geometric half of the rule; the
/// memory plan's half (same offset, `x`'s last op is this one) is the caller's.
///
/// - [`Op::Add`]: `x` is one of its inputs and has the output's shape: element `i` of the
///   output depends only on element `i` of each input.
/// - [`Op::Conv2d`] and [`Op::DepthwiseConv2d`]: `x` is its input, vertical stride 1, and the
///   output has the input's rows and bytes per row. The runtime then computes bands of output
///   rows into scratch and writes each row back over the input row of the same index once no
///   later row reads it (`pad_top` rows later).
///
/// Pure comparisons, so it is safe on parameters validation has not looked at yet.
pub fn in_place(op: &Op<'_>, x_id: TensorId, x: &TensorRecord, y: &TensorRecord) -> bool {
    if x.bytes() != y.bytes() {
        return false;
    }
    let rows = |w: &Window| {
        w.stride_h == 1
            && x.shape.h == y.shape.h
            && x.shape.w as u64 * x.shape.c as u64 == y.shape.w as u64 * y.shape.c as u64
    };
    match op {
        Op::Add(a) => a.inputs.iter().any(|i| i.tensor == x_id) && x.shape == y.shape,
        Op::Conv2d(c) => c.input == x_id && rows(&c.window),
        Op::DepthwiseConv2d(d) => d.input == x_id && rows(&d.window),
        _ => false,
    }
}

/// The input whose bytes `op`'s output occupies (same offset and size), if any: in a validated
/// blob, the input it writes over in place.
pub fn aliased_input(op: &Op<'_>, tensors: &TensorTable<'_>) -> Option<TensorId> {
    let y = tensors.get(op.output())?;
    op.inputs().iter().copied().find(|&id| {
        tensors
            .get(id)
            .is_some_and(|x| x.offset == y.offset && x.bytes() == y.bytes())
    })
}

/// Output rows per band of an in-place convolution over `shape` (at least 1, at most `h`).
pub fn band_rows(shape: Shape) -> u64 {
    let row = shape.w as u64 * shape.c as u64;
    let by_bytes = IN_PLACE_BAND_BYTES / row.max(1);
    let by_pixels = IN_PLACE_BAND_PIXELS.div_ceil((shape.w as u64).max(1));
    by_bytes.max(by_pixels).clamp(1, (shape.h as u64).max(1))
}

/// Scratch bytes `op` needs to write its output over its input of shape `x` in place: for a
/// convolution one band of output rows plus the `pad_top` rows computed but not yet written
/// back, for an add one chunk; 0 for an op that cannot run in place.
pub fn in_place_scratch(op: &Op<'_>, x: Shape) -> u64 {
    let row = x.w as u64 * x.c as u64;
    let band = |w: &Window| (band_rows(x) + w.padding.top as u64).min(x.h as u64) * row;
    match op {
        Op::Add(_) => x.elements().min(IN_PLACE_ADD_CHUNK),
        Op::Conv2d(c) => band(&c.window),
        Op::DepthwiseConv2d(d) => band(&d.window),
        _ => 0,
    }
}

/// One buffer to place: its size and the op indices during which it must stay intact.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Bytes.
    pub size: u32,
    /// First op index at which it is live.
    pub first: u16,
    /// Last op index at which it is live.
    pub last: u16,
}

/// Places `buffers` greedily; returns each buffer's offset and the peak bytes.
#[cfg(feature = "std")]
pub fn place(buffers: &[Buffer]) -> (std::vec::Vec<u32>, u32) {
    let align = |x: u32| x.div_ceil(ALIGN) * ALIGN;
    let mut order: std::vec::Vec<usize> = (0..buffers.len()).collect();
    // Largest first; ties by earlier start, then id, so the plan is deterministic.
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].size), buffers[i].first, i));
    let mut offsets = vec![u32::MAX; buffers.len()];
    let mut placed: std::vec::Vec<usize> = std::vec::Vec::new();
    let mut peak = 0u32;
    for &i in &order {
        let b = buffers[i];
        let mut live: std::vec::Vec<(u32, u32)> = placed
            .iter()
            .filter(|&&j| buffers[j].first <= b.last && b.first <= buffers[j].last)
            .map(|&j| (offsets[j], offsets[j] + buffers[j].size))
            .collect();
        live.sort_unstable();
        let mut candidate = 0u32;
        for (start, end) in live {
            if candidate + b.size <= start {
                break;
            }
            candidate = candidate.max(align(end));
        }
        offsets[i] = candidate;
        peak = peak.max(candidate + b.size);
        placed.push(i);
    }
    (offsets, peak)
}

/// [`place`] where some buffers must share another's bytes: `over[i] == Some(j)` puts buffer
/// `i` at buffer `j`'s offset (an op writing its output `i` over its dying input `j`; both have
/// the same size and `j`'s life ends at the op where `i`'s starts). Each chain of such buffers
/// is placed as one buffer living from the first's start to the last's end.
#[cfg(feature = "std")]
pub fn place_aliased(buffers: &[Buffer], over: &[Option<usize>]) -> (std::vec::Vec<u32>, u32) {
    let root = |mut i: usize| {
        // Each step goes to an earlier-produced buffer, so a chain ends; the bound guards
        // against a cyclic `over` all the same.
        for _ in 0..buffers.len() {
            match over.get(i).copied().flatten() {
                Some(j) if j != i => i = j,
                _ => break,
            }
        }
        i
    };
    let roots: std::vec::Vec<usize> = (0..buffers.len()).map(root).collect();
    let mut groups: std::vec::Vec<Buffer> = buffers.to_vec();
    for (i, &r) in roots.iter().enumerate() {
        if r != i {
            let (b, g) = (buffers[i], &mut groups[r]);
            g.size = g.size.max(b.size);
            g.first = g.first.min(b.first);
            g.last = g.last.max(b.last);
        }
    }
    // Members of a group take no room of their own: a zero-sized buffer collides with nothing
    // and is placed, then overridden by its root's offset.
    for (i, &r) in roots.iter().enumerate() {
        if r != i {
            groups[i].size = 0;
        }
    }
    let (mut offsets, peak) = place(&groups);
    for (i, &r) in roots.iter().enumerate() {
        offsets[i] = offsets[r];
    }
    (offsets, peak)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    fn overlaps(a: (u32, Buffer), b: (u32, Buffer)) -> bool {
        let time = a.1.first <= b.1.last && b.1.first <= a.1.last;
        let space = a.0 < b.0 + b.1.size && b.0 < a.0 + a.1.size;
        time && space
    }

    #[test]
    fn chain_reuses_memory() {
        // A chain of four buffers each live for two steps needs only the two largest at once.
        let bufs = [
            Buffer {
                size: 100,
                first: 0,
                last: 1,
            },
            Buffer {
                size: 60,
                first: 1,
                last: 2,
            },
            Buffer {
                size: 100,
                first: 2,
                last: 3,
            },
            Buffer {
                size: 60,
                first: 3,
                last: 4,
            },
        ];
        let (offsets, peak) = place(&bufs);
        assert_eq!(peak, 160);
        for i in 0..4 {
            for j in i + 1..4 {
                assert!(
                    !overlaps((offsets[i], bufs[i]), (offsets[j], bufs[j])),
                    "{i} and {j}"
                );
            }
        }
    }

    #[test]
    fn residual_keeps_skip_alive() {
        let bufs = [
            Buffer {
                size: 64,
                first: 0,
                last: 2,
            },
            Buffer {
                size: 64,
                first: 0,
                last: 1,
            },
            Buffer {
                size: 64,
                first: 1,
                last: 2,
            },
            Buffer {
                size: 64,
                first: 2,
                last: 3,
            },
        ];
        let (offsets, peak) = place(&bufs);
        assert_eq!(peak, 192);
        for i in 0..4 {
            for j in i + 1..4 {
                assert!(!overlaps((offsets[i], bufs[i]), (offsets[j], bufs[j])));
            }
        }
        assert!(offsets.iter().all(|o| o % ALIGN == 0));
    }

    #[test]
    fn aliased_chains_share_one_buffer() {
        // ResNet's stack: x0 (ops 0..=3), c1 (1..=2), c2 over c1 (2..=3), s over c2 (3..=4).
        let buf = |first, last| Buffer {
            size: 64,
            first,
            last,
        };
        let bufs = [buf(0, 3), buf(1, 2), buf(2, 3), buf(3, 4)];
        let (_, plain) = place(&bufs);
        assert_eq!(plain, 192);
        let over = [None, None, Some(1), Some(2)];
        let (offsets, peak) = place_aliased(&bufs, &over);
        assert_eq!(peak, 128);
        assert_eq!(offsets[1], offsets[2]);
        assert_eq!(offsets[2], offsets[3]);
        assert_ne!(offsets[0], offsets[1]);
        // Apart from the aliased pairs, no two live buffers overlap.
        for i in 0..4 {
            for j in i + 1..4 {
                let pair = over[j] == Some(i);
                assert!(pair || !overlaps((offsets[i], bufs[i]), (offsets[j], bufs[j])));
            }
        }
    }
}
