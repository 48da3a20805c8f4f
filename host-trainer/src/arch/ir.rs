//! The CNN intermediate representation: one typed DAG that the generator emits, the GHN reads as a
//! graph, the float executor runs and the exporter lowers. No name matching anywhere: every consumer
//! works from [`Op`] and [`Node::inputs`].
//!
//! Conventions (they are the contract with `ghn`, `cnn`, `quant` and `export`):
//! - Nodes are in topological order; `inputs` index earlier nodes only; node 0 is [`Op::Input`]; the last
//!   node is the classifier [`Op::Linear`] with `cout == classes`.
//! - Shapes are `(h, w, c)` = `[usize; 3]`; a [`Op::Linear`] or [`Op::GlobalAvgPool`] output is `(1, 1, c)`.
//! - Convolution and pooling use PyTorch geometry with symmetric zero padding:
//!   `out = (in + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`.
//! - Average pooling excludes padding from the divisor (`count_include_pad = false`, TFLM semantics).
//! - A DARTS `skip` is not a node: the consumer takes the earlier node as its input.
//! - Parameters count what is trained: conv/linear weights and biases, BatchNorm γ and β (running
//!   statistics are buffers, not parameters). MACs count conv and linear multiply-accumulates only.

use serde::{Deserialize, Serialize};

/// Every way a [`Net`] can be invalid. Node-level variants carry the node index and name so a user can
/// find the culprit in a JSON file.
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

/// The input image: height, width, channels (a batch of them is NCHW in the executor, HWC on device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
    /// Channels (3 for CIFAR-10, 1 for Fashion-MNIST).
    pub c: usize,
}

impl ImageShape {
    /// CIFAR-10: 32x32 RGB.
    pub const CIFAR10: ImageShape = ImageShape { h: 32, w: 32, c: 3 };
    /// Fashion-MNIST: 28x28 grey.
    pub const FASHION_MNIST: ImageShape = ImageShape { h: 28, w: 28, c: 1 };
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.h, self.w, self.c)
    }
}

/// One operation of the DAG. `#[serde(tag = "type")]`: in JSON, `{"type": "conv", "kernel": 3, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// The image; always node 0, no inputs.
    Input,
    /// 2-D convolution, PyTorch semantics, symmetric zero `padding`. Weight shape
    /// `(cout, cin / groups, kernel, kernel)`. Depthwise: `groups == cin == cout`.
    Conv {
        /// Square kernel size, odd 1..=7.
        kernel: usize,
        /// Stride, 1 or 2.
        stride: usize,
        /// Dilation, 1 or 2 (2 for DARTS `dil_conv`).
        dilation: usize,
        /// Zero padding on each side, at most `dilation * (kernel - 1) / 2` ("same" padding).
        padding: usize,
        /// Channel groups; `cin` and `cout` are multiples of it.
        groups: usize,
        /// Input channels; must equal the input's channels.
        cin: usize,
        /// Output channels.
        cout: usize,
        /// Whether the conv has a bias vector (DARTS convs have none; BN supplies the shift).
        bias: bool,
    },
    /// BatchNorm over `channels` (γ, β trained; ε = 1e-5). Folds into the preceding conv on device.
    BatchNorm {
        /// Must equal the input's channels.
        channels: usize,
    },
    /// ReLU, or ReLU6 when `six`.
    Relu {
        /// Clamp at 6 (MobileNet style).
        six: bool,
    },
    /// Max pooling, symmetric padding (padded cells never win).
    MaxPool {
        /// Square window, 1..=7.
        kernel: usize,
        /// Stride, 1..=kernel.
        stride: usize,
        /// Padding on each side, at most `kernel / 2`.
        padding: usize,
    },
    /// Average pooling; the divisor counts only real pixels (`count_include_pad = false`, TFLM).
    AvgPool {
        /// Square window, 1..=7.
        kernel: usize,
        /// Stride, 1..=kernel.
        stride: usize,
        /// Padding on each side, at most `kernel / 2`.
        padding: usize,
    },
    /// Mean over height and width: `(h, w, c) -> (1, 1, c)`.
    GlobalAvgPool,
    /// Element-wise sum of >= 2 distinct inputs of identical shape.
    Add,
    /// Channel concatenation of >= 2 distinct inputs of identical spatial size, in input order.
    Concat,
    /// Fully connected layer on the flattened input (HWC order; after GAP it is just C). Weight shape
    /// `(cout, cin)`.
    Linear {
        /// Input features = h·w·c of the input.
        cin: usize,
        /// Output features (`classes` for the last node).
        cout: usize,
        /// Whether it has a bias vector.
        bias: bool,
    },
    /// Dropout with drop probability `p` in training; identity at eval; transparent in the GHN graph.
    Dropout {
        /// Drop probability in [0, 1).
        p: f32,
    },
}

