//! Node embedding (GHN_SPEC §2.2): `x_v = E_type[type_v] + concat(E_ch[out], E_ch[in], E_sp[h], E_sp[w])`.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use super::shape_encoder::ShapeTables;

/// Type embedding plus the shape encoder's two tables (all ~ N(0, 1), PyTorch `nn.Embedding`).
#[derive(Module, Debug)]
pub struct NodeEmbedding {
    /// `E_type`: 15 × hid.
    pub embed: Param<Tensor<2>>,
    /// `E_ch`: (n_ch + 1) × hid/4 (last row = no shape).
    pub embed_channel: Param<Tensor<2>>,
    /// `E_sp`: (n_sp + 1) × hid/4 (last row = no shape).
    pub embed_spatial: Param<Tensor<2>>,
}

impl NodeEmbedding {
    /// Fresh tables for a hidden size `hid` (a multiple of 4).
    pub fn new(hid: usize, tables: &ShapeTables, device: &Device) -> NodeEmbedding {
        let normal = |rows: usize, cols: usize| {
            Param::from_tensor(Tensor::random(
                [rows, cols],
                Distribution::Normal(0.0, 1.0),
                device,
            ))
        };
        NodeEmbedding {
            embed: normal(super::graph::NUM_PRIMITIVES, hid),
            embed_channel: normal(tables.channels.len() + 1, hid / 4),
            embed_spatial: normal(tables.spatial.len() + 1, hid / 4),
        }
    }

    /// Embed `n` nodes: `types` `[n]`, `shape_rows` = the four look-up rows per node (out, in, h, w).
    pub fn forward(
        &self,
        types: &[usize],
        shape_rows: &[[usize; 4]],
        device: &Device,
    ) -> Tensor<2> {
        let idx = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        let t = self
            .embed
            .val()
            .select(0, idx(types.iter().map(|&t| t as i64).collect()));
        let col = |k: usize| idx(shape_rows.iter().map(|r| r[k] as i64).collect());
        let ch = self.embed_channel.val();
        let sp = self.embed_spatial.val();
        let shape = Tensor::cat(
            vec![
                ch.clone().select(0, col(0)),
                ch.select(0, col(1)),
                sp.clone().select(0, col(2)),
                sp.select(0, col(3)),
            ],
            1,
        );
        t + shape
    }
}
