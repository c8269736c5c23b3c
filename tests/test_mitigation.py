"""Hardware-native circuits, ESP, pinned layouts, in-loop mitigation, noise-aware training, the
dynamic protocol's fixes and RZZ folding (all offline, fake backends and Aer)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Measure as MeasureGate
from qiskit.circuit import Parameter
from qiskit.circuit.library import CZGate, RXGate, RZGate, RZZGate, SXGate, XGate
from qiskit.quantum_info import Operator, Statevector
from qiskit.transpiler import InstructionProperties, Target, generate_preset_pass_manager
from tiny_runs import quiet, train_tiny_qrnn

from qrnn_qiskit.backends import StatevectorEngine
from qrnn_qiskit.backends.fractional import (
    check_rzz_pubs,
    fold_rzz_angles,
    fold_template,
    prepare_pubs,
    template_values,
)
from qrnn_qiskit.backends.layout import circuit_esp, readout_contraction
from qrnn_qiskit.backends.noisy import (
    AerExecutor,
    fake_backend,
    parse_target,
    restrict_target,
    scheduled_duration,
)
from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit
from qrnn_qiskit.circuits.dynamic import (
    DEFAULT_WEAK_COUPLING,
    coupling_gain,
    dynamic_circuit,
    validate_coupling,
)
from qrnn_qiskit.circuits.replay import measured_prefix as prefix_circuit
from qrnn_qiskit.cli import main
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.evaluation.config import EvalConfig
from qrnn_qiskit.evaluation.mitigation import (
    MitigatedReplay,
    parse_mitigation,
    snap_clifford,
)
from qrnn_qiskit.evaluation.protocols import DynamicProtocol
from qrnn_qiskit.evaluation.runner import load_samples, run_evaluation
from qrnn_qiskit.models.noise import NoisyReadoutEngine, calibrate_shrink, parse_train_noise
from qrnn_qiskit.models.qrnn import QRNNConfig, QRNNCore
from qrnn_qiskit.training import RunDir, Trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A briefly trained 3-qubit cz_chain QRNN on copying memory with delay 1 (21 steps)."""
    return train_tiny_qrnn(tmp_path_factory.mktemp("mit") / "run", entangler="cz_chain")


