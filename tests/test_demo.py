"""`qrnn demo` end to end at a tiny budget: both models trained at equal budgets, the table, the
noisy replay of the QRNN and its record."""

from __future__ import annotations

import json

from qrnn_qiskit.cli import main


def test_the_demo_trains_three_models_at_equal_budgets_and_runs_both_qrnns_on_a_noisy_backend(
    tmp_path, capsys
):
    # a depolarizing target keeps the test short (the Heron default schedules every circuit for
    # idle relaxation: tests/test_measured_eval.py and test_relaxation.py cover that path)
    target = "aer-noisy:depolarizing:0.01"
    argv = ["demo", "--minutes", "0.04", "--samples", "2", "--shots", "100", "--target", target]
    argv.append("--no-progress")
    assert main([*argv, "--run-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "equal budgets of 0.0 min of training each" in out
    rows = {
        cells[0]: cells
        for line in out.splitlines()
        if line.startswith("|")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for label in ("qrnn", "lstm", "mqrnn", "memoryless"):
        assert label in rows
    assert rows["qrnn (coherent)"][1] == "replay"  # no ESP rescale without calibrated errors
    # one circuit per sequence and one round for the measured model
    assert rows["mqrnn (measured)"][1:4] == ["its dynamic circuit", "2", "1"]
    budgets = {
        kind: json.loads((tmp_path / kind / "config.json").read_text())["config"]["run"][
            "max_minutes"
        ]
        for kind in ("qrnn", "lstm", "mqrnn")
    }
    assert budgets["qrnn"] == budgets["lstm"] == budgets["mqrnn"] > 0
    for kind, protocol in (("qrnn", "replay"), ("mqrnn", "dynamic")):
        [result_file] = (tmp_path / kind / "evals").glob("*/result.json")
        result = json.loads(result_file.read_text())
        assert result["config"]["target"] == target
        assert result["protocol"] == protocol and result["metrics"]["accuracy"] >= 0
        assert result["resources"]["circuits"] > 0


def test_the_demo_refuses_a_target_it_cannot_simulate_before_training(tmp_path, capsys):
    assert main(["demo", "--target", "ibm:ibm_fez", "--run-root", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--target ibm:ibm_fez" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "d").exists()
