"""Engine conformance against Qiskit: the checks the engine test suite runs on every engine
(tests/engines/), and their quick mode (``qrnn train --engine-check``).

Every check runs a batch of random angle sequences through an :class:`~.base.Engine` and through an
independent reference — ``qiskit.quantum_info.Statevector`` evolving the same Qiskit step circuit —
and returns the largest deviation:

* :func:`state_error`: states (engines whose state is a statevector);
* :func:`readout_error`: readouts after every step;
* :func:`gradient_error`: gradients of a random linear loss of the readouts against central finite
  differences of the *reference* (relative to the gradient's scale);
* :func:`autograd_error`: for engines with a hand-written backward, a recorded pass against plain
  autograd on the same engine (the reversible tape's own check).

Tolerances (:data:`TOLERANCES`) are per state precision: exact engines in complex128 ~1e-10,
complex64 and float32 (Aer through TorchConnector) ~1e-5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from .base import Engine


@dataclass(frozen=True)
class Tolerance:
    """Absolute tolerance on states and readouts, relative tolerance on gradients."""

    value: float
    gradient: float


TOLERANCES = {
    torch.complex128: Tolerance(1e-10, 1e-7),
    torch.complex64: Tolerance(1e-5, 1e-4),
    torch.float32: Tolerance(1e-5, 1e-4),
    torch.float64: Tolerance(1e-10, 1e-7),
}


def tolerance(engine: Engine) -> Tolerance:
    """The tolerance of ``engine``'s precision."""
    return TOLERANCES[getattr(engine, "dtype", torch.float32)]


