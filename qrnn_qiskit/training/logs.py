"""Logs for ML tools beside metrics.jsonl (``--log``), which stays the source of truth: a sink
receives every evaluation record after the callbacks have extended it and after it was appended to
metrics.jsonl, so a sink never holds what metrics.jsonl lacks.

``--log tensorboard`` writes TensorBoard event files into the run directory itself, so
``tensorboard --logdir runs/`` (or a sweep's folder) lists each run under its directory name. Tags:
``train/loss`` (the running loss), ``train/lr``, ``time/seconds``, ``val/<metric>`` for every
validation metric and, under their own names, every other numeric field of the record (such as a
loop gain a callback adds; nested dicts as ``name/key``). A resume hides the events after the
checkpoint's step (TensorBoard's ``purge_step``), as metrics.jsonl drops those records.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import QRNNError

RENAMED = {"train_loss": "train/loss", "lr": "train/lr", "seconds": "time/seconds"}
INSTALL = "pip install 'qrnn-qiskit[tensorboard]' (or: pip install tensorboard)"


class LogSink:
    """Where evaluation records go besides metrics.jsonl (this one: nowhere)."""

    def write(self, record: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """One evaluation record (``metrics``: its validation metrics)."""

    def close(self) -> None:
        """Flush and release files."""


def scalars(record: Mapping[str, Any], metrics: Mapping[str, float]) -> Iterator[tuple[str, float]]:
    """(tag, value) of every numeric field of ``record`` but the step (module docstring)."""
    for key, value in record.items():
        if key == "step":
            continue
        tag = f"val/{key}" if key in metrics else RENAMED.get(key, key)
        yield from _numbers(tag, value)


def _numbers(tag: str, value: Any) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        yield tag, float(value)
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _numbers(f"{tag}/{key}", inner)


def summary_writer_class() -> type:
    """TensorBoard's ``SummaryWriter`` (torch's), or a one-line error naming the install."""
    try:
        import tensorboard  # noqa: F401 - torch.utils.tensorboard needs the package itself
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise QRNNError(f"--log tensorboard needs the tensorboard package: {INSTALL}") from None
    return SummaryWriter


class TensorBoardSink(LogSink):
    """Event files in ``folder``; ``resume_step``: the step a resumed run continues from (events
    after it, written before the kill, are hidden)."""

    def __init__(self, folder: Path, resume_step: int | None = None) -> None:
        writer = summary_writer_class()
        purge = resume_step + 1 if resume_step is not None else None
        self.writer = writer(log_dir=str(folder), purge_step=purge)

    def write(self, record: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        step = int(record["step"])
        for tag, value in scalars(record, metrics):
            if math.isfinite(value):
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def require(kind: str) -> None:
    """Fail before training when ``--log kind`` cannot be written (a missing optional package)."""
    if kind == "tensorboard":
        summary_writer_class()


def open_sink(kind: str, folder: Path, resume_step: int | None = None) -> LogSink:
    """The sink of ``--log kind`` writing into the run directory ``folder``."""
    if kind == "tensorboard":
        return TensorBoardSink(folder, resume_step)
    return LogSink()