# ---------------------------------------------------------------------------------- circuits
def test_cz_chain_is_a_line_of_cz_and_runs_on_the_engine():
    spec = QRNNSpec(4, 2, "cz_chain", "xyz")
    assert spec.edges() == [(0, 1), (1, 2), (2, 3)] and spec.n_params == 16
    qc = step_circuit(spec)
    assert qc.count_ops() == {"ry": 8, "rz": 8, "cz": 6}
    engine = StatevectorEngine(qc, readout_observables(spec), dtype=torch.complex128)
    angles = torch.randn(2, spec.n_params, dtype=torch.float64)
    state = engine.step(engine.initial_state(2), angles)
    for b in range(2):
        expected = Statevector(qc.assign_parameters(angles[b].numpy())).data
        assert np.allclose(state[b].numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("entangler, edges", [("rzz_chain", 3), ("rzz_ring", 4)])
def test_rzz_entanglers_have_one_angle_per_edge_and_are_identity_at_zero(entangler, edges):
    spec = QRNNSpec(4, 2, entangler)
    assert len(spec.edges()) == edges and spec.n_params == 2 * (8 + edges)
    qc = step_circuit(spec)
    assert qc.num_parameters == spec.n_params and qc.count_ops()["rzz"] == 2 * edges
    assert len(spec.rzz_angle_indices()) == 2 * edges
    zero = qc.assign_parameters(np.zeros(spec.n_params))
    assert Operator(zero).equiv(Operator(QuantumCircuit(4)))
    # the RZZ angle of edge j in layer l sits at rzz_angle_indices()[l·edges + j]
    angles = np.zeros(spec.n_params)
    angles[spec.rzz_angle_indices()[0]] = 0.7
    reference = QuantumCircuit(4)
    reference.rzz(0.7, 0, 1)
    assert Operator(qc.assign_parameters(angles)).equiv(Operator(reference))


@pytest.mark.parametrize("entangler", ["rzz_chain", "rzz_ring"])
def test_engine_runs_rzz_entanglers_like_statevector(entangler):
    spec = QRNNSpec(3, 2, entangler)
    circuit = step_circuit(spec)
    engine = StatevectorEngine(circuit, readout_observables(spec), dtype=torch.complex128)
    angles = torch.randn(2, spec.n_params, dtype=torch.float64)
    state = engine.step(engine.initial_state(2), angles)
    for b in range(2):
        reference = Statevector(circuit.assign_parameters(angles[b].numpy())).data
        assert np.abs(state[b].numpy() - reference).max() < 1e-12


# ---------------------------------------------------------------------------------- RZZ folding
def test_folded_rzz_angles_are_in_range_and_equal_up_to_phase():
    rng = np.random.default_rng(0)
    thetas = np.concatenate([rng.uniform(-10, 10, 40), [0, math.pi / 2, math.pi, -math.pi / 2]])
    phi, a, b = fold_rzz_angles(thetas)
    assert np.all((phi >= 0) & (phi <= math.pi / 2 + 1e-12))
    for theta, p, aa, bb in zip(thetas, phi, a, b):
        reference = QuantumCircuit(2)
        reference.rzz(theta, 0, 1)
        folded = QuantumCircuit(2)
        folded.rx(math.pi * aa, 0)
        folded.rzz(p, 0, 1)
        folded.rx(math.pi * aa, 0)
        folded.rz(math.pi * bb, 0)
        folded.rz(math.pi * bb, 1)
        assert Operator(folded).equiv(Operator(reference)), theta


def fractional_target(n: int = 4) -> Target:
    """A Heron-like line with fractional RZZ(θ) (what use_fractional_gates=True gives)."""
    target = Target(num_qubits=n)
    one = {(q,): InstructionProperties(error=2e-4, duration=3e-8) for q in range(n)}
    pairs = [(q, q + 1) for q in range(n - 1)] + [(q + 1, q) for q in range(n - 1)]
    two = {p: InstructionProperties(error=3e-3, duration=7e-8) for p in pairs}
    target.add_instruction(SXGate(), dict(one))
    target.add_instruction(XGate(), dict(one))
    target.add_instruction(
        RZGate(Parameter("λ")), {(q,): InstructionProperties(0, 0) for q in range(n)}
    )
    target.add_instruction(RXGate(Parameter("θ")), dict(one))
    target.add_instruction(CZGate(), dict(two))
    target.add_instruction(RZZGate(Parameter("φ")), dict(two))
    target.add_instruction(
        MeasureGate(), {(q,): InstructionProperties(error=1e-2, duration=1e-6) for q in range(n)}
    )
    return target


def test_rzz_template_folds_transpiles_to_native_rzz_and_binds_in_range():
    spec = QRNNSpec(4, 2, "rzz_chain", "z")
    template = prefix_circuit(spec, 3, "ZZZZ")
    folded = fold_template(template)
    target = fractional_target()
    isa = generate_preset_pass_manager(3, target=target, seed_transpiler=0).run(folded)
    assert isa.count_ops()["rzz"] == 3 * 2 * 3 and "cz" not in isa.count_ops()
    rng = np.random.default_rng(1)
    rows = rng.uniform(-6, 6, size=(3, template.num_parameters))
    values = template_values(isa, rows)
    assert values.shape == (3, isa.num_parameters)
    check_rzz_pubs([(isa, values)])  # every bound RZZ angle in [0, π/2]
    [(circuit, bound_rows)] = prepare_pubs([(isa, rows)], target)
    assert circuit is isa and np.allclose(bound_rows, values)
    for row in rows:
        a = Statevector(template.remove_final_measurements(False).assign_parameters(row))
        b = Statevector(
            folded.remove_final_measurements(False).assign_parameters(
                template_values(folded, row[None])[0]
            )
        )
        assert abs(abs(np.vdot(a.data, b.data)) - 1) < 1e-9


def test_rzz_angles_out_of_range_are_one_line_errors():
    qc = QuantumCircuit(2, name="raw")
    theta = Parameter("t")
    qc.rzz(theta, 0, 1)
    qc.measure_all()
    with pytest.raises(QRNNError, match=r"raw: .*\[0, π/2\]") as info:
        check_rzz_pubs([(qc, np.array([[2.5]]))])
    assert "\n" not in str(info.value)
    check_rzz_pubs([(qc, np.array([[0.5]]))])


def test_dynamic_circuit_with_rzz_corrections_builds():
    spec = QRNNSpec(3, 1, "rzz_ring")
    angles = np.random.default_rng(2).normal(size=(3, spec.n_params))
    from qrnn_qiskit.circuits.dynamic import Correction

    circuit = dynamic_circuit(spec, angles, "ZZZ", corrections=[Correction(1, 6, 0, 0.1, -0.1)])
    ops = circuit.count_ops()
    assert ops["rzz"] == 3 * 3 and ops["if_else"] == 1 and circuit.num_qubits == 3


# ---------------------------------------------------------------------------------- ESP, layout
def test_esp_is_the_product_of_calibrated_successes():
    backend = fake_backend("fake_kingston")
    qc = QuantumCircuit(2, 2)
    qc.sx(0)
    qc.cz(0, 1)
    qc.measure([0, 1], [0, 1])
    t = backend.target
    esp = circuit_esp(qc, t)
    gates = (1 - t["sx"][(0,)].error) * (1 - t["cz"][(0, 1)].error)
    meas = (1 - t["measure"][(0,)].error) * (1 - t["measure"][(1,)].error)
    assert esp.gates == pytest.approx(gates) and esp.total == pytest.approx(gates * meas)
    assert readout_contraction(t, 0) == pytest.approx(1 - 2 * t["measure"][(0,)].error)


def test_uncalibrated_target_is_a_one_line_error():
    target = Target(num_qubits=2)
    target.add_instruction(CZGate(), {(0, 1): InstructionProperties(error=None)})
    qc = QuantumCircuit(2)
    qc.cz(0, 1)
    with pytest.raises(QRNNError, match="no calibrated error for cz") as info:
        circuit_esp(qc, target, device="fake_nocal")
    assert "\n" not in str(info.value)


def test_layout_is_chosen_once_and_pinned_for_every_prefix():
    spec = QRNNSpec(4, 2, "cz_chain")
    qubits = []
    for steps in (3, 6):
        executor = AerExecutor(parse_target("aer-noisy:fake_fez"))
        templates = [prefix_circuit(spec, t, "ZZZZ") for t in range(1, steps + 1)]
        isa = executor.prepare(templates)
        assert (
            executor.optimization_level == 3 and executor.layout.esp >= executor.layout.preset_esp
        )
        layouts = {tuple(c.layout.initial_index_layout(filter_ancillas=True)) for c in isa}
        assert len(layouts) == 1  # one placement for every circuit of the evaluation
        region = executor.physical_qubits
        qubits.append([region[i] for i in layouts.pop()])
    # the longest prefix decides; this line embeds on the same best qubits either way
    assert qubits[0] == qubits[1]


def test_scheduled_duration_of_a_dynamic_circuit_is_its_schedule_not_depth_times_max():
    spec = QRNNSpec(3, 1, "cz_chain")
    angles = np.random.default_rng(0).normal(size=(10, spec.n_params))
    executor = AerExecutor(parse_target("aer-noisy:fake_fez"))
    [isa] = executor.prepare([dynamic_circuit(spec, angles, "ZZZ")], dynamic=True)
    seconds = scheduled_duration(isa, executor.seconds_target)
    measure = executor.seconds_target["measure"][(0,)].duration
    assert 10 * measure < seconds < 10 * (measure + 2e-6)  # ~ one measurement per step
    static = executor.prepare([prefix_circuit(spec, 4, "ZZZ")])[0]
    assert scheduled_duration(static, executor.seconds_target) == pytest.approx(
        static.estimate_duration(executor.seconds_target, unit="s")
    )


# ---------------------------------------------------------------------------------- mitigation
@pytest.mark.parametrize(
    "text, target, protocol, message",
    [
        ("esp,bogus", "aer-noisy:fake_fez", "replay", "unknown --mitigate"),
        ("esp,esp", "aer-noisy:fake_fez", "replay", "repeated"),
        ("esp", "aer", "replay", "needs calibrated gate errors"),
        ("esp", "aer-noisy:fake_fez", "dynamic", "applies to the replay protocol"),
    ],
)
def test_bad_mitigation_specs(text, target, protocol, message):
    with pytest.raises(QRNNError, match=message):
        parse_mitigation(text, target, protocol)


def test_mitigation_defaults():
    assert parse_mitigation("auto", "aer-noisy:fake_fez", "replay") == ("esp",)
    assert parse_mitigation("auto", "ibm:ibm_fez", "replay") == ("esp",)
    assert parse_mitigation("auto", "aer", "replay") == ()
    assert parse_mitigation("auto", "aer-noisy:depolarizing:0.01", "replay") == ()
    assert parse_mitigation("auto", "aer-noisy:fake_fez", "dynamic") == ()
    assert parse_mitigation("m3,esp", "aer-noisy:fake_fez", "replay") == ("m3", "esp")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--target", "aer-noisy:fake_fez", "--mitigate", "zne"], "unknown --mitigate"),
        (["--target", "aer", "--dd", "XY4"], "IBM Sampler options"),
        (["--target", "aer", "--twirling", "on"], "IBM Sampler options"),
        (["--target", "ibm:ibm_fez", "--protocol", "dynamic", "--dd", "XX"], "dynamic circuits"),
        (["--target", "aer", "--layout", "random"], "unknown --layout"),
    ],
)
def test_bad_hardware_flags_are_one_clear_line(run_dir, capsys, argv, message):
    assert main(["eval", str(run_dir), "--samples", "1", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qrnn: error:") and message in err[0]


def test_esp_rescale_brings_noisy_replay_readouts_back(run_dir):
    common = dict(target="aer-noisy:fake_torino", samples=2, shots=4000, max_steps=8, seed=2)
    raw = run_evaluation(run_dir, EvalConfig(mitigate="none", **common), progress=False, log=quiet)
    mitigated = run_evaluation(
        run_dir, EvalConfig(mitigate="esp", **common), progress=False, log=quiet
    )
    assert raw["name"] != mitigated["name"]
    lam = np.array(mitigated["mitigation"]["lambda"])
    assert lam.shape == (8, 9) and np.all((lam > 0.3) & (lam < 1.0))
    assert np.all(np.diff(lam.mean(axis=1)) < 0.01)  # deeper prefixes shrink more
    assert mitigated["mean_error"] < raw["mean_error"]
    report = mitigated["resources"]
    assert (
        len(report["esp_per_step"]) == 8 and report["esp_per_step"][0] > report["esp_per_step"][-1]
    )
    assert report["shrink_per_step"] == pytest.approx(lam.mean(axis=1).tolist())


def test_twins_add_clifford_rows_and_estimate_lambda(run_dir):
    _, model, _, x, _, _ = load_samples(run_dir, 2, max_steps=3)
    protocol = MitigatedReplay(model, x, ("twins",), twins=3)
    assert protocol.schedule()[0] == [(0, 5), (1, 5), (2, 5)]
    executor = AerExecutor(parse_target("aer-noisy:fake_kingston"))
    isa = executor.prepare(protocol.templates)
    protocol.configure(isa, executor)
    for r in range(protocol.n_rounds):
        pubs = protocol.round_pubs(r)
        rows = pubs[0][1]
        assert rows.shape[0] == 5
        assert np.allclose(rows[2:], snap_clifford(rows[2:]))
        counts = executor.run([(isa[i], v) for i, v in pubs], 2000, seed=r)
        protocol.absorb(r, counts)
    lam = np.array(protocol.lambdas)
    assert lam.shape == (3, 9) and np.all((lam > 0.5) & (lam <= 1.0))
    assert protocol.readouts().shape == (2, 3, 9)


def test_m3_combines_with_esp(run_dir):
    pytest.importorskip("mthree")
    config = EvalConfig(
        target="aer-noisy:fake_kingston", samples=1, shots=2000, max_steps=2, mitigate="m3,esp"
    )
    result = run_evaluation(run_dir, config, progress=False, log=quiet)
    assert result["mitigation"]["methods"] == ["m3", "esp"]
    assert np.all(np.abs(np.array(result["readouts"])) <= 1.0)


# ---------------------------------------------------------------------------------- noise-aware
def test_noisy_readout_engine_shrinks_per_step_and_drops_into_the_core():
    spec = QRNNSpec(3, 1, "cz_chain", "xyz")
    config = QRNNConfig(spec)
    base = StatevectorEngine(step_circuit(spec), readout_observables(spec))
    shrink = np.stack([np.full(spec.n_readouts, 0.9**t) for t in range(1, 4)])
    engine = NoisyReadoutEngine(base, shrink, shots=0)
    torch.manual_seed(0)
    core = QRNNCore(5, config, engine=engine)
    x = torch.randn(2, 5, 5)
    z, _ = core(x)
    # the same controller on the bare engine, shrinking by hand, gives the same readouts
    torch.manual_seed(0)
    plain = QRNNCore(5, config, engine=base)
    plain.load_state_dict(core.state_dict())
    psi, zz = plain.initial_state(2)
    for t in range(5):
        psi, zz = base.step_readouts(psi, plain.angles(x[:, t], zz))
        zz = zz * 0.9 ** (t + 1)  # λ_t = 0.9^t, continued past the table geometrically
        assert torch.allclose(z[:, t], zz, atol=1e-6), t
    z.sum().backward()  # gradients flow through the shrink
    assert core.controller.out.weight.grad is not None


def test_shot_noise_has_the_binomial_variance():
    spec = QRNNSpec(2, 1, "cz_chain", "z")
    base = StatevectorEngine(step_circuit(spec), readout_observables(spec))
    engine = NoisyReadoutEngine(base, None, shots=400, generator=torch.Generator().manual_seed(0))
    angles = torch.full((20000, spec.n_params), 0.8)
    _, z = engine.step_readouts(engine.initial_state(20000), angles)
    _, exact = base.step_readouts(base.initial_state(20000), angles)
    assert torch.allclose(z.mean(0), exact.mean(0), atol=0.005)
    expected = ((1 - exact[0] ** 2) / 400).sqrt()
    assert torch.allclose(z.std(0), expected, rtol=0.05)


def test_shrink_is_calibrated_from_a_fake_backend():
    spec = QRNNSpec(3, 1, "cz_chain", "xyz")
    shrink = calibrate_shrink(spec, parse_train_noise("fake_kingston:shots=1000"), 4)
    assert shrink.shape == (4, 9) and np.all(np.diff(shrink, axis=0) < 0) and shrink.max() < 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("fake_nowhere", "unknown fake backend"),
        ("fake_fez:photons=3", "unknown --train-noise option"),
        ("shots=ten", "is not a number"),
        ("lambda=1.5", "lambda must be in"),
        ("fake_fez:lambda=0.9", "not both"),
        ("shots=0", "adds no noise"),
    ],
)
def test_bad_train_noise_specs(text, message):
    with pytest.raises(QRNNError, match=message):
        parse_train_noise(text)


