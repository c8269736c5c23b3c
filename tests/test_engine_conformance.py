"""The statevector engine (native CPU kernels and the torch path) against Qiskit's Statevector (and
Aer): states, readouts, gradients."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
import torch
from kernels import KERNELS, kernel_or_skip
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.quantum_info import SparsePauliOp, Statevector

from qrnn_qiskit.backends import StatevectorEngine, UnsupportedCircuitError, native
from qrnn_qiskit.circuits import ENTANGLERS, QRNNSpec, readout_observables, step_circuit

TOL = {torch.complex128: 1e-10, torch.complex64: 1e-5}
READOUTS = ("xyz", "z", "zz", "explicit")


def _random_labels(rng: np.random.Generator, n: int, k: int = 4) -> tuple[str, ...]:
    labels = []
    while len(labels) < k:
        label = "".join(rng.choice(list("IXYZ"), size=n))
        if set(label) != {"I"}:
            labels.append(label)
    return tuple(labels)


def _reference(
    circuit: QuantumCircuit, angles: np.ndarray, observables
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """States and readouts after each step for one sample, by Qiskit's Statevector."""
    state = Statevector.from_label("0" * circuit.num_qubits)
    states, values = [], []
    for theta in angles:
        state = state.evolve(circuit.assign_parameters(theta))
        states.append(state.data.copy())
        values.append(np.array([state.expectation_value(o).real for o in observables]))
    return states, values


def _engine_run(
    engine: StatevectorEngine, angles: np.ndarray
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    state = engine.initial_state(angles.shape[0])
    states, values = [], []
    for t in range(angles.shape[1]):
        state = engine.step(state, torch.tensor(angles[:, t]))
        states.append(state)
        values.append(engine.readouts(state))
    return states, values


SPECS = [
    (n, ent, ro, k)
    for n in range(1, 9)
    for ent in ENTANGLERS
    for ro in READOUTS
    for k in KERNELS
    if k != "native" or n >= native.MIN_QUBITS
]


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=["c128", "c64"])
@pytest.mark.parametrize(
    "n,entangler,readouts,kernel", SPECS, ids=[f"n{n}-{e}-{r}-{k}" for n, e, r, k in SPECS]
)
def test_states_and_readouts_match_statevector(n, entangler, readouts, dtype, kernel):
    rng = np.random.default_rng(zlib.crc32(f"{n}-{entangler}-{readouts}".encode()))
    layers = int(rng.integers(1, 4))
    labels = _random_labels(rng, n) if readouts == "explicit" else readouts
    spec = QRNNSpec(n, layers, entangler, labels)
    circuit, observables = step_circuit(spec), readout_observables(spec)
    engine = StatevectorEngine(
        circuit,
        observables,
        dtype=dtype,
        group_size=int(rng.integers(1, 5)),
        kernel=kernel_or_skip(kernel, n),
    )
    batch, steps = 2, 3
    angles = rng.uniform(-np.pi, np.pi, size=(batch, steps, spec.n_params))
    states, values = _engine_run(engine, angles)
    tol = TOL[dtype]
    for b in range(batch):
        ref_states, ref_values = _reference(circuit, angles[b], observables)
        for t in range(steps):
            np.testing.assert_allclose(
                states[t][b].detach().numpy(), ref_states[t], atol=tol, rtol=0
            )
            np.testing.assert_allclose(
                values[t][b].detach().numpy(), ref_values[t], atol=tol, rtol=0
            )


@pytest.mark.parametrize(
    "n,kernel",
    [(n, k) for n in (1, 2, 3, 5, 8) for k in KERNELS if k != "native" or n >= native.MIN_QUBITS],
)
def test_gradients_match_central_finite_differences(n, kernel):
    rng = np.random.default_rng(100 + n)
    spec = QRNNSpec(n, 2, ENTANGLERS[n % 3], "xyz")
    engine = StatevectorEngine(
        step_circuit(spec),
        readout_observables(spec),
        dtype=torch.complex128,
        kernel=kernel_or_skip(kernel, n),
    )
    steps = 2
    weights = torch.tensor(rng.normal(size=(steps, spec.n_readouts)))

    def loss(angles: torch.Tensor) -> torch.Tensor:
        state = engine.initial_state(1)
        total = torch.zeros((), dtype=torch.float64)
        for t in range(steps):
            state = engine.step(state, angles[t : t + 1])
            total = total + (engine.readouts(state)[0] * weights[t]).sum()
        return total

    angles = torch.tensor(
        rng.uniform(-np.pi, np.pi, size=(steps, spec.n_params)), requires_grad=True
    )
    (grad,) = torch.autograd.grad(loss(angles), angles)
    eps = 1e-6
    fd = torch.zeros_like(angles)
    with torch.no_grad():
        for idx in itertools.product(range(steps), range(spec.n_params)):
            shift = torch.zeros_like(angles)
            shift[idx] = eps
            fd[idx] = (loss(angles + shift) - loss(angles - shift)) / (2 * eps)
    np.testing.assert_allclose(grad.numpy(), fd.numpy(), atol=1e-6, rtol=0)


