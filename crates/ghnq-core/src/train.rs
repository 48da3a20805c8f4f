//! What training and evaluation share, whatever is trained (a net's own parameters in
//! `cnn::train`, the GHN in `ghn::train`) and wherever the parameters go next (quantization,
//! export, the study): labelled image batches and their sources, architecture sources, the loss,
//! top-k hits, reading tensors back to the host and the mean ± standard error / max summary.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::arch::{ImageShape, Net};

/// A labelled image batch, NCHW, already normalised.
#[derive(Debug, Clone)]
pub struct LabeledBatch {
    /// `n · c · h · w` values.
    pub images: Vec<f32>,
    /// `n` labels.
    pub labels: Vec<usize>,
}

/// Where training images come from (the `data` module's loaders implement it).
pub trait ImageSource {
    /// Shape of one image.
    fn shape(&self) -> ImageShape;
    /// The next training batch of `batch` images (augmented, shuffled, wrapping around epochs).
    fn next_batch(&mut self, batch: usize) -> LabeledBatch;
    /// Number of training images (defines an epoch).
    fn len(&self) -> usize;
    /// True when there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where training architectures come from (the `arch::splits` generator implements it).
pub trait ArchSource {
    /// The next architecture.
    fn sample(&mut self) -> Net;
}

impl<F: FnMut() -> Net> ArchSource for F {
    fn sample(&mut self) -> Net {
        self()
    }
}

/// Batch → tensors on `device`.
pub fn to_tensors(
    b: &LabeledBatch,
    shape: ImageShape,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let n = b.labels.len();
    let x = Tensor::from_data(
        TensorData::new(b.images.clone(), [n, shape.c, shape.h, shape.w]),
        device,
    );
    let y = Tensor::from_data(
        TensorData::new(b.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [n]),
        device,
    );
    (x, y)
}

/// Mean cross-entropy of logits `[n, k]` against labels `[n]`.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let lp = log_softmax(logits, 1);
    -lp.gather(1, labels.reshape([n, 1])).mean()
}

/// Top-k hits (k = 1 and 5) of logits `[n, classes]` against labels.
pub fn topk_hits(logits: &Tensor<2>, labels: &[usize]) -> (usize, usize) {
    let [n, k] = logits.dims();
    let v: Vec<f32> = logits
        .to_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    topk_hits_rows(&v, k, &labels[..n.min(labels.len())])
}

/// [`topk_hits`] on row-major logits `[labels.len(), k]` held on the host.
pub fn topk_hits_rows(v: &[f32], k: usize, labels: &[usize]) -> (usize, usize) {
    let (mut top1, mut top5) = (0, 0);
    for (r, &label) in labels.iter().enumerate() {
        if (r + 1) * k > v.len() {
            break;
        }
        let row = &v[r * k..(r + 1) * k];
        let target = row[label];
        // Rank = number of classes strictly better (NaN logits count as misses).
        let better = row.iter().filter(|&&x| x > target || x.is_nan()).count();
        if target.is_nan() {
            continue;
        }
        if better == 0 {
            top1 += 1;
        }
        if better < 5 {
            top5 += 1;
        }
    }
    (top1, top5)
}

/// The values of a tensor on the host (for ranges and percentiles).
pub fn host_values<const D: usize>(x: &Tensor<D>) -> Vec<f32> {
    x.to_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// Mean, standard error and max of a list of values.
pub fn mean_se_max(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (
        mean,
        (var / n).sqrt(),
        v.iter().cloned().fold(f64::MIN, f64::max),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_standard_error_max() {
        let (m, se, mx) = mean_se_max(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((se - (1.6666666666666667f64 / 4.0).sqrt()).abs() < 1e-12);
        assert_eq!(mx, 4.0);
    }
}
