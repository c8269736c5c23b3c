#!/usr/bin/env bash
# issue 13.8: IMDB on the last 200 words again, with a cosine schedule over the steps the 40-minute box held in
# the first run (7,941), to see whether a decaying learning rate stops the collapse at step 7,000 (after lane B)
cd "$(dirname "$0")/../.."
while pgrep -f experiments/table/laneB.sh > /dev/null; do sleep 30; done
export OMP_NUM_THREADS=1
R=runs/t13
IMDB="--task imdb --max-len 200 --embed-dim 32 --batch-size 32 --lr 3e-3 --eval-every 500 --eval-size 1000 --threads 1 --no-progress"
.venv/bin/qrnn train $IMDB --model qrnn --qubits 8 --layers 2 --schedule cosine --steps 7500 --max-minutes 40 --run-dir $R/imdb200-cosine > $R/imdb200-cosine.log 2>&1
