"""``qrnn bench SPEC``: a worker of every (task, model) study of a bench spec, and its table.

A bench is a set of grid sweeps, one per (task, model) cell, each over the spec's learning rates ×
seeds, all in one Optuna storage. One worker (this command; run it again, here or on another
machine with a shared ``--storage``, for more) takes runs of the first cell that has one left
(``run_worker(..., wait=False)``), then of the next; once every run has started it waits for the
ones running elsewhere, so killed workers' runs are retried and resumed as in ``qrnn sweep``.

The table (:func:`results`), per task and model: the lr picked per seed by the best validation
metric, and over seeds (n) the mean ± standard deviation and min–max of that best validation value
and of the test metric on the best-validation checkpoint (``best.pt``) of the picked run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QRNNError
from ..evaluation.report import RunSummary, _value, plot_learning_curves, summarize
from ..fileio import atomic_write_bytes
from ..training import load_run, make_task
from ..training.tasks import higher_is_better
from ..training.tasks.base import chrono_horizon, qrnn_config
from .bench_spec import Bench, Cell
from .storage import open_storage, quiet, require_optuna
from .worker import progress, run_worker


def cell_root(root: Path, cell: Cell) -> Path:
    return root / cell.task / cell.model


def run_bench(bench: Bench, url: str, root: Path) -> bool:
    """Run this worker's share of every cell; True when every run of the bench has finished."""
    for wait in (False, True):  # first start every run somewhere, then wait for the stragglers
        for cell in bench.cells:
            name = bench.study(cell)
            state = run_worker(cell.sweep, url, name, cell_root(root, cell), wait=wait)
            if not wait:
                print(f"{name}: {state.done}/{cell.runs} run(s) done", flush=True)
    return all(s is not None and s[0] >= c.runs for c, s in zip(bench.cells, _states(bench, url)))


def _states(bench: Bench, url: str) -> list[tuple[int, int] | None]:
    """(done, running) per cell; None for a cell whose study does not exist yet."""
    optuna = require_optuna()
    storage = open_storage(url, create=False)
    names = set(optuna.get_all_study_names(storage))
    out = []
    for cell in bench.cells:
        if bench.study(cell) not in names:
            out.append(None)
            continue
        study = optuna.load_study(study_name=bench.study(cell), storage=storage)
        state = progress(study)
        out.append((state.done, state.running))
    return out


@dataclass
class Row:
    """One (task, model) line of the table."""

    cell: Cell
    metric: str
    chosen: dict[int, tuple[float, RunSummary]]  # seed → (lr, the picked run's summary)
    runs: int  # finished runs (every lr and seed)
    failed: int
    steps: float | None  # mean over finished runs
    seconds: float | None
    parameters: int | None = None
    embedding: int | None = None
    init: str = ""


def _cell_row(bench: Bench, cell: Cell, study: Any) -> Row:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = sum(1 for t in trials if t.state == TrialState.FAIL and "error" in t.user_attrs)
    metric = study.user_attrs["qrnn_metric"]
    better = max if higher_is_better(metric) else min
    chosen: dict[int, tuple[float, RunSummary]] = {}
    for seed in bench.seeds:
        mine = sorted((t for t in done if t.params["seed"] == seed), key=lambda t: t.params["lr"])
        if not mine:
            continue
        best = better(mine, key=lambda t: t.value)
        summary = summarize(best.user_attrs["run_dir"])
        summary.label = f"{cell.model} seed {seed}"
        chosen[seed] = (best.params["lr"], summary)

    def mean(key: str) -> float | None:
        values = [t.user_attrs[key] for t in done if key in t.user_attrs]
        return statistics.fmean(values) if values else None

    row = Row(cell, metric, chosen, len(done), failed, mean("steps"), mean("seconds"))
    if chosen:
        _, first = next(iter(chosen.values()))
        config, model, _ = load_run(first.run_dir)
        task = make_task(config)
        from torch import nn

        row.parameters = first.parameters
        row.embedding = sum(
            p.numel() for m in model.modules() if isinstance(m, nn.Embedding)
            for p in m.parameters() if p.requires_grad
        )  # fmt: skip
        row.init = _init(config, task)
    return row


def _init(config: Any, task: Any) -> str:
    """The initialisation a model of this run got (recorded in the table)."""
    kind = config.model.kind
    if kind in ("qrnn", "mqrnn"):
        return f"controller init scale {qrnn_config(config, task).controller.init_scale:g}"
    if kind in ("lstm", "gru"):
        horizon = chrono_horizon(config, task)
        return f"chrono (horizon {horizon})" if horizon else "PyTorch default"
    if kind == "orthogonal":
        return "orthogonal (expRNN)"
    return "PyTorch default"


