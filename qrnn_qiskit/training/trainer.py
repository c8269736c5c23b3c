"""A trainer that is handed its model and task: run directories, atomic checkpoints, exact resume.

``Trainer(model, task, optim, run, run_dir)`` trains any model on any :class:`~.tasks.Task`; it
knows nothing about either beyond the task interface. ``Trainer.from_config`` builds both from a
``TrainConfig`` (what ``qrnn train`` does) and checks the run directory first. While it trains, the
trainer holds the run directory's lock; a kill loses at most the work since the last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..backends import native
from ..errors import QRNNError
from ..models import QRNNCore, count_parameters
from ..models.stability import gain_penalty, loop_report
from . import logs
from .config import OptimConfig, RunConfig, TrainConfig
from .distributed import SINGLE, World
from .optim import learning_rate, make_optimizer, set_learning_rate
from .rundir import CHECKPOINT, RunDir
from .tasks import Task, best_of, make_task


class StopTraining(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a callback to end training after the current evaluation (early stopping,
    pruning); ``reason`` is reported."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrainerCallback:
    """Hooks into :meth:`Trainer.fit` (no-ops here). ``on_evaluation`` sees each evaluation's record
    before it is logged and may add fields to it, or raise :class:`StopTraining`."""

    def on_start(self, trainer: Trainer) -> None:
        """Training is about to start (or continue, after a resume)."""

    def on_step(self, trainer: Trainer, loss: float) -> None:
        """A training step's optimiser update was applied (``trainer.step`` counts it)."""

    def on_evaluation(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """An evaluation at ``record['step']`` finished."""

    def on_end(self, trainer: Trainer, result: RunResult) -> None:
        """Training ended."""


@dataclass
class RunResult:
    """What a finished (or time-limited, or stopped) run reports."""

    run_dir: Path | None
    config: TrainConfig | None
    steps: int
    seconds: float
    parameters: int
    metrics: dict[str, float]
    summary: str
    stopped: str | None = None
    best: dict[str, float] = field(default_factory=dict)
    best_step: int | None = None


def apply_threads(run: RunConfig) -> None:
    """Set torch's CPU threads (``run.threads``, 0: leave torch's default) and the native kernels'
    budget (``run.kernel_threads``; ``None``: as ``run.threads``; 0: the kernels' default,
    ``$QRNN_NATIVE_THREADS`` or torch's threads). The kernels' budget is a number held by their
    runtime (a thread pool, not OpenMP), so this is safe in a forked child."""
    if run.threads:
        torch.set_num_threads(run.threads)
    kernel = run.threads if run.kernel_threads is None else run.kernel_threads
    native.set_threads(kernel or None)


def load_run(
    run_dir: str | os.PathLike | RunDir, checkpoint: str = CHECKPOINT
) -> tuple[TrainConfig, nn.Module, dict[str, Any]]:
    """Rebuild a run's model from its config.json and a checkpoint (evaluation, export, report)."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    config = rd.read_config()
    state = rd.load_checkpoint(checkpoint)
    rd.check_matches(config, _checkpoint_config(rd, state), "load")
    # evaluation, export and reports run on the CPU, wherever the run trained (--device)
    model = make_task(config).build_model(config.replace(device="cpu"))
    _load_weights(model, state, rd)
    return config, model, state


def _checkpoint_config(rd: RunDir, state: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(json.loads(state["config"]))
    except (TypeError, ValueError, QRNNError) as error:
        raise QRNNError(f"{rd.path}: the checkpoint's config is unreadable ({error})") from None


def _load_weights(model: nn.Module, state: dict[str, Any], rd: RunDir) -> None:
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise QRNNError(f"{rd.path}: checkpoint does not fit the model ({first[:200]})") from None


class Trainer:
    """Trains ``model`` on ``task`` with ``optim`` for as long as ``run`` says.

    Args:
        model, task: any ``nn.Module`` and :class:`~.tasks.Task` (the task computes the loss).
        optim, run: the optimiser and run sections of a config.
        run_dir: where metrics and checkpoints go (``None``: nowhere; nothing is written).
        config: the whole config, recorded in config.json and every checkpoint (``from_config``
            passes it; resumes check it).
        resume: continue ``run_dir`` from its checkpoint.
        argv: the command line to record (default ``sys.argv``).
        callbacks: :class:`TrainerCallback` s.
        world: the data-parallel ranks this trainer is one of (``distributed.launch``; default: one
            process). Each rank trains on its shard of every batch; rank 0 alone evaluates, runs
            the callbacks and writes the run directory (``distributed.py``).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        optim: OptimConfig,
        run: RunConfig,
        run_dir: str | os.PathLike | RunDir | None = None,
        *,
        config: TrainConfig | None = None,
        resume: bool = False,
        argv: Sequence[str] | None = None,
        callbacks: Sequence[TrainerCallback] = (),
        world: World = SINGLE,
    ) -> None:
        logs.require(run.log)
        self.world = world
        world.shard(task)
        world.seed(run.seed)
        world.broadcast_parameters(model)
        self.model = model
        self.task = task
        self.optim = optim
        self.run = run
        self.run_dir = (
            run_dir if isinstance(run_dir, RunDir) or run_dir is None else RunDir(run_dir)
        )
        self.config = config
        self.resume = resume
        self.argv = list(argv) if argv is not None else list(sys.argv)
        self.callbacks = list(callbacks)
        self.optimizer = make_optimizer(self.model, optim)
        self.step = 0
        self.best_step: int | None = None  # the evaluation best.pt holds
        self._stale = 0  # evaluations since the validation metric last improved
        self.elapsed = 0.0
        self.best: dict[str, float] = {}
        self.running: float | None = None  # EMA of the training loss, carried across resumes
        self.record: dict[str, Any] | None = None  # the last evaluation's metrics record
        self._restored: tuple | None = None  # (size, mtime) of the checkpoint restored
        self._sink = logs.LogSink()  # --log: where records go besides metrics.jsonl (rank 0)
        if resume:
            if self.run_dir is None:
                raise ValueError("resume=True needs a run directory")
            self._restore()

    # ---------------------------------------------------------------------------------- building
    @classmethod
    def from_config(
        cls,
        config: TrainConfig,
        run_dir: str | os.PathLike | RunDir | None,
        *,
        resume: bool = False,
        argv: Sequence[str] | None = None,
        callbacks: Sequence[TrainerCallback] = (),
        world: World = SINGLE,
    ) -> Trainer:
        """Check the run directory (``None``: train without one), seed, then build the task and its
        model (an invalid model fails here, before anything is written)."""
        rd = run_dir if isinstance(run_dir, RunDir) or run_dir is None else RunDir(run_dir)
        if rd is not None and rd.is_run and not resume:
            raise QRNNError(
                f"run directory {rd.path} already exists; pass --resume to continue it or choose "
                "another --run-dir"
            )
        if resume:
            if rd is None:
                raise QRNNError("resume needs a run directory")
            if not rd.is_run:
                raise QRNNError(
                    f"cannot resume: {rd.path} has no config.json; start a new run without --resume"
                )
            rd.check_matches(config, rd.read_config(), "resume")
        apply_threads(config.run)
        torch.manual_seed(config.run.seed)
        task = make_task(config)
        every = config.qrnn.forget_every
        if every and task.horizon and every > task.horizon:
            raise QRNNError(
                f"--forget-every {every} is longer than {config.task.name}'s sequences "
                f"({task.horizon} steps): the reset would never happen; pass --forget-every "
                f"{task.horizon} or less, or drop it"
            )
        try:
            model = task.build_model(config)
        except (MemoryError, RuntimeError, ValueError, OverflowError) as error:
            text = _allocation_failure(error)
            if text is None:
                raise
            raise QRNNError(
                f"the model does not fit in memory ({text}); use a smaller --width, --hidden, "
                "--embed-dim or --qubits"
            ) from None
        return cls(
            model, task, config.optim, config.run, rd, config=config, resume=resume, argv=argv,
            callbacks=callbacks, world=world,
        )  # fmt: skip

    # ---------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs (with several ranks: each rank's own part gathered,
        so every rank must call it)."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "best": self.best,
            "best_step": self.best_step,
            "stale": self._stale,
            "running": self.running,
            "record": self.record,
            "torch_rng": torch.get_rng_state(),
            "config": json.dumps(self.config.to_dict() if self.config else {}, sort_keys=True),
            "task": self.task.state_dict(),
        }
        own = {"torch_rng": state["torch_rng"]}
        if self.task.per_row_state:
            own["task"] = state["task"]
        ranks = self.world.gather(own)
        if ranks is not None:
            state["ranks"] = ranks
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (one-line errors when it does not fit)."""
        rd = self.run_dir or RunDir(".")
        _load_weights(self.model, state, rd)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise QRNNError(
                f"cannot resume {rd.path}: the optimiser state does not fit ({error})"
            ) from None
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.best = dict(state.get("best", {}))
        self.best_step = state.get("best_step")
        self._stale = int(state.get("stale", 0))
        self.running = state.get("running")
        self.record = state.get("record")
        task_state, rng = self.world.rank_state(state, self.task.per_row_state)
        if rng is not None:
            torch.set_rng_state(rng)
        self.task.load_state_dict(task_state)

    def _restore(self) -> None:
        """Resume: load the checkpoint (checked against the config) before anything is written."""
        rd = self.run_dir
        if not rd.has_checkpoint():
            logged = rd.read_metrics(quiet=True)
            if logged:
                raise QRNNError(
                    f"cannot resume {rd.path}: {CHECKPOINT} is missing but metrics.jsonl records "
                    f"{len(logged)} evaluation(s) up to step {logged[-1]['step']}; restore the "
                    "checkpoint, or start a new run in another --run-dir"
                )
            return  # killed before its first checkpoint: nothing to continue, nothing to lose
        signature = _signature(rd.file(CHECKPOINT))
        state = rd.load_checkpoint()
        if self.config is not None:
            rd.check_matches(self.config, _checkpoint_config(rd, state), "resume")
        self.load_state_dict(state)
        self._restored = signature
        if self.step > self.optim.steps:
            raise QRNNError(
                f"cannot resume {rd.path}: it is at step {self.step}, past --steps "
                f"{self.optim.steps}; pass --steps {self.step} or more (nothing was written)"
            )

    # ---------------------------------------------------------------------------------- training
    def validate(self) -> dict[str, float]:
        """Metrics on the task's validation set."""
        return self.task.evaluate(self.model, "val")

    def loop_report(self) -> dict[str, float]:
        """The QRNN's loop gain and scrambling monitor (:func:`~qrnn_qiskit.models.stability.
        loop_report`) on up to 64 samples of the first validation batch; empty for models without
        a QRNN core or with ``--no-monitor``."""
        if not self.run.monitor or not isinstance(getattr(self.model, "core", None), QRNNCore):
            return {}
        x, _ = next(iter(self.task.batches("val")))
        with torch.random.fork_rng(devices=[]):  # the training's random stream is untouched
            report = loop_report(self.model, x[:64])
        return {k: round(v, 6) for k, v in report.items()}

    def _validate(self) -> dict[str, float]:
        """:meth:`validate` on rank 0, its metrics on every rank (the ranks hold equal
        parameters)."""
        return self.world.from_writer(self.validate() if self.world.is_writer else None)

    def _commit(self, record: dict[str, Any], metrics: dict[str, float], best: bool) -> None:
        """The evaluation's metrics record and checkpoint.pt (and best.pt when this evaluation is
        the best so far), together or not at all (:meth:`RunDir.commit`); then the --log sink."""
        if self.run_dir is not None:
            state = self.state_dict()  # on every rank (each gathers its own part)
            if not self.world.is_writer:
                return
            self.run_dir.commit(record, state, best)
            self._sink.write(record, metrics)

    def fit(self) -> RunResult:
        """Train until ``optim.steps`` or ``run.max_minutes``; evaluate, log and checkpoint on the
        way (holding the run directory's lock). A new run that fails before its first checkpoint
        leaves no folder behind (only the config.json it wrote would be there)."""
        if self.run_dir is None:
            return self._fit_or_explain()
        created = not self.run_dir.path.exists()
        try:
            return self._fit_in_run_dir()
        except (Exception, KeyboardInterrupt):
            if created and self.world.is_writer:
                with contextlib.suppress(OSError):
                    self.run_dir.path.rmdir()  # only when remove_unstarted emptied it
            raise

    def _fit_or_explain(self) -> RunResult:
        """:meth:`_fit`, with running out of memory as a one-line error naming the sizes to
        lower."""
        try:
            return self._fit()
        except (MemoryError, RuntimeError, ValueError, OverflowError) as error:
            text = _allocation_failure(error)
            if text is None:
                raise
            raise QRNNError(
                f"out of memory at step {self.step} ({text}); pass a smaller --batch-size "
                f"(now {self.optim.batch_size}) or --eval-size (now {self.run.eval_size})"
            ) from None

    def _fit_in_run_dir(self) -> RunResult:
        self.world.barrier()  # every rank has checked the run directory before rank 0 writes it
        writer = self.world.is_writer
        with self.run_dir.lock() if writer else contextlib.nullcontext():
            # a new run's config.json is written below: if the run fails before its first
            # checkpoint, it leaves nothing behind (the same command would refuse: already exists)
            fresh = writer and not self.resume and self.config is not None
            fresh = fresh and not self.run_dir.is_run
            try:
                return self._fit_locked(writer)
            except (Exception, KeyboardInterrupt):
                if fresh:
                    self.run_dir.remove_unstarted()
                raise

    def _fit_locked(self, writer: bool) -> RunResult:
        if self.resume and writer:
            if _signature(self.run_dir.file(CHECKPOINT)) != self._restored:
                self._restore()  # another process wrote it after this trainer was built
            self.run_dir.truncate_metrics(self.step)
            self._log_restored_record()
        if self.config is not None and writer:
            threads = {"torch": torch.get_num_threads(), "kernels": native.max_threads()}
            self.run_dir.write_config(self.config, self.argv, resume=self.resume, threads=threads)
            record = getattr(getattr(self.model, "core", None), "noise_record", None)
            if record is not None:  # --model mqrnn --train-noise: what the channels were built of
                self.run_dir.write_train_noise(record)
        self.world.barrier()  # rank 0 holds the lock: the checkpoint is final for every rank
        if self.resume and not writer:
            if _signature(self.run_dir.file(CHECKPOINT)) != self._restored:
                self._restore()
        if writer:
            self._sink = logs.open_sink(
                self.run.log, self.run_dir.path, self.step if self.resume else None
            )
        try:
            return self._fit_or_explain()
        finally:
            self._sink.close()
            self._sink = logs.LogSink()

    def _fit(self) -> RunResult:
        optim, run = self.optim, self.run
        limit = run.max_minutes * 60 if run.max_minutes else float("inf")
        self.model.train()
        callbacks = self.callbacks if self.world.is_writer else []
        for callback in callbacks:
            callback.on_start(self)
        name = self.config and f"{self.config.task.name}/{self.config.model.kind}"
        bar = tqdm(
            total=optim.steps, initial=self.step, desc=name or self.task.name, dynamic_ncols=True,
            file=sys.stderr, disable=not (run.progress and self.world.is_writer),
        )  # fmt: skip
        metrics: dict[str, float] | None = None
        evaluated_at, stopped = None, None
        try:
            while self.step < optim.steps and self.elapsed < limit and stopped is None:
                started = time.perf_counter()
                set_learning_rate(self.optimizer, learning_rate(optim, self.step))
                loss = self.task.train_loss(self.model, self.step)
                if optim.gain_penalty:
                    loss = loss + optim.gain_penalty * gain_penalty(self.model)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                value = self.world.reduce_gradients(self.model, loss)  # the global batch's loss
                if not math.isfinite(value):
                    raise QRNNError(
                        f"training diverged at step {self.step} (loss {value}); lower --lr or set "
                        "--clip"
                    )
                if optim.clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), optim.clip)
                self.optimizer.step()
                self.step += 1
                # on every rank: constraints on the weights must keep the ranks in lockstep
                for callback in self.callbacks:
                    callback.on_step(self, value)
                self.elapsed = self.world.agree(self.elapsed + time.perf_counter() - started)
                self.running = value if self.running is None else 0.95 * self.running + 0.05 * value
                bar.update(1)
                bar.set_postfix(loss=f"{self.running:.4f}", refresh=False)
                last = self.step == optim.steps or self.elapsed >= limit
                if self.step % run.eval_every == 0 or last:
                    metrics, evaluated_at = self._validate(), self.step
                    stopped = self._after_evaluation(metrics)
                    bar.set_postfix(
                        loss=f"{self.running:.4f}",
                        **{f"val_{k}": f"{v:.4f}" for k, v in metrics.items()},
                    )
        finally:
            bar.close()
        if evaluated_at != self.step or metrics is None:  # unless the loop just evaluated it
            metrics = self._validate()
        result = RunResult(
            self.run_dir.path if self.run_dir else None, self.config, self.step, self.elapsed,
            count_parameters(self.model), metrics, self.task.describe(metrics), stopped,
            dict(self.best), self.best_step,
        )  # fmt: skip
        for callback in callbacks:
            callback.on_end(self, result)
        return result

    def _after_evaluation(self, metrics: dict[str, float]) -> str | None:
        """Track the best values (best.pt follows the task's report metric), let callbacks see (and
        extend) the record, log it, checkpoint; returns why training stops (--patience, or a
        callback), if it does."""
        metric = self.task.report_metric
        improved = metric in metrics and (
            metric not in self.best
            or best_of(metric, metrics[metric], self.best[metric]) != self.best[metric]
        )
        self.best = {k: best_of(k, v, self.best.get(k, v)) for k, v in metrics.items()}
        if improved:
            self.best_step, self._stale = self.step, 0
        else:
            self._stale += 1
        record = {
            "step": self.step,
            "seconds": round(self.elapsed, 3),
            "train_loss": self.running,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        record.update(metrics)
        if self.world.is_writer:
            record.update(self.loop_report())
        stopped = None
        if self.run.patience is not None and self._stale >= self.run.patience:
            stopped = (
                f"no better validation {metric} in {self._stale} evaluations (--patience "
                f"{self.run.patience}); best at step {self.best_step}"
            )
        if self.world.is_writer:
            for callback in self.callbacks:
                try:
                    callback.on_evaluation(self, record)
                except StopTraining as stop:
                    stopped = stop.reason
        stopped = self.world.from_writer(stopped)  # rank 0's callbacks decide for every rank
        self.record = record
        self._commit(record, metrics, best=improved)
        return stopped

    def _log_restored_record(self) -> None:
        """Resume: log the checkpoint's own evaluation record if a kill came between the checkpoint
        and its metrics line."""
        record = self.record
        if isinstance(record, dict) and record.get("step") == self.step:
            if all(r.get("step") != self.step for r in self.run_dir.read_metrics(quiet=True)):
                self.run_dir.append_metrics(record)


def _allocation_failure(error: BaseException) -> str | None:
    """The first line of ``error`` when it says that memory could not be allocated (NumPy's
    MemoryError, torch's CPU allocator or CUDA out of memory, an array too large to index), else
    None."""
    if isinstance(error, QRNNError):
        return None
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if "DefaultCPUAllocator: " in text:  # "[enforce fail at alloc_cpu.cpp:127] err == 0. ..."
        text = text[text.index("DefaultCPUAllocator: ") :].split(" Error code")[0]
    oom = isinstance(error, (MemoryError, OverflowError)) or isinstance(
        error, getattr(torch, "OutOfMemoryError", MemoryError)
    )
    known = ("can't allocate", "out of memory", "Maximum allowed dimension exceeded",
             "array is too big", "maximum possible size")  # fmt: skip
    return text[:120] if oom or any(s in text for s in known) else None


def _signature(path: Path) -> tuple | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def read_metrics(run_dir: str | os.PathLike | RunDir) -> list[dict[str, Any]]:
    """The run's evaluation records (empty when it has none yet; torn lines skipped)."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    return rd.read_metrics()
