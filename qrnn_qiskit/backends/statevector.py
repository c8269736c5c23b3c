"""Batched torch statevector engine compiled from a Qiskit ``QuantumCircuit``.

The engine walks the circuit's instructions once and compiles them into a short program:

* **segments**: a layer of single-qubit gates (each qubit's chain of gates fused into one per-sample
  2×2 matrix, applied as Kronecker-factored matrices over groups of qubits: a few batched matmuls
  per layer), followed by a block of *monomial* gates (cx, cz, x, y, z, s, sdg) composed into one
  signed permutation (a single gather and a phase multiply);
* **readouts**: every Pauli term whose support lies inside one qubit group is read from that group's
  reduced density matrix (one batched matmul per group); other terms use a gather over the flip
  mask.

On the CPU the same program runs by default through native kernels (``native.py``: C compiled on
first use): one cache-resident 2×2 pass per qubit instead of Kronecker blocks, the reversible
backward in one walk per sample, and one-qubit reduced density matrices for readouts made of
one-qubit terms. The torch path stays for other devices, for ``kernel="torch"``, where no C compiler
exists, and as the autograd oracle.

Basis order is Qiskit's: bit q of the amplitude index is qubit q, so ``state`` compares directly
with ``qiskit.quantum_info.Statevector.data``. Everything is differentiable with autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression
from qiskit.quantum_info import SparsePauliOp

from . import native

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


def _monomial_action(
    name: str, qubits: Sequence[int], k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
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
    """Dense matrix of a Pauli string in Qiskit order (rightmost character = least significant
    qubit)."""
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
            return value, label[len(prefix) :]
    return phase, label


@dataclass
class _CompiledSegment:
    table: torch.Tensor | None  # [n, Lmax] op-bank indices of each qubit's chain
    perm: torch.Tensor | None  # ψ'_i = phase_i · ψ_{perm_i}
    inverse_perm: torch.Tensor | None
    phase: torch.Tensor | None
    rot_ops: torch.Tensor  # rotation indices in this segment,
    rot_qubits: torch.Tensor  # their qubits,
    rot_slots: torch.Tensor  # and their chain slots q·Lmax + position


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
        circuit: a parametrized circuit over {rx, ry, rz, h, x, y, z, s, sdg, cx, cz}; rotation
        angles may be
            numbers or linear expressions a·θ + b of one parameter.
        observables: readout observables (Hermitian ``SparsePauliOp`` s on ``circuit.num_qubits``
        qubits). dtype: ``torch.complex64`` (default) or ``torch.complex128``.
        device: torch device ("cpu", "cuda", ...).
        group_size: qubits per Kronecker group of the torch path (default:
        :func:`default_group_size`). kernel: ``"auto"`` (native CPU kernels where they load, else
        torch), ``"native"`` (required: an error
            if they cannot be built) or ``"torch"``. ``engine.kernel`` says which one runs.
    """

    def __init__(
        self,
        circuit: QuantumCircuit,
        observables: Sequence[SparsePauliOp],
        *,
        dtype: torch.dtype = torch.complex64,
        device: str | torch.device = "cpu",
        group_size: int | None = None,
        kernel: str = "auto",
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
        if group_size is not None and (
            isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
        ):
            raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
        g = min(group_size or default_group_size(self.n_qubits), self.n_qubits)
        self.groups = [(lo, min(lo + g, self.n_qubits)) for lo in range(0, self.n_qubits, g)]
        if kernel not in ("auto", "native", "torch"):
            raise ValueError(f"kernel must be 'auto', 'native' or 'torch', got {kernel!r}")
        self._gather_cache: dict = {}
        self._compile_gates()
        self._compile_readouts()
        self._native = self._compile_native(kernel)
        self.kernel = "native" if self._native is not None else "torch"
        self._native_readouts_on = self._native is not None and self._native_terms is not None

    # ------------------------------------------------------------------ compilation
    def _angle(self, value, name: str) -> tuple[int | None, float, float]:
        """(parameter index or None, coefficient, offset) of a gate angle a·θ + b."""
        if not isinstance(value, ParameterExpression):
            return None, 0.0, float(value)
        params = list(value.parameters)
        if not params:
            return None, 0.0, float(value)
        if len(params) != 1:
            raise UnsupportedCircuitError(
                f"gate {name!r}: angle {value} depends on several parameters; only a·θ + b is "
                "supported"
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
        gens = (
            np.stack([list(_ROTATION_GEN.values())[k] for k in rot_kind])
            if n_rot
            else np.zeros((0, 2, 2))
        )
        self._rot_gen = torch.tensor(gens, dtype=cdt, device=dev)
        bank_const = np.stack(constants + [np.eye(2, dtype=complex)])
        self._const_bank = torch.tensor(bank_const, dtype=cdt, device=dev)
        self._eye2 = torch.eye(2, dtype=cdt, device=dev)

        # Per segment: a chain table [n, Lmax] (identity-padded; None when the segment has no 1q
        # gates), the signed permutation of its monomial block (perm, phase; None when trivial), and
        # for the backward pass the positions (qubit, chain slot) of its rotations.
        self._segments: list[_CompiledSegment] = []
        k = np.arange(self.dim, dtype=np.int64)
        for seg in segments:
            lmax = max(len(c) for c in seg.chains)
            table = None
            rot_ops, rot_qubits, rot_slots = [], [], []
            if lmax:
                rows = [c + [identity] * (lmax - len(c)) for c in seg.chains]
                table = torch.tensor(rows, dtype=torch.long, device=dev)
                for q, chain in enumerate(seg.chains):
                    for j, ref in enumerate(chain):
                        if ref < n_rot:
                            rot_ops.append(ref)
                            rot_qubits.append(q)
                            rot_slots.append(q * lmax + j)
            perm = inverse_perm = phase = None
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
                    inverse_perm = torch.tensor(sigma, dtype=torch.long, device=dev)
                phase_out = ph[inverse]
                if not np.allclose(phase_out, 1.0):
                    phase = torch.tensor(phase_out, dtype=cdt, device=dev)
            if table is None and perm is None and phase is None:
                continue
            as_index = lambda xs: torch.tensor(xs, dtype=torch.long, device=dev)  # noqa: E731
            self._segments.append(
                _CompiledSegment(
                    table,
                    perm,
                    inverse_perm,
                    phase,
                    as_index(rot_ops),
                    as_index(rot_qubits),
                    as_index(rot_slots),
                )
            )
        self.n_segments = len(self._segments)
        # Hermitian generator P of each rotation, R(θ) = exp(-iθP/2)
        paulis = {0: _FIXED_1Q["x"], 1: _FIXED_1Q["y"], 2: _FIXED_1Q["z"]}
        gen = np.stack([paulis[kind] for kind in rot_kind]) if n_rot else np.zeros((0, 2, 2))
        self._rot_pauli = torch.tensor(gen, dtype=cdt, device=dev)
        # per group: [D², g·4] 0/1 table reducing a D×D group matrix to the 2×2 blocks of each of
        # its qubits
        self._reduce_tables = []
        for lo, hi in self.groups:
            size = hi - lo
            d = 1 << size
            table = np.zeros((d, d, size, 2, 2))
            for i in range(d):
                for q in range(size):
                    a = (i >> q) & 1
                    for b in (0, 1):
                        j = i ^ ((a ^ b) << q)
                        table[i, j, q, a, b] = 1.0
            self._reduce_tables.append(
                torch.tensor(table.reshape(d * d, size * 4), dtype=cdt, device=dev)
            )

    def _compile_readouts(self) -> None:
        n, dim = self.n_qubits, self.dim
        labels: list[str] = []
        for j, obs in enumerate(self.observables):
            if not isinstance(obs, SparsePauliOp):
                raise TypeError(f"observable {j} must be a SparsePauliOp, got {type(obs).__name__}")
            if obs.num_qubits != n:
                raise ValueError(
                    f"observable {j} acts on {obs.num_qubits} qubits; the circuit has {n}"
                )
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
        self._n_terms = len(labels)

        # Terms are evaluated group by group, then mask by mask; `order` lists the term index of
        # each evaluated column so that the coefficient rows can be permuted once here instead of
        # scattered later.
        order: list[int] = []
        # group-local terms: Tr(ρ_G P) = Σ_ij ρ_ij P_ji  -> one matmul with a [D², K] table per
        # group
        self._group_terms: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        remaining = []
        by_group: dict[int, list[int]] = {}
        for t, label in enumerate(labels):
            support = [n - 1 - pos for pos, ch in enumerate(label) if ch != "I"]
            home = next(
                (
                    gi
                    for gi, (lo, hi) in enumerate(self.groups)
                    if all(lo <= q < hi for q in support)
                ),
                None,
            )
            if home is None:
                remaining.append(t)
            else:
                by_group.setdefault(home, []).append(t)
        for gi in sorted(by_group):
            terms = by_group[gi]
            lo, hi = self.groups[gi]
            mats = [
                _pauli_matrix(labels[t][n - hi : n - lo]) for t in terms
            ]  # characters of qubits hi-1..lo
            trace_table = torch.tensor(
                np.stack([m.T.reshape(-1) for m in mats], axis=1), dtype=cdt, device=dev
            )
            matrices = torch.tensor(np.stack([m.reshape(-1) for m in mats]), dtype=cdt, device=dev)
            self._group_terms.append((gi, trace_table, matrices))
            order += terms
        # spanning terms: Σ_i conj(ψ_i) W(i) ψ_{i^m}, one gather per distinct flip mask m
        k = np.arange(dim, dtype=np.int64)
        self._span_terms: list[tuple[torch.Tensor, torch.Tensor]] = []
        by_mask: dict[int, list[tuple[int, np.ndarray]]] = {}
        for t in remaining:
            mask, g = _pauli_action(labels[t], k)
            by_mask.setdefault(mask, []).append((t, g[k ^ mask]))
        for mask, items in by_mask.items():
            idx = torch.tensor(k ^ mask, dtype=torch.long, device=dev)
            weights = torch.tensor(np.stack([w for _, w in items], axis=1), dtype=cdt, device=dev)
            self._span_terms.append((idx, weights))
            order += [t for t, _ in items]
        # Pauli expectations are real, so only the real part of each coefficient contributes
        self._readout_coef = torch.tensor(coef.real[order], dtype=self.real_dtype, device=dev)

        # Native readouts, when every term acts on at most one qubit: Tr(ρ_q P) from one-qubit
        # reduced density matrices ρ [B, n, 2, 2] (flattened: column q·4 + 2a + c), with the terms
        # in label order.
        self._native_terms = None
        supports = [[n - 1 - pos for pos, ch in enumerate(label) if ch != "I"] for label in labels]
        if all(len(support) <= 1 for support in supports):
            trace = np.zeros((n * 4, len(labels)), dtype=complex)
            place = np.zeros((len(labels), n * 4), dtype=complex)
            for t, (label, support) in enumerate(zip(labels, supports)):
                q = support[0] if support else 0
                pauli = _pauli_matrix(label[n - 1 - q]) if support else np.eye(2)
                trace[q * 4 : (q + 1) * 4, t] = pauli.T.reshape(-1)  # Σ_ac ρ_ac P_ca
                place[t, q * 4 : (q + 1) * 4] = pauli.reshape(-1)
            self._native_terms = (
                torch.tensor(trace, dtype=cdt),
                torch.tensor(place, dtype=cdt),
                torch.tensor(coef.real, dtype=self.real_dtype),
            )

    def _compile_native(self, kernel: str) -> native.NativeProgram | None:
        """The segment program for the native kernels, or ``None`` where the torch path runs."""
        if kernel == "torch" or (kernel == "auto" and self.device.type != "cpu"):
            return None
        if self.device.type != "cpu":
            raise ValueError(f"kernel='native' runs on the CPU only, not on {self.device}")
        if self.n_qubits < native.MIN_QUBITS:
            if kernel == "native":
                raise ValueError(
                    f"kernel='native' needs at least {native.MIN_QUBITS} qubits, got "
                    f"{self.n_qubits}"
                )
            return None
        library = native.load()
        if library is None:
            if kernel == "native":
                raise RuntimeError(f"kernel='native' requested but {native.status()}")
            return None
        # every segment's chain table padded to one width: all fused matrices come from one product
        width = max(
            (seg.table.shape[1] for seg in self._segments if seg.table is not None), default=1
        )
        identity = self._const_bank.shape[0] - 1 + self._n_rot
        tables = []
        for seg in self._segments:
            table = seg.table if seg.table is not None else torch.full((self.n_qubits, 1), identity)
            pad = torch.full((self.n_qubits, width - table.shape[1]), identity, dtype=torch.long)
            tables.append(torch.cat([table, pad], dim=1))
        # every rotation's chain (segment·n + qubit), position in it and index
        rows, positions, ops = [], [], []
        for si, seg in enumerate(self._segments):
            if seg.table is None:
                continue
            lmax = seg.table.shape[1]
            for op, q, slot in zip(
                seg.rot_ops.tolist(), seg.rot_qubits.tolist(), seg.rot_slots.tolist()
            ):
                rows.append(si * self.n_qubits + q)
                positions.append(slot % lmax)
                ops.append(op)
        rotations = (
            *(torch.tensor(x, dtype=torch.long) for x in (rows, positions, ops)),
            self._rot_pauli[torch.tensor(ops, dtype=torch.long)] if ops else self._rot_pauli,
        )
        return native.NativeProgram(
            library,
            self.n_qubits,
            [seg.table is not None for seg in self._segments],
            [seg.perm for seg in self._segments],
            [seg.inverse_perm for seg in self._segments],
            [seg.phase for seg in self._segments],
            self.dtype,
            torch.cat(tables),
            rotations,
            self._n_rot,
            (self._rot_param, self._rot_coef, self._rot_offset, self._rot_gen, self._const_bank),
        )

    # ------------------------------------------------------------------ public execution
    def initial_state(self, batch: int) -> torch.Tensor:
        """|0…0⟩ as a [batch, 2**n] complex tensor."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        state = torch.zeros(batch, self.dim, dtype=self.dtype, device=self.device)
        state[:, 0] = 1.0
        return state

    def step(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Apply the circuit with per-sample angles [batch, P] (ordered as ``circuit.parameters``).

        Differentiable; the backward pass is hand-written and recomputes intermediate states from
        the output (unitary steps are reversible), so only the output state is kept for it.
        """
        angles = self._check(state, angles)
        out, _ = _StepFunction.apply(state, angles, self, None, False)
        return out

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        """Real expectation values [batch, len(observables)] of the readout observables
        (differentiable)."""
        self._check(state)
        return _ReadoutFunction.apply(state, self)

    def step_readouts(
        self, state: torch.Tensor, angles: torch.Tensor, tape: ReversibleTape | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` then ``readouts`` in one call. With a ``tape`` no state is stored for backward
        at all: the backward pass walks the tape's sequence in reverse, recomputing ψ_{t-1} =
        U(θ_t)† ψ_t."""
        angles = self._check(state, angles)
        return _StepFunction.apply(state, angles, self, tape, True)

    def sequence(
        self, angles: torch.Tensor, state: torch.Tensor | None = None, *, reversible: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run fixed angles [batch, T, P] from ``state`` (default |0…0⟩): (readouts [batch, T, R],
        final state)."""
        if angles.dim() != 3:
            raise ValueError(
                f"angles must have shape [batch, T, {self.n_params}], got {tuple(angles.shape)}"
            )
        state = self.initial_state(angles.shape[0]) if state is None else state
        tape = ReversibleTape() if reversible else None
        values = []
        for t in range(angles.shape[1]):
            state, z = self.step_readouts(state, angles[:, t], tape)
            values.append(z)
        return torch.stack(values, dim=1), state

    def step_autograd(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """``step`` differentiated by plain autograd (keeps every intermediate): the oracle for the
        custom backward."""
        return self._apply_circuit(state, self._check(state, angles))

    def readouts_autograd(self, state: torch.Tensor) -> torch.Tensor:
        """``readouts`` differentiated by plain autograd: the oracle for the custom backward."""
        self._check(state)
        return self._readout_values(state)

    # ------------------------------------------------------------------ kernels
    def _check(
        self, state: torch.Tensor, angles: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        if state.dim() != 2 or state.shape[1] != self.dim:
            raise ValueError(f"state must have shape [batch, {self.dim}], got {tuple(state.shape)}")
        if state.dtype != self.dtype:
            raise ValueError(f"state dtype {state.dtype} does not match the engine's {self.dtype}")
        if angles is None:
            return None
        if angles.dim() != 2 or angles.shape != (state.shape[0], self.n_params):
            raise ValueError(
                f"angles must have shape [{state.shape[0]}, {self.n_params}], got "
                f"{tuple(angles.shape)}"
            )
        return angles.to(self.real_dtype)

    def _bank(self, angles: torch.Tensor) -> torch.Tensor:
        """Op bank [B, n_ops+1, 2, 2]: rotations from ``angles``, then constants, then identity."""
        batch = angles.shape[0]
        consts = self._const_bank.expand(batch, -1, -1, -1)
        if not self._n_rot:
            return consts
        half = 0.5 * (angles[:, self._rot_param] * self._rot_coef + self._rot_offset)
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
        """Kronecker products of per-qubit matrices [B, n, 2, 2] for each group: [B, D, D], high
        qubit first."""
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

    def _group_view(self, gi: int) -> tuple[int, int, int]:
        lo, hi = self.groups[gi]
        d, right = 1 << (hi - lo), 1 << lo
        return self.dim // (d * right), d, right

    def _apply_group(self, state: torch.Tensor, gi: int, mat: torch.Tensor) -> torch.Tensor:
        """``mat`` [B, D, D] applied to group ``gi``'s qubits of ``state`` [B, ..., N] (any middle
        dims)."""
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
        ``mat`` there."""
        shape = state.shape
        view = state.view(*shape[:-1], -1, 1 << size).mT
        return torch.matmul(mat if state.dim() == 2 else mat[:, None], view).reshape(shape)

    def _gather(self, state: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """``state[..., index]``; outside autograd complex64 amplitudes move as float64 words
        (faster)."""
        if index is None:
            return state
        if state.requires_grad:
            return state[..., index]
        words = (
            state.view(torch.float64)
            if state.dtype == torch.complex64
            else torch.view_as_real(state)
        )
        if state.dtype == torch.complex64:
            key = (tuple(words.shape), index.data_ptr())
            expanded = self._gather_cache.get(key)
            if expanded is None:  # the index broadcast to the batch, kept per (shape, permutation)
                if len(self._gather_cache) >= 16:
                    self._gather_cache.clear()
                expanded = self._gather_cache[key] = index.expand(words.shape).contiguous()
            return torch.gather(words, -1, expanded).view(torch.complex64)
        return torch.view_as_complex(torch.index_select(words, -2, index).contiguous())

    def _apply_circuit(
        self, state: torch.Tensor, angles: torch.Tensor, bank: torch.Tensor | None = None
    ) -> torch.Tensor:
        """U(θ)·state: each group matrix is applied by one matmul that also rotates the index bits
        (``_rotate_in``), so only the entangler's permutation needs a gather. Differentiable by
        autograd too (``step_autograd``), which is how the hand-written backward is checked."""
        bank = self._bank(angles) if bank is None else bank
        state = state.contiguous()
        for seg in self._segments:
            if seg.table is not None:
                mats = self._group_matrices(self._fused(bank, seg.table))
                for (lo, hi), mat in zip(reversed(self.groups), reversed(mats)):
                    state = self._rotate_in(state, hi - lo, mat)
            state = self._gather(state, seg.perm)
            if seg.phase is not None:
                state = state * seg.phase
        if self.global_phase != 1.0:
            state = state * self.global_phase
        return state

    def _readout_values(self, state: torch.Tensor) -> torch.Tensor:
        columns = []
        batch = state.shape[0]
        for gi, trace_table, _ in self._group_terms:
            rho = self._group_outer(state, state, gi)  # ρ_ij = Σ ψ_i ψ_j*
            columns.append(torch.matmul(rho.reshape(batch, -1), trace_table))
        for idx, weights in self._span_terms:
            columns.append(torch.matmul(state.conj() * state[:, idx], weights))
        terms = torch.cat(columns, dim=1) if len(columns) > 1 else columns[0]
        return torch.matmul(terms.real, self._readout_coef)

    def _readouts_vjp(self, state: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
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

    def _step_vjp(
        self,
        state: torch.Tensor,
        angles: torch.Tensor,
        grad: torch.Tensor,
        bank: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Walk the step backwards from its output ``state``: (ψ_in, ∂L/∂ψ_in, ∂L/∂angles).

        ψ and its gradient g travel together as one [B, 2, N] tensor: every gate is unitary, so both
        are mapped by U† and each gather or matmul serves the pair.
        """
        batch = state.shape[0]
        pair = torch.stack([state, grad], dim=1)
        if self.global_phase != 1.0:
            pair = pair * complex(np.conj(self.global_phase))
        bank = self._bank(angles) if bank is None else bank
        grad_rot = angles.new_zeros(batch, self._n_rot)
        for seg in reversed(self._segments):
            if seg.phase is not None:
                pair = pair * seg.phase.conj()
            pair = self._gather(pair, seg.inverse_perm)
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
        return pair[:, 0], pair[:, 1], self._angle_grads(angles, grad_rot)

    def _add_rotation_grads(
        self,
        grad_rot: torch.Tensor,
        seg: _CompiledSegment,
        bank: torch.Tensor,
        reduced: torch.Tensor,
    ) -> torch.Tensor:
        """Add a segment's rotation gradients to ``grad_rot`` [B, rotations], given each qubit's 2×2
        block K_q[a, c] = Σ ψ_a g_c* [B, n, 2, 2] at the output of the segment's single-qubit layer:
        dL/dθ = ½ Im Tr(P' K_q) with P' = S P S†, S the gates after the rotation in its qubit's
        chain (the native kernels' ``qrnn_rotation_grads`` computes the same)."""
        batch, lmax = reduced.shape[0], seg.table.shape[1]
        suffix = [self._eye2.expand(batch, self.n_qubits, 2, 2)]
        for j in range(lmax - 1, 0, -1):
            suffix.append(torch.matmul(suffix[-1], bank[:, seg.table[:, j]]))
        after = torch.stack(suffix[::-1], dim=2).reshape(batch, -1, 2, 2)[
            :, seg.rot_slots
        ]  # [B, n·Lmax] → rotations
        generator = torch.matmul(torch.matmul(after, self._rot_pauli[seg.rot_ops]), after.mH)
        trace = (generator * reduced[:, seg.rot_qubits].transpose(-1, -2)).sum(dim=(-1, -2))
        return grad_rot.index_add(1, seg.rot_ops, 0.5 * trace.imag)

    def _angle_grads(self, angles: torch.Tensor, grad_rot: torch.Tensor) -> torch.Tensor:
        """∂L/∂angles [B, P] from the gradients of the individual rotations."""
        grad_angles = angles.new_zeros(angles.shape[0], self.n_params)
        if self._n_rot:
            grad_angles = grad_angles.index_add(1, self._rot_param, grad_rot * self._rot_coef)
        return grad_angles

    # ------------------------------------------------------------------ dispatch (native kernels or
    # torch)
    def _bank_fast(self, angles: torch.Tensor) -> torch.Tensor:
        """``_bank`` outside autograd, on the fastest path."""
        return self._bank(angles) if self._native is None else self._native.bank(angles.detach())

    def _forward(
        self, state: torch.Tensor, bank: torch.Tensor, with_readouts: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(U(θ)·state, its readouts or ``None``) outside autograd, on the fastest path."""
        if self._native is None:
            out = self._apply_circuit(state, None, bank)
            return out, self._readout_values(out) if with_readouts else None
        fused = with_readouts and self._native_readouts_on
        out, rho = self._native.forward(state, self._native.fuse(bank), readouts=fused)
        if self.global_phase != 1.0:
            out = out * self.global_phase
        if not with_readouts:
            return out, None
        return out, self._native_readouts(rho) if fused else self._readout_values(out)

    def _native_readouts(self, rho: torch.Tensor) -> torch.Tensor:
        """Readouts from one-qubit reduced density matrices ρ [B, n, 2, 2] (one-qubit terms
        only)."""
        trace, _, coef = self._native_terms
        return torch.matmul(torch.matmul(rho.view(rho.shape[0], -1), trace).real, coef)

    def _native_weights(self, grad: torch.Tensor) -> torch.Tensor:
        """Per-qubit Hermitian 2·Σ_t w_t P_t [B, n, 2, 2] with ∂L/∂ψ = Σ_q W_q ψ for L = Σ_k grad_k
        ⟨O_k⟩."""
        _, place, coef = self._native_terms
        w = torch.matmul(grad.to(self.real_dtype), coef.T).to(self.dtype)
        return (2 * torch.matmul(w, place)).view(grad.shape[0], self.n_qubits, 2, 2)

    def _readouts_fast(self, state: torch.Tensor) -> torch.Tensor:
        """``_readout_values`` outside autograd, on the fastest path."""
        if not self._native_readouts_on:
            return self._readout_values(state)
        return self._native_readouts(self._native.rdm1(state))

    def _readouts_vjp_fast(self, state: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """∂L/∂ψ of L = Σ_k grad_k ⟨O_k⟩, on the fastest path."""
        if not self._native_readouts_on:
            return self._readouts_vjp(state, grad)
        return self._native.apply_sum(state, self._native_weights(grad))

    def _step_vjp_fast(
        self,
        state: torch.Tensor,
        angles: torch.Tensor,
        grad: torch.Tensor | None,
        readout_grad: torch.Tensor | None = None,
        bank: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ψ_in, ∂L/∂ψ_in, ∂L/∂angles) from the step's output ``state``, the gradient ``grad`` of
        its output state (``None``: zero) and ``readout_grad`` of its readouts (``None``: no
        readouts), fastest path."""
        weights = None
        if readout_grad is not None:
            if self._native_readouts_on:
                weights = self._native_weights(readout_grad)
            else:
                vjp = self._readouts_vjp(state, readout_grad)
                grad = vjp if grad is None else grad + vjp
        if self._native is None:
            return self._step_vjp(
                state, angles, torch.zeros_like(state) if grad is None else grad, bank
            )
        bank = self._bank_fast(angles) if bank is None else bank
        if (
            self.global_phase != 1.0
        ):  # U = e^{iφ}·V: walk back through e^{-iφ} first (W commutes with it)
            back = complex(np.conj(self.global_phase))
            state = state * back
            grad = grad * back if grad is not None else None
        previous, grad_in, blocks = self._native.backward(
            state, grad, self._native.fuse(bank), weights
        )
        grad_rot = self._native.rotation_grads(bank, blocks).to(angles.dtype)
        return previous, grad_in, self._angle_grads(angles, grad_rot)

    def to(self, device: str | torch.device) -> StatevectorEngine:
        """A copy of this engine on another device."""
        return StatevectorEngine(
            self.circuit,
            self.observables,
            dtype=self.dtype,
            device=device,
            group_size=self.groups[0][1],
            kernel="auto" if self.kernel == "native" else "torch",
        )

    def __repr__(self) -> str:
        return (
            f"StatevectorEngine(n_qubits={self.n_qubits}, params={self.n_params}, "
            f"readouts={self.n_readouts}, "
            f"segments={self.n_segments}, dtype={self.dtype}, device={self.device}, "
            f"kernel={self.kernel!r})"
        )


class ReversibleTape:
    """The newest state of a sequence of ``step_readouts`` calls, walked backwards during backward.

    Forward pushes each output state, keeping only the newest plus a checkpoint every
    ``checkpoint_every`` steps (and each step's angles, which are small). Backward normally visits
    the steps in reverse order and recomputes ψ_{t-1} = U(θ_t)† ψ_t; checkpoints reset round-off
    drift, and a backward that starts before the last step (a loss that ignores the sequence's end)
    recomputes forward from the nearest checkpoint.
    """

    def __init__(self, checkpoint_every: int = 64) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.checkpoint_every = checkpoint_every
        self.length = 0
        self._cursor = -1
        self._current: torch.Tensor | None = None
        self._checkpoints: dict[int, torch.Tensor] = {}
        self._angles: list[torch.Tensor] = []

    def push(self, state: torch.Tensor, angles: torch.Tensor) -> int:
        position = self.length
        self.length += 1
        self._current, self._cursor = state, position
        self._angles.append(angles)
        if position % self.checkpoint_every == 0:
            self._checkpoints[position] = state
        return position

    def state_at(self, position: int, engine: StatevectorEngine) -> torch.Tensor:
        """ψ after step ``position``."""
        if position > self._cursor or self._current is None:
            raise RuntimeError(
                "reversible backward must run once over the sequence in reverse order "
                f"(step {position} was asked for after step {self._cursor + 1}); use engine.step "
                "for other graphs"
            )
        if position in self._checkpoints:
            return self._checkpoints[position]
        if position == self._cursor:
            return self._current
        start = position - position % self.checkpoint_every
        state = self._checkpoints[start]
        for t in range(start + 1, position + 1):
            state, _ = engine._forward(state, engine._bank_fast(self._angles[t]))
        return state

    def rewind(self, position: int, previous: torch.Tensor) -> None:
        self._current, self._cursor = previous, position - 1


class _StepFunction(torch.autograd.Function):
    """One step (and optionally its readouts) with the hand-written backward. Saved for backward:
    the angles, and without a ``ReversibleTape`` also the small op bank [B, ops, 2, 2] and the
    output state."""

    @staticmethod
    def forward(ctx, state, angles, engine, tape, with_readouts):
        with torch.no_grad():
            bank = engine._bank_fast(angles)
            out, values = engine._forward(state, bank, with_readouts)
            if values is None:
                values = out.new_zeros(out.shape[0], 0).real
        ctx.engine, ctx.tape, ctx.with_readouts = engine, tape, with_readouts
        if tape is None:
            ctx.save_for_backward(angles, bank, out)
        else:  # keep per-step memory minimal: the bank is recomputed from the angles in backward
            ctx.save_for_backward(angles)
            ctx.position = tape.push(out.detach(), angles.detach())
        return out, values

    @staticmethod
    def backward(ctx, grad_out, grad_values):
        engine = ctx.engine
        if ctx.tape is None:
            angles, bank, out = ctx.saved_tensors
        else:
            (angles,) = ctx.saved_tensors
            bank = None
            with torch.no_grad():
                out = ctx.tape.state_at(ctx.position, engine)
        with torch.no_grad():
            readout_grad = grad_values if ctx.with_readouts else None
            previous, grad_in, grad_angles = engine._step_vjp_fast(
                out, angles, grad_out, readout_grad, bank
            )
        if ctx.tape is not None:
            ctx.tape.rewind(ctx.position, previous)
        return (
            grad_in if ctx.needs_input_grad[0] else None,
            grad_angles if ctx.needs_input_grad[1] else None,
            None,
            None,
            None,
        )


class _ReadoutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, state, engine):
        ctx.engine = engine
        ctx.save_for_backward(state)
        with torch.no_grad():
            return engine._readouts_fast(state)

    @staticmethod
    def backward(ctx, grad):
        (state,) = ctx.saved_tensors
        with torch.no_grad():
            return ctx.engine._readouts_vjp_fast(state, grad), None
