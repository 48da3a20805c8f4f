#!/usr/bin/env bash
# Issue 16, item 2: short meta-training runs that compare recipes, scored by the campaign's
# yardstick (mean float top-1 of the predicted parameters on the 20 validation nets: the `test`
# generator at seed 7, never the test nets; the first 500 CIFAR-10 test images) every 250 steps.
#
# Two families, each from one shared start so that only the recipe differs:
# - warm-*: from the first cycle's final float GHN (`checkpoints/cifar10-float`, 31,240 steps,
#   33.87 % on these nets) with fresh Adam state, nets and batches of seed 4,545 — how should the
#   campaign go on? (The lr 1e-3 row is the second cycle's own first 1,000 steps:
#   `checkpoints/cifar10-float-cycle2`, the same flags.)
# - scratch-*: from random initialisation, nets and batches of seed 1,111 — capacity (hidden
#   size) and learning rate where the GHN starts.
#
# Every run is `--max-steps` steps of the campaign's schedule (`--epochs 20`: the learning rate is
# constant for this long). Resumable: a run whose val.csv reaches its last step is skipped, a cut
# one resumes from its newest checkpoint in runs/ablation/.
#
#   GHNQ=target/release/ghnq CIFAR=target/cifar10 results/ghn-ablation/run.sh [name ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
ghnq=${GHNQ:-target/release/ghnq}
cifar=${CIFAR:-target/cifar10}
out=results/ghn-ablation
steps=1000

# name, then the `ghnq train` flags that differ from the shared ones below.
recipes() {
  cat <<'R'
warm-lr3e-4      --from checkpoints/cifar10-float --seed 4545 --lr 3e-4
warm-lr1e-4      --from checkpoints/cifar10-float --seed 4545 --lr 1e-4
scratch-hid32    --seed 1111 --lr 1e-3 --hidden 32
scratch-hid64    --seed 1111 --lr 1e-3 --hidden 64
warm-mb8-lr1e-3  --from checkpoints/cifar10-float --seed 4545 --lr 1e-3 --meta-batch 8
scratch-lr3e-3   --seed 1111 --lr 3e-3 --hidden 32
scratch-adamw    --seed 1111 --lr 1e-3 --hidden 32 --optimizer adamw --weight-decay 1e-2
R
}

recipes | while read -r name flags; do
  if [[ $# -gt 0 && ! " $* " =~ " $name " ]]; then continue; fi
  last=$steps
  [[ $flags == *"--meta-batch 8"* ]] && last=$((steps / 2))  # the same image-net pairs
  if [[ -f $out/$name/val.csv ]] && grep -q "^$last," "$out/$name/val.csv"; then
    echo "$name: done"
    continue
  fi
  dir=runs/ablation/$name
  resume=()
  if [[ -f $dir/latest ]]; then  # --resume takes the start from the run, not from --from
    resume=(--resume)
    flags=$(sed -E 's/--from [^ ]+//' <<< "$flags")
  fi
  mb=4
  [[ $flags == *"--meta-batch"* ]] || flags="$flags --meta-batch $mb"
  echo "$name: $ghnq train $flags"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$ghnq" train --dataset cifar10 --data-dir "$cifar" --split train --batch 32 --epochs 20 \
    --checkpoint-every 250 --val-every 250 --keep-checkpoints 1 --max-steps "$last" --quiet \
    --out "$dir" "${resume[@]}" $flags
  mkdir -p "$out/$name"
  cp "$dir/train.csv" "$dir/val.csv" "$dir/ghn.cfg" "$out/$name/"
  cp "$dir"/curve.png "$out/$name/" 2>/dev/null || true
  echo "train $flags --max-steps $last  # wall $(( $(date +%s) - start )) s, $(date -u +%FT%TZ)" \
    >> "$out/$name/command.txt"
done
