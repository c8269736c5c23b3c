"""Training: run configuration, task registry and a model-agnostic trainer."""

from .config import TrainConfig
from .tasks import TASKS, make_task
from .trainer import RunResult, Trainer, load_run, read_metrics

__all__ = ["TASKS", "RunResult", "TrainConfig", "Trainer", "load_run", "make_task", "read_metrics"]