/// Short names of op kinds, used for op-mix statistics and error messages.
pub const OP_KINDS: [&str; 13] = [
    "input",
    "conv",
    "dw_conv",
    "batch_norm",
    "relu",
    "max_pool",
    "avg_pool",
    "global_avg_pool",
    "add",
    "concat",
    "linear",
    "dropout",
    "dil_dw_conv",
];

impl Op {
    /// The serde tag of the op (`"conv"`, `"batch_norm"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv { .. } => "conv",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu { .. } => "relu",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Add => "add",
            Op::Concat => "concat",
            Op::Linear { .. } => "linear",
            Op::Dropout { .. } => "dropout",
        }
    }

    /// A finer kind for statistics: grouped convs with dilation 1 are `dw_conv` (the GHN's `sep_conv`
    /// node type), with dilation > 1 `dil_dw_conv` (the GHN's `dil_conv`); see [`OP_KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv {
                groups, dilation, ..
            } if *groups > 1 && *dilation > 1 => "dil_dw_conv",
            Op::Conv { groups, .. } if *groups > 1 => "dw_conv",
            other => other.type_name(),
        }
    }

    /// True for ops with trained parameters (conv, linear, batch norm).
    pub fn has_params(&self) -> bool {
        matches!(
            self,
            Op::Conv { .. } | Op::Linear { .. } | Op::BatchNorm { .. }
        )
    }

    /// Number of trained parameters of this op (weights + bias; γ + β for BatchNorm).
    pub fn param_count(&self) -> usize {
        match *self {
            Op::Conv {
                kernel,
                groups,
                cin,
                cout,
                bias,
                ..
            } => cout
                .saturating_mul(cin / groups.max(1))
                .saturating_mul(kernel.saturating_mul(kernel))
                .saturating_add(if bias { cout } else { 0 }),
            Op::Linear { cin, cout, bias } => {
                cin.saturating_mul(cout)
                    .saturating_add(if bias { cout } else { 0 })
            }
            Op::BatchNorm { channels } => channels.saturating_mul(2),
            _ => 0,
        }
    }

    /// The weight tensor shape in PyTorch layout: conv `[cout, cin/groups, k, k]`, linear `[cout, cin]`,
    /// batch norm `[channels]`; `None` for parameter-free ops. This is what the GHN's shape encoder reads.
    pub fn weight_shape(&self) -> Option<Vec<usize>> {
        match *self {
            Op::Conv {
                kernel,
                groups,
                cin,
                cout,
                ..
            } => Some(vec![cout, cin / groups.max(1), kernel, kernel]),
            Op::Linear { cin, cout, .. } => Some(vec![cout, cin]),
            Op::BatchNorm { channels } => Some(vec![channels]),
            _ => None,
        }
    }

    /// The bias length, if the op has a bias (conv/linear with `bias`; BatchNorm's β counts as one).
    pub fn bias_len(&self) -> Option<usize> {
        match *self {
            Op::Conv {
                cout, bias: true, ..
            }
            | Op::Linear {
                cout, bias: true, ..
            } => Some(cout),
            Op::BatchNorm { channels } => Some(channels),
            _ => None,
        }
    }
}

/// One node of the DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Human-readable, unique-by-convention name (`"cell3.op1.dw"`); never used for matching.
    pub name: String,
    /// What the node computes.
    pub op: Op,
    /// Indices of earlier nodes feeding this one, in order (order matters for `concat`).
    pub inputs: Vec<usize>,
}

/// A CNN: a DAG of typed nodes in topological order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Net {
    /// Identifier (`"test-000042"`, `"resnet8"`); also the JSON file stem the CLI writes.
    pub name: String,
    /// Shape of one input image.
    pub input: ImageShape,
    /// Number of classes = outputs of the last node.
    pub classes: usize,
    /// The nodes, topologically ordered; node 0 is `input`, the last is the classifier `linear`.
    pub nodes: Vec<Node>,
}

/// Largest accepted input height/width: keeps every size product far from overflow.
pub const MAX_SPATIAL: usize = 4096;
/// Largest accepted channel/feature/class count of a conv, linear or input.
pub const MAX_CHANNELS: usize = 65_536;

/// `(h, w, c)` of a node's output.
pub type Shape = [usize; 3];

