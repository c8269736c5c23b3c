#!/usr/bin/env bash
# issue 13.8: the chrono LSTM on copying delay 100 sat at the memoryless loss after its 5 minutes; give it the
# QRNN's 20 minutes (resumed, after lane D)
cd "$(dirname "$0")/../.."
while pgrep -f experiments/table/laneD.sh > /dev/null; do sleep 20; done
export OMP_NUM_THREADS=1
R=runs/t13
C100="--task copying --delay 100 --batch-size 64 --lr 1e-2 --clip 1.0 --eval-every 250 --eval-size 512 --threads 1 --no-progress --steps 200000"
.venv/bin/qrnn train $C100 --model lstm --match-params $R/copy100-qrnn --max-minutes 20 --resume --run-dir $R/copy100-lstm > $R/copy100-lstm-resumed.log 2>&1
