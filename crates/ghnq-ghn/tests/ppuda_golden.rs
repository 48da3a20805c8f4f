//! Parity of this crate's GHN-2 with the reference implementation, facebookresearch/ppuda
//! (commit 4673a42), on golden data that ppuda itself computed.
//!
//! `tests/golden/ppuda/` holds, for a seeded random-init ppuda GHN-2 (`hid` 8, `max_shape`
//! (16, 16, 11, 11), 10 classes, virtual edges up to 50 hops, LayerNorm, weight normalisation):
//! its weights (`ghn_weights.safetensors`, ppuda's own state-dict names), a handful of this
//! project's nets (`nets/*.json`), and per net (`net_<name>.safetensors`) ppuda's graph (node
//! types, shape-encoder rows, the N×N matrix of 1-hop and virtual-edge distances), its node embeddings
//! after the embedding, after the GatedGNN and after the LayerNorm, and every predicted parameter
//! tensor; plus the gradients of every GHN weight (`ghn_grads.safetensors`) for the loss
//! `Σ_nets Σ_tensors Σ_j c(net, tensor, j) · p_j` (see [`coefficient`]) with all nets predicted
//! in one meta-batch. `tools/ppuda-golden/` has the generator and how to rerun it.
//!
//! The tests here load the weights into [`Ghn`], rebuild the graphs with [`GhnGraph::build`], and
//! compare stage by stage, so that a failure names the stage that drifted.
//!
//! `export_nets` (ignored) writes the nets and their graphs for the generator; run it only when
//! the set of nets changes, then rerun the generator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use ghnq_core::arch::generator::GeneratorConfig;
use ghnq_core::arch::splits::Split;
use ghnq_core::arch::{ImageShape, Net, NetBuilder, Op};
use ghnq_core::cnn::ParamSet;
use ghnq_ghn::gated_gnn::BatchLayout;
use ghnq_ghn::graph::ParamRole;
use ghnq_ghn::ppuda::{self, Slot};
use ghnq_ghn::{Ghn, GhnConfig, GhnGraph};
use safetensors::{Dtype, SafeTensors};

/// Tolerance: every compared tensor must satisfy `max |rust − ppuda| ≤ RTOL · max(1, max |ppuda|)`.
/// Both sides compute in float32 with different summation orders (scatter-add vs. matmul, oneDNN
/// vs. burn's flex kernels); observed differences are ~1e-6 relative (see the generator's
/// README), so 1e-4 leaves margin while any real change of the math (a wrong gate, a missing
/// 1/distance, a transposed block) moves values by ≥ 1e-2.
const RTOL: f32 = 1e-4;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ppuda")
}

/// The coefficient of element `j` of tensor `t` (the `t`-th entry of `ParamSet::named_tensors`)
/// of net `k` in the scalar loss whose gradients the golden file holds. Integer arithmetic, then
/// one correctly rounded f32 division: bit-identical in numpy (the generator) and here.
fn coefficient(k: usize, t: usize, j: usize) -> f32 {
    let h = (j as u64 * 7919 + t as u64 * 104_729 + k as u64 * 15_485_863) % 2001;
    (h as f32 - 1000.0) / 1000.0
}

// ---------------------------------------------------------------------------------------------
// The nets.

/// GHN_SPEC §1.5's worked example.
fn worked_example() -> Net {
    ghnq_core::arch::predefined::ghn_spec_example()
}

