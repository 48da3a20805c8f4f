#!/usr/bin/env python3
"""Golden data for crates/ghnq-ghn/tests/ppuda_golden.rs, computed by facebookresearch/ppuda.

ppuda (https://github.com/facebookresearch/ppuda, commit 4673a42) is imported from --ppuda-dir;
nothing of it is copied into this repository. For every net listed in <golden>/nets/list.json
(written by the ignored Rust test `export_nets`), this script

1. builds a PyTorch module that runs the net's IR (conv, BN, ReLU/ReLU6, pools, add, concat,
   global average pooling, linear, dropout) and lets ppuda build its graph from the autograd trace
   (`ppuda.deepnets1m.graph.Graph(model, ve_cutoff=s_max)`: node types, shapes, 1-hop edges,
   networkx shortest-path virtual edges);
2. matches that graph with the Rust `GhnGraph` (parameter nodes by IR node and role, the others by
   graph isomorphism) and fails if they differ in anything but node order;
3. renumbers ppuda's graph into the Rust node order (the GatedGNN is order-sensitive; ppuda sorts
   with networkx's topological_sort, the Rust builder with a FIFO Kahn sort, a documented choice:
   GHN_SPEC §1.2) and wraps it in ppuda's own `Graph(node_feat=, node_info=, A=)`, the path ppuda
   uses for DeepNets-1M graphs read from disk;
4. predicts the parameters of all nets in one meta-batch with a seeded random-init ppuda `GHN`
   in training mode (predicted tensors stay in the autograd graph, as in ppuda's training loop),
   and back-propagates the loss  sum_nets sum_tensors sum_j c(net, tensor, j) * p_j  into the GHN.

It writes, under --golden-dir: manifest.json, ghn_weights.safetensors (ppuda's state dict),
ghn_grads.safetensors (same names) and net_<name>.safetensors per net: node_type, shape_ind
(ppuda's shape-encoder rows, captured from its embedding look-ups), adj (N x N distances, 0 = no
edge, 1 = 1-hop, d = virtual edge of shortest length d), x_embed / x_gnn / x_ln (node embeddings
after the embedding, the GatedGNN and the LayerNorm) and param.<i>.<ir name>.<weight|bias|gamma|
beta> (every predicted tensor, named like the Rust ParamSet::named_tensors).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ppuda-dir", required=True,
                   help="a checkout/extraction of facebookresearch/ppuda (the directory holding ppuda/)")
    p.add_argument("--ppuda-commit", default="4673a42",
                   help="the ppuda commit the directory holds (recorded in the manifest)")
    p.add_argument("--golden-dir", default=os.path.join(repo, "crates/ghnq-ghn/tests/golden/ppuda"))
    p.add_argument("--seed", type=int, default=0, help="torch seed of the GHN's random init")
    p.add_argument("--hid", type=int, default=8)
    p.add_argument("--max-sp", type=int, default=11)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--s-max", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


ARGS = parse_args()
sys.path.insert(0, os.path.abspath(ARGS.ppuda_dir))

import networkx as nx  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from networkx.algorithms.isomorphism import DiGraphMatcher  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

from ppuda.deepnets1m.genotypes import PRIMITIVES_DEEPNETS1M  # noqa: E402
from ppuda.deepnets1m.graph import Graph, GraphBatch  # noqa: E402
from ppuda.deepnets1m.net import named_layered_modules  # noqa: E402
from ppuda.ghn.nn import GHN  # noqa: E402

from irnet import IRNet  # noqa: E402


# ------------------------------------------------------------------------------------------------
# The Rust IR as a PyTorch module.

def predicted_tensors(model):
    """(name, tensor) of every predicted parameter, in ParamSet::named_tensors order."""
    out = []
    for i, node in enumerate(model.ir["nodes"]):
        t = node["op"]["type"]
        if t not in ("conv", "linear", "batch_norm"):
            continue
        m = getattr(model, "n%d" % i)
        prefix = "%d.%s." % (i, node["name"])
        names = ("gamma", "beta") if t == "batch_norm" else ("weight", "bias")
        for key, role in zip(("weight", "bias"), names):
            p = m._parameters.get(key)
            if p is None:
                continue
            assert p.grad_fn is not None, ("not predicted by the GHN", prefix + role)
            out.append((prefix + role, p))
    return out


def coefficients(k, t, n):
    """c(net k, tensor t, element j) for j < n: the same integers and f32 division as the Rust
    test's `coefficient`."""
    j = np.arange(n, dtype=np.int64)
    h = (j * 7919 + t * 104729 + k * 15485863) % 2001
    return (h.astype(np.float32) - np.float32(1000.0)) / np.float32(1000.0)


