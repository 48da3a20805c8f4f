//! Lowering an IR net to the ops a device runs: which IR nodes fuse into one device op, and
//! which values become quantized activation tensors. The quantized simulation (`sim`) and the
//! exporter both walk this one plan, so the tensors QAT fake-quantizes are exactly the tensors
//! the blob stores — the precondition for "the integer runtime reproduces the simulation".
//!
//! Rules (TFLite's fusions, plus what a DARTS cell needs):
//! - conv → BatchNorm (the BN is the conv's only reader) fold into one conv (Eq. 4);
//! - a ReLU/ReLU6 whose input is read by nothing but identical ReLUs becomes the producing op's
//!   output clamp;
//! - any other ReLU is its own op, a 1×1 max pool clamped at the zero point (format 1.1), and
//!   identical ReLUs of one tensor share it;
//! - a BatchNorm after anything but a foldable conv is a per-channel affine map, i.e. a 1×1
//!   depthwise conv;
//! - max/avg/global pools and ReLU ops keep their input's scale and zero point (TFLM); conv, add,
//!   concat and linear outputs get their own;
//! - dropout is the identity.

use ghnq_core::arch::{Net, Op};

/// Why a net cannot be lowered.
#[allow(missing_docs)] // The variants' fields are spelled out by their #[error] messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    /// A grouped conv that is neither regular nor depthwise.
    #[error(
        "node {node} '{name}': grouped convolution with {groups} groups of {cin} channels has no device op (only groups = 1 or depthwise)"
    )]
    GroupedConv {
        node: usize,
        name: String,
        groups: usize,
        cin: usize,
    },
    /// The last node is not a linear classifier.
    #[error("the last node '{0}' is not a linear classifier")]
    NoClassifier(String),
    /// The IR itself is invalid.
    #[error("{0}")]
    Arch(String),
}

/// Where a device tensor's scale and zero point come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantOf {
    /// Its own, calibrated on its values.
    Own,
    /// The same as another tensor's (pools and ReLU ops).
    SameAs(usize),
}

/// One activation tensor of the device graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTensor {
    /// `(h, w, c)`.
    pub shape: [usize; 3],
    /// The IR node whose value (after fusion) it holds.
    pub node: usize,
    /// Scale and zero point.
    pub quant: QuantOf,
}

/// The clamp fused into a device op's output stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None: the activation's full bit range.
    Linear,
    /// ReLU (`six = false`) or ReLU6.
    Relu {
        /// ReLU6.
        six: bool,
    },
}

/// One device op, in execution order. Tensor fields index [`Lowered::tensors`]; node fields
/// index `net.nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Regular or depthwise conv, with the BatchNorm folded in when there is one.
    Conv {
        /// The conv node.
        conv: usize,
        /// The BatchNorm folded in, if any.
        bn: Option<usize>,
        /// Input tensor.
        input: usize,
        /// Output tensor.
        output: usize,
        /// Clamp fused into the output stage.
        act: Activation,
    },
    /// A lone BatchNorm as a 1×1 depthwise conv.
    Affine {
        /// The BatchNorm node.
        bn: usize,
        /// Input tensor.
        input: usize,
        /// Output tensor.
        output: usize,
        /// Clamp fused into the output stage.
        act: Activation,
    },
    /// A ReLU whose input others read unclamped: a 1×1 max pool with a clamp.
    Relu {
        /// The IR node.
        node: usize,
        /// ReLU6 rather than ReLU.
        six: bool,
        /// Input tensor.
        input: usize,
        /// Output tensor.
        output: usize,
    },
    /// Max pool.
    MaxPool {
        /// The IR node.
        node: usize,
        /// Input tensor.
        input: usize,
        /// Output tensor.
        output: usize,
        /// Clamp fused into the output stage.
        act: Activation,
    },
    /// Average pool (padding excluded).
    AvgPool {
        /// The IR node.
        node: usize,
        /// Input tensor.
        input: usize,
        /// Output tensor.
        output: usize,
        /// Clamp fused into the output stage.
        act: Activation,
    },
    /// Global average pool.
    GlobalAvgPool {
        /// The IR node.
        node: usize,
        /// Input tensor.
        input: usize,
        /// Output tensor.
        output: usize,
        /// Clamp fused into the output stage.
        act: Activation,
    },
    /// Elementwise sum of two tensors.
    Add {
        /// The IR node.
        node: usize,
        /// Input tensors.
        inputs: [usize; 2],
        /// Output tensor.
        output: usize,
        /// Clamp fused into the output stage.
        act: Activation,
    },
    /// Channel concatenation.
    Concat {
        /// The IR node.
        node: usize,
        /// Input tensors.
        inputs: Vec<usize>,
        /// Output tensor.
        output: usize,
        /// Clamp fused into the output stage.
        act: Activation,
    },
    /// Fully connected layer.
    Linear {
        /// The IR node.
        node: usize,
        /// Input tensor.
        input: usize,
        /// Output tensor.
        output: usize,
        /// Clamp fused into the output stage.
        act: Activation,
    },
}

