#!/usr/bin/env bash
# issue 13.8: the task table rerun with the new recipe (lane B of two; see laneA.sh)
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
Q=".venv/bin/qrnn"; R=runs/t13; mkdir -p $R
C="--threads 1 --no-progress --steps 200000"
# Penn Treebank words
PW="--task ptb-word --embed-dim 32 --bptt 35 --batch-size 32 --lr 3e-3 --eval-every 500 $C"
$Q train $PW --model qrnn --qubits 8 --layers 2 --max-minutes 20 --run-dir $R/ptb-word-qrnn > $R/ptb-word-qrnn.log 2>&1
$Q train $PW --model lstm --match-params $R/ptb-word-qrnn --max-minutes 5 --run-dir $R/ptb-word-lstm > $R/ptb-word-lstm.log 2>&1
# German -> English with additive attention
MT="--task mt-de-en --embed-dim 32 --attention additive --batch-size 64 --lr 3e-3 --eval-every 153 --eval-size 512 --beam-size 5 $C"
$Q train $MT --model qrnn --qubits 8 --layers 2 --max-minutes 20 --run-dir $R/mt-qrnn > $R/mt-qrnn.log 2>&1
$Q train $MT --model lstm --match-params $R/mt-qrnn --max-minutes 5 --run-dir $R/mt-lstm > $R/mt-lstm.log 2>&1
# copying memory, delay 100: QRNN n = 6 against the chrono-initialised LSTM
C100="--task copying --delay 100 --batch-size 64 --lr 1e-2 --clip 1.0 --eval-every 250 --eval-size 512 $C"
$Q train $C100 --model qrnn --qubits 6 --layers 2 --max-minutes 20 --run-dir $R/copy100-qrnn > $R/copy100-qrnn.log 2>&1
$Q train $C100 --model lstm --match-params $R/copy100-qrnn --max-minutes 5 --run-dir $R/copy100-lstm > $R/copy100-lstm.log 2>&1