# ------------------------------------------------------------------------------------------------
# ppuda's graph vs the Rust graph.

def ppuda_labels(g):
    labels = []
    for i, node in enumerate(g._nodes):
        prim = PRIMITIVES_DEEPNETS1M[int(g.node_feat[i, 0])]
        sz = g._param_shapes[i]
        sz = None if sz is None else tuple(int(s) for s in sz)
        if node["module"] is not None:
            pname = node["param_name"]
            ir = int(pname.split(".")[0][1:])
            if isinstance(node["module"], nn.BatchNorm2d):
                role = "bn"
            else:
                role = "bias" if pname.endswith(".bias") else "weight"
            labels.append((("p", ir, role), prim, sz))
        else:
            labels.append((("o", prim, sz), prim, sz))
    return labels


def rust_labels(rg):
    labels = []
    for n in rg["nodes"]:
        sz = None if n["shape"] is None else tuple(n["shape"])
        if n["role"] != "none":
            labels.append((("p", n["ir_node"], n["role"]), n["prim"], sz))
        else:
            labels.append((("o", n["prim"], sz), n["prim"], sz))
    return labels


def match_graphs(name, g, rg):
    """Rust node v -> ppuda node perm[v]; raises with a description if the graphs differ."""
    A = g._Adj.numpy() if isinstance(g._Adj, torch.Tensor) else g._Adj
    pl, rl = ppuda_labels(g), rust_labels(rg)
    problems = []
    if len(pl) != len(rl):
        problems.append("node count: ppuda %d, rust %d" % (len(pl), len(rl)))
    pk = sorted(str(x[0]) for x in pl)
    rk = sorted(str(x[0]) for x in rl)
    if pk != rk:
        only_p = sorted(set(pk) - set(rk))
        only_r = sorted(set(rk) - set(pk))
        problems.append("node keys only in ppuda: %s; only in rust: %s" % (only_p, only_r))
    gp = nx.DiGraph()
    gr = nx.DiGraph()
    for i, lab in enumerate(pl):
        gp.add_node(i, key=lab[0])
    for v, lab in enumerate(rl):
        gr.add_node(v, key=lab[0])
    gp.add_edges_from((int(u), int(v)) for u, v in zip(*np.where(A == 1)))
    gr.add_edges_from((u, v) for u, v in rg["edges"])
    if not problems:
        gm = DiGraphMatcher(gr, gp, node_match=lambda a, b: a["key"] == b["key"])
        if not gm.is_isomorphic():
            # Describe the difference on parameter nodes (they are named on both sides).
            pidx = {lab[0]: i for i, lab in enumerate(pl)}
            ridx = {lab[0]: v for v, lab in enumerate(rl)}
            for key, v in ridx.items():
                if key[0] != "p":
                    continue
                i = pidx[key]
                rs = sorted(str(rl[w][0]) for w in gr.successors(v))
                ps = sorted(str(pl[w][0]) for w in gp.successors(i))
                if rs != ps:
                    problems.append("%s: successors rust %s, ppuda %s" % (key, rs, ps))
            problems.append("1-hop graphs are not isomorphic")
        else:
            perm = [gm.mapping[v] for v in range(len(rl))]
    if problems:
        raise SystemExit("%s: ppuda's graph differs from the Rust graph:\n  %s"
                         % (name, "\n  ".join(problems)))
    # Same node types and shapes, node by node.
    for v, i in enumerate(perm):
        if rl[v][1] != pl[i][1] or rl[v][2] != pl[i][2]:
            raise SystemExit("%s: node %d (%s): rust type/shape %s %s, ppuda %s %s"
                             % (name, v, rl[v][0], rl[v][1], rl[v][2], pl[i][1], pl[i][2]))
    return perm


def renumbered_graph(g, perm, s_max):
    """ppuda's Graph in the Rust node order, built with ppuda's from-arrays constructor."""
    n = len(perm)
    inv = {p: v for v, p in enumerate(perm)}
    A = g._Adj if isinstance(g._Adj, torch.Tensor) else torch.from_numpy(g._Adj).long()
    idx = torch.tensor(perm, dtype=torch.long)
    A = A[idx][:, idx].contiguous()
    node_feat = g.node_feat[idx].clone()
    node_info = []
    for cell in g.node_info:
        entries = []
        for (ni, p_, name, sz, last_w, last_b) in cell:
            v = inv[ni]
            assert (v == n - 2) == last_w and (v == n - 1) == last_b, \
                "classifier weight/bias must be the last two nodes in both orders"
            entries.append((v, p_, name, sz, v == n - 2, v == n - 1))
        node_info.append(sorted(entries, key=lambda e: e[0]))
    assert int(A.max()) <= s_max
    return Graph(node_feat=node_feat, node_info=node_info, A=A)


