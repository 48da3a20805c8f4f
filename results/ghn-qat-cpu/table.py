#!/usr/bin/env python3
"""Issue 6's comparison table from the eval CSVs (int-runtime rows; float rows from `float`).

Usage: table.py [DIR]  (DIR holds the CSVs; default: this folder)."""
import csv, os, statistics as st, sys
here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
runs = [("GHN-Q (float GHN-2, no QAT)", "ghn-q-a"), ("GHN-Q (float GHN-2, no QAT)", "ghn-q-b"),
        ("GHN-QAT, bit-specific", "qat-w4a8"), ("GHN-QAT, bit-specific", "qat-w4a4"),
        ("GHN-QAT, bit-specific", "qat-w2a2"), ("GHN-QAT, bit-conditioned", "bitcond-w4a4"),
        ("GHN-QAT, bit-conditioned", "bitcond-w4a8-w2a2")]
splits = ["test", "deep", "wide", "bn-free"]
rows = {}
agree = {}
for label, name in runs:
    p = os.path.join(here, name + ".csv")
    if not os.path.exists(p):
        continue
    for r in csv.DictReader(open(p)):
        if r["path"] not in ("int", "float"):
            continue
        key = (label, r["bits"])
        rows.setdefault(key, {}).setdefault(r["split"], []).append(float(r["top1"]))
        if r["path"] == "int":
            agree.setdefault(key, []).append(float(r["agreement"]))
def cell(v):
    if not v: return "-"
    m = st.mean(v); se = st.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0
    return f"{m:.1f} ± {se:.1f}"
order = ["float", "w8a8", "w4a8", "w4a4", "w2a2"]
print("| GHN | bits | " + " | ".join(splits) + " | sim/int agreement % |")
print("|---|---|" + "---|" * len(splits) + "---|")
for (label, bits) in sorted(rows, key=lambda k: (order.index(k[1]) if k[1] in order else 9, k[0])):
    a = agree.get((label, bits))
    print(f"| {label} | {bits} | " + " | ".join(cell(rows[(label, bits)].get(s)) for s in splits)
          + f" | {st.mean(a):.1f} |" if a else f"| {label} | {bits} | " + " | ".join(cell(rows[(label, bits)].get(s)) for s in splits) + " | - |")
