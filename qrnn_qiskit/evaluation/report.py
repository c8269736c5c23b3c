"""`qrnn report RUN_DIR...`: a Markdown results table and a PNG of learning curves for finished
runs.

Per run: task, model, size (qubits/layers or hidden units), parameters, steps and epochs trained,
the best validation metric from metrics.jsonl, the test metric of the best-validation checkpoint
(``best.pt``; the final checkpoint for runs that have none; evaluated once and cached in the run's
``test_metrics.json``) and training seconds per epoch (evaluation time excluded).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import QRNNError
from ..fileio import atomic_write_bytes, atomic_write_json, read_json, save_figure
from ..formatting import status
from ..models import count_parameters
from ..training import RunDir, load_run, make_task, read_metrics
from ..training.rundir import BEST, CHECKPOINT, TEST_METRICS
from ..training.tasks import higher_is_better


@dataclass
class RunSummary:
    """One row of the report."""

    run_dir: Path
    task: str
    model: str
    size: str
    parameters: int
    steps: int
    steps_per_epoch: int | None
    seconds: float
    metric: str
    best_val: float | None
    best_val_step: int | None
    test: float | None
    curve: list[dict]
    tested: str | None = None  # which checkpoint the test metric is of
    also: dict[str, float] = field(default_factory=dict)  # the task's report_also, best evaluation
    label: str | None = None  # the curve's legend (default: the run directory's name and size)

    @property
    def epochs(self) -> float | None:
        return self.steps / self.steps_per_epoch if self.steps_per_epoch else None

    @property
    def seconds_per_epoch(self) -> float | None:
        if not self.steps_per_epoch or not self.steps:
            return None
        return self.seconds / self.steps * self.steps_per_epoch


def test_metrics(
    run_dir: str | Path, *, checkpoint: str = CHECKPOINT, model=None, task=None,
    step: int | None = None,
) -> dict | None:  # fmt: skip
    """Test-split metrics of one of the run's checkpoints (``best.pt`` or ``checkpoint.pt``; None
    for tasks without a test split). Cached in ``test_metrics.json`` per checkpoint and recomputed
    when that checkpoint has moved on."""
    rd = RunDir(run_dir)
    if model is None or task is None or step is None:
        config, model, state = load_run(rd, checkpoint)
        task, step = make_task(config), int(state["step"])
    if "test" not in task.splits:
        return None
    cache = rd.file(TEST_METRICS)
    saved: dict = {}
    if cache.exists():
        try:
            saved = read_json(cache, "cached test metrics", "it is recomputed")
            if not isinstance(saved, dict):
                saved = {}
            entry = saved.get(checkpoint) if "step" not in saved else None
            if isinstance(entry, dict) and entry.get("step") == step:
                if isinstance(entry.get("metrics"), dict):
                    return entry["metrics"]
        except (QRNNError, AttributeError):
            saved = {}  # unreadable cache: recompute it
    started = time.perf_counter()
    metrics = task.evaluate(model, "test")
    entries = {k: v for k, v in saved.items() if k in (CHECKPOINT, BEST)}
    entries[checkpoint] = {
        "step": step,
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 2),
    }
    try:
        atomic_write_json(cache, entries)
    except QRNNError as error:  # a read-only run: report anyway, recompute next time
        print(f"qrnn: warning: could not cache the test metrics ({error})", file=sys.stderr)
    return metrics


def summarize(run_dir: str | Path, *, with_test: bool = True) -> RunSummary:
    """Everything the report shows for one run directory (the test metric of the best-validation
    checkpoint when the run kept one, else of the final checkpoint)."""
    run_dir = Path(run_dir)
    rd = RunDir(run_dir)
    config, model, state = load_run(rd)
    task = make_task(config)
    records = read_metrics(run_dir)
    metric = task.report_metric
    scored = [r for r in records if _number(r.get(metric)) is not None]
    best = (
        (max if higher_is_better(metric) else min)(scored, key=lambda r: r[metric])
        if scored
        else None
    )
    spec = config.qrnn.spec
    if config.model.kind == "qrnn":
        size = f"n={spec.n_qubits}, L={spec.layers}"
    elif config.model.kind == "mqrnn":
        m = config.measured
        size = f"n={spec.n_qubits}, L={spec.layers}, {m.measurement}, feedforward {m.feedforward}"
    else:
        size = f"h={model.hidden_size}"
    test, tested = None, None
    if with_test:
        if rd.has_checkpoint(BEST):
            _, best_model, best_state = load_run(rd, BEST)
            values = test_metrics(
                run_dir, checkpoint=BEST, model=best_model, task=task, step=int(best_state["step"])
            )
            tested = f"best (step {best_state['step']})"
        else:
            values = test_metrics(run_dir, model=model, task=task, step=int(state["step"]))
            tested = f"final (step {state['step']})"
        test = values.get(metric) if values else None
        if values is None:
            tested = None
    elapsed = _number(state.get("elapsed"))
    if elapsed is None and records:
        elapsed = _number(records[-1].get("seconds"))
    return RunSummary(
        run_dir=run_dir,
        task=config.task.name,
        model=config.model.kind,
        size=size,
        parameters=count_parameters(model),
        steps=int(state["step"]),
        steps_per_epoch=task.steps_per_epoch,
        seconds=elapsed or 0.0,
        metric=metric,
        best_val=best[metric] if best else None,
        best_val_step=best["step"] if best else None,
        test=test,
        curve=records,
        tested=tested,
        also={
            name: value
            for name in task.report_also
            if best and (value := _number(best.get(name))) is not None
        },
    )


def _number(value) -> float | None:
    """``value`` as a finite float, or None (a record edited by hand, a missing value)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2%}" if metric.endswith("accuracy") else f"{value:.4f}"


