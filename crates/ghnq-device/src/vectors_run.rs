//! `ghnq run`'s content: the host build of the edge runtime over a test-vector bundle.

use crate::DeviceError;
use edge_runtime::Interpreter;
use shared_format::{Model, TestVectors, vectors::rank_of};

/// What a run over a bundle found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    /// Samples run.
    pub samples: usize,
    /// Samples whose label has rank 0.
    pub top1: usize,
    /// Samples whose label ranks below 5.
    pub top5: usize,
    /// Samples whose logits differ from the bundle's expected logits in any byte.
    pub disagreements: usize,
    /// Total differing logit bytes.
    pub differing_bytes: usize,
    /// First disagreeing sample, for debugging.
    pub first_disagreement: Option<usize>,
    /// Whether the bundle names this model's CRC (made from this exact blob).
    pub same_model: bool,
}

impl RunReport {
    /// Top-1 accuracy in percent.
    pub fn top1_percent(&self) -> f64 {
        percent(self.top1, self.samples)
    }

    /// Top-5 accuracy in percent.
    pub fn top5_percent(&self) -> f64 {
        percent(self.top5, self.samples)
    }
}

fn percent(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

/// Runs every sample (or the first `limit`) and compares with the expected logits.
pub fn run(
    model: &Model<'_>,
    vectors: &TestVectors<'_>,
    limit: Option<usize>,
) -> Result<RunReport, DeviceError> {
    let input_len = model.input_tensor().bytes() as usize;
    let output_len = model.output_tensor().bytes() as usize;
    if vectors.input_len() != input_len || vectors.output_len() != output_len {
        return Err(DeviceError::BundleShape {
            bundle_input: vectors.input_len(),
            bundle_output: vectors.output_len(),
            model_input: input_len,
            model_output: output_len,
        });
    }
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interpreter = Interpreter::new(model, &mut arena)?;
    let mut report = RunReport {
        same_model: vectors.model_crc() == model.header().crc32,
        ..RunReport::default()
    };
    for (i, sample) in vectors.iter().take(limit.unwrap_or(usize::MAX)).enumerate() {
        let logits = interpreter.run(sample.input)?;
        let rank = rank_of(logits, sample.label as usize);
        report.samples += 1;
        report.top1 += usize::from(rank == 0);
        report.top5 += usize::from(rank < 5);
        let differing = logits
            .iter()
            .zip(sample.expected)
            .filter(|(a, b)| a != b)
            .count();
        if differing > 0 {
            report.disagreements += 1;
            report.differing_bytes += differing;
            report.first_disagreement.get_or_insert(i);
        }
    }
    Ok(report)
}