impl Net {
    /// Output shape `(h, w, c)` of every node, checking channels, input counts and geometry on the way.
    /// Does not check connectivity, the classifier or the budget; [`Net::validate`] does all.
    pub fn shapes(&self) -> Result<Vec<Shape>, ArchError> {
        let ImageShape { h, w, c } = self.input;
        let bad = |x: usize, max: usize| x == 0 || x > max;
        if bad(h, MAX_SPATIAL)
            || bad(w, MAX_SPATIAL)
            || bad(c, MAX_CHANNELS)
            || bad(self.classes, MAX_CHANNELS)
        {
            return Err(ArchError::InvalidInput {
                net: self.name.clone(),
                h,
                w,
                c,
                classes: self.classes,
            });
        }
        if self.nodes.is_empty() {
            return Err(ArchError::Empty {
                net: self.name.clone(),
            });
        }
        let mut shapes: Vec<Shape> = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let shape = node_shape(i, node, &shapes, self.input)?;
            shapes.push(shape);
        }
        Ok(shapes)
    }

    /// Full check: shapes (see [`Net::shapes`]), the last node is the classifier `linear` with
    /// `classes` outputs, every node reaches it, and, with `Some(budget)`, `param_count() <= budget`.
    pub fn validate(&self, budget: Option<usize>) -> Result<(), ArchError> {
        let shapes = self.shapes()?;
        let last = self.nodes.len() - 1;
        let node = &self.nodes[last];
        match node.op {
            Op::Linear { cout, .. } if cout == self.classes && shapes[last] == [1, 1, cout] => {}
            _ => {
                return Err(ArchError::BadClassifier {
                    node: last,
                    name: node.name.clone(),
                    classes: self.classes,
                });
            }
        }
        let reaches = self.reaches_output();
        if let Some(i) = reaches.iter().position(|r| !r) {
            return Err(ArchError::Disconnected {
                node: i,
                name: self.nodes[i].name.clone(),
            });
        }
        if let Some(budget) = budget {
            let params = self.param_count();
            if params > budget {
                return Err(ArchError::BudgetExceeded {
                    net: self.name.clone(),
                    params,
                    budget,
                });
            }
        }
        Ok(())
    }

    /// For every node, whether its output reaches the last node (backward sweep over the DAG).
    pub fn reaches_output(&self) -> Vec<bool> {
        let n = self.nodes.len();
        let mut reach = vec![false; n];
        if n == 0 {
            return reach;
        }
        reach[n - 1] = true;
        for i in (0..n).rev() {
            if reach[i] {
                for &j in &self.nodes[i].inputs {
                    if j < i {
                        reach[j] = true;
                    }
                }
            }
        }
        reach
    }

    /// Consumers of every node (the forward adjacency lists), in node order.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for &j in &node.inputs {
                if j < out.len() && !out[j].contains(&i) {
                    out[j].push(i);
                }
            }
        }
        out
    }

    /// Trained parameters: conv/linear weights and biases, BatchNorm γ and β.
    pub fn param_count(&self) -> usize {
        self.nodes
            .iter()
            .fold(0usize, |acc, n| acc.saturating_add(n.op.param_count()))
    }

    /// Multiply-accumulates of one inference: conv `h_out·w_out·cout·(cin/groups)·k²`, linear `cin·cout`.
    /// Pooling, BatchNorm, ReLU and Add are not counted. Returns 0 for a net whose shapes do not infer.
    pub fn macs(&self) -> u64 {
        let Ok(shapes) = self.shapes() else { return 0 };
        self.nodes
            .iter()
            .zip(&shapes)
            .map(|(node, out)| match node.op {
                Op::Conv {
                    kernel,
                    groups,
                    cin,
                    cout,
                    ..
                } => [out[0], out[1], cout, cin / groups.max(1), kernel, kernel]
                    .iter()
                    .fold(1u64, |acc, &x| acc.saturating_mul(x as u64)),
                Op::Linear { cin, cout, .. } => (cin as u64).saturating_mul(cout as u64),
                _ => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Depth: the largest number of conv and linear layers on any path from the input to the
    /// classifier (a depthwise-separable conv counts as 2; a Linear counts as 1).
    pub fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            let before = node
                .inputs
                .iter()
                .filter(|&&j| j < i)
                .map(|&j| depth[j])
                .max()
                .unwrap_or(0);
            let own = usize::from(matches!(node.op, Op::Conv { .. } | Op::Linear { .. }));
            depth[i] = before + own;
        }
        depth.last().copied().unwrap_or(0)
    }

    /// True if the net has at least one BatchNorm node.
    pub fn has_batch_norm(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(n.op, Op::BatchNorm { .. }))
    }

    /// JSON with one node per line (the format `ghnq graphs` writes and users bring their own nets
    /// in): readable and diffable, about a quarter of the size of fully pretty-printed JSON.
    /// ```text
    /// {
    ///   "name": "tiny",
    ///   "input": {"h":32,"w":32,"c":3},
    ///   "classes": 10,
    ///   "nodes": [
    ///     {"name":"input","op":{"type":"input"},"inputs":[]},
    ///     {"name":"conv","op":{"type":"conv","kernel":3,...},"inputs":[0]},
    ///     ...
    ///   ]
    /// }
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64 + 96 * self.nodes.len());
        out.push_str("{\n");
        out.push_str(&format!("  \"name\": {},\n", compact(&self.name)));
        out.push_str(&format!("  \"input\": {},\n", compact(&self.input)));
        out.push_str(&format!("  \"classes\": {},\n", self.classes));
        out.push_str("  \"nodes\": [\n");
        for (i, node) in self.nodes.iter().enumerate() {
            let sep = if i + 1 < self.nodes.len() { "," } else { "" };
            out.push_str(&format!("    {}{sep}\n", compact(node)));
        }
        out.push_str("  ]\n}");
        out
    }

    /// Parse JSON and [`validate`](Net::validate) it (without a budget).
    pub fn from_json(text: &str) -> Result<Net, ArchError> {
        let net: Net = serde_json::from_str(text).map_err(|e| ArchError::Json(e.to_string()))?;
        net.validate(None)?;
        Ok(net)
    }
}