/// Everything the generator does not emit: conv and hidden-linear biases, 70 channels (tiling
/// with a partial block), average pooling, a dilated depthwise conv, a concat, a hidden linear
/// layer on a flattened 2×2 map, ReLU6 and dropout.
fn odd_ops() -> Net {
    let shape = ImageShape { h: 4, w: 4, c: 3 };
    let mut b = NetBuilder::new("odd-ops", shape, 10);
    let conv = Op::Conv {
        kernel: 3,
        stride: 1,
        dilation: 1,
        padding: 1,
        groups: 1,
        cin: 3,
        cout: 70,
        bias: true,
    };
    let c = b.push("c1", conv, vec![0]).unwrap();
    let r = b.relu("r1", c, true).unwrap();
    // A 2×2 max pool (the shape encoder maps 2 to 3) and a 5×5 average pool, both to 2×2.
    let max_pool = Op::MaxPool {
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    let avg_pool = Op::AvgPool {
        kernel: 5,
        stride: 2,
        padding: 2,
    };
    let m = b.push("mp", max_pool, vec![r]).unwrap();
    let a = b.push("ap", avg_pool, vec![r]).unwrap();
    let s = b.push("add", Op::Add, vec![m, a]).unwrap();
    let d = b.dw_conv("dil", s, 3, 1, 2).unwrap();
    let k = b.push("cat", Op::Concat, vec![s, d]).unwrap();
    let f = b.linear("fc1", k, 20).unwrap();
    let r = b.relu("r2", f, false).unwrap();
    let dr = b.push("drop", Op::Dropout { p: 0.5 }, vec![r]).unwrap();
    b.linear("fc", dr, 10).unwrap();
    b.finish().unwrap()
}

/// The first `count` nets of `split` (seed 0) for `input` with at most `max_params` parameters
/// (keeps the golden files small).
fn small_nets(split: Split, input: ImageShape, count: usize, max_params: usize) -> Vec<Net> {
    let cfg: GeneratorConfig = split.config().unwrap();
    (0..)
        .map(|i| split.generated(&cfg, input, 10, 0, i).unwrap().0)
        .filter(|n| n.param_count() <= max_params)
        .take(count)
        .collect()
}

fn export_list() -> Vec<Net> {
    let mut nets = vec![worked_example(), odd_ops()];
    nets.extend(small_nets(Split::Train, ImageShape::CIFAR10, 2, 20_000));
    nets.extend(small_nets(
        Split::BnFree,
        ImageShape::FASHION_MNIST,
        1,
        20_000,
    ));
    nets
}

/// Writes `nets/<name>.json` (the IR) and `nets/<name>.graph.json` (this crate's GHN graph: node
/// order, types, shapes, IR node and role, and the 1-hop edges) for the generator.
#[test]
#[ignore = "writes the golden inputs; run by hand before tools/ppuda-golden/generate.py"]
fn export_nets() {
    let dir = std::env::var_os("GHNQ_PPUDA_EXPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| golden_dir().join("nets"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = Vec::new();
    for net in export_list() {
        let g = GhnGraph::build(&net, 50).unwrap();
        let nodes: Vec<serde_json::Value> = g
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "prim": n.prim.name(),
                    "shape": n.shape,
                    "ir_node": n.ir_node,
                    "role": match n.role {
                        None => "none",
                        Some(ParamRole::Weight) => "weight",
                        Some(ParamRole::Bias) => "bias",
                        Some(ParamRole::BatchNorm) => "bn",
                    },
                })
            })
            .collect();
        let edges = &g.edges;
        let graph = serde_json::json!({"s_max": g.s_max, "nodes": nodes, "edges": edges});
        std::fs::write(dir.join(format!("{}.json", net.name)), net.to_json()).unwrap();
        std::fs::write(
            dir.join(format!("{}.graph.json", net.name)),
            serde_json::to_string(&graph).unwrap(),
        )
        .unwrap();
        eprintln!(
            "{}: {} IR nodes, {} graph nodes, {} params",
            net.name,
            net.nodes.len(),
            g.len(),
            net.param_count()
        );
        names.push(net.name.clone());
    }
    std::fs::write(
        dir.join("list.json"),
        serde_json::to_string_pretty(&names).unwrap(),
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Golden files.

struct Golden {
    manifest: serde_json::Value,
    weights: Vec<u8>,
    grads: Vec<u8>,
    nets: Vec<(Net, Vec<u8>)>,
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load_golden() -> Golden {
    let dir = golden_dir();
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("manifest.json"))).unwrap();
    let nets = manifest["nets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let name = entry["name"].as_str().unwrap();
            let text = String::from_utf8(read(&dir.join(format!("nets/{name}.json")))).unwrap();
            let net = Net::from_json(&text).unwrap();
            (net, read(&dir.join(format!("net_{name}.safetensors"))))
        })
        .collect();
    Golden {
        weights: read(&dir.join("ghn_weights.safetensors")),
        grads: read(&dir.join("ghn_grads.safetensors")),
        manifest,
        nets,
    }
}

