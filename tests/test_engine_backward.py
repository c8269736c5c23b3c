"""The hand-written (reversible) backward of the statevector engine against plain autograd."""

from __future__ import annotations

import pytest
import torch
from kernels import KERNELS, kernel_or_skip
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.quantum_info import SparsePauliOp

from qrnn_qiskit.backends import StatevectorEngine
from qrnn_qiskit.backends.statevector import ReversibleTape
from qrnn_qiskit.circuits import ENTANGLERS, QRNNSpec, readout_observables, step_circuit

TOL = {torch.complex128: 1e-10, torch.complex64: 1e-5}


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
    engine = StatevectorEngine(
        qc,
        observables,
        dtype=dtype,
        group_size=group_size,
        kernel=kernel_or_skip(kernel, qc.num_qubits),
    )
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
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=["c128", "c64"])
@pytest.mark.parametrize("entangler", ENTANGLERS)
def test_reversible_sequence_gradients_equal_autograd(dtype, entangler, kernel):
    spec = QRNNSpec(6, 2, entangler, "xyz")
    engine = StatevectorEngine(
        step_circuit(spec),
        readout_observables(spec),
        dtype=dtype,
        kernel=kernel_or_skip(kernel, spec.n_qubits),
    )
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    gen = torch.Generator().manual_seed(5)
    angles = torch.randn(4, 40, spec.n_params, generator=gen, dtype=real)
    weights = torch.randn(40, spec.n_readouts, generator=gen, dtype=real)

    a1 = angles.clone().requires_grad_(True)
    values, _ = engine.sequence(a1)
    (values * weights).sum().backward()

    a2 = angles.clone().requires_grad_(True)
    state, plain = engine.initial_state(4), []
    for t in range(40):
        state = engine.step_autograd(state, a2[:, t])
        plain.append(engine.readouts_autograd(state))
    (torch.stack(plain, 1) * weights).sum().backward()
    torch.testing.assert_close(values, torch.stack(plain, 1).detach(), atol=TOL[dtype], rtol=0)
    torch.testing.assert_close(a1.grad, a2.grad, atol=TOL[dtype] * 10, rtol=TOL[dtype])


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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=["c128", "c64"])
def test_cuda_matches_cpu(dtype):
    spec = QRNNSpec(7, 2, "cz_ring", "xyz")
    cpu = StatevectorEngine(step_circuit(spec), readout_observables(spec), dtype=dtype)
    gpu = StatevectorEngine(
        step_circuit(spec), readout_observables(spec), dtype=dtype, device="cuda"
    )
    angles = torch.randn(5, 6, spec.n_params, dtype=cpu.real_dtype)
    grads = []
    for engine in (cpu, gpu):
        a = angles.to(engine.device).requires_grad_(True)
        values, _ = engine.sequence(a)
        values.square().sum().backward()
        grads.append((values.detach().cpu(), a.grad.cpu()))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=TOL[dtype], rtol=0)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=TOL[dtype] * 10, rtol=TOL[dtype])
