//! IR [`Net`] → GHN-2 computational graph (GHN_SPEC §1.1–§1.4).
//!
//! Nodes are parameter tensors and parameter-free ops; edges follow the forward data flow. The
//! builder works directly from the IR (no framework tracing, no name matching): a conv or linear layer
//! becomes a weight node followed by an optional `bias` node, BatchNorm one `bn` node, ReLU and
//! Dropout are transparent, `sum`/`concat` nodes exist only with ≥ 2 distinct graph inputs, pools
//! carry the shape `(1, 1, k, k)`. The nodes are then sorted with Kahn's algorithm (FIFO queue, ties
//! by creation order), which puts the classifier weight and bias last, and virtual edges are added
//! for every ancestor within `s_max` hops (`A[u, v] = shortest distance`).

use std::collections::VecDeque;

use ghnq_core::arch::{Net, Op};

/// The 15 GHN-2 node types, `PRIMITIVES_DEEPNETS1M` order (GHN_SPEC §1.1). The discriminant is the
/// row of the type embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Primitive {
    /// Max pooling.
    MaxPool = 0,
    /// Average pooling.
    AvgPool = 1,
    /// Grouped (separable) conv.
    SepConv = 2,
    /// Grouped dilated conv.
    DilConv = 3,
    /// Ungrouped conv, and linear layers.
    Conv = 4,
    /// Multi-head self-attention.
    Msa = 5,
    /// Channel squeeze-excitation.
    Cse = 6,
    /// Elementwise sum.
    Sum = 7,
    /// Channel concatenation.
    Concat = 8,
    /// The input node.
    Input = 9,
    /// A bias.
    Bias = 10,
    /// BatchNorm.
    Bn = 11,
    /// LayerNorm.
    Ln = 12,
    /// Positional encoding.
    PosEnc = 13,
    /// Global average pooling.
    GlobAvg = 14,
}

/// Number of node types (rows of the type embedding).
pub const NUM_PRIMITIVES: usize = 15;

impl Primitive {
    /// The ppuda name of the type.
    pub fn name(self) -> &'static str {
        [
            "max_pool", "avg_pool", "sep_conv", "dil_conv", "conv", "msa", "cse", "sum", "concat",
            "input", "bias", "bn", "ln", "pos_enc", "glob_avg",
        ][self as usize]
    }
}

/// Which tensor of an IR node a graph node predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    /// Conv weight `(O, I/groups, k, k)` or linear weight `(O, I)`.
    Weight,
    /// Conv or linear bias `(O)`.
    Bias,
    /// BatchNorm γ and β (one node predicts both, GHN_SPEC §1.2 rule 3).
    BatchNorm,
}

/// How a graph node's decoded tensor becomes a parameter (GHN_SPEC §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// No parameter (input, pools, sum, concat, glob_avg).
    None,
    /// Conv weight `(o, i, kh, kw)` from the ConvDecoder (§2.5a).
    #[allow(missing_docs)] // The dimensions of the weight named above.
    Conv {
        o: usize,
        i: usize,
        kh: usize,
        kw: usize,
    },
    /// A linear weight `(o, i)` that is not the classifier: `D[:, :, 0, 0]`.
    #[allow(missing_docs)] // The sizes named above.
    Linear { o: usize, i: usize },
    /// The final classifier weight `(k, i)` (§2.5b).
    #[allow(missing_docs)] // The sizes named above.
    ClassifierWeight { k: usize, i: usize },
    /// BatchNorm γ and β of `c` channels from decoder_1d rows 0 and 1 (§2.5c).
    #[allow(missing_docs)] // The sizes named above.
    BatchNorm { c: usize },
    /// Conv / linear bias of length `c`: decoder_1d row 1.
    #[allow(missing_docs)] // The sizes named above.
    Bias { c: usize },
    /// Final classifier bias (§2.5d).
    #[allow(missing_docs)] // The sizes named above.
    ClassifierBias { k: usize },
}

/// One graph node.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    /// Node type.
    pub prim: Primitive,
    /// The parameter shape the shape encoder reads (pools: `(1, 1, k, k)`); `None` = "no shape".
    pub shape: Option<Vec<usize>>,
    /// The IR node this graph node comes from.
    pub ir_node: usize,
    /// The IR parameter it predicts, if any.
    pub role: Option<ParamRole>,
    /// How to decode it.
    pub decode: Decode,
}

