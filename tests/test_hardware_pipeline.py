"""Hardware pipeline: replay/dynamic protocols, noisy Aer on fake backends, IBM local mode, reports,
CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from qiskit import qpy
from tiny_runs import quiet, train_tiny_qrnn

from qrnn_qiskit.backends.ibm import IBMExecutor, with_retries
from qrnn_qiskit.backends.noisy import AerExecutor, active_qubits, estimate_seconds, parse_target
from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.circuits.replay import measurement_settings
from qrnn_qiskit.cli import main
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.evaluation.compare import compare
from qrnn_qiskit.evaluation.config import EvalConfig
from qrnn_qiskit.evaluation.export import export_circuits, parse_input
from qrnn_qiskit.evaluation.protocols import DynamicProtocol
from qrnn_qiskit.evaluation.resources import two_qubit_gates
from qrnn_qiskit.evaluation.runner import collect, load_samples, run_evaluation

TOKEN = "qrnn-test-token-5f1c9e0b7d"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A briefly trained 3-qubit QRNN on copying memory with delay 1 (sequences of 21 steps)."""
    return train_tiny_qrnn(tmp_path_factory.mktemp("hw") / "run")


def test_measurement_settings_cover_readouts():
    assert measurement_settings(QRNNSpec(3, readouts="xyz")) == (
        ["XXX", "YYY", "ZZZ"],
        [0, 0, 0, 1, 1, 1, 2, 2, 2],
    )
    assert measurement_settings(QRNNSpec(4, readouts="zz"))[0] == ["ZZZZ"]
    settings, assignment = measurement_settings(QRNNSpec(2, readouts=("XI", "IY", "XY", "ZZ")))
    assert settings == ["YX", "ZZ"] and assignment == [0, 0, 0, 1]


def test_replay_on_statevector_reproduces_the_model(run_dir):
    result = run_evaluation(
        run_dir, EvalConfig(target="statevector", samples=3), progress=False, log=quiet
    )
    assert result["steps"] == 21 and result["samples"] == 3 and result["target"] == "exact"
    assert result["max_error"] < 2e-5  # complex64 engine vs exact Qiskit probabilities
    for key, value in result["exact_metrics"].items():
        assert result["metrics"][key] == pytest.approx(value, abs=1e-4)


def test_replay_with_ideal_shots_is_within_5_sigma_of_the_engine(run_dir):
    shots = 20_000
    result = run_evaluation(
        run_dir, EvalConfig(target="aer", samples=2, shots=shots, seed=3), progress=False, log=quiet
    )
    _, model, _, _, _, _ = load_samples(run_dir, 2)
    engine = model.core.engine
    angles = torch.tensor(result["angles"])  # [K, T, P]: the angles the replay actually ran
    z_hat = np.array(result["readouts"])
    psi = engine.initial_state(2)
    deviations = []
    for t in range(angles.shape[1]):
        psi = engine.step(psi, angles[:, t].to(torch.float32))
        z = engine.readouts(psi).double().numpy()
        sigma = np.sqrt(np.clip(1 - z**2, 1e-6, None) / shots)
        deviations.append(np.abs(z_hat[:, t] - z) / sigma)
    deviations = np.array(deviations)
    assert deviations.max() < 5.0
    assert deviations.mean() > 0.1  # these really are shot estimates, not exact values


@pytest.mark.parametrize("backend", ["fake_kingston", "fake_fez"])
def test_dynamic_circuit_transpiles_and_runs_on_noisy_fake_backends(run_dir, backend):
    _, model, _, x, _, _ = load_samples(run_dir, 1, max_steps=4)
    protocol = DynamicProtocol(model, x, coupling="cnot", corrections=4)
    executor = AerExecutor(parse_target(f"aer-noisy:{backend}"))
    isa = executor.prepare(protocol.templates, dynamic=True)
    target = executor.device.target
    assert "switch_case" not in target.operation_names or backend == "fake_fez"
    for circuit in isa:
        ops = circuit.count_ops()
        # projective coupling measures the data qubits directly: no ancillas, no resets
        assert circuit.num_qubits == executor.device.num_qubits or len(active_qubits(circuit)) == 3
        assert ops["measure"] == 4 * 3 and "reset" not in ops and ops["if_else"] > 0
        assert "switch_case" not in ops and "for_loop" not in ops and "while_loop" not in ops
        names = set(ops) - {"if_else", "barrier"}
        assert names <= set(target.operation_names)
        measured_before: set = set()
        for instruction in circuit.data:
            op = instruction.operation
            if op.name == "measure":
                measured_before.add(circuit.find_bit(instruction.clbits[0]).index)
            if op.name == "if_else":
                clbit, value = op.condition
                assert (
                    value == 1 and circuit.find_bit(clbit).index in measured_before
                )  # a single measured bit
                assert len(op.blocks) == 2  # with else
                for block in op.blocks:
                    inner = set(block.count_ops())
                    assert not inner & {"measure", "reset", "if_else", "switch_case"}, inner
    counts = executor.run([(c, None) for c in isa], shots=200, seed=1)
    protocol.absorb(0, counts)
    z = protocol.readouts()
    assert z.shape == (1, 4, 9) and np.all(np.abs(z) <= 1.0 + 1e-9)
    assert np.abs(z - protocol.exact.double().numpy()).mean() < 0.5