/// Compact JSON of plain data (strings, numbers, enums of them): cannot fail.
fn compact<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises to JSON")
}

fn node_shape(
    i: usize,
    node: &Node,
    shapes: &[Shape],
    input: ImageShape,
) -> Result<Shape, ArchError> {
    let name = || node.name.clone();
    let op = node.op.type_name();
    // Input placement and index sanity first: everything else indexes `shapes`.
    if i == 0 {
        if node.op != Op::Input {
            return Err(ArchError::MisplacedInput {
                node: 0,
                name: name(),
                problem: format!("node 0 is `{op}`"),
            });
        }
    } else if node.op == Op::Input {
        return Err(ArchError::MisplacedInput {
            node: i,
            name: name(),
            problem: "a second `input` node".into(),
        });
    }
    if let Some(&bad) = node.inputs.iter().find(|&&j| j >= i) {
        return Err(ArchError::BadInputIndex {
            node: i,
            name: name(),
            input: bad,
        });
    }
    let n_in = node.inputs.len();
    let (ok, expected) = match node.op {
        Op::Input => (n_in == 0, "0"),
        Op::Add | Op::Concat => (n_in >= 2, ">= 2"),
        _ => (n_in == 1, "exactly 1"),
    };
    if !ok {
        return Err(ArchError::WrongInputCount {
            node: i,
            name: name(),
            op,
            expected,
            got: n_in,
        });
    }
    if matches!(node.op, Op::Add | Op::Concat) {
        for (k, &a) in node.inputs.iter().enumerate() {
            if node.inputs[..k].contains(&a) {
                return Err(ArchError::DuplicateInput {
                    node: i,
                    name: name(),
                    op,
                    input: a,
                });
            }
        }
    }
    let geometry = |detail: String| ArchError::UnsupportedGeometry {
        node: i,
        name: name(),
        detail,
    };
    let invalid = |detail: String| ArchError::InvalidValue {
        node: i,
        name: name(),
        detail,
    };
    let channels = |expected: usize, got: usize| -> Result<(), ArchError> {
        if expected == got {
            Ok(())
        } else {
            Err(ArchError::ChannelMismatch {
                node: i,
                name: name(),
                expected,
                got,
            })
        }
    };
    let spatial = |h: isize, w: isize| -> Result<(usize, usize), ArchError> {
        if h < 1 || w < 1 {
            Err(ArchError::ShapeCollapse {
                node: i,
                name: name(),
                h,
                w,
            })
        } else {
            Ok((h as usize, w as usize))
        }
    };
    let x = node.inputs.first().map(|&j| shapes[j]);
    let [h, w, c] = x.unwrap_or([input.h, input.w, input.c]);
    match node.op {
        Op::Input => Ok([input.h, input.w, input.c]),
        Op::Conv {
            kernel,
            stride,
            dilation,
            padding,
            groups,
            cin,
            cout,
            ..
        } => {
            if !(1..=7).contains(&kernel) || kernel % 2 == 0 {
                return Err(ArchError::UnsupportedKernel {
                    node: i,
                    name: name(),
                    kernel,
                });
            }
            if !(1..=2).contains(&stride) {
                return Err(geometry(format!("stride {stride} (1 or 2 supported)")));
            }
            if !(1..=2).contains(&dilation) {
                return Err(geometry(format!("dilation {dilation} (1 or 2 supported)")));
            }
            let same = dilation * (kernel - 1) / 2;
            if padding > same {
                return Err(geometry(format!(
                    "padding {padding} exceeds 'same' padding {same} for kernel {kernel}, dilation {dilation}"
                )));
            }
            if cin == 0 || cout == 0 || cin > MAX_CHANNELS || cout > MAX_CHANNELS {
                return Err(invalid(format!(
                    "channels (cin {cin}, cout {cout}) must be in 1..={MAX_CHANNELS}"
                )));
            }
            if groups == 0 || cin % groups != 0 || cout % groups != 0 {
                return Err(geometry(format!(
                    "groups {groups} must divide cin {cin} and cout {cout}"
                )));
            }
            channels(cin, c)?;
            let span = (dilation * (kernel - 1) + 1) as isize;
            let out = |x: usize| {
                (x as isize + 2 * padding as isize - span).div_euclid(stride as isize) + 1
            };
            let (ho, wo) = spatial(out(h), out(w))?;
            Ok([ho, wo, cout])
        }
        Op::BatchNorm { channels: ch } => {
            channels(ch, c)?;
            Ok([h, w, c])
        }
        Op::Relu { .. } => Ok([h, w, c]),
        Op::Dropout { p } => {
            if !(0.0..1.0).contains(&p) {
                return Err(invalid(format!("dropout p = {p} is outside [0, 1)")));
            }
            Ok([h, w, c])
        }
        Op::MaxPool {
            kernel,
            stride,
            padding,
        }
        | Op::AvgPool {
            kernel,
            stride,
            padding,
        } => {
            if !(1..=7).contains(&kernel) {
                return Err(geometry(format!("pool window {kernel} (1..=7 supported)")));
            }
            if stride == 0 || stride > kernel {
                return Err(geometry(format!(
                    "pool stride {stride} (1..={kernel} supported)"
                )));
            }
            if padding > kernel / 2 {
                return Err(geometry(format!(
                    "pool padding {padding} exceeds half the window {kernel}"
                )));
            }
            let out = |x: usize| {
                (x as isize + 2 * padding as isize - kernel as isize).div_euclid(stride as isize)
                    + 1
            };
            let (ho, wo) = spatial(out(h), out(w))?;
            Ok([ho, wo, c])
        }
        Op::GlobalAvgPool => Ok([1, 1, c]),
        Op::Add => {
            for &j in &node.inputs[1..] {
                if shapes[j] != [h, w, c] {
                    return Err(ArchError::ShapeMismatch {
                        node: i,
                        name: name(),
                        detail: format!(
                            "input {} is {:?} but input {} is {:?}",
                            node.inputs[0],
                            [h, w, c],
                            j,
                            shapes[j]
                        ),
                    });
                }
            }
            Ok([h, w, c])
        }
        Op::Concat => {
            let mut total = 0usize;
            for &j in &node.inputs {
                let [hj, wj, cj] = shapes[j];
                if (hj, wj) != (h, w) {
                    return Err(ArchError::ShapeMismatch {
                        node: i,
                        name: name(),
                        detail: format!(
                            "input {} is {h}x{w} but input {j} is {hj}x{wj}",
                            node.inputs[0]
                        ),
                    });
                }
                total = total.saturating_add(cj);
            }
            Ok([h, w, total])
        }
        Op::Linear { cin, cout, .. } => {
            if cout == 0 || cout > MAX_CHANNELS {
                return Err(invalid(format!(
                    "linear outputs {cout} must be in 1..={MAX_CHANNELS}"
                )));
            }
            channels(cin, h.saturating_mul(w).saturating_mul(c))?;
            Ok([1, 1, cout])
        }
    }
}

