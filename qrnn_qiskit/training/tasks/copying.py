"""Copying memory (docs/data.md): remember 10 symbols across T blanks; batches are a pure function
of (seed, step), so runs resume exactly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from ...data.copying import (
    N_CLASSES,
    N_RECALL,
    VOCAB,
    copying_batch,
    copying_length,
    memoryless_baseline,
)
from ...models import InputSpec, SequenceModel
from .base import Batch, Task, build_for_task

if TYPE_CHECKING:
    from ..config import TrainConfig

EVAL_BATCH = 256


class CopyingTask(Task):
    """Metrics: ``accuracy`` over the 10 recalled symbols (what this project reports) and
    ``all_position_accuracy`` over every position, blanks included (what the expRNN reference code
    computes; blanks dominate it)."""

    name = "copying"
    report_metric = "accuracy"
    report_also = ("all_position_accuracy",)
    val_metrics = ("loss", "accuracy", "all_position_accuracy")

    def __init__(self, config: TrainConfig) -> None:
        self.delay = config.task.delay
        self.batch_size = config.optim.batch_size
        self.seed = config.run.seed
        self.eval_size = config.run.eval_size
        self.baseline = memoryless_baseline(self.delay)
        self.horizon = copying_length(self.delay)

    chrono_default = True  # an LSTM with PyTorch's default init sits at the memoryless loss here

    def build_model(self, config: TrainConfig) -> SequenceModel:
        inputs = InputSpec(vocab=VOCAB, embed_dim=config.model.embed_dim)
        return build_for_task(config, inputs, N_CLASSES, "all", self)

    def train_batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, 1, step])
        x, y = copying_batch(rng, self.batch_size, self.delay)
        return torch.from_numpy(x), torch.from_numpy(y)

    def batches(self, split: str) -> Iterator[Batch]:
        self.check_split(split)
        rng = np.random.default_rng([self.seed, 2])
        remaining = self.eval_size
        while remaining > 0:
            size = min(remaining, EVAL_BATCH)
            x, y = copying_batch(rng, size, self.delay)
            remaining -= size
            yield torch.from_numpy(x), torch.from_numpy(y)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        predicted = outputs.argmax(-1)
        recalled = predicted[:, -N_RECALL:] == targets[:, -N_RECALL:]
        return {
            "loss": float(self.loss(outputs, targets)),
            "accuracy": float(recalled.float().mean()),
            "all_position_accuracy": float((predicted == targets).float().mean()),
        }

    def describe(self, metrics: dict[str, float]) -> str:
        text = (
            f"recalled-symbol accuracy {metrics['accuracy']:.2%} (chance 12.50%), "
            f"loss {metrics['loss']:.4f} vs memoryless baseline {self.baseline:.4f} "
            f"({metrics['loss'] / self.baseline:.2f}× baseline)"
        )
        if "all_position_accuracy" in metrics:
            text += f", all-position accuracy {metrics['all_position_accuracy']:.2%}"
        return text
