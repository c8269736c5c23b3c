"""Compilation of a Qiskit step circuit and its readout observables into frozen, kernel-agnostic
programs.

Pure functions of the circuit and the observables: no torch, no device, nothing cached. The kernels
(``kernels_torch.py``, ``kernels_native.py``) lower these programs to their own tables.

**Step program.** The circuit's instructions are *collected* into segments, then each segment is
*collapsed* (the shape of Qiskit's ``CollectAndCollapse`` passes):

* collect: a segment is a layer of single-qubit gates (one chain of gates per qubit, in application
  order) followed by a block of *monomial* gates (cx, cz and the Pauli/phase gates x, y, z, s, sdg
  once their qubit has been touched by the block). A non-monomial single-qubit gate on a qubit the
  block has touched starts the next segment.
* collapse: every gate of a chain becomes a reference into one *op bank* laid out as
  [rotations…, constant matrices…, identity]; the monomial block becomes one signed permutation
  ψ'_i = phase_i · ψ_{perm_i} (``None`` parts where trivial). Segments with nothing to do are
  dropped.

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
from qiskit.circuit import Parameter, ParameterExpression
from qiskit.quantum_info import SparsePauliOp

SUPPORTED_GATES = ("rx", "ry", "rz", "h", "x", "y", "z", "s", "sdg", "cx", "cz")
IGNORED = ("barrier", "id")
MONOMIAL_1Q = ("x", "y", "z", "s", "sdg")
MONOMIAL_2Q = ("cx", "cz")
ROTATIONS = ("rx", "ry", "rz")

PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}
FIXED_1Q = {
    "h": np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2),
    "x": PAULI["X"],
    "y": PAULI["Y"],
    "z": PAULI["Z"],
    "s": np.array([[1, 0], [0, 1j]], dtype=complex),
    "sdg": np.array([[1, 0], [0, -1j]], dtype=complex),
}
# R(θ) = exp(-iθP/2) = cos(θ/2)·I + sin(θ/2)·G with G = -i·P
ROTATION_PAULI = {"rx": PAULI["X"], "ry": PAULI["Y"], "rz": PAULI["Z"]}
ROTATION_GENERATOR = {kind: -1j * pauli for kind, pauli in ROTATION_PAULI.items()}


class UnsupportedCircuitError(ValueError):
    """The circuit contains something the statevector engine cannot compile."""


@dataclass(frozen=True)
class Angle:
    """A gate angle ``coef·θ[param] + offset`` (``param`` None: a constant ``offset``)."""

    param: int | None
    coef: float
    offset: float


@dataclass(frozen=True)
class Rotation:
    """A parametrized single-qubit rotation exp(-iθP/2), P ∈ {X, Y, Z} (``kind`` rx, ry or rz)."""

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
    """One collapsed segment.

    ``chains[q]``: op-bank indices of qubit q's single-qubit gates, in application order (may be
    empty). ``perm``/``phase``: the monomial block as ψ'_i = phase_i · ψ_{perm_i} (``None`` where
    trivial); ``inverse_perm`` undoes ``perm``. ``rotations``: (rotation index, qubit, position in
    its chain) of every parametrized rotation of the single-qubit layer.
    """

    chains: tuple[tuple[int, ...], ...]
    perm: np.ndarray | None
    inverse_perm: np.ndarray | None
    phase: np.ndarray | None
    rotations: tuple[tuple[int, int, int], ...]

    @property
    def has_layer(self) -> bool:
        return any(self.chains)

    @property
    def width(self) -> int:
        """The longest chain (0: no single-qubit layer)."""
        return max((len(c) for c in self.chains), default=0)


@dataclass(frozen=True)
class StepProgram:
    """A compiled step circuit: op bank recipe, segments and global phase.

    Op bank (per sample): ``rotations`` (from the angles), then ``constants``, then the identity, so
    bank index ``identity`` is I and indices ``< n_rotations`` are rotations.
    """

    n_qubits: int
    parameters: tuple[Parameter, ...]
    rotations: tuple[Rotation, ...]
    constants: np.ndarray  # [C, 2, 2]
    segments: tuple[Segment, ...]
    global_phase: complex

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


@dataclass
class _Collected:
    """A segment during the collect pass: chains of op descriptors and the monomial block."""

    chains: list[list[Rotation | np.ndarray]]
    mono: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)


def _angle(value, gate: str, parameters: Sequence[Parameter]) -> Angle:
    if not isinstance(value, ParameterExpression):
        return Angle(None, 0.0, float(value))
    params = list(value.parameters)
    if not params:
        return Angle(None, 0.0, float(value))
    if len(params) != 1:
        raise UnsupportedCircuitError(
            f"gate {gate!r}: angle {value} depends on several parameters; only a·θ + b is supported"
        )
    (p,) = params
    f0, f1, f2 = (float(value.bind({p: x})) for x in (0.0, 1.0, 2.0))
    if abs(f2 - 2 * f1 + f0) > 1e-12:
        raise UnsupportedCircuitError(f"gate {gate!r}: angle {value} is not linear in {p.name}")
    return Angle(list(parameters).index(p), f1 - f0, f0)


def _rotation_matrix(kind: str, angle: float) -> np.ndarray:
    return np.cos(angle / 2) * np.eye(2) + np.sin(angle / 2) * ROTATION_GENERATOR[kind]


def _collect(circuit: QuantumCircuit, parameters: Sequence[Parameter]) -> list[_Collected]:
    n = circuit.num_qubits
    segments = [_Collected([[] for _ in range(n)])]
    for instruction in circuit.data:
        op = instruction.operation
        name = op.name
        if name in IGNORED:
            continue
        if name not in SUPPORTED_GATES:
            raise UnsupportedCircuitError(
                f"instruction {name!r} is not supported by the statevector engine "
                f"(supported: {', '.join(SUPPORTED_GATES)})"
            )
        if getattr(op, "condition", None) is not None:
            raise UnsupportedCircuitError(f"conditional instruction {name!r} is not supported")
        qubits = tuple(circuit.find_bit(q).index for q in instruction.qubits)
        seg = segments[-1]
        if name in MONOMIAL_2Q:
            seg.mono.append((name, qubits))
            seg.touched.update(qubits)
            continue
        (q,) = qubits
        if name in MONOMIAL_1Q and q in seg.touched:
            seg.mono.append((name, qubits))
            continue
        if q in seg.touched:
            seg = _Collected([[] for _ in range(n)])
            segments.append(seg)
        if name in ROTATIONS:
            angle = _angle(op.params[0], name, parameters)
            if angle.param is None:
                seg.chains[q].append(_rotation_matrix(name, angle.offset))
            else:
                seg.chains[q].append(Rotation(name, angle))
        else:
            seg.chains[q].append(FIXED_1Q[name])
    return segments


def monomial_action(
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


def _signed_permutation(mono, dim: int):
    """(perm, inverse_perm, phase) of a monomial block, ``None`` parts where trivial."""
    if not mono:
        return None, None, None
    k = np.arange(dim, dtype=np.int64)
    sigma = k.copy()
    ph = np.ones(dim, dtype=complex)
    for name, qubits in mono:
        tau, g = monomial_action(name, qubits, sigma)
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


def compile_step(circuit: QuantumCircuit) -> StepProgram:
    """The step program of ``circuit`` (see the module docstring); raises
    :class:`UnsupportedCircuitError` naming the first instruction it cannot compile."""
    if circuit.num_qubits < 1:
        raise UnsupportedCircuitError("the circuit has no qubits")
    phase = circuit.global_phase
    if isinstance(phase, ParameterExpression) and phase.parameters:
        raise UnsupportedCircuitError("a parametrized global phase is not supported")
    parameters = tuple(circuit.parameters)
    collected = _collect(circuit, parameters)
    rotations = [
        op for seg in collected for chain in seg.chains for op in chain if isinstance(op, Rotation)
    ]
    # bank layout: rotations in order of collection, then constants, then the identity
    rotation_index = {id(op): i for i, op in enumerate(rotations)}
    constants: list[np.ndarray] = []
    segments = []
    dim = 1 << circuit.num_qubits
    for seg in collected:
        chains, positions = [], []
        for q, chain in enumerate(seg.chains):
            refs = []
            for j, op in enumerate(chain):
                if isinstance(op, Rotation):
                    refs.append(rotation_index[id(op)])
                    positions.append((rotation_index[id(op)], q, j))
                else:
                    refs.append(len(rotations) + len(constants))
                    constants.append(op)
            chains.append(tuple(refs))
        perm, inverse_perm, ph = _signed_permutation(seg.mono, dim)
        if not any(chains) and perm is None and ph is None:
            continue
        segments.append(Segment(tuple(chains), perm, inverse_perm, ph, tuple(positions)))
    return StepProgram(
        n_qubits=circuit.num_qubits,
        parameters=parameters,
        rotations=tuple(rotations),
        constants=np.stack(constants) if constants else np.zeros((0, 2, 2), dtype=complex),
        segments=tuple(segments),
        global_phase=complex(np.exp(1j * float(phase))),
    )


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


def parity(values: np.ndarray) -> np.ndarray:
    """Parity (0 or 1) of the set bits of each non-negative int64 in ``values``."""
    v = np.asarray(values, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        v = v ^ (v >> shift)
    return v & 1


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