/// Appends nodes with shape tracking; used by the generator and the predefined nets so that every
/// `cin`/`channels` is filled in from the actual input shape.
#[derive(Debug, Clone)]
pub struct NetBuilder {
    net: Net,
    shapes: Vec<Shape>,
}

impl NetBuilder {
    /// A net with only its `input` node (index 0).
    pub fn new(name: impl Into<String>, input: ImageShape, classes: usize) -> Self {
        let net = Net {
            name: name.into(),
            input,
            classes,
            nodes: vec![Node {
                name: "input".into(),
                op: Op::Input,
                inputs: vec![],
            }],
        };
        NetBuilder {
            net,
            shapes: vec![[input.h, input.w, input.c]],
        }
    }

    /// Shape of node `i`.
    pub fn shape(&self, i: usize) -> Shape {
        self.shapes[i]
    }

    /// Channels of node `i`.
    pub fn channels(&self, i: usize) -> usize {
        self.shapes[i][2]
    }

    /// Number of nodes so far.
    pub fn len(&self) -> usize {
        self.net.nodes.len()
    }

    /// Always false: the input node exists from the start.
    pub fn is_empty(&self) -> bool {
        self.net.nodes.is_empty()
    }

    /// Append a node and return its index. The shape is inferred; an invalid node is an error.
    pub fn push(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<usize>,
    ) -> Result<usize, ArchError> {
        let node = Node {
            name: name.into(),
            op,
            inputs,
        };
        let i = self.net.nodes.len();
        let shape = node_shape(i, &node, &self.shapes, self.net.input)?;
        self.net.nodes.push(node);
        self.shapes.push(shape);
        Ok(i)
    }

