"""The statevector engine beyond the shared suite: general circuits with every supported gate, the
reversible tape's edge cases, Pauli order, compile errors and precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_kinds import circuit_engine
from library import CIRCUITS
from library import observables as library_observables
from qiskit import QuantumCircuit
from qiskit.circuit import Gate, Parameter, ParameterVector
from qiskit.quantum_info import SparsePauliOp, Statevector

from qrnn_qiskit.backends import StatevectorEngine, UnsupportedCircuitError
from qrnn_qiskit.backends.statevector import ReversibleTape
from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit

TOL = {torch.complex128: 1e-10, torch.complex64: 1e-5}
KERNELS = ("torch", "native")


def _general_circuit() -> tuple[QuantumCircuit, list[SparsePauliOp]]:
    a, b = Parameter("a"), Parameter("b")
    v = ParameterVector("v", 4)
    qc = QuantumCircuit(5, global_phase=-0.4)
    qc.h(0)
    qc.rx(2 * a + 0.1, 1)
    qc.ry(v[3], 1)
    qc.cx(0, 2)
    qc.y(2)
    qc.s(3)
    qc.ry(b, 0)
    qc.rz(0.5 * b, 4)
    qc.cz(1, 3)
    qc.sdg(1)
    qc.rz(-v[0], 3)
    qc.x(2)
    qc.rx(0.7, 2)
    qc.cx(3, 4)
    qc.ry(v[1] * 0.5 - 1.0, 2)
    qc.h(2)
    qc.rz(v[2], 0)
    qc.rx(a, 0)
    observables = [
        SparsePauliOp.from_list([("IXZIY", 0.5), ("IIIZZ", -1.2), ("ZYYII", 0.3)]),
        SparsePauliOp.from_list([("IIIIX", 1.0), ("IIIIY", 2.0)]),
        SparsePauliOp("XZXYI"),
        SparsePauliOp("ZIIIZ"),
    ]
    return qc, observables


def _loss_and_grads(engine, step, readouts, state0, angles, weights):
    state0 = state0.clone().requires_grad_(True)
    angles = angles.clone().requires_grad_(True)
    state, loss = state0, 0
    for t in range(angles.shape[1]):
        state = step(state, angles[:, t])
        loss = loss + (readouts(state) * weights[t]).sum()
    loss = loss + (state.real * weights[-1, 0]).sum()  # the final state itself also enters the loss
    loss.backward()
    return loss.detach(), state0.grad, angles.grad


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=["c128", "c64"])
@pytest.mark.parametrize("group_size", [1, 2, 3, 5])
def test_custom_backward_equals_autograd_on_a_general_circuit(dtype, group_size, kernel):
    qc, observables = _general_circuit()
    engine = circuit_engine(kernel, qc, observables, dtype, group_size)
    gen = torch.Generator().manual_seed(group_size)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    angles = torch.randn(3, 4, engine.n_params, generator=gen, dtype=real)
    state0 = torch.randn(3, engine.dim, generator=gen, dtype=dtype)
    state0 = state0 / state0.abs().pow(2).sum(-1, keepdim=True).sqrt()
    weights = torch.randn(5, len(observables), generator=gen, dtype=real)
    fast = _loss_and_grads(engine, engine.step, engine.readouts, state0, angles, weights)
    plain = _loss_and_grads(
        engine, engine.step_autograd, engine.readouts_autograd, state0, angles, weights
    )
    for x, y in zip(fast, plain):
        torch.testing.assert_close(x, y, atol=TOL[dtype] * 10, rtol=TOL[dtype])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_custom_backward_equals_autograd_on_library_circuits(name, kernel):
    """The state itself enters the loss, so a parametrized global phase's gradient counts."""
    qc = CIRCUITS[name]
    observables = library_observables(qc.num_qubits)
    engine = circuit_engine(kernel, qc, observables, torch.complex128)
    gen = torch.Generator().manual_seed(5)
    angles = torch.randn(2, 3, engine.n_params, generator=gen, dtype=torch.float64)
    state0 = torch.randn(2, engine.dim, generator=gen, dtype=torch.complex128)
    state0 = state0 / state0.abs().pow(2).sum(-1, keepdim=True).sqrt()
    weights = torch.randn(4, len(observables), generator=gen, dtype=torch.float64)
    fast = _loss_and_grads(engine, engine.step, engine.readouts, state0, angles, weights)
    plain = _loss_and_grads(
        engine, engine.step_autograd, engine.readouts_autograd, state0, angles, weights
    )
    for x, y in zip(fast, plain):
        torch.testing.assert_close(x, y, atol=1e-10, rtol=1e-10)