impl Step {
    /// The tensor the step writes.
    pub fn output(&self) -> usize {
        match self {
            Step::Conv { output, .. }
            | Step::Affine { output, .. }
            | Step::Relu { output, .. }
            | Step::MaxPool { output, .. }
            | Step::AvgPool { output, .. }
            | Step::GlobalAvgPool { output, .. }
            | Step::Add { output, .. }
            | Step::Concat { output, .. }
            | Step::Linear { output, .. } => *output,
        }
    }

    /// The IR node that names the step in messages (the conv of a fused conv-BN).
    pub fn node(&self) -> usize {
        match self {
            Step::Conv { conv, .. } => *conv,
            Step::Affine { bn, .. } => *bn,
            Step::Relu { node, .. }
            | Step::MaxPool { node, .. }
            | Step::AvgPool { node, .. }
            | Step::GlobalAvgPool { node, .. }
            | Step::Add { node, .. }
            | Step::Concat { node, .. }
            | Step::Linear { node, .. } => *node,
        }
    }
}

/// The device graph of a net.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lowered {
    /// Tensor 0 is the input image.
    pub tensors: Vec<DeviceTensor>,
    /// Ops in execution order.
    pub steps: Vec<Step>,
    /// The logits tensor.
    pub output: usize,
}

impl Lowered {
    /// The tensor whose scale and zero point tensor `t` uses (follows `SameAs` chains).
    pub fn quant_root(&self, mut t: usize) -> usize {
        while let QuantOf::SameAs(s) = self.tensors[t].quant {
            t = s;
        }
        t
    }

    /// The convolution or classifier node whose step writes tensor `t`, if a weighted step
    /// does: its per-layer precision decides the tensor's bits.
    pub fn weighted_writer(&self, t: usize) -> Option<usize> {
        self.steps.iter().find_map(|s| match s {
            Step::Conv { conv, output, .. } if *output == t => Some(*conv),
            Step::Linear { node, output, .. } if *output == t => Some(*node),
            _ => None,
        })
    }

