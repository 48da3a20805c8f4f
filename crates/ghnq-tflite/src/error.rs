//! Why a `.tflite` file could not become a blob. Every message names the op index and type (as
//! TFLite's own tools number them) and what the runtime or format lacks, so a user can tell a
//! conversion setting to change from a feature to ask for.

use shared_format::BuildError;

use super::fold::FoldError;
use super::graph::GraphDefect;
use super::refusal::{IoRefusal, OpRefusal};

/// An import failure.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The flatbuffer verifier refused the file (truncated, corrupt, or not TFLite at all).
    #[error("not a valid TensorFlow Lite flatbuffer: {0}")]
    NotTflite(#[from] flatbuffers::InvalidFlatbuffer),
    /// Control flow and multi-signature models have several subgraphs.
    #[error("the model has {0} subgraphs; only single-subgraph models can be imported")]
    Subgraphs(usize),
    /// The runtime runs one input tensor to one output tensor.
    #[error(
        "the model has {inputs} inputs and {outputs} outputs; the runtime supports exactly one of each"
    )]
    Io {
        /// Subgraph inputs.
        inputs: usize,
        /// Subgraph outputs.
        outputs: usize,
    },
    /// A structural defect the flatbuffer verifier cannot see (a dangling operator code or
    /// tensor index). Printed as a defect of op 0, as it always has been.
    #[error("op 0 (graph): {0}")]
    Graph(GraphDefect),
    /// A model input or output tensor the runtime cannot hold.
    #[error("model {role} (tensor {index} '{name}'): {reason}")]
    IoTensor {
        /// "input" or "output".
        role: &'static str,
        /// Tensor index.
        index: usize,
        /// Tensor name.
        name: String,
        /// What is unsupported.
        reason: IoRefusal,
    },
    /// An op, or one of its tensors, the runtime cannot run.
    #[error("op {index} ({op}): {reason}")]
    Op {
        /// Operator index in the subgraph.
        index: usize,
        /// TFLite builtin name, e.g. CONV_2D.
        op: String,
        /// What is unsupported or inconsistent.
        reason: OpRefusal,
    },
    /// Shape arithmetic (int32 ops such as SHAPE, STRIDED_SLICE, PACK) that cannot be evaluated
    /// at import time: the runtime has no int32 tensors, so every such value must be static.
    #[error("op {index} ({op}): shape arithmetic that is not static at import time: {reason}")]
    NotStatic {
        /// Operator index in the subgraph.
        index: usize,
        /// TFLite builtin name, e.g. STRIDED_SLICE.
        op: String,
        /// Which input or option is not static, and why.
        reason: FoldError,
    },
    /// No op produces the model output.
    #[error("the model output (tensor {0}) is not produced by any imported op")]
    OutputNotProduced(usize),
    /// The shared-format builder refused the result (a limit of the format, e.g. a kernel size).
    #[error("the imported model does not fit the blob format: {0}")]
    Build(#[from] BuildError),
}
