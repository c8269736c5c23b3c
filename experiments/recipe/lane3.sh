#!/usr/bin/env bash
# issue 13.6: forgetting for the carried ptb state (after lane 1)
cd "$(dirname "$0")/../.."
# (ran after the previous lane had finished)
export OMP_NUM_THREADS=1
PTB="--task ptb-char --bptt 35 --qubits 6 --embed-dim 32 --batch-size 32 --lr 1e-2 --init-scale 0.1 --angle-lr 0.1 --steps 1500 --eval-every 250 --threads 1 --no-progress"
for k in 0 4; do
  .venv/bin/qrnn train $PTB --reset-every $k --run-dir runs/r13/ptb-carry/reset$k > runs/r13/ptb-carry-reset$k.log 2>&1
done
