"""``BroadcastParamShiftGradient``: qiskit-machine-learning's parameter-shift rule, one broadcast
pub per circuit instead of one Aer run per sample × observable × shifted angle."""

from __future__ import annotations

from typing import Any

import numpy as np

from .requirements import require_qml

# rows × parameters per broadcast pub in the gradient (bounds the host memory of one Aer run to ~32
# MB)
_MAX_PUB_VALUES = 1 << 22

try:  # qiskit-machine-learning is a core dependency; require_qml() explains a missing or old one
    from qiskit_machine_learning.gradients import BaseEstimatorGradient as _GradientBase
except ImportError:  # pragma: no cover
    _GradientBase = object  # type: ignore[assignment,misc]

# gates whose parameter enters as a Pauli rotation exp(-iθG/2): the two-term shift rule is exact
_SHIFT_RULE_GATES = [
    "x",
    "y",
    "z",
    "h",
    "rx",
    "ry",
    "rz",
    "p",
    "cx",
    "cy",
    "cz",
    "ryy",
    "rxx",
    "rzz",
    "rzx",
]


def _observable_key(op) -> Any:
    from qiskit.quantum_info import SparsePauliOp

    if isinstance(op, SparsePauliOp):
        return ("spo", tuple(op.paulis.to_labels()), tuple(np.round(op.coeffs, 15).tolist()))
    return ("id", id(op))


class BroadcastParamShiftGradient(_GradientBase):
    """Exact parameter-shift gradients for ``EstimatorQNN``, one broadcast pub per circuit.

    ∂⟨O⟩/∂θ_k = (⟨O⟩(θ + π/2·e_k) − ⟨O⟩(θ − π/2·e_k)) / 2 for Pauli-rotation gates, exactly as
    qiskit-machine-learning's ``ParamShiftEstimatorGradient``; but where that sends one pub (one Aer
    run) per sample × observable × shifted angle, this de-duplicates the shifted parameter sets
    across observables and sends them as one pub (observables [K, 1] × parameter sets [U]), so one
    Aer run computes every observable of every shifted circuit.
    """

    def __init__(self, estimator, options=None) -> None:
        """Gradients of the expectation values of ``estimator`` (with its run options)."""
        require_qml()
        super().__init__(estimator, options)

    def _run(self, circuits, observables, parameter_values, parameters, **options):
        from qiskit.providers import Options
        from qiskit_machine_learning.gradients import EstimatorGradientResult

        g_circuits, g_values, g_parameters = self._preprocess(
            circuits, parameter_values, parameters, _SHIFT_RULE_GATES
        )
        groups: dict[int, list[int]] = {}
        for i, circuit in enumerate(g_circuits):
            groups.setdefault(id(circuit), []).append(i)
        gradients: list[np.ndarray | None] = [None] * len(g_circuits)
        for members in groups.values():
            circuit = g_circuits[members[0]]
            index = {p: k for k, p in enumerate(circuit.parameters)}
            rows: list[np.ndarray] = []
            n_rows = 0
            row_start: dict[tuple, int] = {}
            obs_index: dict[Any, int] = {}
            obs_list = []
            placement = []  # per member: (first row, number of shifted angles, observable index)
            for i in members:
                base_values = np.asarray(g_values[i], dtype=np.float64)
                shifted = [index[p] for p in g_parameters[i]]
                key = (base_values.tobytes(), tuple(shifted))
                if key not in row_start:
                    row_start[key] = n_rows
                    offsets = np.zeros((len(shifted), len(base_values)))
                    offsets[np.arange(len(shifted)), shifted] = np.pi / 2
                    rows.append(np.concatenate([base_values + offsets, base_values - offsets]))
                    n_rows += 2 * len(shifted)
                okey = _observable_key(observables[i])
                if okey not in obs_index:
                    obs_index[okey] = len(obs_list)
                    obs_list.append(observables[i])
                placement.append((row_start[key], len(shifted), obs_index[okey]))
            if n_rows == 0:
                for i in members:
                    gradients[i] = np.zeros(0)
                continue
            values = np.concatenate(rows)
            chunk = max(1, _MAX_PUB_VALUES // max(1, circuit.num_parameters))
            column = [[op] for op in obs_list]
            pubs = [(circuit, column, values[lo : lo + chunk]) for lo in range(0, n_rows, chunk)]
            results = self._estimator.run(pubs).result()
            evs = np.concatenate(
                [
                    np.asarray(r.data.evs, dtype=np.float64).reshape(len(obs_list), -1)
                    for r in results
                ],
                axis=1,
            )
            for i, (start, m, k) in zip(members, placement):
                gradients[i] = (evs[k, start : start + m] - evs[k, start + m : start + 2 * m]) / 2
        metadata = [{"parameters": p} for p in g_parameters]
        result = EstimatorGradientResult(
            gradients=gradients, metadata=metadata, options=Options(**options)
        )
        return self._postprocess(result, circuits, parameter_values, parameters)
