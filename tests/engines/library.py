"""Circuits beyond QRNN specs that the conformance suite runs on every engine that compiles
arbitrary circuits: every gate with a compile rule in one circuit, Qiskit's circuit-library
ansätze, and a preset-pass-manager output for a Heron-like target (cz, rz, sx, x, and the
fractional rx, rzz, with a parametrized global phase)."""

from __future__ import annotations

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.circuit.library import efficient_su2, n_local, pauli_two_design, real_amplitudes
from qiskit.quantum_info import SparsePauliOp

HERON_GATES = ["cz", "rz", "sx", "x", "id", "rx", "rzz"]


def gate_zoo(n: int = 4) -> QuantumCircuit:
    """Every gate family with a rule, constants the engine compiles from their matrices (t, sx,
    swap, iswap, ccx, …) or definitions (ecr), and a parametrized global phase; angles linear in
    one or several parameters."""
    v = ParameterVector("v", 20)
    a = Parameter("a")
    qc = QuantumCircuit(n, global_phase=0.5 * v[0] + 0.2)
    qc.h(0)
    qc.rzz(v[1], 0, 1)
    qc.rxx(v[2] + 1, 1, 2)
    qc.ryy(-v[3], 2, 3)
    qc.crx(v[4], 0, 3)
    qc.cry(v[5], 3, 1)
    qc.crz(2 * v[6], 1, 0)
    qc.cp(v[7], 2, 0)
    qc.p(v[8], 1)
    qc.u(v[9], v[10] + 0.3, v[11], 2)
    qc.sx(0)
    qc.sxdg(3)
    qc.t(1)
    qc.tdg(2)
    qc.swap(0, 2)
    qc.rz(v[12], 0)  # on a qubit the block touched: a diagonal term
    qc.cx(1, 3)
    qc.rz(v[13] + v[14], 3)  # an angle of two parameters
    qc.x(0)
    qc.rzz(v[15], 0, 3)  # moved before the x and the cx by conjugation
    qc.ry(v[16], 0)
    qc.rzx(v[17], 2, 1)
    qc.cy(0, 1)
    qc.ccx(0, 1, 2)
    qc.rzz(v[18], 2, 3)  # after a ccx: cannot be moved, starts a segment
    qc.r(v[19], a, 1)
    qc.iswap(1, 2)
    qc.cs(3, 0)
    qc.ecr(0, 1)
    qc.cp(0.4 * a, 0, 1)
    qc.rz(0.3, 2)
    qc.barrier()
    return qc


def heron_transpiled(circuit: QuantumCircuit, seed: int = 1) -> QuantumCircuit:
    """``circuit`` through a level-2 preset pass manager for a Heron-like line of qubits."""
    from qiskit.providers.fake_provider import GenericBackendV2
    from qiskit.transpiler import generate_preset_pass_manager

    backend = GenericBackendV2(circuit.num_qubits, basis_gates=HERON_GATES, seed=seed)
    manager = generate_preset_pass_manager(2, backend=backend, seed_transpiler=seed)
    return manager.run(circuit)


def observables(n: int) -> list[SparsePauliOp]:
    """One-qubit and multi-qubit Pauli terms, some summed into one observable."""
    return [
        SparsePauliOp.from_list([("X" + "I" * (n - 1), 0.5), ("I" * (n - 2) + "ZZ", -1.2)]),
        SparsePauliOp("Y" + "I" * (n - 1)),
        SparsePauliOp("I" * (n - 1) + "Z"),
        SparsePauliOp("XY" + "Z" * (n - 2)),
    ]


def circuits() -> dict[str, QuantumCircuit]:
    """The named circuits of the suite (3 to 5 qubits)."""
    return {
        "gate_zoo": gate_zoo(4),
        "gate_zoo_5": gate_zoo(5),
        "n_local_crx": n_local(4, ["ry", "rz"], "crx", reps=2),
        "n_local_rzz": n_local(4, "ry", "rzz", entanglement="circular", reps=2),
        "efficient_su2": efficient_su2(4, reps=2),
        "real_amplitudes": real_amplitudes(5, reps=2),
        "pauli_two_design": pauli_two_design(4, reps=2, seed=3),
        "heron_efficient_su2": heron_transpiled(efficient_su2(3, reps=1)),
        "heron_gate_zoo": heron_transpiled(gate_zoo(4)),
    }


CIRCUITS = circuits()
