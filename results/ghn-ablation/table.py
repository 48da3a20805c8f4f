#!/usr/bin/env python3
"""The ablation table (issue 16, item 2) from each run's val.csv, as markdown.

Usage: table.py [DIR]  (DIR: this folder by default). Rows in run.sh's order; the warm family's
lr 1e-3 row is the second campaign cycle's own first 1,000 steps (the same flags, validated every
500 steps), read from checkpoints/cifar10-float-cycle2/val.csv."""
import csv, os, re, sys

here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))
runs = [
    ("warm", "lr 1e-3, meta-batch 4 (cycle 2's start)",
     os.path.join(root, "checkpoints/cifar10-float-cycle2/val.csv")),
    ("warm", "lr 3e-4", "warm-lr3e-4"),
    ("warm", "lr 1e-4", "warm-lr1e-4"),
    ("warm", "lr 1e-3, meta-batch 8 (500 steps)", "warm-mb8-lr1e-3"),
    ("scratch", "hidden 32, lr 1e-3", "scratch-hid32"),
    ("scratch", "hidden 64, lr 1e-3", "scratch-hid64"),
    ("scratch", "hidden 32, lr 3e-3", "scratch-lr3e-3"),
    ("scratch", "hidden 32, lr 1e-3, AdamW (decoupled wd 1e-2)", "scratch-adamw"),
]
# Columns by image-net pairs seen, as steps at meta-batch 4 x batch 32 (128 pairs a step): a
# meta-batch-8 run's step s sits in column 2s.
cols = [250, 500, 750, 1000]
print("| start | recipe | " + " | ".join(f"step {c}" for c in cols)
      + " | best (step) | wall s per step |")
print("|---|---|" + "---|" * len(cols) + "---|---|")
for start, label, name in runs:
    path = name if os.path.isabs(name) else os.path.join(here, name, "val.csv")
    if not os.path.exists(path):
        continue
    mb8 = "meta-batch 8" in label
    by_step = {}
    for r in csv.DictReader(open(path)):
        step = int(r["step"]) * (2 if mb8 else 1)  # the same image-net pairs as meta-batch 4
        if step <= 1000:
            by_step[step] = (float(r["top1_mean"]), float(r["top1_se"]))
    cells = [f"{by_step[c][0]:.2f} ± {by_step[c][1]:.2f}" if c in by_step else "-" for c in cols]
    best = max(by_step.items(), key=lambda kv: kv[1][0])
    # command.txt: "... --max-steps N  # wall S s, <date>" per (re)start of the run.
    wall, steps = 0, 0
    cmd = os.path.join(os.path.dirname(path), "command.txt")
    for line in open(cmd) if os.path.exists(cmd) else []:
        m = re.search(r"--max-steps (\d+)\s+# wall (\d+) s", line)
        if m:
            steps, wall = int(m.group(1)), wall + int(m.group(2))
    per_step = f"{wall / steps:.2f}" if steps else "-"
    print(f"| {start} | {label} | " + " | ".join(cells)
          + f" | {best[1][0]:.2f} ({best[0] // (2 if mb8 else 1)}) | {per_step} |")
