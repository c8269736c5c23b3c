#!/usr/bin/env bash
# issue 13.6: a second seed of the carried state and of --forget-every 35 (after lane 8)
cd "$(dirname "$0")/../.."
while pgrep -f experiments/recipe/lane8.sh > /dev/null; do sleep 10; done
export OMP_NUM_THREADS=1
R=runs/r13/forget
PTB="--task ptb-char --bptt 35 --qubits 4 --embed-dim 32 --batch-size 32 --lr 1e-2 --init-scale 0.1 --angle-lr 0.1 --steps 1500 --eval-every 250 --threads 1 --no-progress --seed 1"
.venv/bin/qrnn train $PTB --run-dir $R/carry-s1 > $R/carry-s1.log 2>&1
.venv/bin/qrnn train $PTB --forget-every 35 --run-dir $R/forget35-s1 > $R/forget35-s1.log 2>&1
