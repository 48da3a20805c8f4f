#!/usr/bin/env python3
"""How validation top-1 grows with meta-training (issue 16: what holds the float GHN back).

Fits top-1 = a + b * log10(image-net pairs) by least squares over the first cycle's
constant-learning-rate phase (checkpoints/cifar10-float/val.csv, steps 500-21,500 at lr 1e-3,
meta-batch 4 x batch 32 = 128 image-net pairs a step), prints the slope with its standard error
and what the line says at ppuda's budget and at the 50 % goal.

Usage: scaling.py [VAL_CSV]"""
import csv, math, os, sys

root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "checkpoints/cifar10-float/val.csv")
PAIRS_PER_STEP = 4 * 32
FIRST, LAST = 500, 21500  # lr 1e-3 until epoch 14 (step 21,868); step 0 is a warm start
pts = [(int(r["step"]), float(r["top1_mean"])) for r in csv.DictReader(open(path))
       if FIRST <= int(r["step"]) <= LAST]
xs = [math.log10(s * PAIRS_PER_STEP) for s, _ in pts]
ys = [y for _, y in pts]
n = len(xs)
mx, my = sum(xs) / n, sum(ys) / n
sxx = sum((x - mx) ** 2 for x in xs)
b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
a = my - b * mx
res = [y - (a + b * x) for x, y in zip(xs, ys)]
se_b = (sum(r * r for r in res) / (n - 2) / sxx) ** 0.5
print(f"{n} validation points, steps {FIRST}-{LAST}: {b:.2f} ± {se_b:.2f} points of top-1 per "
      f"decade of image-net pairs (residual s.d. {(sum(r * r for r in res) / (n - 2)) ** 0.5:.2f})")
for label, pairs in [("the first cycle (31,240 steps)", 31240 * PAIRS_PER_STEP),
                     ("ppuda's GHN-2 (300 epochs x 45,000 images x meta-batch 8)", 108e6)]:
    print(f"at {pairs:.3g} pairs, {label}: {a + b * math.log10(pairs):.1f} % on the line")
for target in (40.0, 50.0):
    pairs = 10 ** ((target - a) / b)
    print(f"{target:.0f} % on the line: {pairs:.3g} pairs = {pairs / PAIRS_PER_STEP:.3g} steps at "
          f"meta-batch 4 x batch 32 ({pairs / PAIRS_PER_STEP / 3600:.0f} CPU-hours at 1 step/s)")
