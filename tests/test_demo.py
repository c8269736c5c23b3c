"""`qrnn demo` end to end at a tiny budget: both models trained at equal budgets, the table, the
noisy replay of the QRNN and its record."""

from __future__ import annotations

import json

from qrnn_qiskit.cli import main


def test_the_demo_trains_both_models_at_equal_budgets_and_replays_the_qrnn(tmp_path, capsys):
    assert main(["demo", "--minutes", "0.04", "--run-root", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "equal budgets of 0.0 min of training each" in out
    for row in (
        "| qrnn ",
        "| lstm ",
        "| memoryless ",
        "aer-noisy:fake_fez, replay, --mitigate esp",
    ):
        assert row in out
    budgets = {
        kind: json.loads((tmp_path / kind / "config.json").read_text())["config"]["run"][
            "max_minutes"
        ]
        for kind in ("qrnn", "lstm")
    }
    assert budgets["qrnn"] == budgets["lstm"] > 0
    [result_file] = (tmp_path / "qrnn" / "evals").glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["config"]["target"] == "aer-noisy:fake_fez" and result["metrics"]["accuracy"] >= 0
