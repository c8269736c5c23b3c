"""Training: the nested run configuration (``config``), tasks and their registry (``tasks``), the
run directory (``rundir``) and a trainer handed its model and task (``trainer``).

The configs load with the package; the rest, which needs torch, on first use of its names (so the
CLI's parser imports no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import (
    BaselineConfig,
    EngineConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)
from .tasks.config import TaskConfig

if TYPE_CHECKING:
    from .rundir import RunDir, safe_name
    from .tasks import TASKS, Task, make_task, steps_for_epochs
    from .trainer import RunResult, StopTraining, Trainer, TrainerCallback, load_run, read_metrics

_RUNDIR = ("RunDir", "safe_name")
_TASKS = ("TASKS", "Task", "make_task", "steps_for_epochs")
_TRAINER = ("RunResult", "StopTraining", "Trainer", "TrainerCallback", "load_run", "read_metrics")


def __getattr__(name: str) -> Any:
    """The torch half of the package, imported when first asked for."""
    if name in _RUNDIR:
        from . import rundir as module
    elif name in _TASKS:
        from . import tasks as module
    elif name in _TRAINER:
        from . import trainer as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "TASKS",
    "BaselineConfig",
    "EngineConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "RunDir",
    "RunResult",
    "StopTraining",
    "Task",
    "TaskConfig",
    "TrainConfig",
    "Trainer",
    "TrainerCallback",
    "load_run",
    "make_task",
    "read_metrics",
    "safe_name",
    "steps_for_epochs",
]