def test_resource_report_matches_the_circuits_that_ran(run_dir):
    ran: list = []

    class RecordingExecutor(AerExecutor):
        def run(self, pubs, shots, seed=0):
            ran.extend(
                c.assign_parameters(row) if v is not None else c
                for c, v in pubs
                for row in (v if v is not None else [None])
            )
            return super().run(pubs, shots, seed)

    lines: list[str] = []
    shots = 100
    executor = RecordingExecutor(parse_target("aer-noisy:fake_fez"))
    result = run_evaluation(
        run_dir,
        EvalConfig(target="aer-noisy:fake_fez", samples=2, shots=shots, max_steps=3),
        executor=executor,
        progress=False,
        log=lines.append,
    )
    report = result["resources"]
    assert "resources for replay on aer-noisy:fake_fez" in lines[0]
    assert report["circuits"] == len(ran) == 3 * 3 * 2 and report["rounds"] == 3
    assert report["total_shots"] == len(ran) * shots
    assert report["two_qubit_gates"] == sum(two_qubit_gates(c) for c in ran)
    assert report["two_qubit_gates"] == sum(c.count_ops().get("cz", 0) for c in ran)
    assert report["max_depth"] == max(c.depth() for c in ran)
    assert (
        report["qubits_used"]
        == len(executor.physical_qubits)
        >= max(len(active_qubits(c)) for c in ran)
    )
    expected = sum(shots * (estimate_seconds(c, executor.seconds_target) + 250e-6) for c in ran)
    assert report["qpu_seconds"] == pytest.approx(expected, rel=1e-9)
    # the noisy simulation charged thermal relaxation to idle time, and says so
    relax = result["idle_relaxation"]
    assert relax == report["idle_relaxation"] and relax["applied"]
    assert set(relax["idle_seconds_per_qubit"]) == {str(q) for q in executor.physical_qubits}
    assert any("idle relaxation    applied" in line for line in lines)


