#!/usr/bin/env bash
# issue 13.7: the gradient-norm figure on IMDB at 100 words (after lane 5)
cd "$(dirname "$0")/../.."
# (ran after the previous lane had finished)
export OMP_NUM_THREADS=1
IMDB="--task imdb --max-len 100 --embed-dim 32 --batch-size 32 --lr 3e-3 --steps 1500 --eval-every 250 --eval-size 1000 --threads 1 --no-progress"
for m in lstm orthogonal; do
  .venv/bin/qrnn train $IMDB --model $m --match-params runs/r13/imdb100/alr0.03-s0 --run-dir runs/r13/imdb100/$m-s0 > runs/r13/imdb100-$m-s0.log 2>&1
done
.venv/bin/qrnn gradnorm runs/r13/imdb100/alr0.03-s0 runs/r13/imdb100/alr1-s0 runs/r13/imdb100/lstm-s0 runs/r13/imdb100/orthogonal-s0 \
  --samples 32 --json runs/r13/gradnorm-imdb100.json --plot docs/gradnorm-imdb100.png > runs/r13/gradnorm-imdb100.log 2>&1
