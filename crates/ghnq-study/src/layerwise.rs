//! Layerwise ranges of an exported net (the paper's Figs. 3–6, after its ref. 14): per weighted
//! device op, the range of its BN-folded weights, the range of its output activations on the
//! calibration images, and a precision measure for each.
//!
//! The seed paper does not define its "precision" (it points to its ref. 14); this harness measures how
//! much of a per-tensor quantizer's grid each channel gets: `precision = mean over channels of
//! (channel max − channel min) / (tensor quantization range)`, 1 when every channel spans the
//! whole range, small when one channel's outliers stretch the range for all (the "spikes in
//! range coincide with drops in precision" of Fig. 6). Both weights and activations use absolute
//! ranges here (weights are quantized on their absolute range; the activations' 1 %-clipped
//! quantization range is reported beside). `*_bits` is the same as the mean number of bits a
//! channel effectively uses, `log2(2^N · channel range / tensor range)`.

use std::fmt::Write as _;

use burn::tensor::{Device, Tensor};

use ghnq_core::arch::{ImageShape, Net, Op};
use ghnq_core::cnn::native::NativeError;
use ghnq_core::cnn::{BnMode, LayerParams, ParamSet};
use ghnq_core::train::LabeledBatch;
use ghnq_export::Calibration;
use ghnq_quant::affine::{AffineParams, Range};
use ghnq_quant::config::QuantConfig;
use ghnq_quant::fake::host_values;
use ghnq_quant::lower::{Lowered, Step};
use ghnq_quant::sim::{Acts, Observer, SimOptions, Values, bn_params, fold};
use ghnq_quant::sim_native::SimEngine;

/// One weighted layer's ranges.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerStats {
    /// Device op index.
    pub op: usize,
    /// IR node name (the conv of a fused conv-BN).
    pub name: String,
    /// `conv`, `dwconv` or `linear`.
    pub kind: String,
    /// BN-folded weight minimum.
    pub w_min: f32,
    /// BN-folded weight maximum.
    pub w_max: f32,
    /// Mean channel range over the weight tensor's range (see the module docs).
    pub w_precision: f64,
    /// The same as bits at the weight bit-width.
    pub w_bits: f64,
    /// Smallest output activation on the calibration images (before quantization).
    pub act_min: f32,
    /// Largest output activation.
    pub act_max: f32,
    /// Lower end of the calibrated (clipped) activation quantization range.
    pub act_qmin: f32,
    /// Upper end of the calibrated activation quantization range.
    pub act_qmax: f32,
    /// Mean channel range over the layer's absolute activation range (`act_min..act_max`
    /// widened to contain 0), like the weights' (against the clipped range most channels would
    /// simply saturate at 1).
    pub act_precision: f64,
    /// The same as bits at the activation bit-width.
    pub act_bits: f64,
}

/// Mean over channels of `min(1, span_c / span)`, and the mean of `log2(2^bits · that)`
/// (channels with an empty span count as 0 bits).
pub fn precision(channels: &[(f32, f32)], range: Range, bits: u8) -> (f64, f64) {
    let span = f64::from(range.max - range.min);
    if channels.is_empty() || span <= 0.0 {
        return (0.0, 0.0);
    }
    let levels = f64::from(1u32 << bits);
    let (mut p, mut b) = (0.0, 0.0);
    for &(lo, hi) in channels {
        let r = (f64::from(hi - lo) / span).clamp(0.0, 1.0);
        p += r;
        b += if r * levels > 1.0 {
            (r * levels).log2()
        } else {
            0.0
        };
    }
    let n = channels.len() as f64;
    (p / n, b / n)
}

/// Per-channel (min, max) of an output-channel-first tensor of `values`.
fn channel_ranges(values: &[f32], channels: usize) -> Vec<(f32, f32)> {
    let per = values.len() / channels.max(1);
    values
        .chunks_exact(per.max(1))
        .take(channels)
        .map(|c| {
            c.iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                })
        })
        .collect()
}

/// The weights a weighted step stores, BN folded with the calibrated statistics, as
/// (values output-channel first, output channels, kind); `None` for other steps.
fn folded_weights(net: &Net, params: &ParamSet, step: &Step) -> Option<(Vec<f32>, usize, String)> {
    match step {
        Step::Conv { conv, bn, .. } => {
            let LayerParams::Conv { weight, bias } = &params.layers[*conv] else {
                return None;
            };
            let w: Tensor<4> = match bn {
                Some(b) => {
                    let (gamma, beta, running) = bn_params(params, *b);
                    let (mean, var) = running?;
                    fold(weight.clone(), bias.clone(), gamma, beta, mean, var).0
                }
                None => weight.clone(),
            };
            let kind = match net.nodes[*conv].op {
                Op::Conv { groups, cin, .. } if groups > 1 && groups == cin => "dwconv",
                _ => "conv",
            };
            Some((host_values(&w), w.dims()[0], kind.into()))
        }
        Step::Linear { node, .. } => {
            let LayerParams::Linear { weight, .. } = &params.layers[*node] else {
                return None;
            };
            Some((host_values(weight), weight.dims()[0], "linear".into()))
        }
        _ => None,
    }
}

