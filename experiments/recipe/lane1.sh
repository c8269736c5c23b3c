#!/usr/bin/env bash
# issue 13: the angle-layer learning rate, step-matched (same steps, seeds, data)
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
IMDB="--task imdb --max-len 100 --qubits 6 --embed-dim 32 --batch-size 32 --lr 3e-3 --init-scale 0.1 --steps 1500 --eval-every 250 --eval-size 1000 --threads 1 --no-progress"
for v in "1 0" "0.03 0" "1 1"; do set -- $v
  .venv/bin/qrnn train $IMDB --angle-lr $1 --seed $2 --run-dir runs/r13/imdb100/alr$1-s$2 > runs/r13/imdb100-alr$1-s$2.log 2>&1
done
