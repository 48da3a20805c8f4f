//! The GatedGNN of GHN-2 (GHN_SPEC §2.3, T = 1): one forward sweep in topological order, then one
//! backward sweep, each updating nodes sequentially (Gauss–Seidel) with a GRU cell. Messages come
//! from 1-hop neighbours through `mlp` and from all neighbours within `s_max` hops through `mlp_ve`
//! weighted by 1/distance (1-hop neighbours contribute to both sums).
//!
//! Batching: the graphs of a meta-batch are sorted by size (largest first) and processed in lock-step
//! by local node index, so at step `v` the graphs that have a node `v` form a prefix `0..B_v` and
//! their rows are contiguous. `M[u] = mlp(h_u)` and `S[u] = mlp_ve(h_u)` are cached in one tensor per
//! sweep whose rows are refreshed right after a node's update — O(N) MLP calls, identical math.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

/// Two linear layers; `relu_out` adds a ReLU after the second (GatedGNN MLPs: yes; decoder_1d: no).
#[derive(Module, Debug)]
pub struct Mlp {
    /// First layer.
    pub fc0: Linear,
    /// Second layer.
    pub fc2: Linear,
    /// ReLU after the second layer too.
    #[module(skip)]
    pub relu_out: bool,
}

impl Mlp {
    /// `d_in → d_hid → d_out`, PyTorch-default initialisation.
    pub fn new(d_in: usize, d_hid: usize, d_out: usize, relu_out: bool, device: &Device) -> Mlp {
        Mlp {
            fc0: LinearConfig::new(d_in, d_hid).init(device),
            fc2: LinearConfig::new(d_hid, d_out).init(device),
            relu_out,
        }
    }

    /// Apply to `[n, d_in]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = self.fc2.forward(relu(self.fc0.forward(x)));
        if self.relu_out { relu(y) } else { y }
    }
}

/// PyTorch `GRUCell` (gate rows `[r; z; n]`), weights stored in PyTorch layout `(3h, h)`.
#[derive(Module, Debug)]
pub struct GruCell {
    /// `W_ih`: 3h × h.
    pub weight_ih: Param<Tensor<2>>,
    /// `W_hh`: 3h × h.
    pub weight_hh: Param<Tensor<2>>,
    /// `b_ih`: 3h.
    pub bias_ih: Param<Tensor<1>>,
    /// `b_hh`: 3h.
    pub bias_hh: Param<Tensor<1>>,
}

impl GruCell {
    /// All weights ~ U(±1/√h) (PyTorch default).
    pub fn new(h: usize, device: &Device) -> GruCell {
        let b = 1.0 / (h as f64).sqrt();
        let u2 = || {
            Param::from_tensor(Tensor::random(
                [3 * h, h],
                Distribution::Uniform(-b, b),
                device,
            ))
        };
        let u1 = || {
            Param::from_tensor(Tensor::random(
                [3 * h],
                Distribution::Uniform(-b, b),
                device,
            ))
        };
        GruCell {
            weight_ih: u2(),
            weight_hh: u2(),
            bias_ih: u1(),
            bias_hh: u1(),
        }
    }

    /// Weights transposed once per sweep: `(W_ih^T, W_hh^T, b_ih, b_hh)`.
    fn prepared(&self) -> GruPrepared {
        GruPrepared {
            w_ih_t: self.weight_ih.val().transpose(),
            w_hh_t: self.weight_hh.val().transpose(),
            b_ih: self.bias_ih.val().unsqueeze_dim(0),
            b_hh: self.bias_hh.val().unsqueeze_dim(0),
        }
    }

    /// One step `h' = GRU(x, h)` on `[n, h]` (reference form, used by tests).
    pub fn forward(&self, x: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
        self.prepared().step(Some(x), h)
    }
}

struct GruPrepared {
    w_ih_t: Tensor<2>,
    w_hh_t: Tensor<2>,
    b_ih: Tensor<2>,
    b_hh: Tensor<2>,
}

