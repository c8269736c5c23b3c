"""Batched torch statevector engine compiled from a Qiskit ``QuantumCircuit``.

The engine walks the circuit's instructions once and compiles them into a short program:

* **segments**: a layer of single-qubit gates (each qubit's chain of gates fused into one per-sample 2×2
  matrix, applied as Kronecker-factored matrices over groups of qubits: a few batched matmuls per layer),
  followed by a block of *monomial* gates (cx, cz, x, y, z, s, sdg) composed into one signed permutation
  (a single gather and a phase multiply);
* **readouts**: every Pauli term whose support lies inside one qubit group is read from that group's reduced
  density matrix (one batched matmul per group); other terms use a gather over the flip mask.

Basis order is Qiskit's: bit q of the amplitude index is qubit q, so ``state`` compares directly with
``qiskit.quantum_info.Statevector.data``. Everything is differentiable with autograd.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression
from qiskit.quantum_info import SparsePauliOp

SUPPORTED_GATES = ("rx", "ry", "rz", "h", "x", "y", "z", "s", "sdg", "cx", "cz")
_IGNORED = ("barrier", "id")

_FIXED_1Q = {
    "h": np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2),
    "x": np.array([[0, 1], [1, 0]], dtype=complex),
    "y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "z": np.array([[1, 0], [0, -1]], dtype=complex),
    "s": np.array([[1, 0], [0, 1j]], dtype=complex),
    "sdg": np.array([[1, 0], [0, -1j]], dtype=complex),
}
_MONOMIAL_1Q = ("x", "y", "z", "s", "sdg")
# R(θ) = cos(θ/2)·I + sin(θ/2)·G for these generators G
_ROTATION_GEN = {
    "rx": np.array([[0, -1j], [-1j, 0]], dtype=complex),
    "ry": np.array([[0, -1], [1, 0]], dtype=complex),
    "rz": np.array([[-1j, 0], [0, 1j]], dtype=complex),
}
_ROT_KIND = {"rx": 0, "ry": 1, "rz": 2}


class UnsupportedCircuitError(ValueError):
    """The circuit contains something the statevector engine cannot compile."""


def _rotation_matrix(kind: str, angle: float) -> np.ndarray:
    return np.cos(angle / 2) * np.eye(2) + np.sin(angle / 2) * _ROTATION_GEN[kind]


def _monomial_action(name: str, qubits: Sequence[int], k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gate G acting as G|k⟩ = g(k)|τ(k)⟩ on basis indices ``k``; returns (τ(k), g(k))."""
    ones = np.ones(k.shape, dtype=complex)
    if name == "cx":
        c, t = qubits
        return k ^ (((k >> c) & 1) << t), ones
    if name == "cz":
        a, b = qubits
        return k, np.where(((k >> a) & (k >> b) & 1) == 1, -1.0, 1.0).astype(complex)
    (q,) = qubits
    bit = (k >> q) & 1
    if name == "x":
        return k ^ (1 << q), ones
    if name == "y":
        return k ^ (1 << q), np.where(bit == 0, 1j, -1j)
    if name == "z":
        return k, np.where(bit == 0, 1.0, -1.0).astype(complex)
    if name == "s":
        return k, np.where(bit == 0, 1.0, 1j)
    if name == "sdg":
        return k, np.where(bit == 0, 1.0, -1j)
    raise AssertionError(name)


def _pauli_action(label: str, k: np.ndarray) -> tuple[int, np.ndarray]:
    """Pauli string (Qiskit label order) as P|k⟩ = g(k)|k ^ mask⟩; returns (mask, g(k))."""
    n = len(label)
    mask = 0
    g = np.ones(k.shape, dtype=complex)
    for pos, char in enumerate(label):
        q = n - 1 - pos
        if char == "I":
            continue
        bit = (k >> q) & 1
        if char in "XY":
            mask |= 1 << q
        if char == "Y":
            g = g * np.where(bit == 0, 1j, -1j)
        elif char == "Z":
            g = g * np.where(bit == 0, 1.0, -1.0)
    return mask, g