def test_pauli_label_order_rightmost_is_qubit_zero():
    # X on qubit 0 only: |0..0> -> |0..01>; Statevector index 1
    qc = QuantumCircuit(3)
    qc.x(0)
    labels = ["IIZ", "ZII", "IZI", "ZIZ"]
    engine = StatevectorEngine(
        qc, [SparsePauliOp(label) for label in labels], dtype=torch.complex128
    )
    state = engine.step(engine.initial_state(1), torch.zeros(1, 0))
    assert state[0].abs().argmax().item() == 1
    np.testing.assert_allclose(
        engine.readouts(state)[0].numpy(), [-1.0, 1.0, 1.0, -1.0], atol=1e-12
    )


def test_readout_order_of_xyz_spec():
    labels = [o.paulis[0].to_label() for o in readout_observables(QRNNSpec(2, 1, "cx_ring", "xyz"))]
    assert labels == ["IX", "XI", "IY", "YI", "IZ", "ZI"]


def test_general_circuit_with_every_supported_gate_and_multi_term_observables():
    rng = np.random.default_rng(7)
    a, b = Parameter("a"), Parameter("b")
    v = ParameterVector("v", 3)
    qc = QuantumCircuit(4, global_phase=0.3)
    qc.h(0)
    qc.rx(2 * a + 0.1, 1)
    qc.cx(0, 2)
    qc.y(2)
    qc.s(3)
    qc.ry(b, 0)  # qubit 0 was touched by the cx: a new segment
    qc.cz(1, 3)
    qc.sdg(1)
    qc.rz(-v[0], 3)
    qc.x(2)
    qc.z(0)
    qc.rx(0.7, 2)  # constant rotation
    qc.cx(3, 1)
    qc.ry(v[1] * 0.5 - 1.0, 2)
    qc.rz(v[2], 0)
    qc.barrier()
    observables = [
        SparsePauliOp.from_list([("XZIY", 0.5), ("IIZZ", -1.2), ("YYII", 0.3)]),
        SparsePauliOp.from_list([("IIIX", 1.0), ("IIIY", 2.0)]),
        SparsePauliOp("ZXYI"),
    ]
    engine = StatevectorEngine(qc, observables, dtype=torch.complex128, group_size=2)
    params = rng.normal(size=(3, engine.n_params))
    state = engine.step(engine.initial_state(3), torch.tensor(params))
    values = engine.readouts(state)
    for i in range(3):
        ref = Statevector(qc.assign_parameters(params[i]))
        np.testing.assert_allclose(state[i].numpy(), ref.data, atol=1e-12)
        np.testing.assert_allclose(
            values[i].numpy(), [ref.expectation_value(o).real for o in observables], atol=1e-12
        )


def test_matches_aer_statevector():
    from qiskit_aer import AerSimulator

    rng = np.random.default_rng(3)
    spec = QRNNSpec(5, 2, "cz_ring", "xyz")
    circuit, observables = step_circuit(spec), readout_observables(spec)
    angles = rng.uniform(-np.pi, np.pi, size=(2, spec.n_params))
    qc = circuit.assign_parameters(angles[0]).compose(circuit.assign_parameters(angles[1]))
    qc.save_statevector()
    aer_state = np.asarray(AerSimulator(method="statevector").run(qc).result().get_statevector())
    engine = StatevectorEngine(circuit, observables, dtype=torch.complex128)
    state = engine.initial_state(1)
    for t in range(2):
        state = engine.step(state, torch.tensor(angles[t : t + 1]))
    np.testing.assert_allclose(state[0].numpy(), aer_state, atol=1e-10)


def test_unsupported_instruction_is_named():
    qc = QuantumCircuit(2)
    qc.swap(0, 1)
    with pytest.raises(UnsupportedCircuitError, match="'swap'"):
        StatevectorEngine(qc, [SparsePauliOp("ZZ")])
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    with pytest.raises(UnsupportedCircuitError, match="'measure'"):
        StatevectorEngine(qc, [SparsePauliOp("Z")])


def test_bad_observables_and_shapes_are_rejected():
    qc = step_circuit(QRNNSpec(2, 1))
    with pytest.raises(ValueError, match="not Hermitian"):
        StatevectorEngine(qc, [SparsePauliOp.from_list([("XY", 1j)])])
    with pytest.raises(ValueError, match="acts on 3 qubits"):
        StatevectorEngine(qc, [SparsePauliOp("ZZZ")])
    engine = StatevectorEngine(qc, [SparsePauliOp("ZZ")])
    with pytest.raises(ValueError, match="angles must have shape"):
        engine.step(engine.initial_state(2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="state must have shape"):
        engine.readouts(torch.zeros(2, 8, dtype=torch.complex64))


def test_complex64_and_complex128_agree_and_state_stays_normalised():
    rng = np.random.default_rng(11)
    spec = QRNNSpec(6, 2)
    angles = rng.normal(size=(4, 5, spec.n_params))
    runs = {}
    for dtype in (torch.complex64, torch.complex128):
        engine = StatevectorEngine(step_circuit(spec), readout_observables(spec), dtype=dtype)
        states, values = _engine_run(engine, angles)
        runs[dtype] = values[-1].double()
        np.testing.assert_allclose(
            states[-1].abs().pow(2).sum(-1).double().numpy(), 1.0, atol=TOL[dtype] * 10
        )
    np.testing.assert_allclose(
        runs[torch.complex64].numpy(), runs[torch.complex128].numpy(), atol=1e-5
    )
