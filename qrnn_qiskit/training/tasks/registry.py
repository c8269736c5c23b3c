"""The one registry of tasks: name → factory of a :class:`~.base.Task` from a ``TrainConfig``.

Nothing imports back from here except the trainer (the config validates ``--task`` against
``config.TASK_NAMES``, which lists these names without importing the tasks); task modules import
only ``base``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import QRNNError
from .base import Task
from .classification import IMDBTask, MNISTTask
from .config import TASK_NAMES
from .copying import CopyingTask
from .language import LanguageModelTask
from .translation import TranslationTask

if TYPE_CHECKING:
    from ..config import TrainConfig

TaskFactory = Callable[["TrainConfig"], Task]

TASKS: dict[str, TaskFactory] = {
    "copying": CopyingTask,
    "smnist": lambda config: MNISTTask(config, name="smnist", mode="pixels"),
    "smnist-rows": lambda config: MNISTTask(config, name="smnist-rows", mode="rows"),
    "pmnist": lambda config: MNISTTask(config, name="pmnist", mode="pixels", permuted=True),
    "imdb": IMDBTask,
    "ptb-word": lambda config: LanguageModelTask(config, name="ptb-word", level="word"),
    "ptb-char": lambda config: LanguageModelTask(config, name="ptb-char", level="char"),
    "mt-de-en": lambda config: TranslationTask(config, source="de", target="en"),
}
if tuple(TASKS) != TASK_NAMES:  # the config validates --task against the light list
    raise AssertionError(f"config.TASK_NAMES {TASK_NAMES} differs from the registry {tuple(TASKS)}")

# the validation metrics of each task, known without building it (a sweep's [study] metric is
# checked before any data is loaded)
VAL_METRICS: dict[str, tuple[str, ...]] = {
    "copying": CopyingTask.val_metrics,
    "smnist": MNISTTask.val_metrics,
    "smnist-rows": MNISTTask.val_metrics,
    "pmnist": MNISTTask.val_metrics,
    "imdb": IMDBTask.val_metrics,
    "ptb-word": ("loss", "ppl"),
    "ptb-char": ("loss", "bpc"),
    "mt-de-en": TranslationTask.val_metrics,
}


def make_task(config: TrainConfig) -> Task:
    """The task ``config.task.name`` built from ``config``."""
    return TASKS[config.task.name](config)


def steps_for_epochs(config: TrainConfig, epochs: float) -> int:
    """Training steps that make ``epochs`` passes over the task's training split (``--epochs``)."""
    if not math.isfinite(epochs) or epochs <= 0:
        raise QRNNError(f"--epochs must be a finite number > 0, got {epochs}")
    per_epoch = make_task(config).steps_per_epoch
    if per_epoch is None:
        raise QRNNError(
            f"--epochs needs a task with a fixed training set; {config.task.name} generates its "
            "data (use --steps)"
        )
    return max(1, math.ceil(epochs * per_epoch))