# ------------------------------------------------------------------------------------------------

def make_ghn(dtype):
    torch.manual_seed(ARGS.seed)
    max_ch = 2 * ARGS.hid
    ghn = GHN(max_shape=(max_ch, max_ch, ARGS.max_sp, ARGS.max_sp), num_classes=ARGS.classes,
              hypernet="gatedgnn", decoder="conv", weight_norm=True, ve=ARGS.s_max > 1,
              layernorm=True, hid=ARGS.hid, debug_level=0)
    # PyTorch initialises LayerNorm to gamma = 1, beta = 0, which would leave a swapped or
    # ignored affine undetected: give it seeded non-trivial values (still ppuda's module).
    with torch.no_grad():
        ghn.ln.weight.copy_(1.0 + 0.2 * torch.randn(ARGS.hid))
        ghn.ln.bias.copy_(0.2 * torch.randn(ARGS.hid))
    return ghn.to(dtype).train()


def run(ghn, nets, graphs, capture):
    """One meta-batch: predictions (per net, named) and the coefficient loss."""
    models = [IRNet(n) for n in nets]
    for m in models:
        m.__dict__["_layered_modules"] = named_layered_modules(m)
    batch = GraphBatch(graphs).to_device("cpu")
    hooks = []
    if capture is not None:
        capture.clear()
        capture["shape_ind"] = []

        def keep(key):
            def hook(_m, _i, out):
                capture[key] = out.detach().clone()
            return hook

        def keep_index(_m, inp):
            capture["shape_ind"].append(inp[0].detach().clone())

        hooks = [ghn.shape_enc.register_forward_hook(keep("x_embed")),
                 ghn.gnn.register_forward_hook(keep("x_gnn")),
                 ghn.ln.register_forward_hook(keep("x_ln")),
                 ghn.shape_enc.embed_channel.register_forward_pre_hook(keep_index),
                 ghn.shape_enc.embed_spatial.register_forward_pre_hook(keep_index)]
    ghn(models, batch)
    for h in hooks:
        h.remove()
    preds = [predicted_tensors(m) for m in models]
    loss = 0
    for k, named in enumerate(preds):
        for t, (_, p) in enumerate(named):
            c = torch.from_numpy(coefficients(k, t, p.numel())).to(p.dtype)
            loss = loss + (p.reshape(-1) * c).sum()
    return preds, loss


