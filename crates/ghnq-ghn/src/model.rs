//! GHN-2 (GHN_SPEC §2): embedding → GatedGNN → LayerNorm → decoders → tiling → normalisation,
//! returning a [`ParamSet`] per net whose tensors stay in the autodiff graph.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::decoder::{ConvDecoder, fan_in_scale, normalize_bias, normalize_gamma, tile_dim};
use super::embed::NodeEmbedding;
use super::gated_gnn::{BatchLayout, GatedGnn, Mlp, Neighbours};
use super::graph::{Decode, GhnGraph};
use super::shape_encoder::ShapeTables;
use ghnq_core::arch::{Net, Op};
use ghnq_core::cnn::{LayerParams, ParamSet};
use ghnq_quant::config::Precision;

/// Rows of the bit-width embedding: weight bits 0 (float), 1..=8, then activation bits alike.
const BITS_ROWS: usize = 18;

/// GHN hyper-parameters. [`GhnConfig::cifar10`] is the released GHN-2 CIFAR-10 configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhnConfig {
    /// Hidden size (node embedding width); a multiple of 4.
    pub hid: usize,
    /// Decoded channel slots (`max_shape[0] = max_shape[1]`; GHN-2: 2·hid).
    pub max_ch: usize,
    /// Decoded spatial size (`max_shape[2] = max_shape[3]`; 11 for CIFAR, 16 for ImageNet).
    pub max_sp: usize,
    /// Classes of the classifier decoders.
    pub num_classes: usize,
    /// Virtual-edge cut-off (50 in GHN-2; 1 disables virtual edges).
    pub s_max: usize,
    /// LayerNorm after the GNN.
    pub layernorm: bool,
    /// Differentiable fan-in normalisation of the predicted tensors (§2.8).
    pub weight_norm: bool,
    /// Beyond the paper (its own suggestion): node features carry the target weight and
    /// activation bit-widths, so one GHN serves every bit-width.
    pub bit_conditioned: bool,
}

impl GhnConfig {
    /// GHN-2 CIFAR-10: hid 32, max_shape (64, 64, 11, 11), 10 classes, s_max 50, LN, weight norm.
    pub fn cifar10() -> GhnConfig {
        GhnConfig::with_hidden(32, 10)
    }

    /// The GHN-2 recipe for another hidden size / class count (max_ch = 2·hid, S = 11).
    pub fn with_hidden(hid: usize, num_classes: usize) -> GhnConfig {
        GhnConfig {
            hid,
            max_ch: 2 * hid,
            max_sp: 11,
            num_classes,
            s_max: 50,
            layernorm: true,
            weight_norm: true,
            bit_conditioned: false,
        }
    }

    /// Whether virtual edges (and `mlp_ve`) are used.
    pub fn virtual_edges(&self) -> bool {
        self.s_max > 1
    }

    /// `key=value` lines (stored next to checkpoints).
    pub fn to_text(&self) -> String {
        format!(
            "hid={}\nmax_ch={}\nmax_sp={}\nnum_classes={}\ns_max={}\nlayernorm={}\nweight_norm={}\nbit_conditioned={}\n",
            self.hid,
            self.max_ch,
            self.max_sp,
            self.num_classes,
            self.s_max,
            self.layernorm,
            self.weight_norm,
            self.bit_conditioned
        )
    }

    /// Parse [`GhnConfig::to_text`] output.
    pub fn from_text(text: &str) -> Result<GhnConfig, ConfigError> {
        let mut c = GhnConfig::cifar10();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| ConfigError::Line(line.to_string()))?;
            let bad = |value: String| ConfigError::Value {
                key: k.trim().to_string(),
                value,
            };
            let num = || v.trim().parse::<usize>().map_err(|e| bad(e.to_string()));
            let flag = || v.trim().parse::<bool>().map_err(|e| bad(e.to_string()));
            match k.trim() {
                "hid" => c.hid = num()?,
                "max_ch" => c.max_ch = num()?,
                "max_sp" => c.max_sp = num()?,
                "num_classes" => c.num_classes = num()?,
                "s_max" => c.s_max = num()?,
                "layernorm" => c.layernorm = flag()?,
                "weight_norm" => c.weight_norm = flag()?,
                "bit_conditioned" => c.bit_conditioned = flag()?,
                other => return Err(ConfigError::Key(other.to_string())),
            }
        }
        Ok(c)
    }
}

/// Why a `ghn.cfg` text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A line that is not `key = value`.
    #[error("bad config line '{0}'")]
    Line(String),
    /// A key this version does not know.
    #[error("unknown config key '{0}'")]
    Key(String),
    /// A value that does not parse for its key.
    #[error("{key}: {value}")]
    Value {
        /// The key.
        key: String,
        /// The parser's complaint.
        value: String,
    },
}

