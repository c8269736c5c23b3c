"""``qrnn train --threads`` / ``--kernel-threads``: torch's and the native kernels' thread budgets,
the options and the numbers in effect both recorded in config.json."""

from __future__ import annotations

import json

import pytest
import torch

from qrnn_qiskit.backends import native
from qrnn_qiskit.cli import main
from qrnn_qiskit.training import TrainConfig, Trainer

TINY = dict(task="copying", delay=2, qubits=3, layers=1, width=4, steps=2, eval_every=2,
            eval_size=4, batch_size=4, progress=False)  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_budgets():
    torch_threads = torch.get_num_threads()
    yield
    torch.set_num_threads(torch_threads)
    native.set_threads(None)


def _recorded(run_dir) -> tuple[dict, dict]:
    """(the run options, the thread budgets in effect) of a run's config.json."""
    record = json.loads((run_dir / "config.json").read_text())
    return record["config"]["run"], record["threads"]


def test_threads_set_the_kernels_budget_too_and_both_are_recorded(tmp_path):
    Trainer.from_config(TrainConfig.flat(**TINY, threads=1), tmp_path / "run").fit()
    assert torch.get_num_threads() == 1 and native.max_threads() == 1
    run, threads = _recorded(tmp_path / "run")
    assert run["threads"] == 1 and run["kernel_threads"] is None  # the option: as --threads
    assert threads == {"torch": 1, "kernels": 1}


def test_kernel_threads_split_the_budget(tmp_path):
    config = TrainConfig.flat(**TINY, threads=1, kernel_threads=2)
    Trainer.from_config(config, tmp_path / "run").fit()
    assert torch.get_num_threads() == 1 and native.max_threads() == 2
    run, threads = _recorded(tmp_path / "run")
    assert run["threads"] == 1 and run["kernel_threads"] == 2
    assert threads == {"torch": 1, "kernels": 2}


def test_kernel_threads_zero_is_the_kernels_default(tmp_path):
    native.set_threads(None)
    default = native.max_threads()  # $QRNN_NATIVE_THREADS, else torch's threads
    native.set_threads(default + 2)
    Trainer.from_config(TrainConfig.flat(**TINY, threads=0, kernel_threads=0), None)
    assert native.max_threads() == default


def test_the_cli_flag_and_its_validation(tmp_path, capsys):
    args = ["train", "--task", "copying", "--delay", "2", "--qubits", "3", "--layers", "1",
            "--width", "4", "--steps", "2", "--eval-every", "2", "--eval-size", "4",
            "--batch-size", "4", "--no-progress", "--threads", "1"]  # fmt: skip
    assert main([*args, "--kernel-threads", "2", "--run-dir", str(tmp_path / "run")]) == 0
    run, threads = _recorded(tmp_path / "run")
    assert run["kernel_threads"] == 2 and threads == {"torch": 1, "kernels": 2}
    assert main([*args, "--kernel-threads", "-1", "--run-dir", str(tmp_path / "bad")]) == 2
    assert "--kernel-threads must be an integer in 0..1024" in capsys.readouterr().err
