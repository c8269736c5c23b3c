"""Thermal relaxation of idle qubits for ``aer-noisy:<fake backend>`` simulations.

``NoiseModel.from_backend`` attaches T1/T2 relaxation to every *gate* for its calibrated duration
(and to explicit ``delay`` instructions at the top level of a circuit), but an ISA circuit from the
preset pass manager has no delays: a data qubit that waits through the 2–3 µs measure + reset
windows of other qubits is charged nothing. 21 such windows on fake_marrakesh (≈ 111 µs, T2 ≈
185 µs) left ⟨X⟩ = 0.99 where exp(−t/T2) ≈ 0.55 (docs/hardware.md, "Idle relaxation").

``relax_idle`` makes that time explicit and charges it:

1. schedule the ISA circuit with the target's instruction durations and pad every idle interval
   with a ``delay``: Qiskit's ``ALAPScheduleAnalysis`` + ``PadDelay`` for circuits without control
   flow; for circuits with ``if_else`` (which Qiskit 2.6's scheduler rejects: "Duration of if_else
   … is not found") the dynamic-circuit versions from
   ``qiskit_ibm_runtime.transpiler.passes.scheduling``, which schedule inside the branches and
   model IBM's execution of dynamic circuits (a reset or a branch ends a block; the next block
   starts when every qubit of the block is free; shorter branches are padded with delays). The
   classical feed-forward latency of a real controller is in no target and is not charged;
2. merge the delays of one idle interval of a qubit (delays separated only by barriers or other
   qubits' operations, within one block: ``merge_delays``), then append
   ``thermal_relaxation_error(T1, T2, t)`` after every merged delay with qiskit-aer's
   ``RelaxationNoisePass`` (op_types=Delay), at the top level and inside every control-flow block
   (intervals below ``NEGLIGIBLE_RELAXATION`` in t/T1 and t/T2 get no channel);
3. remove the delays (identities for Aer), so the noise model's own delay pass, which
   ``from_backend`` installs for top-level delays, cannot charge the same time a second time.

T1/T2 come from the target's ``qubit_properties`` (for the sub-device of the pinned physical
qubits, their calibrations); T2 is clipped to 2·T1 as ``from_backend`` does, and the excited-state
population at equilibrium is 0 (``from_backend``'s default temperature). ``aer-noisy:depolarizing``
targets have no T1/T2 and are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp, Delay
from qiskit.transpiler import PassManager, Target

from ..errors import QRNNError

STATIC_SCHEDULER = "qiskit ALAPScheduleAnalysis + PadDelay"
DYNAMIC_SCHEDULER = "qiskit_ibm_runtime dynamic-circuit ALAPScheduleAnalysis + PadDelay"


def has_control_flow(circuit: QuantumCircuit) -> bool:
    return any(isinstance(i.operation, ControlFlowOp) for i in circuit.data)


def schedule(circuit: QuantumCircuit, target: Target) -> QuantumCircuit:
    """``circuit`` (an ISA circuit on ``target``) with every idle interval of every qubit filled by
    a ``delay`` (in dt), scheduled as late as possible with the target's durations."""
    if has_control_flow(circuit):
        from qiskit_ibm_runtime.transpiler.passes.scheduling import ALAPScheduleAnalysis

        pad = _dynamic_pad_delay(target)
    else:
        from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDelay

        pad = PadDelay(target=target)
    return PassManager([ALAPScheduleAnalysis(target=target), pad]).run(circuit)


def _dynamic_pad_delay(target: Target):
    """qiskit_ibm_runtime's dynamic-circuit ``PadDelay`` (0.51), with one fix: after a
    control-flow op ends a block its per-qubit "idle since" table is rebuilt from the inner block's
    qubits, so the next gate on a qubit outside that block raised ``KeyError``
    (``_visit_generic`` reads ``self._idle_after.get(bit, 0)`` and then ``self._idle_after[bit]``).
    A missing entry means "idle since the block began" (t = 0), which is what the ``get`` already
    assumes; the fix makes the lookup agree with it."""
    from qiskit_ibm_runtime.transpiler.passes.scheduling import PadDelay

    class _PadDelay(PadDelay):
        def _visit_generic(self, node, enable_dd: bool = False) -> None:
            for bit in self._map_wires(node.qargs):
                self._idle_after.setdefault(bit, 0)
            super()._visit_generic(node, enable_dd=enable_dd)

    return _PadDelay(target=target)


@dataclass(frozen=True)
class Coherence:
    """T1 and T2 (seconds, T2 ≤ 2·T1; inf where the target gives none) of the target's qubits."""

    t1: tuple[float, ...]
    t2: tuple[float, ...]

    @classmethod
    def of(cls, target: Target, *, device: str = "target") -> Coherence:
        properties = target.qubit_properties
        if not properties:
            raise QRNNError(
                f"{device} lists no qubit properties (T1/T2); idle relaxation needs them"
            )
        t1 = [np.inf if p is None or p.t1 is None else float(p.t1) for p in properties]
        t2 = [np.inf if p is None or p.t2 is None else float(p.t2) for p in properties]
        t2 = [min(b, 2.0 * a) for a, b in zip(t1, t2)]
        return cls(tuple(t1), tuple(t2))


def delay_seconds(circuit: QuantumCircuit, dt: float | None) -> list[float]:
    """Total ``delay`` time per qubit of ``circuit`` (seconds); in a control-flow op the longest
    branch counts (scheduled branches are padded to equal length)."""
    out = [0.0] * circuit.num_qubits
    for instruction in circuit.data:
        operation = instruction.operation
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        if isinstance(operation, ControlFlowOp):
            inner = [delay_seconds(block, dt) for block in operation.blocks]
            for i, q in enumerate(qubits):
                out[q] += max(seconds[i] for seconds in inner)
        elif isinstance(operation, Delay):
            for q in qubits:
                out[q] += _seconds(operation, dt)
    return out


