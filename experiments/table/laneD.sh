#!/usr/bin/env bash
# issue 13.8: ptb-char with the state carried again, at the default --angle-lr 0.03 (after lane A): the run of lane A
# with --angle-lr 0.1 collapsed at step ~2,250 (moved to runs/t13/ptb-char-qrnn-alr0.1; stopped by hand at step 9,000)
cd "$(dirname "$0")/../.."
while pgrep -f experiments/table/laneA.sh > /dev/null; do sleep 30; done
export OMP_NUM_THREADS=1
R=runs/t13
PTB="--task ptb-char --embed-dim 32 --bptt 100 --batch-size 32 --lr 1e-2 --eval-every 500 --threads 1 --no-progress --steps 200000"
.venv/bin/qrnn train $PTB --model qrnn --qubits 8 --layers 2 --max-minutes 20 --run-dir $R/ptb-char-qrnn > $R/ptb-char-qrnn.log 2>&1
