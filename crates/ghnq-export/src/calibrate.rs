//! Calibration on training images: BatchNorm population statistics (the blob folds fixed
//! statistics, GHN-2's nets only ever saw batch statistics; by default those of the quantized
//! net, which is the one a QAT net was trained as), then one scale and zero point per
//! activation tensor, measured with the weights already quantized (and, for a GHN-QAT
//! checkpoint's nets, every earlier activation too: [`ActCalib`]) so the ranges fit the net the
//! device will run.

use burn::tensor::Device;

use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::cnn::native::{NativeError, RunningStats};
use ghnq_core::cnn::{BnMode, ParamSet};
use ghnq_core::train::LabeledBatch;
use ghnq_quant::affine::{AffineParams, Range};
use ghnq_quant::config::{ActCalib, BnStats, Clip, QuantConfig};
use ghnq_quant::lower::Lowered;
use ghnq_quant::sim::{Acts, Observer, SimOptions, Values, clip_range_of, tensor_bits};
use ghnq_quant::sim_native::{SimEngine, with_running};

use crate::FloatReference;

/// What calibration found.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// The parameters with every BatchNorm's running statistics filled in as the device folds
    /// them (`QuantConfig::bn_stats`).
    pub params: ParamSet,
    /// The parameters with the float net's population statistics: the float reference that
    /// quantization is measured against.
    pub float_params: ParamSet,
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
    fn batch_norm(&mut self, node: usize, m: &[f32], v: &[f32]) {
        if self.stats.len() <= node {
            self.stats.resize(node + 1, None);
        }
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

    fn activation(&mut self, _tensor: usize, _x: Values<'_>) {}

    fn wants_values(&self) -> bool {
        false
    }
}

/// Per-tensor range accumulation: the union of absolute ranges, or the mean of per-batch
/// percentile ranges (a percentile of the whole calibration set would need all of it in memory).
struct Ranges {
    clip: Clip,
    sum: Vec<Option<(Range, usize)>>,
}

impl Observer for Ranges {
    fn batch_norm(&mut self, _node: usize, _mean: &[f32], _var: &[f32]) {}

    fn activation(&mut self, tensor: usize, x: Values<'_>) {
        let r = clip_range_of(x.data, self.clip);
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

/// `params` with every BatchNorm's running statistics set to the population statistics of the
/// batch statistics the simulation under `opts` normalises `batches` with.
#[allow(clippy::too_many_arguments)]
fn population_stats(
    net: &Net,
    lowered: &Lowered,
    params: &ParamSet,
    engine: &SimEngine<'_>,
    opts: SimOptions<'_>,
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
) -> Result<ParamSet, NativeError> {
    let mut bn = BnSums::default();
    for b in batches {
        engine.logits(net, lowered, b, shape, opts, Some(&mut bn))?;
    }
    let mut running = RunningStats(vec![None; params.layers.len()]);
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
        running.0[node] = Some((mean, var));
    }
    Ok(with_running(params, &running, device))
}

/// Calibrate `params` on `batches` of training images (natively where `device` is the CPU).
pub fn calibrate(
    net: &Net,
    lowered: &Lowered,
    params: ParamSet,
    config: &QuantConfig,
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
) -> Result<Calibration, NativeError> {
    calibrate_sharing(
        net,
        lowered,
        params,
        config,
        shape,
        batches,
        device,
        &mut FloatReference::default(),
    )
}

/// [`calibrate`], taking the float net's statistics from `shared` when an earlier bit-width
/// computed them (and leaving them there for the next).
#[allow(clippy::too_many_arguments)]
pub fn calibrate_sharing(
    net: &Net,
    lowered: &Lowered,
    params: ParamSet,
    config: &QuantConfig,
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
    shared: &mut FloatReference,
) -> Result<Calibration, NativeError> {
    // 1. BN population statistics: the float net's (the float reference, and what the device
    //    folds under `BnStats::Float`), and the quantized net's as QAT trains it.
    let float = SimOptions {
        quant: None,
        acts: Acts::Float,
        bn: BnMode::Batch,
        training: false,
        noise_seed: 0,
    };
    let engine = SimEngine::new(&params, device);
    let float_params = match &shared.params {
        Some(p) => p.clone(),
        None => {
            let p = population_stats(
                net, lowered, &params, &engine, float, shape, batches, device,
            )?;
            shared.params = Some(p.clone());
            p
        }
    };
    let params = match config.bn_stats {
        BnStats::Float => float_params.clone(),
        BnStats::Quantized => {
            let as_trained = SimOptions {
                quant: Some(config),
                acts: Acts::Batch,
                bn: BnMode::Batch,
                training: false,
                noise_seed: 0,
            };
            population_stats(
                net, lowered, &params, &engine, as_trained, shape, batches, device,
            )?
        }
    };

    // 2. Activation ranges with quantized weights and the calibrated statistics.
    let mut ranges = Ranges {
        clip: config.act_clip,
        sum: vec![None; lowered.tensors.len()],
    };
    // `ActCalib::Quantized` measures each range on the values the device computes it from (the
    // layers before it quantized with each batch's own ranges, as QAT trains); at 2 bits the
    // float-upstream ranges fit a GHN-QAT net badly: on one W2A2 net they cost 6.5 of the 16.2
    // points its quantized simulation has (`ghnq finetune --deploy-gap`).
    let as_deployed = SimOptions {
        quant: Some(config),
        acts: match config.act_calib {
            ActCalib::Float => Acts::Float,
            ActCalib::Quantized => Acts::Batch,
        },
        bn: BnMode::Running,
        training: false,
        noise_seed: 0,
    };
    let mut samples = 0;
    let engine = SimEngine::new(&params, device);
    for b in batches {
        engine.logits(net, lowered, b, shape, as_deployed, Some(&mut ranges))?;
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
    Ok(Calibration {
        params,
        float_params,
        acts,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghnq_core::cnn::LayerParams;
    use ghnq_core::sources::SyntheticImages;
    use ghnq_core::train::{ImageSource, to_tensors};
    use ghnq_quant::config::Precision;
    use ghnq_quant::fake::host_values;
    use ghnq_quant::sim;

    const SHAPE: ImageShape = ImageShape::FASHION_MNIST;

    /// Records the statistics each BN node normalised with.
    #[derive(Default)]
    struct Seen(Vec<(usize, Vec<f32>, Vec<f32>)>);

    impl Observer for Seen {
        fn batch_norm(&mut self, node: usize, mean: &[f32], var: &[f32]) {
            self.0.push((node, mean.to_vec(), var.to_vec()));
        }
        fn activation(&mut self, _tensor: usize, _x: Values<'_>) {}
    }

    fn stored(params: &ParamSet, node: usize) -> (Vec<f32>, Vec<f32>) {
        match &params.layers[node] {
            LayerParams::BatchNorm {
                running: Some((m, v)),
                ..
            } => (host_values(m), host_values(v)),
            other => panic!("node {node}: {other:?}"),
        }
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
    }

    /// Records each quantization root's percentile range as the simulation saw it.
    struct RangesSeen(Vec<(usize, Range)>);

    impl Observer for RangesSeen {
        fn batch_norm(&mut self, _node: usize, _mean: &[f32], _var: &[f32]) {}
        fn activation(&mut self, tensor: usize, x: Values<'_>) {
            self.0
                .push((tensor, clip_range_of(x.data, Clip::Percentile(1.0))));
        }
    }

    /// Calibrated on one batch under `ActCalib::Quantized`, every activation's scale and zero
    /// point come from the range its tensor has when the layers before it are quantized (the
    /// device's net); under `Float`, from the float-activation forward; at 2 bits they differ.
    #[test]
    fn activation_ranges_are_measured_on_the_net_act_calib_names() {
        let dev = Device::flex();
        let net = crate::deploy_gap::tests::conv_stack(&[8, 8, 8], 1, true);
        let lowered = Lowered::new(&net).unwrap();
        let batch = vec![SyntheticImages::new(SHAPE, 10, 100, 4).next_batch(32)];
        let params = ParamSet::init_random_seeded(&net, 7, &dev);
        let (x, _) = to_tensors(&batch[0], SHAPE, &dev);
        let config = QuantConfig {
            act_clip: Clip::Percentile(1.0),
            act_calib: ActCalib::Quantized,
            ..QuantConfig::paper(Precision::new(2, 2))
        };
        let float_config = QuantConfig {
            act_calib: ActCalib::Float,
            ..config.clone()
        };
        let cal = calibrate(&net, &lowered, params.clone(), &config, SHAPE, &batch, &dev).unwrap();
        let float_cal =
            calibrate(&net, &lowered, params, &float_config, SHAPE, &batch, &dev).unwrap();
        let seen = |acts: Acts<'_>| {
            let opts = SimOptions {
                quant: Some(&config),
                acts,
                bn: BnMode::Running,
                training: false,
                noise_seed: 0,
            };
            let mut seen = RangesSeen(Vec::new());
            let _ = sim::forward(
                &net,
                &lowered,
                &cal.params,
                x.clone(),
                opts,
                Some(&mut seen),
            );
            seen.0
        };
        let (quantized, float) = (seen(Acts::Batch), seen(Acts::Float));
        assert!(quantized.len() >= 3);
        let mut differ = 0;
        for ((t, r), (_, f)) in quantized.iter().zip(&float) {
            let bits = tensor_bits(&net, &lowered, *t, &config);
            // The engines agree to float rounding (calibration runs natively, this on burn).
            let same = |a: AffineParams, b: AffineParams| {
                (a.zero_point, a.bits) == (b.zero_point, b.bits)
                    && (a.scale - b.scale).abs() <= 1e-5 * b.scale
            };
            let (q, f) = (
                AffineParams::from_range(*r, bits),
                AffineParams::from_range(*f, bits),
            );
            assert!(
                same(cal.acts[*t], q),
                "tensor {t}: {:?} vs {q:?}",
                cal.acts[*t]
            );
            assert!(
                same(float_cal.acts[*t], f),
                "tensor {t}: {:?} vs {f:?}",
                float_cal.acts[*t]
            );
            differ += usize::from(!same(float_cal.acts[*t], cal.acts[*t]));
        }
        assert!(
            differ > 0,
            "float and quantized upstream agree: the test shows nothing"
        );
    }

    /// Calibrated on one batch, the stored statistics are those the chosen net normalised that
    /// batch with: the float net's under `Float`, the quantized simulation's (as QAT trains)
    /// under `Quantized`, and at 4 bits the two differ. The float reference keeps the float ones.
    #[test]
    fn bn_statistics_come_from_the_net_the_config_names() {
        let dev = Device::flex();
        let net = crate::deploy_gap::tests::conv_stack(&[8, 8, 8], 1, true);
        let lowered = Lowered::new(&net).unwrap();
        let batch = vec![SyntheticImages::new(SHAPE, 10, 100, 4).next_batch(32)];
        let params = ParamSet::init_random_seeded(&net, 7, &dev);
        let (x, _) = to_tensors(&batch[0], SHAPE, &dev);
        let mut differs = false;
        for bn_stats in [BnStats::Float, BnStats::Quantized] {
            let config = QuantConfig {
                bn_stats,
                ..QuantConfig::paper(Precision::new(4, 4))
            };
            let cal =
                calibrate(&net, &lowered, params.clone(), &config, SHAPE, &batch, &dev).unwrap();
            let seen = |quant: Option<&QuantConfig>, acts: Acts<'_>| {
                let opts = SimOptions {
                    quant,
                    acts,
                    bn: BnMode::Batch,
                    training: false,
                    noise_seed: 0,
                };
                let mut seen = Seen::default();
                let _ = sim::forward(&net, &lowered, &params, x.clone(), opts, Some(&mut seen));
                seen.0
            };
            let float = seen(None, Acts::Float);
            let quantized = seen(Some(&config), Acts::Batch);
            assert_eq!(float.len(), 3);
            let device_folds = if bn_stats == BnStats::Float {
                &float
            } else {
                &quantized
            };
            for ((node, m, v), (_, qm, qv)) in device_folds.iter().zip(&quantized) {
                let (sm, sv) = stored(&cal.params, *node);
                assert!(close(&sm, m) && close(&sv, v), "{bn_stats:?} node {node}");
                differs |= !close(qm, &stored(&cal.float_params, *node).0)
                    || !close(qv, &stored(&cal.float_params, *node).1);
            }
            for (node, m, v) in &float {
                let (fm, fv) = stored(&cal.float_params, *node);
                assert!(
                    close(&fm, m) && close(&fv, v),
                    "float reference, node {node}"
                );
            }
        }
        assert!(
            differs,
            "4-bit statistics equal the float ones: the test shows nothing"
        );
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use ghnq_core::sources::{SyntheticImages, arch_source};
    use ghnq_core::train::ImageSource;
    use ghnq_quant::config::Precision;

    /// Calibration on the native engine against burn's on a deep `test`-split net at W4A4: the
    /// quantized population statistics come from batch ranges and batch statistics, where a
    /// float-noise flip moves later scales, so the engines may differ, but no more than the
    /// native engine differs from itself on images moved by one part in a million. Measured
    /// (test-000000, 4 × 64 images, 1,408 statistics): engines median 1.0 %, max 9 %; float
    /// noise median 0.9 %, max 12 %.
    #[test]
    #[ignore = "a measurement (a few seconds in release): cargo test --release -p ghnq-export -- --ignored calibration_engines"]
    fn calibration_engines_agree() {
        let dev = Device::flex();
        let shape = ImageShape::CIFAR10;
        let mut archs = arch_source("test", shape, 10, 0).unwrap();
        let net = archs.sample();
        let lowered = Lowered::new(&net).unwrap();
        let params = ParamSet::init_random_seeded(&net, 7, &dev);
        let mut src = SyntheticImages::new(shape, 10, 1000, 3);
        let batches: Vec<LabeledBatch> = (0..4).map(|_| src.next_batch(64)).collect();
        let config = QuantConfig::paper(Precision::new(4, 4));
        let as_trained = SimOptions {
            quant: Some(&config),
            acts: Acts::Batch,
            bn: BnMode::Batch,
            training: false,
            noise_seed: 0,
        };
        let stats = |engine: &SimEngine<'_>, batches: &[LabeledBatch]| {
            let p = population_stats(
                &net, &lowered, &params, engine, as_trained, shape, batches, &dev,
            )
            .unwrap();
            RunningStats::from_params(&p)
        };
        let spread = |a: &RunningStats, b: &RunningStats| {
            let mut rel: Vec<f64> = Vec::new();
            for (a, b) in a.0.iter().zip(&b.0) {
                if let (Some((ma, va)), Some((mb, vb))) = (a, b) {
                    for ((x, y), s) in ma.iter().zip(mb).zip(vb) {
                        rel.push(f64::from((x - y).abs() / s.sqrt().max(1e-6)));
                    }
                    for (x, y) in va.iter().zip(vb) {
                        rel.push(f64::from((x - y).abs() / y.max(1e-12)));
                    }
                }
            }
            rel.sort_by(f64::total_cmp);
            let q = |f: f64| rel[((rel.len() - 1) as f64 * f) as usize];
            (rel.len(), q(0.5), q(0.9), q(1.0))
        };
        let native_engine = SimEngine::new(&params, &dev);
        let native = stats(&native_engine, &batches);
        let burn = stats(&SimEngine::Burn(&params, dev.clone()), &batches);
        // The control: the native engine against itself on images moved by one part in 10^6,
        // i.e. what float noise alone does to these statistics.
        let nudged: Vec<LabeledBatch> = batches
            .iter()
            .map(|b| LabeledBatch {
                images: b.images.iter().map(|v| v * (1.0 + 1e-6)).collect(),
                labels: b.labels.clone(),
            })
            .collect();
        let control = stats(&native_engine, &nudged);
        let (engines, noise) = (spread(&native, &burn), spread(&native, &control));
        assert!(
            engines.1 <= 3.0 * noise.1 + 1e-4 && engines.2 <= 3.0 * noise.2 + 1e-3,
            "the engines differ more than float noise does: {engines:?} vs {noise:?}"
        );
        for (what, (n, med, p90, max)) in [
            ("native vs burn", engines),
            ("native vs native on images x (1 + 1e-6)", noise),
        ] {
            eprintln!(
                "{}: {what}: {n} W4A4 population statistics (means in standard deviations, variances relative): median {med:.2e}, 90th percentile {p90:.2e}, max {max:.2e}",
                net.name
            );
        }
    }
}