# ---------------------------------------------------------------------------------- dynamic
def test_default_weak_coupling_and_gain_aware_corrections(run_dir):
    assert validate_coupling("weak") == DEFAULT_WEAK_COUPLING
    _, model, _, x, _, _ = load_samples(run_dir, 1, max_steps=3)
    weak = DynamicProtocol(model, x, coupling="0.3", corrections=2)
    strong = DynamicProtocol(model, x, coupling="cnot", corrections=2)
    kappa = coupling_gain(0.3)
    assert weak.templates[0].num_qubits == 6 and strong.templates[0].num_qubits == 3
    assert (
        "reset" in weak.templates[0].count_ops() and "reset" not in strong.templates[0].count_ops()
    )
    for w, s in zip(weak.corrections[0], strong.corrections[0]):
        # δ₀ − δ₁ = J·2/κ (weak) vs J·2 (projective): the same J, scaled by the gain
        assert (w.delta_zero - w.delta_one) == pytest.approx((s.delta_zero - s.delta_one) / kappa)


def test_projective_dynamic_on_ideal_aer_matches_the_ancilla_form(run_dir):
    _, model, _, x, _, _ = load_samples(run_dir, 1, max_steps=3)
    protocol = DynamicProtocol(model, x, coupling="cnot", corrections=0)
    spec = protocol.spec
    direct = protocol.templates[0]
    ancilla = dynamic_circuit(
        spec, protocol.angles[0], protocol.settings[0], "cnot", (), ancillas=True
    )
    executor = AerExecutor(parse_target("aer"))
    counts = executor.run([(c, None) for c in executor.prepare([direct, ancilla])], 20000, seed=3)
    for key in set(counts[0][0]) | set(counts[1][0]):
        a, b = counts[0][0].get(key, 0) / 20000, counts[1][0].get(key, 0) / 20000
        assert abs(a - b) < 0.03


