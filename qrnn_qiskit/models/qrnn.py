"""The QRNN: a classical controller that writes every angle of a quantum step circuit, read out by
Paulis."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..backends import ReversibleTape, StatevectorEngine
from ..circuits import QRNNSpec, readout_observables, step_circuit

ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "gelu", "glu", "leaky_relu", "tanh")
ANGLE_MAPS: tuple[str, ...] = ("identity", "tanh")


@dataclass(frozen=True)
class ControllerConfig:
    """Feedforward controller θ_t = g([e(x_t); z_{t-1}]).

    ``depth`` hidden layers of ``width`` units (0: a single linear map), ``activation`` between
    them, ``dropout`` after each hidden layer, and an ``angle_map`` on the output: ``identity`` (raw
    angles) or ``tanh`` (π·tanh). ``init_scale`` multiplies the last layer's initial weights (small
    → near-identity steps at the start of training).
    """

    width: int = 128
    depth: int = 1
    activation: str = "gelu"
    dropout: float = 0.0
    angle_map: str = "identity"
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(ACTIVATIONS)}; got {self.activation!r}"
            )
        if self.angle_map not in ANGLE_MAPS:
            raise ValueError(
                f"angle_map must be one of {', '.join(ANGLE_MAPS)}; got {self.angle_map!r}"
            )
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0, got {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init_scale <= 0:
            raise ValueError(f"init_scale must be > 0, got {self.init_scale}")


def make_activation(name: str) -> nn.Module:
    return {
        "linear": nn.Identity,
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "leaky_relu": nn.LeakyReLU,
        "tanh": nn.Tanh,
    }[name]()


class Controller(nn.Module):
    """MLP from [input features; previous readouts] to the P circuit angles."""

    def __init__(self, in_features: int, n_angles: int, config: ControllerConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width_in = in_features
        for _ in range(config.depth):
            if config.activation == "glu":
                layers += [nn.Linear(width_in, 2 * config.width), nn.GLU(dim=-1)]
            else:
                layers += [nn.Linear(width_in, config.width), make_activation(config.activation)]
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width_in = config.width
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width_in, n_angles)
        with torch.no_grad():
            self.out.weight.mul_(config.init_scale)
            self.out.bias.mul_(config.init_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        angles = self.out(self.hidden(features))
        if self.config.angle_map == "tanh":
            angles = math.pi * torch.tanh(angles)
        return angles


@dataclass(frozen=True)
class QRNNConfig:
    """Everything that shapes a QRNN core: the circuit spec, the controller and readout feedback."""

    spec: QRNNSpec
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    feedback: bool = True

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


class QRNNCore(nn.Module):
    """Recurrent core: ψ_t = U(θ_t) ψ_{t-1}, θ_t = controller([x_t; z_{t-1}]), z_t = readouts(ψ_t).

    ``forward(x)`` maps features [B, T, F] to readouts [B, T, R]. The engine (any object with the
    ``StatevectorEngine`` interface) is injected; the default is a complex64 torch engine compiled
    from the spec's Qiskit step circuit (``dtype`` complex64 or complex128).
    """

    def __init__(
        self,
        input_size: int,
        config: QRNNConfig,
        engine: StatevectorEngine | None = None,
        dtype: torch.dtype = torch.complex64,
    ) -> None:
        super().__init__()
        self.config = config
        self.input_size = input_size
        spec = config.spec
        self.engine = engine or StatevectorEngine(
            step_circuit(spec), readout_observables(spec), dtype=dtype
        )
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

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ψ_0 = |0…0⟩, z_0 = readouts of ψ_0)."""
        psi = self.engine.initial_state(batch)
        return psi, self.engine.readouts(psi)

    def step_angles(self, x_t: torch.Tensor, z_prev: torch.Tensor) -> torch.Tensor:
        """Circuit angles θ_t [B, P] from step features x_t [B, F] and previous readouts z_{t-1} [B,
        R].

        This is the host-side half of one step; hardware protocols call it between circuit
        executions.
        """
        features = torch.cat([x_t, z_prev.to(x_t.dtype)], dim=-1) if self.config.feedback else x_t
        return self.controller(features)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Features [B, T, F] → (readouts [B, T, R], final (ψ_T, z_T))."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input [batch, time, {self.input_size}], got {tuple(x.shape)}"
            )
        batch, steps, _ = x.shape
        psi, z = state if state is not None else self.initial_state(batch)
        z = z.to(x.dtype)
        # Reversible backward: no quantum state is stored per step (memory independent of T)
        tape = ReversibleTape() if torch.is_grad_enabled() else None
        outputs = []
        for t in range(steps):
            angles = self.step_angles(x[:, t], z)
            psi, z = self.engine.step_readouts(psi, angles, tape)
            z = z.to(x.dtype)
            outputs.append(z)
        return torch.stack(outputs, dim=1), (psi, z)
