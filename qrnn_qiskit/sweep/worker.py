"""A sweep worker: trials of one Optuna study, each a normal ``qrnn train`` run directory.

``qrnn sweep FILE`` is one worker; the same command in another shell (or on another machine, with
a shared ``--storage``) is another. Each worker, until the study has its trials:

1. lets Optuna fail the trials of workers that stopped sending heartbeats (kill -9) and queue a
   retry of each (same parameters, the intermediate values so far);
2. takes a queued retry, or a new trial from the sampler (grid: trial k is grid point k, so workers
   never duplicate a point), unless every trial of the budget has started: then it waits for the
   running ones (one may turn out to be killed and come back as a retry) and returns when the study
   is finished;
3. trains the trial in ``ROOT/trial-NNNN`` (a retry of trial k resumes ``trial-k`` from its last
   checkpoint: batches are pure functions of the seed and step, so the retried trial ends exactly
   where the killed one would have), reporting every evaluation's validation metric to Optuna;
   the pruner may stop it (``StopTraining``, after its checkpoint);
4. records the trial's value: the best validation metric over its evaluations (what best.pt
   holds and ``qrnn report`` shows), its final metrics and run directory as user attributes. A
   trial whose training fails (diverged, say) is recorded as failed with its one-line reason.

The study remembers what it is of (task, metric, direction, the shared options and the space); a
worker with another sweep file under the same study name is refused.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QRNNError
from ..fileio import make_folder
from ..training import RunDir, StopTraining, Trainer, TrainerCallback
from ..training.tasks import higher_is_better, make_task
from .space import Sweep
from .storage import creation_lock, open_storage, require_optuna

POLL_SECONDS = 2.0  # how often a worker that waits for running trials looks again
ATTRS = ("qrnn_task", "qrnn_metric", "qrnn_sweep")


def frozen(trial: Any) -> Any:
    """The stored state of a running trial (its system attributes, inherited values)."""
    return trial.storage.get_trial(trial._trial_id)


def trial_dir(root: Path, number: int) -> Path:
    return root / f"trial-{number:04d}"


def objective_metric(sweep: Sweep) -> str:
    """The sweep's metric: ``[study] metric`` (one of the task's validation metrics, else a
    one-line error before any trial) or the task's validation metric."""
    from ..training.tasks.registry import VAL_METRICS

    if sweep.metric is not None:
        known = VAL_METRICS[sweep.base.task.name]
        if sweep.metric not in known:
            raise QRNNError(
                f"sweep {sweep.path}: [study] metric: {sweep.metric!r} is not a validation metric "
                f"of task {sweep.base.task.name} (it has {', '.join(known)}); use one of them"
            )
        return sweep.metric
    return make_task(sweep.base).report_metric


def open_study(sweep: Sweep, url: str, name: str):
    """Create the study (first worker) or load it (the others), checking that it is a study of
    this sweep: same task, metric and direction, same shared options and space."""
    optuna = require_optuna()
    storage = open_storage(url, heartbeat=sweep.heartbeat_seconds, grace=sweep.grace_seconds)
    metric = objective_metric(sweep)
    direction = "maximize" if higher_is_better(metric) else "minimize"
    mine = {
        "qrnn_task": sweep.base.task.name,
        "qrnn_metric": metric,
        "qrnn_sweep": sweep.identity(),
    }
    with creation_lock(url):
        study = optuna.create_study(
            storage=storage, study_name=name, direction=direction, load_if_exists=True,
            sampler=make_sampler(sweep), pruner=make_pruner(sweep),
        )  # fmt: skip
        attrs = study.user_attrs
        if not attrs and not study.trials:
            for key, value in mine.items():
                study.set_user_attr(key, value)
            attrs = mine
    theirs = {key: attrs.get(key) for key in ATTRS}
    if theirs["qrnn_task"] != mine["qrnn_task"]:
        raise QRNNError(
            f"study {name!r} in {url} is a study of task {theirs['qrnn_task']!r}, not "
            f"{mine['qrnn_task']!r}; use another --study name"
        )
    if theirs["qrnn_metric"] != metric or study.direction.name.lower() != direction:
        raise QRNNError(
            f"study {name!r} optimises {theirs['qrnn_metric']!r} ({study.direction.name.lower()}), "
            f"this sweep {metric!r} ({direction}); use another --study name"
        )
    if theirs["qrnn_sweep"] != mine["qrnn_sweep"]:
        raise QRNNError(
            f"study {name!r} was created from another sweep (its [train] or [space] differs from "
            f"{sweep.path}); use the same file or another --study name"
        )
    return study


def make_sampler(sweep: Sweep):
    optuna = require_optuna()
    if sweep.sampler == "grid":
        # the grid's order comes from the seed (the same in every worker: trial k is point k)
        return optuna.samplers.GridSampler(sweep.grid(), seed=sweep.seed)
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=_worker_seed(sweep.seed))
    return optuna.samplers.TPESampler(seed=_worker_seed(sweep.seed))


def _worker_seed(seed: int) -> int:
    # workers sampling with one seed would propose the same first points
    return (seed * 1_000_003 + os.getpid()) % 2**31


def make_pruner(sweep: Sweep):
    optuna = require_optuna()
    if sweep.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=sweep.pruner_startup_trials, n_warmup_steps=sweep.pruner_warmup_steps
    )


