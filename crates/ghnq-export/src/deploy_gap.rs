//! Where a deployed net's accuracy goes. QAT trains through a simulation that folds each
//! batch's own BatchNorm statistics and quantizes activations with each batch's own ranges; the
//! exported net folds the statistics calibration found and fixes the ranges it measured. When a
//! net fits its QAT batches but the device's top-1 falls, these four simulations tell which of
//! the two fixed quantities the parameters are sensitive to.

use burn::tensor::Device;

use super::Calibration;
use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::cnn::BnMode;
use ghnq_core::cnn::native::NativeError;
use ghnq_core::train::LabeledBatch;
use ghnq_quant::config::QuantConfig;
use ghnq_quant::lower::Lowered;
use ghnq_quant::sim::{Acts, SimOptions};
use ghnq_quant::sim_native::SimEngine;

/// Top-1 (%) of the quantized simulation under each pairing of BN statistics and activation
/// ranges, on the same images.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DeployGap {
    /// Batch statistics, batch ranges: the network QAT optimizes.
    pub as_trained: f64,
    /// Calibrated BN statistics, batch ranges.
    pub calibrated_bn: f64,
    /// Batch statistics, calibrated ranges.
    pub calibrated_ranges: f64,
    /// Calibrated statistics and ranges: the net the device runs (its simulation).
    pub deployed: f64,
}

impl DeployGap {
    /// Column names, in the order of [`DeployGap::values`].
    pub const NAMES: [&'static str; 4] = [
        "as_trained",
        "calibrated_bn",
        "calibrated_ranges",
        "deployed",
    ];

    /// The four top-1s in the order of [`DeployGap::NAMES`].
    pub fn values(&self) -> [f64; 4] {
        [
            self.as_trained,
            self.calibrated_bn,
            self.calibrated_ranges,
            self.deployed,
        ]
    }
}

/// Run the four simulations of `cal.params` (BN statistics filled in by calibration) over
/// `batches`. Batch statistics come from each test batch, as during training, so the result
/// depends on the batch size the way training did.
pub fn deploy_gap(
    net: &Net,
    lowered: &Lowered,
    cal: &Calibration,
    config: &QuantConfig,
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
) -> Result<DeployGap, NativeError> {
    let engine = SimEngine::new(&cal.params, device);
    let top1 = |acts: Acts<'_>, bn: BnMode| -> Result<f64, NativeError> {
        let opts = SimOptions {
            quant: Some(config),
            acts,
            bn,
            training: false,
            noise_seed: 0,
        };
        let (mut hits, mut n) = (0, 0);
        for b in batches {
            let logits = engine.logits(net, lowered, b, shape, opts, None)?;
            for (row, &label) in logits.chunks_exact(net.classes).zip(&b.labels) {
                hits += usize::from(is_top1(row, label));
            }
            n += b.labels.len();
        }
        Ok(100.0 * hits as f64 / n.max(1) as f64)
    };
    let fixed = Acts::Fixed(&cal.acts);
    Ok(DeployGap {
        as_trained: top1(Acts::Batch, BnMode::Batch)?,
        calibrated_bn: top1(Acts::Batch, BnMode::Running)?,
        calibrated_ranges: top1(fixed, BnMode::Batch)?,
        deployed: top1(fixed, BnMode::Running)?,
    })
}

/// Whether `label` is the device's top-1 of these logits. They are quantized (values on one
/// grid), so ties are common, and like `shared_format::vectors::rank_of` the lowest class index
/// wins a tie: counting every tie as a hit would inflate nets that output one constant.
fn is_top1(logits: &[f32], label: usize) -> bool {
    let mine = logits[label];
    !logits
        .iter()
        .enumerate()
        .any(|(j, &v)| v > mine || (v == mine && j < label) || v.is_nan())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::{Provenance, build, calibrate, compare};
    use ghnq_core::arch::NetBuilder;
    use ghnq_core::cnn::ParamSet;
    use ghnq_core::sources::SyntheticImages;
    use ghnq_core::train::ImageSource;
    use ghnq_quant::config::Precision;

    const SHAPE: ImageShape = ImageShape::FASHION_MNIST;

    #[test]
    fn ties_go_to_the_lowest_class_like_the_device() {
        let row = [0.5, 1.0, 1.0, -2.0];
        assert!(is_top1(&row, 1));
        assert!(!is_top1(&row, 2));
        assert!(!is_top1(&row, 0));
        assert!(!is_top1(&[f32::NAN, 1.0], 1));
    }

    /// A conv-(BN)-ReLU stage per width, global pool, classifier: the smallest nets where BN
    /// statistics and activation ranges matter.
    pub(crate) fn conv_stack(widths: &[usize], stride: usize, with_bn: bool) -> Net {
        let mut b = NetBuilder::new("stack", SHAPE, 10);
        let mut x = 0;
        for (i, &c) in widths.iter().enumerate() {
            x = b.conv(format!("conv{i}"), x, c, 3, stride).unwrap();
            if with_bn {
                x = b.bn(format!("bn{i}"), x).unwrap();
            }
            x = b.relu(format!("relu{i}"), x, false).unwrap();
        }
        let g = b
            .push("pool", ghnq_core::arch::Op::GlobalAvgPool, vec![x])
            .unwrap();
        b.linear("fc", g, 10).unwrap();
        b.finish().unwrap()
    }

    fn net(with_bn: bool) -> Net {
        conv_stack(&[8, 16], 2, with_bn)
    }

    fn run(net: &Net) -> (DeployGap, f64) {
        let dev = Device::flex();
        let lowered = Lowered::new(net).unwrap();
        let config = QuantConfig::paper(Precision::new(4, 4));
        let mut src = SyntheticImages::new(SHAPE, 10, 1000, 3);
        let cal_batches: Vec<LabeledBatch> = (0..2).map(|_| src.next_batch(32)).collect();
        let test: Vec<LabeledBatch> = (0..4).map(|_| src.next_batch(32)).collect();
        let params = ParamSet::init_random_seeded(net, 7, &dev);
        let cal = calibrate(net, &lowered, params, &config, SHAPE, &cal_batches, &dev).unwrap();
        let gap = deploy_gap(net, &lowered, &cal, &config, SHAPE, &test, &dev).unwrap();
        let blob = build(
            net,
            &lowered,
            &cal.params,
            &cal.acts,
            &config,
            shared_format::Rounding::Single,
            &Provenance::default(),
        )
        .unwrap();
        let c = compare(
            net,
            &lowered,
            &cal,
            &config,
            &blob,
            SHAPE,
            &test,
            &dev,
            0,
            &mut crate::FloatReference::default(),
        )
        .unwrap();
        (gap, c.sim_top1)
    }

    /// The deployed column is the simulation `compare` measures against the integer runtime.
    #[test]
    fn the_deployed_column_is_the_simulation_compare_runs() {
        let (gap, sim_top1) = run(&net(true));
        assert_eq!(gap.deployed, sim_top1, "{gap:?}");
        for v in gap.values() {
            assert!((0.0..=100.0).contains(&v), "{gap:?}");
        }
    }

    /// Without BatchNorm the statistics cannot matter: the columns pair up exactly, by ranges.
    #[test]
    fn without_batch_norm_only_the_ranges_tell_columns_apart() {
        let (gap, sim_top1) = run(&net(false));
        assert_eq!(gap.as_trained, gap.calibrated_bn, "{gap:?}");
        assert_eq!(gap.calibrated_ranges, gap.deployed, "{gap:?}");
        assert_eq!(gap.deployed, sim_top1, "{gap:?}");
    }
}
