#!/usr/bin/env bash
# issue 13.8 (partial): IMDB on the last 200 words with the new recipe, 40-minute QRNN box, then the matched LSTM
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
IMDB="--task imdb --max-len 200 --embed-dim 32 --batch-size 32 --lr 3e-3 --steps 20000 --eval-every 500 --eval-size 1000 --threads 1 --no-progress"
.venv/bin/qrnn train $IMDB --model qrnn --qubits 8 --layers 2 --max-minutes 40 --run-dir runs/r13/imdb200-qrnn > runs/r13/imdb200-qrnn.log 2>&1
.venv/bin/qrnn train $IMDB --model lstm --match-params runs/r13/imdb200-qrnn --max-minutes 12 --patience 6 --run-dir runs/r13/imdb200-lstm > runs/r13/imdb200-lstm.log 2>&1