    /// Lower `net` (assumed validated by `Net::validate`; shape errors are reported anyway).
    pub fn new(net: &Net) -> Result<Lowered, LowerError> {
        let shapes = net.shapes().map_err(|e| LowerError::Arch(e.to_string()))?;
        let n = net.nodes.len();
        let last = n
            .checked_sub(1)
            .ok_or(LowerError::Arch("empty net".into()))?;
        if !matches!(net.nodes[last].op, Op::Linear { .. }) {
            return Err(LowerError::NoClassifier(net.nodes[last].name.clone()));
        }
        let live = net.reaches_output();
        let raw = net.consumers();
        // Readers of each node's value, looking through dropout (the identity).
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
        for i in (0..n).rev() {
            let mut r = Vec::new();
            for &c in &raw[i] {
                if !live[c] {
                    continue;
                }
                if matches!(net.nodes[c].op, Op::Dropout { .. }) {
                    r.extend(readers[c].iter().copied());
                } else {
                    r.push(c);
                }
            }
            r.sort_unstable();
            r.dedup();
            readers[i] = r;
        }
        // A ReLU kind that every reader of `i` applies, if they all apply the same one.
        let only_relus = |i: usize| -> Option<bool> {
            let mut six = None;
            for &r in &readers[i] {
                match net.nodes[r].op {
                    Op::Relu { six: s } if six.is_none() || six == Some(s) => six = Some(s),
                    _ => return None,
                }
            }
            six
        };

        let mut out = Lowered {
            tensors: vec![DeviceTensor {
                shape: shapes[0],
                node: 0,
                quant: QuantOf::Own,
            }],
            steps: Vec::new(),
            output: 0,
        };
        // IR node → device tensor holding its value.
        let mut value: Vec<Option<usize>> = vec![None; n];
        value[0] = Some(0);
        // Nodes already covered by a fused step.
        let mut done = vec![false; n];
        // (input tensor, six) → shared ReLU op output.
        let mut relu_ops: Vec<((usize, bool), usize)> = Vec::new();

        let input_of = |value: &[Option<usize>], node: usize, k: usize| -> usize {
            value[net.nodes[node].inputs[k]].expect("inputs come first in topological order")
        };

        for i in 1..n {
            if !live[i] || done[i] {
                continue;
            }
            let node = &net.nodes[i];
            // The fused group ends at `end`; its readers decide the clamp.
            let new_tensor = |out: &mut Lowered, end: usize, quant: QuantOf| {
                out.tensors.push(DeviceTensor {
                    shape: shapes[end],
                    node: end,
                    quant,
                });
                out.tensors.len() - 1
            };
            let fuse_relu = |end: usize, done: &mut Vec<bool>| -> Activation {
                match only_relus(end) {
                    Some(six) => {
                        for &r in &readers[end] {
                            done[r] = true;
                        }
                        Activation::Relu { six }
                    }
                    None => Activation::Linear,
                }
            };
            let step = match node.op {
                Op::Input => unreachable!("node 0 only"),
                Op::Dropout { .. } => {
                    value[i] = value[node.inputs[0]];
                    continue;
                }
                Op::Conv {
                    groups, cin, cout, ..
                } => {
                    if groups != 1 && !(groups == cin && cin == cout) {
                        return Err(LowerError::GroupedConv {
                            node: i,
                            name: node.name.clone(),
                            groups,
                            cin,
                        });
                    }
                    let bn = match readers[i].as_slice() {
                        [b] if matches!(net.nodes[*b].op, Op::BatchNorm { .. }) => Some(*b),
                        _ => None,
                    };
                    let end = bn.unwrap_or(i);
                    if let Some(b) = bn {
                        done[b] = true;
                    }
                    let act = fuse_relu(end, &mut done);
                    let input = input_of(&value, i, 0);
                    let output = new_tensor(&mut out, end, QuantOf::Own);
                    value[end] = Some(output);
                    Step::Conv {
                        conv: i,
                        bn,
                        input,
                        output,
                        act,
                    }
                }
                Op::BatchNorm { .. } => {
                    let act = fuse_relu(i, &mut done);
                    let input = input_of(&value, i, 0);
                    let output = new_tensor(&mut out, i, QuantOf::Own);
                    Step::Affine {
                        bn: i,
                        input,
                        output,
                        act,
                    }
                }
                Op::Relu { six } => {
                    let input = input_of(&value, i, 0);
                    if let Some(&(_, t)) = relu_ops.iter().find(|(k, _)| *k == (input, six)) {
                        value[i] = Some(t);
                        continue;
                    }
                    let output = new_tensor(&mut out, i, QuantOf::SameAs(input));
                    relu_ops.push(((input, six), output));
                    Step::Relu {
                        node: i,
                        six,
                        input,
                        output,
                    }
                }
                Op::MaxPool { .. } | Op::AvgPool { .. } | Op::GlobalAvgPool => {
                    let act = fuse_relu(i, &mut done);
                    let input = input_of(&value, i, 0);
                    let output = new_tensor(&mut out, i, QuantOf::SameAs(input));
                    match node.op {
                        Op::MaxPool { .. } => Step::MaxPool {
                            node: i,
                            input,
                            output,
                            act,
                        },
                        Op::AvgPool { .. } => Step::AvgPool {
                            node: i,
                            input,
                            output,
                            act,
                        },
                        _ => Step::GlobalAvgPool {
                            node: i,
                            input,
                            output,
                            act,
                        },
                    }
                }
                Op::Add => {
                    let act = fuse_relu(i, &mut done);
                    let inputs = [input_of(&value, i, 0), input_of(&value, i, 1)];
                    let output = new_tensor(&mut out, i, QuantOf::Own);
                    if node.inputs.len() != 2 {
                        return Err(LowerError::Arch(format!(
                            "node {i} '{}': add of {} inputs (the device adds two)",
                            node.name,
                            node.inputs.len()
                        )));
                    }
                    Step::Add {
                        node: i,
                        inputs,
                        output,
                        act,
                    }
                }
                Op::Concat => {
                    let act = fuse_relu(i, &mut done);
                    let inputs = (0..node.inputs.len())
                        .map(|k| input_of(&value, i, k))
                        .collect();
                    let output = new_tensor(&mut out, i, QuantOf::Own);
                    Step::Concat {
                        node: i,
                        inputs,
                        output,
                        act,
                    }
                }
                Op::Linear { .. } => {
                    let act = if i == last {
                        Activation::Linear
                    } else {
                        fuse_relu(i, &mut done)
                    };
                    let input = input_of(&value, i, 0);
                    let output = new_tensor(&mut out, i, QuantOf::Own);
                    Step::Linear {
                        node: i,
                        input,
                        output,
                        act,
                    }
                }
            };
            let t = step.output();
            value[i] = Some(t);
            if let Step::Conv { bn: Some(b), .. } = step {
                value[b] = Some(t);
            }
            // Fused ReLU readers hold the same tensor.
            let end = out.tensors[t].node;
            for &r in &readers[end] {
                if done[r] && matches!(net.nodes[r].op, Op::Relu { .. }) {
                    value[r] = Some(t);
                }
            }
            out.steps.push(step);
        }
        out.output = value[last].expect("the classifier is live");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghnq_core::arch::{ImageShape, NetBuilder};

    /// conv-BN-ReLU stem feeding both a ReLU-conv and a pool (a DARTS cell input), an add, GAP,
    /// linear.
    fn cell_like() -> Net {
        let mut b = NetBuilder::new("cell", ImageShape::FASHION_MNIST, 10);
        let c = b.conv("stem.conv", 0, 8, 3, 1).unwrap();
        let s = b.bn("stem.bn", c).unwrap();
        let r1 = b.relu("a.relu", s, false).unwrap();
        let a = b.conv("a.conv", r1, 8, 3, 1).unwrap();
        let a = b.bn("a.bn", a).unwrap();
        let pool = Op::MaxPool {
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        let p = b.push("p", pool, vec![s]).unwrap();
        let r2 = b.relu("b.relu", s, false).unwrap();
        let d = b.dw_conv("b.dw", r2, 3, 1, 1).unwrap();
        let sum = b.push("sum", Op::Add, vec![a, p]).unwrap();
        let sum2 = b.push("sum2", Op::Add, vec![sum, d]).unwrap();
        let g = b.push("gap", Op::GlobalAvgPool, vec![sum2]).unwrap();
        b.linear("fc", g, 10).unwrap();
        b.finish().unwrap()
    }

    #[test]
    fn fuses_bn_and_shares_one_relu_op_between_identical_relus() {
        let net = cell_like();
        let l = Lowered::new(&net).unwrap();
        let kinds: Vec<&str> = l
            .steps
            .iter()
            .map(|s| match s {
                Step::Conv { bn: Some(_), .. } => "conv+bn",
                Step::Conv { bn: None, .. } => "conv",
                Step::Affine { .. } => "affine",
                Step::Relu { .. } => "relu",
                Step::MaxPool { .. } => "max_pool",
                Step::AvgPool { .. } => "avg_pool",
                Step::GlobalAvgPool { .. } => "gap",
                Step::Add { .. } => "add",
                Step::Concat { .. } => "concat",
                Step::Linear { .. } => "linear",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "conv+bn", "relu", "conv+bn", "max_pool", "conv", "add", "add", "gap", "linear"
            ]
        );
        // The stem's output is read by ReLUs and a pool: no fused clamp, one shared ReLU op.
        assert!(matches!(
            l.steps[0],
            Step::Conv {
                act: Activation::Linear,
                ..
            }
        ));
        let Step::Relu { input, output, .. } = l.steps[1] else {
            panic!()
        };
        assert_eq!(input, l.steps[0].output());
        assert_eq!(l.tensors[output].quant, QuantOf::SameAs(input));
        // Both the regular conv and the depthwise conv read the shared ReLU tensor.
        let Step::Conv { input: a_in, .. } = l.steps[2] else {
            panic!()
        };
        let Step::Conv { input: d_in, .. } = l.steps[4] else {
            panic!()
        };
        assert_eq!((a_in, d_in), (output, output));
        assert_eq!(l.output, l.steps.last().unwrap().output());
    }

    #[test]
    fn a_relu_read_alone_becomes_the_producers_clamp() {
        let mut b = NetBuilder::new("plain", ImageShape::FASHION_MNIST, 10);
        let c = b.conv("c", 0, 4, 3, 2).unwrap();
        let c = b.bn("bn", c).unwrap();
        let r = b.relu("r", c, true).unwrap();
        let g = b.push("gap", Op::GlobalAvgPool, vec![r]).unwrap();
        b.linear("fc", g, 10).unwrap();
        let l = Lowered::new(&b.finish().unwrap()).unwrap();
        assert_eq!(l.steps.len(), 3);
        assert!(matches!(
            l.steps[0],
            Step::Conv {
                bn: Some(2),
                act: Activation::Relu { six: true },
                ..
            }
        ));
        assert_eq!(l.tensors.len(), 4);
    }

    #[test]
    fn every_generated_net_lowers() {
        for split in ["train", "test", "deep", "wide", "bn-free", "predefined"] {
            let sp: ghnq_core::arch::splits::Split = split.parse().unwrap();
            for net in sp.nets(ImageShape::FASHION_MNIST, 10, 0, 6).unwrap() {
                let l = Lowered::new(&net).unwrap_or_else(|e| panic!("{}: {e}", net.name));
                // Every step reads tensors written before it.
                for (k, s) in l.steps.iter().enumerate() {
                    assert_eq!(
                        s.output(),
                        k + 1,
                        "{}: steps write tensors in order",
                        net.name
                    );
                }
            }
        }
    }
}
