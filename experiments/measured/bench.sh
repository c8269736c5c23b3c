#!/usr/bin/env bash
# Issue 22, steps 2 and 3 (docs/results.md, "The measured QRNN at equal steps"): the accuracy study at
# equal steps (benchmarks/specs/measured.toml), one worker on one core, then the speed rows. Run from
# the repository root; PY = the venv's python. The bench resumes: run it again after a kill, or after
# adding a task to the spec (copying-20 was added once copying-5 had finished).
set -euo pipefail
PY=${PY:-python}
$PY -m qrnn_qiskit.cli bench benchmarks/specs/measured.toml --dry-run
$PY -m qrnn_qiskit.cli bench benchmarks/specs/measured.toml      # -> runs/bench/measured/table.md
$PY -m qrnn_qiskit.cli bench benchmarks/specs/measured.toml --report
$PY experiments/measured/losses.py runs/bench/measured               # the validation-loss trends
# speed: the measured QRNN (linear feedforward, 4 bits) beside the coherent QRNN at n = 4 and 6
$PY benchmarks/train_step.py --qubits 4 6 --repeats 3 --warmup 1 --json runs/train_step-mqrnn.json
