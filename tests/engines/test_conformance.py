"""The engine conformance suite: every engine (tests/engines/engine_kinds.py) against Qiskit's
Statevector on random QRNN specs and on the circuits of tests/engines/library.py (every compiled
gate family, Qiskit's library ansätze, a Heron-target transpilation) — states, readouts,
finite-difference gradients, recorded passes — and a whole QRNN model trained one step on each
engine against the complex128 reference model.
``qrnn train --engine-check`` runs the same checks once (``backends.conformance.check_engine``)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from engine_kinds import KINDS, STATEVECTOR_KINDS, cases, circuit_engine, spec_engine
from library import CIRCUITS, observables

from qrnn_qiskit.backends import conformance
from qrnn_qiskit.circuits import (
    ALL_ENTANGLERS,
    ENTANGLERS,
    QRNNSpec,
    readout_observables,
    step_circuit,
)
from qrnn_qiskit.models import ControllerConfig, InputSpec, QRNNConfig, build_model

READOUTS = ("xyz", "z", "zz", "explicit")


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("-".join(map(str, key)).encode()))


def _labels(rng: np.random.Generator, n: int, k: int = 4) -> tuple[str, ...]:
    labels = []
    while len(labels) < k:
        label = "".join(rng.choice(list("IXYZ"), size=n))
        if set(label) != {"I"}:
            labels.append(label)
    return tuple(labels)


def _spec(rng: np.random.Generator, n: int, entangler: str, readouts: str) -> QRNNSpec:
    labels = _labels(rng, n) if readouts == "explicit" else readouts
    return QRNNSpec(n, int(rng.integers(1, 4)), entangler, labels)


def _spec_cases(kind) -> list:
    readouts = READOUTS if kind.statevector else ("xyz", "z")
    # the RZZ entanglers at a few sizes (on either side of the small-register kernels' limit)
    entanglers = ALL_ENTANGLERS if kind.statevector else ENTANGLERS  # Aer: slow, the CX/CZ ones
    return [
        (n, e, r, str(d).removeprefix("torch."))
        for n in kind.qubits
        for e in entanglers
        for r in readouts
        for d in kind.dtypes
        if e in ENTANGLERS or n in (2, 3, 6, 8)
    ]


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


@pytest.mark.parametrize("kind,n,entangler,readouts,dtype", cases(KINDS, _spec_cases))
def test_readouts_match_statevector(kind, n, entangler, readouts, dtype, tol):
    rng = _rng(n, entangler, readouts)
    spec = _spec(rng, n, entangler, readouts)
    engine = spec_engine(kind, spec, _dtype(dtype))
    circuit, observables = step_circuit(spec), readout_observables(spec)
    angles = conformance.random_angles(engine, 2, 3, seed=n)
    for recorded in (False, True):
        error = conformance.readout_error(engine, circuit, observables, angles, recorded=recorded)
        assert error <= tol(engine).value, (recorded, error)


@pytest.mark.parametrize("kind,n,entangler,readouts,dtype", cases(STATEVECTOR_KINDS, _spec_cases))
def test_states_match_statevector(kind, n, entangler, readouts, dtype, tol):
    rng = _rng(n, entangler, readouts, "state")
    spec = _spec(rng, n, entangler, readouts)
    engine = spec_engine(kind, spec, _dtype(dtype))
    assert engine.capabilities.statevector
    circuit, observables = step_circuit(spec), readout_observables(spec)
    angles = conformance.random_angles(engine, 2, 3, seed=n + 1)
    error = conformance.state_error(engine, circuit, observables, angles, recorded=True)
    assert error <= tol(engine).value


def _gradient_cases(kind) -> list:
    sizes = [n for n in (1, 2, 3, 5, 8) if n in kind.qubits]
    return [(n, kind.dtypes[0]) for n in sizes]


@pytest.mark.parametrize("kind,n,dtype", cases(KINDS, _gradient_cases))
def test_gradients_match_finite_differences_of_statevector(kind, n, dtype, tol):
    rng = _rng("grad", n)
    spec = QRNNSpec(n, 2, ALL_ENTANGLERS[n % len(ALL_ENTANGLERS)], "xyz")
    engine = spec_engine(kind, spec, dtype)
    circuit, observables = step_circuit(spec), readout_observables(spec)
    angles = conformance.random_angles(engine, 1, 2, seed=100 + n)
    weights = rng.normal(size=(2, spec.n_readouts))
    error = conformance.gradient_error(engine, circuit, observables, angles, weights)
    assert error <= tol(engine).gradient


def _recorded_cases(kind) -> list:
    return [(e, str(d).removeprefix("torch.")) for e in ALL_ENTANGLERS for d in kind.dtypes]


@pytest.mark.parametrize("kind,entangler,dtype", cases(STATEVECTOR_KINDS, _recorded_cases))
def test_recorded_pass_gradients_equal_plain_autograd_over_40_steps(kind, entangler, dtype, tol):
    """The reversible tape (no state stored per step) against autograd keeping every state."""
    spec = QRNNSpec(6, 2, entangler, "xyz")
    engine = spec_engine(kind, spec, _dtype(dtype))
    rng = _rng("recorded", entangler)
    angles = rng.normal(size=(4, 40, spec.n_params))
    weights = rng.normal(size=(40, spec.n_readouts))
    assert conformance.autograd_error(engine, angles, weights) <= tol(engine).gradient


def _circuit_cases(kind) -> list:
    if not kind.any_circuit:
        return []
    return [(name, str(d).removeprefix("torch.")) for name in CIRCUITS for d in kind.dtypes]


@pytest.mark.parametrize("kind,name,dtype", cases(KINDS, _circuit_cases))
def test_library_circuits_match_statevector(kind, name, dtype, tol):
    circuit = CIRCUITS[name]
    obs = observables(circuit.num_qubits)
    engine = circuit_engine(kind, circuit, obs, _dtype(dtype))
    angles = conformance.random_angles(engine, 2, 2, seed=zlib.crc32(name.encode()))
    assert conformance.state_error(engine, circuit, obs, angles, recorded=True) <= tol(engine).value
    for recorded in (False, True):
        error = conformance.readout_error(engine, circuit, obs, angles, recorded=recorded)
        assert error <= tol(engine).value, (recorded, error)


def _circuit_gradient_cases(kind) -> list:
    return [(name, kind.dtypes[0]) for name in CIRCUITS] if kind.any_circuit else []


@pytest.mark.parametrize("kind,name,dtype", cases(KINDS, _circuit_gradient_cases))
def test_library_circuit_gradients_match_finite_differences(kind, name, dtype, tol):
    circuit = CIRCUITS[name]
    obs = observables(circuit.num_qubits)
    engine = circuit_engine(kind, circuit, obs, dtype)
    angles = conformance.random_angles(engine, 1, 2, seed=zlib.crc32(name.encode()) + 1)
    weights = _rng("library", name).normal(size=(2, len(obs)))
    error = conformance.gradient_error(engine, circuit, obs, angles, weights)
    assert error <= tol(engine).gradient


def test_engine_check_is_the_quick_mode_of_this_suite():
    spec = QRNNSpec(4, 2, "cz_ring", "xyz")
    engine = spec_engine("torch", spec, torch.complex128)
    result = conformance.check_engine(engine, step_circuit(spec), readout_observables(spec))
    assert result.ok and result.state_error is not None and "torch kernels" in str(result)
    broken = conformance.check_engine(
        engine, step_circuit(QRNNSpec(4, 2, "cx_ring")), readout_observables(spec)
    )
    assert not broken.ok and "FAILED" in str(broken)  # a different circuit is caught


# ------------------------------------------------------------------------ a model on each engine
MODEL_TOL = 1e-5


def _model_cases(kind) -> list:
    return [(n, e, r, f) for n, e, r, f in ((2, "cx_ring", "xyz", True), (3, "cz_ring", "z", False))
            if n in kind.qubits]  # fmt: skip


@pytest.mark.parametrize("kind,n,entangler,readouts,feedback", cases(KINDS, _model_cases))
def test_a_model_on_the_engine_trains_like_the_reference(kind, n, entangler, readouts, feedback):
    """Loss, every parameter's gradient and one Adam step of a QRNN on the engine equal those of
    the same QRNN on the complex128 torch engine (same seed, same weights)."""
    spec = QRNNSpec(n, 2, entangler, readouts)
    config = QRNNConfig(spec, ControllerConfig(width=6, depth=1, activation="tanh"), feedback)
    inputs = InputSpec(vocab=5, embed_dim=4)
    engine = spec_engine(kind, spec, torch.complex64 if kind != "aer" else None)
    torch.manual_seed(3)
    reference = build_model("qrnn", inputs, 3, "all", qrnn=config, dtype=torch.complex128)
    torch.manual_seed(3)
    model = build_model("qrnn", inputs, 3, "all", qrnn=config, engine=engine)
    assert model.state_dict().keys() == reference.state_dict().keys()  # checkpoints move between
    rng = _rng("model", kind, n)
    x = torch.from_numpy(rng.integers(0, 5, (3, 4)))
    y = torch.from_numpy(rng.integers(0, 3, (3, 4)))
    device = getattr(engine, "device", torch.device("cpu"))
    results = []
    for m in (reference, model):
        m.to(device if m is model else "cpu")
        optimizer = torch.optim.Adam(m.parameters(), lr=0.05)
        inputs_m, targets_m = (x.to(device), y.to(device)) if m is model else (x, y)
        loss = torch.nn.functional.cross_entropy(m(inputs_m).reshape(-1, 3), targets_m.reshape(-1))
        loss.backward()
        grads = {k: p.grad.detach().cpu().clone() for k, p in m.named_parameters()}
        optimizer.step()
        params = {k: p.detach().cpu().clone() for k, p in m.named_parameters()}
        results.append((loss.item(), grads, params))
    (l0, g0, p0), (l1, g1, p1) = results
    assert abs(l0 - l1) <= MODEL_TOL
    for name in g0:
        assert g0[name].abs().max() > 0 or name.startswith("embed")  # gradients really flow
        torch.testing.assert_close(g1[name], g0[name], atol=MODEL_TOL, rtol=0, msg=name)
        torch.testing.assert_close(p1[name], p0[name], atol=MODEL_TOL, rtol=0, msg=name)