/// Decode groups: key → `(sorted graph, node)` members.
type Groups<K> = BTreeMap<K, Vec<(usize, usize)>>;

/// The graph hypernetwork.
#[derive(Module, Debug)]
pub struct Ghn {
    /// Type embedding + shape encoder tables.
    pub embed: NodeEmbedding,
    /// GatedGNN.
    pub gnn: GatedGnn,
    /// LayerNorm after the GNN.
    pub ln: Option<LayerNorm>,
    /// 4-D / 2-D decoder.
    pub decoder: ConvDecoder,
    /// 1-D decoder: hid → 2·hid → 2·max_ch, no final activation.
    pub decoder_1d: Mlp,
    /// Final classifier bias head: max_ch → classes.
    pub bias_class: Linear,
    /// Bit-width embedding of a bit-conditioned GHN: rows `w_bits` and `9 + a_bits` (row 0 and
    /// 9 for float) are added to every node's features before the GNN.
    pub bits_embed: Option<Embedding>,
    /// Hyper-parameters.
    #[module(skip)]
    pub config: GhnConfig,
    /// Shape look-up tables.
    #[module(skip)]
    pub tables: ShapeTables,
}

/// A decoded tensor of one graph node.
#[allow(clippy::large_enum_variant)]
enum Piece {
    W4(Tensor<4>),
    W2(Tensor<2>),
    Bn(Tensor<1>, Tensor<1>),
    B(Tensor<1>),
}

impl Ghn {
    /// A freshly initialised GHN (PyTorch-default initialisation, GHN_SPEC §2.9).
    pub fn new(config: &GhnConfig, device: &Device) -> Ghn {
        let tables = ShapeTables::new(config.num_classes, config.max_sp);
        let hid = config.hid;
        Ghn {
            embed: NodeEmbedding::new(hid, &tables, device),
            gnn: GatedGnn::new(hid, config.virtual_edges(), device),
            ln: config
                .layernorm
                .then(|| LayerNormConfig::new(hid).init(device)),
            decoder: ConvDecoder::new(
                hid,
                config.max_ch,
                config.max_sp,
                config.num_classes,
                device,
            ),
            decoder_1d: Mlp::new(hid, 2 * hid, 2 * config.max_ch, false, device),
            bias_class: LinearConfig::new(config.max_ch, config.num_classes).init(device),
            bits_embed: config
                .bit_conditioned
                .then(|| EmbeddingConfig::new(BITS_ROWS, hid).init(device)),
            config: config.clone(),
            tables,
        }
    }

    /// Node embeddings after the GNN (and LayerNorm) for a meta-batch, rows in lock-step layout
    /// (see [`BatchLayout`]); `order[g]` is the original index of sorted graph `g`.
    pub fn embed_graphs(
        &self,
        graphs: &[&GhnGraph],
        bits: Option<Precision>,
        device: &Device,
    ) -> (Tensor<2>, BatchLayout, Vec<usize>) {
        let mut order: Vec<usize> = (0..graphs.len()).collect();
        order.sort_by_key(|&g| std::cmp::Reverse(graphs[g].len()));
        let sizes: Vec<usize> = order.iter().map(|&g| graphs[g].len()).collect();
        let layout = BatchLayout::new(&sizes);
        let mut types = Vec::with_capacity(layout.rows);
        let mut shapes = Vec::with_capacity(layout.rows);
        for v in 0..layout.count.len() {
            for &g in order.iter().take(layout.count[v]) {
                let node = &graphs[g].nodes[v];
                types.push(node.prim as usize);
                shapes.push(self.tables.encode(node.shape.as_deref()));
            }
        }
        let x = self.embed.forward(&types, &shapes, device);
        let x = match &self.bits_embed {
            Some(e) => {
                let (w, a) = bits.map_or((0, 0), |p| (p.weight_bits, p.act_bits));
                let rows = Tensor::<1, Int>::from_data(
                    TensorData::new(vec![w as i64, 9 + a as i64], [2]),
                    device,
                );
                let v = e.weight.val().select(0, rows).sum_dim(0);
                x + v
            }
            None => x,
        };
        let parents: Vec<&Neighbours> = order.iter().map(|&g| &graphs[g].parents).collect();
        let children: Vec<&Neighbours> = order.iter().map(|&g| &graphs[g].children).collect();
        // Graphs built with s_max = 1 hold only 1-hop entries, so GHN-1 needs no special case here.
        let h = self.gnn.forward(x, &layout, &parents, &children);
        let h = match &self.ln {
            Some(ln) => ln.forward(h),
            None => h,
        };
        (h, layout, order)
    }