impl GruPrepared {
    /// `x = None` means a zero message (nodes without neighbours in this direction).
    fn step(&self, x: Option<Tensor<2>>, h: Tensor<2>) -> Tensor<2> {
        let [n, d] = h.dims();
        let gi = match x {
            Some(x) => x.matmul(self.w_ih_t.clone()) + self.b_ih.clone(),
            None => self.b_ih.clone().expand([n, 3 * d]),
        };
        let gh = h.clone().matmul(self.w_hh_t.clone()) + self.b_hh.clone();
        let r = sigmoid(gi.clone().slice([0..n, 0..d]) + gh.clone().slice([0..n, 0..d]));
        let z = sigmoid(gi.clone().slice([0..n, d..2 * d]) + gh.clone().slice([0..n, d..2 * d]));
        let c = tanh(gi.slice([0..n, 2 * d..3 * d]) + r * gh.slice([0..n, 2 * d..3 * d]));
        // h' = (1 − z) ⊙ n + z ⊙ h
        c.clone() + z * (h - c)
    }
}

/// Lock-step layout of a meta-batch (graphs sorted by size, largest first).
#[derive(Debug, Clone)]
pub struct BatchLayout {
    /// `B_v`: number of graphs having a node `v`.
    pub count: Vec<usize>,
    /// Row offset of node `v` of graph 0; node `v` of sorted graph `g` is row `offset[v] + g`.
    pub offset: Vec<usize>,
    /// Total rows (Σ graph sizes).
    pub rows: usize,
}

impl BatchLayout {
    /// Layout for graphs of sizes `sizes` (must be sorted descending).
    pub fn new(sizes: &[usize]) -> BatchLayout {
        let nmax = sizes.first().copied().unwrap_or(0);
        let mut count = Vec::with_capacity(nmax);
        let mut offset = Vec::with_capacity(nmax);
        let mut rows = 0;
        for v in 0..nmax {
            let b = sizes.iter().take_while(|&&s| s > v).count();
            count.push(b);
            offset.push(rows);
            rows += b;
        }
        BatchLayout {
            count,
            offset,
            rows,
        }
    }

    /// Row of node `v` of sorted graph `g`.
    pub fn row(&self, g: usize, v: usize) -> usize {
        self.offset[v] + g
    }
}

/// Neighbour lists of one sorted graph, per direction: for node `v`, `(u, distance)`.
pub type Neighbours = Vec<Vec<(usize, u32)>>;

/// The GatedGNN.
#[derive(Module, Debug)]
pub struct GatedGnn {
    /// 1-hop message MLP (hid → hid/2 → hid, ReLU after both).
    pub mlp: Mlp,
    /// Virtual-edge message MLP (same shape, separate weights); `None` = no virtual edges (GHN-1).
    pub mlp_ve: Option<Mlp>,
    /// The node update.
    pub gru: GruCell,
}

impl GatedGnn {
    /// GHN-2: `ve = true`, MLPs hid → hid/2 → hid. GHN-1 (`ve = false`): one MLP hid → hid → hid.
    pub fn new(hid: usize, ve: bool, device: &Device) -> GatedGnn {
        let mid = if ve { hid / 2 } else { hid };
        GatedGnn {
            mlp: Mlp::new(hid, mid, hid, true, device),
            mlp_ve: ve.then(|| Mlp::new(hid, mid, hid, true, device)),
            gru: GruCell::new(hid, device),
        }
    }

    /// Run the forward and backward sweeps. `x` is `[layout.rows, hid]`; `parents[g]` / `children[g]`
    /// are the neighbour lists of sorted graph `g` (distances ≤ s_max, 1 = 1-hop).
    pub fn forward(
        &self,
        x: Tensor<2>,
        layout: &BatchLayout,
        parents: &[&Neighbours],
        children: &[&Neighbours],
    ) -> Tensor<2> {
        let device = x.device();
        let [rows, hid] = x.dims();
        let nmax = layout.count.len();
        let gru = self.gru.prepared();
        let mut h: Vec<Tensor<2>> = (0..nmax)
            .map(|v| {
                x.clone()
                    .slice([layout.offset[v]..layout.offset[v] + layout.count[v], 0..hid])
            })
            .collect();
        let forward_order: Vec<usize> = (0..nmax).collect();
        let backward_order: Vec<usize> = (0..nmax).rev().collect();
        for (order, nbrs) in [(&forward_order, parents), (&backward_order, children)] {
            let mut cache_m: Tensor<2> = Tensor::zeros([rows, hid], &device);
            let mut cache_s: Tensor<2> = Tensor::zeros([rows, hid], &device);
            for &v in order {
                let b = layout.count[v];
                let msg = self.message(v, b, layout, nbrs, &cache_m, &cache_s, &device);
                let hv = gru.step(msg, h[v].clone());
                let r = layout.offset[v]..layout.offset[v] + b;
                cache_m = cache_m.slice_assign([r.clone(), 0..hid], self.mlp.forward(hv.clone()));
                if let Some(ve) = &self.mlp_ve {
                    cache_s = cache_s.slice_assign([r, 0..hid], ve.forward(hv.clone()));
                }
                h[v] = hv;
            }
        }
        Tensor::cat(h, 0)
    }

