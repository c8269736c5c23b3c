#!/usr/bin/env bash
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
DEMO="--task copying --delay 5 --qubits 4 --layers 2 --entangler cz_chain --width 64 --batch-size 64 --lr 1e-2 --clip 1 --steps 1000 --eval-every 250 --eval-size 512 --threads 1 --no-progress"
for v in "1 0" "0.03 0" "0.1 0" "1 1" "0.03 1" "0.1 1"; do set -- $v
  .venv/bin/qrnn train $DEMO --angle-lr $1 --seed $2 --run-dir runs/r13/demo/alr$1-s$2 > runs/r13/demo-alr$1-s$2.log 2>&1
done
PTB="--task ptb-char --no-carry --bptt 100 --qubits 6 --embed-dim 32 --batch-size 32 --lr 1e-2 --init-scale 0.1 --steps 1500 --eval-every 250 --threads 1 --no-progress"
for v in "1 0" "0.03 0" "0.1 0"; do set -- $v
  .venv/bin/qrnn train $PTB --angle-lr $1 --seed $2 --run-dir runs/r13/ptb/alr$1-s$2 > runs/r13/ptb-alr$1-s$2.log 2>&1
done