    /// Predict the parameters of every net (`graphs[k]` must be `GhnGraph::build(nets[k], ..)`).
    pub fn predict(&self, nets: &[&Net], graphs: &[&GhnGraph], device: &Device) -> Vec<ParamSet> {
        self.predict_for(nets, graphs, None, device)
    }

    /// [`Ghn::predict`] for a target bit-width (`None` = float); only a bit-conditioned GHN
    /// reads it.
    pub fn predict_for(
        &self,
        nets: &[&Net],
        graphs: &[&GhnGraph],
        bits: Option<Precision>,
        device: &Device,
    ) -> Vec<ParamSet> {
        assert_eq!(nets.len(), graphs.len());
        let (h, layout, order) = self.embed_graphs(graphs, bits, device);
        let max_ch = self.config.max_ch;
        let classes = self.config.num_classes;
        let wn = self.config.weight_norm;

        // Group nodes by decode call: (kh, kw, s0, s1) for conv/linear, s1 for classifiers, 1-D.
        let mut conv_groups: Groups<(usize, usize, usize, usize)> = BTreeMap::new();
        let mut cls_groups: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
        let mut one_d: Vec<(usize, usize)> = Vec::new();
        for (sg, &g) in order.iter().enumerate() {
            for (v, node) in graphs[g].nodes.iter().enumerate() {
                match node.decode {
                    Decode::None => {}
                    Decode::Conv { o, i, kh, kw } => conv_groups
                        .entry((kh, kw, o.min(max_ch), i.min(max_ch)))
                        .or_default()
                        .push((sg, v)),
                    Decode::Linear { o, i } => conv_groups
                        .entry((1, 1, o.min(max_ch), i.min(max_ch)))
                        .or_default()
                        .push((sg, v)),
                    Decode::ClassifierWeight { i, .. } => {
                        cls_groups.entry(i.min(max_ch)).or_default().push((sg, v))
                    }
                    Decode::BatchNorm { .. }
                    | Decode::Bias { .. }
                    | Decode::ClassifierBias { .. } => one_d.push((sg, v)),
                }
            }
        }
        let rows_of = |members: &[(usize, usize)]| -> Tensor<1, Int> {
            let idx: Vec<i64> = members
                .iter()
                .map(|&(sg, v)| layout.row(sg, v) as i64)
                .collect();
            let n = idx.len();
            Tensor::from_data(TensorData::new(idx, [n]), device)
        };
        let mut pieces: Vec<BTreeMap<usize, Piece>> =
            (0..graphs.len()).map(|_| BTreeMap::new()).collect();

        for ((kh, kw, s0, s1), members) in &conv_groups {
            let e = h.clone().select(0, rows_of(members));
            let d = self.decoder.decode(e, *kh, *kw, *s0, *s1);
            for (j, &(sg, v)) in members.iter().enumerate() {
                let g = order[sg];
                let p = d.clone().narrow(0, j, 1).reshape([*s0, *s1, *kh, *kw]);
                let piece = match graphs[g].nodes[v].decode {
                    Decode::Conv { o, i, kh, kw } => {
                        let w = tile_dim(tile_dim(p, 0, o), 1, i);
                        Piece::W4(if wn {
                            w * fan_in_scale(i, kh, kw, true)
                        } else {
                            w
                        })
                    }
                    Decode::Linear { o, i } => {
                        let w = tile_dim(tile_dim(p.reshape([*s0, *s1]), 0, o), 1, i);
                        Piece::W2(if wn {
                            w * fan_in_scale(i, 1, 1, false)
                        } else {
                            w
                        })
                    }
                    _ => unreachable!("conv group holds conv/linear nodes"),
                };
                pieces[g].insert(v, piece);
            }
        }
        for (s1, members) in &cls_groups {
            let e = h.clone().select(0, rows_of(members));
            let d = self.decoder.decode_classifier(e, *s1); // [n, classes, s1]
            for (j, &(sg, v)) in members.iter().enumerate() {
                let g = order[sg];
                let Decode::ClassifierWeight { k, i } = graphs[g].nodes[v].decode else {
                    unreachable!()
                };
                let p = d.clone().narrow(0, j, 1).reshape([classes, *s1]);
                let w = tile_dim(tile_dim(p, 0, k), 1, i);
                pieces[g].insert(
                    v,
                    Piece::W2(if wn {
                        w * fan_in_scale(i, 1, 1, false)
                    } else {
                        w
                    }),
                );
            }
        }
        if !one_d.is_empty() {
            let e = h.clone().select(0, rows_of(&one_d));
            let n = one_d.len();
            let o = self.decoder_1d.forward(e).reshape([n, 2, max_ch]);
            for (j, &(sg, v)) in one_d.iter().enumerate() {
                let g = order[sg];
                let row = |r: usize| {
                    o.clone()
                        .slice([j..j + 1, r..r + 1, 0..max_ch])
                        .reshape([max_ch])
                };
                let piece = match graphs[g].nodes[v].decode {
                    Decode::BatchNorm { c } => {
                        let (gm, bt) = (tile_dim(row(0), 0, c), tile_dim(row(1), 0, c));
                        if wn {
                            Piece::Bn(normalize_gamma(gm), normalize_bias(bt))
                        } else {
                            Piece::Bn(gm, bt)
                        }
                    }
                    Decode::Bias { c } => {
                        let b = tile_dim(row(1), 0, c);
                        Piece::B(if wn { normalize_bias(b) } else { b })
                    }
                    Decode::ClassifierBias { k } => {
                        let both = relu(o.clone().narrow(0, j, 1).reshape([2, max_ch]));
                        let b = self
                            .bias_class
                            .forward(both)
                            .narrow(0, 1, 1)
                            .reshape([classes]);
                        let b = tile_dim(b, 0, k);
                        Piece::B(if wn { normalize_bias(b) } else { b })
                    }
                    _ => unreachable!("1-D list holds bn/bias nodes"),
                };
                pieces[g].insert(v, piece);
            }
        }

        // Assemble per-IR-node parameter sets.
        nets.iter()
            .zip(graphs)
            .zip(pieces)
            .map(|((net, graph), mut pieces)| assemble(net, graph, &mut pieces))
            .collect()
    }