fn config(manifest: &serde_json::Value) -> GhnConfig {
    let c = &manifest["config"];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("config.{k}")) as usize;
    let f = |k: &str| c[k].as_bool().unwrap_or_else(|| panic!("config.{k}"));
    GhnConfig {
        hid: n("hid"),
        max_ch: n("max_ch"),
        max_sp: n("max_sp"),
        num_classes: n("num_classes"),
        s_max: n("s_max"),
        layernorm: f("layernorm"),
        weight_norm: f("weight_norm"),
        bit_conditioned: false,
    }
}

/// A golden tensor, or a panic naming it.
fn view<'a>(st: &'a SafeTensors<'_>, name: &str) -> safetensors::tensor::TensorView<'a> {
    st.tensor(name)
        .unwrap_or_else(|e| panic!("golden tensor {name}: {e}"))
}

/// Little-endian I64 elements.
fn i64s(data: &[u8]) -> impl Iterator<Item = i64> + '_ {
    data.chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
}

/// A tensor of a safetensors file as `(shape, f32 values)` (I64 tensors converted).
fn tensor(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = view(st, name);
    let v: Vec<f32> = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::I64 => i64s(t.data()).map(|v| v as f32).collect(),
        other => panic!("{name}: unexpected dtype {other:?}"),
    };
    (t.shape().to_vec(), v)
}

fn ints(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<i64>) {
    let t = view(st, name);
    assert_eq!(t.dtype(), Dtype::I64, "{name}");
    (t.shape().to_vec(), i64s(t.data()).collect())
}

/// A U8 tensor (the distance matrix).
fn bytes_of(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<u8>) {
    let t = view(st, name);
    assert_eq!(t.dtype(), Dtype::U8, "{name}");
    (t.shape().to_vec(), t.data().to_vec())
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `max |got − want| / max(1, max |want|)` and the element where the difference is largest.
fn rel_diff(got: &[f32], want: &[f32]) -> (f32, usize) {
    assert_eq!(got.len(), want.len(), "length");
    let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let d = (a - b).abs();
        if d > worst || d.is_nan() {
            worst = if d.is_nan() { f32::INFINITY } else { d };
            at = i;
        }
    }
    (worst / scale, at)
}

/// Asserts `rel_diff(got, want) ≤ RTOL`; returns the relative difference.
fn assert_close(what: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (rel, at) = rel_diff(got, want);
    assert!(
        rel <= RTOL,
        "{what}: max |rust − ppuda| / max(1, max |ppuda|) = {rel:e} at element {at} \
         (rust {}, ppuda {}), allowed {RTOL:e}",
        got[at],
        want[at],
    );
    rel
}

// ---------------------------------------------------------------------------------------------
// ppuda weights → Ghn.

// The name table and the loader are the library's (`ghnq_ghn::ppuda`).

// ---------------------------------------------------------------------------------------------
// The tests.

/// Graph construction: node types, shape-encoder rows and the distance matrix (1-hop edges plus
/// virtual edges up to 50 hops) of every net equal ppuda's, node for node in this crate's order.
#[test]
fn graphs_match_ppuda() {
    let g = load_golden();
    let cfg = config(&g.manifest);
    let ghn = Ghn::new(&cfg, &Device::flex());
    for (net, bytes) in &g.nets {
        let st = SafeTensors::deserialize(bytes).unwrap();
        let graph = GhnGraph::build(net, cfg.s_max).unwrap();
        let n = graph.len();
        let (shape, types) = ints(&st, "node_type");
        assert_eq!(shape, [n], "{}: node count", net.name);
        let ours: Vec<i64> = graph.nodes.iter().map(|v| v.prim as i64).collect();
        assert_eq!(ours, types, "{}: node types", net.name);
        let (_, rows) = ints(&st, "shape_ind");
        let ours: Vec<i64> = graph
            .nodes
            .iter()
            .flat_map(|v| ghn.tables.encode(v.shape.as_deref()).map(|r| r as i64))
            .collect();
        assert_eq!(ours, rows, "{}: shape-encoder rows", net.name);
        let (ashape, adj) = bytes_of(&st, "adj");
        assert_eq!(ashape, [n, n], "{}: distance matrix shape", net.name);
        let mut want: BTreeMap<(usize, usize), i64> = BTreeMap::new();
        for (k, &d) in adj.iter().enumerate() {
            if d > 0 {
                want.insert((k / n, k % n), d as i64);
            }
        }
        let mut got: BTreeMap<(usize, usize), i64> = BTreeMap::new();
        for u in 0..n {
            for &(v, d) in &graph.children[u] {
                got.insert((u, v), d as i64);
            }
        }
        assert_eq!(got, want, "{}: distance matrix", net.name);
        // parents are the transpose of children.
        for v in 0..n {
            for &(u, d) in &graph.parents[v] {
                assert_eq!(want.get(&(u, v)), Some(&(d as i64)), "{}", net.name);
            }
        }
    }
}