class Pruning(TrainerCallback):
    """Reports each evaluation's ``metric`` to the Optuna trial and stops training when the pruner
    says so (after that evaluation's checkpoint)."""

    def __init__(self, trial: Any, metric: str, reported: Iterable[int] = ()) -> None:
        self.trial = trial
        self.metric = metric
        self.pruned: str | None = None
        # steps already reported: a retry inherits the killed trial's values, and its resumed run
        # evaluates again the steps after the checkpoint
        self.reported = set(reported)

    def on_evaluation(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.metric not in record:
            raise QRNNError(
                f"the evaluation records have no {self.metric!r} (they have "
                f"{', '.join(k for k in record if k not in ('step', 'seconds'))}); fix [study] "
                "metric"
            )
        step = int(record["step"])
        if step not in self.reported:
            self.trial.report(float(record[self.metric]), step)
            self.reported.add(step)
        if self.trial.should_prune():
            self.pruned = f"pruned at step {step} ({self.metric} {record[self.metric]:.4g})"
            raise StopTraining(self.pruned)


def train_argv(sweep: Sweep, params: dict[str, Any], run_dir: Path) -> list[str]:
    """The ``qrnn train`` command line of a trial (recorded in its config.json)."""
    argv = ["qrnn", "train"]
    for name, value in {**sweep.train, **params}.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{flag[2:]}")
        else:
            argv += [flag, ",".join(value) if isinstance(value, tuple) else str(value)]
    return [*argv, "--run-dir", str(run_dir)]


@dataclass
class Objective:
    """Trains one trial (module docstring, step 3–4)."""

    sweep: Sweep
    root: Path
    metric: str

    def __call__(self, trial: Any) -> float:
        optuna = require_optuna()

        params = {name: d.suggest(trial) for name, d in self.sweep.space.items()}
        original = frozen(trial).system_attrs.get("failed_trial")  # the first killed trial
        number = trial.number if original is None else original
        run_dir = trial_dir(self.root, number)
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        resume = RunDir(run_dir).is_run  # a retry (or a rerun) continues the run directory
        config = self.sweep.config(params)
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        again = f" (retry of trial {original}, resuming {run_dir.name})" if resume else ""
        print(f"trial {trial.number}: {shown}{again}", flush=True)
        pruning = Pruning(trial, self.metric, frozen(trial).intermediate_values)
        try:
            trainer = Trainer.from_config(
                config, run_dir, resume=resume, argv=train_argv(self.sweep, params, run_dir),
                callbacks=[pruning],
            )  # fmt: skip
            result = trainer.fit()
        except QRNNError as error:
            trial.set_user_attr("error", str(error))
            print(f"trial {trial.number} failed: {error}", flush=True)
            raise
        trial.set_user_attr("steps", result.steps)
        trial.set_user_attr("seconds", round(result.seconds, 1))
        trial.set_user_attr("best_step", result.best_step)
        trial.set_user_attr("final", {k: float(v) for k, v in result.metrics.items()})
        if pruning.pruned:
            print(f"trial {trial.number} {pruning.pruned}", flush=True)
            raise optuna.TrialPruned(pruning.pruned)
        if self.metric not in result.best:
            raise QRNNError(f"trial {trial.number} evaluated no {self.metric!r}")
        value = float(result.best[self.metric])
        print(
            f"trial {trial.number}: {self.metric} {value:.4f} (best, step {result.best_step}), "
            f"{result.steps} steps, {result.seconds:.0f} s",
            flush=True,
        )
        return value


@dataclass
class Progress:
    """How far a study is: trials done, running and queued, and new trials started."""

    done: int
    running: int
    waiting: int
    started: int  # new trials (not retries), in any state


def progress(study: Any) -> Progress:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    retried |= {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    states = [t.state for t in trials]
    done = sum(
        1
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.number not in retried)
    )
    return Progress(
        done=done,
        running=states.count(TrialState.RUNNING),
        waiting=states.count(TrialState.WAITING),
        started=sum(1 for t in trials if "failed_trial" not in t.system_attrs),
    )


def run_worker(sweep: Sweep, url: str, name: str, root: Path, *, wait: bool = True) -> Progress:
    """One worker of the study ``name`` at ``url`` until the study has ``sweep.trials`` trials
    (module docstring); returns where the study stands. ``wait=False``: return as soon as every
    trial has started instead of waiting for the ones running elsewhere (``qrnn bench`` moves on
    to its next study, and comes back to wait once every study has started)."""
    require_optuna()
    from optuna.storages import fail_stale_trials

    from .storage import quiet

    make_folder(root, "--root folder")
    study = open_study(sweep, url, name)
    metric = study.user_attrs["qrnn_metric"]
    objective = Objective(sweep, root, metric)
    waited = False
    while True:
        with quiet():
            fail_stale_trials(study)  # killed workers' trials: failed, and queued as retries
        state = progress(study)
        if state.done >= sweep.trials:
            return state
        if state.waiting == 0 and state.started >= sweep.trials:
            if state.running == 0 or not wait:
                return state  # budget spent on trials that failed: nothing left to run
            if not waited:
                print(
                    f"study {name}: every trial has started; waiting for {state.running} running "
                    "elsewhere (a killed one is retried here after its grace period)",
                    flush=True,
                )
                waited = True
            time.sleep(POLL_SECONDS)
            continue
        waited = False
        try:
            with quiet():
                study.optimize(objective, n_trials=1, catch=(QRNNError,))
        except KeyboardInterrupt:
            _queue_interrupted(study)
            raise


def _queue_interrupted(study: Any) -> None:
    """Ctrl-C: Optuna records this worker's trial as failed; queue its retry as for a killed
    worker, so the next worker resumes its run directory instead of the study losing it."""
    from optuna.trial import TrialState

    me = f"{socket.gethostname()}:{os.getpid()}"
    mine = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.user_attrs.get("worker") == me and "error" not in t.user_attrs
    ]
    if mine:
        retry = study._storage.get_heartbeat_stale_trial_callback()
        if retry is not None:
            retry(study, mine[-1])


def summary(state: Progress, name: str) -> str:
    return f"study {name}: {state.done} trial(s) done, {state.running} running"
