"""The QRNN's classical controller: an MLP that writes every circuit angle θ_t from [e(x_t);
z_{t-1}].

:meth:`Controller.unrolled` describes the same MLP to the QRNN's fused sequence pass
(``qrnn.py``): its first layer split into the part applied to the inputs (all steps at once) and
the part applied to the readouts, then (activation, linear) pairs; :func:`activate` and
:func:`activation_backward` are the activations and their derivatives (ATen's own backward ops, so
the fused pass agrees with autograd).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn

from .config import ControllerConfig


def init_scale_for_length(steps: int | None) -> float:
    """The default last-layer initial scale for sequences of ``steps`` steps (``None``: unknown,
    1). Up to 32 steps, 1: short sequences learn faster from larger initial angles and do not
    scramble in time. Longer, 0.1, which keeps an untrained QRNN's state away from the scrambled
    level for ~200 steps where 1 scrambles it within ~50 (n = 4–8); past 200 steps 0.1·√(200/T),
    as T small random rotations of size s drift by ~s·√T. Measurements: docs/results.md."""
    if steps is None or steps <= 32:
        return 1.0
    return 0.1 * min(1.0, math.sqrt(200.0 / steps))


def make_activation(name: str) -> nn.Module:
    return {
        "linear": nn.Identity,
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "leaky_relu": nn.LeakyReLU,
        "tanh": nn.Tanh,
    }[name]()


@dataclass(frozen=True)
class Unrolled:
    """The controller as (first, chain, angle_map): angles = map(chain(first([x; z]))) where each
    chain element (activation, linear) applies the activation, then the linear layer. Dropout is
    not part of it (a controller with active dropout is not unrolled)."""

    first: nn.Linear
    chain: tuple[tuple[str, nn.Linear], ...]
    angle_map: str


def activate(name: str, x: torch.Tensor) -> torch.Tensor:
    """The activation ``name`` of ``x`` (the functions of :func:`make_activation` and GLU)."""
    if name == "gelu":
        return F.gelu(x)
    if name == "relu":
        return F.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "leaky_relu":
        return F.leaky_relu(x, 0.01)
    if name == "glu":
        return F.glu(x, dim=-1)
    return x


def activation_backward(
    name: str, grad: torch.Tensor, x: torch.Tensor | None, y: torch.Tensor
) -> torch.Tensor:
    """∂L/∂x from ∂L/∂y for y = activate(name, x), with the backward ops autograd uses (``x`` may
    be ``None`` for relu, tanh and linear: their derivative reads ``y``)."""
    aten = torch.ops.aten
    if name == "gelu":
        return aten.gelu_backward(grad, x)
    if name == "relu":
        return aten.threshold_backward(grad, y, 0)
    if name == "tanh":
        return aten.tanh_backward(grad, y)
    if name == "leaky_relu":
        return aten.leaky_relu_backward(grad, x, 0.01, False)
    if name == "glu":
        return aten.glu_backward(grad, x, -1)
    return grad


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
        scale = config.init_scale if config.init_scale is not None else 1.0
        with torch.no_grad():
            self.out.weight.mul_(scale)
            self.out.bias.mul_(scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        angles = self.out(self.hidden(features))
        if self.config.angle_map == "tanh":
            angles = math.pi * torch.tanh(angles)
        return angles

    @property
    def unrollable(self) -> bool:
        """Whether :meth:`unrolled` describes this controller now (no dropout is active)."""
        return not (self.training and self.config.dropout > 0)

    def unrolled(self) -> Unrolled:
        """This MLP as :class:`Unrolled` (see :attr:`unrollable`)."""
        linears = [m for m in self.hidden if isinstance(m, nn.Linear)] + [self.out]
        return Unrolled(
            linears[0],
            tuple((self.config.activation, lin) for lin in linears[1:]),
            self.config.angle_map,
        )
