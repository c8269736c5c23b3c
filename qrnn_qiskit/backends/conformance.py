"""A quick conformance check of a statevector engine against Qiskit (used by ``qrnn train
--engine-check``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from qiskit.quantum_info import Statevector

from .statevector import StatevectorEngine

# absolute tolerances on states/readouts, relative on gradients (the conformance suite's levels)
TOLERANCES = {torch.complex64: (1e-5, 1e-4), torch.complex128: (1e-10, 1e-9)}


@dataclass(frozen=True)
class EngineCheck:
    """Largest deviations found, and the tolerances they were held to."""

    state_error: float
    readout_error: float
    gradient_error: float
    value_tolerance: float
    gradient_tolerance: float
    kernel: str = "torch"

    @property
    def ok(self) -> bool:
        return (
            self.state_error <= self.value_tolerance
            and self.readout_error <= self.value_tolerance
            and self.gradient_error <= self.gradient_tolerance
        )

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"{self.kernel} kernels: states {self.state_error:.1e}, readouts "
            f"{self.readout_error:.1e} vs qiskit Statevector "
            f"(tolerance {self.value_tolerance:.0e}); reversible gradients "
            f"{self.gradient_error:.1e} vs plain "
            f"autograd (relative tolerance {self.gradient_tolerance:.0e}): {verdict}"
        )


def check_engine(
    engine: StatevectorEngine, *, batch: int = 3, steps: int = 3, seed: int = 0
) -> EngineCheck:
    """Run one random batch of ``steps`` steps through ``engine`` and compare it with Qiskit and
    autograd."""
    gen = torch.Generator().manual_seed(seed)
    angles = (
        torch.rand(batch, steps, engine.n_params, generator=gen, dtype=torch.float64) * 2 - 1
    ) * np.pi
    angles = angles.to(engine.real_dtype).to(engine.device)
    weights = torch.randn(steps, engine.n_readouts, generator=gen, dtype=torch.float64)
    weights = weights.to(engine.real_dtype).to(engine.device)

    fast = angles.clone().requires_grad_(True)
    values, state = engine.sequence(fast)
    (values * weights).sum().backward()

    plain = angles.clone().requires_grad_(True)
    plain_state, plain_values = engine.initial_state(batch), []
    for t in range(steps):
        plain_state = engine.step_autograd(plain_state, plain[:, t])
        plain_values.append(engine.readouts_autograd(plain_state))
    (torch.stack(plain_values, 1) * weights).sum().backward()

    state_error = readout_error = 0.0
    bound = [
        engine.circuit.assign_parameters(a)
        for a in angles.detach().cpu().double().numpy().reshape(-1, engine.n_params)
    ]
    for b in range(batch):
        reference = Statevector.from_label("0" * engine.n_qubits)
        for t in range(steps):
            reference = reference.evolve(bound[b * steps + t])
        expected = np.array([reference.expectation_value(o).real for o in engine.observables])
        state_error = max(
            state_error, float(np.abs(state[b].detach().cpu().numpy() - reference.data).max())
        )
        readout_error = max(
            readout_error, float(np.abs(values[b, -1].detach().cpu().numpy() - expected).max())
        )
    scale = max(1.0, float(plain.grad.abs().max()))
    gradient_error = float((fast.grad - plain.grad).abs().max()) / scale
    value_tol, grad_tol = TOLERANCES[engine.dtype]
    return EngineCheck(
        state_error, readout_error, gradient_error, value_tol, grad_tol, engine.kernel
    )
