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

mod builder;
mod error;
mod shape;
#[cfg(test)]
mod tests;

pub use builder::NetBuilder;
pub use error::ArchError;
use shape::node_shape;

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
