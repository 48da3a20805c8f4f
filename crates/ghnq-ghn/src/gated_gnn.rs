//! The GatedGNN of GHN-2 (GHN_SPEC §2.3, T = 1): one forward sweep in topological order, then one
//! backward sweep, each updating nodes in place (Gauss–Seidel: a node reads its neighbours' updated
//! states) with a GRU cell. Messages come from 1-hop neighbours through `mlp` and from all
//! neighbours within `s_max` hops through `mlp_ve` weighted by 1/distance (1-hop neighbours
//! contribute to both sums).
//!
//! Batching by level. GHN_SPEC describes the sweeps node by node (`v = 0..N-1`, then back) and
//! warns that updating nodes of equal depth together would turn Gauss–Seidel into Jacobi. That
//! holds only for nodes that read each other, and nodes of one level never do: in the forward
//! sweep a node reads only its parents (ancestors within `s_max` hops, which the sequential order
//! has all updated before it), and every ancestor has a strictly smaller longest-path depth from
//! the sources, so nodes of equal depth are never ancestors of one another. Updating a whole depth
//! level at once therefore feeds every node exactly the states the sequential order feeds it: the
//! same computation, only the order of float additions differs (checked against ppuda, which
//! uses another topological order, in `tools/ppuda-golden/README.md`, and against the sequential
//! sweep in this module's tests). The backward sweep does the same with the height above the
//! sinks (children are descendants), in increasing height.
//!
//! So each sweep runs one step per level for the whole meta-batch at once (the deepest graph's
//! depth, about half its node count for the DeepNets-style nets, instead of the largest graph's
//! node count), each step on all rows of the level: the rows are permuted so that each level is
//! contiguous, `M[u] = mlp(h_u)` and `S[u] = mlp_ve(h_u)` are cached side by side in one tensor per
//! sweep whose level rows are written with one `slice_assign` after the level's GRU step, and a
//! level's messages are one gather from that cache and one small batched matmul with the 1 and
//! 1/d weights. The output is permuted back to the caller's row order ([`BatchLayout`]).

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
        // r and z in one op each (same element-wise math as two).
        let rz = sigmoid(gi.clone().slice([0..n, 0..2 * d]) + gh.clone().slice([0..n, 0..2 * d]));
        let (r, z) = (rz.clone().slice([0..n, 0..d]), rz.slice([0..n, d..2 * d]));
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
    /// are the neighbour lists of sorted graph `g` (distances ≤ s_max, 1 = 1-hop). The result has
    /// the rows of `x`.
    pub fn forward(
        &self,
        x: Tensor<2>,
        layout: &BatchLayout,
        parents: &[&Neighbours],
        children: &[&Neighbours],
    ) -> Tensor<2> {
        if layout.rows == 0 {
            return x;
        }
        let device = x.device();
        let ve = self.mlp_ve.is_some();
        let gru = self.gru.prepared();
        let cache_mlp = self.cache_mlp();
        let fwd = Schedule::new(layout, parents, true, ve);
        let bwd = Schedule::new(layout, children, false, ve);
        let h = x.select(0, index(fwd.rows.iter().map(|&r| r as i64), &device));
        let h = self.sweep(h, &fwd, &gru, &cache_mlp, &device);
        // From forward-sweep positions to backward-sweep positions, and back to layout rows.
        let fwd_pos = inverse(&fwd.rows);
        let h = h.select(
            0,
            index(bwd.rows.iter().map(|&r| fwd_pos[r] as i64), &device),
        );
        let h = self.sweep(h, &bwd, &gru, &cache_mlp, &device);
        h.select(
            0,
            index(inverse(&bwd.rows).into_iter().map(|k| k as i64), &device),
        )
    }

    /// `mlp` and `mlp_ve` as one MLP producing `[M | S]`: first layers side by side, second layers
    /// block-diagonal (the zero blocks add exact zeros), so a level's cache refresh is one chain of
    /// ops instead of two and a concatenation.
    fn cache_mlp(&self) -> CacheMlp {
        let bias = |l: &Linear| -> Tensor<2> {
            let [_, d_out] = l.weight.dims();
            match &l.bias {
                Some(b) => b.val().unsqueeze_dim(0),
                None => Tensor::zeros([1, d_out], &l.weight.device()),
            }
        };
        let (a, Some(b)) = (&self.mlp, &self.mlp_ve) else {
            return CacheMlp {
                w0: self.mlp.fc0.weight.val(),
                b0: bias(&self.mlp.fc0),
                w2: self.mlp.fc2.weight.val(),
                b2: bias(&self.mlp.fc2),
                relu_out: self.mlp.relu_out,
            };
        };
        assert_eq!(
            a.relu_out, b.relu_out,
            "mlp and mlp_ve differ in their output ReLU"
        );
        let [mid_a, out_a] = a.fc2.weight.dims();
        let [mid_b, out_b] = b.fc2.weight.dims();
        let device = a.fc2.weight.device();
        let w2 = Tensor::cat(
            vec![
                Tensor::cat(
                    vec![a.fc2.weight.val(), Tensor::zeros([mid_a, out_b], &device)],
                    1,
                ),
                Tensor::cat(
                    vec![Tensor::zeros([mid_b, out_a], &device), b.fc2.weight.val()],
                    1,
                ),
            ],
            0,
        );
        CacheMlp {
            w0: Tensor::cat(vec![a.fc0.weight.val(), b.fc0.weight.val()], 1),
            b0: Tensor::cat(vec![bias(&a.fc0), bias(&b.fc0)], 1),
            w2,
            b2: Tensor::cat(vec![bias(&a.fc2), bias(&b.fc2)], 1),
            relu_out: a.relu_out,
        }
    }

    /// One sweep on `h` in the schedule's row order, level by level (the result in the same order).
    fn sweep(
        &self,
        h: Tensor<2>,
        schedule: &Schedule,
        gru: &GruPrepared,
        cache_mlp: &CacheMlp,
        device: &Device,
    ) -> Tensor<2> {
        let [rows, hid] = h.dims();
        // Cache rows hold [M | S] side by side, so one gather serves both sums.
        let width = if self.mlp_ve.is_some() { 2 * hid } else { hid };
        let mut cache: Tensor<2> = Tensor::zeros([rows, width], device);
        let mut out = Vec::with_capacity(schedule.levels.len());
        for level in &schedule.levels {
            let hv = h.clone().slice([level.start..level.end, 0..hid]);
            let msg = self.level_message(level, &cache, hid, device);
            let hv = gru.step(msg, hv);
            if level.read > 0 {
                let fresh = cache_mlp.forward(hv.clone().slice([0..level.read, 0..hid]));
                cache =
                    cache.slice_assign([level.start..level.start + level.read, 0..width], fresh);
            }
            out.push(hv);
        }
        Tensor::cat(out, 0)
    }

    /// `m_v` for every row of a level: Σ_{1-hop} M[u] + Σ_{d ≤ s_max} S[u] / d, as a batched
    /// `[1, K] × [K, hid]` product per row over its own gathered neighbours (`K` = the level's
    /// largest neighbour count; padding has weight 0). A dense `[rows, all entries]` scatter matmul
    /// would cost O(rows · entries) per level, and a level holds many more rows than a lock-step
    /// node index did.
    fn level_message(
        &self,
        level: &Level,
        cache: &Tensor<2>,
        hid: usize,
        device: &Device,
    ) -> Option<Tensor<2>> {
        if level.k == 0 {
            return None;
        }
        let n = level.end - level.start;
        // With virtual edges each gathered row splits into its M and S halves (2K terms per node).
        let terms = if self.mlp_ve.is_some() {
            2 * level.k
        } else {
            level.k
        };
        let gathered = cache
            .clone()
            .select(0, index(level.gather.iter().copied(), device))
            .reshape([n, terms, hid]);
        let w: Tensor<3> = Tensor::from_data(
            TensorData::new(level.weights.clone(), [n, 1, terms]),
            device,
        );
        Some(w.matmul(gathered).reshape([n, hid]))
    }
}

