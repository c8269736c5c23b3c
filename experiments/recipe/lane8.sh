#!/usr/bin/env bash
# issue 13.6: forgetting for the carried ptb-char state at n = 4: none, restarting every 4 windows (a), a
# mid-circuit reset of one qubit every K steps, simulated exactly as a mixed state (b)
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
R=runs/r13/forget; mkdir -p $R
PTB="--task ptb-char --bptt 35 --qubits 4 --embed-dim 32 --batch-size 32 --lr 1e-2 --init-scale 0.1 --angle-lr 0.1 --steps 1500 --eval-every 250 --threads 1 --no-progress"
for v in "carry" "reset4:--reset-every 4" "forget35:--forget-every 35" "forget5:--forget-every 5"; do
  name=${v%%:*}; flags=""; [[ $v == *:* ]] && flags=${v#*:}
  .venv/bin/qrnn train $PTB $flags --run-dir $R/$name > $R/$name.log 2>&1
done
