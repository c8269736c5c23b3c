"""What the forgetting step (``--forget-every K``: a reset of one qubit after every K-th step)
costs on IBM hardware, estimated from a fake backend's calibrations (issue 13.6).

One window of T steps of the QRNN step circuit with and without the resets, transpiled for the
target on one pinned layout: the scheduled duration of one shot, the two-qubit gate count, the
gates' and readouts' ESP, and a proxy for the resets' own cost, which IBM targets do not calibrate:
a reset is a measurement and a conditional X, so each costs (1 − the qubit's readout error), and
every other active qubit idles through it (exp(−t_reset / T2)).

    .venv/bin/python experiments/forget_cost.py --qubits 4 --steps 35 --every 0 5 35
"""

from __future__ import annotations

import argparse
import math

from qiskit import QuantumCircuit, transpile

from qrnn_qiskit.backends.layout import choose_layout, circuit_esp, instruction_error
from qrnn_qiskit.backends.targets import fake_backend
from qrnn_qiskit.backends.timing import scheduled_duration
from qrnn_qiskit.circuits import QRNNSpec, step_circuit
from qrnn_qiskit.models import forgetting


def window(spec: QRNNSpec, steps: int, every: int, seed: int = 0) -> QuantumCircuit:
    """T steps with random angles, a reset after every ``every``-th, the readouts measured."""
    import numpy as np

    rng = np.random.default_rng(seed)
    step = step_circuit(spec)
    out = QuantumCircuit(spec.n_qubits)
    for t in range(steps):
        out.compose(step.assign_parameters(rng.uniform(-0.3, 0.3, spec.n_params)), inplace=True)
        if forgetting.reset_due(t, every):
            out.reset(forgetting.reset_qubit(t, every, spec.n_qubits))
    out.measure_all()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--entangler", default=QRNNSpec(2).entangler)
    parser.add_argument("--steps", type=int, default=35)
    parser.add_argument("--every", type=int, nargs="+", default=[0, 5, 35])
    parser.add_argument("--target", default="fake_fez")
    args = parser.parse_args()
    spec = QRNNSpec(args.qubits, args.layers, entangler=args.entangler)
    backend = fake_backend(args.target)
    target = backend.target
    layout = choose_layout(window(spec, args.steps, 0), target)
    print(
        f"{args.target}, n = {args.qubits}, L = {args.layers}, {args.entangler}, one window of "
        f"{args.steps} steps, layout {layout.initial}"
    )
    print(
        "| --forget-every | resets | 2q gates | shot (µs) | ESP gates | ESP readout | reset proxy |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for every in args.every:
        logical = window(spec, args.steps, every)
        isa = transpile(
            logical,
            target=target,
            initial_layout=layout.initial,
            optimization_level=1,
            seed_transpiler=0,
        )
        ops = isa.count_ops()
        two = sum(v for k, v in ops.items() if k in ("cz", "ecr", "cx", "rzz"))
        esp = circuit_esp(isa, target)
        proxy = 1.0
        for inst in isa.data:
            if inst.operation.name != "reset":
                continue
            q = isa.find_bit(inst.qubits[0]).index
            t_reset = target["reset"][(q,)].duration
            proxy *= 1 - (instruction_error(target, "measure", (q,)) or 0.0)
            for other in layout.initial:
                if other != q:
                    proxy *= math.exp(-t_reset / backend.qubit_properties(other).t2)
        seconds = scheduled_duration(isa, target)
        print(
            f"| {every or 'off'} | {ops.get('reset', 0)} | {two} | {seconds * 1e6:.1f} | "
            f"{esp.gates:.3f} | {esp.measure:.3f} | {proxy:.3f} |"
        )


if __name__ == "__main__":
    main()
