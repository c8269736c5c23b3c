"""Tasks: the options tasks own (``config``), the base class (``base``), one module per task family
and the registry (``registry``).

``TaskConfig`` and ``TASK_NAMES`` load with the package; the rest, which needs torch, on first use
of its names (so the CLI's parser imports no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import TASK_NAMES, TaskConfig

if TYPE_CHECKING:
    from .base import HIGHER_IS_BETTER, Batch, Task, best_of, higher_is_better
    from .registry import TASKS, make_task, steps_for_epochs

_BASE = ("HIGHER_IS_BETTER", "Batch", "Task", "best_of", "higher_is_better")
_REGISTRY = ("TASKS", "make_task", "steps_for_epochs")


def __getattr__(name: str) -> Any:
    """The torch half of the package, imported when first asked for."""
    if name in _BASE:
        from . import base as module
    elif name in _REGISTRY:
        from . import registry as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "HIGHER_IS_BETTER",
    "TASKS",
    "TASK_NAMES",
    "Batch",
    "Task",
    "TaskConfig",
    "best_of",
    "higher_is_better",
    "make_task",
    "steps_for_epochs",
]