/// Per-channel activation ranges of every device tensor, accumulated over batches.
struct ChannelRanges(Vec<Option<Vec<(f32, f32)>>>);

impl Observer for ChannelRanges {
    fn batch_norm(&mut self, _: usize, _: &[f32], _: &[f32]) {}

    fn activation(&mut self, tensor: usize, x: Values<'_>) {
        let c = x.dims[3];
        let e = self.0[tensor].get_or_insert_with(|| vec![(f32::INFINITY, f32::NEG_INFINITY); c]);
        for (i, &v) in x.data.iter().enumerate() {
            let r = &mut e[x.channel(i)];
            r.0 = r.0.min(v);
            r.1 = r.1.max(v);
        }
    }
}

/// The layerwise ranges of an exported net, its activations measured on `batches` (the
/// calibration images) through the quantized simulation.
#[allow(clippy::too_many_arguments)]
pub fn layer_stats(
    net: &Net,
    lowered: &Lowered,
    cal: &Calibration,
    config: &QuantConfig,
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
) -> Result<Vec<LayerStats>, NativeError> {
    let mut ranges = ChannelRanges(vec![None; lowered.tensors.len()]);
    let opts = SimOptions {
        quant: Some(config),
        acts: Acts::Fixed(&cal.acts),
        bn: BnMode::Running,
        training: false,
        noise_seed: 0,
    };
    let engine = SimEngine::new(&cal.params, device);
    for b in batches {
        engine.logits(net, lowered, b, shape, opts, Some(&mut ranges))?;
    }
    let mut out = Vec::new();
    for (k, step) in lowered.steps.iter().enumerate() {
        let Some((w, cout, kind)) = folded_weights(net, &cal.params, step) else {
            continue;
        };
        let w_range = Range::of(&w);
        let (w_precision, w_bits) = precision(
            &channel_ranges(&w, cout),
            w_range,
            config.precision.weight_bits,
        );
        let t = step.output();
        let q: AffineParams = cal.acts[lowered.quant_root(t)];
        let act_qmin = q.dequantize(shared_format::tensor::qmin(q.bits));
        let act_qmax = q.dequantize(shared_format::tensor::qmax(q.bits));
        let chans = ranges.0[t].clone().unwrap_or_default();
        let (act_min, act_max) = chans
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &(a, b)| {
                (lo.min(a), hi.max(b))
            });
        let (act_precision, act_bits) = precision(
            &chans,
            Range {
                min: act_min.min(0.0),
                max: act_max.max(0.0),
            },
            q.bits,
        );
        out.push(LayerStats {
            op: k,
            name: net.nodes[step.node()].name.clone(),
            kind,
            w_min: w_range.min,
            w_max: w_range.max,
            w_precision,
            w_bits,
            act_min: if act_min.is_finite() { act_min } else { 0.0 },
            act_max: if act_max.is_finite() { act_max } else { 0.0 },
            act_qmin,
            act_qmax,
            act_precision,
            act_bits,
        });
    }
    Ok(out)
}

/// The layer table as CSV.
pub fn csv(layers: &[LayerStats]) -> String {
    let mut s = String::from(
        "op,layer,kind,w_min,w_max,w_precision,w_bits,act_min,act_max,act_qmin,act_qmax,act_precision,act_bits\n",
    );
    for l in layers {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.6},{:.4},{},{},{},{},{:.6},{:.4}",
            l.op,
            l.name,
            l.kind,
            l.w_min,
            l.w_max,
            l.w_precision,
            l.w_bits,
            l.act_min,
            l.act_max,
            l.act_qmin,
            l.act_qmax,
            l.act_precision,
            l.act_bits
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_by_hand() {
        // Range [−1, 3] (span 4); channels span 4, 2 and 1 → mean (1 + ½ + ¼)/3 = 7/12.
        let r = Range {
            min: -1.0,
            max: 3.0,
        };
        let (p, bits) = precision(&[(-1.0, 3.0), (0.0, 2.0), (0.5, 1.5)], r, 8);
        assert!((p - 7.0 / 12.0).abs() < 1e-12);
        // 8, 7 and 6 bits.
        assert!((bits - 7.0).abs() < 1e-12);
        // A channel wider than a clipped range counts as 1; an empty range gives 0.
        assert_eq!(precision(&[(-5.0, 5.0)], r, 8).0, 1.0);
        assert_eq!(
            precision(&[(0.0, 1.0)], Range { min: 0.0, max: 0.0 }, 8),
            (0.0, 0.0)
        );
        assert_eq!(
            channel_ranges(&[1.0, -2.0, 3.0, 0.5, 0.25, 0.75], 2),
            [(-2.0, 3.0), (0.25, 0.75)]
        );
    }
}