def _seconds(delay: Delay, dt: float | None) -> float:
    if delay.unit == "dt":
        if dt is None:
            raise QRNNError("a delay in dt units needs the target's dt")
        return float(delay.duration) * dt
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12}[delay.unit]
    return float(delay.duration) * scale


# An idle interval whose relaxation is below this in both terms (t/T1 and t/T2: the decay and the
# dephasing probabilities to first order) gets no channel. 1e-6 is three orders of magnitude below
# the single-qubit gate errors of the targets (~1e-4) and far below the shot noise of any feasible
# shot count; after merging (``merge_delays``) such intervals are rare (on a 4 ns dt and T1, T2 ≳
# 100 µs a single dt is already ~4e-5, so nothing is skipped there).
NEGLIGIBLE_RELAXATION = 1e-6


def merge_delays(circuit: QuantumCircuit, dt: float | None) -> QuantumCircuit:
    """``circuit`` with the delays on one qubit that follow each other, with nothing but other
    qubits' operations or barriers between them, merged into one delay (in seconds), within each
    block (recursively inside control flow; delays are not moved across a block's boundary).
    Thermal relaxation is a semigroup (relaxation for t₁ then t₂ = relaxation for t₁ + t₂) and
    commutes with operations on other qubits and with barriers, so one channel per idle interval
    is the same channel as one per delay, and cheaper to simulate per shot."""
    out = circuit.copy_empty_like()
    pending: dict = {}  # qubit -> seconds idle since its last operation

    def flush(qubits) -> None:
        for q in qubits:
            seconds = pending.pop(q, None)
            if seconds is not None:
                out.append(Delay(seconds, "s"), [q])

    for instruction in circuit.data:
        operation = instruction.operation
        if isinstance(operation, Delay):
            (q,) = instruction.qubits
            pending[q] = pending.get(q, 0.0) + _seconds(operation, dt)
            continue
        if operation.name == "barrier":
            out.append(operation, instruction.qubits, instruction.clbits)
            continue
        flush(instruction.qubits)
        if isinstance(operation, ControlFlowOp):
            operation = operation.replace_blocks([merge_delays(b, dt) for b in operation.blocks])
        out.append(operation, instruction.qubits, instruction.clbits)
    flush(list(pending))
    return out


def _drop_negligible(
    circuit: QuantumCircuit, t1: Sequence[float], t2: Sequence[float], dt: float | None
) -> QuantumCircuit:
    """``circuit`` without the top-level delays whose relaxation is below NEGLIGIBLE_RELAXATION."""
    out = circuit.copy_empty_like()
    for instruction in circuit.data:
        operation = instruction.operation
        if isinstance(operation, Delay):
            q = circuit.find_bit(instruction.qubits[0]).index
            seconds = _seconds(operation, dt)
            if seconds / t1[q] < NEGLIGIBLE_RELAXATION and seconds / t2[q] < NEGLIGIBLE_RELAXATION:
                continue
        out.append(operation, instruction.qubits, instruction.clbits)
    return out


def _relax_delays(
    circuit: QuantumCircuit, t1: Sequence[float], t2: Sequence[float], dt: float | None
) -> QuantumCircuit:
    """Relaxation appended to every delay of ``circuit`` (qubit i has t1[i], t2[i]) that is not
    negligible, recursively inside control flow, and the delays removed. Merge the delays first
    (``merge_delays``) for one channel per idle interval."""
    import warnings

    from qiskit_aer.noise import RelaxationNoisePass

    circuit = _drop_negligible(circuit, t1, t2, dt)
    pass_ = RelaxationNoisePass(list(t1), list(t2), dt=dt, op_types=Delay)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "duration not found": only delays are asked
        noisy = PassManager([pass_]).run(circuit)
    out = noisy.copy_empty_like()
    for instruction in noisy.data:
        operation = instruction.operation
        if isinstance(operation, Delay):
            continue
        if isinstance(operation, ControlFlowOp):
            qubits = [noisy.find_bit(q).index for q in instruction.qubits]
            blocks = []
            for block in operation.blocks:
                inner = [qubits[i] for i in range(block.num_qubits)]
                blocks.append(
                    _relax_delays(block, [t1[q] for q in inner], [t2[q] for q in inner], dt)
                )
            operation = operation.replace_blocks(blocks)
        out.append(operation, instruction.qubits, instruction.clbits)
    return out


@dataclass(frozen=True)
class RelaxedCircuit:
    circuit: QuantumCircuit  # scheduled, relaxation after every idle interval, no delays
    idle_seconds: list[float]  # delay time per qubit of the scheduled circuit
    scheduler: str


def relax_idle(
    circuit: QuantumCircuit, target: Target, coherence: Coherence | None = None
) -> RelaxedCircuit:
    """Schedule ``circuit`` on ``target`` and charge thermal relaxation to every idle interval
    (module docstring). Parameters stay unbound: durations do not depend on angles."""
    coherence = coherence or Coherence.of(target)
    scheduled = schedule(circuit, target)
    idle = delay_seconds(scheduled, target.dt)
    merged = merge_delays(scheduled, target.dt)
    relaxed = _relax_delays(merged, coherence.t1, coherence.t2, target.dt)
    scheduler = DYNAMIC_SCHEDULER if has_control_flow(circuit) else STATIC_SCHEDULER
    return RelaxedCircuit(relaxed, idle, scheduler)


__all__ = [
    "DYNAMIC_SCHEDULER",
    "STATIC_SCHEDULER",
    "Coherence",
    "RelaxedCircuit",
    "delay_seconds",
    "has_control_flow",
    "merge_delays",
    "relax_idle",
    "schedule",
]