/// A GHN-2 graph: nodes in topological order plus 1-hop and virtual edges.
#[derive(Debug, Clone, PartialEq)]
pub struct GhnGraph {
    /// Nodes in (Kahn) topological order; node 0 is `input`, the last two the classifier W and b.
    pub nodes: Vec<GraphNode>,
    /// 1-hop edges `(src, dst)`, sorted.
    pub edges: Vec<(usize, usize)>,
    /// For every node, its ancestors within `s_max` hops: `(u, d)` with `d` = shortest distance
    /// (`d = 1` for 1-hop parents). This is column `v` of the matrix `A` of GHN_SPEC §1.3.
    pub parents: Vec<Vec<(usize, u32)>>,
    /// For every node, its descendants within `s_max` hops (row `u` of `A`).
    pub children: Vec<Vec<(usize, u32)>>,
    /// The `s_max` the virtual edges were built with.
    pub s_max: usize,
}

/// Errors of graph construction.
#[allow(missing_docs)] // The variants' fields are spelled out by their #[error] messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The IR net failed validation.
    #[error("net '{net}': {source}")]
    Arch {
        net: String,
        source: ghnq_core::arch::ArchError,
    },
    /// The graph is not what GHN-2 expects (should not happen for a validated net).
    #[error("net '{net}': {detail}")]
    Invariant { net: String, detail: String },
}

impl GhnGraph {
    /// Build the GHN-2 graph of `net` with virtual edges up to `s_max` hops (GHN-2: 50; 1 = none).
    pub fn build(net: &Net, s_max: usize) -> Result<GhnGraph, GraphError> {
        let arch_err = |source| GraphError::Arch {
            net: net.name.clone(),
            source,
        };
        net.shapes().map_err(arch_err)?;
        let live = net.reaches_output();
        let last_ir = net.nodes.len() - 1;

        // Creation pass: graph nodes in IR order, weight before bias.
        let mut nodes: Vec<GraphNode> = Vec::new();
        let mut edges: Vec<(usize, usize)> = Vec::new();
        // The graph node carrying the output of each IR node (transparent ops pass theirs through).
        let mut out_of: Vec<usize> = vec![usize::MAX; net.nodes.len()];
        for (i, node) in net.nodes.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let mut srcs: Vec<usize> = Vec::new();
            for &inp in &node.inputs {
                let g = out_of[inp];
                if g != usize::MAX && !srcs.contains(&g) {
                    srcs.push(g);
                }
            }
            let add = |nodes: &mut Vec<GraphNode>,
                       edges: &mut Vec<(usize, usize)>,
                       gn: GraphNode,
                       from: &[usize]| {
                let id = nodes.len();
                nodes.push(gn);
                for &s in from {
                    edges.push((s, id));
                }
                id
            };
            let plain = |prim, shape: Option<Vec<usize>>| GraphNode {
                prim,
                shape,
                ir_node: i,
                role: None,
                decode: Decode::None,
            };
            let is_classifier = i == last_ir;
            out_of[i] = match node.op {
                Op::Input => add(&mut nodes, &mut edges, plain(Primitive::Input, None), &[]),
                Op::Relu { .. } | Op::Dropout { .. } => srcs[0],
                Op::BatchNorm { channels } => {
                    let gn = GraphNode {
                        prim: Primitive::Bn,
                        shape: Some(vec![channels]),
                        ir_node: i,
                        role: Some(ParamRole::BatchNorm),
                        decode: Decode::BatchNorm { c: channels },
                    };
                    add(&mut nodes, &mut edges, gn, &srcs)
                }
                Op::MaxPool { kernel, .. } => add(
                    &mut nodes,
                    &mut edges,
                    plain(Primitive::MaxPool, Some(vec![1, 1, kernel, kernel])),
                    &srcs,
                ),
                Op::AvgPool { kernel, .. } => add(
                    &mut nodes,
                    &mut edges,
                    plain(Primitive::AvgPool, Some(vec![1, 1, kernel, kernel])),
                    &srcs,
                ),
                Op::GlobalAvgPool => add(
                    &mut nodes,
                    &mut edges,
                    plain(Primitive::GlobAvg, None),
                    &srcs,
                ),
                Op::Add | Op::Concat => {
                    if srcs.len() >= 2 {
                        let prim = if matches!(node.op, Op::Add) {
                            Primitive::Sum
                        } else {
                            Primitive::Concat
                        };
                        add(&mut nodes, &mut edges, plain(prim, None), &srcs)
                    } else {
                        srcs[0]
                    }
                }
                Op::Conv {
                    kernel,
                    dilation,
                    groups,
                    cin,
                    cout,
                    bias,
                    ..
                } => {
                    let prim = match (groups > 1, dilation > 1) {
                        (true, true) => Primitive::DilConv,
                        (true, false) => Primitive::SepConv,
                        _ => Primitive::Conv,
                    };
                    let ipg = cin / groups.max(1);
                    let w = GraphNode {
                        prim,
                        shape: Some(vec![cout, ipg, kernel, kernel]),
                        ir_node: i,
                        role: Some(ParamRole::Weight),
                        decode: Decode::Conv {
                            o: cout,
                            i: ipg,
                            kh: kernel,
                            kw: kernel,
                        },
                    };
                    let w = add(&mut nodes, &mut edges, w, &srcs);
                    if bias {
                        let b = GraphNode {
                            prim: Primitive::Bias,
                            shape: Some(vec![cout]),
                            ir_node: i,
                            role: Some(ParamRole::Bias),
                            decode: Decode::Bias { c: cout },
                        };
                        add(&mut nodes, &mut edges, b, &[w])
                    } else {
                        w
                    }
                }
                Op::Linear { cin, cout, bias } => {
                    let decode = if is_classifier {
                        Decode::ClassifierWeight { k: cout, i: cin }
                    } else {
                        Decode::Linear { o: cout, i: cin }
                    };
                    let w = GraphNode {
                        prim: Primitive::Conv,
                        shape: Some(vec![cout, cin]),
                        ir_node: i,
                        role: Some(ParamRole::Weight),
                        decode,
                    };
                    let w = add(&mut nodes, &mut edges, w, &srcs);
                    if bias {
                        let decode = if is_classifier {
                            Decode::ClassifierBias { k: cout }
                        } else {
                            Decode::Bias { c: cout }
                        };
                        let b = GraphNode {
                            prim: Primitive::Bias,
                            shape: Some(vec![cout]),
                            ir_node: i,
                            role: Some(ParamRole::Bias),
                            decode,
                        };
                        add(&mut nodes, &mut edges, b, &[w])
                    } else {
                        w
                    }
                }
            };
        }

