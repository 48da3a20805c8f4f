//! The memory plan: where each activation lives in the arena and how much kernel scratch an op
//! may use. Both host and device compute these with this code, so they cannot disagree.
//!
//! The placement search (host only) is TFLM's `GreedyMemoryPlanner`: buffers sorted by size,
//! largest first, each put at the lowest offset that does not collide with an already placed
//! buffer whose lifetime intersects its own.

use crate::op::Op;
use crate::tensor::TensorTable;

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
pub fn scratch_bytes(op: &Op<'_>, tensors: &TensorTable<'_>) -> u64 {
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
}