    /// `m_v` for node `v` of the first `b` sorted graphs: Σ_{1-hop} M[u] + Σ_{d ≤ s_max} S[u] / d.
    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        v: usize,
        b: usize,
        layout: &BatchLayout,
        nbrs: &[&Neighbours],
        cache_m: &Tensor<2>,
        cache_s: &Tensor<2>,
        device: &Device,
    ) -> Option<Tensor<2>> {
        let mut idx1: Vec<i64> = Vec::new();
        let mut idx2: Vec<i64> = Vec::new();
        let mut owner1: Vec<usize> = Vec::new();
        let mut owner2: Vec<(usize, f32)> = Vec::new();
        for (g, nb) in nbrs.iter().enumerate().take(b) {
            for &(u, d) in &nb[v] {
                let row = layout.row(g, u) as i64;
                if d == 1 {
                    idx1.push(row);
                    owner1.push(g);
                }
                if self.mlp_ve.is_some() {
                    idx2.push(row);
                    owner2.push((g, 1.0 / d as f32));
                }
            }
        }
        if idx1.is_empty() && idx2.is_empty() {
            return None;
        }
        // Scatter-sum as a small dense matmul: P[g, e] = weight of edge e into graph g.
        let gather =
            |idx: Vec<i64>, owners: Vec<(usize, f32)>, cache: &Tensor<2>| -> Option<Tensor<2>> {
                if idx.is_empty() {
                    return None;
                }
                let e = idx.len();
                let mut p = vec![0f32; b * e];
                for (k, (g, w)) in owners.into_iter().enumerate() {
                    p[g * e + k] = w;
                }
                let p: Tensor<2> = Tensor::from_data(TensorData::new(p, [b, e]), device);
                let rows = cache.clone().select(
                    0,
                    Tensor::<1, Int>::from_data(TensorData::new(idx, [e]), device),
                );
                Some(p.matmul(rows))
            };
        let m1 = gather(
            idx1,
            owner1.into_iter().map(|g| (g, 1.0)).collect(),
            cache_m,
        );
        let m2 = gather(idx2, owner2, cache_s);
        match (m1, m2) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_rows_are_lockstep_prefixes() {
        let l = BatchLayout::new(&[4, 2, 1]);
        assert_eq!(l.count, vec![3, 2, 1, 1]);
        assert_eq!(l.offset, vec![0, 3, 5, 6]);
        assert_eq!(l.rows, 7);
        assert_eq!(l.row(1, 1), 4);
    }

    /// GHN_SPEC §8.2: 1-hop neighbours are counted in both MLP and MLP_sp. With one parent at distance
    /// 1 the message is M + S; at distance 2, S / 2 only.
    #[test]
    fn one_hop_counts_in_both_sums() {
        let dev = Device::flex();
        let gnn = GatedGnn::new(8, true, &dev);
        let layout = BatchLayout::new(&[3]);
        let cache_m: Tensor<2> = Tensor::random([3, 8], Distribution::Normal(0.0, 1.0), &dev);
        let cache_s: Tensor<2> = Tensor::random([3, 8], Distribution::Normal(0.0, 1.0), &dev);
        let nb: Neighbours = vec![vec![], vec![(0, 1)], vec![(0, 2), (1, 1)]];
        let m = gnn
            .message(2, 1, &layout, &[&nb], &cache_m, &cache_s, &dev)
            .unwrap();
        let want = cache_m.clone().slice([1..2, 0..8])
            + cache_s.clone().slice([1..2, 0..8])
            + cache_s.clone().slice([0..1, 0..8]) / 2.0;
        let d: Vec<f32> = (m - want).abs().into_data().try_to_vec::<f32>().unwrap();
        assert!(d.iter().all(|&x| x < 1e-5), "{d:?}");
        assert!(
            gnn.message(0, 1, &layout, &[&nb], &cache_m, &cache_s, &dev)
                .is_none()
        );
    }
}
