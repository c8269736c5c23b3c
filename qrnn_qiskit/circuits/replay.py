"""Replay form of a QRNN sequence: prefix circuits U(θ_t)…U(θ_1)|0⟩ measured in the readout bases.

Expectation readouts are not observable on one hardware copy, so the replay protocol re-prepares the
state for every step: the prefix of ``t`` steps is run with a basis change and measurement for each
*measurement setting* and ⟨P⟩ is estimated from the parities of the measured bits. ``xyz`` readouts
need 3 settings (all qubits in X, all in Y, all in Z), ``z`` and ``zz`` need 1, explicit Pauli lists
are grouped greedily into qubit-wise commuting settings.

A setting is a string of length n over ``XYZ`` in *qubit order* (character q is the basis of qubit
q, unlike Pauli labels); qubit q is measured into clbit q of the register ``meas``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import ParameterVector

from .spec import QRNNSpec, readout_labels, step_circuit

MEAS_REGISTER = "meas"


def label_support(label: str) -> dict[int, str]:
    """{qubit: Pauli} of a Pauli label in Qiskit order (rightmost character = qubit 0), identities
    dropped."""
    n = len(label)
    return {n - 1 - i: p for i, p in enumerate(label) if p != "I"}


def measurement_settings(spec: QRNNSpec) -> tuple[list[str], list[int]]:
    """(settings, setting index of every readout): the fewest greedy qubit-wise-commuting groups.

    For ``xyz`` this gives ``["XXX…", "YYY…", "ZZZ…"]``; for ``z`` and ``zz`` the single setting
    ``"ZZZ…"``. Qubits that no readout of a setting needs are measured in Z.
    """
    n = spec.n_qubits
    partial: list[dict[int, str]] = []
    assignment: list[int] = []
    for label in readout_labels(spec):
        support = label_support(label)
        for index, setting in enumerate(partial):
            if all(setting.get(q, p) == p for q, p in support.items()):
                setting.update(support)
                assignment.append(index)
                break
        else:
            partial.append(dict(support))
            assignment.append(len(partial) - 1)
    settings = ["".join(setting.get(q, "Z") for q in range(n)) for setting in partial]
    return settings, assignment


def append_basis_change(
    circuit: QuantumCircuit, qubits: Sequence, bases: str, inverse: bool = False
) -> None:
    """Rotate each qubit's ``bases[i]`` eigenbasis onto Z (or back with ``inverse``): X → H, Y →
    S†·H."""
    for qubit, basis in zip(qubits, bases):
        if basis == "X":
            circuit.h(qubit)
        elif basis == "Y":
            if inverse:
                circuit.h(qubit)
                circuit.s(qubit)
            else:
                circuit.sdg(qubit)
                circuit.h(qubit)
        elif basis != "Z":
            raise ValueError(f"measurement basis must be X, Y or Z, got {basis!r}")


def measured_prefix(spec: QRNNSpec, steps: int, setting: str, name: str = "θ") -> QuantumCircuit:
    """U(θ_steps)…U(θ_1)|0⟩, then measure every qubit in ``setting``'s bases into register ``meas``.

    Parameters: one ``ParameterVector`` of length ``steps·P``; entries ``[(t-1)·P, t·P)`` are step
    t's angles in ``step_circuit`` order, so ``circuit.assign_parameters(np.concatenate([θ_1, …,
    θ_steps]))`` binds it.
    """
    if steps < 1:
        raise ValueError(f"a prefix needs at least one step, got {steps}")
    if len(setting) != spec.n_qubits:
        raise ValueError(
            f"setting {setting!r} does not have one basis per qubit (n={spec.n_qubits})"
        )
    n, p = spec.n_qubits, spec.n_params
    theta = ParameterVector(name, steps * p)
    step = step_circuit(spec)
    qreg, creg = QuantumRegister(n, "q"), ClassicalRegister(n, MEAS_REGISTER)
    circuit = QuantumCircuit(qreg, creg, name=f"replay_t{steps}_{setting}")
    for t in range(steps):
        bound = step.assign_parameters(dict(zip(step.parameters, theta[t * p : (t + 1) * p])))
        circuit.compose(bound, qubits=qreg, inplace=True)
    append_basis_change(circuit, qreg, setting)
    circuit.measure(qreg, creg)
    return circuit


def parities(counts: Mapping[str, float], qubit_sets: Sequence[Sequence[int]]) -> np.ndarray:
    """Weighted mean of (-1)^(parity of the bits in each set) over a counts (or probability)
    dictionary.

    Keys are bitstrings with clbit 0 rightmost (Qiskit's convention); values are counts or
    probabilities.
    """
    if not counts:
        raise ValueError("empty counts: no shots were returned")
    keys = list(counts)
    width = len(keys[0])
    bits = np.array(
        [[int(c) for c in key[::-1]] for key in keys], dtype=np.int8
    )  # [outcomes, clbit]
    if bits.shape[1] != width or any(len(k) != width for k in keys):
        raise ValueError("counts keys must be bitstrings of one width")
    weights = np.array([counts[k] for k in keys], dtype=float)
    weights = weights / weights.sum()
    out = np.empty(len(qubit_sets))
    for i, qubits in enumerate(qubit_sets):
        parity = (
            bits[:, list(qubits)].sum(axis=1) % 2
            if len(qubits)
            else np.zeros(len(keys), dtype=np.int8)
        )
        out[i] = float(weights @ (1.0 - 2.0 * parity))
    return out


def readouts_from_counts(
    spec: QRNNSpec, counts_by_setting: Sequence[Mapping[str, float]]
) -> np.ndarray:
    """Readout vector [R] estimated from one counts dictionary per measurement setting (register
    ``meas``)."""
    settings, assignment = measurement_settings(spec)
    if len(counts_by_setting) != len(settings):
        raise ValueError(
            f"expected counts for {len(settings)} settings, got {len(counts_by_setting)}"
        )
    labels = readout_labels(spec)
    out = np.empty(len(labels))
    for s, counts in enumerate(counts_by_setting):
        members = [r for r, a in enumerate(assignment) if a == s]
        values = parities(counts, [sorted(label_support(labels[r])) for r in members])
        out[members] = values
    return out
