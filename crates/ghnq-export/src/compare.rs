//! The exported blob on the host build of the edge runtime beside the quantized float simulation
//! it came from: accuracy of both, their top-1 agreement, and how far apart their logits are in
//! quantization steps. The runtime's logits are what a test-vector bundle records.

use burn::tensor::Device;
use edge_runtime::Interpreter;
use shared_format::vectors::{rank_of, top1};
use shared_format::{Model, TestVectorsBuilder};

use super::{Calibration, FloatReference};
use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::cnn::BnMode;
use ghnq_core::cnn::native::{self, NetValues, RunningStats, nchw_to_nhwc};
use ghnq_core::train::{LabeledBatch, to_tensors};
use ghnq_quant::config::QuantConfig;
use ghnq_quant::fake::host_values;
use ghnq_quant::lower::Lowered;
use ghnq_quant::sim::{Acts, SimOptions};
use ghnq_quant::sim_native::{SimEngine, is_cpu};

/// Why an exported blob could not be compared with its simulation, or bundled with vectors.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The blob does not decode (a bug in the exporter: it wrote it).
    #[error("decoding the exported blob: {0}")]
    Decode(#[from] shared_format::FormatError),
    /// The edge runtime refused the blob or an input.
    #[error("running the exported blob on the host runtime: {0}")]
    Runtime(#[from] edge_runtime::Error),
    /// A test vector that does not fit the blob's tensors.
    #[error("building the test-vector bundle: {0}")]
    Vectors(#[from] shared_format::BuildError),
    /// The float reference or the simulation could not run the net.
    #[error(transparent)]
    Native(#[from] ghnq_core::cnn::native::NativeError),
}

type Result<T> = std::result::Result<T, CompareError>;

/// Float simulation against integer runtime over the same images.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// Images compared.
    pub samples: usize,
    /// Top-1 / top-5 (%) of the quantized float simulation.
    pub sim_top1: f64,
    /// Top-5 of the simulation.
    pub sim_top5: f64,
    /// Top-1 (%) of the integer runtime.
    pub int_top1: f64,
    /// Top-5 of the integer runtime.
    pub int_top5: f64,
    /// Images whose top-1 class is the same in both (%).
    pub top1_agreement: f64,
    /// Largest logit difference, in logit quantization steps.
    pub max_step_diff: u32,
    /// Share of logits that differ by more than one step (%).
    pub over_one_step: f64,
    /// Share of logits that are identical (%).
    pub exact_logits: f64,
    /// QMSE (the paper's §3.1): mean squared difference between the float net's outputs
    /// (softmax of its logits, calibrated BN) and the integer net's dequantized outputs.
    pub qmse: f64,
    /// QCE (§3.1): cross-entropy between the float net's outputs and the integer net's
    /// (equals the float net's entropy when quantization changes nothing).
    pub qce: f64,
    /// The first samples run (as many as asked for), for a test-vector bundle.
    #[serde(skip)]
    pub kept: Vec<KeptSample>,
}

/// One sample as the device sees it: quantized input, label, and the host runtime's logits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeptSample {
    /// HWC i8 input.
    pub input: Vec<i8>,
    /// Label.
    pub label: u8,
    /// The host runtime's logits.
    pub logits: Vec<i8>,
}

/// A test-vector bundle of `samples` for `blob` (expected logits = the host runtime's).
pub fn vectors(blob: &[u8], samples: &[KeptSample]) -> Result<Vec<u8>> {
    let model = Model::from_bytes(blob)?;
    let mut b = TestVectorsBuilder::new(
        model.header().crc32,
        model.input_tensor().bytes() as usize,
        model.output_tensor().bytes() as usize,
    );
    for s in samples {
        b.push(&s.input, s.label, &s.logits)?;
    }
    Ok(b.finish()?)
}

/// HWC i8 input of image `i` of an NCHW batch, quantized like the blob's input tensor.
pub fn quantize_image(
    b: &LabeledBatch,
    i: usize,
    shape: ImageShape,
    input: ghnq_quant::AffineParams,
) -> Vec<i8> {
    let (h, w, c) = (shape.h, shape.w, shape.c);
    let img = &b.images[i * c * h * w..(i + 1) * c * h * w];
    let mut out = Vec::with_capacity(h * w * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                out.push(input.quantize(img[(ch * h + y) * w + x]));
            }
        }
    }
    out
}

/// Top-1 (%) of the blob alone on the host runtime over `batches`: [`compare`]'s `int_top1`
/// without the simulation and the float reference. WHY: a GHN-QAT run's validation reads only
/// this figure, and those two passes were about a third of each validation's time.
pub fn int_top1(
    blob: &[u8],
    cal: &Calibration,
    shape: ImageShape,
    batches: &[LabeledBatch],
) -> Result<f64> {
    let model = Model::from_bytes(blob)?;
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = Interpreter::new(&model, &mut arena)?;
    let (mut hits, mut n) = (0usize, 0usize);
    for b in batches {
        for (i, &label) in b.labels.iter().enumerate() {
            let input = quantize_image(b, i, shape, cal.acts[0]);
            hits += usize::from(rank_of(interp.run(&input)?, label) == 0);
            n += 1;
        }
    }
    Ok(100.0 * hits as f64 / n.max(1) as f64)
}

