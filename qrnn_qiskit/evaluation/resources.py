"""The resource report printed before any circuit runs: computed from the transpiled circuits
themselves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from qiskit import QuantumCircuit
from qiskit.transpiler import Target

from ..backends.targets import active_qubits
from ..backends.timing import estimate_seconds


def two_qubit_gates(circuit: QuantumCircuit) -> int:
    """Two-qubit gates in ``circuit``, counting inside control-flow blocks (each branch once)."""
    total = 0
    for instruction in circuit.data:
        operation = instruction.operation
        blocks = getattr(operation, "blocks", ())
        if blocks:
            total += sum(two_qubit_gates(block) for block in blocks)
        elif len(instruction.qubits) == 2 and operation.name not in (
            "barrier",
            "delay",
            "measure",
            "reset",
        ):
            total += 1
    return total


@dataclass(frozen=True)
class ResourceReport:
    """What an evaluation will run. ``qpu_seconds`` = Σ over executed circuits of shots·(duration +
    rep delay)."""

    target: str
    protocol: str
    logical_qubits: int
    qubits_used: int
    physical_qubits: list[int] | None
    max_depth: int
    two_qubit_gates: int  # summed over every executed circuit (one shot each)
    max_two_qubit_gates: int  # in the largest circuit
    circuits: int  # executed circuits (parameter rows included)
    rounds: int  # sequential rounds (a round's jobs do not wait on each other)
    shots_per_circuit: int
    total_shots: int
    qpu_seconds: float | None
    # replay on calibrated targets: ESP of the step-t prefix (mean over settings), its gates' part,
    # and the predicted readout shrink z → λ_t·z (mean over readouts; docs/hardware.md)
    esp_per_step: list[float] | None = None
    esp_gates_per_step: list[float] | None = None
    shrink_per_step: list[float] | None = None
    # aer-noisy:<fake backend>: thermal relaxation charged to idle time (backends.relaxation);
    # None for other targets and in reports written before it existed
    idle_relaxation: dict | None = None
    # jobs (IBM: one per round of a Session, several per round where a Batch's circuits exceed one
    # job's broadcast budget); None in reports written before it existed
    jobs: int | None = None
    # dynamic circuits: the mid-circuit measurement instruction of the ISA circuits (measure or
    # IBM's faster measure_2; its duration is in qpu_seconds)
    measure_instruction: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        qpu = (
            f"{self.qpu_seconds:.1f} s (shots × (scheduled duration + rep delay), no "
            "queue/compile overhead)"
            if self.qpu_seconds is not None
            else "n/a (target has no instruction durations)"
        )
        physical = f" on physical qubits {self.physical_qubits}" if self.physical_qubits else ""
        shots = (
            "exact probabilities (no shots)"
            if self.shots_per_circuit == 0
            else f"{self.total_shots:,} ({self.shots_per_circuit:,} per circuit)"
        )
        return "\n".join(
            [
                f"resources for {self.protocol} on {self.target}:",
                f"  qubits used        {self.qubits_used} ({self.logical_qubits} logical)"
                f"{physical}",
                f"  max depth          {self.max_depth}",
                f"  two-qubit gates    {self.two_qubit_gates:,} in all executed circuits (max "
                f"{self.max_two_qubit_gates} in one)",
                f"  circuits           {self.circuits:,} in {self.rounds} sequential run(s)"
                + (
                    f", {self.jobs} job(s)"
                    if self.jobs is not None and self.jobs != self.rounds
                    else ""
                ),
                f"  total shots        {shots}",
                f"  est. QPU seconds   {qpu}",
            ]
            + (
                [f"  mid-circuit meas.  {self.measure_instruction}"]
                if self.measure_instruction
                else []
            )
            + self._esp_lines()
            + self._relaxation_lines()
        )

    def _relaxation_lines(self) -> list[str]:
        relax = self.idle_relaxation
        if not relax:
            return []
        if not relax.get("applied"):
            return [f"  idle relaxation    not applied ({relax.get('reason', '')})"]
        idle = relax.get("idle_seconds_per_qubit") or {}
        if not idle:
            return ["  idle relaxation    applied (no idle time)"]
        qubit = max(idle, key=idle.get)
        t2 = relax.get("t2_s", {}).get(qubit)
        decay = f", exp(−t/T2) = {math.exp(-idle[qubit] / t2):.3f}" if t2 else ""
        return [
            f"  idle relaxation    applied: up to {idle[qubit] * 1e6:.1f} µs idle on qubit {qubit} "
            f"in the longest circuit ({relax['longest_circuit_seconds'] * 1e6:.1f} µs){decay}"
        ]

    def _esp_lines(self) -> list[str]:
        if not self.esp_per_step:
            return []
        esp = self.esp_per_step
        picks = sorted({0, len(esp) // 4, len(esp) // 2, 3 * len(esp) // 4, len(esp) - 1})
        shown = ", ".join(f"t={t + 1} {esp[t]:.3f}" for t in picks)
        per_step = (esp[-1] / esp[0]) ** (1 / max(1, len(esp) - 1)) if esp[0] > 0 else 0.0
        lines = [f"  ESP per step       {shown} (× {per_step:.4f} per step)"]
        if self.shrink_per_step:
            lam = self.shrink_per_step
            lines.append(
                f"  predicted shrink   z → λ·z, λ = {lam[0]:.3f} at t=1 … {lam[-1]:.3f} at "
                f"t={len(lam)} (gate ESP × readout contraction; --mitigate esp divides it out)"
            )
        return lines


def resource_report(
    target: str,
    protocol: str,
    logical: Sequence[QuantumCircuit],
    isa: Sequence[QuantumCircuit],
    schedule: Sequence[Sequence[tuple[int, int]]],
    shots: int,
    *,
    physical_qubits: list[int] | None = None,
    seconds_target: Target | None = None,
    rep_delay: float = 250e-6,
    exact: bool = False,
    calibration: dict | None = None,
    idle_relaxation: dict | None = None,
    dependent_rounds: bool = True,
    measure_instruction: str | None = None,
) -> ResourceReport:
    """Report for running ``schedule`` (per round: (template index, parameter rows)) over ``isa``
    circuits. ``dependent_rounds=False``: the schedule's rounds are independent jobs (one
    sequential round); no templates (the measured model on the exact target): an empty report."""
    executions = [(index, rows) for round_ in schedule for index, rows in round_]
    used = sorted({q for c in isa for q in active_qubits(c)})
    gates = [two_qubit_gates(c) for c in isa]
    depths = [c.depth() for c in isa]
    per_shot = (
        [estimate_seconds(c, seconds_target) for c in isa] if seconds_target is not None else None
    )
    qpu = None
    if per_shot is not None and all(s is not None for s in per_shot):
        qpu = sum(rows * shots * (per_shot[i] + rep_delay) for i, rows in executions)
    shots_per = 0 if exact else shots
    circuits = sum(rows for _, rows in executions)
    return ResourceReport(
        target=target,
        protocol=protocol,
        logical_qubits=max((c.num_qubits for c in logical), default=0),
        qubits_used=len(physical_qubits) if physical_qubits else len(used),
        physical_qubits=list(physical_qubits) if physical_qubits else None,
        max_depth=max(depths, default=0),
        two_qubit_gates=sum(rows * gates[i] for i, rows in executions),
        max_two_qubit_gates=max(gates, default=0),
        circuits=circuits,
        rounds=len(schedule) if dependent_rounds else min(1, len(schedule)),
        shots_per_circuit=shots_per,
        total_shots=circuits * shots_per,
        qpu_seconds=qpu,
        esp_per_step=calibration["esp"] if calibration else None,
        esp_gates_per_step=calibration["esp_gates"] if calibration else None,
        shrink_per_step=calibration.get("shrink") if calibration else None,
        idle_relaxation=idle_relaxation,
        jobs=len(schedule),
        measure_instruction=measure_instruction,
    )
