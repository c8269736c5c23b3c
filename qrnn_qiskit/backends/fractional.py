"""Fractional RZZ gates: angles folded into what IBM's ISA accepts, for bound and template circuits.

IBM's fractional ``rzz(θ)`` accepts 0 ≤ θ ≤ π/2. Qiskit-ibm-runtime's ``FoldRzzAngle`` folds bound
angles but leaves parameters alone, and a replay template is parametrized. Here every parametrized
RZZ(θ) of a template becomes

    RX(π·a)_c · RZZ(φ) · RX(π·a)_c · RZ(π·b)_c · RZ(π·b)_t,    φ ∈ [0, π/2], a, b ∈ {0, 1},

equal to RZZ(θ) up to a global phase (X_c RZZ(φ) X_c = RZZ(−φ); RZZ(θ ± π) = RZZ(θ)·(Z⊗Z) up to
phase; RZZ(θ + 2π) = −RZZ(θ)), and the host computes (φ, a, b) from θ for every parameter row
(``template_values``). The new parameters live in vectors ``rzz_phi``/``rzz_a``/``rzz_b`` indexed
like the template's own angle vector, so the mapping survives QPY and transpilation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp, ParameterExpression, ParameterVector
from qiskit.transpiler import Target

from ..errors import QRNNError

RZZ_MAX = math.pi / 2
FOLDED = "rzz_folded"
_VECTORS = ("rzz_phi", "rzz_a", "rzz_b")


def fold_rzz_angles(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(φ ∈ [0, π/2], a ∈ {0,1}, b ∈ {0,1}) with RZZ(θ) ≅ X_c^a RZZ(φ) X_c^a (Z⊗Z)^b."""
    t = np.mod(np.asarray(theta, dtype=float), 2 * math.pi)
    phi = np.empty_like(t)
    a = np.zeros_like(t)
    b = np.zeros_like(t)
    q1 = t <= RZZ_MAX
    q2 = (t > RZZ_MAX) & (t <= math.pi)
    q3 = (t > math.pi) & (t <= 3 * RZZ_MAX)
    q4 = t > 3 * RZZ_MAX
    phi[q1] = t[q1]
    phi[q2], a[q2], b[q2] = math.pi - t[q2], 1.0, 1.0
    phi[q3], b[q3] = t[q3] - math.pi, 1.0
    phi[q4], a[q4] = 2 * math.pi - t[q4], 1.0
    return np.clip(phi, 0.0, RZZ_MAX), a, b


def target_has_rzz(target: Target | None) -> bool:
    return target is not None and "rzz" in target.operation_names


def _single_parameter(value) -> tuple | None:
    if isinstance(value, ParameterExpression) and len(value.parameters) == 1:
        (p,) = value.parameters
        if value == p and getattr(p, "vector", None) is not None:
            return p.vector.name, p.index, len(p.vector)
    return None


def _rzz_angles(circuit: QuantumCircuit) -> list:
    """The parametrized RZZ angles of ``circuit``, inside control flow too."""
    found = []
    for ins in circuit.data:
        op = ins.operation
        if isinstance(op, ControlFlowOp):
            for block in op.blocks:
                found += _rzz_angles(block)
        elif op.name == "rzz" and isinstance(op.params[0], ParameterExpression):
            found.append(op.params[0])
    return found


