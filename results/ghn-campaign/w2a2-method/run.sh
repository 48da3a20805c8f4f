#!/usr/bin/env bash
# Does SimQuant (STE rounding, what the net deploys with) train 2-bit nets better than
# NoiseQuant (uniform noise of one step, the W2A2 default)? W2A2 GHN-QAT runs of 500 steps from
# the second float cycle's GHN, identical but for --method (and SimQuant once more at a third of
# the learning rate), each validated at steps 250 and 500 on the 20 validation nets (exported,
# integer runtime). Resumable.
#   GHNQ=target/release/ghnq CIFAR=target/cifar10 results/ghn-campaign/w2a2-method/run.sh
set -euo pipefail
out=$(dirname "$0")
ghnq=${GHNQ:-target/release/ghnq}
# Arms: name, method, learning rate.
for arm in noisequant:noisequant:1e-4 simquant:simquant:1e-4 simquant-lr3e-5:simquant:3e-5; do
  IFS=: read -r name method lr <<< "$arm"
  [[ -f $out/$name-val.csv ]] && continue
  run=runs/w2a2-method-$name
  start=(--from checkpoints/cifar10-float-cycle2)
  [[ -f $run/latest ]] && start=(--resume)
  "$ghnq" train --qat w2a2 --method "$method" --weight-clip percentile --act-clip percentile \
    "${start[@]}" --split train --meta-batch 4 --batch 32 --epochs 1 \
    --max-steps 500 --lr "$lr" --seed 2424 --dataset cifar10 --data-dir "${CIFAR:?the CIFAR-10 folder}" \
    --checkpoint-every 50 --keep-checkpoints 2 --val-every 250 --quiet \
    --out "$run"
  cp "$run/train.csv" "$out/$name-train.csv"
  cp "$run/val.csv" "$out/$name-val.csv"
done
