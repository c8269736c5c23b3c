"""Run directories written before the nested config (flat config.json, version-1 checkpoint, made by
qrnn-qiskit at commit 7b90666 and kept in tests/data/run_v1) still resume, evaluate and report."""

from __future__ import annotations

import json
import shutil

import pytest

from qrnn_qiskit.cli import main
from qrnn_qiskit.training import RunDir, TrainConfig, Trainer, load_run

OLD = __import__("pathlib").Path(__file__).parent / "data" / "run_v1"


@pytest.fixture
def old_run(tmp_path):
    run = tmp_path / "run_v1"
    shutil.copytree(OLD, run)
    return run


def test_the_flat_config_migrates_to_the_same_options(old_run):
    flat = json.loads((old_run / "config.json").read_text())["config"]
    assert "version" not in flat and flat["qubits"] == 3
    config = RunDir(old_run).read_config()
    assert config.qrnn.spec.n_qubits == 3 and config.task.delay == 2 and config.model.embed_dim == 4
    # options added since then take their defaults, except those whose default changed the
    # training (BEFORE_OPTION): they keep the behaviour the run was trained with
    assert config.flat_dict() == {**TrainConfig().flat_dict(), "angle_lr": 1.0, **flat}
    _, model, state = load_run(old_run)
    assert state["step"] == 4 and model.core.engine.n_qubits == 3


def test_an_old_run_resumes_evaluates_and_reports(old_run, capsys):
    config = RunDir(old_run).read_config().replace(steps=6)
    result = Trainer.from_config(config, old_run, resume=True).fit()
    assert result.steps == 6
    assert [r["step"] for r in RunDir(old_run).read_metrics()] == [2, 4, 6]
    record = json.loads((old_run / "config.json").read_text())
    assert record["config"]["version"] == 2 and len(record["resumes"]) == 1  # rewritten, nested
    assert main(["eval", str(old_run), "--target", "exact", "--samples", "2", "--no-progress"]) == 0
    assert main(["report", str(old_run), "--plot", str(old_run / "r.png"), "--no-test"]) == 0
    assert "| run_v1 | copying | qrnn | n=3, L=1 |" in capsys.readouterr().out


def test_the_cli_resumes_an_old_run_with_its_original_flags(old_run):
    argv = json.loads((old_run / "config.json").read_text())["argv"][1:]
    argv[argv.index("--run-dir") + 1] = str(old_run)
    argv[argv.index("--steps") + 1] = "5"
    assert main([*argv, "--resume"]) == 0
