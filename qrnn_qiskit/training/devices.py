"""The QRNN's quantum half on a GPU: ``--device cuda`` runs the statevector engine's torch kernels
on CUDA while the classical controller (and every parameter) stays on the CPU.

Per time step only the angles [B, P] go to the GPU and the readouts [B, R] come back; the 2^n·B
amplitudes, the reversible tape and the backward through U(θ)† stay on the GPU, which is where the
work is at n ≥ 12. Keeping the parameters on the CPU keeps the optimiser, checkpoints, gradient
all-reduce (gloo) and every task unchanged.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from ..backends import Engine
from ..errors import QRNNError


class DeviceEngine:
    """An :class:`~qrnn_qiskit.backends.base.Engine` whose states live on ``engine.device`` while
    its callers' tensors live on ``host``: angles (and a state handed in from elsewhere, such as a
    checkpoint's carried state) move to the engine, readouts move back. Moves are differentiable,
    so autograd runs through them."""

    def __init__(self, engine: Engine, host: str | torch.device = "cpu") -> None:
        self.engine = engine
        self.device = torch.device(engine.device)  # type: ignore[attr-defined]
        self.host = torch.device(host)
        self.n_qubits = engine.n_qubits
        self.n_params = engine.n_params
        self.n_readouts = engine.n_readouts
        self.capabilities = engine.capabilities

    def __repr__(self) -> str:
        return f"DeviceEngine({self.engine!r}, host={self.host})"

    def initial_state(self, batch: int) -> torch.Tensor:
        return self.engine.initial_state(batch)

    def step(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        return self.engine.step(state.to(self.device), angles.to(self.device))

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        return self.engine.readouts(state.to(self.device)).to(self.host)

    def step_readouts(
        self, state: torch.Tensor, angles: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        psi, z = self.engine.step_readouts(state.to(self.device), angles.to(self.device))
        return psi, z.to(self.host)

    def recording(self, batch: int, steps: int) -> AbstractContextManager[None]:
        return self.engine.recording(batch, steps)


def cuda_engine(spec, dtype: torch.dtype) -> DeviceEngine:
    """The statevector engine of ``spec`` on the current CUDA device (torch kernels), bridged to
    a CPU controller; a one-line error without a GPU."""
    from ..backends import StatevectorEngine
    from ..circuits import readout_observables, step_circuit

    if not torch.cuda.is_available():
        raise QRNNError(
            "--device cuda: this machine has no CUDA device (torch sees none; a CUDA build of "
            "torch and a driver are needed)"
        )
    engine = StatevectorEngine(
        step_circuit(spec), readout_observables(spec), dtype=dtype, device="cuda", kernel="torch"
    )
    return DeviceEngine(engine)