def _spread(metric: str, values: list[float]) -> tuple[str, str]:
    if not values:
        return "—", "—"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    shown = _value(metric, mean) + (f" ± {_value(metric, std)}" if std is not None else "")
    return shown, f"{_value(metric, min(values))}–{_value(metric, max(values))}"


HEAD = (
    "| model | size | init | params (all, embeddings in) | params (embeddings out) | runs | "
    "steps / run | s / run | lr picked (per seed) | best validation: mean ± std | min–max | "
    "test on best-val checkpoint: mean ± std | min–max | n seeds |"
)


def results(bench: Bench, url: str, root: Path) -> tuple[str, list[Path]]:
    """The Markdown table (module docstring) and the learning-curve PNGs (per task, against steps
    and against training seconds) written into ``root``."""
    optuna = require_optuna()
    storage = open_storage(url, create=False)
    names = set(optuna.get_all_study_names(storage))
    lrs = ", ".join(f"{lr:g}" for lr in bench.lrs)
    lines = [
        f"# Bench {bench.name}",
        "",
        f"Budget per run, every model: {bench.budget.describe()}. Tuning, every model: lr in "
        f"{{{lrs}}}, picked per seed by the best validation metric; test is the picked run's "
        "best-validation checkpoint (best.pt) on the test split. Parameters: every trainable "
        "parameter with the embedding tables in (what qrnn report and --match-params count: "
        "baselines are matched to the QRNN's total, embeddings being equal), and with the "
        "nn.Embedding tables out. std: sample standard deviation over the n seeds.",
    ]
    plots: list[Path] = []
    for task in bench.task_labels:
        cells = [c for c in bench.cells if c.task == task]
        rows = []
        for cell in cells:
            if bench.study(cell) in names:
                with quiet():
                    study = optuna.load_study(study_name=bench.study(cell), storage=storage)
                rows.append(_cell_row(bench, cell, study))
        metric = rows[0].metric if rows else "?"
        options = ", ".join(
            f"{k} {v}" for k, v in cells[0].sweep.train.items()
            if k not in ("task",) and k in _task_options()
        )  # fmt: skip
        direction = "higher" if higher_is_better(metric) else "lower"
        lines += ["", f"## {task} ({cells[0].sweep.base.task.name}"
                  + (f", {options}" if options else "") + f"): {metric}, {direction} is better",
                  "", HEAD, "|" + "---|" * HEAD.count(" | ") + "---|"]  # fmt: skip
        for row in rows:
            lines.append(_line(row))
        summaries = [s for row in rows for _, s in row.chosen.values()]
        if summaries:
            for against in ("step", "seconds"):
                name = "steps" if against == "step" else "seconds"
                path = root / f"curves-{task}-{name}.png"
                plots.append(plot_learning_curves(summaries, path, against=against))
    return "\n".join(lines), plots


def _task_options() -> set[str]:
    from ..options import leaf_index
    from ..training.config import TrainConfig

    return {d for d, leaf in leaf_index(TrainConfig).items() if leaf.path[0] == "task"}


def _line(row: Row) -> str:
    cell, metric = row.cell, row.metric
    summaries = [s for _, s in row.chosen.values()]
    size = summaries[0].size if summaries else ""
    best = _spread(metric, [s.best_val for s in summaries if s.best_val is not None])
    tests = [s.test for s in summaries if s.test is not None]
    test = _spread(metric, tests) if tests else ("— (no test split)", "—")
    picked = ", ".join(f"{lr:g}" for lr, _ in row.chosen.values()) or "—"
    runs = f"{row.runs}" + (f" ({row.failed} failed)" if row.failed else "")
    steps = f"{row.steps:.0f}" if row.steps is not None else "—"
    seconds = f"{row.seconds:.1f}" if row.seconds is not None else "—"
    params = f"{row.parameters:,}" if row.parameters is not None else "—"
    out = f"{row.parameters - row.embedding:,}" if row.parameters is not None else "—"
    return (
        f"| {cell.model} | {size} | {row.init} | {params} | {out} | {runs} | {steps} | {seconds} "
        f"| {picked} | {best[0]} | {best[1]} | {test[0]} | {test[1]} | {len(summaries)} |"
    )


def write_results(bench: Bench, url: str, root: Path) -> Path:
    """Print the table, write it to ``root/table.md`` and the curves beside it."""
    table, plots = results(bench, url, root)
    print(table)
    path = root / "table.md"
    atomic_write_bytes(path, (table + "\n").encode())
    print(f"\ntable: {path}")
    for plot in plots:
        print(f"learning curves: {plot}")
    return path


def check_storage(url: str) -> None:
    """A one-line error now, before any run, when the storage cannot be opened."""
    with quiet():
        open_storage(url)


__all__ = ["QRNNError", "check_storage", "results", "run_bench", "write_results"]