def _pauli_matrix(label: str) -> np.ndarray:
    """Dense matrix of a Pauli string in Qiskit order (rightmost character = least significant qubit)."""
    singles = {"I": np.eye(2), "X": _FIXED_1Q["x"], "Y": _FIXED_1Q["y"], "Z": _FIXED_1Q["z"]}
    out = np.array([[1.0 + 0j]])
    for char in label:
        out = np.kron(out, singles[char])
    return out


def _split_pauli(label: str) -> tuple[complex, str]:
    """Split a Pauli label such as '-iXZ' into (phase, 'XZ')."""
    phase = 1.0 + 0j
    for prefix, value in (("-i", -1j), ("i", 1j), ("-", -1.0), ("+", 1.0)):
        if label.startswith(prefix):
            return value, label[len(prefix):]
    return phase, label


@dataclass
class _Segment:
    chains: list[list[int]]  # per qubit: op-bank indices, in application order
    mono: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    touched: set = field(default_factory=set)


def default_group_size(n_qubits: int) -> int:
    """Qubits per Kronecker group: 4 (16×16 blocks) measured best on small CPUs for n ≥ 8."""
    return max(1, min(n_qubits, 4))


class StatevectorEngine:
    """Batched statevector simulator of one parametrized circuit, compiled from Qiskit.

    Args:
        circuit: a parametrized circuit over {rx, ry, rz, h, x, y, z, s, sdg, cx, cz}; rotation angles may be
            numbers or linear expressions a·θ + b of one parameter.
        observables: readout observables (Hermitian ``SparsePauliOp`` s on ``circuit.num_qubits`` qubits).
        dtype: ``torch.complex64`` (default) or ``torch.complex128``.
        device: torch device ("cpu", "cuda", ...).
        group_size: qubits per Kronecker group (default: :func:`default_group_size`).
    """

    def __init__(
        self,
        circuit: QuantumCircuit,
        observables: Sequence[SparsePauliOp],
        *,
        dtype: torch.dtype = torch.complex64,
        device: Union[str, torch.device] = "cpu",
        group_size: Optional[int] = None,
    ) -> None:
        if dtype not in (torch.complex64, torch.complex128):
            raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
        self.circuit = circuit
        self.n_qubits = circuit.num_qubits
        if self.n_qubits < 1:
            raise UnsupportedCircuitError("the circuit has no qubits")
        self.dim = 1 << self.n_qubits
        self.dtype = dtype
        self.real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
        self.device = torch.device(device)
        self.parameters = list(circuit.parameters)
        self.n_params = len(self.parameters)
        self.observables = list(observables)
        self.n_readouts = len(self.observables)
        if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1):
            raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
        g = min(group_size or default_group_size(self.n_qubits), self.n_qubits)
        self.groups = [(lo, min(lo + g, self.n_qubits)) for lo in range(0, self.n_qubits, g)]
        self._compile_gates()
        self._compile_readouts()

    # ------------------------------------------------------------------ compilation
    def _angle(self, value, name: str) -> tuple[Optional[int], float, float]:
        """(parameter index or None, coefficient, offset) of a gate angle a·θ + b."""
        if not isinstance(value, ParameterExpression):
            return None, 0.0, float(value)
        params = list(value.parameters)
        if not params:
            return None, 0.0, float(value)
        if len(params) != 1:
            raise UnsupportedCircuitError(
                f"gate {name!r}: angle {value} depends on several parameters; only a·θ + b is supported"
            )
        (p,) = params
        f0, f1, f2 = (float(value.bind({p: x})) for x in (0.0, 1.0, 2.0))
        if abs(f2 - 2 * f1 + f0) > 1e-12:
            raise UnsupportedCircuitError(f"gate {name!r}: angle {value} is not linear in {p.name}")
        return self.parameters.index(p), f1 - f0, f0

    def _compile_gates(self) -> None:
        qc = self.circuit
        if isinstance(qc.global_phase, ParameterExpression) and qc.global_phase.parameters:
            raise UnsupportedCircuitError("a parametrized global phase is not supported")
        self.global_phase = complex(np.exp(1j * float(qc.global_phase)))
        rot_kind: list[int] = []
        rot_param: list[int] = []
        rot_coef: list[float] = []
        rot_offset: list[float] = []
        constants: list[np.ndarray] = []
        # op-bank layout: [rotations..., constants..., identity]; indices fixed up after the walk
        n = self.n_qubits
        segments = [_Segment(chains=[[] for _ in range(n)])]

        def new_segment() -> _Segment:
            seg = _Segment(chains=[[] for _ in range(n)])
            segments.append(seg)
            return seg

        for instruction in qc.data:
            op = instruction.operation
            name = op.name
            qubits = tuple(qc.find_bit(q).index for q in instruction.qubits)
            seg = segments[-1]
            if name in _IGNORED:
                continue
            if name not in SUPPORTED_GATES:
                raise UnsupportedCircuitError(
                    f"instruction {name!r} is not supported by the statevector engine "
                    f"(supported: {', '.join(SUPPORTED_GATES)})"
                )
            if getattr(op, "condition", None) is not None:
                raise UnsupportedCircuitError(f"conditional instruction {name!r} is not supported")
            if name in ("cx", "cz"):
                seg.mono.append((name, qubits))
                seg.touched.update(qubits)
                continue
            (q,) = qubits
            if name in _MONOMIAL_1Q and q in seg.touched:
                seg.mono.append((name, qubits))
                continue
            if q in seg.touched:
                seg = new_segment()
            if name in _ROT_KIND:
                index, coef, offset = self._angle(op.params[0], name)
                if index is None:
                    constants.append(_rotation_matrix(name, offset))
                    seg.chains[q].append(-len(constants))  # negative: constant, fixed below
                else:
                    rot_kind.append(_ROT_KIND[name])
                    rot_param.append(index)
                    rot_coef.append(coef)
                    rot_offset.append(offset)
                    seg.chains[q].append(len(rot_kind) - 1)
            else:
                constants.append(_FIXED_1Q[name])
                seg.chains[q].append(-len(constants))

        n_rot = len(rot_kind)
        identity = n_rot + len(constants)
        for seg in segments:
            for chain in seg.chains:
                for i, ref in enumerate(chain):
                    if ref < 0:
                        chain[i] = n_rot + (-ref - 1)

        dev, cdt, rdt = self.device, self.dtype, self.real_dtype
        self._n_rot = n_rot
        self._rot_param = torch.tensor(rot_param, dtype=torch.long, device=dev)
        self._rot_coef = torch.tensor(rot_coef, dtype=rdt, device=dev)
        self._rot_offset = torch.tensor(rot_offset, dtype=rdt, device=dev)
        gens = np.stack([list(_ROTATION_GEN.values())[k] for k in rot_kind]) if n_rot else np.zeros((0, 2, 2))
        self._rot_gen = torch.tensor(gens, dtype=cdt, device=dev)
        bank_const = np.stack(constants + [np.eye(2, dtype=complex)])
        self._const_bank = torch.tensor(bank_const, dtype=cdt, device=dev)
        self._eye2 = torch.eye(2, dtype=cdt, device=dev)

        # per segment: a chain table [n, Lmax] (identity-padded, or None when the segment has no 1q gates),
        # and the signed permutation of its monomial block (or None)
        self._segments: list[tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]] = []
        k = np.arange(self.dim, dtype=np.int64)
        for seg in segments:
            lmax = max(len(c) for c in seg.chains)
            table = None
            if lmax:
                rows = [c + [identity] * (lmax - len(c)) for c in seg.chains]
                table = torch.tensor(rows, dtype=torch.long, device=dev)
            perm = phase = None
            if seg.mono:
                sigma = k.copy()
                ph = np.ones(self.dim, dtype=complex)
                for gname, gq in seg.mono:
                    tau, g = _monomial_action(gname, gq, sigma)
                    ph = ph * g
                    sigma = tau
                inverse = np.empty_like(sigma)
                inverse[sigma] = k
                if not np.array_equal(inverse, k):
                    perm = torch.tensor(inverse, dtype=torch.long, device=dev)
                phase_out = ph[inverse]
                if not np.allclose(phase_out, 1.0):
                    phase = torch.tensor(phase_out, dtype=cdt, device=dev)
            if table is not None or perm is not None or phase is not None:
                self._segments.append((table, perm, phase))
        self.n_segments = len(self._segments)

    def _compile_readouts(self) -> None:
        n, dim = self.n_qubits, self.dim
        labels: list[str] = []
        coeffs: list[dict[int, complex]] = []
        for j, obs in enumerate(self.observables):
            if not isinstance(obs, SparsePauliOp):
                raise TypeError(f"observable {j} must be a SparsePauliOp, got {type(obs).__name__}")
            if obs.num_qubits != n:
                raise ValueError(f"observable {j} acts on {obs.num_qubits} qubits; the circuit has {n}")
            if not np.allclose((obs - obs.adjoint()).simplify(atol=1e-12).coeffs, 0.0, atol=1e-10):
                raise ValueError(f"observable {j} is not Hermitian")
        index: dict[str, int] = {}
        coef_rows: list[tuple[int, int, complex]] = []
        for j, obs in enumerate(self.observables):
            for raw_label, c in obs.to_list():
                phase, label = _split_pauli(raw_label)
                if label not in index:
                    index[label] = len(labels)
                    labels.append(label)
                coef_rows.append((index[label], j, complex(c) * phase))
        coef = np.zeros((len(labels), len(self.observables)), dtype=complex)
        for i, j, c in coef_rows:
            coef[i, j] += c
        dev, cdt = self.device, self.dtype
        self._readout_coef = torch.tensor(coef, dtype=cdt, device=dev)
        self._n_terms = len(labels)

        # group-local terms: Tr(ρ_group · P) = Σ_ij ρ_ij P_ji  -> one matmul with a [D², K] table per group
        self._group_terms: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        remaining = []
        by_group: dict[int, list[int]] = {}
        for t, label in enumerate(labels):
            support = [n - 1 - pos for pos, ch in enumerate(label) if ch != "I"]
            home = None
            for gi, (lo, hi) in enumerate(self.groups):
                if all(lo <= q < hi for q in support):
                    home = gi
                    break
            if home is None:
                remaining.append(t)
            else:
                by_group.setdefault(home, []).append(t)
        for gi, terms in by_group.items():
            lo, hi = self.groups[gi]
            tables = []
            for t in terms:
                local = labels[t][n - hi: n - lo]  # characters for qubits hi-1 .. lo
                tables.append(_pauli_matrix(local).T.reshape(-1))
            table = torch.tensor(np.stack(tables, axis=1), dtype=cdt, device=dev)
            self._group_terms.append((gi, table, torch.tensor(terms, dtype=torch.long, device=dev)))
        # spanning terms: Σ_i conj(ψ_i) g(i^m) ψ_{i^m}, one gather per distinct flip mask
        k = np.arange(dim, dtype=np.int64)
        self._span_terms: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        by_mask: dict[int, list[tuple[int, np.ndarray]]] = {}
        for t in remaining:
            mask, g = _pauli_action(labels[t], k)
            by_mask.setdefault(mask, []).append((t, g[k ^ mask]))
        for mask, items in by_mask.items():
            idx = torch.tensor(k ^ mask, dtype=torch.long, device=dev)
            weights = torch.tensor(np.stack([w for _, w in items], axis=1), dtype=cdt, device=dev)
            terms = torch.tensor([t for t, _ in items], dtype=torch.long, device=dev)
            self._span_terms.append((idx, weights, terms))

    # ------------------------------------------------------------------ execution
    def initial_state(self, batch: int) -> torch.Tensor:
        """|0…0⟩ as a [batch, 2**n] complex tensor."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        state = torch.zeros(batch, self.dim, dtype=self.dtype, device=self.device)
        state[:, 0] = 1.0
        return state

    def _check_state(self, state: torch.Tensor) -> None:
        if state.dim() != 2 or state.shape[1] != self.dim:
            raise ValueError(f"state must have shape [batch, {self.dim}], got {tuple(state.shape)}")
        if state.dtype != self.dtype:
            raise ValueError(f"state dtype {state.dtype} does not match the engine's {self.dtype}")

    def _fused_single_qubit(self, angles: torch.Tensor) -> Optional[torch.Tensor]:
        """Op bank [B, n_ops+1, 2, 2]: rotations from ``angles``, then constants, then identity."""
        batch = angles.shape[0]
        if self._n_rot:
            half = 0.5 * (angles[:, self._rot_param] * self._rot_coef + self._rot_offset)
            cos = torch.cos(half).to(self.dtype)[..., None, None]
            sin = torch.sin(half).to(self.dtype)[..., None, None]
            rot = cos * self._eye2 + sin * self._rot_gen
            return torch.cat([rot, self._const_bank.expand(batch, -1, -1, -1)], dim=1)
        return self._const_bank.expand(batch, -1, -1, -1)

    def _group_matrices(self, fused: torch.Tensor) -> list[torch.Tensor]:
        """Kronecker products of per-qubit matrices [B, n, 2, 2] for each group: [B, D, D], high qubit first."""
        out = []
        batch = fused.shape[0]
        for lo, hi in self.groups:
            mat = fused[:, hi - 1]
            for q in range(hi - 2, lo - 1, -1):
                d = mat.shape[-1]
                mat = (mat[:, :, None, :, None] * fused[:, q, None, :, None, :]).reshape(batch, 2 * d, 2 * d)
            out.append(mat)
        return out

    def _apply_groups(self, state: torch.Tensor, mats: list[torch.Tensor]) -> torch.Tensor:
        batch = state.shape[0]
        for (lo, hi), mat in zip(self.groups, mats):
            d = 1 << (hi - lo)
            right = 1 << lo
            left = self.dim // (d * right)
            if right == 1:
                state = torch.matmul(state.view(batch, left, d), mat.transpose(1, 2))
            elif left == 1:
                state = torch.matmul(mat, state.view(batch, d, right))
            else:
                state = torch.einsum("bij,bljr->blir", mat, state.view(batch, left, d, right))
            state = state.reshape(batch, self.dim)
        return state

    def step(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Apply the circuit with per-sample angles [batch, P] (ordered as ``circuit.parameters``)."""
        self._check_state(state)
        if angles.dim() != 2 or angles.shape != (state.shape[0], self.n_params):
            raise ValueError(f"angles must have shape [{state.shape[0]}, {self.n_params}], got {tuple(angles.shape)}")
        angles = angles.to(self.real_dtype)
        bank = self._fused_single_qubit(angles)
        for table, perm, phase in self._segments:
            if table is not None:
                fused = bank[:, table[:, 0]]
                for j in range(1, table.shape[1]):
                    fused = torch.matmul(bank[:, table[:, j]], fused)
                state = self._apply_groups(state, self._group_matrices(fused))
            if perm is not None:
                state = state[:, perm]
            if phase is not None:
                state = state * phase
        if self.global_phase != 1.0:
            state = state * self.global_phase
        return state

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        """Real expectation values [batch, len(observables)] of the readout observables."""
        self._check_state(state)
        batch = state.shape[0]
        terms = state.new_zeros(batch, self._n_terms)
        for gi, table, term_idx in self._group_terms:
            lo, hi = self.groups[gi]
            d = 1 << (hi - lo)
            right = 1 << lo
            left = self.dim // (d * right)
            if right == 1:
                psi = state.view(batch, left, d)
                rho = torch.matmul(psi.transpose(1, 2), psi.conj())  # ρ_ij = Σ ψ_i ψ_j*
            elif left == 1:
                psi = state.view(batch, d, right)
                rho = torch.matmul(psi, psi.conj().transpose(1, 2))
            else:
                psi = state.view(batch, left, d, right)
                rho = torch.einsum("blir,bljr->bij", psi, psi.conj())
            terms = terms.index_add(1, term_idx, torch.matmul(rho.reshape(batch, d * d), table))
        for idx, weights, term_idx in self._span_terms:
            prod = state.conj() * state[:, idx]
            terms = terms.index_add(1, term_idx, torch.matmul(prod, weights))
        return torch.matmul(terms, self._readout_coef).real

    def to(self, device: Union[str, torch.device]) -> "StatevectorEngine":
        """A copy of this engine on another device."""
        return StatevectorEngine(
            self.circuit, self.observables, dtype=self.dtype, device=device, group_size=self.groups[0][1]
        )

    def __repr__(self) -> str:
        return (
            f"StatevectorEngine(n_qubits={self.n_qubits}, params={self.n_params}, readouts={self.n_readouts}, "
            f"segments={self.n_segments}, dtype={self.dtype}, device={self.device})"
        )
