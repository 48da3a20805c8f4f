#!/usr/bin/env python3
"""Learning-curve parity (issue 16): ppuda's own training loop replays a `ghnq train --trace` run.

Two commands:

  parity.py init  --ppuda-dir D --out init.safetensors [--hid 32 --seed 0]
      a seeded random-init ppuda GHN-2 (CIFAR-10 configuration) as a safetensors state dict; both
      trainers start from it (`ghnq train --from init.safetensors`).

  parity.py train --ppuda-dir D --trace T --init init.safetensors --out O [--steps 500]
      replays the trace T written by `ghnq train --trace T`: the same nets and the same images
      (normalised and augmented as ghnq trained on them), step for step, through ppuda's
      `Trainer.update` (experiments/train_ghn.py's step: the GHN predicts every net's
      parameters, mean cross-entropy over the meta-batch, backward, clip_grad_norm_(5), Adam with
      L2 weight decay 1e-5). Writes O/ghn-step<N>.safetensors every --save-every steps (ghnq
      loads them: `ghnq eval --ghn O/ghn-step<N>.safetensors`) and O/train.csv.

  parity.py grad-check --ppuda-dir D --trace T --init init.safetensors --out O
      the first step of the trace with dropout off, through ppuda: per-net losses and the
      gradient of every GHN weight, compared with the ghnq side's
      (`PARITY_DIR=... cargo test -p ghnq-ghn --test ppuda_parity_step -- --ignored` writes
      <init's dir>/ghnq-step0-grads.safetensors).

  parity.py plot --ppuda-dir D --out results/ghn-parity/curves
      curves.png/.svg from results/ghn-parity/{val.csv, train-*.csv}: validation top-1 against
      steps for every run, and the training loss (50-step means).

What is not replayed: dropout masks (each side draws its own) and float rounding (PyTorch and the
native engine sum in different orders), so the curves can agree only statistically.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["init", "train", "grad-check", "plot"])
    p.add_argument("--ppuda-dir", required=True,
                   help="a checkout/extraction of facebookresearch/ppuda (the directory holding ppuda/)")
    p.add_argument("--out", required=True)
    p.add_argument("--hid", type=int, default=32)
    p.add_argument("--max-sp", type=int, default=11)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--s-max", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="torch seed (init; dropout in train)")
    p.add_argument("--trace")
    p.add_argument("--init")
    p.add_argument("--steps", type=int, default=None, help="default: every step of the trace")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wd", type=float, default=1e-5)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


ARGS = parse_args()
sys.path.insert(0, os.path.abspath(ARGS.ppuda_dir))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from ppuda.deepnets1m.graph import Graph, GraphBatch  # noqa: E402
from ppuda.deepnets1m.net import named_layered_modules  # noqa: E402
from ppuda.ghn.nn import GHN  # noqa: E402
from ppuda.utils.trainer import Trainer  # noqa: E402

from irnet import IRNet  # noqa: E402


def make_ghn():
    max_ch = 2 * ARGS.hid
    return GHN(max_shape=(max_ch, max_ch, ARGS.max_sp, ARGS.max_sp), num_classes=ARGS.classes,
               hypernet="gatedgnn", decoder="conv", weight_norm=True, ve=ARGS.s_max > 1,
               layernorm=True, hid=ARGS.hid, debug_level=0)


def save(ghn, path):
    tmp = path + ".tmp"
    save_file({k: v.detach().contiguous() for k, v in ghn.state_dict().items()}, tmp)
    os.replace(tmp, path)


def init():
    torch.manual_seed(ARGS.seed)
    ghn = make_ghn()
    save(ghn, ARGS.out)
    n = sum(p.numel() for p in ghn.parameters())
    print("seeded ppuda GHN-2 (hid %d, seed %d, %d parameters) -> %s" % (ARGS.hid, ARGS.seed, n, ARGS.out))


def train():
    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(ARGS.seed)
    with open(os.path.join(ARGS.trace, "trace.json")) as f:
        header = json.load(f)
    mb, bs = header["meta_batch"], header["batch"]
    c, h, w = header["image"]["c"], header["image"]["h"], header["image"]["w"]
    images = np.memmap(os.path.join(ARGS.trace, "images.f32"), dtype="<f4", mode="r")
    labels = np.fromfile(os.path.join(ARGS.trace, "labels.u8"), dtype=np.uint8)
    per = bs * c * h * w
    available = min(len(images) // per, len(labels) // bs)
    steps = available if ARGS.steps is None else min(ARGS.steps, available)
    nets_file = open(os.path.join(ARGS.trace, "nets.jsonl"))

    ghn = make_ghn()
    ghn.load_state_dict(load_file(ARGS.init))
    ghn.train()
    optimizer = torch.optim.Adam(ghn.parameters(), ARGS.lr, weight_decay=ARGS.wd)
    trainer = Trainer(optimizer, ARGS.classes, False, n_batches=steps, grad_clip=5, device="cpu",
                      log_interval=10 ** 9)
    os.makedirs(ARGS.out, exist_ok=True)
    save(ghn, os.path.join(ARGS.out, "ghn-step0.safetensors"))
    log = open(os.path.join(ARGS.out, "train.csv"), "w")
    log.write("step,loss,acc,seconds,skipped\n")
    t0, skipped = time.time(), 0
    for step in range(steps):
        nets = [json.loads(nets_file.readline()) for _ in range(mb)]
        models = []
        graphs = []
        for net in nets:
            m = IRNet(net, flatten_hwc=True).eval()
            graphs.append(Graph(m, ve_cutoff=ARGS.s_max))
            m.__dict__["_layered_modules"] = named_layered_modules(m)
            models.append(m.train())
        x = torch.from_numpy(np.array(images[step * per:(step + 1) * per]).reshape(bs, c, h, w))
        y = torch.from_numpy(labels[step * bs:(step + 1) * bs].astype(np.int64))
        trainer.reset()
        try:
            trainer.update(models, x, y, ghn=ghn, graphs=GraphBatch(graphs))
            loss = trainer.metrics["loss"].avg
            acc = trainer.metrics["top1"].avg / 100.0
            log.write("%d,%.6f,%.6f,%.1f,0\n" % (step, loss, acc, time.time() - t0))
        except Exception as e:  # ppuda's own loop skips a meta-batch it cannot run, too
            skipped += 1
            print("step %d skipped: %s: %s" % (step, type(e).__name__, e), flush=True)
            log.write("%d,nan,nan,%.1f,1\n" % (step, time.time() - t0))
        log.flush()
        done = step + 1
        if done % ARGS.save_every == 0 or done == steps:
            save(ghn, os.path.join(ARGS.out, "ghn-step%d.safetensors" % done))
            print("step %d: %.1f s/step, %d skipped" % (done, (time.time() - t0) / done, skipped),
                  flush=True)


def grad_check():
    torch.set_num_threads(ARGS.threads)
    with open(os.path.join(ARGS.trace, "trace.json")) as f:
        header = json.load(f)
    mb, bs = header["meta_batch"], header["batch"]
    c, h, w = header["image"]["c"], header["image"]["h"], header["image"]["w"]
    with open(os.path.join(ARGS.trace, "nets.jsonl")) as f:
        nets = [json.loads(f.readline()) for _ in range(mb)]
    for net in nets:
        for node in net["nodes"]:
            if node["op"]["type"] == "dropout":
                node["op"]["p"] = 0.0
    per = bs * c * h * w
    x = torch.from_numpy(np.fromfile(os.path.join(ARGS.trace, "images.f32"), dtype="<f4",
                                     count=per).reshape(bs, c, h, w).copy())
    y = torch.from_numpy(np.fromfile(os.path.join(ARGS.trace, "labels.u8"), dtype=np.uint8,
                                     count=bs).astype(np.int64))
    ghn = make_ghn()
    ghn.load_state_dict(load_file(ARGS.init))
    ghn.train()
    models, graphs = [], []
    for net in nets:
        m = IRNet(net, flatten_hwc=True).eval()
        graphs.append(Graph(m, ve_cutoff=ARGS.s_max))
        m.__dict__["_layered_modules"] = named_layered_modules(m)
        models.append(m.train())
    models = ghn(models, GraphBatch(graphs).to_device("cpu"))
    losses = [torch.nn.functional.cross_entropy(m(x), y) for m in models]
    loss = sum(losses) / len(losses)
    loss.backward()
    theirs = load_file(os.path.join(os.path.dirname(ARGS.init), "ghnq-step0-grads.safetensors"))
    print("per-net losses ppuda", [round(float(l), 6) for l in losses])
    print("per-net losses ghnq ", [round(float(v), 6) for v in theirs["loss"]])
    worst = []
    for k, p in ghn.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        r = theirs[k].reshape(g.shape)
        scale = float(g.abs().max())
        diff = float((g - r).abs().max())
        cos = float((g.flatten() @ r.flatten()) / (g.norm() * r.norm() + 1e-30))
        worst.append((diff / max(scale, 1e-30), k, scale, cos, float(g.norm()), float(r.norm())))
    worst.sort(reverse=True)
    for rel, k, scale, cos, gn, rn in worst[:12]:
        print("%-36s rel.max diff %.2e  max|g| %.2e  cos %.6f  |g| ppuda %.3e ghnq %.3e"
              % (k, rel, scale, cos, gn, rn))

    # Two Adam steps (trace steps 0 and 1, dropout off) from the same start, in ppuda's
    # Trainer.update, against the weights the ghnq trainer reached (ghnq-after-2-steps).
    with open(os.path.join(ARGS.trace, "nets.jsonl")) as f:
        all_nets = [json.loads(f.readline()) for _ in range(2 * mb)]
    for net in all_nets:
        for node in net["nodes"]:
            if node["op"]["type"] == "dropout":
                node["op"]["p"] = 0.0
    ghn = make_ghn()
    ghn.load_state_dict(load_file(ARGS.init))
    ghn.train()
    start = {k: v.detach().clone() for k, v in ghn.state_dict().items()}
    optimizer = torch.optim.Adam(ghn.parameters(), ARGS.lr, weight_decay=ARGS.wd)
    trainer = Trainer(optimizer, ARGS.classes, False, n_batches=2, grad_clip=5, device="cpu",
                      log_interval=10 ** 9)
    for k in range(2):
        models, graphs = [], []
        for net in all_nets[k * mb:(k + 1) * mb]:
            m = IRNet(net, flatten_hwc=True).eval()
            graphs.append(Graph(m, ve_cutoff=ARGS.s_max))
            m.__dict__["_layered_modules"] = named_layered_modules(m)
            models.append(m.train())
        xk = torch.from_numpy(np.fromfile(os.path.join(ARGS.trace, "images.f32"), dtype="<f4",
                                          count=per, offset=4 * k * per).reshape(bs, c, h, w).copy())
        yk = torch.from_numpy(np.fromfile(os.path.join(ARGS.trace, "labels.u8"), dtype=np.uint8,
                                          count=bs, offset=k * bs).astype(np.int64))
        trainer.reset()
        trainer.update(models, xk, yk, ghn=ghn, graphs=GraphBatch(graphs))
        print("ppuda step %d: loss %.6f" % (k, trainer.metrics["loss"].avg))
    after = load_file(os.path.join(os.path.dirname(ARGS.init), "ghnq-after-2-steps.safetensors"))
    rows = []
    for k, v in ghn.state_dict().items():
        d_ppuda = (v - start[k]).flatten()
        d_ghnq = (after[k].reshape(v.shape) - start[k]).flatten()
        cos = float(d_ppuda @ d_ghnq / (d_ppuda.norm() * d_ghnq.norm() + 1e-30))
        rows.append((cos, k, float(d_ppuda.norm()), float(d_ghnq.norm())))
    rows.sort()
    print("update after two steps, ppuda vs ghnq (lowest cosine first):")
    for cos, k, a, b in rows[:10]:
        print("%-36s cos %.6f  |Δ| ppuda %.4e ghnq %.4e" % (k, cos, a, b))


def plot():
    import csv
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    here = os.path.dirname(ARGS.out)
    runs = {}
    with open(os.path.join(here, "val.csv")) as f:
        for r in csv.DictReader(f):
            runs.setdefault(r["run"], []).append((int(r["step"]), float(r["top1_mean"]), float(r["top1_se"])))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, pts in sorted(runs.items()):
        pts.sort()
        a.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                   capsize=3, label=name)
        path = os.path.join(here, "train-%s.csv" % name)
        if os.path.exists(path):
            with open(path) as f:
                losses = [float(r["loss"]) for r in csv.DictReader(f) if r["loss"] != "nan"]
            means = [sum(losses[i:i + 50]) / len(losses[i:i + 50]) for i in range(0, len(losses), 50)]
            b.plot([i * 50 + 25 for i in range(len(means))], means, marker=".", label=name)
    a.set_xlabel("step")
    a.set_ylabel("validation top-1 % (20 nets x 500 images, mean ± s.e.)")
    a.legend()
    b.set_xlabel("step")
    b.set_ylabel("training loss (50-step mean)")
    b.legend()
    fig.suptitle("Same start, same nets, same images: ghnq train vs ppuda's Trainer.update")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(ARGS.out + "." + ext, dpi=110)
    print("wrote %s.png and .svg" % ARGS.out)


if __name__ == "__main__":
    {"init": init, "train": train, "grad-check": grad_check, "plot": plot}[ARGS.command]()