    /// Number of scalar parameters.
    pub fn param_count(&self) -> usize {
        self.num_params()
    }
}

fn assemble(net: &Net, graph: &GhnGraph, pieces: &mut BTreeMap<usize, Piece>) -> ParamSet {
    let mut weights4: Vec<Option<Tensor<4>>> = vec![None; net.nodes.len()];
    let mut weights2: Vec<Option<Tensor<2>>> = vec![None; net.nodes.len()];
    let mut biases: Vec<Option<Tensor<1>>> = vec![None; net.nodes.len()];
    let mut bns: Vec<Option<(Tensor<1>, Tensor<1>)>> = vec![None; net.nodes.len()];
    for (v, node) in graph.nodes.iter().enumerate() {
        match pieces.remove(&v) {
            Some(Piece::W4(w)) => weights4[node.ir_node] = Some(w),
            Some(Piece::W2(w)) => weights2[node.ir_node] = Some(w),
            Some(Piece::B(b)) => biases[node.ir_node] = Some(b),
            Some(Piece::Bn(g, b)) => bns[node.ir_node] = Some((g, b)),
            None => {}
        }
    }
    let layers = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| match node.op {
            Op::Conv { .. } => match weights4[i].take() {
                Some(weight) => LayerParams::Conv {
                    weight,
                    bias: biases[i].take(),
                },
                None => LayerParams::None,
            },
            Op::Linear { .. } => match weights2[i].take() {
                Some(weight) => LayerParams::Linear {
                    weight,
                    bias: biases[i].take(),
                },
                None => LayerParams::None,
            },
            Op::BatchNorm { .. } => match bns[i].take() {
                Some((gamma, beta)) => LayerParams::BatchNorm {
                    gamma,
                    beta,
                    running: None,
                },
                None => LayerParams::None,
            },
            _ => LayerParams::None,
        })
        .collect();
    ParamSet { layers }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GHN_SPEC §4.1: the released GHN-2 CIFAR-10 configuration has exactly 1,620,764 parameters.
    #[test]
    fn cifar10_parameter_count() {
        let ghn = Ghn::new(&GhnConfig::cifar10(), &Device::flex());
        assert_eq!(ghn.param_count(), 1_620_764);
        assert_eq!(ghn.embed.embed.dims(), [15, 32]);
        assert_eq!(ghn.embed.embed_channel.dims(), [392, 8]);
        assert_eq!(ghn.embed.embed_spatial.dims(), [9, 8]);
        assert_eq!(ghn.decoder.fc.weight.dims(), [32, 15488]);
        assert_eq!(ghn.decoder.conv2.weight.dims(), [256, 4096]);
        // GHN-1 (no virtual edges): 1,620,668.
        let ghn1 = Ghn::new(
            &GhnConfig {
                s_max: 1,
                ..GhnConfig::cifar10()
            },
            &Device::flex(),
        );
        assert_eq!(ghn1.param_count(), 1_620_668 + 64); // GHN-1 also has no LayerNorm (64 params).
    }

    #[test]
    fn config_text_round_trip() {
        let c = GhnConfig {
            hid: 16,
            max_ch: 24,
            s_max: 7,
            layernorm: false,
            ..GhnConfig::cifar10()
        };
        assert_eq!(GhnConfig::from_text(&c.to_text()).unwrap(), c);
    }
}
