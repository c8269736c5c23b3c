"""Compilation of a Qiskit step circuit and its readout observables into frozen, kernel-agnostic
programs.

Pure functions of the circuit and the observables: no torch, no device, nothing cached. The kernels
(``kernels_torch.py``, ``kernels_native.py``) lower these programs to their own tables.

**Gates.** Every instruction is first *lowered* to four primitives: a single-qubit rotation
exp(-iφP/2) (P ∈ {X, Y, Z}), a constant matrix on its qubits, a Z-string rotation
exp(-iφ/2·Z⊗…⊗Z) and a global-phase term, every angle φ = Σ_p c_p·θ_p + b linear in the circuit's
parameters (:class:`Angle`). rx, ry, rz, p, u, u1, u2, u3, r and rzz, rxx, ryy, rzx, crx, cry, crz,
cp, cu1 and a ``global_phase`` gate have rules (``_RULES``: rxx = (H⊗H)·rzz·(H⊗H), crz(θ) =
rz_t(θ/2)·rzz_ct(-θ/2), p(λ) = e^{iλ/2}·rz(λ), …); any other gate whose parameters are numbers
becomes its matrix (single-qubit gates: any; several qubits: *monomial* gates, one non-zero per
column — cx, cy, cz, swap, iswap, ccx, cswap, cs, …); a composite instruction is inlined from its
definition. ``barrier``, ``id`` and ``delay`` are ignored.

**Step program.** The primitives are *collected* into segments, then each segment is *collapsed*
(the shape of Qiskit's ``CollectAndCollapse`` passes):

* collect: a segment is a layer of single-qubit gates (one chain of gates per qubit, in application
  order) followed by a block: parametrized Z-string rotations (the *diagonal*), then constant
  monomial gates (a signed permutation). A monomial or a Z-string rotation on a qubit the block has
  touched joins the block — a Z-string rotation that arrives after monomials is moved to the
  block's start by conjugation (C·R_m(φ) = R_{m'}(±φ)·C for the affine permutations of cx, x, swap,
  …); a non-monomial single-qubit gate on a touched qubit starts the next segment. A chain's
  trailing parametrized rz gates move into the diagonal when what remains of the chain is real
  (ry and real constants): the native kernels then run the chain as a real 2×2 and the diagonal of
  single-qubit terms as one separable phase.
* collapse: every gate of a chain becomes a reference into one *op bank* laid out as
  [rotations…, constant matrices…, identity]; each diagonal term refers to an rz rotation of the
  bank and a Z mask; the monomial block becomes one signed permutation ψ'_i = phase_i · ψ_{perm_i}
  (``None`` parts where trivial). Segments with nothing to do are dropped.

**Readout program.** Every Pauli term of every observable, de-duplicated, as bit masks taken from
``SparsePauliOp.paulis.x/.z`` (bit q = qubit q), and the real coefficient matrix [terms,
observables] (Pauli expectations are real, so only real parts of Hermitian observables' coefficients
contribute).

Basis order is Qiskit's: bit q of the amplitude index is qubit q.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp

from .gates import (
    PAULI,
    ROTATION_GENERATOR,
    ROTATION_PAULI,
    ZERO,
    Angle,
    MatOp,
    PhaseOp,
    RotOp,
    UnsupportedCircuitError,
    ZRotOp,
    lower,
    monomial,
    pauli_rotation_matrix,
)


@dataclass(frozen=True)
class Rotation:
    """A parametrized single-qubit rotation exp(-iφP/2), P ∈ {X, Y, Z} (``kind`` rx, ry or rz)."""

    kind: str
    angle: Angle

    @property
    def pauli(self) -> np.ndarray:
        return ROTATION_PAULI[self.kind]

    @property
    def generator(self) -> np.ndarray:
        return ROTATION_GENERATOR[self.kind]


@dataclass(frozen=True)
class Segment:
    """One collapsed segment: the single-qubit layer, then the diagonal, then the permutation.

    ``chains[q]``: op-bank indices of qubit q's single-qubit gates, in application order (may be
    empty). ``diagonal``: (rotation index, Z mask) of every parametrized Z-string rotation
    exp(-iφ/2·Z_mask) (they commute; the rotation is an rz of the bank, φ its angle).
    ``perm``/``phase``: the monomial block as ψ'_i = phase_i · ψ_{perm_i} (``None`` where trivial);
    ``inverse_perm`` undoes ``perm``. ``rotations``: (rotation index, qubit, position in its chain)
    of every parametrized rotation of the single-qubit layer.
    """

    chains: tuple[tuple[int, ...], ...]
    perm: np.ndarray | None
    inverse_perm: np.ndarray | None
    phase: np.ndarray | None
    rotations: tuple[tuple[int, int, int], ...]
    diagonal: tuple[tuple[int, int], ...] = ()

    @property
    def has_layer(self) -> bool:
        return any(self.chains)

    @property
    def width(self) -> int:
        """The longest chain (0: no single-qubit layer)."""
        return max((len(c) for c in self.chains), default=0)


@dataclass(frozen=True)
class StepProgram:
    """A compiled step circuit: op bank recipe, segments and global phase e^{iφ}, φ = ``phase``.

    Op bank (per sample): ``rotations`` (from the angles), then ``constants``, then the identity, so
    bank index ``identity`` is I and indices ``< n_rotations`` are rotations.
    """

    n_qubits: int
    parameters: tuple[Parameter, ...]
    rotations: tuple[Rotation, ...]
    constants: np.ndarray  # [C, 2, 2]
    segments: tuple[Segment, ...]
    phase: Angle = ZERO

    @property
    def n_params(self) -> int:
        return len(self.parameters)

    @property
    def n_rotations(self) -> int:
        return len(self.rotations)

    @property
    def identity(self) -> int:
        return self.n_rotations + len(self.constants)

    @property
    def dim(self) -> int:
        return 1 << self.n_qubits

    @property
    def global_phase(self) -> complex:
        """The global phase e^{iφ} when it is constant (else a ValueError)."""
        if not self.phase.constant:
            raise ValueError("the global phase depends on the parameters")
        return complex(np.exp(1j * self.phase.offset))

    def n_gates(self) -> int:
        """Single-qubit passes of one step: the non-empty chains of every segment."""
        return sum(1 for seg in self.segments for chain in seg.chains if chain)


# ---------------------------------------------------------------------------------- monomials
def monomial_action(
    matrix: np.ndarray, qubits: Sequence[int], k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Monomial gate ``matrix`` on ``qubits`` acting as G|k⟩ = g(k)|τ(k)⟩ on basis indices ``k``;
    returns (τ(k), g(k))."""
    action = monomial(matrix)
    if action is None:
        raise ValueError("the matrix is not monomial")
    pi, g = action
    local = np.zeros(k.shape, dtype=np.int64)
    for i, q in enumerate(qubits):
        local |= ((k >> q) & 1) << i
    image = pi[local]
    out = k.copy()
    for i, q in enumerate(qubits):
        out = (out & ~np.int64(1 << q)) | (((image >> i) & 1) << q)
    return out, g[local]


