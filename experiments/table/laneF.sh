#!/usr/bin/env bash
# issue 13.8: a second seed of the cosine IMDB run (after lane C)
cd "$(dirname "$0")/../.."
while pgrep -f experiments/table/laneC.sh > /dev/null; do sleep 10; done
export OMP_NUM_THREADS=1
R=runs/t13
IMDB="--task imdb --max-len 200 --embed-dim 32 --batch-size 32 --lr 3e-3 --eval-every 500 --eval-size 1000 --threads 1 --no-progress"
.venv/bin/qrnn train $IMDB --model qrnn --qubits 8 --layers 2 --schedule cosine --steps 7500 --max-minutes 40 --seed 1 --run-dir $R/imdb200-cosine-s1 > $R/imdb200-cosine-s1.log 2>&1