def test_restricted_targets_keep_fractional_gates():
    sub = restrict_target(fractional_target(4), [1, 2])
    assert "rzz" in sub.operation_names and sub.num_qubits == 2


# ---------------------------------------------------------------------------------- compare
def test_compare_shows_retention_intervals_and_runs_side_by_side(run_dir, tmp_path):
    import json
    import shutil

    from qrnn_qiskit.evaluation.compare import compare, noise_aware_reference, retention

    standard, aware = tmp_path / "standard", tmp_path / "aware"
    shutil.copytree(run_dir, standard, ignore=shutil.ignore_patterns("evals", "jobs.jsonl"))
    config = RunDir(run_dir).read_config().replace(train_noise="lambda=0.9")
    Trainer.from_config(config, aware).fit()  # the same spec, trained through the wrapper
    for path in (standard, aware):
        run_evaluation(path, EvalConfig(target="exact", samples=3), progress=False, log=quiet)
    table, plots = compare(standard, others=[aware], progress=False, log=quiet)
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("|")]
    assert "retention [95% CI]" in table and "standard" in rows and "aware" in rows
    assert "±" in table and plots[0].read_bytes()[:4] == b"\x89PNG"
    result = json.loads(next((standard / "evals").glob("*/result.json")).read_text())
    assert len(result["sample_metrics"]["noisy"]["accuracy"]) == 3
    assert noise_aware_reference(standard, 3) is None
    assert len(noise_aware_reference(aware, 3)["accuracy"]) == 3
    # retention of a run against itself is 1 with a degenerate interval (when it recalls anything)
    result["sample_metrics"] = {
        "noisy": {"accuracy": [0.5, 0.2, 0.4]},
        "exact": {"accuracy": [0.5, 0.4, 0.4]},
    }
    kept = retention(result)
    assert kept[0] == pytest.approx(1.1 / 1.3) and kept[1] <= kept[0] <= kept[2] <= 1.0


