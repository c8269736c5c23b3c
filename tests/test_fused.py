"""The QRNN's fused sequence pass (``FusedSequence``) against the step-by-step pass.

Values and gradients of every parameter (embedding, controller, head) and of a carried state
(ψ_0, z_0) agree at tight tolerance over random configurations, on both kernels; where the fused
pass does not apply (active dropout, an engine that is not the plain statevector engine) the model
runs step by step on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qrnn_qiskit.backends import StatevectorEngine, native
from qrnn_qiskit.circuits import ALL_ENTANGLERS, QRNNSpec, readout_observables, step_circuit
from qrnn_qiskit.models import (
    ACTIVATIONS,
    ControllerConfig,
    InputSpec,
    QRNNConfig,
    build_model,
)
from qrnn_qiskit.models.noise import NoisyReadoutEngine

FEATURES, EMBED, OUTPUTS = 3, 5, 2


def _kernels() -> list[str]:
    return ["torch", "native"] if native.load() is not None else ["torch"]


def _config(rng: np.random.Generator, n: int, activation: str) -> QRNNConfig:
    spec = QRNNSpec(
        n,
        int(rng.integers(1, 3)),
        ALL_ENTANGLERS[int(rng.integers(len(ALL_ENTANGLERS)))],
        ("xyz", "z", "zz")[int(rng.integers(3))] if n > 1 else "xyz",
    )
    controller = ControllerConfig(
        width=int(rng.integers(2, 7)),
        depth=int(rng.integers(0, 3)),
        activation=activation,
        angle_map=("identity", "tanh")[int(rng.integers(2))],
        init_scale=float(rng.uniform(0.5, 2.0)),
    )
    return QRNNConfig(spec, controller, feedback=bool(rng.random() < 0.75))


def _model(config: QRNNConfig, kernel: str, dtype: torch.dtype, engine=None):
    spec = config.spec
    if engine is None:
        engine = StatevectorEngine(
            step_circuit(spec), readout_observables(spec), dtype=dtype, kernel=kernel
        )
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    inputs = InputSpec(features=FEATURES, embed_dim=EMBED)
    model = build_model("qrnn", inputs, OUTPUTS, "all", qrnn=config, dtype=dtype, engine=engine)
    return model.to(real), real


def _random_state(engine, batch: int, generator: torch.Generator) -> torch.Tensor:
    shape = (batch, engine.dim)
    re = torch.randn(shape, generator=generator, dtype=torch.float64)
    im = torch.randn(shape, generator=generator, dtype=torch.float64)
    psi = torch.complex(re, im)
    return (psi / psi.abs().pow(2).sum(-1, keepdim=True).sqrt()).to(engine.dtype)


def _ran_fused(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` comes out of a FusedSequence node (a few autograd nodes up)."""
    nodes = [tensor.grad_fn]
    for _ in range(4):
        if any(type(node).__name__ == "FusedSequenceBackward" for node in nodes):
            return True
        nodes = [f for node in nodes if node is not None for f, _ in node.next_functions]
    return False


def _run(model, x, state, weights, fused: bool):
    """Outputs, the carried state's final parts and every gradient of one pass."""
    model.zero_grad(set_to_none=True)
    model.core.fused = fused
    leaves = None
    if state is not None:
        leaves = tuple(s.detach().clone().requires_grad_(True) for s in state)
        state = leaves
    hidden, (psi, z) = model.core(model.embed(x), state)
    ran_fused = _ran_fused(hidden)
    out = model.head(hidden)
    loss = (out * weights["out"]).sum() + (z * weights["z"]).sum()
    loss = loss + (psi.conj() * weights["psi"]).real.sum()
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    if leaves is not None:
        for key, leaf in zip(("psi0", "z0"), leaves, strict=True):  # None: unused (no feedback)
            grads[key] = torch.zeros_like(leaf) if leaf.grad is None else leaf.grad.clone()
    return ran_fused, {"out": out.detach(), "psi": psi.detach(), "z": z.detach()}, grads


