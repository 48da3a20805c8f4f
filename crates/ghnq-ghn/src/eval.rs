//! Evaluation of GHN-predicted parameters (GHN_SPEC §3.5): predict all parameters of a net, run the
//! test images in fixed-order batches with BN on each batch's own statistics, dropout off; report
//! top-1/top-5 per net and mean ± standard error / max over a split.

use burn::tensor::Device;

use super::graph::GhnGraph;
use super::model::Ghn;
use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::cnn::native::{NetValues, nchw_to_nhwc};
use ghnq_core::cnn::{BnMode, ParamSet, forward};
use ghnq_core::train::{LabeledBatch, to_tensors, topk_hits, topk_hits_rows};

/// Why a net could not be predicted or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The net has no GHN graph (an op the GHN has no primitive for, or a malformed net).
    #[error(transparent)]
    Graph(#[from] super::graph::GraphError),
    /// The native engine could not run the net with these parameters.
    #[error(transparent)]
    Native(#[from] ghnq_core::cnn::native::NativeError),
    /// A net built for other images (say a Fashion-MNIST net on CIFAR-10).
    #[error(
        "net {net} takes {}x{}x{} images but the data set has {}x{}x{}: generate or write the \
         net for this data set",
        net_input.h, net_input.w, net_input.c, data.h, data.w, data.c
    )]
    InputShape {
        /// The net's name.
        net: String,
        /// The images the net takes.
        net_input: ImageShape,
        /// The data set's images.
        data: ImageShape,
    },
    /// The parameters to evaluate could not be made (`evaluate_with`'s `params_for`).
    #[error("parameters of net {net}: {source}")]
    Params {
        /// The net's name.
        net: String,
        /// Why `params_for` failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Accuracy of one net.
#[derive(Debug, Clone, PartialEq)]
pub struct NetAccuracy {
    /// Net name.
    pub name: String,
    /// Top-1 accuracy in %.
    pub top1: f64,
    /// Top-5 accuracy in %.
    pub top5: f64,
    /// Parameter count of the net.
    pub params: usize,
    /// GHN prediction time in ms.
    pub predict_ms: f64,
}

/// Predict the parameters of one net (non-autodiff device recommended).
pub fn predict_one(ghn: &Ghn, net: &Net, device: &Device) -> Result<ParamSet, EvalError> {
    predict_one_for(ghn, net, None, device)
}

/// [`predict_one`] for a target bit-width (`None` = float), which a bit-conditioned GHN reads.
pub fn predict_one_for(
    ghn: &Ghn,
    net: &Net,
    bits: Option<ghnq_quant::config::Precision>,
    device: &Device,
) -> Result<ParamSet, EvalError> {
    let g = GhnGraph::build(net, ghn.config.s_max)?;
    Ok(ghn.predict_for(&[net], &[&g], bits, device).remove(0))
}

/// Top-1 / top-5 (%) of `params` on the batches. A net built for other images (say a
/// Fashion-MNIST net on CIFAR-10) is an error naming both shapes, not a tensor-shape panic.
pub fn accuracy(
    net: &Net,
    params: &ParamSet,
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
) -> Result<(f64, f64), EvalError> {
    if net.input != shape {
        return Err(EvalError::InputShape {
            net: net.name.clone(),
            net_input: net.input,
            data: shape,
        });
    }
    let (mut t1, mut t5, mut n) = (0usize, 0usize, 0usize);
    // On the CPU the nets run on the native engine (the same logits as burn's executor, without
    // its per-op overhead); elsewhere (CUDA) on burn.
    let native = ghnq_core::cnn::native::is_cpu(device).then(|| NetValues::from_params(params));
    for b in batches {
        let (a, c) = match &native {
            Some(values) => {
                let m = b.labels.len();
                let x = nchw_to_nhwc(&b.images, m, shape.c, shape.h, shape.w);
                let logits = ghnq_core::cnn::native::logits(net, values, &x, m)?;
                topk_hits_rows(&logits, net.classes, &b.labels)
            }
            None => {
                let (x, _) = to_tensors(b, shape, device);
                let logits = forward(net, params, x, BnMode::Batch, false);
                topk_hits(&logits, &b.labels)
            }
        };
        t1 += a;
        t5 += c;
        n += b.labels.len();
    }
    Ok((
        100.0 * t1 as f64 / n.max(1) as f64,
        100.0 * t5 as f64 / n.max(1) as f64,
    ))
}

/// Evaluate every net with the parameters `params_for` gives it (GHN prediction, random
/// initialisation or SGD training: the baselines are measured exactly like the GHN). `predict_ms`
/// is the time `params_for` took, tensors forced. `on_net` sees each result as it is measured.
pub fn evaluate_with<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    nets: &[Net],
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
    mut params_for: impl FnMut(&Net) -> Result<ParamSet, E>,
    mut on_net: impl FnMut(&NetAccuracy),
) -> Result<Vec<NetAccuracy>, EvalError> {
    let mut out = Vec::with_capacity(nets.len());
    for net in nets {
        let t = std::time::Instant::now();
        let p = params_for(net).map_err(|e| EvalError::Params {
            net: net.name.clone(),
            source: e.into(),
        })?;
        // Force the lazy tensors so the time covers the whole prediction.
        let _ = p.named_tensors(net);
        let predict_ms = t.elapsed().as_secs_f64() * 1e3;
        let p = p.without_autodiff();
        let (top1, top5) = accuracy(net, &p, shape, batches, device)?;
        let r = NetAccuracy {
            name: net.name.clone(),
            top1,
            top5,
            params: net.param_count(),
            predict_ms,
        };
        on_net(&r);
        out.push(r);
    }
    Ok(out)
}

/// Predict (with `ghn`) and evaluate every net.
pub fn evaluate(
    ghn: &Ghn,
    nets: &[Net],
    shape: ImageShape,
    batches: &[LabeledBatch],
    device: &Device,
) -> Result<Vec<NetAccuracy>, EvalError> {
    evaluate_with(
        nets,
        shape,
        batches,
        device,
        |net| predict_one(ghn, net, device),
        |_| {},
    )
}