def _real_dtype(engine: Engine) -> torch.dtype:
    dtype = getattr(engine, "dtype", torch.float32)
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def reference(
    circuit: QuantumCircuit, observables: Sequence[SparsePauliOp], angles: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """States [B, T, 2^n] and readouts [B, T, R] of angle sequences [B, T, P] by Statevector."""
    batch, steps, _ = angles.shape
    states = np.zeros((batch, steps, 1 << circuit.num_qubits), dtype=complex)
    values = np.zeros((batch, steps, len(observables)))
    for b in range(batch):
        state = Statevector.from_label("0" * circuit.num_qubits)
        for t in range(steps):
            state = state.evolve(circuit.assign_parameters(angles[b, t]))
            states[b, t] = state.data
            values[b, t] = [state.expectation_value(o).real for o in observables]
    return states, values


def run_engine(
    engine: Engine, angles: torch.Tensor, *, recorded: bool = False
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(states per step, readouts [B, T, R]) of ``engine`` on angles [B, T, P]: step by step with
    ``step`` and ``readouts``, or (``recorded``) with ``step_readouts`` inside ``recording``."""
    batch, steps, _ = angles.shape
    states, values = [], []
    if recorded:
        with engine.recording(batch, steps):
            state = engine.initial_state(batch)
            for t in range(steps):
                state, z = engine.step_readouts(state, angles[:, t])
                states.append(state)
                values.append(z)
    else:
        state = engine.initial_state(batch)
        for t in range(steps):
            state = engine.step(state, angles[:, t])
            states.append(state)
            values.append(engine.readouts(state))
    return states, torch.stack(values, dim=1)


def random_angles(engine: Engine, batch: int, steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-np.pi, np.pi, size=(batch, steps, engine.n_params))


def state_error(
    engine: Engine,
    circuit: QuantumCircuit,
    observables,
    angles: np.ndarray,
    *,
    recorded: bool = False,
) -> float:
    """Largest |ψ_engine − ψ_Statevector| over the batch and steps (statevector engines)."""
    if not engine.capabilities.statevector:
        raise ValueError("state_error needs an engine whose state is a statevector")
    states, _ = run_engine(
        engine, torch.tensor(angles, dtype=_real_dtype(engine)), recorded=recorded
    )
    expected, _ = reference(circuit, observables, angles)
    got = np.stack([s.detach().cpu().numpy() for s in states], axis=1)
    return float(np.abs(got - expected).max())


def readout_error(
    engine: Engine,
    circuit: QuantumCircuit,
    observables,
    angles: np.ndarray,
    *,
    recorded: bool = False,
) -> float:
    """Largest |z_engine − z_Statevector| over the batch, steps and readouts."""
    _, values = run_engine(
        engine, torch.tensor(angles, dtype=_real_dtype(engine)), recorded=recorded
    )
    _, expected = reference(circuit, observables, angles)
    return float(np.abs(values.detach().cpu().double().numpy() - expected).max())


def gradient_error(
    engine: Engine,
    circuit: QuantumCircuit,
    observables,
    angles: np.ndarray,
    weights: np.ndarray,
    *,
    eps: float = 1e-6,
    recorded: bool = True,
) -> float:
    """max |∂L/∂θ (engine) − central finite differences of L (reference)| / max(1, max |FD|) for
    L = Σ_{t,k} weights[t, k]·z_t,k summed over the batch."""
    a = torch.tensor(angles, dtype=_real_dtype(engine), requires_grad=True)
    _, values = run_engine(engine, a, recorded=recorded)
    w = torch.tensor(weights, dtype=values.dtype)
    (grad,) = torch.autograd.grad((values * w).sum(), a)

    def loss(x: np.ndarray) -> float:
        _, z = reference(circuit, observables, x)
        return float((z * weights).sum())

    fd = np.zeros_like(angles)
    for index in np.ndindex(*angles.shape):
        shifted = angles.copy()
        shifted[index] += eps
        up = loss(shifted)
        shifted[index] -= 2 * eps
        fd[index] = (up - loss(shifted)) / (2 * eps)
    scale = max(1.0, float(np.abs(fd).max()))
    return float(np.abs(grad.detach().cpu().double().numpy() - fd).max()) / scale


def autograd_error(engine, angles: np.ndarray, weights: np.ndarray) -> float:
    """Relative deviation of a recorded pass's gradient from plain autograd on the same engine
    (``step_autograd``/``readouts_autograd``); engines with a hand-written backward only."""
    real = _real_dtype(engine)
    a1 = torch.tensor(angles, dtype=real, requires_grad=True)
    _, values = run_engine(engine, a1, recorded=True)
    w = torch.tensor(weights, dtype=values.dtype)
    (fast,) = torch.autograd.grad((values * w).sum(), a1)
    a2 = torch.tensor(angles, dtype=real, requires_grad=True)
    state, plain = engine.initial_state(a2.shape[0]), []
    for t in range(a2.shape[1]):
        state = engine.step_autograd(state, a2[:, t])
        plain.append(engine.readouts_autograd(state))
    (slow,) = torch.autograd.grad((torch.stack(plain, 1) * w).sum(), a2)
    return float((fast - slow).abs().max()) / max(1.0, float(slow.abs().max()))


@dataclass(frozen=True)
class EngineCheck:
    """Largest deviations found (``None``: not applicable to the engine), and the tolerance."""

    kernel: str
    state_error: float | None
    readout_error: float
    gradient_error: float
    tolerance: Tolerance

    @property
    def ok(self) -> bool:
        value = max(self.readout_error, self.state_error or 0.0)
        return value <= self.tolerance.value and self.gradient_error <= self.tolerance.gradient

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        states = f"states {self.state_error:.1e}, " if self.state_error is not None else ""
        return (
            f"{self.kernel}: {states}readouts {self.readout_error:.1e} vs qiskit Statevector "
            f"(tolerance {self.tolerance.value:.0e}); gradients {self.gradient_error:.1e} vs "
            "finite differences of Statevector (relative tolerance "
            f"{self.tolerance.gradient:.0e}): "
            f"{verdict}"
        )


def engine_name(engine: Engine) -> str:
    kernel = getattr(engine, "kernel", None)
    return f"{kernel} kernels" if kernel else type(engine).__name__


def check_engine(
    engine: Engine,
    circuit: QuantumCircuit,
    observables: Sequence[SparsePauliOp],
    *,
    batch: int = 2,
    steps: int = 2,
    seed: int = 0,
) -> EngineCheck:
    """The quick mode of the conformance suite: one random batch through ``engine`` against
    Statevector (states where applicable, readouts, finite-difference gradients of one sample)."""
    angles = random_angles(engine, batch, steps, seed)
    rng = np.random.default_rng(seed + 1)
    weights = rng.normal(size=(steps, engine.n_readouts))
    states = (
        state_error(engine, circuit, observables, angles, recorded=True)
        if engine.capabilities.statevector
        else None
    )
    readouts = readout_error(engine, circuit, observables, angles, recorded=True)
    gradients = gradient_error(engine, circuit, observables, angles[:1], weights)
    return EngineCheck(engine_name(engine), states, readouts, gradients, tolerance(engine))
