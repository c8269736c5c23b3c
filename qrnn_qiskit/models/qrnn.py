"""The QRNN: a classical controller writes every angle of a quantum step circuit, read out by
Paulis.

``QRNNCell`` is one step — θ_t = controller([x_t; z_{t-1}]), (ψ_t, z_t) =
engine.step_readouts(ψ_{t-1}, θ_t) — over any :class:`~qrnn_qiskit.backends.base.Engine`;
``QRNNCore`` runs it over a sequence inside the engine's ``recording`` scope. The seq2seq encoder
and decoder and the hardware protocols use the cell, so the step is written once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..backends import Engine, StatevectorEngine
from ..circuits import QRNNSpec, readout_observables, step_circuit
from ..options import option
from .controller import Controller, ControllerConfig

QRNNState = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class QRNNConfig:
    """Everything that shapes a QRNN: the circuit spec, the controller and readout feedback."""

    spec: QRNNSpec = option(default_factory=lambda: QRNNSpec(8))
    controller: ControllerConfig = option(default_factory=ControllerConfig)
    feedback: bool = option(True, "feed the previous readouts z_{t-1} to the controller")

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "controller": asdict(self.controller),
            "feedback": self.feedback,
        }

    @classmethod
    def from_dict(cls, d: dict) -> QRNNConfig:
        return cls(
            QRNNSpec.from_dict(d["spec"]), ControllerConfig(**d["controller"]), bool(d["feedback"])
        )


def default_engine(spec: QRNNSpec, dtype: torch.dtype = torch.complex64) -> StatevectorEngine:
    """The statevector engine compiled from the spec's Qiskit step circuit and readouts."""
    return StatevectorEngine(step_circuit(spec), readout_observables(spec), dtype=dtype)


class QRNNCell(nn.Module):
    """One QRNN step over an injected :class:`~qrnn_qiskit.backends.base.Engine` (default: the
    statevector engine of the spec in ``dtype``). The state is (ψ, z): the engine's state and the
    readouts of the last step, z in the features' dtype."""

    def __init__(
        self,
        input_size: int,
        config: QRNNConfig,
        engine: Engine | None = None,
        dtype: torch.dtype = torch.complex64,
    ) -> None:
        super().__init__()
        self.config = config
        self.input_size = input_size
        spec = config.spec
        self.engine: Engine = engine if engine is not None else default_engine(spec, dtype)
        if self.engine.n_params != spec.n_params:
            raise ValueError(
                f"engine has {self.engine.n_params} parameters, the spec needs {spec.n_params}"
            )
        self.n_readouts = self.engine.n_readouts
        in_features = input_size + (self.n_readouts if config.feedback else 0)
        self.controller = Controller(in_features, spec.n_params, config.controller)

    @property
    def output_size(self) -> int:
        return self.n_readouts

    def initial_state(self, batch: int) -> QRNNState:
        """(ψ_0 = |0…0⟩, z_0 = readouts of ψ_0)."""
        psi = self.engine.initial_state(batch)
        return psi, self.engine.readouts(psi)

    def angles(self, x_t: torch.Tensor, z_prev: torch.Tensor) -> torch.Tensor:
        """Circuit angles θ_t [B, P] from step features x_t [B, F] and previous readouts z_{t-1}
        [B, R]: the host-side half of a step (hardware protocols call it between executions)."""
        if not self.config.feedback:
            return self.controller(x_t)
        return self.controller(torch.cat([x_t, z_prev.to(x_t.dtype)], dim=-1))

    def step(self, x_t: torch.Tensor, state: QRNNState) -> tuple[torch.Tensor, QRNNState]:
        """(z_t [B, R], (ψ_t, z_t)) of one step from features x_t [B, F] and state (ψ_{t-1},
        z_{t-1})."""
        psi, z = state
        psi, z = self.engine.step_readouts(psi, self.angles(x_t, z))
        z = z.to(x_t.dtype)
        return z, (psi, z)


class QRNNCore(QRNNCell):
    """Recurrent core: ψ_t = U(θ_t) ψ_{t-1}, θ_t = controller([x_t; z_{t-1}]), z_t = readouts(ψ_t).

    ``forward(x)`` maps features [B, T, F] to readouts [B, T, R]; each pass is one
    ``engine.recording(B, T)`` scope (the statevector engine keeps no state per step: memory
    independent of T).
    """

    def forward(
        self, x: torch.Tensor, state: QRNNState | None = None
    ) -> tuple[torch.Tensor, QRNNState]:
        """Features [B, T, F] → (readouts [B, T, R], final (ψ_T, z_T))."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input [batch, time, {self.input_size}], got {tuple(x.shape)}"
            )
        batch, steps, _ = x.shape
        with self.engine.recording(batch, steps):
            psi, z = state if state is not None else self.initial_state(batch)
            state = (psi, z.to(x.dtype))
            outputs = []
            for t in range(steps):
                z, state = self.step(x[:, t], state)
                outputs.append(z)
        return torch.stack(outputs, dim=1), state