/// Embedding, GatedGNN, LayerNorm, decoders, tiling, normalisation and the backward pass: the
/// GHN loaded with ppuda's weights predicts ppuda's tensors for every net of one meta-batch, and
/// the gradients of the coefficient loss reach every GHN weight with ppuda's values.
#[test]
fn predictions_and_gradients_match_ppuda() {
    let g = load_golden();
    let cfg = config(&g.manifest);
    let dev = Device::flex().autodiff();
    let ghn = ppuda::load(&g.weights, &cfg, &dev).unwrap();
    let nets: Vec<&Net> = g.nets.iter().map(|(n, _)| n).collect();
    let graphs: Vec<GhnGraph> = nets
        .iter()
        .map(|n| GhnGraph::build(n, cfg.s_max).unwrap())
        .collect();
    let mut report = Vec::new();

    // Stage by stage, one net at a time.
    for ((net, bytes), graph) in g.nets.iter().zip(&graphs) {
        let st = SafeTensors::deserialize(bytes).unwrap();
        let n = graph.len();
        let (types, rows) = embedding_inputs(&ghn, graph);
        let x = ghn.embed.forward(&types, &rows, &dev);
        let stage = |what: &str, t: Tensor<2>, key: &str| {
            let (shape, want) = tensor(&st, key);
            assert_eq!(shape, [n, cfg.hid], "{}: {key}", net.name);
            assert_close(&format!("{}: {what}", net.name), &values(t), &want)
        };
        let e1 = stage("embedding (type + shape encoder)", x.clone(), "x_embed");
        let layout = BatchLayout::new(&[n]);
        let h = ghn
            .gnn
            .forward(x, &layout, &[&graph.parents], &[&graph.children]);
        let e2 = stage("GatedGNN (both sweeps, virtual edges)", h.clone(), "x_gnn");
        let e3 = stage("LayerNorm", ghn.ln.as_ref().unwrap().forward(h), "x_ln");
        report.push(format!(
            "{}: {n} nodes, rel. max diff embed {e1:.1e}, gnn {e2:.1e}, ln {e3:.1e}",
            net.name
        ));
    }

    // The whole meta-batch at once (lock-step batching), predictions and the loss.
    let graph_refs: Vec<&GhnGraph> = graphs.iter().collect();
    let params: Vec<ParamSet> = ghn.predict(&nets, &graph_refs, &dev);
    let mut loss: Option<Tensor<1>> = None;
    for (k, ((net, bytes), ps)) in g.nets.iter().zip(&params).enumerate() {
        let st = SafeTensors::deserialize(bytes).unwrap();
        let named = ps.named_tensors(net);
        let mut stored: Vec<String> = st
            .names()
            .into_iter()
            .filter(|s| s.starts_with("param."))
            .map(str::to_string)
            .collect();
        stored.sort();
        let mut ours: Vec<String> = named.iter().map(|(n, ..)| format!("param.{n}")).collect();
        ours.sort();
        assert_eq!(ours, stored, "{}: predicted tensor names", net.name);
        let mut worst = 0.0f32;
        for (name, shape, data) in &named {
            let (gshape, want) = tensor(&st, &format!("param.{name}"));
            assert_eq!(&gshape, shape, "{}: {name} shape", net.name);
            let got = data.clone().convert::<f32>().try_to_vec::<f32>().unwrap();
            worst = worst.max(assert_close(
                &format!("{}: predicted {name}", net.name),
                &got,
                &want,
            ));
        }
        report.push(format!(
            "{}: {} tensors, {} values, rel. max diff {worst:.1e}",
            net.name,
            named.len(),
            net.param_count()
        ));
        // Σ c · p over this net's tensors, in named_tensors order.
        for (t, tref) in ps.tensors().into_iter().enumerate() {
            use ghnq_core::cnn::params::TensorRef;
            let flat: Tensor<1> = match tref {
                TensorRef::D1(x) => x.clone(),
                TensorRef::D2(x) => x.clone().flatten(0, 1),
                TensorRef::D4(x) => x.clone().flatten(0, 3),
            };
            let len = flat.dims()[0];
            let c: Vec<f32> = (0..len).map(|j| coefficient(k, t, j)).collect();
            let c = Tensor::<1>::from_data(TensorData::new(c, [len]), &dev);
            let term = (flat * c).sum();
            loss = Some(match loss {
                Some(l) => l + term,
                None => term,
            });
        }
    }
    let loss = loss.unwrap();
    let want_loss = g.manifest["loss"].as_f64().unwrap() as f32;
    let got_loss = values(loss.clone())[0];
    assert!(
        (got_loss - want_loss).abs() <= RTOL * want_loss.abs().max(1.0),
        "loss {got_loss} vs ppuda {want_loss}"
    );

    let grads_st = SafeTensors::deserialize(&g.grads).unwrap();
    let grads = loss.backward();
    let mut worst = 0.0f32;
    for (name, slot) in ppuda::slots(&ghn).unwrap() {
        let (shape, want) = tensor(&grads_st, &name);
        let got = match slot {
            Slot::Same1(p) => p.val().grad(&grads).map(values),
            Slot::Same2(p) => p.val().grad(&grads).map(values),
            Slot::Transposed(p) => p.val().grad(&grads).map(|g| values(g.transpose())),
        };
        // ppuda leaves `.grad` at zero for weights the loss does not reach (e.g. rows of the
        // embedding tables no node uses); burn may return no gradient at all for them.
        let got = got.unwrap_or_else(|| vec![0.0; want.len()]);
        assert_eq!(got.len(), shape.iter().product::<usize>(), "{name}");
        worst = worst.max(assert_close(&format!("gradient of {name}"), &got, &want));
    }
    report.push(format!(
        "loss {got_loss} (ppuda {want_loss}); gradients of all GHN weights: rel. max diff {worst:.1e}"
    ));
    eprintln!("{}", report.join("\n"));
}

