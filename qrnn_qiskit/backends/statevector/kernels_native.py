"""Native CPU kernels of the statevector engine: the programs lowered to the tables of ``native.c``.

Each sample's state is copied into planar form (real and imaginary planes, in cache for n ≤ 12) and
walked there with 32-byte vectors: one 2×2 pass per qubit (no Kronecker blocks), a gather per
entangler permutation, the reversible backward together with the per-qubit blocks K_q of the
gradient, and one-qubit reduced density matrices for readouts made of one-qubit terms (other
readouts use the torch kernels given as ``fallback``). A large batch is split over the runtime's
thread pool (``native.RUNTIME``).

The global phase is not applied here: the engine facade applies it (``engine.py``).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np
import torch

from .kernels_torch import TorchKernels
from .native import RUNTIME
from .program import ReadoutProgram, StepProgram


def _pointers(tensors: Sequence[torch.Tensor | None]) -> ctypes.Array:
    return (ctypes.c_void_p * max(1, len(tensors)))(
        *[t.data_ptr() if t is not None else None for t in tensors]
    )


def _suffix(dtype: torch.dtype) -> str:
    if dtype == torch.complex64:
        return "_f32"
    if dtype == torch.complex128:
        return "_f64"
    raise TypeError(f"native kernels take complex64 or complex128 states, got {dtype}")


class NativeKernels:
    """The step and readout programs lowered for ``native.c`` (CPU only). Same method names as
    :class:`~.kernels_torch.TorchKernels`: ``bank``, ``forward``, ``readouts``, ``readouts_vjp``,
    ``backward``. Pickles and deep-copies (the ctypes tables are rebuilt on load)."""

    name = "native"

    def __init__(
        self,
        program: StepProgram,
        readout: ReadoutProgram,
        *,
        dtype: torch.dtype,
        fallback: TorchKernels,
    ) -> None:
        if RUNTIME.load() is None:
            raise RuntimeError(RUNTIME.status())
        self.n_qubits = n = program.n_qubits
        self.dim = program.dim
        self.dtype = dtype
        self.real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
        self.fallback = fallback
        segments = program.segments
        self.n_segments = len(segments)
        self.n_rot = program.n_rotations
        long, cdt, rdt = torch.long, dtype, self.real_dtype
        self._has = [seg.has_layer for seg in segments]

        def maybe(values, kind):
            return None if values is None else torch.tensor(values, dtype=kind)

        self._keep = [maybe(s.perm, long) for s in segments]
        self._keep += [maybe(s.inverse_perm, long) for s in segments]
        self._keep += [maybe(s.phase, cdt) for s in segments]
        # every segment's chains padded to one width: all fused matrices come from one product
        width = max((seg.width for seg in segments), default=1) or 1
        rows = [
            list(chain) + [program.identity] * (width - len(chain))
            for seg in segments
            for chain in seg.chains
        ]
        self._table = torch.tensor(rows, dtype=long).reshape(len(rows), width)
        # every rotation's chain (segment·n + qubit), position in it, index and Pauli generator
        chains, positions, ops = [], [], []
        for si, seg in enumerate(segments):
            for op, q, j in seg.rotations:
                chains.append(si * n + q)
                positions.append(j)
                ops.append(op)
        paulis = np.stack([program.rotations[o].pauli for o in ops]) if ops else np.zeros((0, 2, 2))
        self._rotations = (
            torch.tensor(chains, dtype=long),
            torch.tensor(positions, dtype=long),
            torch.tensor(ops, dtype=long),
            torch.tensor(paulis, dtype=cdt),
        )
        rotations = program.rotations
        generators = (
            np.stack([r.generator for r in rotations]) if rotations else np.zeros((0, 2, 2))
        )
        constants = np.concatenate([program.constants, np.eye(2)[None]])
        self._recipe = (
            torch.tensor([r.angle.param for r in rotations], dtype=long),
            torch.tensor([r.angle.coef for r in rotations], dtype=rdt),
            torch.tensor([r.angle.offset for r in rotations], dtype=rdt),
            torch.tensor(generators, dtype=cdt),
            torch.tensor(constants, dtype=cdt),
        )
        self._terms = self._lower_readouts(readout)
        self._bind()

    def _lower_readouts(self, readout: ReadoutProgram):
        """(trace [n·4, terms], place [terms, n·4], coefficients) when every term acts on at most
        one qubit (Tr(ρ_q P) from one-qubit density matrices, column q·4 + 2a + c), else
        ``None``."""
        n = self.n_qubits
        supports = [readout.support(t) for t in range(readout.n_terms)]
        if any(len(s) > 1 for s in supports):
            return None
        trace = np.zeros((n * 4, readout.n_terms), dtype=complex)
        place = np.zeros((readout.n_terms, n * 4), dtype=complex)
        for t, support in enumerate(supports):
            q = support[0] if support else 0
            pauli = readout.matrix(t, [q])
            trace[q * 4 : (q + 1) * 4, t] = pauli.T.reshape(-1)  # Σ_ac ρ_ac P_ca
            place[t, q * 4 : (q + 1) * 4] = pauli.reshape(-1)
        return (
            torch.tensor(trace, dtype=self.dtype),
            torch.tensor(place, dtype=self.dtype),
            torch.tensor(readout.coefficients, dtype=self.real_dtype),
        )

    @property
    def one_qubit_readouts(self) -> bool:
        """Whether readouts run on these kernels (every term acts on at most one qubit)."""
        return self._terms is not None

    def _bind(self) -> None:
        """The ctypes side: the library and pointer tables into the kept tensors."""
        self._lib = RUNTIME.load()
        self._suffix = _suffix(self.dtype)
        s = self.n_segments
        self._perms = _pointers(self._keep[:s])
        self._inverse_perms = _pointers(self._keep[s : 2 * s])
        self._phases = _pointers(self._keep[2 * s :])
        self._has_mats = (ctypes.c_uint8 * max(1, s))(*[int(h) for h in self._has])

    def __getstate__(self) -> dict:  # ctypes objects do not pickle (copy.deepcopy, multiprocessing)
        skip = ("_lib", "_perms", "_inverse_perms", "_phases", "_has_mats")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if RUNTIME.load() is None:
            raise RuntimeError(
                f"cannot restore an engine that uses the native kernels here: {RUNTIME.status()}"
            )
        self._bind()

    def _fn(self, name: str):
        return getattr(self._lib, name + self._suffix)

    def _scratch(self, state: torch.Tensor, threads: int, planes: int) -> torch.Tensor:
        """One scratch row of ``planes`` real planes of 2^n values per thread chunk."""
        return torch.empty(threads, planes * state.shape[1], dtype=self.real_dtype)

    def _split(self, state: torch.Tensor) -> int:
        return RUNTIME.threads_for(state.shape[0], state.shape[1])

    # ------------------------------------------------------------------------------------ op bank
    def bank(self, angles: torch.Tensor) -> torch.Tensor:
        """The op bank [B, ops, 2, 2] for angles [B, P]."""
        angles = angles.detach().contiguous()
        param, coef, offset, gen, consts = self._recipe
        n_rot, n_const = param.numel(), consts.shape[0]
        bank = torch.empty(angles.shape[0], n_rot + n_const, 2, 2, dtype=self.dtype)
        self._fn("qrnn_bank")(
            angles.data_ptr(), 0, angles.shape[0], angles.shape[1], n_rot, param.data_ptr(),
            coef.data_ptr(), offset.data_ptr(), gen.data_ptr(), n_const, consts.data_ptr(),
            bank.data_ptr(),
        )  # fmt: skip
        return bank

    def _fuse(self, bank: torch.Tensor) -> torch.Tensor:
        """Every gate chain multiplied out: [B, segments, n, 2, 2]."""
        bank = bank.contiguous()
        chains, width = self._table.shape
        mats = torch.empty(bank.shape[0], self.n_segments, self.n_qubits, 2, 2, dtype=bank.dtype)
        self._fn("qrnn_fuse")(
            bank.data_ptr(), 0, bank.shape[0], bank.shape[1], self._table.data_ptr(), chains, width,
            mats.data_ptr(),
        )  # fmt: skip
        return mats

    # ------------------------------------------------------------------------------------ forward
    def forward(
        self, state: torch.Tensor, bank: torch.Tensor, readouts: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(V·state, its readouts or ``None``)."""
        fused = readouts and self.one_qubit_readouts
        state, mats = state.contiguous(), self._fuse(bank)
        out = torch.empty_like(state)
        rho = torch.empty(state.shape[0], self.n_qubits, 2, 2, dtype=self.dtype) if fused else None
        threads = self._split(state)
        scratch = self._scratch(state, threads, 4)
        fn, n, s = self._fn("qrnn_forward"), self.n_qubits, self.n_segments

        def call(k: int, b0: int, b1: int) -> None:
            fn(
                state.data_ptr(), out.data_ptr(), b0, b1, n, s, mats.data_ptr(), self._has_mats,
                self._perms, self._phases, rho.data_ptr() if rho is not None else None,
                scratch[k].data_ptr(),
            )  # fmt: skip

        RUNTIME.run_split(threads, state.shape[0], call)
        if not readouts:
            return out, None
        return out, self._from_rho(rho) if fused else self.fallback.readouts(out)

    def _rdm1(self, state: torch.Tensor) -> torch.Tensor:
        """Every qubit's reduced density matrix ρ_q[a, c] = Σ ψ_a ψ_c*: [B, n, 2, 2]."""
        state = state.contiguous()
        rho = torch.empty(state.shape[0], self.n_qubits, 2, 2, dtype=self.dtype)
        threads = self._split(state)
        scratch = self._scratch(state, threads, 2)
        fn, n = self._fn("qrnn_rdm1"), self.n_qubits
        RUNTIME.run_split(
            threads,
            state.shape[0],
            lambda k, b0, b1: fn(
                state.data_ptr(), b0, b1, n, rho.data_ptr(), scratch[k].data_ptr()
            ),
        )
        return rho

    def _from_rho(self, rho: torch.Tensor) -> torch.Tensor:
        trace, _, coef = self._terms
        return torch.matmul(torch.matmul(rho.view(rho.shape[0], -1), trace).real, coef)

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        if not self.one_qubit_readouts:
            return self.fallback.readouts(state)
        return self._from_rho(self._rdm1(state))

    # ------------------------------------------------------------------------------------ backward
    def _weights(self, grad: torch.Tensor) -> torch.Tensor:
        """Per-qubit Hermitian 2·Σ_t w_t P_t [B, n, 2, 2]: ∂L/∂ψ = Σ_q W_q ψ for L = Σ_k grad_k
        ⟨O_k⟩."""
        _, place, coef = self._terms
        w = torch.matmul(grad.to(self.real_dtype), coef.T).to(self.dtype)
        return (2 * torch.matmul(w, place)).view(grad.shape[0], self.n_qubits, 2, 2)

    def readouts_vjp(self, state: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """∂L/∂ψ of L = Σ_k grad_k ⟨O_k⟩."""
        if not self.one_qubit_readouts:
            return self.fallback.readouts_vjp(state, grad)
        state, weights = state.contiguous(), self._weights(grad).contiguous()
        out = torch.empty_like(state)
        threads = self._split(state)
        scratch = self._scratch(state, threads, 4)
        fn, n = self._fn("qrnn_apply_sum"), self.n_qubits
        RUNTIME.run_split(
            threads,
            state.shape[0],
            lambda k, b0, b1: fn(
                state.data_ptr(),
                out.data_ptr(),
                b0,
                b1,
                n,
                weights.data_ptr(),
                scratch[k].data_ptr(),
            ),
        )
        return out

    def backward(
        self,
        state: torch.Tensor,
        angles: torch.Tensor,
        grad: torch.Tensor | None,
        readout_grad: torch.Tensor | None,
        bank: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ψ_in, ∂L/∂ψ_in, ∂L/∂angles) from the output ``state`` of V, the gradient ``grad`` of the
        output state (``None``: zero) and ``readout_grad`` of its readouts (``None``: none read)."""
        weights = None
        if readout_grad is not None:
            if self.one_qubit_readouts:
                weights = self._weights(readout_grad).contiguous()
            else:
                vjp = self.fallback.readouts_vjp(state, readout_grad)
                grad = vjp if grad is None else grad + vjp
        state, mats = state.contiguous(), self._fuse(bank)
        grad = grad.contiguous() if grad is not None else None
        psi, g = torch.empty_like(state), torch.empty_like(state)
        batch = state.shape[0]
        blocks = torch.empty(batch, self.n_segments, self.n_qubits, 2, 2, dtype=self.dtype)
        threads = self._split(state)
        scratch = self._scratch(state, threads, 6)
        fn, n, s = self._fn("qrnn_backward"), self.n_qubits, self.n_segments

        def call(k: int, b0: int, b1: int) -> None:
            fn(
                state.data_ptr(), grad.data_ptr() if grad is not None else None, psi.data_ptr(),
                g.data_ptr(), b0, b1, n, s, mats.data_ptr(), self._has_mats, self._inverse_perms,
                self._phases, weights.data_ptr() if weights is not None else None,
                blocks.data_ptr(), scratch[k].data_ptr(),
            )  # fmt: skip

        RUNTIME.run_split(threads, batch, call)
        grad_rot = self._rotation_grads(bank, blocks).to(angles.dtype)
        return psi, g, self.fallback.angle_grads(angles, grad_rot)

    def _rotation_grads(self, bank: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """∂L/∂(each rotation's angle) [B, rotations] from the op bank and the K blocks."""
        bank, blocks = bank.contiguous(), blocks.contiguous()
        chains, width = self._table.shape
        rows, positions, ops, paulis = self._rotations
        grad = torch.zeros(bank.shape[0], self.n_rot, dtype=self.real_dtype)
        self._fn("qrnn_rotation_grads")(
            bank.data_ptr(), 0, bank.shape[0], bank.shape[1], self._table.data_ptr(), chains, width,
            blocks.data_ptr(), rows.numel(), rows.data_ptr(), positions.data_ptr(), ops.data_ptr(),
            paulis.data_ptr(), self.n_rot, grad.data_ptr(),
        )  # fmt: skip
        return grad


__all__ = ["NativeKernels"]
