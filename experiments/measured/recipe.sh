#!/usr/bin/env bash
# Issue 22, step 1: the measured QRNN's recipe by measurement (docs/measured.md).
# Copying delay 5, n = 4, L = 2, cz_chain, batch 32, 600 steps, --feedforward linear, one thread.
# Settings: lr 1e-2 with angle-lr 1 / 0.03, lr 3e-3 with angle-lr 1, projective at lr 1e-2 angle-lr
# 0.03 (the better handling of seed 0). A run whose directory is complete is skipped.
set -euo pipefail
PY=${PY:-python}
common=(--task copying --delay 5 --model mqrnn --feedforward linear --qubits 4 --layers 2
        --entangler cz_chain --batch-size 32 --steps 600 --eval-every 100 --eval-size 256
        --threads 1 --kernel-threads 1 --no-progress)
run() {  # NAME SEED FLAGS...
  local name=$1 seed=$2; shift 2
  [[ -f runs/recipe/$name-s$seed/best.pt && $(wc -l < runs/recipe/$name-s$seed/metrics.jsonl) -ge 6 ]] && return
  $PY -m qrnn_qiskit.cli train "${common[@]}" --seed "$seed" --run-dir "runs/recipe/$name-s$seed" "$@"
}
# seed 0 of four settings; then seed 1 of the close ones (the order they ran in)
run lr1e-2-a1 0 --lr 1e-2 --angle-lr 1
run lr1e-2-a003 0 --lr 1e-2 --angle-lr 0.03
run lr3e-3-a1 0 --lr 3e-3 --angle-lr 1
run proj-lr1e-2-a003 0 --lr 1e-2 --angle-lr 0.03 --measurement projective
run lr1e-2-a003 1 --lr 1e-2 --angle-lr 0.03
run lr1e-2-a1 1 --lr 1e-2 --angle-lr 1
run proj-lr1e-2-a003 1 --lr 1e-2 --angle-lr 0.03 --measurement projective
