"""The Aer paths beyond the engine suite (tests/engines): the sequence runner, the broadcast
parameter-shift gradient, the cost model and guard, the memory check."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2
from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient

from qrnn_qiskit.backends import StatevectorEngine
from qrnn_qiskit.backends.aer import (
    AerEstimatorEngine,
    AerSequenceRunner,
    AerTiming,
    BroadcastParamShiftGradient,
    aer_estimator,
    check_memory,
    estimate_cost,
    statevector_bytes,
)
from qrnn_qiskit.circuits import ENTANGLERS, QRNNSpec, readout_observables, step_circuit
from qrnn_qiskit.circuits.sequence import prefix_circuit, simulation_sequence_circuit
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.models import ControllerConfig, QRNNConfig, QRNNCore

RUNNER_TOL = 1e-6  # the bound for the sequence runner vs the complex128 torch engine


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _torch_readouts(spec: QRNNSpec, angles: np.ndarray) -> np.ndarray:
    engine = StatevectorEngine(
        step_circuit(spec), readout_observables(spec), dtype=torch.complex128
    )
    state = engine.initial_state(angles.shape[0])
    out = []
    for t in range(angles.shape[1]):
        state = engine.step(state, torch.tensor(angles[:, t]))
        out.append(engine.readouts(state))
    return torch.stack(out, dim=1).numpy()


class CountingSimulator(AerSimulator):
    """A real AerSimulator that counts its run() calls."""

    calls = 0

    def run(self, *args, **kwargs):
        CountingSimulator.calls += 1
        return super().run(*args, **kwargs)


class CountingEstimator(EstimatorV2):
    """Aer's EstimatorV2 counting pubs and parameter bindings (the work the cost model predicts)."""

    def __init__(self) -> None:
        super().__init__(
            options={"backend_options": {"method": "statevector"}, "default_precision": 0.0}
        )
        self.pubs = 0
        self.bindings = 0
        self.expectations = 0

    def _run_pub(self, pub):
        self.pubs += 1
        bindings = int(np.prod(pub.parameter_values.shape))
        self.bindings += bindings
        self.expectations += bindings * int(
            np.prod(pub.observables.shape[: pub.observables.ndim - pub.parameter_values.ndim]) or 1
        )
        return super()._run_pub(pub)


# ------------------------------------------------------------------------------------ circuits
def test_sequence_circuits_have_one_vector_per_step_and_saves_after_each():
    spec = QRNNSpec(3, 2, "cz_ring", "xyz")
    seq = simulation_sequence_circuit(spec, 11)
    assert seq.steps == 11 and len(seq.labels) == 11
    assert all(len(labels) == spec.n_readouts for labels in seq.labels)
    assert seq.circuit.num_parameters == 11 * spec.n_params
    # zero-padded vector names keep Qiskit's parameter order equal to time order
    assert list(seq.circuit.parameters) == seq.flat_parameters()
    assert seq.circuit.count_ops()["save_expval"] == 11 * spec.n_readouts
    prefix = prefix_circuit(spec, 3)
    assert "save_expval" not in prefix.circuit.count_ops() and prefix.labels == ((), (), ())
    with pytest.raises(ValueError, match="steps"):
        prefix_circuit(spec, 0)


# ------------------------------------------------------------------------------- sequence runner
RUNNER_CASES = [(n, ent, ro) for n in (1, 2, 3, 4) for ent in ENTANGLERS for ro in ("xyz", "z")]


@pytest.mark.parametrize(
    "n,entangler,readouts", RUNNER_CASES, ids=[f"n{n}-{e}-{r}" for n, e, r in RUNNER_CASES]
)
def test_sequence_runner_matches_torch_engine(n, entangler, readouts):
    rng = _rng(f"runner-{n}-{entangler}-{readouts}")
    spec = QRNNSpec(n, int(rng.integers(1, 3)), entangler, readouts)
    batch, steps = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    angles = rng.uniform(-np.pi, np.pi, (batch, steps, spec.n_params))
    runner = AerSequenceRunner(spec, simulator=CountingSimulator(method="statevector"))
    before = CountingSimulator.calls
    out = runner.run(angles)
    assert CountingSimulator.calls - before == 1  # the whole batch of sequences in one run()
    assert out.shape == (batch, steps, spec.n_readouts)
    np.testing.assert_allclose(out, _torch_readouts(spec, angles), atol=RUNNER_TOL, rtol=0)


def test_sequence_runner_accepts_torch_and_rejects_bad_shapes():
    spec = QRNNSpec(2, 1)
    runner = AerSequenceRunner(spec, runtime_parameter_bind=False)
    angles = torch.randn(2, 3, spec.n_params, dtype=torch.float64)
    np.testing.assert_allclose(
        runner.run(angles), _torch_readouts(spec, angles.numpy()), atol=RUNNER_TOL, rtol=0
    )
    with pytest.raises(ValueError, match="shape"):
        runner.run(np.zeros((2, 3, spec.n_params + 1)))
    with pytest.raises(ValueError, match="NaN"):
        runner.run(np.full((1, 1, spec.n_params), np.nan))