def test_jobs_survive_a_crash_between_submit_and_collect(run_dir, tmp_path, monkeypatch):
    """Local mode: the executor object plays IBM's server (it keeps jobs); everything else is
    rebuilt from disk."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("evals", "jobs.jsonl"))
    server = IBMExecutor("fake_manila", service=QiskitRuntimeService(channel="local"))
    config = EvalConfig(target="ibm:fake_manila", samples=2, shots=200, max_steps=2)
    assert (
        run_evaluation(run, config, executor=server, submit_only=True, progress=False, log=quiet)
        is None
    )
    records = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["round"] == 0 and records[0]["job_id"] in server._jobs
    # crash: the client's memory is gone; collect starts from the run directory alone
    results = collect(run, executor=server, progress=False, log=quiet)
    records = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [0, 1]
    assert (
        len(server._jobs) == 2 == len({r["job_id"] for r in records})
    )  # round 0 was never resubmitted
    assert len(results) == 1 and results[0]["jobs"] == [r["job_id"] for r in records]
    assert np.array(results[0]["readouts"]).shape == (2, 2, 9)
    with pytest.raises(QRNNError, match="no unfinished"):
        collect(run, executor=server, progress=False, log=quiet)
    for path in run.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_transient_errors_are_retried_with_backoff():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset by peer")
        return "ok"

    assert with_retries(flaky, sleep=sleeps.append, base_delay=1.0) == "ok"
    assert sleeps == [1.0, 2.0]
    with pytest.raises(ValueError):
        with_retries(lambda: (_ for _ in ()).throw(ValueError("permanent")), sleep=sleeps.append)
    assert sleeps == [1.0, 2.0]
    with pytest.raises(QRNNError, match="kept failing after 3"):
        with_retries(
            lambda: (_ for _ in ()).throw(TimeoutError()),
            attempts=3,
            sleep=sleeps.append,
            base_delay=1.0,
        )


def test_compare_writes_table_and_plots(run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("evals", "jobs.jsonl"))
    run_evaluation(run, EvalConfig(target="exact", samples=2), progress=False, log=quiet)
    table, plots = compare(run, sweep=[0.0, 0.2], samples=2, shots=300, progress=False, log=quiet)
    assert "| exact" in table and "aer-noisy:depolarizing:0.2" in table and "t=21" in table
    assert {p.name for p in plots} == {"readout_error.png", "depolarizing_sweep.png"}
    for p in plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = {
        json.loads(p.read_text())["target"]: json.loads(p.read_text())
        for p in (run / "evals").glob("*/result.json")
    }
    noisy, clean = results["aer-noisy:depolarizing:0.2"], results["aer-noisy:depolarizing:0"]
    assert (
        noisy["mean_error"] > clean["mean_error"]
    )  # strong depolarizing noise shrinks the readouts
    assert (run / "comparison.md").read_text().startswith("# run: noiseless vs noisy")


def test_export_writes_bound_circuits(run_dir, tmp_path):
    x = parse_input("eval:1", run_dir)
    assert x.shape == (1, 21)
    [path] = export_circuits(run_dir, x, "replay", "qpy", tmp_path)
    with open(path, "rb") as handle:
        circuits = qpy.load(handle)
    assert len(circuits) == 21 * 3 and all(c.num_parameters == 0 for c in circuits)
    assert circuits[-1].count_ops()["cx"] == 21 * 3  # 21 steps × 3 ring edges
    paths = export_circuits(
        run_dir, parse_input("1,2,3,9,0", run_dir), "dynamic", "qasm3", tmp_path / "q"
    )
    text = paths[0].read_text()
    # projective coupling measures the data qubits directly (no ancillas to reset)
    assert len(paths) == 3 and "if (" in text and "= measure q[" in text and "reset" not in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--target", "aer-noisy:fake_nowhere"], "valid names: fake_aachen"),
        (["--target", "aer-noisy:fake_miami", "--protocol", "dynamic"], "does not support if_else"),
        (["--target", "aer-noisy:fake_armonk"], "has 1 qubits; these circuits need 3"),
        (["--target", "aer", "--shots", "0"], "--shots must be an integer in 1..1,000,000"),
        (["--target", "aer", "--shots", "1e10"], "argument --shots: expected an integer"),
        (["--target", "aer", "--corrections", "-2"], "--corrections must be >= 0"),
        (["--target", "exact", "--protocol", "dynamic"], "no exact form"),
    ],
)
def test_bad_input_is_one_clear_line(run_dir, capsys, argv, message):
    assert main(["eval", str(run_dir), "--samples", "1", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qrnn: error:") and message in err[0]


def test_missing_checkpoint_and_missing_account(run_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text((run_dir / "config.json").read_text())
    assert main(["eval", str(tmp_path / "empty"), "--target", "aer"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    import qiskit_ibm_runtime.accounts.management as management

    for name in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_CHANNEL", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(
        management, "_DEFAULT_ACCOUNT_CONFIG_JSON_FILE", str(tmp_path / "none.json")
    )
    assert main(["submit", str(run_dir), "--target", "ibm:ibm_fez", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "no IBM Quantum account" in err and "save_account" in err
    assert not (run_dir / "jobs.jsonl").exists()


def test_cli_eval_and_collect_in_local_mode(run_dir, tmp_path, capsys, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("evals", "jobs.jsonl"))
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "local")
    assert (
        main(
            [
                "eval",
                str(run),
                "--target",
                "ibm:fake_manila",
                "--samples",
                "1",
                "--shots",
                "100",
                "--max-steps",
                "1",
                "--yes",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "est. QPU seconds" in out and "ibm:fake_manila / replay" in out
    assert len((run / "jobs.jsonl").read_text().splitlines()) == 1
    assert math.isfinite(
        json.loads(next((run / "evals").glob("*/result.json")).read_text())["mean_error"]
    )


def test_an_rzz_model_replays_on_a_noisy_fake_backend(tmp_path):
    """Transpiling for a CZ device drops the parameter of an RZZ(θ) right before a Z-basis
    measurement; the rows bound to each circuit must follow (it was a ValueError traceback)."""
    train_tiny_qrnn(tmp_path / "rzz", entangler="rzz_chain", width=8, steps=2, eval_every=2)
    result = run_evaluation(
        tmp_path / "rzz",
        EvalConfig(target="aer-noisy:fake_manila", samples=2, shots=500, max_steps=4),
        progress=False,
        log=quiet,
    )
    assert result["steps"] == 4 and 0 <= result["mean_error"] < 0.5
