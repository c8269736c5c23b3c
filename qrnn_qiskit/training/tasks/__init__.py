"""Tasks: the base class and the options tasks own (``base``), one module per task family and the
registry (``registry``)."""

from .base import HIGHER_IS_BETTER, Batch, Task, TaskConfig, best_of, higher_is_better
from .registry import TASKS, make_task, steps_for_epochs

__all__ = [
    "HIGHER_IS_BETTER",
    "TASKS",
    "Batch",
    "Task",
    "TaskConfig",
    "best_of",
    "higher_is_better",
    "make_task",
    "steps_for_epochs",
]
