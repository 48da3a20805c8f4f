#!/usr/bin/env bash
# Where W2A2 loses its accuracy (issue 16's W2A2 diagnosis): the W2A2 GHN-QAT's predictions on
# the 20 validation nets, exported with 2 bits everywhere, with the stem and the classifier at
# 8 bits, with only the weights or only the activations at 2 bits, and with per-channel
# symmetric weights. Resumable: a CSV that
# exists is kept.
#   GHNQ=target/release/ghnq CIFAR=target/cifar10 results/ghn-campaign/w2a2-where/run.sh
set -euo pipefail
out=$(dirname "$0")
ghnq=${GHNQ:-target/release/ghnq}
common=(eval --dataset cifar10 --data-dir "${CIFAR:?the CIFAR-10 folder}" --split test --seed 7
  --count 20 --images 500 --calib 500 --ghn checkpoints/cifar10-qat-w2a2-cycle2
  --weight-clip percentile --act-clip percentile --act-calib quantized)
run() {
  local name=$1
  shift
  [[ -f $out/$name.csv ]] && return
  "$ghnq" "${common[@]}" "$@" --csv "$out/$name.csv.partial" --json > "$out/$name.json"
  mv "$out/$name.csv.partial" "$out/$name.csv"
}
run w2a2 --bits float,w2a2
run w2a2-first-last-w8a8 --bits w2a2 --layer-bits first=w8a8,last=w8a8
run w2a8-w8a2 --bits w2a8,w8a2
run w2a2-per-channel --bits w2a2 --per-channel