        // Kahn's algorithm, FIFO queue, children visited in creation order.
        let n = nodes.len();
        let mut kids: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut indeg = vec![0usize; n];
        for &(s, d) in &edges {
            kids[s].push(d);
            indeg[d] += 1;
        }
        for k in &mut kids {
            k.sort_unstable();
        }
        let mut queue: VecDeque<usize> = (0..n).filter(|&v| indeg[v] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(v) = queue.pop_front() {
            order.push(v);
            for &c in &kids[v] {
                indeg[c] -= 1;
                if indeg[c] == 0 {
                    queue.push_back(c);
                }
            }
        }
        let invariant = |detail: String| GraphError::Invariant {
            net: net.name.clone(),
            detail,
        };
        if order.len() != n {
            return Err(invariant("graph has a cycle".into()));
        }
        let mut pos = vec![0usize; n];
        for (p, &v) in order.iter().enumerate() {
            pos[v] = p;
        }
        let nodes: Vec<GraphNode> = order.iter().map(|&v| nodes[v].clone()).collect();
        let mut edges: Vec<(usize, usize)> = edges.iter().map(|&(s, d)| (pos[s], pos[d])).collect();
        edges.sort_unstable();
        edges.dedup();

        if nodes.first().map(|g| g.prim) != Some(Primitive::Input) {
            return Err(invariant("node 0 is not the input".into()));
        }

        // Virtual edges: BFS over 1-hop forward edges from every node, distances 1..=s_max.
        let mut fwd: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(s, d) in &edges {
            fwd[s].push(d);
        }
        let mut parents: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
        let mut children: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
        let mut dist = vec![u32::MAX; n];
        for u in 0..n {
            let mut touched = vec![u];
            dist[u] = 0;
            let mut q = VecDeque::from([u]);
            while let Some(x) = q.pop_front() {
                let dx = dist[x];
                if dx as usize >= s_max {
                    continue;
                }
                for &y in &fwd[x] {
                    if dist[y] == u32::MAX {
                        dist[y] = dx + 1;
                        touched.push(y);
                        q.push_back(y);
                    }
                }
            }
            for &y in &touched {
                if y != u {
                    children[u].push((y, dist[y]));
                    parents[y].push((u, dist[y]));
                }
                dist[y] = u32::MAX;
            }
        }
        for c in &mut children {
            c.sort_unstable();
        }
        for p in &mut parents {
            p.sort_unstable();
        }
        Ok(GhnGraph {
            nodes,
            edges,
            parents,
            children,
            s_max,
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for a graph without nodes (never produced by [`GhnGraph::build`]).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The entry `A[u, v]` (0 = no edge).
    pub fn distance(&self, u: usize, v: usize) -> u32 {
        self.children[u]
            .iter()
            .find(|&&(w, _)| w == v)
            .map_or(0, |&(_, d)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghnq_core::arch::{ImageShape, NetBuilder};

    fn worked_example() -> Net {
        ghnq_core::arch::predefined::ghn_spec_example()
    }

    #[test]
    fn worked_example_nodes_and_edges() {
        let g = GhnGraph::build(&worked_example(), 50).unwrap();
        use Primitive::*;
        let expect: Vec<(Primitive, Option<Vec<usize>>)> = vec![
            (Input, None),
            (Conv, Some(vec![48, 3, 3, 3])),
            (Bn, Some(vec![48])),
            (Conv, Some(vec![16, 48, 1, 1])),
            (Conv, Some(vec![16, 48, 1, 1])),
            (Bn, Some(vec![16])),
            (Bn, Some(vec![16])),
            (SepConv, Some(vec![16, 1, 3, 3])),
            (MaxPool, Some(vec![1, 1, 3, 3])),
            (Conv, Some(vec![16, 16, 1, 1])),
            (Bn, Some(vec![16])),
            (SepConv, Some(vec![16, 1, 3, 3])),
            (Conv, Some(vec![16, 16, 1, 1])),
            (Bn, Some(vec![16])),
            (Sum, None),
            (GlobAvg, None),
            (Conv, Some(vec![10, 16])),
            (Bias, Some(vec![10])),
        ];
        let got: Vec<_> = g.nodes.iter().map(|n| (n.prim, n.shape.clone())).collect();
        assert_eq!(got, expect);
        let mut edges = vec![
            (0, 1),
            (1, 2),
            (2, 3),
            (2, 4),
            (3, 5),
            (4, 6),
            (5, 7),
            (6, 8),
            (7, 9),
            (9, 10),
            (10, 11),
            (11, 12),
            (12, 13),
            (13, 14),
            (8, 14),
            (14, 15),
            (15, 16),
            (16, 17),
        ];
        edges.sort_unstable();
        assert_eq!(g.edges, edges);
        // Virtual edges: A[0,2] = 2, A[0,3] = 3. GHN_SPEC §1.5 quotes A[0,17] = 14 along the sep_conv
        // branch, but §1.3 (and ppuda's all_pairs_shortest_path_length) define A as the *shortest*
        // distance, which runs through the max-pool branch: 0-1-2-4-6-8-14-15-16-17 = 9.
        assert_eq!(g.distance(0, 1), 1);
        assert_eq!(g.distance(0, 2), 2);
        assert_eq!(g.distance(0, 3), 3);
        assert_eq!(g.distance(0, 17), 9);
        assert_eq!(g.distance(0, 13), 10); // 0-1-2-3-5-7-9-10-11-12-13 has no shortcut
        assert_eq!(g.distance(8, 14), 1);
        assert_eq!(g.distance(17, 0), 0);
        // Last two nodes = classifier weight and bias.
        assert_eq!(
            g.nodes[16].decode,
            Decode::ClassifierWeight { k: 10, i: 16 }
        );
        assert_eq!(g.nodes[17].decode, Decode::ClassifierBias { k: 10 });
        // s_max cut-off: with s_max = 3 the farthest entry is 3.
        let g3 = GhnGraph::build(&worked_example(), 3).unwrap();
        assert_eq!(g3.distance(0, 3), 3);
        assert_eq!(g3.distance(0, 5), 0);
        assert_eq!(g3.edges.len(), 18);
    }

    #[test]
    fn add_of_same_input_collapses_and_bias_chain() {
        let mut b = NetBuilder::new("t", ImageShape::FASHION_MNIST, 10);
        let c = b
            .push(
                "c",
                Op::Conv {
                    kernel: 3,
                    stride: 1,
                    dilation: 2,
                    padding: 2,
                    groups: 1,
                    cin: 1,
                    cout: 4,
                    bias: true,
                },
                vec![0],
            )
            .unwrap();
        let r = b.relu("r", c, true).unwrap();
        let d = b.dw_conv("d", r, 3, 1, 2).unwrap();
        let s = b.push("s", Op::Add, vec![d, r]).unwrap();
        let g = b.push("g", Op::GlobalAvgPool, vec![s]).unwrap();
        b.linear("fc", g, 10).unwrap();
        let g = GhnGraph::build(&b.finish().unwrap(), 50).unwrap();
        let prims: Vec<_> = g.nodes.iter().map(|n| n.prim).collect();
        use Primitive::*;
        assert_eq!(
            prims,
            vec![Input, Conv, Bias, DilConv, Sum, GlobAvg, Conv, Bias]
        );
        assert_eq!(
            g.edges,
            vec![
                (0, 1),
                (1, 2),
                (2, 3),
                (2, 4),
                (3, 4),
                (4, 5),
                (5, 6),
                (6, 7)
            ]
        );
    }
}
