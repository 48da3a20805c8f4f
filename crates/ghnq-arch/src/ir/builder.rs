//! Building nets node by node with the shapes filled in.

use super::shape::node_shape;
use super::{ArchError, ImageShape, Net, Node, Op, Shape};

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