/// Run both over `batches`, keeping the first `keep` samples (with the runtime's logits).
#[allow(clippy::too_many_arguments)]
pub fn compare(
    net: &Net,
    lowered: &Lowered,
    cal: &Calibration,
    config: &QuantConfig,
    blob: &[u8],
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
    keep: usize,
    shared: &mut FloatReference,
) -> Result<Comparison> {
    let model = Model::from_bytes(blob)?;
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = Interpreter::new(&model, &mut arena)?;
    let out_p = cal.acts[lowered.output];
    let opts = SimOptions {
        quant: Some(config),
        acts: Acts::Fixed(&cal.acts),
        bn: BnMode::Running,
        training: false,
        noise_seed: 0,
    };
    // The float reference and the simulation run on the native engine on the CPU (burn
    // elsewhere).
    let engine = SimEngine::new(&cal.params, device);
    let native = is_cpu(device).then(|| {
        (
            NetValues::from_params(&cal.float_params),
            RunningStats::from_params(&cal.float_params),
        )
    });
    let mut c = Comparison::default();
    let (mut qmse, mut qce) = (0.0f64, 0.0f64);
    let (mut s1, mut s5, mut i1, mut i5, mut agree) = (0, 0, 0, 0, 0);
    let (mut over, mut exact, mut logits_n) = (0, 0, 0);
    // The float net's logits: the same for every bit-width of these parameters.
    if shared.logits.len() != batches.len() {
        shared.logits = batches
            .iter()
            .map(|b| -> Result<Vec<f32>> {
                Ok(match &native {
                    Some((values, running)) => {
                        let m = b.labels.len();
                        let xs = nchw_to_nhwc(&b.images, m, shape.c, shape.h, shape.w);
                        native::logits_running(net, values, running, &xs, m)?
                    }
                    None => host_values(&ghnq_core::cnn::forward(
                        net,
                        &cal.float_params,
                        to_tensors(b, shape, device).0,
                        BnMode::Running,
                        false,
                    )),
                })
            })
            .collect::<Result<_>>()?;
    }
    for (b, float_logits) in batches.iter().zip(&shared.logits) {
        let sim_logits = engine.logits(net, lowered, b, shape, opts, None)?;
        let k = net.classes;
        for (i, &label) in b.labels.iter().enumerate() {
            let input = quantize_image(b, i, shape, cal.acts[0]);
            let got = interp.run(&input)?.to_vec();
            let f = &float_logits[i * k..(i + 1) * k];
            let q: Vec<f32> = got.iter().map(|&v| out_p.dequantize(v)).collect();
            let (pf, pq, lq) = (softmax(f), softmax(&q), log_softmax(&q));
            qmse += pf
                .iter()
                .zip(&pq)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                / k as f64;
            qce -= pf.iter().zip(&lq).map(|(p, l)| p * l).sum::<f64>();
            let sim_codes: Vec<i8> = sim_logits[i * k..(i + 1) * k]
                .iter()
                .map(|&v| out_p.quantize(v))
                .collect();
            let (rs, ri) = (rank_of(&sim_codes, label), rank_of(&got, label));
            s1 += usize::from(rs == 0);
            s5 += usize::from(rs < 5);
            i1 += usize::from(ri == 0);
            i5 += usize::from(ri < 5);
            agree += usize::from(top1(&sim_codes) == top1(&got));
            for (a, b) in sim_codes.iter().zip(&got) {
                let d = (i32::from(*a) - i32::from(*b)).unsigned_abs();
                c.max_step_diff = c.max_step_diff.max(d);
                over += usize::from(d > 1);
                exact += usize::from(d == 0);
                logits_n += 1;
            }
            if c.kept.len() < keep {
                c.kept.push(KeptSample {
                    input: input.clone(),
                    label: label as u8,
                    logits: got.clone(),
                });
            }
            c.samples += 1;
        }
    }
    let pct = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    c.sim_top1 = pct(s1, c.samples);
    c.sim_top5 = pct(s5, c.samples);
    c.int_top1 = pct(i1, c.samples);
    c.int_top5 = pct(i5, c.samples);
    c.top1_agreement = pct(agree, c.samples);
    c.over_one_step = pct(over, logits_n);
    c.exact_logits = pct(exact, logits_n);
    c.qmse = qmse / c.samples.max(1) as f64;
    c.qce = qce / c.samples.max(1) as f64;
    Ok(c)
}

fn log_softmax(v: &[f32]) -> Vec<f64> {
    let m = v.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let lse = v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln() + m;
    v.iter().map(|&x| x as f64 - lse).collect()
}

fn softmax(v: &[f32]) -> Vec<f64> {
    log_softmax(v).into_iter().map(f64::exp).collect()
}
