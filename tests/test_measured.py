"""The measured QRNN (issue 22): its exact mixed-state simulation against a density-matrix walk of
the built dynamic circuit (Qiskit only), gradients against finite differences, shot averages on
ideal Aer, the noise hook, bad input, and ``qrnn train --model mqrnn``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from qiskit.circuit import ClassicalRegister, Clbit, IfElseOp
from qiskit.quantum_info import DensityMatrix, Kraus, Operator, partial_trace

from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.circuits.measured import (
    MeasurementSpec,
    bit_expectations,
    measured_circuit,
    validate_measured,
    weak_kraus,
)
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.models.controller import ControllerConfig
from qrnn_qiskit.models.measured import (
    MeasuredConfig,
    MeasuredCore,
    MeasuredSimulator,
    StepNoise,
    amplitude_damping,
    depolarizing,
    weak_kraus_torch,
)

C128 = torch.complex128


# --------------------------------------------------------------------------- the reference walk
def _condition_bits(circuit, op) -> list[int]:
    target, _ = op.condition
    bits = list(target) if isinstance(target, ClassicalRegister) else [target]
    return [circuit.find_bit(b).index for b in bits]


def _holds(circuit, op, values: dict[int, int]) -> bool:
    target, value = op.condition
    if isinstance(target, Clbit):
        return values[circuit.find_bit(target).index] == int(value)
    number = sum(values[circuit.find_bit(b).index] << j for j, b in enumerate(target))
    return number == int(value)


def reference_walk(circuit) -> tuple[dict[int, float], DensityMatrix]:
    """Walk the dynamic circuit's instructions with ``qiskit.quantum_info.DensityMatrix``: every
    measurement splits every branch by outcome, every if_else picks its body by the branch's bits.
    Branches that agree on every bit a later condition reads are merged (the rest of their history
    no longer matters). Returns ({clbit: E[(−1)^bit]}, the final state summed over branches)."""
    nq = circuit.num_qubits
    data = circuit.data
    later: list[set[int]] = [set() for _ in data]
    needed: set[int] = set()
    for i in range(len(data) - 1, -1, -1):
        later[i] = set(needed)
        if isinstance(data[i].operation, IfElseOp):
            needed |= set(_condition_bits(circuit, data[i].operation))
    branches: dict[tuple, tuple[DensityMatrix, dict[int, int]]] = {
        (): (DensityMatrix.from_label("0" * nq), {})
    }
    stats: dict[int, float] = {}
    reset = Kraus([np.array([[1, 0], [0, 0]]), np.array([[0, 1], [0, 0]])])
    projectors = [Operator(np.diag([1.0, 0.0])), Operator(np.diag([0.0, 1.0]))]
    for i, ins in enumerate(data):
        op = ins.operation
        qargs = [circuit.find_bit(q).index for q in ins.qubits]
        updated: list[tuple[DensityMatrix, dict[int, int]]] = []
        if op.name == "measure":
            c = circuit.find_bit(ins.clbits[0]).index
            stats[c] = 0.0
            for rho, values in branches.values():
                for b in (0, 1):
                    part = rho.evolve(projectors[b], qargs)
                    stats[c] += (1 - 2 * b) * float(np.real(np.trace(part.data)))
                    updated.append((part, {**values, c: b}))
        elif op.name == "reset":
            updated = [(rho.evolve(reset, qargs), v) for rho, v in branches.values()]
        elif isinstance(op, IfElseOp):
            for rho, values in branches.values():
                body = op.blocks[0] if _holds(circuit, op, values) else None
                if body is None and len(op.blocks) > 1:
                    body = op.blocks[1]
                if body is not None:
                    for inner in body.data:
                        inner_q = [qargs[body.find_bit(q).index] for q in inner.qubits]
                        rho = rho.evolve(Operator(inner.operation), inner_q)
                updated.append((rho, values))
        elif op.name == "barrier":
            continue
        else:
            gate = Operator(op)
            updated = [(rho.evolve(gate, qargs), v) for rho, v in branches.values()]
        branches = {}
        for rho, values in updated:
            kept = {c: b for c, b in values.items() if c in later[i]}
            key = tuple(sorted(kept.items()))
            if key in branches:
                branches[key] = (branches[key][0] + rho, kept)
            else:
                branches[key] = (rho, kept)
    total = sum((rho for rho, _ in branches.values()), start=0 * DensityMatrix.from_label("0" * nq))
    return stats, total


# ------------------------------------------------------------------------------------- helpers
def _model(n, layers=1, entangler="cz_chain", seed=0, final_z=False, noise=None, **measured):
    torch.manual_seed(seed)
    spec = QRNNSpec(n, layers=layers, entangler=entangler)
    config = MeasuredConfig(final_z=final_z, **measured)
    controller = ControllerConfig(width=8, depth=1, activation="tanh", init_scale=1.0)
    core = MeasuredCore(3, spec, controller, config, dtype=C128, noise=noise).double()
    with torch.no_grad():  # random couplings and visible corrections
        if core.coupling is not None:
            core.coupling.uniform_(-1.5, 1.5)
        core.controller.out.weight.mul_(3.0)
    return core


def _check_against_reference(core, steps=3, seed=1):
    torch.manual_seed(seed)
    x = torch.randn(1, steps, 3, dtype=torch.float64)
    with torch.no_grad():
        features, blocks = core(x)
    circuit = core.circuit(x[0])
    validate_measured(circuit, registers=core.measurement.feedforward == "table")
    stats, total = reference_walk(circuit)
    m, n = core.measurement.m, core.spec.n_qubits
    expected = np.array([[stats[t * m + r] for r in range(m)] for t in range(steps)])
    np.testing.assert_allclose(features[0, :, :m].numpy(), expected, atol=1e-10, rtol=0)
    ancillas = list(range(n, circuit.num_qubits))
    data = partial_trace(total, ancillas).data if ancillas else total.data
    np.testing.assert_allclose(blocks[0].sum(0).numpy(), data, atol=1e-10, rtol=0)
    if core.config.final_z:
        diag = np.real(np.diag(data))
        index = np.arange(1 << n)
        z = [float(((1 - 2 * ((index >> q) & 1)) * diag).sum()) for q in range(n)]
        np.testing.assert_allclose(features[0, -1, m:].numpy(), z, atol=1e-10, rtol=0)


# ------------------------------------------------------------------------------- Kraus operators
@pytest.mark.parametrize("alpha", [0.1, 0.7, 1.2, math.pi / 2])
def test_weak_kraus_matches_the_qiskit_coupling_block(alpha):
    ours = weak_kraus_torch(torch.tensor([alpha], dtype=torch.float64), C128)[0].numpy()
    np.testing.assert_allclose(ours, weak_kraus(alpha), atol=1e-14)
    # P(s = 0 | Z = λ) = (1 + λ sin α)/2; complete
    p0 = np.abs(np.diag(ours[0])) ** 2
    np.testing.assert_allclose(p0, (1 + np.array([1, -1]) * math.sin(alpha)) / 2, atol=1e-14)
    np.testing.assert_allclose(sum(k.conj().T @ k for k in ours), np.eye(2), atol=1e-14)


# --------------------------------------------------------------------- exact vs the reference
@pytest.mark.parametrize(
    "n, options",
    [
        (2, dict(feedforward="linear")),
        (2, dict(feedforward="none", final_z=True)),
        (3, dict(feedforward="linear", measurement="projective", qubits="0,2")),
        (3, dict(feedforward="table", qubits="2,0", feedforward_bits=1)),
        (3, dict(feedforward="linear", coupling=math.pi / 2, train_coupling=False)),
        (4, dict(feedforward="table", qubits="1,3")),
        (4, dict(feedforward="linear", qubits="0,1,2", feedforward_bits=2, final_z=True)),
        (4, dict(feedforward="linear")),
        (5, dict(feedforward="linear", qubits="4,0,2")),
        (5, dict(feedforward="table", measurement="projective", qubits="1,3")),
    ],
)
def test_exact_simulation_equals_the_circuit_walk(n, options):
    final_z = options.pop("final_z", False)
    core = _model(n, layers=2 if n < 4 else 1, seed=n, final_z=final_z, **options)
    _check_against_reference(core, steps=3)


def test_exact_simulation_rzz_entangler_all_measured():
    core = _model(3, layers=1, entangler="rzz_chain", seed=5, feedforward="linear")
    _check_against_reference(core, steps=2)


# --------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize(
    "options",
    [dict(feedforward="linear", final_z=True), dict(feedforward="table", measurement="projective")],
)
def test_gradients_match_finite_differences(options):
    core = _model(2, layers=1, seed=3, **options)
    torch.manual_seed(4)
    x = torch.randn(2, 3, 3, dtype=torch.float64)
    weights = torch.randn(2, 3, core.output_size, dtype=torch.float64)

    def loss():
        return (core(x)[0] * weights).sum()

    params = [core.controller.out.bias, core.controller.hidden[0].bias]
    params += [core.coupling] if core.coupling is not None else []
    value = loss()
    grads = torch.autograd.grad(value, params)
    eps = 1e-6
    for param, grad in zip(params, grads, strict=True):
        for j in range(param.numel()):
            with torch.no_grad():
                flat = param.view(-1)
                flat[j] += eps
                up = loss().item()
                flat[j] -= 2 * eps
                down = loss().item()
                flat[j] += eps
            assert abs((up - down) / (2 * eps) - grad.view(-1)[j].item()) < 1e-7


# ------------------------------------------------------------------------------- the noise hook
def test_noise_hook_depolarizing_damping_and_confusion():
    n = 2
    spec = QRNNSpec(n, layers=1, entangler="cz_chain")
    measurement = MeasurementSpec(n, (0, 1), "weak", "none")
    torch.manual_seed(0)
    sets = torch.randn(1, 2, 1, spec.n_params, dtype=torch.float64)
    alpha = torch.tensor([0.9, 0.4], dtype=torch.float64)
    clean = MeasuredSimulator(spec, measurement, C128)
    f0, r0 = clean.run(sets, alpha)
    # full depolarizing after U: σ = I/4, so ⟨Z⟩ = 0 and every bit is a fair coin
    flat = StepNoise(after_unitary=[depolarizing(1.0, 0), depolarizing(1.0, 1)])
    f1, _ = MeasuredSimulator(spec, measurement, C128, flat).run(sets, alpha)
    np.testing.assert_allclose(f1.numpy(), 0.0, atol=1e-12)
    # full amplitude damping after U: σ = |00⟩, E[(−1)^s] = sin α
    damp = StepNoise(after_unitary=[amplitude_damping(1.0, 0), amplitude_damping(1.0, 1)])
    f2, _ = MeasuredSimulator(spec, measurement, C128, damp).run(sets, alpha)
    np.testing.assert_allclose(f2.numpy(), np.sin(alpha.numpy()) + 0 * f2.numpy(), atol=1e-12)
    # a confusion matrix flipping bit 0 with probability 0.1: E → 0.8·E on that bit only
    confusion = np.array([[[0.9, 0.1], [0.1, 0.9]], [[1.0, 0.0], [0.0, 1.0]]])
    f3, r3 = MeasuredSimulator(spec, measurement, C128, StepNoise(confusion=confusion)).run(
        sets, alpha
    )
    np.testing.assert_allclose(f3[..., 0].numpy(), 0.8 * f0[..., 0].numpy(), atol=1e-12)
    np.testing.assert_allclose(f3[..., 1].numpy(), f0[..., 1].numpy(), atol=1e-12)
    np.testing.assert_allclose(r3.sum(1).numpy(), r0.sum(1).numpy(), atol=1e-12)
    # a channel in the measurement window keeps the trace
    idle = StepNoise(after_measure=[amplitude_damping(0.3, 1)])
    _, r4 = MeasuredSimulator(spec, measurement, C128, idle).run(sets, alpha)
    trace = torch.diagonal(r4.sum(1), dim1=-2, dim2=-1).sum(-1).real
    np.testing.assert_allclose(trace.numpy(), 1.0, atol=1e-12)


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.6, float("nan")])
def test_bad_coupling_is_a_one_line_error(alpha):
    with pytest.raises(QRNNError) as info:
        MeasuredConfig(coupling=alpha, train_coupling=False)
    assert "\n" not in str(info.value) and "coupling" in str(info.value)


def test_the_circuit_builder_refuses_bad_couplings_and_qubits():
    spec = QRNNSpec(2, layers=1)
    weak = MeasurementSpec(2, (0, 1), "weak", "linear")
    angles = np.zeros((2, weak.angle_sets, spec.n_params))
    for alphas in ([0.0, 0.5], [0.5, 2.0]):
        with pytest.raises(QRNNError, match="coupling angle") as info:
            measured_circuit(spec, weak, angles, alphas)
        assert "\n" not in str(info.value)
    with pytest.raises(QRNNError, match="must lie in the register"):
        MeasurementSpec(2, (0, 2))


@pytest.mark.parametrize("qubits", ["0,4", "-1", "1,1", "x"])
def test_measured_qubits_outside_the_register_are_refused(qubits):
    with pytest.raises(QRNNError) as info:
        MeasuredConfig(qubits=qubits).measurement_spec(4)
    assert "\n" not in str(info.value)


def test_circuit_validator_refuses_what_ibm_cannot_run():
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.measure(1, 1)
    with pytest.raises(QRNNError, match="inside a branch"):
        validate_measured(qc)
    core = _model(2, feedforward="table")
    circuit = core.circuit(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(QRNNError, match="single bits"):
        validate_measured(circuit)
    validate_measured(circuit, registers=True)


# -------------------------------------------------------------------------------- ideal Aer
@pytest.mark.parametrize(
    "options",
    [dict(feedforward="linear"), dict(feedforward="table", measurement="projective", qubits="1")],
)
def test_ideal_aer_shot_averages_within_5_sigma(options):
    from qiskit_aer import AerSimulator

    core = _model(2, layers=1, seed=7, **options)
    torch.manual_seed(8)
    x = torch.randn(1, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        exact = core(x)[0][0].numpy()
    circuit = core.circuit(x[0])
    shots = 20000
    counts = AerSimulator(seed_simulator=11).run(circuit, shots=shots).result().get_counts()
    estimate = bit_expectations(counts, 3, core.measurement.m)
    sigma = np.sqrt(np.maximum(1 - exact**2, 1.0 / shots) / shots)
    assert (np.abs(estimate - exact) <= 5 * sigma).all(), (estimate, exact, sigma)


def test_mask_path_equals_the_general_kraus_path():
    core = _model(3, layers=1, seed=9, feedforward="linear", qubits="0,2", final_z=True)
    confusion = np.array([[[0.95, 0.2], [0.05, 0.8]], [[0.9, 0.0], [0.1, 1.0]]])
    noise = StepNoise(after_measure=[amplitude_damping(0.2, 1)], confusion=confusion)
    sim = MeasuredSimulator(core.spec, core.measurement, C128, noise, final_z=True)
    torch.manual_seed(2)
    sets = core.angle_sets(torch.randn(2, 3, 3, dtype=torch.float64)).detach()
    fast = sim.run(sets, core.alphas().detach())
    general = sim.run(sets, core.alphas().detach(), masks=False)
    for a, b in zip(fast, general, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)


# ------------------------------------------------------------------------------ the trainer
def test_qrnn_train_model_mqrnn_runs_and_resumes(tmp_path, capsys):
    import json

    from qrnn_qiskit.cli import main
    from qrnn_qiskit.training import read_metrics

    run = tmp_path / "r"
    argv = ["train", "--task", "copying", "--delay", "2", "--model", "mqrnn", "--qubits", "2",
            "--layers", "1", "--width", "8", "--batch-size", "4", "--eval-size", "8",
            "--eval-every", "3", "--no-progress", "--run-dir", str(run)]  # fmt: skip
    assert main([*argv, "--steps", "3"]) == 0
    assert main([*argv, "--steps", "5", "--resume"]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["model"]["kind"] == "mqrnn" and config["measured"]["feedforward"] == "linear"
    steps = [record["step"] for record in read_metrics(run) if "accuracy" in record]
    assert steps == [3, 5]
    # the report (qrnn report, qrnn bench's table) names its circuit, not a hidden size
    from qrnn_qiskit.evaluation.report import summarize

    assert summarize(run, with_test=False).size == "n=2, L=1, weak, feedforward linear"
    # what it cannot do yet, refused in one line
    capsys.readouterr()
    for extra in (["--backend", "aer"], ["--coupling", "2"], ["--measure-qubits", "0,5"]):
        assert main([*argv, "--steps", "1", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err and "\n" not in err, err
    assert main(["train", "--task", "mt-de-en", "--model", "mqrnn", "--qubits", "2"]) == 2
    assert "mqrnn" in capsys.readouterr().err
    # an autograd pass that cannot fit in memory is refused before anything is allocated
    big = ["--qubits", "6", "--delay", "100000", "--steps", "1", "--run-dir", str(tmp_path / "b")]
    assert main(["train", "--model", "mqrnn", *big]) == 2
    assert "density matrices" in capsys.readouterr().err


def test_mqrnn_sequence_model_classifies_from_the_last_step():
    from qrnn_qiskit.models import InputSpec, QRNNConfig, build_model

    qrnn = QRNNConfig(QRNNSpec(3, layers=1, entangler="cz_chain"), ControllerConfig(width=4))
    measured = MeasuredConfig(feedforward="table", qubits="0,1", final_z=True)
    model = build_model("mqrnn", InputSpec(features=2, embed_dim=4), 5, "last", qrnn=qrnn,
                        measured=measured)  # fmt: skip
    assert model.hidden_size == 2 + 3
    out = model(torch.randn(3, 4, 2), lengths=torch.tensor([4, 2, 1]))
    assert out.shape == (3, 5)
    out.sum().backward()
    assert (
        model.core.coupling.grad is not None
        and model.core.controller.out.weight.grad.abs().sum() > 0
    )


def test_the_circuit_transpiles_to_an_if_else_only_heron_target():
    from qiskit import transpile
    from qiskit_ibm_runtime.fake_provider import FakeKingston
    from qiskit_ibm_runtime.utils.utils import is_isa_circuit

    core = _model(2, layers=1, seed=1, feedforward="linear")
    circuit = core.circuit(torch.randn(3, 3, dtype=torch.float64))
    backend = FakeKingston()  # lists if_else only, no switch or loops
    isa = transpile(circuit, backend, optimization_level=1, seed_transpiler=0)
    assert is_isa_circuit(isa, backend.target) == ""
    validate_measured(isa)  # still single-bit if/else, nothing measured inside a branch


def test_template_binds_to_the_bound_circuit_and_folds_rzz_inside_branches():
    from qrnn_qiskit.backends.fractional import RZZ_MAX, fold_template, template_values
    from qrnn_qiskit.circuits.measured import measured_template, template_row

    spec = QRNNSpec(3, layers=1, entangler="rzz_chain")
    measurement = MeasurementSpec(3, (0, 1), "weak", "linear")
    angles = np.random.default_rng(0).uniform(-4, 4, (3, measurement.angle_sets, spec.n_params))
    template = measured_template(spec, measurement, 3, [0.7, 0.9])
    row = template_row(angles)[None]
    bound = template.assign_parameters(template_values(template, row)[0])
    assert bound == measured_circuit(spec, measurement, angles, [0.7, 0.9])
    folded = fold_template(template)
    values = template_values(folded, row)[0]
    inner = [
        ins.operation.params[0]
        for top in folded.data
        if isinstance(top.operation, IfElseOp)
        for ins in top.operation.blocks[0].data
        if ins.operation.name == "rzz"
    ]
    assert inner and all(str(a).startswith("rzz_phi") for a in inner)  # branches folded too
    concrete = folded.assign_parameters(values)
    for top in concrete.data:
        blocks = top.operation.blocks if isinstance(top.operation, IfElseOp) else []
        for ins in [top] + [i for b in blocks for i in b.data]:
            if ins.operation.name == "rzz":
                assert 0.0 <= float(ins.operation.params[0]) <= RZZ_MAX + 1e-12
