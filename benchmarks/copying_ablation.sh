#!/usr/bin/env bash
# Copying-memory ablation of the QRNN's training choices (issue "Foundation": measure initialisation, angle map,
# learning rate, clipping, controller). Step-matched: every variant trains 1000 steps from the same seed.
# Usage: bash benchmarks/copying_ablation.sh [OUT_DIR] [JOBS]     (then: qrnn report OUT_DIR/* --no-test)
set -euo pipefail
out=${1:-runs/ablation}
jobs=${2:-2}
qrnn=${QRNN:-.venv/bin/qrnn}
common=(train --task copying --delay 5 --qubits 4 --layers 2 --width 64 --batch-size 64 --steps 1000
        --eval-every 100 --eval-size 512 --threads 1 --no-progress --seed 0)
variants=(
  "base        --lr 3e-3"
  "tanh-angles --lr 3e-3 --angle-map tanh"
  "no-feedback --lr 3e-3 --no-feedback"
  "lr-1e-3     --lr 1e-3"
  "lr-1e-2     --lr 1e-2"
  "init-0.1    --lr 3e-3 --init-scale 0.1"
  "no-clip     --lr 3e-3 --clip 0"
  "relu        --lr 3e-3 --activation relu"
)
mkdir -p "$out"
printf '%s\n' "${variants[@]}" | xargs -P "$jobs" -I{} bash -c '
  set -- {}; name=$1; shift
  '"$qrnn"' '"${common[*]}"' --run-dir '"$out"'/$name "$@" > '"$out"'/$name.log 2>&1 || echo "$name failed"'
