//! Export: a net and its float parameters (GHN-predicted, trained or loaded) → an integer model
//! blob and a test-vector bundle. Calibrate BN statistics and activation ranges on training
//! images, fold, quantize, build the blob with the shared-format builder, and run it on the host
//! build of the edge runtime beside the quantized float simulation.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blob;
pub mod calibrate;
pub mod compare;
pub mod deploy_gap;
pub mod float_reference;
pub mod graph;

pub use blob::{Provenance, build, build_described};
pub use calibrate::{Calibration, calibrate, calibrate_sharing};
pub use compare::{CompareError, Comparison, KeptSample, compare, vectors};
pub use deploy_gap::{DeployGap, deploy_gap};
pub use float_reference::FloatReference;
pub use graph::QuantGraph;

use burn::tensor::Device;
use shared_format::Rounding;

use ghnq_core::arch::{ImageShape, Net};
use ghnq_core::cnn::ParamSet;
use ghnq_core::train::LabeledBatch;
use ghnq_quant::config::QuantConfig;
use ghnq_quant::lower::Lowered;

/// A net exported: its device graph, calibration and blob.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The device graph.
    pub lowered: Lowered,
    /// Calibrated parameters and activation quantization.
    pub calibration: Calibration,
    /// The model blob.
    pub blob: Vec<u8>,
    /// The float scales, zero points and quantized weights the blob's integers come from (what a
    /// `.tflite` writer needs: `ghnq_tflite::export()`).
    pub graph: QuantGraph,
}

/// Lower, calibrate on `calibration` images and build the blob.
#[allow(clippy::too_many_arguments)]
pub fn export(
    net: &Net,
    params: ParamSet,
    config: &QuantConfig,
    rounding: Rounding,
    shape: ImageShape,
    calibration: &[LabeledBatch],
    provenance: &Provenance,
    device: &Device,
) -> Result<Exported, ExportError> {
    export_sharing(
        net,
        params,
        config,
        rounding,
        shape,
        calibration,
        provenance,
        device,
        &mut FloatReference::default(),
    )
}

/// [`export`], sharing the float net's calibration with the other bit-widths of `params`
/// ([`FloatReference`]).
#[allow(clippy::too_many_arguments)]
pub fn export_sharing(
    net: &Net,
    params: ParamSet,
    config: &QuantConfig,
    rounding: Rounding,
    shape: ImageShape,
    calibration: &[LabeledBatch],
    provenance: &Provenance,
    device: &Device,
    shared: &mut FloatReference,
) -> Result<Exported, ExportError> {
    config.layers.check(net)?;
    let lowered = Lowered::new(net)?;
    let cal = calibrate_sharing(
        net,
        &lowered,
        params,
        config,
        shape,
        calibration,
        device,
        shared,
    )?;
    let provenance = Provenance {
        calibration_samples: cal.samples as u32,
        ..provenance.clone()
    };
    let (blob, graph) = build_described(
        net,
        &lowered,
        &cal.params,
        &cal.acts,
        config,
        rounding,
        &provenance,
    )?;
    Ok(Exported {
        lowered,
        calibration: cal,
        blob,
        graph,
    })
}

/// Export, then run the blob beside the simulation on `test` images, keeping the first `keep`
/// samples for a bundle ([`compare::vectors`]): what `ghnq export`, `eval`, `finetune` and
/// `quickstart` all do for each net and bit-width. `shared` carries the float net's statistics
/// and logits from one bit-width of `params` to the next.
#[allow(clippy::too_many_arguments)]
pub fn export_and_compare(
    net: &Net,
    params: ParamSet,
    config: &QuantConfig,
    rounding: Rounding,
    shape: ImageShape,
    calibration: &[LabeledBatch],
    test: &[LabeledBatch],
    provenance: &Provenance,
    device: &Device,
    keep: usize,
    shared: &mut FloatReference,
) -> Result<(Exported, Comparison), ExportAndCompareError> {
    let ex = export_sharing(
        net,
        params,
        config,
        rounding,
        shape,
        calibration,
        provenance,
        device,
        shared,
    )
    .map_err(|source| ExportAndCompareError::Export {
        net: net.name.clone(),
        precision: config.label(),
        source: Box::new(source),
    })?;
    let c = compare(
        net,
        &ex.lowered,
        &ex.calibration,
        config,
        &ex.blob,
        shape,
        test,
        device,
        keep,
        shared,
    )?;
    Ok((ex, c))
}

/// FNV-1a, 64 bits: a stable fingerprint of an architecture's JSON or a checkpoint file for the
/// blob's provenance (not a security hash).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Why a net could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The net has no device lowering.
    #[error(transparent)]
    Lower(#[from] ghnq_quant::lower::LowerError),
    /// The simulation could not run the net with these parameters.
    #[error(transparent)]
    Simulation(#[from] ghnq_core::cnn::native::NativeError),
    /// One layer's op was refused by the format (overflow bound, geometry, ...).
    #[error("layer '{node}' (device op {op}) cannot be exported: {source}")]
    Layer {
        /// IR node name.
        node: String,
        /// Device op index.
        op: usize,
        /// The builder's reason.
        source: shared_format::BuildError,
    },
    /// A BatchNorm without calibrated statistics.
    #[error("BatchNorm '{0}' has no running statistics: calibrate before exporting")]
    Uncalibrated(String),
    /// Parameters do not fit the IR node.
    #[error("layer '{0}' has no parameters of the kind its op needs")]
    Params(String),
    /// A concat with more inputs than the device op takes.
    #[error("concat '{node}' has {inputs} inputs; the device concatenates at most {max}", max = shared_format::MAX_CONCAT_INPUTS)]
    ConcatInputs {
        /// IR node name.
        node: String,
        /// Its input count.
        inputs: usize,
    },
    /// A per-layer precision names no layer of the net (or several).
    #[error(transparent)]
    LayerBits(#[from] ghnq_quant::layers::LayerBitsError),
    /// Weight packing failed.
    #[error("weight packing: {0}")]
    Pack(String),
    /// The builder refused the model as a whole.
    #[error(transparent)]
    Build(shared_format::BuildError),
}

/// Why [`export_and_compare`] failed: the export, or the comparison of its blob.
#[derive(Debug, thiserror::Error)]
pub enum ExportAndCompareError {
    /// The net could not be exported at this precision.
    #[error("exporting {net} at {precision}: {source}")]
    Export {
        /// The net's name.
        net: String,
        /// The precision's label (`w4a4`, ...).
        precision: String,
        /// Why (boxed: an `ExportError` is large, and this is the cold path).
        #[source]
        source: Box<ExportError>,
    },
    /// The exported blob could not be run beside its simulation.
    #[error(transparent)]
    Compare(#[from] compare::CompareError),
}

#[cfg(test)]
mod tests;