def _close(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = max(float(b.abs().max()), 1e-2)
    return float((a - b).abs().max()) / scale


CASES = [(seed, kernel) for seed in range(24) for kernel in _kernels()]


@pytest.mark.parametrize("seed,kernel", CASES)
def test_fused_pass_equals_step_by_step(seed, kernel):
    rng = np.random.default_rng(seed)
    dtype = (torch.complex128, torch.complex64)[seed % 2]
    low = native.MIN_QUBITS if kernel == "native" else 1
    n = int(rng.choice([q for q in (1, 2, 3, 4, 5, 7) if q >= low]))
    activation = ACTIVATIONS[seed % len(ACTIVATIONS)]
    config = _config(rng, n, activation)
    torch.manual_seed(seed)
    model, real = _model(config, kernel, dtype)
    batch, steps = int(rng.integers(1, 10)), int(rng.integers(1, 7))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, FEATURES, generator=generator, dtype=real)
    carried = seed % 3 != 0  # a language-model window passes the previous window's state in
    state = None
    if carried:
        engine = model.core.engine
        state = (
            _random_state(engine, batch, generator),
            torch.randn(batch, engine.n_readouts, generator=generator, dtype=real),
        )
    weights = {
        "out": torch.randn(batch, steps, OUTPUTS, generator=generator, dtype=real),
        "z": torch.randn(batch, model.core.n_readouts, generator=generator, dtype=real),
        "psi": _random_state(model.core.engine, batch, generator),
    }
    ran_fused, fused, fused_grads = _run(model, x, state, weights, fused=True)
    ran_step, step, step_grads = _run(model, x, state, weights, fused=False)
    assert ran_fused and not ran_step
    rtol = 1e-10 if dtype == torch.complex128 else 2e-5
    for key in step:
        assert _close(fused[key], step[key]) <= rtol, key
    assert fused_grads.keys() == step_grads.keys()
    for key in step_grads:
        assert _close(fused_grads[key], step_grads[key]) <= rtol, key


@pytest.mark.parametrize("kernel", _kernels())
def test_fused_pass_past_a_tape_checkpoint(kernel):
    """T = 70 > the tape's checkpoint interval: values and gradients still agree."""
    config = QRNNConfig(QRNNSpec(3, 1, "cz_ring"), ControllerConfig(width=4, depth=1))
    torch.manual_seed(0)
    model, real = _model(config, kernel, torch.complex128)
    x = torch.randn(2, 70, FEATURES, dtype=real)
    weights = {
        "out": torch.randn(2, 70, OUTPUTS, dtype=real),
        "z": torch.zeros(2, model.core.n_readouts, dtype=real),
        "psi": torch.zeros(2, model.core.engine.dim, dtype=torch.complex128),
    }
    _, fused, fused_grads = _run(model, x, None, weights, fused=True)
    _, step, step_grads = _run(model, x, None, weights, fused=False)
    for key in step:
        assert _close(fused[key], step[key]) <= 1e-10
    for key in step_grads:
        assert _close(fused_grads[key], step_grads[key]) <= 1e-10, key


def test_fused_pass_without_autograd_gives_the_same_values():
    config = QRNNConfig(QRNNSpec(4, 2, "rzz_chain"), ControllerConfig(width=6, activation="glu"))
    torch.manual_seed(1)
    model, real = _model(config, _kernels()[-1], torch.complex128)
    x = torch.randn(3, 5, FEATURES, dtype=real)
    with torch.no_grad():
        model.core.fused = True
        fused = model(x)
        model.core.fused = False
        step = model(x)
    assert (fused - step).abs().max() < 1e-12


def test_active_dropout_runs_step_by_step_and_eval_mode_is_fused():
    config = QRNNConfig(QRNNSpec(3, 1, "cx_ring"), ControllerConfig(width=4, dropout=0.5))
    model, real = _model(config, _kernels()[-1], torch.complex128)
    x = torch.randn(2, 3, FEATURES, dtype=real)
    model.train()
    hidden, _ = model.core(model.embed(x))
    assert not _ran_fused(hidden)
    model.eval()
    hidden, _ = model.core(model.embed(x))
    assert _ran_fused(hidden)


def test_a_wrapped_engine_runs_step_by_step():
    """NoisyReadoutEngine changes the readouts of step_readouts: the fused pass must not bypass
    it (its shrink shows in the outputs)."""
    spec = QRNNSpec(3, 1, "cz_ring", "z")
    config = QRNNConfig(spec, ControllerConfig(width=4))
    inner = StatevectorEngine(step_circuit(spec), readout_observables(spec), dtype=torch.complex128)
    shrink = np.full((4, spec.n_readouts), 0.5)
    torch.manual_seed(2)
    model, real = _model(config, "torch", torch.complex128, NoisyReadoutEngine(inner, shrink))
    x = torch.randn(2, 4, FEATURES, dtype=real)
    hidden, _ = model.core(model.embed(x))
    assert not _ran_fused(hidden)
    model.core.engine.enabled = False
    clean, _ = model.core(model.embed(x))
    assert (hidden - clean).abs().max() > 1e-3