def rel_diff(a, b):
    a = a.detach().double()
    b = b.detach().double()
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def sha256_of(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def main():
    torch.set_num_threads(ARGS.threads)
    gdir = ARGS.golden_dir
    with open(os.path.join(gdir, "nets", "list.json")) as f:
        names = json.load(f)
    nets, graphs, traced, info = [], [], [], []
    for name in names:
        with open(os.path.join(gdir, "nets", name + ".json")) as f:
            net = json.load(f)
        with open(os.path.join(gdir, "nets", name + ".graph.json")) as f:
            rg = json.load(f)
        assert rg["s_max"] == ARGS.s_max, (name, rg["s_max"])
        model = IRNet(net).eval()
        g = Graph(model, ve_cutoff=ARGS.s_max)
        perm = match_graphs(name, g, rg)
        graphs.append(renumbered_graph(g, perm, ARGS.s_max))
        traced.append(g)
        nets.append(net)
        A = graphs[-1]._Adj
        info.append({
            "name": name,
            "nodes": len(perm),
            "edges_1hop": int((A == 1).sum()),
            "edges_all": int((A > 0).sum()),
            "ppuda_order_equals_rust_order": perm == list(range(len(perm))),
            "nodes_moved_by_renumbering": int(sum(1 for v, p in enumerate(perm) if v != p)),
        })
        print("%s: %d nodes, %d edges (%d 1-hop); ppuda's networkx order %s the Rust order"
              % (name, len(perm), info[-1]["edges_all"], info[-1]["edges_1hop"],
                 "equals" if info[-1]["ppuda_order_equals_rust_order"] else "differs from"))

    # float32: the golden run.
    ghn = make_ghn(torch.float32)
    capture = {}
    preds, loss = run(ghn, nets, graphs, capture)
    loss.backward()
    weights = {k: v.detach().numpy().copy() for k, v in ghn.state_dict().items()}
    grads = {}
    for k, p in ghn.named_parameters():
        grads[k] = (p.grad if p.grad is not None else torch.zeros_like(p)).detach().numpy().copy()

    # float64: the same math in double precision, to measure float32's own noise.
    ghn64 = make_ghn(torch.float64)
    preds64, loss64 = run(ghn64, nets, graphs, None)
    loss64.backward()
    noise_pred = max(rel_diff(p, q) for a, b in zip(preds, preds64) for (_, p), (_, q) in zip(a, b))
    noise_grad = max(rel_diff(p.grad if p.grad is not None else torch.zeros_like(p),
                              q.grad if q.grad is not None else torch.zeros_like(q))
                     for p, q in zip(ghn.parameters(), ghn64.parameters()))

    # The same GHN on ppuda's own (networkx) node order: how much the order alone moves the
    # predictions (the GatedGNN sweeps are sequential, so the order is part of the math).
    preds_own, _ = run(make_ghn(torch.float32), nets, traced, None)
    for k, (a, b) in enumerate(zip(preds, preds_own)):
        info[k]["ppuda_own_order_rel_max_diff"] = max(rel_diff(q, p) for (_, p), (_, q) in zip(a, b))

    save_file(weights, os.path.join(gdir, "ghn_weights.safetensors"))
    save_file(grads, os.path.join(gdir, "ghn_grads.safetensors"))
    offsets = np.cumsum([0] + [g.n_nodes for g in graphs])
    shape_ind = torch.stack(capture["shape_ind"], 1).numpy()  # (N, 4): out, in, h, w rows
    for k, (name, g) in enumerate(zip(names, graphs)):
        lo, hi = offsets[k], offsets[k + 1]
        A = g._Adj.numpy()
        assert A.max() < 256
        t = {
            "node_type": g.node_feat[:, 0].numpy().astype(np.int64),
            "shape_ind": shape_ind[lo:hi].astype(np.int64),
            "adj": A.astype(np.uint8),
            "x_embed": capture["x_embed"][lo:hi].numpy(),
            "x_gnn": capture["x_gnn"][lo:hi].numpy(),
            "x_ln": capture["x_ln"][lo:hi].numpy(),
        }
        for pname, p in preds[k]:
            t["param." + pname] = p.detach().numpy().copy()
        info[k]["predicted_tensors"] = len(preds[k])
        info[k]["predicted_values"] = int(sum(p.numel() for _, p in preds[k]))
        save_file(t, os.path.join(gdir, "net_%s.safetensors" % name))

    ppuda_files = [os.path.join(ARGS.ppuda_dir, "ppuda", f) for f in
                   ("ghn/nn.py", "ghn/gatedgnn.py", "ghn/decoder.py", "ghn/layers.py", "ghn/mlp.py",
                    "deepnets1m/graph.py", "deepnets1m/net.py")]
    manifest = {
        "generator": "tools/ppuda-golden/generate.py",
        "ppuda_commit": ARGS.ppuda_commit,
        "ppuda_sources_sha256": sha256_of(ppuda_files),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "numpy": np.__version__, "networkx": nx.__version__},
        "ghn": "GHN(max_shape=(%d, %d, %d, %d), num_classes=%d, hypernet='gatedgnn', decoder='conv', "
               "weight_norm=True, ve=%s, layernorm=True, hid=%d); torch.manual_seed(%d); "
               "ln.weight = 1 + 0.2 N(0,1), ln.bias = 0.2 N(0,1); train mode"
               % (2 * ARGS.hid, 2 * ARGS.hid, ARGS.max_sp, ARGS.max_sp, ARGS.classes,
                  ARGS.s_max > 1, ARGS.hid, ARGS.seed),
        "config": {"hid": ARGS.hid, "max_ch": 2 * ARGS.hid, "max_sp": ARGS.max_sp,
                   "num_classes": ARGS.classes, "s_max": ARGS.s_max, "layernorm": True,
                   "weight_norm": True},
        "seed": ARGS.seed,
        "loss": float(loss.detach()),
        "loss_float64": float(loss64.detach()),
        "float32_vs_float64_rel_max_diff": {"predictions": noise_pred, "gradients": noise_grad},
        "nets": info,
    }
    with open(os.path.join(gdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("loss %.6f (float64 %.6f); float32 vs float64: predictions %.1e, gradients %.1e"
          % (manifest["loss"], manifest["loss_float64"], noise_pred, noise_grad))
    print("predictions in ppuda's own node order vs the Rust order (rel. max diff): %s"
          % ", ".join("%s %.1e" % (i["name"], i["ppuda_own_order_rel_max_diff"]) for i in info))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(gdir) for f in fs)
    print("golden files: %.0f KB" % (total / 1024))


if __name__ == "__main__":
    main()