def _sequence_grad(dtype, angles, mode: str) -> torch.Tensor:
    spec = QRNNSpec(4, 2)
    engine = StatevectorEngine(step_circuit(spec), readout_observables(spec), dtype=dtype)
    a = angles.to(engine.real_dtype).clone().requires_grad_(True)
    if mode == "plain":
        state, values = engine.initial_state(a.shape[0]), []
        for t in range(a.shape[1]):
            state = engine.step_autograd(state, a[:, t])
            values.append(engine.readouts_autograd(state))
        values = torch.stack(values, 1)
    else:
        values, _ = engine.sequence(a, reversible=True)
    values[:, ::7].sum().backward()
    return a.grad.double()


def test_reversible_long_sequence_with_checkpoints():
    """300 steps (checkpoints every 64): exact in complex128; in complex64 the error stays at the
    level of plain complex64 autograd's own round-off against the exact gradient."""
    angles = torch.randn(
        2, 300, 16, generator=torch.Generator().manual_seed(9), dtype=torch.float64
    )
    exact = _sequence_grad(torch.complex128, angles, "plain")
    torch.testing.assert_close(
        _sequence_grad(torch.complex128, angles, "reversible"), exact, atol=1e-10, rtol=0
    )
    plain64 = (_sequence_grad(torch.complex64, angles, "plain") - exact).abs().max()
    reversible64 = (_sequence_grad(torch.complex64, angles, "reversible") - exact).abs().max()
    assert reversible64 <= 3 * plain64 + 1e-6, (reversible64, plain64)


def test_tape_refuses_a_second_backward():
    spec = QRNNSpec(3, 1)
    engine = StatevectorEngine(step_circuit(spec), readout_observables(spec))
    angles = torch.randn(2, 5, spec.n_params, requires_grad=True)
    values, _ = engine.sequence(angles)
    loss = values.sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="reverse order"):
        loss.backward()


def test_loss_on_an_early_part_of_a_sequence_recomputes_from_checkpoints():
    spec = QRNNSpec(3, 2)
    engine = StatevectorEngine(
        step_circuit(spec), readout_observables(spec), dtype=torch.complex128
    )
    angles = torch.randn(2, 50, spec.n_params, dtype=torch.float64)
    a1 = angles.clone().requires_grad_(True)
    tape, state, values = ReversibleTape(checkpoint_every=8), engine.initial_state(2), []
    for t in range(50):
        state, z = engine.step_readouts(state, a1[:, t], tape)
        values.append(z)
    values[21].sum().backward()  # steps 22..49 are not part of this loss
    a2 = angles.clone().requires_grad_(True)
    state = engine.initial_state(2)
    for t in range(22):
        state = engine.step_autograd(state, a2[:, t])
    engine.readouts_autograd(state).sum().backward()
    torch.testing.assert_close(a1.grad, a2.grad, atol=1e-10, rtol=0)


def test_tape_checkpoint_interval_is_validated():
    with pytest.raises(ValueError, match="checkpoint_every"):
        ReversibleTape(0)


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


@pytest.mark.parametrize("kernel", KERNELS)
def test_general_circuit_with_every_supported_gate_and_multi_term_observables(kernel):
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
    engine = circuit_engine(kernel, qc, observables, torch.complex128, 2)
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
    qc.append(Gate("opaque", 2, []), [0, 1])  # no matrix, no definition
    with pytest.raises(UnsupportedCircuitError, match="'opaque'"):
        StatevectorEngine(qc, [SparsePauliOp("ZZ")])
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    with pytest.raises(UnsupportedCircuitError, match="'measure'"):
        StatevectorEngine(qc, [SparsePauliOp("Z")])
    theta = Parameter("t")
    qc = QuantumCircuit(1)
    qc.rx(theta * theta, 0)
    with pytest.raises(UnsupportedCircuitError, match="not linear"):
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
        values, state = engine.sequence(torch.tensor(angles, dtype=engine.real_dtype))
        runs[dtype] = values[:, -1].double()
        np.testing.assert_allclose(
            state.abs().pow(2).sum(-1).double().numpy(), 1.0, atol=TOL[dtype] * 10
        )
    np.testing.assert_allclose(
        runs[torch.complex64].numpy(), runs[torch.complex128].numpy(), atol=1e-5
    )
