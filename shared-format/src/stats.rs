//! Work and size counts per op, shared by `ghnq inspect`, the firmware's MACs-per-instruction
//! figure and the benchmarks, so every report counts the same way.

use crate::op::Op;
use crate::tensor::TensorTable;

/// Multiply-accumulates of one inference of `op` (0 for ops without weights).
pub fn macs(op: &Op<'_>, tensors: &TensorTable<'_>) -> u64 {
    let elements = |id| tensors.get(id).map_or(0, |t| t.shape.elements());
    match op {
        Op::Conv2d(c) => {
            let cin = tensors.get(c.input).map_or(0, |t| t.shape.c as u64);
            elements(c.output) * c.window.kernel_h as u64 * c.window.kernel_w as u64 * cin
        }
        Op::DepthwiseConv2d(d) => {
            elements(d.output) * d.window.kernel_h as u64 * d.window.kernel_w as u64
        }
        Op::Linear(l) => elements(l.input) * elements(l.output),
        _ => 0,
    }
}

/// Stored parameters of `op`: weights plus biases.
pub fn params(op: &Op<'_>, tensors: &TensorTable<'_>) -> u64 {
    match op {
        Op::Conv2d(c) => weight_count(op, tensors) + c.bias.len() as u64,
        Op::DepthwiseConv2d(d) => weight_count(op, tensors) + d.bias.len() as u64,
        Op::Linear(l) => weight_count(op, tensors) + l.bias.len() as u64,
        _ => 0,
    }
}

/// Number of weights, from the geometry (the packed byte count may hold a padding nibble).
pub fn weight_count(op: &Op<'_>, tensors: &TensorTable<'_>) -> u64 {
    let elements = |id| tensors.get(id).map_or(0, |t| t.shape.elements());
    let channels = |id| tensors.get(id).map_or(0, |t| t.shape.c as u64);
    match op {
        Op::Conv2d(c) => {
            channels(c.output)
                * c.window.kernel_h as u64
                * c.window.kernel_w as u64
                * channels(c.input)
        }
        Op::DepthwiseConv2d(d) => {
            channels(d.output) * d.window.kernel_h as u64 * d.window.kernel_w as u64
        }
        Op::Linear(l) => elements(l.input) * elements(l.output),
        _ => 0,
    }
}