# ------------------------------------------------------------------------------ gradient strategy
def test_broadcast_gradient_equals_qiskit_param_shift_including_shared_and_scaled_parameters():
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.rx(2 * a + 0.3, 1)  # a parameter used twice, once scaled: the chain rule in _postprocess
    qc.cx(0, 1)
    qc.rz(b, 1)
    qc.ry(-b, 0)
    observables = [SparsePauliOp("ZI"), SparsePauliOp(["XX", "YZ"], [0.5, -1.5])]
    values = np.random.default_rng(3).uniform(-3, 3, (3, 2))
    circuits = [qc] * 6
    obs = [o for o in observables for _ in range(3)]
    vals = np.tile(values, (2, 1))
    estimator = aer_estimator()
    ours = BroadcastParamShiftGradient(estimator).run(circuits, obs, vals).result().gradients
    stock = ParamShiftEstimatorGradient(estimator).run(circuits, obs, vals).result().gradients
    np.testing.assert_allclose(np.array(ours), np.array(stock), atol=1e-12)
    # and both are the true derivative (central finite differences on Statevector)
    eps = 1e-6
    for i, (o, v) in enumerate(zip(obs, vals)):
        for k in range(2):
            hi, lo = v.copy(), v.copy()
            hi[k] += eps
            lo[k] -= eps
            fd = (
                Statevector(qc.assign_parameters(hi)).expectation_value(o).real
                - Statevector(qc.assign_parameters(lo)).expectation_value(o).real
            ) / (2 * eps)
            assert abs(ours[i][k] - fd) < 1e-6


# ------------------------------------------------------------------------------- trainable path
def test_the_stock_parameter_shift_gradient_gives_the_same_engine_gradients():
    """qiskit-machine-learning's own ParamShiftEstimatorGradient (one Aer run per shift) and ours
    (one broadcast pub) give the same gradients through the engine."""
    spec = QRNNSpec(2, 1, "cx_ring", "z")
    estimator = aer_estimator()
    angles = torch.randn(2, 3, spec.n_params, generator=torch.Generator().manual_seed(7))
    grads = []
    for gradient in (
        BroadcastParamShiftGradient(estimator),
        ParamShiftEstimatorGradient(estimator),
    ):
        engine = AerEstimatorEngine(spec, estimator=estimator, gradient=gradient)
        a = angles.clone().requires_grad_(True)
        state = engine.initial_state(2)
        total = 0
        for t in range(3):
            state, z = engine.step_readouts(state, a[:, t])
            total = total + z.sum()
        total.backward()
        grads.append(a.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=0)


def test_cost_model_counts_the_pubs_and_circuits_actually_run():
    spec = QRNNSpec(2, 1, "cx_ring", "xyz")
    batch, steps = 3, 3
    for broadcast in (True, False):
        estimator = CountingEstimator()
        gradient = (
            BroadcastParamShiftGradient(estimator)
            if broadcast
            else ParamShiftEstimatorGradient(estimator)
        )
        engine = AerEstimatorEngine(spec, estimator=estimator, gradient=gradient)
        angles = torch.randn(batch, steps, spec.n_params, requires_grad=True)
        state = engine.initial_state(batch)
        zs = []
        for t in range(steps):
            state = engine.step(state, angles[:, t])
            zs.append(engine.readouts(state))
        torch.stack(zs).sum().backward()
        cost = estimate_cost(spec, batch, steps, broadcast=broadcast)
        assert (estimator.pubs, estimator.bindings, estimator.expectations) == (
            cost.pubs,
            cost.bindings,
            cost.expectations,
        )
        # bindings per prefix length t: forward R·B, gradient 2·t·P·B shifted sets (× R without
        # broadcast)
        r, p = spec.n_readouts, spec.n_params
        per_t = [
            r * batch + 2 * p * t * batch * (1 if broadcast else r) for t in range(1, steps + 1)
        ]
        assert cost.bindings == sum(per_t)
        assert cost.step_circuits == sum(t * b for t, b in zip(range(1, steps + 1), per_t))


def test_cost_guard_refuses_with_an_estimate_and_force_overrides():
    spec = QRNNSpec(2, 1)
    config = QRNNConfig(spec, ControllerConfig(width=4))
    engine = AerEstimatorEngine(spec, planned_steps=10**9)
    core = QRNNCore(3, config, engine=engine)
    with pytest.raises(QRNNError, match=r"would take about .* h .*--force"):
        core(torch.zeros(2, 3, 3))
    forced = QRNNCore(3, config, engine=AerEstimatorEngine(spec, planned_steps=10**9, force=True))
    z, _ = forced(torch.zeros(2, 3, 3))
    assert z.shape == (2, 3, spec.n_readouts)
    with torch.no_grad():  # evaluation passes are checked as forward-only plans
        assert QRNNCore(3, config, engine=engine)(torch.zeros(2, 3, 3))[0].shape == z.shape
    # the estimate scales as the cost model says: steps × one pass, calibrated timings
    total, one = engine.plan_cost(2, 3, backward=True)
    assert total == pytest.approx(10**9 * one.seconds)


def test_estimate_cost_grows_cubically_in_steps():
    spec = QRNNSpec(4, 2)
    timing = AerTiming(
        per_run_s=0.0,
        per_pub_s=0.0,
        per_binding_s=0.0,
        per_step_circuit_s=1.0,
        per_expectation_s=0.0,
    )
    small = estimate_cost(spec, 1, 10, timing=timing)
    large = estimate_cost(spec, 1, 20, timing=timing)
    assert 7 < large.seconds / small.seconds < 9


def test_memory_check_says_how_much_before_allocating():
    assert statevector_bytes(10, 3) == 1024 * 16 * 3
    assert check_memory(10, 3, available=10**9) == 1024 * 16 * 3
    with pytest.raises(
        QRNNError,
        match=r"20 qubits × batch 64 needs about 1.0 GiB of state vectors \(2\^20·16 bytes",
    ):
        check_memory(20, 64, available=1 << 29)