def fold_template(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` with every RZZ(θ[i]) of a vector parameter replaced by its folded form, inside
    if/else branches too (a circuit without parametrized RZZ is returned unchanged)."""
    found = [_single_parameter(value) for value in _rzz_angles(circuit)]
    if not found:
        return circuit
    if any(f is None for f in found):
        raise QRNNError(
            f"{circuit.name}: a parametrized RZZ angle must be one element of a ParameterVector "
            "to be folded into [0, π/2]"
        )
    source = {name for name, _, _ in found}
    if len(source) != 1:
        raise QRNNError(f"{circuit.name}: RZZ angles come from several parameter vectors")
    length = found[0][2]
    phi, a, b = (ParameterVector(name, length) for name in _VECTORS)

    def fold(block: QuantumCircuit) -> QuantumCircuit:
        out = block.copy_empty_like()
        for ins in block.data:
            op = ins.operation
            if isinstance(op, ControlFlowOp):
                blocks = [fold(inner) for inner in op.blocks]
                out.append(op.replace_blocks(blocks), ins.qubits, ins.clbits)
            elif op.name == "rzz" and isinstance(op.params[0], ParameterExpression):
                _, i, _ = _single_parameter(op.params[0])
                c, t = ins.qubits
                out.rx(math.pi * a[i], c)
                out.rzz(phi[i], c, t)
                out.rx(math.pi * a[i], c)
                out.rz(math.pi * b[i], c)
                out.rz(math.pi * b[i], t)
            else:
                out.append(op, ins.qubits, ins.clbits)
        return out

    out = fold(circuit)
    out.metadata = {**(circuit.metadata or {}), FOLDED: next(iter(source))}
    return out


def template_values(circuit: QuantumCircuit, values: np.ndarray | None) -> np.ndarray | None:
    """Parameter rows for ``circuit`` from rows of the *unfolded* template's angles (identity for
    circuits ``fold_template`` did not change)."""
    source = (circuit.metadata or {}).get(FOLDED)
    if values is None:
        return values
    if source is None:
        return _surviving_columns(circuit, values)
    values = np.atleast_2d(np.asarray(values, dtype=float))
    folded = dict(zip(_VECTORS, fold_rzz_angles(values)))
    columns = []
    for p in circuit.parameters:
        vector = getattr(p, "vector", None)
        name = vector.name if vector is not None else None
        if name == source:
            columns.append(values[:, p.index])
        elif name in folded:
            columns.append(folded[name][:, p.index])
        else:
            raise QRNNError(f"{circuit.name}: parameter {p.name} is not from the template")
    return np.stack(columns, axis=1)


def _surviving_columns(circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
    """The columns of ``values`` (rows of the template's ParameterVector) that ``circuit`` still
    has: transpilation drops a parameter whose gate it removes (a diagonal RZZ(θ) right before a
    Z-basis measurement), and the rows must follow."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if circuit.num_parameters == values.shape[1]:
        return values
    indices = [getattr(p, "index", None) for p in circuit.parameters]
    vectors = {getattr(getattr(p, "vector", None), "name", None) for p in circuit.parameters}
    if None in indices or len(vectors) != 1 or max(indices, default=-1) >= values.shape[1]:
        return values  # not a single-vector template: bind_rows names the mismatch
    return values[:, indices]


def check_rzz_pubs(pubs: Sequence[tuple]) -> None:
    """One-line QRNNError when a PUB would send an RZZ angle outside [0, π/2] (what IBM accepts)."""
    from qiskit.primitives.containers.sampler_pub import SamplerPub
    from qiskit_ibm_runtime.utils.utils import is_valid_rzz_pub

    for pub in pubs:
        circuit = pub[0]
        if "rzz" not in circuit.count_ops():
            continue
        message = is_valid_rzz_pub(SamplerPub.coerce(tuple(pub)))
        if message:
            raise QRNNError(
                f"{circuit.name}: {message.splitlines()[0]} (IBM's fractional RZZ accepts angles "
                "in [0, π/2]; fold them, e.g. with fold_template)"
            )


def prepare_pubs(pubs: Sequence[tuple], target: Target | None) -> list[tuple]:
    """Sampler PUBs ``(circuit,)`` / ``(circuit, rows)`` with folded RZZ angles, checked against
    the fractional range when the target has RZZ."""
    ready = []
    for circuit, values in pubs:
        values = template_values(circuit, values)
        ready.append(
            (circuit,) if values is None or circuit.num_parameters == 0 else (circuit, values)
        )
    if target_has_rzz(target):
        check_rzz_pubs(ready)
    return ready


__all__ = [
    "RZZ_MAX",
    "check_rzz_pubs",
    "fold_rzz_angles",
    "fold_template",
    "prepare_pubs",
    "target_has_rzz",
    "template_values",
]