def test_train_noise_trains_through_the_wrapper_and_the_run_reloads_with_it(tmp_path, capsys):
    """``qrnn train --train-noise``: the model trains on shrunk, shot-noisy readouts; the run's
    config records the spec, so loading the run rebuilds the same wrapper (qrnn compare's
    noise-aware reference)."""
    from qrnn_qiskit.training import load_run

    run = tmp_path / "na"
    argv = ["train", "--delay", "1", "--qubits", "3", "--layers", "1", "--width", "8",
            "--steps", "4", "--eval-every", "2", "--eval-size", "8", "--batch-size", "4",
            "--no-progress", "--train-noise", "lambda=0.98,shots=500",
            "--run-dir", str(run)]  # fmt: skip
    assert main(argv) == 0
    config, model, _ = load_run(run)
    assert config.engine.train_noise == "lambda=0.98,shots=500"
    engine = model.core.engine
    assert isinstance(engine, NoisyReadoutEngine) and engine.shots == 500
    assert engine.factor(1)[0] == pytest.approx(0.98) and engine.factor(3)[0] == pytest.approx(
        0.98**3
    )
    assert (
        main([*argv[:-2], "--train-noise", "fake_nowhere", "--run-dir", str(tmp_path / "x")]) == 2
    )
    assert "--train-noise" in capsys.readouterr().err and not (tmp_path / "x").exists()
