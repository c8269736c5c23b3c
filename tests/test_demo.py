"""`qrnn demo` end to end at a tiny budget: both models trained at equal budgets, the table, the
noisy replay of the QRNN and its record."""

from __future__ import annotations

import json

from qrnn_qiskit.cli import main


def test_the_demo_trains_three_models_at_equal_budgets_and_runs_both_qrnns_on_a_noisy_backend(
    tmp_path, capsys
):
    argv = ["demo", "--minutes", "0.04", "--samples", "2", "--shots", "100", "--no-progress"]
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
    assert rows["qrnn (coherent)"][1] == "replay, --mitigate esp"
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
        assert result["config"]["target"] == "aer-noisy:fake_boston"
        assert result["protocol"] == protocol and result["metrics"]["accuracy"] >= 0
        assert result["resources"]["circuits"] > 0 and result["resources"]["qpu_seconds"] > 0
