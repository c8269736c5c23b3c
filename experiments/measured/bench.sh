#!/usr/bin/env bash
# Issue 22, step 2: the accuracy study at equal steps (benchmarks/specs/measured.toml), one worker on
# one core, then the speed rows (step 3). Run from the repository root; PY=python of the venv.
set -euo pipefail
PY=${PY:-python}
$PY -m qrnn_qiskit.cli bench benchmarks/specs/measured.toml --dry-run
$PY -m qrnn_qiskit.cli bench benchmarks/specs/measured.toml --root runs/bench/measured
$PY -m qrnn_qiskit.cli bench benchmarks/specs/measured.toml --root runs/bench/measured --report
# speed: the measured QRNN (linear feedforward, 4 bits) beside the coherent QRNN at n = 4 and 6
$PY benchmarks/train_step.py --qubits 4 6 --repeats 3 --warmup 1 --json runs/train_step-mqrnn.json
