"""The QRNN step-circuit specification and its Qiskit construction (the single PQC definition).

The spec itself needs no Qiskit (the CLI builds its options from it before importing anything
heavy); the circuit and observable builders import Qiskit when called.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..options import ConfigError, option

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp

Entangler = Literal["cx_ring", "cz_ring", "cx_ladder", "cz_chain", "rzz_chain", "rzz_ring"]
# the CX/CZ entanglers (Clifford, no angles of their own)
ENTANGLERS: tuple[str, ...] = ("cx_ring", "cz_ring", "cx_ladder", "cz_chain")
# RZZ(φ) on every edge, each φ written by the controller (U = I at zero angles); the statevector
# engine compiles rzz, so these train like the others.
RZZ_ENTANGLERS: tuple[str, ...] = ("rzz_chain", "rzz_ring")
ALL_ENTANGLERS: tuple[str, ...] = ENTANGLERS + RZZ_ENTANGLERS
LINE_ENTANGLERS: tuple[str, ...] = ("cx_ladder", "cz_chain", "rzz_chain")
READOUT_SETS: tuple[str, ...] = ("xyz", "z", "zz")
# the measured QRNN (circuits/measured.py): how qubits are measured, how bits select angles
MEASUREMENTS: tuple[str, ...] = ("weak", "projective")
FEEDFORWARDS: tuple[str, ...] = ("linear", "table", "none")
MAX_QUBITS = 24

_PAULI_LABEL = re.compile(r"^[IXYZ]+$")


@dataclass(frozen=True)
class QRNNSpec:
    """Shape of one QRNN step circuit U(θ).

    ``layers`` repetitions of [RY on every qubit, RZ on every qubit, entangler]; P = 2·n·layers
    angles, plus one RZZ angle per edge and layer for ``rzz_chain``/``rzz_ring``. Entanglers:
    ``cx_ring``/``cz_ring`` (a line closed into a ring), ``cx_ladder``/``cz_chain`` (a line of CX /
    of CZ, native on IBM Heron), ``rzz_chain``/``rzz_ring`` (a line / ring of RZZ(φ_e)).
    ``readouts`` is ``"xyz"`` (⟨X_q⟩ for all q, then ⟨Y_q⟩, then ⟨Z_q⟩: 3n values), ``"z"`` (n
    values), ``"zz"`` (⟨Z_q⟩ then neighbour correlators ⟨Z_q Z_{q+1}⟩ along the entangler's
    edges) or a tuple of Pauli labels of length n (Qiskit order: the rightmost character acts on
    qubit 0).
    """

    n_qubits: int = option(help="QRNN register size n", flag="qubits")
    layers: int = option(2, "step-circuit layers L (P = 2·n·L angles)")
    entangler: str = option(
        "cx_ring",
        "entangler of every layer: rings or lines of CX/CZ (cz_chain: native on IBM Heron) or "
        "RZZ(φ) on every edge with controller-written φ (rzz_chain, rzz_ring)",
        choices=ALL_ENTANGLERS,
    )
    readouts: str | tuple[str, ...] = option(
        "xyz",
        "readout observables: xyz (3n values), z (n), zz (n + neighbour correlators) or "
        "comma-separated Pauli strings of length n (Qiskit order: rightmost character = qubit 0)",
        parse=lambda text: parse_readouts(text),
    )

    def __post_init__(self) -> None:
        if (
            isinstance(self.n_qubits, bool)
            or not isinstance(self.n_qubits, int)
            or not 1 <= self.n_qubits <= MAX_QUBITS
        ):
            raise ConfigError(
                "n_qubits", f"must be an integer in 1..{MAX_QUBITS}, got {self.n_qubits!r}"
            )
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 1:
            raise ConfigError("layers", f"must be an integer >= 1, got {self.layers!r}")
        if self.entangler not in ALL_ENTANGLERS:
            raise ConfigError(
                "entangler",
                f"must be one of {', '.join(ALL_ENTANGLERS)}; got {self.entangler!r}",
            )
        readouts = self.readouts
        if isinstance(readouts, str):
            if readouts not in READOUT_SETS:
                raise ConfigError(
                    "readouts",
                    f"must be one of {', '.join(READOUT_SETS)} or a list of Pauli strings; "
                    f"got {readouts!r}",
                )
        else:
            labels = tuple(readouts)
            if not labels:
                raise ConfigError(
                    "readouts", "as an explicit list of Pauli strings must not be empty"
                )
            for label in labels:
                if (
                    not isinstance(label, str)
                    or not _PAULI_LABEL.match(label)
                    or len(label) != self.n_qubits
                ):
                    raise ConfigError(
                        "readouts",
                        f"{label!r} is not a Pauli string of length n_qubits={self.n_qubits} "
                        "over I, X, Y, Z",
                    )
            object.__setattr__(self, "readouts", labels)

    @property
    def rzz(self) -> bool:
        """Whether the entangler is parametrized (one RZZ angle per edge and layer)."""
        return self.entangler in RZZ_ENTANGLERS

    @property
    def params_per_layer(self) -> int:
        return 2 * self.n_qubits + (len(self.edges()) if self.rzz else 0)

    @property
    def n_params(self) -> int:
        """Number of circuit angles P = 2·n·layers (+ edges·layers for RZZ entanglers)."""
        return self.params_per_layer * self.layers

    def rzz_angle_indices(self) -> list[int]:
        """Positions of the RZZ angles in the angle vector (empty for fixed entanglers)."""
        if not self.rzz:
            return []
        per, n, e = self.params_per_layer, self.n_qubits, len(self.edges())
        return [layer * per + 2 * n + j for layer in range(self.layers) for j in range(e)]

    @property
    def n_readouts(self) -> int:
        return len(readout_labels(self))

    def edges(self) -> list[tuple[int, int]]:
        """(control, target) pairs of the entangler, in application order."""
        n = self.n_qubits
        ladder = [(q, q + 1) for q in range(n - 1)]
        if self.entangler in LINE_ENTANGLERS or n <= 2:
            return ladder
        return ladder + [(n - 1, 0)]

    def to_dict(self) -> dict:
        readouts = self.readouts if isinstance(self.readouts, str) else list(self.readouts)
        return {
            "n_qubits": self.n_qubits,
            "layers": self.layers,
            "entangler": self.entangler,
            "readouts": readouts,
        }

    @classmethod
    def from_dict(cls, d: dict) -> QRNNSpec:
        readouts = d.get("readouts", "xyz")
        return cls(
            n_qubits=int(d["n_qubits"]),
            layers=int(d.get("layers", 2)),
            entangler=d.get("entangler", "cx_ring"),
            readouts=readouts if isinstance(readouts, str) else tuple(readouts),
        )


def parse_readouts(text: str) -> str | tuple[str, ...]:
    """A readout set name, or comma-separated Pauli strings (``--readouts ZZII,IIXX``)."""
    text = text.strip()
    if text in READOUT_SETS:
        return text
    labels = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    return labels if labels and all(_PAULI_LABEL.match(label) for label in labels) else text


def step_circuit(spec: QRNNSpec, name: str = "θ") -> QuantumCircuit:
    """One QRNN step U(θ) with a ``ParameterVector`` of length ``spec.n_params``.

    Angle order (equal to ``circuit.parameters`` order): for each layer, RY angles of qubits 0..n-1,
    then RZ angles of qubits 0..n-1, then (RZZ entanglers) one angle per edge in ``edges()`` order.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    n = spec.n_qubits
    theta = ParameterVector(name, spec.n_params)
    qc = QuantumCircuit(n, name="qrnn_step")
    gate = spec.entangler.split("_")[0]  # cx, cz or rzz
    edges = spec.edges()
    k = 0
    for _ in range(spec.layers):
        for q in range(n):
            qc.ry(theta[k + q], q)
        for q in range(n):
            qc.rz(theta[k + n + q], q)
        k += 2 * n
        for j, (control, target) in enumerate(edges):
            if gate == "rzz":
                qc.rzz(theta[k + j], control, target)
            else:
                getattr(qc, gate)(control, target)
        if gate == "rzz":
            k += len(edges)
    return qc


def readout_labels(spec: QRNNSpec) -> list[str]:
    """Pauli labels (Qiskit order, rightmost character = qubit 0) of the readout observables."""
    n = spec.n_qubits

    def single(pauli: str, qubits: Sequence[int]) -> str:
        chars = ["I"] * n
        for q in qubits:
            chars[n - 1 - q] = pauli
        return "".join(chars)

    if not isinstance(spec.readouts, str):
        return list(spec.readouts)
    if spec.readouts == "xyz":
        return [single(p, [q]) for p in "XYZ" for q in range(n)]
    if spec.readouts == "z":
        return [single("Z", [q]) for q in range(n)]
    # "zz": single-qubit Z plus neighbour correlators on the entangler's edges
    return [single("Z", [q]) for q in range(n)] + [single("Z", [a, b]) for a, b in spec.edges()]


def readout_observables(spec: QRNNSpec) -> list[SparsePauliOp]:
    """The readout observables as ``SparsePauliOp`` s, in readout order."""
    from qiskit.quantum_info import SparsePauliOp

    return [SparsePauliOp(label) for label in readout_labels(spec)]