def _conjugate_z(mask: int, sign: float, matrix: np.ndarray, qubits: Sequence[int]):
    """(mask', sign') with M†·Z_mask·M = sign'/sign·Z_mask' for a monomial M on ``qubits``, or
    ``None`` when M†·Z_mask·M is not a Z string (a non-affine permutation such as ccx)."""
    local = 0
    for i, q in enumerate(qubits):
        if (mask >> q) & 1:
            local |= 1 << i
    if not local:
        return mask, sign
    pi, _ = monomial(matrix)
    k = len(qubits)
    # M†·Z_l·M = diag_j σ_l(π(j)) with σ_l(i) = (-1)^{|i ∧ l|}
    values = np.array([1 - 2 * (bin(int(pi[j]) & local).count("1") & 1) for j in range(1 << k)])
    new_sign = values[0]
    image = 0
    for i in range(k):
        if values[1 << i] != new_sign:
            image |= 1 << i
    expected = np.array(
        [new_sign * (1 - 2 * (bin(j & image).count("1") & 1)) for j in range(1 << k)]
    )
    if not np.array_equal(values, expected):
        return None
    out = mask
    for i, q in enumerate(qubits):
        out &= ~(1 << q)
        if (image >> i) & 1:
            out |= 1 << q
    return out, sign * float(new_sign)


