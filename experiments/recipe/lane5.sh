#!/usr/bin/env bash
# issue 13: the initialisation scale with the slow angle layer (after lanes 1 and 3)
cd "$(dirname "$0")/../.."
# (ran after the previous lane had finished)
export OMP_NUM_THREADS=1
DEMO="--task copying --delay 5 --qubits 4 --layers 2 --entangler cz_chain --width 64 --batch-size 64 --lr 1e-2 --clip 1 --steps 1000 --eval-every 250 --eval-size 512 --threads 1 --no-progress"
for v in "0.1 0" "0.1 1" "1 2" "0.1 2"; do set -- $v
  .venv/bin/qrnn train $DEMO --angle-lr 0.1 --init-scale $1 --seed $2 --run-dir runs/r13/demo-init/init$1-s$2 > runs/r13/demo-init-$1-s$2.log 2>&1
done
IMDB="--task imdb --max-len 100 --qubits 6 --embed-dim 32 --batch-size 32 --lr 3e-3 --steps 1500 --eval-every 250 --eval-size 1000 --threads 1 --no-progress"
.venv/bin/qrnn train $IMDB --angle-lr 0.03 --init-scale 1 --seed 0 --run-dir runs/r13/imdb100/alr0.03-init1-s0 > runs/r13/imdb100-alr0.03-init1-s0.log 2>&1
