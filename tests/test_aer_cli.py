"""`qrnn train --backend aer`: a tiny real run, checkpoints shared with the statevector backend, bad
input."""

from __future__ import annotations

import pytest
import torch

from qrnn_qiskit.backends.aer import AerEstimatorEngine
from qrnn_qiskit.backends.aer.requirements import _require
from qrnn_qiskit.cli import main
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.training import TrainConfig, Trainer, load_run, make_task

# T = delay + 20 = 21 steps: the shortest copying sequence; 2 qubits, 1 layer keep Aer training
# ~seconds
TINY_AER = TrainConfig.flat(
    task="copying",
    model="qrnn",
    backend="aer",
    delay=1,
    qubits=2,
    layers=1,
    readouts="z",
    width=6,
    embed_dim=4,
    dtype="complex128",
    steps=1,
    batch_size=2,
    eval_every=1,
    eval_size=2,
    progress=False,
)


def test_tiny_aer_run_resumes_on_statevector_with_the_same_model(tmp_path):
    run = tmp_path / "run"
    result = Trainer.from_config(TINY_AER, run, argv=["qrnn", "train"]).fit()
    assert result.steps == 1
    config, model, _ = load_run(run)
    assert isinstance(model.core.engine, AerEstimatorEngine)
    # the same checkpoint on the torch engine gives the same outputs
    sv_config = config.replace(backend="statevector")
    task = make_task(sv_config)
    sv_model = task.build_model(sv_config)
    sv_model.load_state_dict(model.state_dict())
    x, _ = next(task.eval_batches())
    model.eval()
    sv_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), sv_model(x), atol=1e-5, rtol=0)
    # and the run continues on the statevector backend (backend is a resumable field)
    resumed = Trainer.from_config(sv_config.replace(steps=2), run, resume=True).fit()
    assert resumed.steps == 2


def _cli_error(capsys, *args: str) -> str:
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qrnn: error:") and "\n" not in err
    return err


def test_backend_bad_input_is_one_line_exit_2(tmp_path, capsys):
    err = _cli_error(
        capsys, "--backend", "aer", "--model", "lstm", "--run-dir", str(tmp_path / "a")
    )
    assert "--model lstm is classical" in err
    err = _cli_error(capsys, "--backend", "gpu", "--run-dir", str(tmp_path / "b"))
    assert "argument --backend: invalid choice: 'gpu'" in err
    err = _cli_error(
        capsys,
        "--backend",
        "aer",
        "--qubits",
        "24",
        "--batch-size",
        "4096",
        "--run-dir",
        str(tmp_path / "c"),
    )
    assert "2^24·16 bytes per sample" in err


def test_default_aer_training_is_refused_with_an_estimate(tmp_path, capsys):
    # the default copying run: T = 40, B = 64, 8 qubits, 2000 steps: thousands of hours
    err = _cli_error(
        capsys, "--backend", "aer", "--no-progress", "--run-dir", str(tmp_path / "run")
    )
    assert "would take about" in err and "--force" in err and "T=40" in err


def test_missing_or_old_packages_are_named_with_the_fix():
    with pytest.raises(
        QRNNError, match=r"needs qiskit-aer >= 99.0, found .*pip install 'qiskit-aer>=99.0'"
    ):
        _require("qiskit_aer", "qiskit-aer", (99, 0), "the aer backend")
    with pytest.raises(QRNNError, match="not installed"):
        _require("qiskit_aer_not_a_package", "qiskit-aer-not-a-package", (0, 1), "the aer backend")
