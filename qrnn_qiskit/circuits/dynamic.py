"""Dynamic (hardware-native) form of a QRNN sequence: one circuit per input sequence and setting.

Every step t applies the step circuit U(θ̄_t) with *precomputed* angles, then couples each data
qubit's ``setting`` basis to a fresh ancilla, measures the ancilla mid-circuit into clbit ``mid[t·n
+ q]`` and resets it. The next step's angles are corrected in real time: for selected (angle k,
measured qubit q) pairs the circuit applies ``if_test(mid[(t-1)·n + q])`` → rotation by ``δ₁`` on
angle k's gate, else ``δ₀``. Only constructs IBM runtime accepts today are used: if/else on a single
measured bit, no switch, no nesting, no measurement or reset inside a branch.

Coupling of data qubit q (basis rotated onto Z) to its ancilla a:
  * ``"cnot"``: a projective measurement; the ±1 outcome s has E[s] = ⟨B_q⟩. No ancilla is needed:
    the data qubit itself is measured mid-circuit (rotated into the setting's basis and back), which
    leaves it in the same post-measurement ensemble as CX(q, a) + measuring a. ``ancillas=True``
    keeps the CX-to-ancilla form.
  * a float α in (0, π/2): RY(π/2 − α) on a, then CRY(2α)(q → a): a weak measurement with
    E[s] = sin(α)·⟨B_q⟩ and less back-action on the data qubit.
  * ``"weak"``: the default weak coupling ``DEFAULT_WEAK_COUPLING`` (chosen from measurements,
    docs/hardware.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

from .replay import append_basis_change
from .spec import QRNNSpec, step_circuit

MID_REGISTER = "mid"
Coupling = str | float
DEFAULT_WEAK_COUPLING = 0.15  # radians; measured at 4000 shots (docs/hardware.md, "Measured")


@dataclass(frozen=True)
class Correction:
    """At step ``step`` (0-based, ≥ 1) add ``delta_one`` to angle ``angle`` if bit mid[(step-1)·n +
    qubit] is 1, else ``delta_zero``."""

    step: int
    angle: int
    qubit: int
    delta_one: float
    delta_zero: float


def validate_coupling(coupling: Coupling) -> Coupling:
    """``"cnot"``, ``"weak"`` (``DEFAULT_WEAK_COUPLING``) or a weak-coupling angle α in (0, π/2];
    α = π/2 is returned as ``"cnot"``."""
    if isinstance(coupling, str):
        if coupling == "cnot":
            return coupling
        if coupling == "weak":
            return DEFAULT_WEAK_COUPLING
        try:
            coupling = float(coupling)
        except ValueError:
            raise ValueError(
                f"coupling must be 'cnot', 'weak' or an angle in (0, π/2], got {coupling!r}"
            ) from None
    if not 0.0 < float(coupling) <= math.pi / 2 + 1e-12:
        raise ValueError(f"weak coupling angle must be in (0, π/2], got {coupling}")
    return "cnot" if abs(float(coupling) - math.pi / 2) < 1e-12 else float(coupling)


def resolve_corrections(coupling: Coupling, corrections: int) -> int:
    """``corrections`` < 0 means auto: 8 for projective coupling, 0 for weak coupling (whose
    single-shot outcomes carry too little signal: unbiased corrections J·(s/κ − z̄) add noise of
    order J/κ; measured in docs/hardware.md)."""
    if corrections >= 0:
        return int(corrections)
    return 8 if validate_coupling(coupling) == "cnot" else 0


def coupling_gain(coupling: Coupling) -> float:
    """κ with E[s] = κ·⟨B_q⟩ for the measured ±1 outcome s."""
    coupling = validate_coupling(coupling)
    return 1.0 if coupling == "cnot" else math.sin(float(coupling))


def _gate_angle_index(instruction, parameters: dict) -> int:
    params = instruction.operation.params
    if len(params) != 1 or params[0] not in parameters:
        return -1
    return parameters[params[0]]


def dynamic_circuit(
    spec: QRNNSpec,
    angles: np.ndarray,
    setting: str,
    coupling: Coupling = "cnot",
    corrections: Sequence[Correction] = (),
    name: str = "qrnn_dynamic",
    ancillas: bool | None = None,
) -> QuantumCircuit:
    """The bound dynamic circuit for one input sequence: ``angles`` [T, P] are the precomputed
    θ̄_t. ``ancillas`` (default: only for weak coupling) adds one measured ancilla per data
    qubit; without them the data qubits are measured directly (projective coupling only)."""
    angles = np.asarray(angles, dtype=float)
    n, p = spec.n_qubits, spec.n_params
    if angles.ndim != 2 or angles.shape[1] != p or angles.shape[0] < 1:
        raise ValueError(f"angles must be [T >= 1, P={p}], got {angles.shape}")
    if len(setting) != n or set(setting) - set("XYZ"):
        raise ValueError(f"setting must be {n} characters over X, Y, Z, got {setting!r}")
    coupling = validate_coupling(coupling)
    if ancillas is None:
        ancillas = coupling != "cnot"
    if not ancillas and coupling != "cnot":
        raise ValueError("weak coupling needs ancillas (only a projective coupling measures data)")
    steps = angles.shape[0]
    by_step: dict[tuple[int, int], list[Correction]] = {}
    for c in corrections:
        if not 1 <= c.step < steps or not 0 <= c.angle < p or not 0 <= c.qubit < n:
            raise ValueError(f"correction {c} is out of range (steps {steps}, P {p}, n {n})")
        by_step.setdefault((c.step, c.angle), []).append(c)

    data = QuantumRegister(n, "q")
    mid = ClassicalRegister(steps * n, MID_REGISTER)
    anc = QuantumRegister(n, "anc") if ancillas else None
    registers = [data, anc, mid] if anc is not None else [data, mid]
    circuit = QuantumCircuit(*registers, name=name)
    step = step_circuit(spec)
    index = {param: k for k, param in enumerate(step.parameters)}
    for t in range(steps):
        for instruction in step.data:
            qubits = [data[step.find_bit(q).index] for q in instruction.qubits]
            k = _gate_angle_index(instruction, index)
            if k < 0:
                circuit.append(instruction.operation, qubits)
                continue
            gate = type(instruction.operation)  # RYGate, RZGate or RZZGate
            circuit.append(gate(float(angles[t, k])), qubits)
            for c in by_step.get((t, k), []):
                with circuit.if_test((mid[(t - 1) * n + c.qubit], 1)) as otherwise:
                    circuit.append(gate(c.delta_one), qubits)
                with otherwise:
                    circuit.append(gate(c.delta_zero), qubits)
        append_basis_change(circuit, data, setting)
        if anc is None:  # projective: measure the data qubits themselves
            for q in range(n):
                circuit.measure(data[q], mid[t * n + q])
            append_basis_change(circuit, data, setting, inverse=True)
            continue
        for q in range(n):
            if coupling == "cnot":
                circuit.cx(data[q], anc[q])
            else:
                alpha = float(coupling)
                circuit.ry(math.pi / 2 - alpha, anc[q])
                circuit.cry(2 * alpha, data[q], anc[q])
        append_basis_change(circuit, data, setting, inverse=True)
        for q in range(n):
            circuit.measure(anc[q], mid[t * n + q])
        for q in range(n):
            circuit.reset(anc[q])
    return circuit


def step_bits(counts: dict, steps: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(outcome signs [outcomes, T, n] with s = 1 − 2·bit, weights [outcomes]) from counts of
    register ``mid``."""
    keys = list(counts)
    bits = np.array(
        [[int(ch) for ch in key.replace(" ", "")[::-1][: steps * n]] for key in keys], dtype=np.int8
    )
    if bits.shape[1] != steps * n:
        raise ValueError(f"counts have {bits.shape[1]} bits, expected {steps * n}")
    weights = np.array([counts[k] for k in keys], dtype=float)
    return (1 - 2 * bits).reshape(len(keys), steps, n).astype(float), weights / weights.sum()