def _signed_permutation(mono, dim: int):
    """(perm, inverse_perm, phase) of a monomial block, ``None`` parts where trivial."""
    if not mono:
        return None, None, None
    k = np.arange(dim, dtype=np.int64)
    sigma = k.copy()
    ph = np.ones(dim, dtype=complex)
    for matrix, qubits in mono:
        tau, g = monomial_action(matrix, qubits, sigma)
        ph = ph * g
        sigma = tau
    inverse = np.empty_like(sigma)
    inverse[sigma] = k
    perm = inverse_perm = phase = None
    if not np.array_equal(inverse, k):
        perm, inverse_perm = inverse, sigma
    phase_out = ph[inverse]
    if not np.allclose(phase_out, 1.0):
        phase = phase_out
    return perm, inverse_perm, phase


# ---------------------------------------------------------------------------------- collect
def _is_real(op) -> bool:
    if isinstance(op, Rotation):
        return op.kind == "ry"
    return bool(np.all(np.abs(np.imag(op)) < 1e-15))


@dataclass
class _Collected:
    """A segment during the collect pass: chains of op descriptors, the diagonal (Z-string
    rotations at the block's start: (mask, angle)) and the monomial block."""

    chains: list[list[Rotation | np.ndarray]]
    diagonal: list[tuple[int, Angle]] = field(default_factory=list)
    mono: list[tuple[np.ndarray, tuple[int, ...]]] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)


def _collect(primitives: list, n: int) -> tuple[list[_Collected], Angle]:
    segments = [_Collected([[] for _ in range(n)])]
    phase = ZERO

    def fresh() -> _Collected:
        segments.append(_Collected([[] for _ in range(n)]))
        return segments[-1]

    for prim in primitives:
        seg = segments[-1]
        if isinstance(prim, PhaseOp):
            phase = phase.plus(prim.angle)
            continue
        if isinstance(prim, RotOp):
            if prim.angle.constant:
                prim = MatOp(pauli_rotation_matrix(prim.kind, prim.angle.offset), (prim.qubit,))
            elif prim.kind == "rz" and prim.qubit in seg.touched:
                prim = ZRotOp(prim.angle, (prim.qubit,))
            else:
                if prim.qubit in seg.touched:
                    seg = fresh()
                seg.chains[prim.qubit].append(Rotation(prim.kind, prim.angle))
                continue
        if isinstance(prim, ZRotOp):
            if prim.angle.constant:  # a constant diagonal: a monomial like any other
                phases = [
                    np.exp(-0.5j * prim.angle.offset * (1 - 2 * (bin(j).count("1") & 1)))
                    for j in range(1 << len(prim.qubits))
                ]
                prim = MatOp(np.diag(phases), prim.qubits)
            elif len(prim.qubits) == 1 and prim.qubits[0] not in seg.touched:
                seg.chains[prim.qubits[0]].append(Rotation("rz", prim.angle))
                continue
            else:
                mask = sum(1 << q for q in prim.qubits)
                moved: tuple[int, float] | None = (mask, 1.0)
                for matrix, qubits in reversed(seg.mono):
                    moved = _conjugate_z(moved[0], moved[1], matrix, qubits)
                    if moved is None:
                        break
                if moved is None:
                    seg = fresh()
                    moved = (mask, 1.0)
                seg.diagonal.append((moved[0], prim.angle.scaled(moved[1])))
                seg.touched.update(prim.qubits)
                continue
        assert isinstance(prim, MatOp)
        if len(prim.qubits) > 1:
            seg.mono.append((prim.matrix, prim.qubits))
            seg.touched.update(prim.qubits)
            continue
        (q,) = prim.qubits
        if q in seg.touched:
            if monomial(prim.matrix) is not None:
                seg.mono.append((prim.matrix, prim.qubits))
                continue
            seg = fresh()
        seg.chains[q].append(prim.matrix)
    for seg in segments:
        _diagonal_tails(seg)
    return segments, phase


