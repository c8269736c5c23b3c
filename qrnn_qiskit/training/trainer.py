"""A model-agnostic trainer with run directories, atomic checkpoints and exact resume."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import QRNNError
from ..fileio import atomic_write_bytes, atomic_write_json
from ..models import SequenceModel, count_parameters
from .config import TrainConfig
from .tasks import Task, make_task

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
HIGHER_IS_BETTER = ("accuracy", "bleu")  # every other metric (loss, ppl, bpc) is better when lower


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); malformed files are a clear error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise QRNNError(
            f"no checkpoint at {path}; train first with 'qrnn train ... --run-dir {path.parent}'"
        ) from None
    except Exception as exc:  # pickle/zip errors carry long messages; keep the first line
        raise QRNNError(
            f"{path} is not a readable checkpoint ({str(exc).splitlines()[0][:200]})"
        ) from None
    missing = (
        {"model", "optimizer", "step", "config"} - set(state)
        if isinstance(state, dict)
        else {"everything"}
    )
    if missing:
        raise QRNNError(
            f"{path} is not a qrnn-qiskit checkpoint (missing {', '.join(sorted(missing))})"
        )
    return state


@dataclass
class RunResult:
    """What a finished (or time-limited) run reports."""

    run_dir: Path
    config: TrainConfig
    steps: int
    seconds: float
    parameters: int
    metrics: dict[str, float]
    summary: str


def load_run(run_dir: str | Path) -> tuple[TrainConfig, SequenceModel, dict[str, Any]]:
    """Rebuild a run's model from its config.json and checkpoint (evaluation, export, resume)."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG
    if not config_path.exists():
        raise QRNNError(f"{run_dir} is not a run directory (no {CONFIG})")
    try:
        config = TrainConfig.from_dict(json.loads(config_path.read_text())["config"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise QRNNError(f"{config_path} is malformed ({exc})") from None
    state = load_checkpoint(run_dir / CHECKPOINT)
    if state["config"] != json.dumps(config.to_dict(), sort_keys=True):
        saved = TrainConfig.from_dict(json.loads(state["config"]))
        if config.differences(saved):
            raise QRNNError(
                f"{run_dir}: checkpoint was written by another config "
                f"({', '.join(config.differences(saved))})"
            )
    model = make_task(config).build_model(config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise QRNNError(
            f"{run_dir}: checkpoint does not fit the model ({str(exc).splitlines()[0]})"
        ) from None
    return config, model, state


class Trainer:
    """Trains any ``SequenceModel`` on any ``Task``; knows nothing about either beyond their
    interfaces."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        argv: Sequence[str] | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.argv = list(argv) if argv is not None else list(sys.argv)
        self._check_run_dir()
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.task: Task = make_task(config)
        self.model = self.task.build_model(
            config
        )  # invalid models fail here, before anything is written
        self._write_config()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.step = 0
        self.elapsed = 0.0
        self.best: dict[str, float] = {}
        if resume and (self.run_dir / CHECKPOINT).exists():
            self._restore(load_checkpoint(self.run_dir / CHECKPOINT))

    def _check_run_dir(self) -> None:
        config_path = self.run_dir / CONFIG
        if config_path.exists() and not self.resume:
            raise QRNNError(
                f"run directory {self.run_dir} already exists; pass --resume to continue it or "
                "choose another --run-dir"
            )
        if self.resume:
            if not config_path.exists():
                raise QRNNError(
                    f"cannot resume: {self.run_dir} has no {CONFIG}; start a new run without "
                    "--resume"
                )
            saved = TrainConfig.from_dict(json.loads(config_path.read_text())["config"])
            diff = self.config.differences(saved)
            if diff:
                raise QRNNError(
                    f"cannot resume {self.run_dir}: its config differs in {', '.join(diff)}; use "
                    "the same flags or a new --run-dir"
                )

    def _write_config(self) -> None:
        """config.json: the full config and the command line (a resume keeps the first and appends
        its own)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / CONFIG
        record = {"config": self.config.to_dict(), "argv": self.argv, "torch": torch.__version__}
        if self.resume and path.exists():
            previous = json.loads(path.read_text())
            record["argv"] = previous.get("argv", self.argv)
            record["resumes"] = previous.get("resumes", []) + [self.argv]
        atomic_write_json(path, record)

    def _restore(self, state: dict[str, Any]) -> None:
        saved = TrainConfig.from_dict(json.loads(state["config"]))
        diff = self.config.differences(saved)
        if diff:
            raise QRNNError(
                f"cannot resume {self.run_dir}: the checkpoint was written by another config "
                f"({', '.join(diff)})"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise QRNNError(
                f"cannot resume {self.run_dir}: checkpoint does not fit the model "
                f"({str(exc).splitlines()[0]})"
            ) from None
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.best = dict(state.get("best", {}))
        torch.set_rng_state(state["torch_rng"])
        if "task" in state and hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(state["task"])

    def _checkpoint(self) -> None:
        save_checkpoint(
            self.run_dir / CHECKPOINT,
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "elapsed": self.elapsed,
                "best": self.best,
                "torch_rng": torch.get_rng_state(),
                "config": json.dumps(self.config.to_dict(), sort_keys=True),
                **({"task": self.task.state_dict()} if hasattr(self.task, "state_dict") else {}),
            },
        )

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Metrics on the task's fixed evaluation set (averaged over its batches, weighted by
        size)."""
        self.model.eval()
        totals: dict[str, float] = {}
        count = 0
        custom = getattr(self.task, "evaluate", None)
        if (
            custom is not None
        ):  # stateful tasks evaluate themselves (carried LM state, decoding for BLEU)
            metrics = custom(self.model, "val")
            self.model.train()
            return metrics
        for x, y in self.task.eval_batches():
            metrics = self.task.metrics(self.model(x), y)
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value * len(x)
            count += len(x)
        self.model.train()
        return {key: value / count for key, value in totals.items()}

    def _train_loss(self) -> torch.Tensor:
        """The loss of training step ``self.step``: the task's own ``train_loss(model, step)`` when
        it has one (tasks that carry state between steps or feed the model more than one tensor),
        else ``task.loss(model(x), y)`` on ``task.train_batch(step)``."""
        custom = getattr(self.task, "train_loss", None)
        if custom is not None:
            return custom(self.model, self.step)
        x, y = self.task.train_batch(self.step)
        return self.task.loss(self.model(x), y)

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / METRICS, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def fit(self) -> RunResult:
        """Train until ``config.steps`` or ``config.max_minutes``; evaluate, log and checkpoint on
        the way."""
        cfg = self.config
        limit = cfg.max_minutes * 60 if cfg.max_minutes else float("inf")
        self.model.train()
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not cfg.progress,
            desc=f"{cfg.task}/{cfg.model}",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        running = None
        metrics, evaluated_at = None, None
        while self.step < cfg.steps and self.elapsed < limit:
            started = time.perf_counter()
            loss = self._train_loss()
            if not torch.isfinite(loss):
                raise QRNNError(
                    f"training diverged at step {self.step} (loss {loss.item()}); lower --lr or "
                    "set --clip"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
            self.optimizer.step()
            self.step += 1
            self.elapsed += time.perf_counter() - started
            value = loss.item()
            running = value if running is None else 0.95 * running + 0.05 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps or self.elapsed >= limit:
                metrics, evaluated_at = self.evaluate(), self.step
                self.best = {
                    k: max(v, self.best.get(k, v))
                    if k in HIGHER_IS_BETTER
                    else min(v, self.best.get(k, v))
                    for k, v in metrics.items()
                }
                self._log(
                    {
                        "step": self.step,
                        "seconds": round(self.elapsed, 3),
                        "train_loss": running,
                        **metrics,
                    }
                )
                bar.set_postfix(
                    loss=f"{running:.4f}", **{f"val_{k}": f"{v:.4f}" for k, v in metrics.items()}
                )
                self._checkpoint()
        bar.close()
        if evaluated_at != self.step:  # unless the loop has just evaluated this very model
            metrics = self.evaluate()
        return RunResult(
            self.run_dir,
            cfg,
            self.step,
            self.elapsed,
            count_parameters(self.model),
            metrics,
            self.task.describe(metrics),
        )


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's metrics.jsonl records (empty when it has none yet)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
