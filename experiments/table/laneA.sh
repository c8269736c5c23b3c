#!/usr/bin/env bash
# issue 13.8: the task table rerun with the new recipe (lane A of two, one thread each, run side by side).
# QRNN boxes are 20 minutes (not the issue's 45: eight tasks at 45 minutes do not fit one session with the checks).
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
Q=".venv/bin/qrnn"; R=runs/t13; mkdir -p $R
C="--threads 1 --no-progress --steps 200000"
# copying memory, delay 20 (the paper's headline), QRNN n = 6; then the chrono-initialised LSTM with the same parameter count
COPY="--task copying --delay 20 --batch-size 64 --lr 1e-2 --clip 1.0 --eval-every 250 --eval-size 512 $C"
$Q train $COPY --model qrnn --qubits 6 --layers 2 --max-minutes 20 --run-dir $R/copy20-qrnn > $R/copy20-qrnn.log 2>&1
$Q train $COPY --model lstm --match-params $R/copy20-qrnn --max-minutes 5 --run-dir $R/copy20-lstm > $R/copy20-lstm.log 2>&1
# sMNIST row by row (T = 28), QRNN n = 8 as in the first table
ROWS="--task smnist-rows --embed-dim 32 --batch-size 64 --lr 3e-3 --eval-every 422 --eval-size 2000 $C"
$Q train $ROWS --model qrnn --qubits 8 --layers 2 --max-minutes 20 --run-dir $R/smnist-rows-qrnn > $R/smnist-rows-qrnn.log 2>&1
$Q train $ROWS --model lstm --match-params $R/smnist-rows-qrnn --max-minutes 3 --run-dir $R/smnist-rows-lstm > $R/smnist-rows-lstm.log 2>&1
# Penn Treebank characters, state carried (the task as specified); ptb prefers --angle-lr 0.1 (docs/results.md)
PTB="--task ptb-char --embed-dim 32 --bptt 100 --batch-size 32 --lr 1e-2 --eval-every 500 $C"
# (this run collapsed at step ~2,250; it was stopped by hand at step 9,000 and moved to $R/ptb-char-qrnn-alr0.1,
# where the LSTM below reads its size; laneD.sh reruns it at the default --angle-lr)
$Q train $PTB --model qrnn --qubits 8 --layers 2 --angle-lr 0.1 --max-minutes 20 --run-dir $R/ptb-char-qrnn > $R/ptb-char-qrnn.log 2>&1
$Q train $PTB --model lstm --match-params $R/ptb-char-qrnn-alr0.1 --max-minutes 5 --run-dir $R/ptb-char-lstm > $R/ptb-char-lstm.log 2>&1
# permuted MNIST pixel by pixel (T = 784): a first number in a 15-minute box
PM="--task pmnist --embed-dim 32 --batch-size 64 --lr 3e-3 --eval-every 100 --eval-size 1000 $C"
$Q train $PM --model qrnn --qubits 8 --layers 2 --max-minutes 15 --run-dir $R/pmnist-qrnn > $R/pmnist-qrnn.log 2>&1
$Q train $PM --model lstm --match-params $R/pmnist-qrnn --max-minutes 5 --run-dir $R/pmnist-lstm > $R/pmnist-lstm.log 2>&1
