"""The forgetting step (a mid-circuit reset every k steps) against Qiskit's density matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit.quantum_info import DensityMatrix

from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit
from qrnn_qiskit.models import QRNNConfig, QRNNCore, default_engine, forgetting
from qrnn_qiskit.options import ConfigError


def _reference(spec: QRNNSpec, angles: np.ndarray, every: int) -> np.ndarray:
    """Readouts [T, R] of one sequence with Qiskit: DensityMatrix.evolve, then .reset([q])."""
    circuit = step_circuit(spec)
    observables = readout_observables(spec)
    rho = DensityMatrix.from_label("0" * spec.n_qubits)
    out = []
    for t, theta in enumerate(angles):
        rho = rho.evolve(circuit.assign_parameters(theta))
        out.append([rho.expectation_value(o).real for o in observables])
        if forgetting.reset_due(t, every):
            rho = rho.reset([forgetting.reset_qubit(t, every, spec.n_qubits)])
    return np.array(out)


@pytest.mark.parametrize("n,every,steps", [(3, 1, 7), (3, 2, 9), (4, 3, 10), (2, 1, 5), (4, 0, 4)])
def test_values_match_qiskit_density_matrices(n, every, steps):
    spec = QRNNSpec(n, layers=2)
    engine = default_engine(spec, torch.complex128)
    gen = torch.Generator().manual_seed(n * 10 + every)
    angles = torch.rand(3, steps, spec.n_params, generator=gen, dtype=torch.float64) * 4 - 2
    with torch.no_grad():
        values, state = forgetting.sequence(engine, angles, every)
    for b in range(3):
        np.testing.assert_allclose(
            values[b].numpy(), _reference(spec, angles[b].numpy(), every), atol=1e-10
        )
    # the trace stays 1 and the rank cap holds: at most 2^(n-1) branches per sequence
    r = forgetting.branches(state, 3)
    assert r <= max(1, 1 << (n - 1)) or every == 0
    norms = (state.abs() ** 2).sum(-1).reshape(3, r).sum(-1)
    np.testing.assert_allclose(norms.numpy(), 1.0, atol=1e-12)


def test_gradients_match_finite_differences_through_compression():
    spec = QRNNSpec(3, layers=1)
    engine = default_engine(spec, torch.complex128)
    gen = torch.Generator().manual_seed(7)
    angles = torch.rand(2, 8, spec.n_params, generator=gen, dtype=torch.float64) * 3 - 1.5
    weights = torch.randn(2, 8, spec.n_readouts, generator=gen, dtype=torch.float64)

    def loss(a: torch.Tensor) -> torch.Tensor:
        values, _ = forgetting.sequence(engine, a, every=1)  # 4 resets compress (2^(n-1) = 4)
        return (values * weights).sum()

    a = angles.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(a), a)
    h = 1e-6
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for idx in [tuple(int(i) for i in rng.integers(0, s)) for s in [angles.shape] * 12]:
            plus, minus = angles.clone(), angles.clone()
            plus[idx] += h
            minus[idx] -= h
            fd = float(loss(plus) - loss(minus)) / (2 * h)
            assert abs(fd - float(grad[idx])) < 1e-6 * max(1.0, abs(fd)), idx


def test_gradient_of_the_compression_is_exact_at_low_rank():
    """Right after the first resets ρ is rank-deficient; QR's own backward would be undefined."""
    spec = QRNNSpec(3, layers=1)
    engine = default_engine(spec, torch.complex128)
    angles = torch.zeros(1, 4, spec.n_params, dtype=torch.float64)
    angles[0, :, 0] = 0.3  # a nearly classical state: ρ stays rank-deficient through the resets
    a = angles.clone().requires_grad_(True)
    values, _ = forgetting.sequence(engine, a, every=1)
    (grad,) = torch.autograd.grad(values.sum(), a)
    assert torch.isfinite(grad).all()
    h = 1e-6
    with torch.no_grad():
        for p in range(spec.n_params):
            plus, minus = angles.clone(), angles.clone()
            plus[0, 1, p] += h
            minus[0, 1, p] -= h
            fd = float(
                forgetting.sequence(engine, plus, 1)[0].sum()
                - forgetting.sequence(engine, minus, 1)[0].sum()
            ) / (2 * h)
            assert abs(fd - float(grad[0, 1, p])) < 1e-6


def test_core_with_forgetting_runs_the_density_matrix_model_and_trains():
    torch.manual_seed(0)
    config = QRNNConfig(QRNNSpec(3, layers=1), forget_every=2)
    core = QRNNCore(5, config, dtype=torch.complex128).double()
    assert not core.fusable(6)
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    out, (psi, z) = core(x)
    assert forgetting.branches(psi, 2) == 4
    # the angles the controller wrote, replayed through Qiskit
    with torch.no_grad():
        z_prev = core.initial_state(2)[1].double()
        angles = []
        for t in range(6):
            angles.append(core.angles(x[:, t], z_prev))
            z_prev = out[:, t]
        angles = torch.stack(angles, dim=1)
    for b in range(2):
        np.testing.assert_allclose(
            out[b].detach().numpy(), _reference(config.spec, angles[b].numpy(), 2), atol=1e-10
        )
    # gradients of the controller against finite differences of the whole pass
    params = [p for p in core.parameters() if p.requires_grad]
    loss = out.sum()
    grads = torch.autograd.grad(loss, params)
    h = 1e-6
    for p, g in zip(params[:2], grads[:2], strict=True):
        flat = p.data.view(-1)
        for i in (0, flat.numel() // 2, flat.numel() - 1):
            old = float(flat[i])
            flat[i] = old + h
            with torch.no_grad():
                up = float(core(x)[0].sum())
            flat[i] = old - h
            with torch.no_grad():
                down = float(core(x)[0].sum())
            flat[i] = old
            assert abs((up - down) / (2 * h) - float(g.view(-1)[i])) < 1e-6
    # a carried ensemble continues, and a state of the wrong size is refused
    out2, _ = core(x, (psi.detach(), z.detach()))
    assert out2.shape == out.shape
    with pytest.raises(ValueError, match="does not split"):
        core(x[:1], (psi.detach(), z[:1].detach()))


def test_bad_forget_every_is_refused():
    with pytest.raises(ConfigError, match="forget_every"):
        QRNNConfig(QRNNSpec(3), forget_every=-1)
    with pytest.raises(ValueError, match="qubit"):
        forgetting.reset(torch.ones(1, 8, dtype=torch.complex64), 1, 3, 3)


def test_the_hardware_pipeline_refuses_a_forgetting_run():
    from qrnn_qiskit.errors import QRNNError
    from qrnn_qiskit.evaluation.protocols import ReplayProtocol
    from qrnn_qiskit.models import InputSpec, build_model

    qrnn = QRNNConfig(QRNNSpec(3, layers=1), forget_every=2)
    model = build_model("qrnn", InputSpec(vocab=5, embed_dim=4), 5, "last", qrnn=qrnn)
    with pytest.raises(QRNNError, match="forget-every"):
        ReplayProtocol(model, torch.randint(0, 5, (1, 4)))
