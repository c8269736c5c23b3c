"""Training: the nested run configuration (``config``), tasks and their registry (``tasks``), the
run directory (``rundir``) and a trainer handed its model and task (``trainer``)."""

from .config import (
    BaselineConfig,
    EngineConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)
from .rundir import RunDir, safe_name
from .tasks import TASKS, Task, TaskConfig, make_task, steps_for_epochs
from .trainer import RunResult, StopTraining, Trainer, TrainerCallback, load_run, read_metrics

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
