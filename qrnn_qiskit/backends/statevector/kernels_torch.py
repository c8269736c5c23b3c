"""Torch kernels of the statevector engine: batched torch ops on any device (the GPU path, the
fallback where the native kernels cannot run, and — being plain autograd-able torch — the oracle of
the hand-written backward).

A segment's single-qubit layer is applied as Kronecker-factored matrices over groups of qubits (each
qubit's chain of gates fused into one per-sample 2×2 matrix, then one [D, D] matrix per group: a few
batched matmuls per layer, each of which also rotates the index bits so no gather is needed); its
monomial block is one gather and a phase multiply. Readout terms whose support lies inside one group
are read from that group's reduced density matrix (one batched matmul per group); other terms use a
gather over their flip mask.

The global phase is not applied here: the engine facade applies it (``engine.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .gates import PAULI
from .program import ReadoutProgram, StepProgram, rotation_matrix, z_signs


def default_group_size(n_qubits: int) -> int:
    """Qubits per Kronecker group: 4 (16×16 blocks) measured best on small CPUs for n ≥ 8."""
    return max(1, min(n_qubits, 4))


@dataclass
class _TorchSegment:
    table: torch.Tensor | None  # [n, Lmax] op-bank indices of each qubit's chain
    perm: torch.Tensor | None  # ψ'_i = phase_i · ψ_{perm_i}
    inverse_perm: torch.Tensor | None
    phase: torch.Tensor | None
    rot_ops: torch.Tensor  # rotation indices in this segment,
    rot_qubits: torch.Tensor  # their qubits,
    rot_slots: torch.Tensor  # and their chain slots q·Lmax + position
    diag_ops: torch.Tensor | None  # the diagonal's rz rotations
    diag_signs: torch.Tensor | None  # [terms, N] their Z-mask eigenvalues ±1


class TorchKernels:
    """The step and readout programs lowered to torch tensors on ``device``.

    Methods (the same names as :class:`~.kernels_native.NativeKernels`; none records autograd except
    the ``*_autograd`` oracles): ``bank``, ``forward``, ``readouts``, ``readouts_vjp``,
    ``backward``.
    """

    name = "torch"

    def __init__(
        self,
        program: StepProgram,
        readout: ReadoutProgram,
        *,
        dtype: torch.dtype,
        device: torch.device,
        group_size: int | None = None,
    ) -> None:
        self.program = program
        self.n_qubits = n = program.n_qubits
        self.dim = program.dim
        self.dtype = dtype
        self.real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
        self.device = device
        g = min(group_size or default_group_size(n), n)
        self.group_size = g
        self.groups = [(lo, min(lo + g, n)) for lo in range(0, n, g)]
        self._gather_cache: dict = {}
        self._lower_step(program)
        self._lower_readouts(readout)

    # ---------------------------------------------------------------------------------- lowering
    def _tensor(self, values, dtype) -> torch.Tensor:
        return torch.tensor(np.asarray(values), dtype=dtype, device=self.device)

    def _lower_step(self, program: StepProgram) -> None:
        cdt, rdt, long = self.dtype, self.real_dtype, torch.long
        rotations = program.rotations
        self.n_rot = len(rotations)
        self.n_params = program.n_params
        # rotation angles = θ @ matrix + offset
        self._rot_matrix = self._tensor(rotation_matrix(program), rdt)
        self._rot_offset = self._tensor([r.angle.offset for r in rotations], rdt)
        empty = np.zeros((0, 2, 2), dtype=complex)
        self._rot_gen = self._tensor(
            np.stack([r.generator for r in rotations]) if rotations else empty, cdt
        )
        self._rot_pauli = self._tensor(
            np.stack([r.pauli for r in rotations]) if rotations else empty, cdt
        )
        self._const_bank = self._tensor(np.concatenate([program.constants, np.eye(2)[None]]), cdt)
        self._eye2 = torch.eye(2, dtype=cdt, device=self.device)
        self.segments: list[_TorchSegment] = []
        for seg in program.segments:
            table = None
            if seg.has_layer:
                width = seg.width
                rows = [list(c) + [program.identity] * (width - len(c)) for c in seg.chains]
                table = self._tensor(rows, long)
            ops = [r for r, _, _ in seg.rotations]
            qubits = [q for _, q, _ in seg.rotations]
            slots = [q * seg.width + j for _, q, j in seg.rotations]
            diag_ops = diag_signs = None
            if seg.diagonal:
                diag_ops = self._tensor([r for r, _ in seg.diagonal], long)
                diag_signs = self._tensor(
                    np.stack([z_signs(m, program.dim) for _, m in seg.diagonal]), rdt
                )
            self.segments.append(
                _TorchSegment(
                    table,
                    None if seg.perm is None else self._tensor(seg.perm, long),
                    None if seg.inverse_perm is None else self._tensor(seg.inverse_perm, long),
                    None if seg.phase is None else self._tensor(seg.phase, cdt),
                    self._tensor(ops, long),
                    self._tensor(qubits, long),
                    self._tensor(slots, long),
                    diag_ops,
                    diag_signs,
                )
            )
        # per group: [D², g·4] 0/1 table reducing a D×D group matrix to the 2×2 blocks of its qubits
        self._reduce_tables = []
        for lo, hi in self.groups:
            size = hi - lo
            d = 1 << size
            table = np.zeros((d, d, size, 2, 2))
            for i in range(d):
                for q in range(size):
                    a = (i >> q) & 1
                    for b in (0, 1):
                        table[i, i ^ ((a ^ b) << q), q, a, b] = 1.0
            self._reduce_tables.append(self._tensor(table.reshape(d * d, size * 4), cdt))

    def _lower_readouts(self, readout: ReadoutProgram) -> None:
        """Group-local terms: Tr(ρ_G P) = Σ_ij ρ_ij P_ji, one matmul with a [D², K] table per group;
        spanning terms: Σ_i conj(ψ_i) g(i ⊕ m) ψ_{i ⊕ m}, one gather per distinct flip mask m.
        ``order`` lists the term of each evaluated column, so the coefficients are permuted once
        here."""
        cdt = self.dtype
        order: list[int] = []
        self._group_terms: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        by_group: dict[int, list[int]] = {}
        spanning = []
        for t in range(readout.n_terms):
            support = readout.support(t)
            home = next(
                (
                    gi
                    for gi, (lo, hi) in enumerate(self.groups)
                    if all(lo <= q < hi for q in support)
                ),
                None,
            )
            if home is None:
                spanning.append(t)
            else:
                by_group.setdefault(home, []).append(t)
        for gi in sorted(by_group):
            terms = by_group[gi]
            lo, hi = self.groups[gi]
            mats = [readout.matrix(t, range(lo, hi)) for t in terms]
            trace = np.stack([m.T.reshape(-1) for m in mats], axis=1)
            self._group_terms.append(
                (
                    gi,
                    self._tensor(trace, cdt),
                    self._tensor(np.stack([m.reshape(-1) for m in mats]), cdt),
                )
            )
            order += terms
        k = np.arange(self.dim, dtype=np.int64)
        self._span_terms: list[tuple[torch.Tensor, torch.Tensor]] = []
        by_mask: dict[int, list[int]] = {}
        for t in spanning:
            by_mask.setdefault(readout.x_masks[t], []).append(t)
        for mask, terms in by_mask.items():
            weights = np.stack([readout.action(t, k ^ mask) for t in terms], axis=1)
            self._span_terms.append(
                (self._tensor(k ^ mask, torch.long), self._tensor(weights, cdt))
            )
            order += terms
        self._readout_coef = self._tensor(readout.coefficients[order], self.real_dtype)

    # ---------------------------------------------------------------------------------- the op bank
    def bank(self, angles: torch.Tensor) -> torch.Tensor:
        """Op bank [B, ops+1, 2, 2]: rotations from ``angles`` [B, P], then constants, then identity
        (differentiable)."""
        batch = angles.shape[0]
        consts = self._const_bank.expand(batch, -1, -1, -1)
        if not self.n_rot:
            return consts
        half = 0.5 * (torch.matmul(angles, self._rot_matrix) + self._rot_offset)
        cos = torch.cos(half).to(self.dtype)[..., None, None]
        sin = torch.sin(half).to(self.dtype)[..., None, None]
        return torch.cat([cos * self._eye2 + sin * self._rot_gen, consts], dim=1)

    def _fused(self, bank: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Each qubit's chain multiplied out: [B, n, 2, 2]."""
        fused = bank[:, table[:, 0]]
        for j in range(1, table.shape[1]):
            fused = torch.matmul(bank[:, table[:, j]], fused)
        return fused

    def _group_matrices(self, fused: torch.Tensor) -> list[torch.Tensor]:
        """Kronecker products of per-qubit matrices [B, n, 2, 2] per group: [B, D, D], high qubit
        first."""
        out = []
        batch = fused.shape[0]
        for lo, hi in self.groups:
            mat = fused[:, hi - 1]
            for q in range(hi - 2, lo - 1, -1):
                d = mat.shape[-1]
                mat = (mat[:, :, None, :, None] * fused[:, q, None, :, None, :]).reshape(
                    batch, 2 * d, 2 * d
                )
            out.append(mat)
        return out

    # ---------------------------------------------------------------------------------- state
    # layout
    def _group_view(self, gi: int) -> tuple[int, int, int]:
        lo, hi = self.groups[gi]
        d, right = 1 << (hi - lo), 1 << lo
        return self.dim // (d * right), d, right

    def _apply_group(self, state: torch.Tensor, gi: int, mat: torch.Tensor) -> torch.Tensor:
        """``mat`` [B, D, D] applied to group ``gi``'s qubits of ``state`` [B, ..., N]."""
        shape = state.shape
        batch, extra = shape[0], shape[1:-1].numel()
        left, d, right = self._group_view(gi)
        if right == 1:  # lowest group: rows of (extra · left) amplitudes blocks times matᵀ
            out = torch.matmul(state.reshape(batch, extra * left, d), mat.transpose(1, 2))
        else:
            out = torch.matmul(mat[:, None], state.reshape(batch, extra * left, d, right))
        return out.reshape(shape)

    def _group_outer(self, a: torch.Tensor, b: torch.Tensor, gi: int) -> torch.Tensor:
        """M_ij = Σ_rest a[i, rest] · conj(b[j, rest]) over group ``gi``'s index: [B, D, D]."""
        batch = a.shape[0]
        left, d, right = self._group_view(gi)
        if right == 1:  # conj(a^H b) keeps both big operands unmaterialised
            return torch.matmul(a.reshape(batch, left, d).mH, b.reshape(batch, left, d)).conj()
        prod = torch.matmul(a.reshape(batch, left, d, right), b.reshape(batch, left, d, right).mH)
        return prod.sum(dim=1) if left > 1 else prod[:, 0]

    @staticmethod
    def _rotate_in(state: torch.Tensor, size: int, mat: torch.Tensor) -> torch.Tensor:
        """Apply ``mat`` [B, D, D] to the top ``size`` index bits of ``state`` [B, ..., N] and move
        those bits to the bottom, in one matmul: viewing the state as [D, rest], the product
        restᵀ·matᵀ is written as [rest, D]. Repeating it for every group restores the original bit
        order."""
        shape = state.shape
        view = state.view(*shape[:-1], 1 << size, -1).mT
        return torch.matmul(view, (mat if state.dim() == 2 else mat[:, None]).mT).reshape(shape)

    @staticmethod
    def _rotate_out(state: torch.Tensor, size: int, mat: torch.Tensor) -> torch.Tensor:
        """Inverse bit move of ``_rotate_in`` (bottom ``size`` bits back to the top), applying
        ``mat``."""
        shape = state.shape
        view = state.view(*shape[:-1], -1, 1 << size).mT
        return torch.matmul(mat if state.dim() == 2 else mat[:, None], view).reshape(shape)

    def _gather(self, state: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """``state[..., index]``; outside autograd complex64 amplitudes move as float64 words."""
        if index is None:
            return state
        if state.requires_grad:
            return state[..., index]
        if state.dtype == torch.complex64:
            words = state.view(torch.float64)
            key = (tuple(words.shape), index.data_ptr())
            expanded = self._gather_cache.get(key)
            if expanded is None:  # the index broadcast to the batch, kept per (shape, permutation)
                if len(self._gather_cache) >= 16:
                    self._gather_cache.clear()
                expanded = self._gather_cache[key] = index.expand(words.shape).contiguous()
            return torch.gather(words, -1, expanded).view(torch.complex64)
        words = torch.view_as_real(state)
        return torch.view_as_complex(torch.index_select(words, -2, index).contiguous())

    def _diagonal(self, bank: torch.Tensor, seg: _TorchSegment) -> torch.Tensor:
        """The segment's diagonal D(k) = exp(-i Σ_t φ_t/2·σ_t(k)) [B, N] (φ_t/2 is the phase of
        the rz entry [1, 1] of the bank)."""
        half = torch.angle(bank[:, seg.diag_ops, 1, 1])
        exponent = -torch.matmul(half, seg.diag_signs)
        return torch.complex(torch.cos(exponent), torch.sin(exponent))

    # ---------------------------------------------------------------------------------- forward
    def apply_autograd(self, state: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """V·state (U = global phase · V) from the op bank; differentiable by plain autograd."""
        state = state.contiguous()
        for seg in self.segments:
            if seg.table is not None:
                mats = self._group_matrices(self._fused(bank, seg.table))
                for (lo, hi), mat in zip(reversed(self.groups), reversed(mats)):
                    state = self._rotate_in(state, hi - lo, mat)
            if seg.diag_ops is not None:
                state = state * self._diagonal(bank, seg)
            state = self._gather(state, seg.perm)
            if seg.phase is not None:
                state = state * seg.phase
        return state

    def readouts_autograd(self, state: torch.Tensor) -> torch.Tensor:
        """Readouts [B, R] of ``state``; differentiable by plain autograd."""
        columns = []
        batch = state.shape[0]
        for gi, trace_table, _ in self._group_terms:
            rho = self._group_outer(state, state, gi)  # ρ_ij = Σ ψ_i ψ_j*
            columns.append(torch.matmul(rho.reshape(batch, -1), trace_table))
        for idx, weights in self._span_terms:
            columns.append(torch.matmul(state.conj() * state[:, idx], weights))
        terms = torch.cat(columns, dim=1) if len(columns) > 1 else columns[0]
        return torch.matmul(terms.real, self._readout_coef)

    def forward(
        self, state: torch.Tensor, angles: torch.Tensor, readouts: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(V·state, its readouts or ``None``) for angles [B, P]."""
        out = self.apply_autograd(state, self.bank(angles))
        return out, self.readouts_autograd(out) if readouts else None

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        return self.readouts_autograd(state)

    # ---------------------------------------------------------------------------------- backward
    def readouts_vjp(self, state: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """∂L/∂ψ (torch's convention) of L = Σ_k grad_k ⟨O_k⟩: 2 Σ_t w_t P_t ψ."""
        w = torch.matmul(grad.to(self.real_dtype), self._readout_coef.T).to(self.dtype)
        out = torch.zeros_like(state)
        col = 0
        batch = state.shape[0]
        for gi, _, matrices in self._group_terms:
            k = matrices.shape[0]
            d = 1 << (self.groups[gi][1] - self.groups[gi][0])
            herm = torch.matmul(w[:, col : col + k], matrices).view(batch, d, d)
            out = out + self._apply_group(state, gi, herm)
            col += k
        for idx, weights in self._span_terms:
            k = weights.shape[1]
            out = out + state[:, idx] * torch.matmul(w[:, col : col + k], weights.T)
            col += k
        return 2 * out

    def backward(
        self,
        state: torch.Tensor,
        angles: torch.Tensor,
        grad: torch.Tensor | None,
        readout_grad: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Walk the step back from its output ``state`` (of V): (ψ_in, ∂L/∂ψ_in, ∂L/∂angles), given
        the gradient ``grad`` of the output state (``None``: zero) and ``readout_grad`` of its
        readouts (``None``: none were read).

        ψ and its gradient g travel together as one [B, 2, N] tensor: every gate is unitary, so both
        are mapped by V† and each gather or matmul serves the pair.
        """
        if readout_grad is not None:
            vjp = self.readouts_vjp(state, readout_grad)
            grad = vjp if grad is None else grad + vjp
        if grad is None:
            grad = torch.zeros_like(state)
        bank = self.bank(angles)
        batch = state.shape[0]
        pair = torch.stack([state, grad], dim=1)
        grad_rot = angles.new_zeros(batch, self.n_rot)
        for seg in reversed(self.segments):
            if seg.phase is not None:
                pair = pair * seg.phase.conj()
            pair = self._gather(pair, seg.inverse_perm)
            if seg.diag_ops is not None:  # ∂L/∂φ_t = ½ Σ_k σ_t(k) Im(g_k* ψ_k), unchanged by D
                w = (pair[:, 1].conj() * pair[:, 0]).imag
                grad_rot = grad_rot.index_add(
                    1, seg.diag_ops, 0.5 * torch.matmul(w, seg.diag_signs.T)
                )
                pair = pair * self._diagonal(bank, seg).conj()[:, None]
            if seg.table is None:
                continue
            mats = self._group_matrices(self._fused(bank, seg.table))
            blocks = []  # reduced 2×2 blocks of K = Σ ψ g^H per qubit, groups from low to high
            for gi, (lo, hi) in enumerate(self.groups):
                size = hi - lo
                if seg.rot_ops.numel():  # group gi occupies the bottom bits here
                    bottom = pair.view(batch, 2, -1, 1 << size)
                    outer = torch.matmul(bottom[:, 0].mH, bottom[:, 1]).conj()
                    blocks.append(torch.matmul(outer.reshape(batch, -1), self._reduce_tables[gi]))
                pair = self._rotate_out(pair, size, mats[gi].mH)
            if seg.rot_ops.numel():
                reduced = torch.cat(blocks, dim=1).view(batch, self.n_qubits, 2, 2)
                grad_rot = self._add_rotation_grads(grad_rot, seg, bank, reduced)
        return pair[:, 0], pair[:, 1], self.angle_grads(angles, grad_rot)

    def _add_rotation_grads(
        self, grad_rot: torch.Tensor, seg: _TorchSegment, bank: torch.Tensor, reduced: torch.Tensor
    ) -> torch.Tensor:
        """Add a segment's rotation gradients to ``grad_rot`` [B, rotations], given each qubit's 2×2
        block K_q[a, c] = Σ ψ_a g_c* [B, n, 2, 2] at the output of the segment's single-qubit layer:
        dL/dθ = ½ Im Tr(P' K_q) with P' = S P S†, S the gates after the rotation in its qubit's
        chain (the native kernels' ``qrnn_rotation_grads`` computes the same)."""
        batch, lmax = reduced.shape[0], seg.table.shape[1]
        suffix = [self._eye2.expand(batch, self.n_qubits, 2, 2)]
        for j in range(lmax - 1, 0, -1):
            suffix.append(torch.matmul(suffix[-1], bank[:, seg.table[:, j]]))
        # [B, n·Lmax] → the rotations
        after = torch.stack(suffix[::-1], dim=2).reshape(batch, -1, 2, 2)[:, seg.rot_slots]
        generator = torch.matmul(torch.matmul(after, self._rot_pauli[seg.rot_ops]), after.mH)
        trace = (generator * reduced[:, seg.rot_qubits].transpose(-1, -2)).sum(dim=(-1, -2))
        return grad_rot.index_add(1, seg.rot_ops, 0.5 * trace.imag)

    def angle_grads(self, angles: torch.Tensor, grad_rot: torch.Tensor) -> torch.Tensor:
        """∂L/∂angles [B, P] from the gradients of the individual rotations [B, rotations]."""
        if not self.n_rot:
            return angles.new_zeros(angles.shape[0], self.n_params)
        return torch.matmul(grad_rot.to(self._rot_matrix.dtype), self._rot_matrix.T)


__all__ = ["PAULI", "TorchKernels", "default_group_size"]
