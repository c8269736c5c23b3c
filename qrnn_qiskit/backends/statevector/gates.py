"""Lowering of a Qiskit circuit's instructions into the statevector engine's four primitives.

Every instruction becomes single-qubit rotations exp(-iφP/2) (P ∈ {X, Y, Z}), constant matrices
on their qubits, Z-string rotations exp(-iφ/2·Z⊗…⊗Z) and global-phase terms, every angle
φ = Σ_p c_p·θ_p + b linear in the circuit's parameters (:class:`Angle`): parametrized families by
a rule (``_RULES``), constant gates from their matrices, composite instructions inlined from their
definitions (see ``program.py``'s docstring for the list). ``program.py`` collects and collapses
the primitives into a step program.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterExpression
from qiskit.quantum_info import Operator

# gates with a rule (parametrized families); constant gates are compiled from their matrices
PARAMETRIZED_GATES = (
    "rx", "ry", "rz", "p", "u", "u1", "u2", "u3", "r",
    "rzz", "rxx", "ryy", "rzx", "crx", "cry", "crz", "cp", "cu1", "global_phase",
)  # fmt: skip
# constant gates named here for reference: any single-qubit gate and any monomial gate compiles
CONSTANT_GATES = (
    "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg",
    "cx", "cy", "cz", "swap", "iswap", "dcx", "ccx", "ccz", "cswap", "cs", "csdg",
)  # fmt: skip
SUPPORTED_GATES = PARAMETRIZED_GATES + CONSTANT_GATES
IGNORED = ("barrier", "id", "delay")
ROTATIONS = ("rx", "ry", "rz")
MAX_INLINE_DEPTH = 16

PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}
H = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)
S = np.diag([1, 1j])
SDG = np.diag([1, -1j])
# R(θ) = exp(-iθP/2) = cos(θ/2)·I + sin(θ/2)·G with G = -i·P
ROTATION_PAULI = {"rx": PAULI["X"], "ry": PAULI["Y"], "rz": PAULI["Z"]}
ROTATION_GENERATOR = {kind: -1j * pauli for kind, pauli in ROTATION_PAULI.items()}


class UnsupportedCircuitError(ValueError):
    """The circuit contains something the statevector engine cannot compile."""


@dataclass(frozen=True)
class Angle:
    """A gate angle ``offset + Σ coef·θ[param]`` over ``terms`` = ((param, coef), …), params
    ascending; no terms: the constant ``offset``."""

    terms: tuple[tuple[int, float], ...]
    offset: float

    @property
    def constant(self) -> bool:
        return not self.terms

    def scaled(self, factor: float) -> Angle:
        return Angle(tuple((p, c * factor) for p, c in self.terms), self.offset * factor)

    def plus(self, other: Angle) -> Angle:
        coefs: dict[int, float] = dict(self.terms)
        for p, c in other.terms:
            coefs[p] = coefs.get(p, 0.0) + c
        terms = tuple(sorted((p, c) for p, c in coefs.items() if c != 0.0))
        return Angle(terms, self.offset + other.offset)

    def value(self, theta: Sequence[float]) -> float:
        return self.offset + sum(c * theta[p] for p, c in self.terms)


ZERO = Angle((), 0.0)


# ---------------------------------------------------------------------------------- primitives
@dataclass(frozen=True)
class RotOp:
    kind: str
    angle: Angle
    qubit: int


@dataclass(frozen=True)
class MatOp:
    matrix: np.ndarray  # [2^k, 2^k], Qiskit order: qubits[0] is the least significant bit
    qubits: tuple[int, ...]


@dataclass(frozen=True)
class ZRotOp:
    angle: Angle
    qubits: tuple[int, ...]


@dataclass(frozen=True)
class PhaseOp:
    angle: Angle


def _angle(value, gate: str, index: dict[Parameter, int]) -> Angle:
    """``value`` (a number or a ParameterExpression linear in the circuit's parameters)."""
    if not isinstance(value, ParameterExpression) or not value.parameters:
        number = complex(value)
        if abs(number.imag) > 1e-12:
            raise UnsupportedCircuitError(f"gate {gate!r}: angle {value} is not real")
        return Angle((), number.real)
    terms = []
    for p in sorted(value.parameters, key=lambda p: index[p]):
        d = value.gradient(p)
        if isinstance(d, ParameterExpression) and d.parameters:
            raise UnsupportedCircuitError(
                f"gate {gate!r}: angle {value} is not linear in {p.name} (only Σ a·θ + b is "
                "supported)"
            )
        coef = complex(d)
        if abs(coef.imag) > 1e-12:
            raise UnsupportedCircuitError(f"gate {gate!r}: angle {value} is not real")
        if coef.real != 0.0:
            terms.append((index[p], coef.real))
    offset = complex(value.bind({p: 0.0 for p in value.parameters}))
    return Angle(tuple(terms), offset.real)


def pauli_rotation_matrix(kind: str, angle: float) -> np.ndarray:
    return np.cos(angle / 2) * np.eye(2) + np.sin(angle / 2) * ROTATION_GENERATOR[kind]


def _basis_change(pauli: str, q: int) -> tuple[list, list]:
    """(B, B†) as gate lists in application order, with B·P·B† = Z: B = H for X, H·S† for Y."""
    if pauli == "X":
        return [MatOp(H, (q,))], [MatOp(H, (q,))]
    if pauli == "Y":
        return [MatOp(SDG, (q,)), MatOp(H, (q,))], [MatOp(H, (q,)), MatOp(S, (q,))]
    return [], []


def _pauli_rotation(paulis: str, qubits: Sequence[int], angle: Angle) -> list:
    """exp(-iφ/2·P) for a Pauli string ``paulis`` (one letter per qubit of ``qubits``): basis
    changes around a Z-string rotation."""
    before, after = [], []
    for p, q in zip(paulis, qubits):
        b, a = _basis_change(p, q)
        before += b
        after += a
    return before + [ZRotOp(angle, tuple(qubits))] + after


def _controlled_rotation(kind: str, angle: Angle, c: int, t: int) -> list:
    """c-R(θ) = exp(-iθ/4·P_t)·exp(+iθ/4·Z_c P_t) (R = exp(-iθP/2) on the target)."""
    before, after = _basis_change({"rx": "X", "ry": "Y", "rz": "Z"}[kind], t)
    half = angle.scaled(0.5)
    return before + [ZRotOp(half, (t,)), ZRotOp(half.scaled(-1.0), (c, t))] + after


def _u(theta: Angle, phi: Angle, lam: Angle, q: int) -> list:
    """U(θ, φ, λ) = e^{i(φ+λ)/2}·RZ(φ)·RY(θ)·RZ(λ)."""
    return [
        RotOp("rz", lam, q),
        RotOp("ry", theta, q),
        RotOp("rz", phi, q),
        PhaseOp(phi.plus(lam).scaled(0.5)),
    ]


_HALF_PI = Angle((), math.pi / 2)
# name → (parameter angles, qubits) → primitives
_RULES: dict[str, Callable[[list[Angle], tuple[int, ...]], list]] = {
    "rx": lambda a, q: [RotOp("rx", a[0], q[0])],
    "ry": lambda a, q: [RotOp("ry", a[0], q[0])],
    "rz": lambda a, q: [RotOp("rz", a[0], q[0])],
    "p": lambda a, q: [RotOp("rz", a[0], q[0]), PhaseOp(a[0].scaled(0.5))],
    "u1": lambda a, q: [RotOp("rz", a[0], q[0]), PhaseOp(a[0].scaled(0.5))],
    "u": lambda a, q: _u(a[0], a[1], a[2], q[0]),
    "u3": lambda a, q: _u(a[0], a[1], a[2], q[0]),
    "u2": lambda a, q: _u(_HALF_PI, a[0], a[1], q[0]),
    # R(θ, φ) = RZ(φ)·RX(θ)·RZ(-φ)
    "r": lambda a, q: [RotOp("rz", a[1].scaled(-1.0), q[0]), RotOp("rx", a[0], q[0]),
                       RotOp("rz", a[1], q[0])],
    "rzz": lambda a, q: [ZRotOp(a[0], q)],
    "rxx": lambda a, q: _pauli_rotation("XX", q, a[0]),
    "ryy": lambda a, q: _pauli_rotation("YY", q, a[0]),
    "rzx": lambda a, q: _pauli_rotation("ZX", q, a[0]),  # Z on the first qubit, X on the second
    "crx": lambda a, q: _controlled_rotation("rx", a[0], *q),
    "cry": lambda a, q: _controlled_rotation("ry", a[0], *q),
    "crz": lambda a, q: _controlled_rotation("rz", a[0], *q),
    # cp(λ) = e^{iλ/4}·rz_c(λ/2)·rz_t(λ/2)·rzz(-λ/2)
    "cp": lambda a, q: [RotOp("rz", a[0].scaled(0.5), q[0]), RotOp("rz", a[0].scaled(0.5), q[1]),
                        ZRotOp(a[0].scaled(-0.5), q), PhaseOp(a[0].scaled(0.25))],
    "global_phase": lambda a, q: [PhaseOp(a[0])],
}  # fmt: skip
_RULES["cu1"] = _RULES["cp"]


def lower(circuit: QuantumCircuit, index: dict[Parameter, int], depth: int = 0) -> list:
    """The primitives of ``circuit`` in application order (phase terms included)."""
    out: list = []
    if isinstance(circuit.global_phase, ParameterExpression) or circuit.global_phase:
        out.append(PhaseOp(_angle(circuit.global_phase, "global phase", index)))
    for instruction in circuit.data:
        op = instruction.operation
        name = op.name
        if name in IGNORED:
            continue
        if getattr(op, "condition", None) is not None:
            raise UnsupportedCircuitError(f"conditional instruction {name!r} is not supported")
        if instruction.clbits or name in ("measure", "reset"):
            raise UnsupportedCircuitError(
                f"instruction {name!r} is not supported by the statevector engine (a step circuit "
                "is unitary: no measurements, resets or classical bits)"
            )
        qubits = tuple(circuit.find_bit(q).index for q in instruction.qubits)
        if name in _RULES:
            angles = [_angle(p, name, index) for p in op.params]
            out += _RULES[name](angles, qubits)
            continue
        symbolic = any(isinstance(p, ParameterExpression) and p.parameters for p in op.params)
        matrix = None
        if not symbolic:
            try:
                matrix = Operator(op).data
            except Exception:  # noqa: BLE001 - anything Operator cannot build is unsupported
                matrix = None
        if matrix is not None and (len(qubits) == 1 or monomial(matrix) is not None):
            out.append(MatOp(np.asarray(matrix, dtype=complex), qubits))
            continue
        definition = getattr(op, "definition", None)
        if definition is not None and depth < MAX_INLINE_DEPTH and _known(definition, index):
            out += [_remap(p, qubits) for p in lower(definition, index, depth + 1)]
            continue
        what = "a constant gate on several qubits must be monomial (one non-zero per column)"
        raise UnsupportedCircuitError(
            f"instruction {name!r} is not supported by the statevector engine ({what}; rules "
            f"exist for {', '.join(PARAMETRIZED_GATES)})"
        )
    return out


def _known(definition: QuantumCircuit, index: dict[Parameter, int]) -> bool:
    """Whether a definition is written in the circuit's own parameters (it can be inlined)."""
    return all(p in index for p in definition.parameters)


def _remap(primitive, qubits: tuple[int, ...]):
    """A primitive of an inlined definition on the instruction's qubits."""
    if isinstance(primitive, RotOp):
        return RotOp(primitive.kind, primitive.angle, qubits[primitive.qubit])
    if isinstance(primitive, MatOp):
        return MatOp(primitive.matrix, tuple(qubits[q] for q in primitive.qubits))
    if isinstance(primitive, ZRotOp):
        return ZRotOp(primitive.angle, tuple(qubits[q] for q in primitive.qubits))
    return primitive


def monomial(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(π, g) with M|j⟩ = g_j|π(j)⟩ if ``matrix`` has one non-zero per column (and is a
    permutation of rows), else ``None``."""
    nonzero = np.abs(matrix) > 1e-12
    if not np.all(nonzero.sum(axis=0) == 1):
        return None
    pi = nonzero.argmax(axis=0)
    if len(set(pi.tolist())) != len(pi):
        return None
    g = matrix[pi, np.arange(len(pi))]
    return pi.astype(np.int64), g.astype(complex)
