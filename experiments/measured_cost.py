"""Hardware cost of the measured QRNN's own circuit vs the coherent QRNN's replay (issue 22, Show).

Resource reports (``evaluation.resources.resource_report``: circuits, sequential rounds, jobs,
two-qubit gates, depth, estimated QPU seconds = shots × (scheduled duration + rep delay)) of
32 sequences, 4000 shots, n = 4, L = 2, cz_chain, on a Heron r3 fake backend (fake_boston; pass
``--backend`` for another), at T = 28 and T = 200. Random weights: the circuits' cost does not
depend on training. The measured circuits get ``measure_2`` where the target lists it (what an
``ibm:`` evaluation submits) and are packed into jobs of at most 2,400 one-bit broadcasts; a
feedforward whose single circuit exceeds that is reported as refused (use fewer fed-forward bits).

    PYTHONPATH=. python experiments/measured_cost.py [--backend fake_boston] [--steps 28,200]
"""

from __future__ import annotations

import argparse
import time

import torch
from qiskit.transpiler import generate_preset_pass_manager

from qrnn_qiskit.backends.ibm import DEFAULT_REP_DELAY, to_mid_circuit_measure, uses_measure_2
from qrnn_qiskit.backends.targets import fake_backend
from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.circuits.measured import JOB_BROADCAST_BUDGET
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.evaluation.measured import MeasuredProtocol
from qrnn_qiskit.evaluation.protocols import ReplayProtocol
from qrnn_qiskit.evaluation.resources import resource_report
from qrnn_qiskit.models import InputSpec, QRNNConfig, build_model
from qrnn_qiskit.models.config import MeasuredConfig

SAMPLES, SHOTS = 32, 4000


def report(device, protocol, name: str, measure_2: bool):
    manager = generate_preset_pass_manager(1, backend=device, seed_transpiler=0)
    isa = list(manager.run(list(protocol.templates)))
    if measure_2 and uses_measure_2(device.target, local=False):
        isa = to_mid_circuit_measure(isa, device.target)
    return resource_report(
        f"ibm:{device.name}",
        name,
        protocol.templates,
        isa,
        protocol.schedule(),
        SHOTS,
        seconds_target=device.target,
        rep_delay=DEFAULT_REP_DELAY,
        dependent_rounds=protocol.dependent_rounds,
        measure_instruction=("measure_2" if measure_2 else "measure") if protocol.dynamic else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="fake_boston")
    parser.add_argument("--steps", default="28,200")
    parser.add_argument("--bits", default="4,2", help="measured model: fed-forward bits to try")
    args = parser.parse_args()
    torch.manual_seed(0)
    try:
        device = fake_backend(args.backend)
    except QRNNError:
        device = fake_backend("fake_kingston")
    spec = QRNNSpec(4, layers=2, entangler="cz_chain")
    inputs = InputSpec(vocab=10, embed_dim=8)
    rows = []
    for steps in (int(s) for s in args.steps.split(",")):
        x = torch.randint(0, 10, (SAMPLES, steps))
        coherent = build_model("qrnn", inputs, 10, qrnn=QRNNConfig(spec))
        started = time.perf_counter()
        replay = report(device, ReplayProtocol(coherent.eval(), x), "replay (coherent)", False)
        rows.append((steps, "coherent qrnn, replay", replay, time.perf_counter() - started))
        for bits in (int(b) for b in args.bits.split(",")):
            measured = build_model(
                "mqrnn", inputs, 10, qrnn=QRNNConfig(spec),
                measured=MeasuredConfig(feedforward_bits=bits),
            )  # fmt: skip
            label = f"mqrnn, weak, linear k={bits}"
            started = time.perf_counter()
            try:
                protocol = MeasuredProtocol(measured.eval(), x, budget=JOB_BROADCAST_BUDGET)
            except QRNNError as error:
                rows.append((steps, label, str(error), 0.0))
                continue
            rows.append(
                (steps, label, report(device, protocol, "dynamic (measured)", True),
                 time.perf_counter() - started)
            )  # fmt: skip
    print(f"# {device.name}: n = 4, L = 2, cz_chain, {SAMPLES} sequences, {SHOTS} shots\n")
    print("| T | model / protocol | circuits | rounds | jobs | 2q gates (all) | max depth | "
          "est. QPU s | meas. |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for steps, label, r, _ in rows:
        if isinstance(r, str):
            print(f"| {steps} | {label} | refused: {r} |||||||")
            continue
        print(
            f"| {steps} | {label} | {r.circuits:,} | {r.rounds} | {r.jobs} | "
            f"{r.two_qubit_gates:,} | {r.max_depth:,} | {r.qpu_seconds:,.1f} | "
            f"{r.measure_instruction or 'measure'} |"
        )
    for steps in sorted({s for s, *_ in rows}):
        replay = next(r for s, lbl, r, _ in rows if s == steps and "replay" in lbl)
        for s, lbl, r, _ in rows:
            if s == steps and "mqrnn" in lbl and not isinstance(r, str):
                print(f"T = {steps}: {lbl}: {replay.qpu_seconds / r.qpu_seconds:.1f}× fewer QPU "
                      f"seconds, {r.rounds} round vs {replay.rounds}")  # fmt: skip


if __name__ == "__main__":
    main()
