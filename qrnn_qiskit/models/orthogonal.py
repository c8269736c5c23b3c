"""An orthogonal RNN in the style of expRNN (Lezcano-Casado & Martínez-Rubio, ICML 2019).

h_t = modReLU(W x_t + B h_{t-1}), B = exp(A - Aᵀ). The free parameters are the h(h-1)/2 entries
above the diagonal of A, so B is orthogonal for every parameter value (no projection, no penalty),
and the parameter count reported for size matching is the true number of degrees of freedom.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mod_relu(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """modReLU for real inputs: sign(z)·relu(|z| + b)."""
    return torch.sign(z) * torch.relu(z.abs() + bias)


class OrthogonalCore(nn.Module):
    """expRNN-style core with the ``ClassicalCore`` interface: ``forward(x [B, T, F]) → (h [B, T,
    H], h_T)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input and hidden sizes must be >= 1, got {input_size}, {hidden_size}"
            )
        self.hidden_size = hidden_size
        self.input = nn.Linear(input_size, hidden_size, bias=False)
        self.skew = nn.Parameter(torch.zeros(hidden_size * (hidden_size - 1) // 2))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Henaff-style init: A holds 2×2 rotation generators with angles uniform in [-π, π] (B is
        then block-diagonal rotations); input weights He-normal; modReLU biases uniform in [-0.01,
        0.01]."""
        nn.init.kaiming_normal_(self.input.weight, nonlinearity="relu")
        nn.init.uniform_(self.bias, -0.01, 0.01)
        with torch.no_grad():
            self.skew.zero_()
            h = self.hidden_size
            # position of (i, i+1) in the row-major strictly-upper-triangular order
            blocks = torch.arange(0, h - 1, 2)
            position = blocks * h - blocks * (blocks + 1) // 2
            self.skew[position] = torch.empty(len(blocks)).uniform_(-math.pi, math.pi)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def recurrent_matrix(self) -> torch.Tensor:
        """B = exp(A - Aᵀ), orthogonal by construction."""
        h = self.hidden_size
        rows, cols = torch.triu_indices(h, h, offset=1, device=self.skew.device)
        a = self.skew.new_zeros(h, h).index_put((rows, cols), self.skew)
        return torch.linalg.matrix_exp(a - a.T)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3:
            raise ValueError(f"expected input [batch, time, features], got {tuple(x.shape)}")
        recurrent = self.recurrent_matrix().T
        drive = self.input(x)
        h = state if state is not None else x.new_zeros(x.shape[0], self.hidden_size)
        outputs = []
        for t in range(x.shape[1]):
            h = mod_relu(drive[:, t] + h @ recurrent, self.bias)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h