def _diagonal_tails(seg: _Collected) -> None:
    """Move each chain's trailing parametrized rz gates into the diagonal when the rest of the
    chain is real (the tail is applied just before the block, where the diagonal sits)."""
    for q, chain in enumerate(seg.chains):
        tail = 0
        while (
            tail < len(chain)
            and isinstance(chain[-1 - tail], Rotation)
            and (chain[-1 - tail].kind == "rz")
        ):
            tail += 1
        if not tail or not all(_is_real(op) for op in chain[: len(chain) - tail]):
            continue
        for op in chain[len(chain) - tail :]:
            seg.diagonal.insert(0, (1 << q, op.angle))
        del chain[len(chain) - tail :]


def compile_step(circuit: QuantumCircuit) -> StepProgram:
    """The step program of ``circuit`` (see the module docstring); raises
    :class:`UnsupportedCircuitError` naming the first instruction it cannot compile."""
    if circuit.num_qubits < 1:
        raise UnsupportedCircuitError("the circuit has no qubits")
    parameters = tuple(circuit.parameters)
    index = {p: i for i, p in enumerate(parameters)}
    collected, phase = _collect(lower(circuit, index), circuit.num_qubits)
    # bank layout: rotations in order of collection (chains, then the diagonal), then constants,
    # then the identity
    rotations: list[Rotation] = []
    constants: list[np.ndarray] = []
    segments = []
    dim = 1 << circuit.num_qubits
    chain_refs = []
    for seg in collected:
        chains, positions = [], []
        for q, chain in enumerate(seg.chains):
            refs = []
            for j, op in enumerate(chain):
                if isinstance(op, Rotation):
                    refs.append(len(rotations))
                    positions.append((len(rotations), q, j))
                    rotations.append(op)
                else:
                    refs.append(-1 - len(constants))  # resolved once the rotations are counted
                    constants.append(op)
            chains.append(refs)
        diagonal = []
        for mask, angle in seg.diagonal:
            diagonal.append((len(rotations), mask))
            rotations.append(Rotation("rz", angle))
        chain_refs.append((seg, chains, positions, diagonal))
    n_rot = len(rotations)
    for seg, chains, positions, diagonal in chain_refs:
        resolved = tuple(tuple(r if r >= 0 else n_rot + (-1 - r) for r in c) for c in chains)
        perm, inverse_perm, ph = _signed_permutation(seg.mono, dim)
        if not any(resolved) and not diagonal and perm is None and ph is None:
            continue
        segments.append(
            Segment(resolved, perm, inverse_perm, ph, tuple(positions), tuple(diagonal))
        )
    return StepProgram(
        n_qubits=circuit.num_qubits,
        parameters=parameters,
        rotations=tuple(rotations),
        constants=np.stack(constants) if constants else np.zeros((0, 2, 2), dtype=complex),
        segments=tuple(segments),
        phase=phase,
    )


def rotation_matrix(program: StepProgram) -> np.ndarray:
    """[P, rotations]: the rotations' angles are ``θ @ matrix + offsets``."""
    out = np.zeros((program.n_params, program.n_rotations))
    for r, rot in enumerate(program.rotations):
        for p, c in rot.angle.terms:
            out[p, r] += c
    return out


