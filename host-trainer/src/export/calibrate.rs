//! Calibration on training images: BatchNorm population statistics (the blob folds fixed
//! statistics, GHN-2's nets only ever saw batch statistics), then one scale and zero point per
//! activation tensor, measured with the weights already quantized so the ranges fit the net
//! the device will run.

use burn::tensor::{Device, Tensor, TensorData};

use crate::arch::{ImageShape, Net};
use crate::cnn::{BnMode, LayerParams, ParamSet};
use crate::ghn::train::{LabeledBatch, to_tensors};
use crate::quant::affine::{AffineParams, Range};
use crate::quant::config::{Clip, QuantConfig};
use crate::quant::fake::host_values;
use crate::quant::lower::Lowered;
use crate::quant::sim::{self, Acts, Observer, SimOptions, clip_range, tensor_bits};

/// What calibration found.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// The parameters with every BatchNorm's running statistics filled in.
    pub params: ParamSet,
    /// Scale and zero point of every device tensor (`SameAs` tensors repeat their root's).
    pub acts: Vec<AffineParams>,
    /// Images used.
    pub samples: usize,
}

/// Per-channel sums of batch means and of `E[x²]` over `batches` batches.
#[derive(Clone)]
struct ChannelSums {
    mean: Vec<f64>,
    square: Vec<f64>,
    batches: usize,
}

/// Sums for population BN statistics: `E[x]` and `E[x²]` averaged over equal-sized batches.
#[derive(Default)]
struct BnSums {
    stats: Vec<Option<ChannelSums>>,
}

impl Observer for BnSums {
    fn batch_norm(&mut self, node: usize, mean: &Tensor<1>, var: &Tensor<1>) {
        if self.stats.len() <= node {
            self.stats.resize(node + 1, None);
        }
        let m = host_values(mean);
        let v = host_values(var);
        let e = self.stats[node].get_or_insert_with(|| ChannelSums {
            mean: vec![0.0; m.len()],
            square: vec![0.0; m.len()],
            batches: 0,
        });
        for c in 0..m.len() {
            e.mean[c] += f64::from(m[c]);
            e.square[c] += f64::from(v[c]) + f64::from(m[c]).powi(2);
        }
        e.batches += 1;
    }

    fn activation(&mut self, _tensor: usize, _x: &Tensor<4>) {}
}

/// Per-tensor range accumulation: the union of absolute ranges, or the mean of per-batch
/// percentile ranges (a percentile of the whole calibration set would need all of it in memory).
struct Ranges {
    clip: Clip,
    sum: Vec<Option<(Range, usize)>>,
}

impl Observer for Ranges {
    fn batch_norm(&mut self, _node: usize, _mean: &Tensor<1>, _var: &Tensor<1>) {}

    fn activation(&mut self, tensor: usize, x: &Tensor<4>) {
        let r = clip_range(x, self.clip);
        let e = self.sum[tensor].get_or_insert((Range { min: 0.0, max: 0.0 }, 0));
        match self.clip {
            Clip::Absolute => {
                e.0.min = e.0.min.min(r.min);
                e.0.max = e.0.max.max(r.max);
            }
            Clip::Percentile(_) => {
                e.0.min += r.min;
                e.0.max += r.max;
            }
        }
        e.1 += 1;
    }
}

/// Calibrate `params` (on a non-autodiff device) on `batches` of training images.
pub fn calibrate(
    net: &Net,
    lowered: &Lowered,
    params: ParamSet,
    config: &QuantConfig,
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
) -> Calibration {
    // 1. BN population statistics, float net, batch statistics.
    let mut bn = BnSums::default();
    let float = SimOptions {
        quant: None,
        acts: Acts::Float,
        bn: BnMode::Batch,
        training: false,
    };
    for b in batches {
        let (x, _) = to_tensors(b, shape, device);
        let _ = sim::forward(net, lowered, &params, x, float, Some(&mut bn));
    }
    let mut params = params;
    for (node, s) in bn.stats.into_iter().enumerate() {
        let Some(ChannelSums {
            mean: sum_m,
            square: sum_sq,
            batches,
        }) = s
        else {
            continue;
        };
        let n = batches as f64;
        let mean: Vec<f32> = sum_m.iter().map(|m| (m / n) as f32).collect();
        let var: Vec<f32> = sum_sq
            .iter()
            .zip(&sum_m)
            .map(|(q, m)| ((q / n) - (m / n).powi(2)).max(0.0) as f32)
            .collect();
        if let LayerParams::BatchNorm { running, .. } = &mut params.layers[node] {
            let c = mean.len();
            *running = Some((
                Tensor::from_data(TensorData::new(mean, [c]), device),
                Tensor::from_data(TensorData::new(var, [c]), device),
            ));
        }
    }

    // 2. Activation ranges with quantized weights and the calibrated statistics.
    let mut ranges = Ranges {
        clip: config.act_clip,
        sum: vec![None; lowered.tensors.len()],
    };
    let weights_only = SimOptions {
        quant: Some(config),
        acts: Acts::Float,
        bn: BnMode::Running,
        training: false,
    };
    let mut samples = 0;
    for b in batches {
        let (x, _) = to_tensors(b, shape, device);
        let _ = sim::forward(net, lowered, &params, x, weights_only, Some(&mut ranges));
        samples += b.labels.len();
    }
    let mut acts: Vec<AffineParams> = Vec::with_capacity(lowered.tensors.len());
    for t in 0..lowered.tensors.len() {
        let root = lowered.quant_root(t);
        let p = if root == t {
            let range = match ranges.sum[t] {
                Some((r, n)) if matches!(config.act_clip, Clip::Percentile(_)) => Range {
                    min: r.min / n as f32,
                    max: r.max / n as f32,
                },
                Some((r, _)) => r,
                None => Range { min: 0.0, max: 0.0 },
            };
            AffineParams::from_range(range, tensor_bits(net, lowered, t, config))
        } else {
            acts[root]
        };
        acts.push(p);
    }
    Calibration {
        params,
        acts,
        samples,
    }
}
