//! Exported model → int8 `.tflite` that TFLite Micro runs bit-exactly like the blob.
//!
//! A `.tflite` file stores float scales; TFLM derives every multiplier from them at Prepare time
//! (`QuantizeMultiplier` of `s_x·s_w[c]/s_y` in double from f32 scales, ADD's twice-max rule,
//! QUANTIZE's `s_in/s_out`) and every clamp from the fused activation. The exporter derived the
//! blob's integers from the same f32 scales the same way ([`ghnq_quant::integer`]), so writing
//! exactly the [`QuantGraph`]'s scales, zero points, int8 weights and i32 biases makes TFLM
//! compute exactly what the blob computes.
//!
//! Op mapping (blob op → TFLite ops):
//! - conv / depthwise → CONV_2D (weights `[cout, kh, kw, cin]`, quantized dimension 0) /
//!   DEPTHWISE_CONV_2D (`[1, kh, kw, C]`, quantized dimension 3, multiplier 1). Padding that is
//!   neither SAME (odd cell after) nor VALID becomes a PAD before a VALID convolution: PAD pads
//!   with the zero point, which is what convolution padding computes.
//! - max / average pool → MAX_POOL_2D / AVERAGE_POOL_2D. PAD cannot stand in for a pool's
//!   padding (max pool skips padded cells, average pool leaves them out of its count), so
//!   padding SAME cannot express (PyTorch's 3×3 stride-2 padding-1 pool on an even size puts a
//!   padded cell before) is written as the same pool at stride 1, which is SAME, followed by a
//!   1×1 stride-s MAX_POOL_2D that keeps every s-th window: the same windows, the same integers.
//!   Geometry neither form reaches is refused.
//! - ReLU op (a 1×1 max pool with a clamp) → MAX_POOL_2D 1×1 with fused RELU/RELU6.
//! - global average pool → AVERAGE_POOL_2D with one VALID window over the whole input.
//! - mean → MEAN over axes [1, 2] (an int32 constant) with keep_dims: TFLM folds `1/(H·W)` into
//!   `QuantizeMultiplier(s_x/s_y)` at every invoke exactly as the blob's `Mean::from_scales` did
//!   once. TFLite's MEAN has no fused activation, so a clamped mean is refused.
//! - add → ADD.
//! - concat → CONCATENATION on the channel axis. TFLM's int8 concatenation requires every input
//!   quantized exactly like the output, so an input quantized otherwise is first requantized to
//!   the output's scale and zero point ([`Requantize`]); a clamped concat (fused ReLU) gets a
//!   1×1 MAX_POOL_2D with that activation after it (TFLM's concatenation takes none).
//! - linear → FULLY_CONNECTED (per-channel weights `[cout, cin]`), after a RESHAPE to `[1, N]`
//!   when its input is not `1×1×N`.
//!
//! Fused activations: TFLM derives the clamp from NONE (`[−128, 127]`), RELU (`[max(−128, z),
//! 127]`) or RELU6; an op whose clamp none of them gives is refused. Also refused: activations
//! narrower than 8 bits, per-tensor affine weights with a non-zero zero point (TFLite's int8
//! weights are symmetric), and single rounding (see [`TfliteExportError::SingleRounding`]).
//! Weights quantized to fewer than 8 bits are fine: their values are int8 values.

mod model;
mod plan;
#[cfg(test)]
mod tests;

use ghnq_export::graph::QuantGraph;
use model::*;
use plan::*;

/// How a concatenation input quantized unlike the output is brought to the output's scale and
/// zero point (TFLM computes the multiplier of both from `s_in / s_out` in double, as the blob's
/// concat does, and both compute `clamp(MBQM(x − z_in) + z_out)`: the same bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Requantize {
    /// A 1×1 DEPTHWISE_CONV_2D with unit weights of scale 1.0 and zero bias: TFLM's multiplier
    /// is `s_in·1.0/s_out`, exactly `s_in/s_out`. Every TFLite runtime and this crate's own
    /// importer ([`super::import()`]) read it, so the file imports back to an equivalent blob.
    #[default]
    Depthwise,
    /// TFLite's own QUANTIZE (int8 → int8 requantize). TFLM runs it; this crate's importer does
    /// not import QUANTIZE (yet).
    Quantize,
}

/// Why an exported model cannot be written as `.tflite`.
#[derive(Debug, thiserror::Error)]
pub enum TfliteExportError {
    /// The blob was built for single rounding.
    #[error(
        "the model was exported with single rounding, which a .tflite file cannot express: it \
         stores float scales, and TFLM's default build derives its multipliers from them and \
         requantizes with double rounding, so its outputs would differ from the blob's; export \
         with --rounding double (the default for --format tflite)"
    )]
    SingleRounding,
    /// An activation tensor narrower than 8 bits.
    #[error(
        "tensor {index} ('{name}') has {bits}-bit activations; TFLite int8 models need 8-bit \
         activations (export with a8, e.g. --bits w8a8 or w4a8)"
    )]
    ActivationBits {
        /// Blob tensor id.
        index: usize,
        /// Its IR node.
        name: String,
        /// Its bit-width.
        bits: u8,
    },
    /// One op has no TFLite form.
    #[error("op {index} ('{name}', {kind}): {what}")]
    Op {
        /// Blob op index.
        index: usize,
        /// Its IR node.
        name: String,
        /// Its kind.
        kind: &'static str,
        /// What cannot be expressed.
        what: String,
    },
}

/// Writes `graph` as an int8 `.tflite` flatbuffer, requantizing concatenation inputs with
/// [`Requantize::Depthwise`].
pub fn export(graph: &QuantGraph) -> Result<Vec<u8>, TfliteExportError> {
    export_with(graph, Requantize::default())
}

/// [`export`] with a choice of concatenation requantization.
pub fn export_with(
    graph: &QuantGraph,
    requantize: Requantize,
) -> Result<Vec<u8>, TfliteExportError> {
    Ok(plan(graph, requantize)?.serialize())
}

/// TFLite builtins a written file may contain, counted (for reports and tests).
pub fn op_counts(
    graph: &QuantGraph,
    requantize: Requantize,
) -> Result<Vec<(&'static str, usize)>, TfliteExportError> {
    let model = plan(graph, requantize)?;
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for op in &model.ops {
        let name = op.code.variant_name().unwrap_or("?");
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    Ok(counts)
}
