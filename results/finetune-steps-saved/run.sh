#!/usr/bin/env bash
# Issue 16, item 5: QAT of 5 CIFAR-10 `test` nets from the GHN's prediction and from random
# initialisation, 500 SGD steps each, integer-runtime top-1 every 50 steps on 1,000 test images.
# W4A4 from the GHN-QAT W4A4 checkpoint (its percentile ranges, from its qat.txt), W8A8 from the
# second cycle's float GHN (GHN-Q; absolute ranges). Resumable: a net whose CSV exists is skipped.
#
#   GHNQ=target/release/ghnq CIFAR=target/cifar10 results/finetune-steps-saved/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ghnq=${GHNQ:-target/release/ghnq}
cifar=${CIFAR:-target/cifar10}
out=results/finetune-steps-saved
nets=target/steps-saved-nets
"$ghnq" graphs --split test --count 5 --dataset cifar10 --out "$nets" > /dev/null
for bits in w4a4 w8a8; do
  case $bits in
    w4a4) ghn=checkpoints/cifar10-qat-w4a4 ;;
    w8a8) ghn=checkpoints/cifar10-float-cycle2 ;;
  esac
  for i in 0 1 2 3 4; do
    net=test-00000$i
    stem=$out/$bits/$net
    [[ -f $stem.csv ]] && continue
    mkdir -p "$out/$bits"
    start=$(date +%s)
    "$ghnq" finetune --arch "$nets/$net.json" --ghn "$ghn" --bits "$bits" --steps 500 \
      --eval-every 50 --images 1000 --dataset cifar10 --data-dir "$cifar" \
      --csv "$stem.csv.partial" --plot "$stem" > "$stem.txt.partial"
    echo "wall: $(( $(date +%s) - start )) s" >> "$stem.txt.partial"
    mv "$stem.txt.partial" "$stem.txt"
    mv "$stem.csv.partial" "$stem.csv"
  done
done