/// The message MLPs of one forward call, fused (see [`GatedGnn::cache_mlp`]).
struct CacheMlp {
    w0: Tensor<2>,
    b0: Tensor<2>,
    w2: Tensor<2>,
    b2: Tensor<2>,
    relu_out: bool,
}

impl CacheMlp {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = relu(x.matmul(self.w0.clone()) + self.b0.clone());
        let y = y.matmul(self.w2.clone()) + self.b2.clone();
        if self.relu_out { relu(y) } else { y }
    }
}

/// `ix` as a 1-D index tensor.
fn index(ix: impl Iterator<Item = i64>, device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = ix.collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

/// `inv[perm[k]] = k`.
fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (k, &r) in perm.iter().enumerate() {
        inv[r] = k;
    }
    inv
}

/// One sweep's order: the meta-batch's rows grouped into levels whose nodes never read each other.
struct Schedule {
    /// `rows[k]`: the layout row at sweep position `k`; each level's rows are contiguous.
    rows: Vec<usize>,
    /// In processing order.
    levels: Vec<Level>,
}

/// The rows `start..end` of a sweep and the gather that forms their messages.
struct Level {
    start: usize,
    end: usize,
    /// Rows `start..start + read` are read by later levels; only their cache rows are refreshed
    /// (the others would be written and never read).
    read: usize,
    /// Padded neighbour count: the largest number of contributing entries of a row (0 = no
    /// messages; then every row of the level has none).
    k: usize,
    /// `[n · k]` sweep positions of the neighbours, row-major by (row, entry).
    gather: Vec<i64>,
    /// `[n, 1, k]` (no virtual edges) or `[n, 1, 2k]` weights: per entry `1` for its M term, and
    /// with virtual edges `[1 if 1-hop else 0, 1/d]` for its M and S halves.
    weights: Vec<f32>,
}