def parity(values: np.ndarray) -> np.ndarray:
    """Parity (0 or 1) of the set bits of each non-negative int64 in ``values``."""
    v = np.asarray(values, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        v = v ^ (v >> shift)
    return v & 1


def z_signs(mask: int, dim: int) -> np.ndarray:
    """σ(k) = (-1)^{|k ∧ mask|} for k < dim: the eigenvalues of Z_mask."""
    return 1.0 - 2.0 * parity(np.arange(dim, dtype=np.int64) & mask)


# ---------------------------------------------------------------------------------- readouts
@dataclass(frozen=True)
class ReadoutProgram:
    """Readout observables as distinct Pauli terms: term t is ``i^{|x_t ∧ z_t|}·X^{x_t}·Z^{z_t}``
    written as bit masks (bit q = qubit q), and ``coefficients`` [terms, observables] (real)."""

    n_qubits: int
    x_masks: tuple[int, ...]
    z_masks: tuple[int, ...]
    coefficients: np.ndarray

    @property
    def n_terms(self) -> int:
        return len(self.x_masks)

    @property
    def n_observables(self) -> int:
        return self.coefficients.shape[1]

    def support(self, term: int) -> list[int]:
        """Qubits on which term ``term`` acts (not as the identity), ascending."""
        mask = self.x_masks[term] | self.z_masks[term]
        return [q for q in range(self.n_qubits) if (mask >> q) & 1]

    def local_pauli(self, term: int, qubit: int) -> str:
        """The Pauli (I, X, Y or Z) of term ``term`` on ``qubit``."""
        x, z = (self.x_masks[term] >> qubit) & 1, (self.z_masks[term] >> qubit) & 1
        return "IZXY"[2 * x + z]

    def matrix(self, term: int, qubits: Sequence[int]) -> np.ndarray:
        """Dense matrix of term ``term`` restricted to ``qubits`` (ascending; the first is the least
        significant bit), i.e. the Kronecker product with the highest qubit leftmost."""
        out = np.array([[1.0 + 0j]])
        for q in reversed(list(qubits)):
            out = np.kron(out, PAULI[self.local_pauli(term, q)])
        return out

    def action(self, term: int, k: np.ndarray) -> np.ndarray:
        """g(k) with P_t|k⟩ = g(k)|k ⊕ x_t⟩ for basis indices ``k``."""
        x, z = self.x_masks[term], self.z_masks[term]
        ys = bin(x & z).count("1")
        return (1j**ys) * (1.0 - 2.0 * parity(k & z))


def compile_readouts(observables: Sequence[SparsePauliOp], n_qubits: int) -> ReadoutProgram:
    """The readout program of Hermitian ``observables`` on ``n_qubits`` qubits (clear errors
    otherwise)."""
    for j, obs in enumerate(observables):
        if not isinstance(obs, SparsePauliOp):
            raise TypeError(f"observable {j} must be a SparsePauliOp, got {type(obs).__name__}")
        if obs.num_qubits != n_qubits:
            raise ValueError(
                f"observable {j} acts on {obs.num_qubits} qubits; the circuit has {n_qubits}"
            )
        if not np.allclose((obs - obs.adjoint()).simplify(atol=1e-12).coeffs, 0.0, atol=1e-10):
            raise ValueError(f"observable {j} is not Hermitian")
    index: dict[tuple[int, int], int] = {}
    rows: list[tuple[int, int, complex]] = []
    weights = 1 << np.arange(n_qubits, dtype=np.int64)
    for j, obs in enumerate(observables):
        paulis = obs.paulis
        xs = paulis.x.astype(np.int64) @ weights
        zs = paulis.z.astype(np.int64) @ weights
        # group phase (-i)^phase of each Pauli; SparsePauliOp normally keeps it in the coefficients
        phases = (-1j) ** paulis.phase
        for x, z, c, ph in zip(xs.tolist(), zs.tolist(), obs.coeffs, phases):
            key = (x, z)
            if key not in index:
                index[key] = len(index)
            rows.append((index[key], j, complex(c) * complex(ph)))
    coefficients = np.zeros((len(index), len(observables)))
    for t, j, c in rows:
        coefficients[t, j] += c.real
    keys = list(index)
    return ReadoutProgram(
        n_qubits=n_qubits,
        x_masks=tuple(x for x, _ in keys),
        z_masks=tuple(z for _, z in keys),
        coefficients=coefficients,
    )
