"""A plain batched statevector engine, the yardstick of benchmarks/engine.py (not used by the
package).

What a straightforward implementation does: one per-sample 2×2 einsum per gate, each CX/CZ ring as
one `index_select` permutation / sign multiply, ⟨X⟩, ⟨Y⟩, ⟨Z⟩ as separate passes, plain autograd for
gradients (storing every intermediate state). It implements only the QRNN step circuit.
"""

from __future__ import annotations

import numpy as np
import torch

from qrnn_qiskit.circuits import QRNNSpec


class PlainEngine:
    """Gate-by-gate batched statevector for the QRNN step circuit of ``spec`` (xyz readouts)."""

    def __init__(
        self, spec: QRNNSpec, dtype: torch.dtype = torch.complex64, device: str = "cpu"
    ) -> None:
        if spec.readouts != "xyz":
            raise ValueError("the plain reference implements xyz readouts only")
        self.spec, self.n, self.dtype, self.device = (
            spec,
            spec.n_qubits,
            dtype,
            torch.device(device),
        )
        self.dim = 1 << self.n
        k = np.arange(self.dim)
        sigma, sign = k.copy(), np.ones(self.dim)
        for c, t in spec.edges():
            if spec.entangler == "cz_ring":
                sign = sign * np.where(((sigma >> c) & (sigma >> t) & 1) == 1, -1.0, 1.0)
            else:
                sigma = sigma ^ (((sigma >> c) & 1) << t)
        inverse = np.empty_like(sigma)
        inverse[sigma] = k
        self.perm = torch.tensor(inverse, device=self.device)
        self.sign = torch.tensor(sign[inverse], dtype=dtype, device=self.device)
        self.z_signs = torch.tensor(
            np.stack([1 - 2 * ((k >> q) & 1) for q in range(self.n)], 1),
            dtype=torch.float32 if dtype == torch.complex64 else torch.float64,
            device=self.device,
        )

    def initial_state(self, batch: int) -> torch.Tensor:
        state = torch.zeros(batch, self.dim, dtype=self.dtype, device=self.device)
        state[:, 0] = 1
        return state

    def _gate(self, state: torch.Tensor, q: int, mat: torch.Tensor) -> torch.Tensor:
        batch = state.shape[0]
        view = state.view(batch, self.dim >> (q + 1), 2, 1 << q)
        return torch.einsum("bij,bajc->baic", mat, view).reshape(batch, self.dim)

    def step(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        n, k = self.n, 0
        for _ in range(self.spec.layers):
            for q in range(n):
                c, s = torch.cos(angles[:, k + q] / 2), torch.sin(angles[:, k + q] / 2)
                ry = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2).to(
                    self.dtype
                )
                state = self._gate(state, q, ry)
            for q in range(n):
                phase = torch.exp(-0.5j * angles[:, k + n + q].to(self.dtype))
                zero = torch.zeros_like(phase)
                rz = torch.stack(
                    [torch.stack([phase, zero], -1), torch.stack([zero, phase.conj()], -1)], -2
                )
                state = self._gate(state, q, rz)
            k += 2 * n
            state = torch.index_select(state, 1, self.perm)
            if self.spec.entangler == "cz_ring":
                state = state * self.sign
        return state

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        batch = state.shape[0]
        xs, ys = [], []
        for q in range(self.n):
            view = state.view(batch, self.dim >> (q + 1), 2, 1 << q)
            off = (view[:, :, 0].conj() * view[:, :, 1]).sum(dim=(1, 2))
            xs.append(2 * off.real)
            ys.append(2 * off.imag)
        zs = state.abs().pow(2) @ self.z_signs
        return torch.cat([torch.stack(xs, 1), torch.stack(ys, 1), zs], dim=1)