impl Schedule {
    /// Levels of one direction. `forward`: nodes in increasing index; a node's level is its
    /// longest path from the sources (0 for nodes with no parents). Backward: the same on the
    /// reversed order, i.e. the height above the sinks.
    fn new(layout: &BatchLayout, nbrs: &[&Neighbours], forward: bool, ve: bool) -> Schedule {
        let rows = layout.rows;
        // Only entries the sequential sweep would read after they were updated count: a neighbour
        // later in the sweep order still has a zero cache row there, and without virtual edges
        // entries with d > 1 carry no message at all.
        let counts =
            |u: usize, v: usize, d: u32| (if forward { u < v } else { u > v }) && (ve || d == 1);
        let mut level = vec![0usize; rows];
        let mut read = vec![false; rows];
        let mut node_of = vec![(0usize, 0usize); rows];
        for (g, nb) in nbrs.iter().enumerate() {
            let n = nb.len();
            debug_assert!(
                (0..layout.count.len()).all(|v| (v < n) == (g < layout.count[v])),
                "graph {g}: {n} neighbour lists do not match the layout"
            );
            let order: Box<dyn Iterator<Item = usize>> = if forward {
                Box::new(0..n)
            } else {
                Box::new((0..n).rev())
            };
            for v in order {
                let r = layout.row(g, v);
                node_of[r] = (g, v);
                for &(u, d) in &nb[v] {
                    if counts(u, v, d) {
                        let ru = layout.row(g, u);
                        level[r] = level[r].max(level[ru] + 1);
                        read[ru] = true;
                    }
                }
            }
        }
        // Within a level, rows read later first, so their cache refresh is one contiguous block.
        let mut order: Vec<usize> = (0..rows).collect();
        order.sort_by_key(|&r| (level[r], !read[r], r));
        let pos = inverse(&order);
        let mut levels = Vec::new();
        let mut start = 0;
        while start < rows {
            let l = level[order[start]];
            let end = start
                + order[start..]
                    .iter()
                    .take_while(|&&r| level[r] == l)
                    .count();
            let members = &order[start..end];
            let entries: Vec<Vec<(usize, u32)>> = members
                .iter()
                .map(|&r| {
                    let (g, v) = node_of[r];
                    nbrs[g][v]
                        .iter()
                        .filter(|&&(u, d)| counts(u, v, d))
                        .map(|&(u, d)| (pos[layout.row(g, u)], d))
                        .collect()
                })
                .collect();
            let k = entries.iter().map(Vec::len).max().unwrap_or(0);
            let per_entry = if ve { 2 } else { 1 };
            let mut gather = vec![0i64; members.len() * k];
            let mut weights = vec![0f32; members.len() * k * per_entry];
            for (i, row) in entries.iter().enumerate() {
                for (j, &(p, d)) in row.iter().enumerate() {
                    gather[i * k + j] = p as i64;
                    let w = &mut weights[(i * k + j) * per_entry..][..per_entry];
                    w[0] = if d == 1 { 1.0 } else { 0.0 };
                    if ve {
                        w[1] = 1.0 / d as f32;
                    }
                }
            }
            levels.push(Level {
                start,
                end,
                read: members.iter().filter(|&&r| read[r]).count(),
                k,
                gather,
                weights,
            });
            start = end;
        }
        Schedule {
            rows: order,
            levels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The sequential sweeps of GHN_SPEC §2.3 (node index by node index, the graphs in lock-step),
    /// the reference the level-batched [`GatedGnn::forward`] must reproduce.
    fn sequential_forward(
        gnn: &GatedGnn,
        x: Tensor<2>,
        layout: &BatchLayout,
        parents: &[&Neighbours],
        children: &[&Neighbours],
    ) -> Tensor<2> {
        let device = x.device();
        let [rows, hid] = x.dims();
        let nmax = layout.count.len();
        let gru = gnn.gru.prepared();
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
                let msg = message(gnn, v, b, layout, nbrs, &cache_m, &cache_s, &device);
                let hv = gru.step(msg, h[v].clone());
                let r = layout.offset[v]..layout.offset[v] + b;
                cache_m = cache_m.slice_assign([r.clone(), 0..hid], gnn.mlp.forward(hv.clone()));
                if let Some(ve) = &gnn.mlp_ve {
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
        gnn: &GatedGnn,
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
                if gnn.mlp_ve.is_some() {
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
        let nb: Neighbours = vec![vec![], vec![(0, 1)], vec![(0, 2), (1, 1)]];
        let cache_m: Tensor<2> = Tensor::random([3, 8], Distribution::Normal(0.0, 1.0), &dev);
        let cache_s: Tensor<2> = Tensor::random([3, 8], Distribution::Normal(0.0, 1.0), &dev);
        let want = cache_m.clone().slice([1..2, 0..8])
            + cache_s.clone().slice([1..2, 0..8])
            + cache_s.clone().slice([0..1, 0..8]) / 2.0;
        let close = |m: Tensor<2>| {
            let d: Vec<f32> = (m - want.clone())
                .abs()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            assert!(d.iter().all(|&x| x < 1e-5), "{d:?}");
        };
        // The reference.
        close(message(&gnn, 2, 1, &layout, &[&nb], &cache_m, &cache_s, &dev).unwrap());
        assert!(message(&gnn, 0, 1, &layout, &[&nb], &cache_m, &cache_s, &dev).is_none());
        // The level schedule: node v sits at level v (a chain), i.e. at sweep position v.
        let schedule = Schedule::new(&layout, &[&nb], true, true);
        assert_eq!(schedule.rows, vec![0, 1, 2]);
        let cache = Tensor::cat(vec![cache_m.clone(), cache_s.clone()], 1);
        close(
            gnn.level_message(&schedule.levels[2], &cache, 8, &dev)
                .unwrap(),
        );
        assert!(
            gnn.level_message(&schedule.levels[0], &cache, 8, &dev)
                .is_none()
        );
    }

    /// A random DAG on `n` nodes in topological index order (1–3 parents, mostly among the last few
    /// nodes so that paths are long, as in the nets; some extra sources) with its neighbour lists
    /// up to `s_max` hops: (parents, children).
    fn random_graph(n: usize, s_max: u32, rng: &mut impl Rng) -> (Neighbours, Neighbours) {
        // dist[v][u]: shortest path u → v (0 = none); rows are filled in index order, so a
        // parent's row is final when its children are built.
        let mut dist: Vec<Vec<u32>> = Vec::with_capacity(n);
        for v in 0..n {
            let mut hop: Vec<usize> = Vec::new();
            if v > 0 && !rng.random_bool(0.1) {
                let k = rng.random_range(1..=3.min(v));
                while hop.len() < k {
                    let u = if rng.random_bool(0.7) {
                        v - rng.random_range(1..=5.min(v))
                    } else {
                        rng.random_range(0..v)
                    };
                    if !hop.contains(&u) {
                        hop.push(u);
                    }
                }
            }
            let mut row = vec![0u32; n];
            for &p in &hop {
                for (u, d) in row.iter_mut().enumerate() {
                    let via = if u == p { 1 } else { dist[p][u] + 1 };
                    if (u == p || dist[p][u] > 0) && (*d == 0 || via < *d) {
                        *d = via;
                    }
                }
            }
            dist.push(row);
        }
        let mut parents = vec![Vec::new(); n];
        let mut children = vec![Vec::new(); n];
        for (v, row) in dist.iter().enumerate() {
            for (u, &d) in row.iter().enumerate() {
                if d > 0 && d <= s_max {
                    parents[v].push((u, d));
                    children[u].push((v, d));
                }
            }
        }
        (parents, children)
    }

    /// Every value of the output and every gradient (GNN weights and input) of `Σ c ⊙ GNN(x)`; a
    /// weight the loss does not reach counts as a zero gradient.
    fn outputs_and_grads(
        gnn: &GatedGnn,
        x: &Tensor<2>,
        c: &Tensor<2>,
        run: impl Fn(Tensor<2>) -> Tensor<2>,
    ) -> Vec<(String, Vec<f32>)> {
        let x = x.clone().require_grad();
        let y = run(x.clone());
        let values = |d: TensorData| d.convert::<f32>().try_into_vec::<f32>().unwrap();
        let mut out = vec![("output".to_string(), values(y.clone().into_data()))];
        let grads = (y * c.clone()).sum().backward();
        macro_rules! grad {
            ($t:expr) => {{
                let t = $t;
                let n = t.shape().num_elements();
                t.grad(&grads)
                    .map(|g| values(g.into_data()))
                    .unwrap_or_else(|| vec![0.0; n])
            }};
        }
        out.push(("grad x".into(), grad!(x)));
        let mut mlps = vec![("mlp", &gnn.mlp)];
        if let Some(ve) = &gnn.mlp_ve {
            mlps.push(("mlp_ve", ve));
        }
        for (name, mlp) in mlps {
            for (layer, lin) in [("fc0", &mlp.fc0), ("fc2", &mlp.fc2)] {
                let bias = lin.bias.as_ref().unwrap().val();
                out.push((
                    format!("grad {name}.{layer}.weight"),
                    grad!(lin.weight.val()),
                ));
                out.push((format!("grad {name}.{layer}.bias"), grad!(bias)));
            }
        }
        let gru = &gnn.gru;
        out.push(("grad gru.weight_ih".into(), grad!(gru.weight_ih.val())));
        out.push(("grad gru.weight_hh".into(), grad!(gru.weight_hh.val())));
        out.push(("grad gru.bias_ih".into(), grad!(gru.bias_ih.val())));
        out.push(("grad gru.bias_hh".into(), grad!(gru.bias_hh.val())));
        out
    }

    /// The level-batched sweeps equal the sequential ones, values and gradients, on a meta-batch of
    /// random graphs of several sizes (one of a single node), with and without virtual edges, and
    /// with the neighbour lists swapped (parents in the backward sweep: no neighbour precedes a node,
    /// so both implementations see zero caches). Tolerance: 1e-5 · max(1, max |reference|) per
    /// tensor; only the order of float additions differs.
    #[test]
    fn level_sweeps_equal_sequential_sweeps() {
        const TOL: f32 = 1e-5;
        let dev = Device::flex().autodiff();
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let sizes = [60, 41, 41, 23, 9, 2, 1];
        let layout = BatchLayout::new(&sizes);
        let graphs: Vec<(Neighbours, Neighbours)> = sizes
            .iter()
            .map(|&n| random_graph(n, 6, &mut rng))
            .collect();
        let parents: Vec<&Neighbours> = graphs.iter().map(|g| &g.0).collect();
        let children: Vec<&Neighbours> = graphs.iter().map(|g| &g.1).collect();
        let hid = 12;
        let mut worst = 0.0f32;
        for (ve, swap) in [(true, false), (false, false), (true, true)] {
            let gnn = GatedGnn::new(hid, ve, &dev);
            let x: Tensor<2> =
                Tensor::random([layout.rows, hid], Distribution::Normal(0.0, 1.0), &dev);
            let c: Tensor<2> =
                Tensor::random([layout.rows, hid], Distribution::Normal(0.0, 1.0), &dev);
            let (p, ch) = if swap {
                (&children, &parents)
            } else {
                (&parents, &children)
            };
            let got = outputs_and_grads(&gnn, &x, &c, |x| gnn.forward(x, &layout, p, ch));
            let want = outputs_and_grads(&gnn, &x, &c, |x| {
                sequential_forward(&gnn, x, &layout, p, ch)
            });
            for ((name, g), (_, w)) in got.iter().zip(&want) {
                assert_eq!(g.len(), w.len(), "{name}");
                let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let diff = g
                    .iter()
                    .zip(w)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
                    / scale;
                assert!(
                    diff <= TOL,
                    "ve {ve}, swapped {swap}: {name} differs by {diff:e} (relative)"
                );
                worst = worst.max(diff);
            }
        }
        // The levels are far fewer than the nodes (the point of the batching).
        let levels = Schedule::new(&layout, &parents, true, true).levels.len();
        eprintln!(
            "worst relative difference {worst:.1e}; forward levels {levels} vs {} nodes",
            sizes[0]
        );
        assert!(levels < sizes[0]);
    }
}
