"""Calibration numbers of the physical qubits an evaluation would pin, and the noise channels they
imply, for noise models outside Aer (e.g. training-time noise on the torch engine).

``device_calibration(backend, spec=…, steps=…)`` places the replay prefix of ``steps`` steps exactly
as ``aer-noisy:<backend>`` evaluations do (``layout.choose_layout`` on the widest template,
optimization level 3, ESP layout) and reads, for every data qubit (logical order), T1, T2, the sx /
x errors and durations, the readout error and the durations of ``measure`` (and ``measure_2`` where
the target lists it) and ``reset``; for every pair the transpiled circuit couples, the two-qubit
gate's error and duration. ``layout=[…]`` pins physical qubits directly instead.

The channels are plain numpy (complex128 Kraus operators, no Aer objects), checked against
``qiskit_aer.noise`` superoperators in tests/test_calibration.py:

* ``thermal_relaxation_kraus(t1, t2, t)``: amplitude damping (1 − e^{−t/T1}) composed with the pure
  dephasing that makes the coherence decay e^{−t/T2}; T2 > 2·T1 is unphysical and is clipped to
  2·T1 with a warning (what ``NoiseModel.from_backend`` does); relaxation towards |0⟩ (zero
  excited-state population, ``from_backend``'s default temperature);
* ``depolarizing_kraus(p, n)``: ρ → (1 − p)·ρ + p·I/2ⁿ (qiskit-aer's ``depolarizing_error(p, n)``);
  ``depolarizing_parameter(error, n)`` converts an average gate error r (the targets' numbers) to
  p = r·2ⁿ/(2ⁿ − 1);
* ``readout_confusion(p01, p10)``: the 2×2 matrix M[prepared][measured], rows summing to 1 (the
  layout of ``qiskit_aer.noise.ReadoutError``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qiskit.transpiler import Target

from ..errors import QRNNError

TWO_QUBIT_GATES = ("cz", "ecr", "cx")
ONE_QUBIT_GATES = ("sx", "x")


@dataclass(frozen=True)
class QubitCalibration:
    """One data qubit (``logical`` index, ``physical`` index on the device): seconds and
    probabilities; None where the target lists nothing."""

    logical: int
    physical: int
    t1: float | None
    t2: float | None
    sx_error: float | None
    x_error: float | None
    sx_duration: float | None
    x_duration: float | None
    measure_error: float | None  # probability that the read bit is flipped (symmetric)
    measure_duration: float | None
    measure_2_duration: float | None  # MidCircuitMeasure, where the target lists it
    reset_duration: float | None


@dataclass(frozen=True)
class PairCalibration:
    """A two-qubit gate on a pair of physical qubits the placed circuit uses."""

    physical: tuple[int, int]
    gate: str
    error: float | None
    duration: float | None


@dataclass(frozen=True)
class DeviceCalibration:
    """Per-data-qubit and per-pair numbers of a fake backend at a pinned layout."""

    backend: str
    qubits: tuple[QubitCalibration, ...]
    pairs: tuple[PairCalibration, ...]
    two_qubit_gate: str | None
    dt: float | None
    supports_dynamic: bool  # measure, reset and if_else all in the target

    @property
    def layout(self) -> list[int]:
        return [q.physical for q in self.qubits]

    def measure_reset_window(self, *, measure_2: bool = False) -> float:
        """Seconds the data qubits idle per step of a dynamic circuit while the measured qubits
        are measured and reset (in parallel: the longest measure + reset among the data qubits).
        ``measure_2`` uses the MidCircuitMeasure duration where the target lists it."""
        if not self.supports_dynamic:
            raise QRNNError(
                f"{self.backend} has no mid-circuit measure + reset + if_else (dynamic circuits); "
                "it has no measure+reset window"
            )
        windows = []
        for q in self.qubits:
            measure = q.measure_2_duration if measure_2 and q.measure_2_duration else None
            measure = measure if measure is not None else q.measure_duration
            if measure is None or q.reset_duration is None:
                raise QRNNError(
                    f"{self.backend} lists no measure/reset duration for qubit {q.physical}"
                )
            windows.append(measure + q.reset_duration)
        return max(windows)


def _props(target: Target, name: str, qargs: tuple[int, ...]):
    if name not in target.operation_names:
        return None
    table = target[name]
    if table is None:
        return None
    for key in (qargs, tuple(reversed(qargs))):
        if key in table and table[key] is not None:
            return table[key]
    return None


def _error(target: Target, name: str, qargs: tuple[int, ...]) -> float | None:
    props = _props(target, name, qargs)
    return None if props is None or props.error is None else float(props.error)


def _duration(target: Target, name: str, qargs: tuple[int, ...]) -> float | None:
    props = _props(target, name, qargs)
    return None if props is None or props.duration is None else float(props.duration)


def two_qubit_gate(target: Target) -> str | None:
    """The native two-qubit gate of ``target`` (cz on Heron, ecr on Eagle), None if it has none."""
    return next((g for g in TWO_QUBIT_GATES if g in target.operation_names), None)


def supports_dynamic(target: Target) -> bool:
    return all(op in target.operation_names for op in ("measure", "reset", "if_else"))


def pinned_layout(
    backend: str,
    spec,
    steps: int,
    *,
    optimization_level: int = 3,
    seed: int = 0,
    method: str = "esp",
) -> tuple[list[int], list[tuple[int, int]]]:
    """(physical qubit of every logical qubit, physical pairs of the two-qubit gates) of the replay
    prefix of ``steps`` steps placed as an ``aer-noisy:<backend>`` evaluation places it (the widest
    template, ``layout.choose_layout``)."""
    from qiskit.transpiler import generate_preset_pass_manager

    from ..circuits.replay import measured_prefix, measurement_settings
    from .layout import choose_layout, operation_counts
    from .targets import fake_backend

    device = fake_backend(backend)
    settings, _ = measurement_settings(spec)
    widest = max(
        (measured_prefix(spec, steps, s) for s in settings), key=lambda c: (c.num_qubits, c.size())
    )
    layout = choose_layout(
        widest,
        device.target,
        optimization_level=optimization_level,
        seed=seed,
        method=method,
        device=device.name,
    )
    placed = generate_preset_pass_manager(
        optimization_level,
        target=device.target,
        seed_transpiler=seed,
        initial_layout=layout.initial,
    ).run(widest)
    pairs = sorted(
        {tuple(sorted(qargs)) for (_, qargs) in operation_counts(placed) if len(qargs) == 2}
    )
    return list(layout.initial), pairs


def device_calibration(
    backend: str,
    *,
    spec=None,
    steps: int = 1,
    layout: Sequence[int] | None = None,
    optimization_level: int = 3,
    seed: int = 0,
    method: str = "esp",
) -> DeviceCalibration:
    """Calibration of ``backend`` (a fake backend name) at the layout an evaluation of ``spec``
    over ``steps`` steps would pin, or at the physical qubits ``layout`` (pairs: the coupled pairs
    among them)."""
    from .layout import coupling_graph
    from .targets import fake_backend

    device = fake_backend(backend)
    target = device.target
    if layout is None:
        if spec is None:
            raise QRNNError("device_calibration needs a spec (to place its circuits) or a layout")
        physical, pairs = pinned_layout(
            backend, spec, steps, optimization_level=optimization_level, seed=seed, method=method
        )
    else:
        physical = [int(q) for q in layout]
        bad = [q for q in physical if not 0 <= q < target.num_qubits]
        if bad or len(set(physical)) != len(physical):
            raise QRNNError(
                f"layout {physical}: needs distinct qubits of {device.name} "
                f"(0..{target.num_qubits - 1})"
            )
        graph = coupling_graph(target)
        pairs = sorted((a, b) for a in physical for b in physical if a < b and graph.has_edge(a, b))
    properties = target.qubit_properties or [None] * target.num_qubits
    qubits = []
    for logical, p in enumerate(physical):
        props = properties[p]
        qubits.append(
            QubitCalibration(
                logical=logical,
                physical=p,
                t1=None if props is None or props.t1 is None else float(props.t1),
                t2=None if props is None or props.t2 is None else float(props.t2),
                sx_error=_error(target, "sx", (p,)),
                x_error=_error(target, "x", (p,)),
                sx_duration=_duration(target, "sx", (p,)),
                x_duration=_duration(target, "x", (p,)),
                measure_error=_error(target, "measure", (p,)),
                measure_duration=_duration(target, "measure", (p,)),
                measure_2_duration=_duration(target, "measure_2", (p,)),
                reset_duration=_duration(target, "reset", (p,)),
            )
        )
    gate = two_qubit_gate(target)
    pair_calibrations = tuple(
        PairCalibration(
            pair,
            gate or "",
            _error(target, gate, pair) if gate else None,
            _duration(target, gate, pair) if gate else None,
        )
        for pair in pairs
    )
    return DeviceCalibration(
        backend=device.name,
        qubits=tuple(qubits),
        pairs=pair_calibrations,
        two_qubit_gate=gate,
        dt=target.dt,
        supports_dynamic=supports_dynamic(target),
    )


# --- channels -------------------------------------------------------------------------------------

_PAULI = {
    "I": np.eye(2, dtype=np.complex128),
    "X": np.array([[0, 1], [1, 0]], dtype=np.complex128),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=np.complex128),
    "Z": np.array([[1, 0], [0, -1]], dtype=np.complex128),
}


def thermal_relaxation_kraus(t1: float, t2: float, t: float) -> list[np.ndarray]:
    """Kraus operators (2×2 complex128) of relaxation towards |0⟩ over ``t`` seconds: populations
    relax with T1 (γ = 1 − e^{−t/T1}), coherences decay as e^{−t/T2}. T2 > 2·T1 is clipped to 2·T1
    with a warning. ``math.inf`` for T1 or T2 means no decay of that kind."""
    if t < 0 or t1 <= 0 or t2 <= 0:
        raise QRNNError(f"thermal relaxation needs t ≥ 0 and T1, T2 > 0 (got t={t}, {t1}, {t2})")
    if t2 > 2 * t1:
        warnings.warn(
            f"T2 = {t2:g} s > 2·T1 = {2 * t1:g} s is unphysical; clipped to 2·T1", stacklevel=2
        )
        t2 = 2 * t1
    gamma = 1.0 - math.exp(-t / t1)  # amplitude damping |1⟩ → |0⟩
    coherence = math.exp(-t / t2)  # |ρ01| factor; = sqrt(1 − γ)·sqrt(1 − λ) with pure dephasing λ
    remaining = 1.0 - gamma  # population left in |1⟩
    dephasing = remaining - coherence**2  # (1 − γ)·λ ≥ 0 because T2 ≤ 2·T1
    return [
        np.array([[1.0, 0.0], [0.0, coherence]], dtype=np.complex128),
        np.array([[0.0, math.sqrt(gamma)], [0.0, 0.0]], dtype=np.complex128),
        np.array([[0.0, 0.0], [0.0, math.sqrt(max(dephasing, 0.0))]], dtype=np.complex128),
    ]


def depolarizing_parameter(error: float, num_qubits: int = 1) -> float:
    """The depolarizing p whose channel has average gate error ``error``: p = r·d/(d − 1),
    d = 2ⁿ."""
    d = 2**num_qubits
    return error * d / (d - 1)


def depolarizing_kraus(p: float, num_qubits: int = 1) -> list[np.ndarray]:
    """Kraus operators (2ⁿ×2ⁿ complex128) of ρ → (1 − p)·ρ + p·I/2ⁿ, as
    ``qiskit_aer.noise.depolarizing_error(p, n)``; 0 ≤ p ≤ 4ⁿ/(4ⁿ − 1). Qubit 0 is the rightmost
    tensor factor (Qiskit order; the channel is symmetric anyway)."""
    import itertools

    if num_qubits not in (1, 2):
        raise QRNNError(f"depolarizing_kraus supports 1 or 2 qubits, got {num_qubits}")
    n_paulis = 4**num_qubits
    if not 0.0 <= p <= n_paulis / (n_paulis - 1):
        raise QRNNError(f"depolarizing parameter must be in [0, {n_paulis / (n_paulis - 1):g}]")
    out = []
    for labels in itertools.product("IXYZ", repeat=num_qubits):
        weight = p / n_paulis + (1.0 - p if set(labels) == {"I"} else 0.0)
        if weight <= 0.0:
            continue
        matrix = np.array([[1.0]], dtype=np.complex128)
        for label in labels:
            matrix = np.kron(matrix, _PAULI[label])
        out.append(math.sqrt(weight) * matrix)
    return out


def readout_confusion(p01: float, p10: float | None = None) -> np.ndarray:
    """M[prepared][measured]: ``p01`` = P(read 1 | prepared 0), ``p10`` = P(read 0 | prepared 1)
    (default: symmetric, = p01). Rows sum to 1; the layout of ``ReadoutError.probabilities``."""
    p10 = p01 if p10 is None else p10
    for p in (p01, p10):
        if not 0.0 <= p <= 1.0:
            raise QRNNError(f"readout flip probabilities must be in [0, 1], got {p}")
    return np.array([[1.0 - p01, p01], [p10, 1.0 - p10]], dtype=np.float64)


__all__ = [
    "DeviceCalibration",
    "PairCalibration",
    "QubitCalibration",
    "depolarizing_kraus",
    "depolarizing_parameter",
    "device_calibration",
    "pinned_layout",
    "readout_confusion",
    "supports_dynamic",
    "thermal_relaxation_kraus",
    "two_qubit_gate",
]
