#!/usr/bin/env bash
# issue 13: copying delay 40 (a collapsing case) on the new code, after lane 2
cd "$(dirname "$0")/../.."
# (ran after the previous lane had finished)
export OMP_NUM_THREADS=1
COPY="--task copying --delay 40 --qubits 4 --batch-size 64 --steps 1500 --eval-every 250 --eval-size 512 --lr 1e-2 --clip 1.0 --init-scale 0.1 --threads 1 --no-progress"
for v in "1 0 0" "0.03 0 0" "1 1 0" "0.03 0 1"; do set -- $v
  .venv/bin/qrnn train $COPY --angle-lr $1 --gain-penalty $2 --seed $3 --run-dir runs/r13/copy40/alr$1-gp$2-s$3 > runs/r13/copy40-alr$1-gp$2-s$3.log 2>&1
done
