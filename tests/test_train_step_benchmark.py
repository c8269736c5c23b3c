"""benchmarks/train_step.py in its quick mode: it runs, prints its table and writes its JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from qrnn_qiskit.backends import native

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


def test_quick_mode_prints_the_table_and_writes_json(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        report = module.main(["--quick", "--json", str(tmp_path / "out.json")])
    finally:
        torch.set_num_threads(threads)
        native.set_threads(None)
    out = capsys.readouterr().out
    assert "QRNN / LSTM" in out and "engine / bound" in out
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(json.dumps(report))
    (row,) = report["rows"]
    assert row["n"] == 4 and row["fused"]
    # the LSTM is matched to the QRNN's parameter count (within one hidden unit's worth)
    assert abs(row["lstm_params"] - row["qrnn_params"]) < 0.05 * row["qrnn_params"]
    assert row["qrnn_ms"] > 0 and row["lstm_ms"] > 0 and row["engine_ms"] > 0
    assert row["ratio"] == row["qrnn_ms"] / row["lstm_ms"]
    # the bound: B · 2^n · T · (4 G_U + 2 G_R) · c / f; n = 4, L = 2 cx_ring: per layer 4 RY
    # chains, the RZs as one diagonal, the CX ring as one permutation; xyz readouts: 4 densities
    assert row["passes"] == {"step": 12, "readouts": 4}
    expected = 8 * 16 * 4 * (4 * 12 + 2 * 4) * 0.5 / (report["clock_ghz"] * 1e9) * 1e3
    assert abs(row["bound_ms"] - expected) < 1e-12
    # the measured QRNN beside it (n <= 6): linear feedforward of all 4 bits, timed in the repeat
    assert row["mqrnn_feedforward"] == "linear" and row["mqrnn_bits"] == 4
    assert row["mqrnn_ms"] > 0 and row["mqrnn_over_qrnn"] == row["mqrnn_ms"] / row["qrnn_ms"]
    assert row["mqrnn_params"] > row["qrnn_params"]  # the controller writes 1 + k angle sets
    assert "mqrnn / qrnn" in out