/// Negative controls: the comparison is not vacuous. Each deliberate change of the math, of the
/// kind this test exists to catch, moves the compared values by far more than the tolerance.
#[test]
fn comparison_detects_deliberate_changes() {
    let g = load_golden();
    let cfg = config(&g.manifest);
    let dev = Device::flex();
    let ghn = ppuda::load(&g.weights, &cfg, &dev).unwrap();
    // The largest net.
    let (net, bytes) = g.nets.iter().max_by_key(|(n, _)| n.nodes.len()).unwrap();
    let st = SafeTensors::deserialize(bytes).unwrap();
    let graph = GhnGraph::build(net, cfg.s_max).unwrap();
    let n = graph.len();
    let (types, rows) = embedding_inputs(&ghn, &graph);
    let layout = BatchLayout::new(&[n]);
    let x = ghn.embed.forward(&types, &rows, &dev);
    let (want_embed, want_gnn, want_ln) = (
        tensor(&st, "x_embed").1,
        tensor(&st, "x_gnn").1,
        tensor(&st, "x_ln").1,
    );
    let gnn_on = |gr: &GhnGraph, swap: bool| {
        let (p, c) = if swap {
            (&gr.children, &gr.parents)
        } else {
            (&gr.parents, &gr.children)
        };
        values(ghn.gnn.forward(x.clone(), &layout, &[p], &[c]))
    };
    let mut changes: Vec<(&str, f32)> = Vec::new();

    // Embedding: the type embedding alone (shape encoder dropped).
    let only_type = ghn.embed.forward(&types, &rows, &dev)
        - Tensor::cat(
            vec![
                ghn.embed
                    .embed_channel
                    .val()
                    .select(0, index(&rows, 0, &dev)),
                ghn.embed
                    .embed_channel
                    .val()
                    .select(0, index(&rows, 1, &dev)),
                ghn.embed
                    .embed_spatial
                    .val()
                    .select(0, index(&rows, 2, &dev)),
                ghn.embed
                    .embed_spatial
                    .val()
                    .select(0, index(&rows, 3, &dev)),
            ],
            1,
        );
    changes.push((
        "embedding without the shape encoder",
        rel_diff(&values(only_type), &want_embed).0,
    ));
    // GatedGNN: no virtual edges; virtual edges cut at 10 hops; messages from the wrong side.
    let g1 = GhnGraph::build(net, 1).unwrap();
    changes.push((
        "GatedGNN without virtual edges",
        rel_diff(&gnn_on(&g1, false), &want_gnn).0,
    ));
    let g10 = GhnGraph::build(net, 10).unwrap();
    changes.push((
        "GatedGNN with s_max = 10",
        rel_diff(&gnn_on(&g10, false), &want_gnn).0,
    ));
    changes.push((
        "GatedGNN sweeping children first",
        rel_diff(&gnn_on(&graph, true), &want_gnn).0,
    ));
    // GRU with the r and z gate rows swapped.
    let mut swapped = ppuda::load(&g.weights, &cfg, &dev).unwrap();
    let h = cfg.hid;
    let swap_rows = |p: &Param<Tensor<2>>| {
        let w = p.val();
        Param::from_tensor(Tensor::cat(
            vec![
                w.clone().narrow(0, h, h),
                w.clone().narrow(0, 0, h),
                w.narrow(0, 2 * h, h),
            ],
            0,
        ))
    };
    swapped.gnn.gru.weight_ih = swap_rows(&swapped.gnn.gru.weight_ih);
    swapped.gnn.gru.weight_hh = swap_rows(&swapped.gnn.gru.weight_hh);
    let y = swapped
        .gnn
        .forward(x.clone(), &layout, &[&graph.parents], &[&graph.children]);
    changes.push((
        "GRU with r and z swapped",
        rel_diff(&values(y), &want_gnn).0,
    ));
    // LayerNorm without its affine.
    let h_ref = ghn
        .gnn
        .forward(x.clone(), &layout, &[&graph.parents], &[&graph.children]);
    let plain = burn::nn::LayerNormConfig::new(cfg.hid).init(&dev);
    changes.push((
        "LayerNorm without γ, β",
        rel_diff(&values(plain.forward(h_ref)), &want_ln).0,
    ));
    // Predictions without the fan-in normalisation.
    let no_wn = GhnConfig {
        weight_norm: false,
        ..cfg.clone()
    };
    let ghn_no_wn = ppuda::load(&g.weights, &no_wn, &dev).unwrap();
    let ps = ghn_no_wn.predict(&[net], &[&graph], &dev);
    let worst = ps[0]
        .named_tensors(net)
        .iter()
        .map(|(name, _, data)| {
            let got = data.clone().convert::<f32>().try_to_vec::<f32>().unwrap();
            rel_diff(&got, &tensor(&st, &format!("param.{name}")).1).0
        })
        .fold(0.0f32, f32::max);
    changes.push(("predictions without weight normalisation", worst));

    for (what, rel) in &changes {
        eprintln!("{}: {what}: rel. max diff {rel:.1e}", net.name);
        assert!(
            *rel > 100.0 * RTOL,
            "{what}: moves the values by only {rel:e}; the tolerance {RTOL:e} would not see it"
        );
    }
}

/// A graph's node types and shape-encoder rows: the embedding's inputs.
fn embedding_inputs(ghn: &Ghn, graph: &GhnGraph) -> (Vec<usize>, Vec<[usize; 4]>) {
    let types = graph.nodes.iter().map(|v| v.prim as usize).collect();
    let rows = graph
        .nodes
        .iter()
        .map(|v| ghn.tables.encode(v.shape.as_deref()))
        .collect();
    (types, rows)
}

fn index(rows: &[[usize; 4]], k: usize, dev: &Device) -> Tensor<1, burn::tensor::Int> {
    let v: Vec<i64> = rows.iter().map(|r| r[k] as i64).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), dev)
}
