"""QPU time of a circuit: one shot scheduled as soon as possible from a target's instruction
durations, control flow included."""

from __future__ import annotations

from collections.abc import Sequence

from qiskit import QuantumCircuit
from qiskit.transpiler import Target


def _duration(target: Target, operation, qargs: tuple[int, ...]) -> float | None:
    name = operation.name
    if name == "barrier":
        return 0.0
    if name == "delay":
        unit = getattr(operation, "unit", "dt")
        value = float(operation.params[0]) if operation.params else float(operation.duration)
        if unit == "dt":
            return value * (target.dt or 0.0) if target.dt else None
        return value * {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12}[unit]
    if name not in target.operation_names:
        return None
    props = target[name]
    if props is None:
        return None
    for key in (qargs, tuple(reversed(qargs)), None):
        if key in props and props[key] is not None:
            return float(props[key].duration or 0.0)
    return None


def scheduled_duration(
    circuit: QuantumCircuit, target: Target, qubit_map: Sequence[int] | None = None
) -> float | None:
    """Length of one shot of ``circuit`` on ``target`` in seconds, scheduled as soon as possible
    per qubit and classical bit. An if/else lasts as long as its longest branch and occupies every
    qubit and bit it touches (the feedforward latency of a real controller is not in the target and
    not included). None when an instruction has no duration."""
    qubit_map = list(range(circuit.num_qubits)) if qubit_map is None else list(qubit_map)
    qubit_time = [0.0] * circuit.num_qubits
    clbit_time = [0.0] * circuit.num_clbits
    for instruction in circuit.data:
        operation = instruction.operation
        qs = [circuit.find_bit(q).index for q in instruction.qubits]
        cs = [circuit.find_bit(c).index for c in instruction.clbits]
        blocks = getattr(operation, "blocks", ())
        if blocks:
            lengths = [
                scheduled_duration(
                    block, target, [qubit_map[qs[i]] for i in range(block.num_qubits)]
                )
                for block in blocks
            ]
            if any(length is None for length in lengths):
                return None
            length = max(lengths)
        else:
            length = _duration(target, operation, tuple(qubit_map[q] for q in qs))
            if length is None:
                return None
        start = max([qubit_time[q] for q in qs] + [clbit_time[c] for c in cs] + [0.0])
        for q in qs:
            qubit_time[q] = start + length
        for c in cs:
            clbit_time[c] = start + length
    return max(qubit_time + clbit_time + [0.0])


def estimate_seconds(circuit: QuantumCircuit, target: Target | None) -> float | None:
    """Scheduled duration of one shot of ``circuit`` on ``target`` (None when durations are
    unknown): ``scheduled_duration``, control flow included."""
    if target is None:
        return None
    return scheduled_duration(circuit, target)


__all__ = ["estimate_seconds", "scheduled_duration"]
