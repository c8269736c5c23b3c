"""A non-unitary forgetting step: a mid-circuit reset of one qubit every k steps, simulated exactly.

A reset of qubit q maps a density matrix ρ to K₀ρK₀† + K₁ρK₁† (K₀ = |0⟩⟨0|_q, K₁ = |0⟩⟨1|_q), so the
register's state stops being pure. The QRNN then carries it as an **ensemble** of unnormalised
branches ψ_1…ψ_r with ρ = Σ_j ψ_j ψ_j†: a [B·r, 2ⁿ] tensor, sequence b's branches in rows
b·r…b·r+r−1.
Every step applies U(θ_b) to all of sequence b's branches (the same angles: the controller sees the
ensemble's readouts), the readouts are Σ_j ⟨ψ_j|P|ψ_j⟩ = Tr(Pρ), and a reset splits every branch in
two, K₀ψ_j and K₁ψ_j, both with qubit q in |0⟩. Right after a reset the state lives in the 2ⁿ⁻¹-
dimensional subspace of qubit q = |0⟩, so its rank is at most 2ⁿ⁻¹ and the branches are compressed
back to that many (:class:`Compress`, a QR factorisation). Values and gradients are exact — this is
the density-matrix model of a circuit with resets (what hardware estimates from many shots), not a
sampled trajectory — and cost up to 2ⁿ⁻¹ state vectors per sequence: practical at small n.

Qubit q = (number of earlier resets) mod n, so successive resets cycle through the register. The
period counts the steps of each pass over a sequence (``QRNNCore.forward``; ptb: each window).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..backends.statevector import ReversibleTape

if TYPE_CHECKING:
    from ..backends import StatevectorEngine


def reset_due(t: int, every: int) -> bool:
    """Whether the reset follows step ``t`` (0-based) of a pass: after steps k−1, 2k−1, …"""
    return every > 0 and (t + 1) % every == 0


def reset_qubit(t: int, every: int, n_qubits: int) -> int:
    """The qubit reset after step ``t`` (when :func:`reset_due`): the resets cycle through the
    register, starting at qubit 0."""
    return ((t + 1) // every - 1) % n_qubits


def branches(state: torch.Tensor, batch: int) -> int:
    """The number of branches per sequence of an ensemble ``state`` [batch·r, 2ⁿ]."""
    rows, cap = state.shape[0], max(1, state.shape[-1] // 2)
    if rows % batch or rows // batch > cap:
        raise ValueError(
            f"an ensemble of {rows} rows does not split into {batch} sequences of at most {cap} "
            "branches each"
        )
    return rows // batch


def ensemble_readouts(values: torch.Tensor, batch: int) -> torch.Tensor:
    """Tr(Pρ) [batch, R] from the branches' readouts [batch·r, R]."""
    return values.reshape(batch, -1, values.shape[-1]).sum(dim=1)


def spread(angles: torch.Tensor, r: int) -> torch.Tensor:
    """Every sequence's angles [batch, P] repeated for its ``r`` branches: [batch·r, P]."""
    return angles if r == 1 else angles.repeat_interleave(r, dim=0)


def select(state: torch.Tensor, batch: int, mask: torch.Tensor) -> torch.Tensor:
    """The branches of the sequences where ``mask`` [batch] is true."""
    r = branches(state, batch)
    return state.reshape(batch, r, state.shape[-1])[mask].reshape(-1, state.shape[-1])


class Compress(torch.autograd.Function):
    """Rows M [B, m, d] (m > d) of branches → d rows R with RᵀR̄ = MᵀM̄ (the same ρ), by M = QR.

    Everything downstream depends on the branches through ρ alone, so with H = ∂L/∂ρ the gradient
    of a branch is ∝ H·(branch). The rows of M are m_i = Σ_j Q_ij R_j, hence ∂L/∂M = Q·∂L/∂R, exact
    also when ρ is rank-deficient (where QR's own backward is undefined)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        q, r = torch.linalg.qr(rows, mode="reduced")
        ctx.save_for_backward(q)
        return r

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (q,) = ctx.saved_tensors
        return torch.matmul(q, grad)


def reset(state: torch.Tensor, batch: int, qubit: int, n_qubits: int) -> torch.Tensor:
    """The ensemble after a reset of ``qubit`` (Qiskit's order: bit q of the amplitude index), its
    branches compressed to at most 2ⁿ⁻¹ per sequence. Differentiable (autograd)."""
    if not 0 <= qubit < n_qubits:
        raise ValueError(f"qubit must be in [0, {n_qubits}), got {qubit}")
    dim = 1 << n_qubits
    if state.shape[-1] != dim:
        raise ValueError(f"state must have {dim} amplitudes, got {state.shape[-1]}")
    r = branches(state, batch)
    lo, hi = 1 << qubit, 1 << (n_qubits - 1 - qubit)
    # K₀ψ keeps the |0⟩_q half, K₁ψ moves the |1⟩_q half there: 2r rows of 2ⁿ⁻¹ per sequence
    rows = state.reshape(batch, r, hi, 2, lo).transpose(2, 3).reshape(batch, 2 * r, hi * lo)
    if 2 * r > hi * lo:
        rows = Compress.apply(rows)
    m = rows.shape[1]
    zero = torch.zeros_like(rows)
    full = torch.stack([rows.reshape(batch, m, hi, lo), zero.reshape(batch, m, hi, lo)], dim=3)
    return full.reshape(batch * m, dim)


def sequence(
    engine: StatevectorEngine,
    angles: torch.Tensor,
    every: int,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed angles [batch, T, P] run with a reset after every ``every``-th step (0: never) from
    ``state`` (default |0…0⟩; may be an ensemble): (readouts Tr(Pρ_t) [batch, T, R], the final
    ensemble). Differentiable: each stretch between resets walks the engine's reversible tape, a
    reset by autograd."""
    if angles.dim() != 3 or angles.shape[-1] != engine.n_params:
        raise ValueError(
            f"angles must have shape [batch, T, {engine.n_params}], got {tuple(angles.shape)}"
        )
    batch = angles.shape[0]
    state = engine.initial_state(batch) if state is None else state
    record = torch.is_grad_enabled()
    tape = ReversibleTape() if record else None
    values = []
    for t in range(angles.shape[1]):
        state, v = engine.step_readouts(state, spread(angles[:, t], branches(state, batch)), tape)
        values.append(ensemble_readouts(v, batch))
        if reset_due(t, every):
            state = reset(state, batch, reset_qubit(t, every, engine.n_qubits), engine.n_qubits)
            tape = ReversibleTape() if record else None
    return torch.stack(values, dim=1), state