    /// Convolution from `x` (cin taken from `x`), no bias, "same" padding.
    pub fn conv(
        &mut self,
        name: impl Into<String>,
        x: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<usize, ArchError> {
        let cin = self.channels(x);
        let op = Op::Conv {
            kernel,
            stride,
            dilation: 1,
            padding: kernel / 2,
            groups: 1,
            cin,
            cout,
            bias: false,
        };
        self.push(name, op, vec![x])
    }

    /// Depthwise convolution (groups = cin = cout) with dilation, "same" padding.
    pub fn dw_conv(
        &mut self,
        name: impl Into<String>,
        x: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
    ) -> Result<usize, ArchError> {
        let c = self.channels(x);
        let op = Op::Conv {
            kernel,
            stride,
            dilation,
            padding: dilation * (kernel - 1) / 2,
            groups: c,
            cin: c,
            cout: c,
            bias: false,
        };
        self.push(name, op, vec![x])
    }

    /// BatchNorm on `x`.
    pub fn bn(&mut self, name: impl Into<String>, x: usize) -> Result<usize, ArchError> {
        let channels = self.channels(x);
        self.push(name, Op::BatchNorm { channels }, vec![x])
    }

    /// ReLU (or ReLU6) on `x`.
    pub fn relu(
        &mut self,
        name: impl Into<String>,
        x: usize,
        six: bool,
    ) -> Result<usize, ArchError> {
        self.push(name, Op::Relu { six }, vec![x])
    }

    /// Linear on `x` (flattened), with bias.
    pub fn linear(
        &mut self,
        name: impl Into<String>,
        x: usize,
        cout: usize,
    ) -> Result<usize, ArchError> {
        let [h, w, c] = self.shape(x);
        self.push(
            name,
            Op::Linear {
                cin: h * w * c,
                cout,
                bias: true,
            },
            vec![x],
        )
    }

    /// The finished net, validated (without a budget).
    pub fn finish(self) -> Result<Net, ArchError> {
        self.net.validate(None)?;
        Ok(self.net)
    }

    /// The net as built so far, unvalidated.
    pub fn net(&self) -> &Net {
        &self.net
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(k: usize, s: usize, cin: usize, cout: usize) -> Op {
        Op::Conv {
            kernel: k,
            stride: s,
            dilation: 1,
            padding: k / 2,
            groups: 1,
            cin,
            cout,
            bias: false,
        }
    }

    /// input → conv 3x3 3→8 → bn → relu → gap → linear 8→10
    fn tiny() -> Net {
        let n = |name: &str, op: Op, inputs: Vec<usize>| Node {
            name: name.into(),
            op,
            inputs,
        };
        Net {
            name: "tiny".into(),
            input: ImageShape::CIFAR10,
            classes: 10,
            nodes: vec![
                n("input", Op::Input, vec![]),
                n("conv", conv(3, 1, 3, 8), vec![0]),
                n("bn", Op::BatchNorm { channels: 8 }, vec![1]),
                n("relu", Op::Relu { six: false }, vec![2]),
                n("gap", Op::GlobalAvgPool, vec![3]),
                n(
                    "fc",
                    Op::Linear {
                        cin: 8,
                        cout: 10,
                        bias: true,
                    },
                    vec![4],
                ),
            ],
        }
    }

    #[test]
    fn tiny_net_shapes_params_macs_depth() {
        let net = tiny();
        net.validate(Some(1000)).unwrap();
        let s = net.shapes().unwrap();
        assert_eq!(s[1], [32, 32, 8]);
        assert_eq!(s[4], [1, 1, 8]);
        assert_eq!(s[5], [1, 1, 10]);
        assert_eq!(net.param_count(), 8 * 27 + 16 + 90);
        assert_eq!(net.macs(), 32 * 32 * 8 * 27 + 80);
        assert_eq!(net.depth(), 2);
    }

    #[test]
    fn json_round_trip_and_tag_format() {
        let net = tiny();
        let text = net.to_json();
        assert!(text.contains("{\"type\":\"conv\",\"kernel\":3,"), "{text}");
        assert_eq!(
            text.lines().count(),
            7 + net.nodes.len(),
            "one node per line:\n{text}"
        );
        assert!(text.contains("\"op\":{\"type\":\"global_avg_pool\"}"));
        assert_eq!(Net::from_json(&text).unwrap(), net);
    }

    #[test]
    fn conv_geometry_matches_pytorch() {
        // 32 → stride 2, k3 p1 → 16; dilated k5 d2 p4 stays 32; valid k7 p0 on 8 → 2.
        let mut b = NetBuilder::new("g", ImageShape::CIFAR10, 10);
        let a = b.conv("a", 0, 4, 3, 2).unwrap();
        assert_eq!(b.shape(a), [16, 16, 4]);
        let d = b.dw_conv("d", a, 5, 1, 2).unwrap();
        assert_eq!(b.shape(d), [16, 16, 4]);
        let p = b
            .push(
                "p",
                Op::AvgPool {
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                },
                vec![d],
            )
            .unwrap();
        assert_eq!(b.shape(p), [8, 8, 4]);
        let v = b
            .push(
                "v",
                Op::Conv {
                    kernel: 7,
                    stride: 1,
                    dilation: 1,
                    padding: 0,
                    groups: 1,
                    cin: 4,
                    cout: 4,
                    bias: true,
                },
                vec![p],
            )
            .unwrap();
        assert_eq!(b.shape(v), [2, 2, 4]);
        let f = b.linear("fc", v, 10).unwrap();
        assert_eq!(b.shape(f), [1, 1, 10]);
        let net = b.finish().unwrap();
        assert_eq!(
            net.nodes[5].op,
            Op::Linear {
                cin: 16,
                cout: 10,
                bias: true
            }
        );
    }

    /// Each error kind names the node it is about (index and name appear in the message).
    #[test]
    fn errors_name_the_node() {
        fn expect(net: &Net, idx: usize, check: impl Fn(&ArchError) -> bool) {
            let err = net.validate(None).unwrap_err();
            assert!(check(&err), "unexpected error {err:?}");
            let (i, name) = err.node().expect("node-level error");
            assert_eq!(i, idx, "{err}");
            assert_eq!(name, net.nodes[idx].name);
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("node {idx} '{}'", net.nodes[idx].name)),
                "{msg}"
            );
        }
        let base = tiny();

        let mut n = base.clone();
        n.nodes[1].op = conv(3, 1, 4, 8);
        expect(&n, 1, |e| {
            matches!(
                e,
                ArchError::ChannelMismatch {
                    expected: 4,
                    got: 3,
                    ..
                }
            )
        });

        let mut n = base.clone();
        n.nodes[2].op = Op::BatchNorm { channels: 7 };
        expect(&n, 2, |e| matches!(e, ArchError::ChannelMismatch { .. }));

        let mut n = base.clone();
        n.nodes[5].op = Op::Linear {
            cin: 9,
            cout: 10,
            bias: true,
        };
        expect(&n, 5, |e| matches!(e, ArchError::ChannelMismatch { .. }));

        for k in [0, 2, 4, 9] {
            let mut n = base.clone();
            n.nodes[1].op = conv(k, 1, 3, 8);
            expect(
                &n,
                1,
                |e| matches!(e, ArchError::UnsupportedKernel { kernel, .. } if *kernel == k),
            );
        }

        let mut n = base.clone();
        n.nodes[1].op = Op::Conv {
            kernel: 3,
            stride: 3,
            dilation: 1,
            padding: 1,
            groups: 1,
            cin: 3,
            cout: 8,
            bias: false,
        };
        expect(&n, 1, |e| {
            matches!(e, ArchError::UnsupportedGeometry { .. })
        });

        let mut n = base.clone();
        n.nodes[1].op = Op::Conv {
            kernel: 3,
            stride: 1,
            dilation: 1,
            padding: 1,
            groups: 2,
            cin: 3,
            cout: 8,
            bias: false,
        };
        expect(&n, 1, |e| {
            matches!(e, ArchError::UnsupportedGeometry { .. })
        });

        // Budget: a net-level error naming the count and the budget.
        let err = base.validate(Some(10)).unwrap_err();
        assert_eq!(
            err,
            ArchError::BudgetExceeded {
                net: "tiny".into(),
                params: base.param_count(),
                budget: 10
            }
        );
        assert!(err.to_string().contains(&format!(
            "{} parameters exceed the budget of 10",
            base.param_count()
        )));

        // Disconnected: a side branch that never reaches the classifier.
        let mut n = base.clone();
        n.nodes.insert(
            4,
            Node {
                name: "dead".into(),
                op: Op::Relu { six: true },
                inputs: vec![1],
            },
        );
        n.nodes[5].inputs = vec![3];
        n.nodes[6].inputs = vec![5];
        expect(&n, 4, |e| matches!(e, ArchError::Disconnected { .. }));

        // Wrong input counts.
        let mut n = base.clone();
        n.nodes[3].inputs = vec![1, 2];
        expect(&n, 3, |e| {
            matches!(e, ArchError::WrongInputCount { got: 2, .. })
        });
        let mut n = base.clone();
        n.nodes[3] = Node {
            name: "sum".into(),
            op: Op::Add,
            inputs: vec![2],
        };
        expect(&n, 3, |e| {
            matches!(e, ArchError::WrongInputCount { got: 1, .. })
        });
        let mut n = base.clone();
        n.nodes[3] = Node {
            name: "sum".into(),
            op: Op::Add,
            inputs: vec![2, 2],
        };
        expect(&n, 3, |e| matches!(e, ArchError::DuplicateInput { .. }));
        let mut n = base.clone();
        n.nodes[3] = Node {
            name: "sum".into(),
            op: Op::Add,
            inputs: vec![0, 2],
        };
        expect(&n, 3, |e| matches!(e, ArchError::ShapeMismatch { .. }));

        // Forward reference and misplaced input.
        let mut n = base.clone();
        n.nodes[2].inputs = vec![4];
        expect(&n, 2, |e| {
            matches!(e, ArchError::BadInputIndex { input: 4, .. })
        });
        let mut n = base.clone();
        n.nodes[0].op = Op::Relu { six: false };
        expect(&n, 0, |e| matches!(e, ArchError::MisplacedInput { .. }));
        let mut n = base.clone();
        n.nodes[3] = Node {
            name: "again".into(),
            op: Op::Input,
            inputs: vec![],
        };
        expect(&n, 3, |e| matches!(e, ArchError::MisplacedInput { .. }));

        // Shape collapse: 7x7 valid conv on a 4x4 input.
        let mut n = base.clone();
        n.input = ImageShape { h: 4, w: 4, c: 3 };
        n.nodes[1].op = Op::Conv {
            kernel: 7,
            stride: 1,
            dilation: 1,
            padding: 1,
            groups: 1,
            cin: 3,
            cout: 8,
            bias: false,
        };
        expect(&n, 1, |e| {
            matches!(e, ArchError::ShapeCollapse { h: 0, w: 0, .. })
        });

        // Classifier.
        let mut n = base.clone();
        n.classes = 5;
        expect(&n, 5, |e| {
            matches!(e, ArchError::BadClassifier { classes: 5, .. })
        });

        let mut n = base.clone();
        n.nodes[3].op = Op::Dropout { p: 1.0 };
        expect(&n, 3, |e| matches!(e, ArchError::InvalidValue { .. }));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Validation never panics, whatever a JSON file says: mutate one field of a real net to an
        /// arbitrary value; the result is `Ok` or an error whose node index is in range.
        #[test]
        fn validate_never_panics(seed in 0u64..1000, node in 0usize..1000, field in 0usize..8,
                                 value in proptest::prelude::any::<usize>(), small in 0usize..9) {
            let mut net = crate::arch::splits::Split::Test
                .net(ImageShape::FASHION_MNIST, 10, seed, 0)
                .unwrap();
            let i = node % net.nodes.len();
            let v = if value % 2 == 0 { small } else { value };
            match (&mut net.nodes[i].op, field) {
                (_, 0) => net.nodes[i].inputs.push(v),
                (_, 1) => net.nodes[i].inputs.clear(),
                (Op::Conv { kernel, .. }, 2) => *kernel = v,
                (Op::Conv { cin, .. }, 3) => *cin = v,
                (Op::Conv { groups, .. }, 4) => *groups = v,
                (Op::Conv { padding, stride, .. }, 5) => (*padding, *stride) = (v, small),
                (Op::BatchNorm { channels }, _) => *channels = v,
                (Op::Linear { cin, cout, .. }, _) => (*cin, *cout) = (v, small),
                (Op::MaxPool { kernel, stride, .. } | Op::AvgPool { kernel, stride, .. }, _) => {
                    (*kernel, *stride) = (small, v)
                }
                (_, 6) => net.input.h = v,
                (_, 7) => net.classes = v,
                _ => net.nodes[i].op = Op::Concat,
            }
            match net.validate(Some(250_000)) {
                Ok(()) => {
                    let _ = (net.macs(), net.depth(), net.param_count());
                }
                Err(e) => {
                    if let Some((k, _)) = e.node() {
                        proptest::prop_assert!(k < net.nodes.len());
                    }
                    let _ = e.to_string();
                }
            }
        }
    }

    #[test]
    fn json_errors_are_reported() {
        assert!(matches!(Net::from_json("{"), Err(ArchError::Json(_))));
        let bad = tiny().to_json().replace("\"batch_norm\"", "\"layer_norm\"");
        assert!(matches!(Net::from_json(&bad), Err(ArchError::Json(_))));
    }
}
