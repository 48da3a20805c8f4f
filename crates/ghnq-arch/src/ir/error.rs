//! Every way a net can be invalid, with the node that is to blame.

#[cfg(doc)]
use super::Net;

/// Every way a [`Net`] can be invalid. Node-level variants carry the node index and name so a user can
/// find the culprit in a JSON file.
#[allow(missing_docs)] // The variants' fields are spelled out by their #[error] messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchError {
    /// The net has no nodes at all.
    #[error("net '{net}' has no nodes; node 0 must be an `input` node")]
    Empty { net: String },
    /// Node 0 is not `input`, or an `input` node appears elsewhere.
    #[error("node {node} '{name}': `input` must be node 0 and only node 0 ({problem})")]
    MisplacedInput {
        node: usize,
        name: String,
        problem: String,
    },
    /// An input index does not point at an earlier node (the order must be topological).
    #[error(
        "node {node} '{name}': input {input} is not an earlier node (nodes must be in topological order)"
    )]
    BadInputIndex {
        node: usize,
        name: String,
        input: usize,
    },
    /// The op got the wrong number of inputs.
    #[error("node {node} '{name}': `{op}` takes {expected} input(s), got {got}")]
    WrongInputCount {
        node: usize,
        name: String,
        op: &'static str,
        expected: &'static str,
        got: usize,
    },
    /// The same node is given twice to an `add` or `concat`.
    #[error("node {node} '{name}': input {input} is listed twice; `{op}` needs distinct inputs")]
    DuplicateInput {
        node: usize,
        name: String,
        op: &'static str,
        input: usize,
    },
    /// The op expects a different number of input channels/features than its input provides.
    #[error(
        "node {node} '{name}': expects {expected} input channels/features, its input has {got}"
    )]
    ChannelMismatch {
        node: usize,
        name: String,
        expected: usize,
        got: usize,
    },
    /// The inputs of an `add` differ in shape, or those of a `concat` in spatial size.
    #[error("node {node} '{name}': input shapes disagree: {detail}")]
    ShapeMismatch {
        node: usize,
        name: String,
        detail: String,
    },
    /// A convolution kernel outside odd 1..=7.
    #[error(
        "node {node} '{name}': kernel {kernel} unsupported (convolutions take odd kernels 1..=7)"
    )]
    UnsupportedKernel {
        node: usize,
        name: String,
        kernel: usize,
    },
    /// Stride, dilation, padding, groups or a pool window the runtime does not support.
    #[error("node {node} '{name}': unsupported geometry: {detail}")]
    UnsupportedGeometry {
        node: usize,
        name: String,
        detail: String,
    },
    /// The spatial size drops below 1 (too many reductions for this input).
    #[error(
        "node {node} '{name}': spatial size collapses to {h}x{w} (input too small for this many reductions)"
    )]
    ShapeCollapse {
        node: usize,
        name: String,
        h: isize,
        w: isize,
    },
    /// The node's output never reaches the classifier: dead code the GHN cannot place.
    #[error("node {node} '{name}': disconnected (its output does not reach the classifier)")]
    Disconnected { node: usize, name: String },
    /// The last node is not a `linear` with `cout == classes`.
    #[error(
        "node {node} '{name}': the last node must be the classifier `linear` with {classes} outputs"
    )]
    BadClassifier {
        node: usize,
        name: String,
        classes: usize,
    },
    /// A value that must be positive or in range is not (zero channels, dropout p outside [0, 1), ...).
    #[error("node {node} '{name}': invalid value: {detail}")]
    InvalidValue {
        node: usize,
        name: String,
        detail: String,
    },
    /// The input image shape or class count is zero.
    #[error("net '{net}': invalid input shape {h}x{w}x{c} or class count {classes}")]
    InvalidInput {
        net: String,
        h: usize,
        w: usize,
        c: usize,
        classes: usize,
    },
    /// The net has more parameters than the budget allows.
    #[error("net '{net}': {params} parameters exceed the budget of {budget}")]
    BudgetExceeded {
        net: String,
        params: usize,
        budget: usize,
    },
    /// The text form could not be parsed.
    #[error("invalid net JSON: {0}")]
    Json(String),
}

impl ArchError {
    /// The `(index, name)` of the offending node, when the error is about one node.
    pub fn node(&self) -> Option<(usize, &str)> {
        use ArchError::*;
        match self {
            MisplacedInput { node, name, .. }
            | BadInputIndex { node, name, .. }
            | WrongInputCount { node, name, .. }
            | DuplicateInput { node, name, .. }
            | ChannelMismatch { node, name, .. }
            | ShapeMismatch { node, name, .. }
            | UnsupportedKernel { node, name, .. }
            | UnsupportedGeometry { node, name, .. }
            | ShapeCollapse { node, name, .. }
            | Disconnected { node, name }
            | BadClassifier { node, name, .. }
            | InvalidValue { node, name, .. } => Some((*node, name)),
            Empty { .. } | InvalidInput { .. } | BudgetExceeded { .. } | Json(_) => None,
        }
    }
}
