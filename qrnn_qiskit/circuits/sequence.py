"""Sequence circuits built from the step circuit: T steps U(θ_T)…U(θ_1)|0…0⟩, each with its own
angles.

* **simulation form** (:func:`simulation_sequence_circuit`): after every step, one Aer
  ``SaveExpectationValue`` per readout observable. Aer's saves do not collapse the state, so one
  execution returns every z_t exactly: the paper's non-destructive mid-circuit readout, run by a
  simulator.
* **prefix form** (:func:`prefix_circuit`): the same T steps without saves. The readout after the
  last step of a prefix is z_T; training through an Estimator needs one prefix per time step (T =
  1..T_max).
"""

from __future__ import annotations

from dataclasses import dataclass

from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from .spec import QRNNSpec, readout_observables, step_circuit


@dataclass(frozen=True)
class SequenceCircuit:
    """A T-step circuit and the names of its parts.

    ``angles[t]`` is the ``ParameterVector`` of step t (0-based, P entries in step-circuit order);
    ``labels[t][j]`` is the Aer result label of readout j after step t (empty lists for prefix
    circuits).
    """

    circuit: QuantumCircuit
    angles: tuple[ParameterVector, ...]
    labels: tuple[tuple[str, ...], ...]

    @property
    def steps(self) -> int:
        return len(self.angles)

    def flat_parameters(self) -> list:
        """All angle parameters, step by step (θ_1 first), each step in step-circuit order."""
        return [p for vector in self.angles for p in vector]


def _steps(spec: QRNNSpec, steps: int, save_readouts: bool) -> SequenceCircuit:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    step = step_circuit(spec)
    step_params = list(step.parameters)  # ParameterVector order: θ[0], θ[1], ...
    qc = QuantumCircuit(spec.n_qubits, name=f"qrnn_{steps}_steps")
    observables = readout_observables(spec) if save_readouts else []
    if save_readouts:
        from qiskit_aer.library import (
            SaveExpectationValue,
        )  # Aer instruction; Aer is a core dependency
    qubits = list(range(spec.n_qubits))
    vectors = []
    labels = []
    width = len(str(steps - 1))
    for t in range(steps):
        # zero-padded names keep Qiskit's alphabetical parameter order equal to time order
        vector = ParameterVector(f"θ{t:0{width}d}", spec.n_params)
        vectors.append(vector)
        qc.compose(step.assign_parameters(dict(zip(step_params, vector))), qubits, inplace=True)
        step_labels = []
        for j, op in enumerate(observables):
            label = f"z{t}_{j}"
            qc.append(SaveExpectationValue(op, label=label), qubits)
            step_labels.append(label)
        labels.append(tuple(step_labels))
    return SequenceCircuit(qc, tuple(vectors), tuple(labels))


def simulation_sequence_circuit(spec: QRNNSpec, steps: int) -> SequenceCircuit:
    """T steps with an Aer ``save_expectation_value`` of every readout observable after each
    step."""
    return _steps(spec, steps, save_readouts=True)


def prefix_circuit(spec: QRNNSpec, steps: int) -> SequenceCircuit:
    """U(θ_T)…U(θ_1) without saves or measurements (for Estimator-based readouts of z_T)."""
    return _steps(spec, steps, save_readouts=False)
