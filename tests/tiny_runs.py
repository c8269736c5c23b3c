"""Tiny trained runs the hardware-pipeline tests evaluate (one definition instead of a copy per
test module)."""

from __future__ import annotations

from pathlib import Path

from qrnn_qiskit.training import TrainConfig, Trainer

# a 3-qubit QRNN briefly trained on copying memory with delay 1: sequences of 21 steps
TINY_QRNN = dict(
    task="copying", model="qrnn", delay=1, qubits=3, layers=1, width=16, steps=3, eval_every=3,
    eval_size=16, batch_size=8, progress=False, threads=1,
)  # fmt: skip


def train_tiny_qrnn(path: Path, **overrides) -> Path:
    """Train :data:`TINY_QRNN` (with ``overrides``, by ``qrnn train`` option name) into ``path``."""
    Trainer.from_config(TrainConfig.flat(**(TINY_QRNN | overrides)), path, argv=["test"]).fit()
    return path


def quiet(_: str) -> None:
    """A ``log`` callback that prints nothing."""