def markdown_table(rows: Sequence[RunSummary]) -> str:
    """The results table (GitHub Markdown)."""
    lines = [
        "| run | task | model | qubits / hidden | params | trained | best validation (step) | "
        "test (checkpoint) | s / epoch |",
        "|---|---|---|---|---:|---|---|---|---:|",
    ]
    for r in rows:
        trained = f"{r.steps} steps" + (f" ({r.epochs:.2f} epochs)" if r.epochs is not None else "")
        best = (
            f"{_value(r.metric, r.best_val)} ({r.best_val_step})" if r.best_val is not None else "—"
        )
        for name, value in r.also.items():
            best += f"; {name.removesuffix('_accuracy').replace('_', '-')} {_value(name, value)}"
        test = _value(r.metric, r.test) + (f" ({r.tested})" if r.tested else "")
        per_epoch = f"{r.seconds_per_epoch:.0f}" if r.seconds_per_epoch is not None else "—"
        lines.append(
            f"| {r.run_dir.name} | {r.task} | {r.model} | {r.size} | {r.parameters:,} | {trained} "
            f"| {r.metric} {best} | {test} | {per_epoch} |"
        )
    lines.append("")
    lines.append(
        "Validation: the best of the periodic evaluations in metrics.jsonl (on --eval-size "
        "validation examples); test: the whole test split, on the best-validation checkpoint "
        "(best.pt) where the run kept one, else on the final checkpoint; s / epoch: training "
        "time only."
    )
    return "\n".join(lines)


def plot_learning_curves(
    rows: Sequence[RunSummary], path: str | Path, *, against: str = "auto"
) -> Path:
    """Validation metric (one panel per metric: accuracy, bpc, … never share an axis) and training
    loss for every run, as one PNG, against epochs where every run has them, else steps
    (``against="auto"``), or against ``"step"`` or ``"seconds"`` (training time, metrics.jsonl's
    ``seconds``)."""
    if against not in ("auto", "step", "seconds"):
        raise ValueError(f"against must be auto, step or seconds, not {against!r}")
    from matplotlib.figure import Figure

    path = Path(path)
    metrics = sorted({r.metric for r in rows})
    panels = len(metrics) + 1
    grid = (math.ceil(panels / 3), min(panels, 3))
    figure = Figure(figsize=(5.5 * grid[1], 4.2 * grid[0]), layout="constrained")
    axes = list(figure.subplots(*grid, squeeze=False).flat)
    val_axes = dict(zip(metrics, axes, strict=False))
    loss_axis = axes[len(metrics)]
    for extra in axes[panels:]:
        extra.set_visible(False)
    use_epochs = against == "auto" and all(r.steps_per_epoch for r in rows)
    for r in rows:
        if not r.curve:
            continue
        if against == "seconds":
            x = [_number(rec.get("seconds")) for rec in r.curve]
            x = [float("nan") if v is None else v for v in x]
        else:
            scale = r.steps_per_epoch if use_epochs else 1
            x = [rec["step"] / scale for rec in r.curve]
        label = r.label or f"{r.run_dir.name} ({r.size})"
        nan = float("nan")
        val = [_number(rec.get(r.metric)) for rec in r.curve]
        loss = [_number(rec.get("train_loss")) for rec in r.curve]
        val_axes[r.metric].plot(x, [nan if v is None else v for v in val], marker=".", label=label)
        loss_axis.plot(x, [nan if v is None else v for v in loss], label=label)
    titled = [(val_axes[m], f"validation {m}") for m in metrics]
    for axis, title in (*titled, (loss_axis, "training loss (EMA)")):
        axis.set_xlabel(
            "training seconds" if against == "seconds" else "epoch" if use_epochs else "step"
        )
        axis.set_title(title)
        axis.grid(alpha=0.3)
    loss_axis.set_yscale("log")
    for axis, _ in titled:
        axis.legend(fontsize=7)
    return save_figure(figure, path, dpi=120)


def cmd_report(args: argparse.Namespace) -> int:
    for path in filter(None, (args.plot, args.markdown)):
        if Path(path).is_dir():
            raise QRNNError(
                f"{path} is a folder; name a file (--plot report.png, --markdown report.md)"
            )
    if sys.stderr.isatty():  # loading every checkpoint (and testing it) takes a while
        tested = "; a checkpoint not yet tested runs on its test split" if args.test else ""
        status(f"building the report: {len(args.runs)} run(s){tested}…")
    rows = [summarize(run, with_test=args.test) for run in args.runs]
    table = markdown_table(rows)
    print(table)
    if args.markdown:
        atomic_write_bytes(Path(args.markdown), (table + "\n").encode())
    plot = plot_learning_curves(rows, args.plot)
    print(f"\nlearning curves: {plot}")
    return 0
