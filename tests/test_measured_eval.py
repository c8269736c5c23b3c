"""``qrnn eval`` of a measured run (``--model mqrnn``): its own dynamic circuit on every target
(``evaluation.measured.MeasuredProtocol``), the IBM job budget, the ISA form on Heron targets, and
the bad inputs refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qrnn_qiskit.cli import main
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.evaluation.config import EvalConfig
from qrnn_qiskit.evaluation.runner import load_samples, run_evaluation

TRAIN = ["train", "--task", "copying", "--delay", "2", "--model", "mqrnn", "--qubits", "2",
         "--layers", "1", "--width", "8", "--batch-size", "4", "--eval-size", "8",
         "--eval-every", "3", "--steps", "3", "--threads", "1", "--no-progress"]  # fmt: skip


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def mrun(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("meval") / "run"
    assert main([*TRAIN, "--run-dir", str(run)]) == 0
    return run


def core_features(run: Path, samples: int) -> np.ndarray:
    import torch

    _, model, _, x, _, _ = load_samples(run, samples)
    with torch.no_grad():
        features, _ = model.core(model.embed(x))
    return features.double().numpy()


def test_exact_target_gives_the_trained_models_own_features_without_circuits(mrun):
    result = run_evaluation(
        mrun, EvalConfig(target="exact", protocol="dynamic", samples=3), progress=False, log=quiet
    )
    assert result["protocol"] == "dynamic" and "measured model" in result["semantics"]
    np.testing.assert_array_equal(np.array(result["readouts"]), core_features(mrun, 3))
    assert result["resources"]["circuits"] == 0 and result["jobs"] == []
    assert result["metrics"] == result["exact_metrics"]
    assert result["protocol_details"]["model"] == "mqrnn"


def test_ideal_aer_bit_averages_are_within_5_sigma_of_exact(mrun):
    shots = 20_000
    result = run_evaluation(
        mrun,
        EvalConfig(target="aer", protocol="dynamic", samples=2, shots=shots),
        progress=False,
        log=quiet,
    )
    z, exact = np.array(result["readouts"]), np.array(result["exact"])
    np.testing.assert_allclose(exact, core_features(mrun, 2), atol=1e-6)
    sigma = np.sqrt(np.clip(1 - exact**2, 1e-4, None) / shots)
    assert (np.abs(z - exact) <= 5 * sigma).all(), np.abs(z - exact).max()
    report = result["resources"]
    assert report["circuits"] == 2 and report["rounds"] == 1
    assert report["measure_instruction"] == "measure"


def test_noisy_fake_kingston_runs_with_idle_relaxation(mrun):
    result = run_evaluation(
        mrun,
        EvalConfig(
            target="aer-noisy:fake_kingston",
            protocol="dynamic",
            samples=1,
            shots=500,
            optimization_level=1,
        ),  # fmt: skip
        progress=False,
        log=quiet,
    )
    assert result["idle_relaxation"]["applied"] is True
    assert result["resources"]["qpu_seconds"] > 0
    assert np.isfinite(np.array(result["readouts"])).all()


def test_ibm_local_mode_runs_the_circuits_in_a_batch(mrun, monkeypatch, tmp_path, opened_modes):
    import shutil

    from qiskit_ibm_runtime import Batch

    run = tmp_path / "run"
    shutil.copytree(mrun, run)
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "local")
    opened = opened_modes
    config = EvalConfig(target="ibm:fake_manila", protocol="dynamic", samples=2, shots=4000,
                        optimization_level=1)  # fmt: skip
    result = run_evaluation(run, config, progress=False, log=quiet)
    assert len(opened) == 1 and isinstance(opened[0], Batch)
    assert len(result["jobs"]) == 1
    # local mode simulates with Aer, which does not know measure_2
    assert result["protocol_details"]["measurement_instruction"] == "measure"
    jobs = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
    assert jobs[0]["mode"] == "batch" and any(t.startswith("qrnn-eval:") for t in jobs[0]["tags"])
    z, exact = np.array(result["readouts"]), np.array(result["exact"])
    assert np.abs(z - exact).mean() < 0.1  # fake_manila noise, 4000 shots


@pytest.mark.parametrize("backend", ["fake_kingston", "fake_boston"])
def test_the_circuits_are_isa_on_heron_with_measure_2_and_if_else_only(mrun, backend):
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import fake_provider
    from qiskit_ibm_runtime.utils.utils import is_isa_circuit

    from qrnn_qiskit.backends.ibm import to_mid_circuit_measure, uses_measure_2
    from qrnn_qiskit.evaluation.measured import MeasuredProtocol

    _, model, _, x, _, _ = load_samples(mrun, 1)
    protocol = MeasuredProtocol(model, x)
    device = fake_provider.FakeProviderForBackendV2().backend(backend)
    isa = generate_preset_pass_manager(1, backend=device).run(protocol.templates[0])
    assert uses_measure_2(device.target, local=False) and not uses_measure_2(device.target, True)
    [converted] = to_mid_circuit_measure([isa], device.target)
    assert is_isa_circuit(converted, device.target) == ""
    ops = converted.count_ops()
    assert "measure_2" in ops and not {"switch_case", "for_loop", "while_loop"} & set(ops)


def test_job_splitting_by_broadcast_budget():
    from qrnn_qiskit.circuits.measured import JOB_BROADCAST_BUDGET, measured_jobs

    assert JOB_BROADCAST_BUDGET == 2_400
    assert measured_jobs([1000, 1000, 1000, 400, 2400], 2400) == [[0, 1], [2, 3], [4]]
    with pytest.raises(QRNNError, match="T = 200, table feedforward") as error:
        measured_jobs([10, 2401], 2400, "T = 200, table feedforward of 4 bit(s)")
    assert "\n" not in str(error.value) and "--max-steps" in str(error.value)


def test_broadcasts_count_bits_and_registers(mrun):
    from qrnn_qiskit.circuits.measured import broadcasts
    from qrnn_qiskit.evaluation.measured import MeasuredProtocol

    _, model, _, x, _, _ = load_samples(mrun, 2)
    # linear, L = 1, k = 2: 2·L·k one-bit conditions per step after the first
    per_circuit = 2 * 1 * 2 * (x.shape[1] - 1)
    protocol = MeasuredProtocol(model, x, budget=per_circuit + 1)
    # one template for both sequences (a parameter row each); each sequence counts its broadcasts
    [template] = protocol.templates
    assert protocol.counts == [per_circuit] * 2 == [broadcasts(template)] * 2
    assert protocol.jobs == [[0], [1]] and protocol.n_rounds == 2
    assert protocol.schedule() == [[(0, 1)], [(0, 1)]]
    assert [len(values) for _, values in protocol.round_pubs(0)] == [1]
    with pytest.raises(QRNNError, match="feedforward"):
        MeasuredProtocol(model, x, budget=per_circuit - 1)


def test_ibm_jobs_are_split_and_all_submitted_before_any_is_awaited(mrun, monkeypatch, tmp_path):
    import shutil

    from qrnn_qiskit.circuits import measured

    run = tmp_path / "run"
    shutil.copytree(mrun, run)
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "local")
    _, _, _, x, _, _ = load_samples(run, 1)
    monkeypatch.setattr(measured, "JOB_BROADCAST_BUDGET", 4 * (x.shape[1] - 1))
    config = EvalConfig(target="ibm:fake_manila", protocol="dynamic", samples=2, shots=200,
                        optimization_level=1)  # fmt: skip
    lines: list[str] = []
    assert run_evaluation(run, config, progress=False, log=lines.append, submit_only=True) is None
    submitted = [line for line in lines if line.startswith("submitted round")]
    assert len(submitted) == 2
    assert len((run / "jobs.jsonl").read_text().splitlines()) == 2
    assert any("1 sequential run(s), 2 job(s)" in line for line in lines)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--target", "aer", "--protocol", "replay"], "a measured run has no replay"),
        (["--target", "aer-noisy:fake_miami"], "does not support if_else, reset"),
        (["--target", "aer", "--coupling", "weak"], "--coupling shapes the coherent model"),
        (["--target", "aer", "--corrections", "2"], "--corrections shapes the coherent model"),
        (["--target", "ibm:fake_manila", "--twirling", "on", "--yes"], "refuses dynamical"),
        (["--target", "ibm:fake_manila", "--dd", "XX", "--yes"], "refuses dynamical"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(mrun, extra, says, capsys, monkeypatch):
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "local")
    before = sorted(p for p in mrun.rglob("*") if p.is_file() and p.name != ".lock")
    assert main(["eval", str(mrun), "--samples", "1", "--no-progress", *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and says in err[0], err
    assert sorted(p for p in mrun.rglob("*") if p.is_file() and p.name != ".lock") == before


def test_too_many_conditions_for_one_job_is_refused(mrun, monkeypatch, capsys):
    from qrnn_qiskit.circuits import measured

    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "local")
    monkeypatch.setattr(measured, "JOB_BROADCAST_BUDGET", 3)
    argv = ["eval", str(mrun), "--samples", "1", "--no-progress", "--target", "ibm:fake_manila"]
    assert main([*argv, "--yes"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "linear feedforward of 2 bit(s)" in err and "T = " in err


def test_compare_reads_a_measured_evaluation(mrun, tmp_path):
    import shutil

    from qrnn_qiskit.evaluation.compare import compare

    run = tmp_path / "run"
    shutil.copytree(mrun, run)
    for target in ("exact", "aer"):
        run_evaluation(run, EvalConfig(target=target, protocol="dynamic", samples=2, shots=500),
                       progress=False, log=quiet)  # fmt: skip
    table, _ = compare(run, progress=False)
    assert "measured circuit" in table
