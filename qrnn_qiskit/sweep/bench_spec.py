"""A benchmark spec (``qrnn bench SPEC``): tasks × models × seeds under ONE budget rule and one
tuning rule, checked whole before anything runs. TOML::

    [bench]
    name = "tiny"                 # default: the file's name without .toml
    seeds = [0, 1]                # every (task, model) runs every seed
    workers = 2                   # the dry-run's wall-clock estimate (default 1)

    [budget]                      # the same for every run of every model
    steps = 20                    # a step count, or ...
    # minutes = 5                 # ... a wall-clock box of training time per run, on ...
    # threads = 1                 # ... a fixed thread count (required with minutes); or both

    [tuning]                      # the same for every model; picked per seed on validation
    lr = [3e-3]

    [train]                       # qrnn train options every run shares
    batch_size = 8
    eval_every = 10

    [tasks.copying]               # label → qrnn train task options (task = the label by default)
    delay = 2

    [models.qrnn]                 # label → model options (model = the label by default)
    qubits = 2
    [models.lstm]                 # baselines: matched in parameters to the QRNN entry on the
    # match = "qrnn"              # same task (default: the only qrnn entry that runs it)
    # tasks = ["copying"]         # any entry: run only on these task labels

Each (task, model) cell becomes one grid sweep (:class:`~.space.Sweep`) over ``lr`` × ``seed`` with
no pruner, run by the sweep workers (``worker.run_worker``) in one study per cell.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QRNNError
from ..models import MODELS
from ..options import leaf_index
from ..training.config import TrainConfig
from ..training.tasks import TASKS
from . import space
from .space import Dimension, Sweep

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

TABLES = ("bench", "budget", "tuning", "train", "tasks", "models")
BENCH_KEYS = {"name", "seeds", "workers"}
BUDGET_KEYS = {"steps", "minutes", "threads"}
# the budget and the tuning: set only by [budget], [tuning] and [bench] seeds
BUDGET_OPTIONS = {"steps", "max_minutes", "threads", "lr", "seed"}
# what else a run gets of the budget: shared ([train]) or per task, never per model
PER_RUN = {
    "kernel_threads",
    "batch_size",
    "patience",
    "eval_every",
    "eval_size",
    "schedule",
    "warmup",
}
MODEL_SECTIONS = ("model", "qrnn", "measured", "baseline", "engine")
# the quantum models: sized by their own options; every other model is a classical baseline
QUANTUM = ("qrnn", "mqrnn")
# options the bench sets itself, or that a run directory does not take
NOT_GIVEN = space.NOT_SWEPT | {"progress"}
ENTRY_KEYS = {"tasks", "match"}  # a model entry's own keys (not qrnn train options)
STEPS_UNBOUNDED = 10**9  # a wall-clock box alone: the step count that never binds


@dataclass(frozen=True)
class Budget:
    """The per-run budget: ``steps`` and/or a ``minutes`` box of training time on ``threads``."""

    steps: int | None
    minutes: float | None
    threads: int | None

    def options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.steps or STEPS_UNBOUNDED}
        if self.minutes:
            out["max_minutes"] = float(self.minutes)
        if self.threads:
            out["threads"] = self.threads
        return out

    def describe(self) -> str:
        parts = []
        if self.steps:
            parts.append(f"{self.steps} steps")
        if self.minutes:
            parts.append(f"{self.minutes:g} min of training")
        rule = " or ".join(parts) + (", whichever ends first" if len(parts) == 2 else "")
        if self.threads:
            rule += f", {self.threads} thread{'s' if self.threads > 1 else ''}"
        return rule


@dataclass(frozen=True)
class Cell:
    """One (task, model) pair: a grid sweep over lr × seed."""

    task: str  # task label
    model: str  # model label
    kind: str  # qrnn, lstm, …
    matched_to: str | None  # the qrnn entry a baseline's size is matched to
    sweep: Sweep

    @property
    def runs(self) -> int:
        return self.sweep.trials


@dataclass(frozen=True)
class Bench:
    path: Path
    name: str
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    budget: Budget
    workers: int
    cells: tuple[Cell, ...]
    task_labels: tuple[str, ...]

    def study(self, cell: Cell) -> str:
        return f"{self.name}.{cell.task}.{cell.model}"

    @property
    def runs(self) -> int:
        return sum(c.runs for c in self.cells)

    def plan(self, workers: int | None = None) -> str:
        """The dry-run: every cell's runs, the per-run budget and the totals."""
        w = workers or self.workers
        b = self.budget
        lrs = ", ".join(f"{lr:g}" for lr in self.lrs)
        lines = [
            f"bench {self.name} ({self.path}): {len(self.task_labels)} task(s), "
            f"{len({c.model for c in self.cells})} model(s), seeds {list(self.seeds)}",
            f"budget per run (every model): {b.describe()}",
            f"tuning per model and seed: lr in {{{lrs}}}, picked by the best validation metric",
            "",
            "| task | model | size | runs |",
            "|---|---|---|---:|",
        ]
        for c in self.cells:
            lines.append(f"| {c.task} | {c.model} | {_size(c)} | {c.runs} |")
        lines.append("")
        total = self.runs
        lines.append(f"runs: {total} ({len(self.cells)} cells × {len(self.lrs)} lr × "
                     f"{len(self.seeds)} seeds)")  # fmt: skip
        if b.minutes:
            threads = b.threads or 1
            core = total * b.minutes * threads
            wall = math.ceil(total / w) * b.minutes
            bound = "at most " if b.steps else ""
            lines.append(
                f"training budget: {bound}{core:,.0f} core-minutes ({total} runs × {b.minutes:g} "
                f"min × {threads} thread(s)); wall clock with {w} worker(s) ({w * threads} "
                f"cores): {bound}{wall:,.0f} min ({wall / 60:.1f} h), plus evaluations"
            )
        else:
            lines.append(
                f"training budget: {total} runs × {b.steps} steps (a step budget: no wall-clock "
                "bound; add minutes for one)"
            )
        return "\n".join(lines)


def _size(cell: Cell) -> str:
    options = {**cell.sweep.train}
    if cell.kind in QUANTUM:
        cfg = cell.sweep.base.qrnn
        size = f"n={cfg.spec.n_qubits}, L={cfg.spec.layers}, width {cfg.controller.width}"
        if cell.kind == "mqrnn":
            m = cell.sweep.base.measured
            size += f", {m.measurement}, feedforward {m.feedforward}"
        elif not cfg.feedback:
            size += ", no feedback"
        return size
    if options.get("hidden"):
        return f"h={options['hidden']}"
    return f"matched to {cell.matched_to}"


def _fail(path: Path, where: str, message: str) -> QRNNError:
    return QRNNError(f"bench {path}: {where}{message}")


def _rebrand(error: QRNNError) -> QRNNError:
    """A sweep helper's error, naming the bench file instead of a sweep file."""
    text = str(error)
    return QRNNError("bench " + text[6:] if text.startswith("sweep ") else text)


def _options(path: Path, table: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (qrnn train option names) checked and typed; budget options are refused (in a
    model's table also what else decides how much a run gets: batch size, evaluations, …)."""
    options = space._options()
    out: dict[str, Any] = {}
    for raw, value in values.items():
        name = raw.replace("-", "_")
        if table.startswith("models.") and name in PER_RUN:
            raise _fail(
                path, f"[{table}] ", f"{raw} would give this model a different budget from the "
                "others: set it in [train] (or per task in [tasks.LABEL])"
            )  # fmt: skip
        if name in BUDGET_OPTIONS:
            raise _fail(
                path, f"[{table}] ", f"{raw} is part of the budget, the same for every model: set "
                "steps/minutes/threads in [budget], lr in [tuning], seeds in [bench]; "
                f"{', '.join(sorted(BUDGET_OPTIONS))} are the budget"
            )  # fmt: skip
        if name in NOT_GIVEN or name not in options:
            if name in NOT_GIVEN:
                raise _fail(path, f"[{table}] ", f"{raw} is set by qrnn bench")
            raise _rebrand(space._unknown(path, table, raw, sorted(options)))
        try:
            out[name] = space._value(path, table, raw, options[name], value)
        except QRNNError as error:
            raise _rebrand(error) from None
    return out


def _list(path: Path, where: str, value: Any, kind: type) -> tuple:
    if not isinstance(value, list):
        raise _fail(path, where, f"expected a list, got {value!r}")
    if not value:
        raise _fail(path, where, "is empty: give at least one value")
    for v in value:
        ok = isinstance(v, kind) and not isinstance(v, bool)
        if kind is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok:
            raise _fail(path, where, f"expected {kind.__name__}s, got {v!r}")
    if len(set(value)) != len(value):
        raise _fail(path, where, f"repeats a value: {value}")
    return tuple(kind(v) for v in value)


def _budget(path: Path, data: dict[str, Any]) -> Budget:
    if "budget" not in data:
        raise _fail(path, "", "no [budget]: give every model the same steps, or minutes and "
                    "threads (a wall-clock box), or both")  # fmt: skip
    table = data["budget"]
    extra = sorted(set(table) - BUDGET_KEYS)
    if extra:
        raise _fail(path, "[budget] ", f"unknown key(s) {', '.join(extra)} (keys: steps, minutes, "
                    "threads)")  # fmt: skip
    steps, minutes, threads = table.get("steps"), table.get("minutes"), table.get("threads")
    if steps is None and minutes is None:
        raise _fail(path, "[budget] ", "the budget rule is missing: give steps, or minutes and "
                    "threads, or both")  # fmt: skip
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise _fail(path, "[budget] steps: ", f"expected an integer >= 1, got {steps!r}")
    if minutes is not None:
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, (int, float))
            or not (0 < minutes < 7 * 24 * 60)
        ):
            raise _fail(path, "[budget] minutes: ", f"expected a number of minutes > 0, got "
                        f"{minutes!r}")  # fmt: skip
        if threads is None:
            raise _fail(path, "[budget] ", "a wall-clock box needs a fixed thread count: add "
                        "threads = N")  # fmt: skip
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise _fail(path, "[budget] threads: ", f"expected an integer >= 1, got {threads!r}")
    return Budget(steps, float(minutes) if minutes is not None else None, threads)


def _entries(path: Path, data: dict[str, Any], table: str) -> dict[str, dict[str, Any]]:
    entries = data.get(table)
    if not isinstance(entries, dict) or not entries:
        raise _fail(path, "", f"no [{table}.LABEL] tables: name at least one")
    for label, entry in entries.items():
        if not isinstance(entry, dict):
            raise _fail(path, "", f"{table}.{label} must be a table ([{table}.{label}])")
    return entries


def parse(text: str, path: Path) -> Bench:
    """A checked :class:`Bench` from the TOML ``text`` of ``path`` (module docstring)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _fail(path, "", f"not valid TOML ({error})") from None
    extra = sorted(set(data) - set(TABLES))
    if extra:
        raise _fail(path, "", f"unknown table(s) {', '.join(extra)}; a bench spec has "
                    + ", ".join(f"[{t}]" for t in TABLES))  # fmt: skip
    for table in ("bench", "budget", "tuning", "train"):
        if not isinstance(data.get(table, {}), dict):
            raise _fail(path, "", f"{table} must be a table ([{table}])")
    bench = data.get("bench", {})
    unknown = sorted(set(bench) - BENCH_KEYS)
    if unknown:
        raise _fail(path, "[bench] ", f"unknown key(s) {', '.join(unknown)} (keys: name, seeds, "
                    "workers)")  # fmt: skip
    if "seeds" not in bench:
        raise _fail(path, "[bench] ", "seeds is missing: list the seeds every model runs")
    seeds = _list(path, "[bench] seeds: ", bench["seeds"], int)
    if any(s < 0 for s in seeds):
        raise _fail(path, "[bench] seeds: ", f"must be >= 0, got {list(seeds)}")
    workers = bench.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise _fail(path, "[bench] workers: ", f"expected an integer >= 1, got {workers!r}")
    name = bench.get("name", path.stem)
    budget = _budget(path, data)
    tuning = data.get("tuning", {})
    if set(tuning) != {"lr"}:
        raise _fail(path, "[tuning] ", "give exactly lr = [...], the learning rates every model "
                    "tries (the same list for all)")  # fmt: skip
    lrs = _list(path, "[tuning] lr: ", tuning["lr"], float)
    if any(not (math.isfinite(lr) and lr > 0) for lr in lrs):
        raise _fail(path, "[tuning] lr: ", f"every learning rate must be > 0, got {list(lrs)}")
    shared = _options(path, "train", data.get("train", {}))
    for key in ("task", "model"):
        if key in shared:
            raise _fail(path, "[train] ", f"{key} belongs in [{key}s.LABEL]")
    if budget.steps is None and "schedule" in shared:
        raise _fail(
            path, "[train] ", "a schedule runs over --steps; a minutes-only budget has none"
        )

    tasks: dict[str, dict[str, Any]] = {}
    for label, entry in _entries(path, data, "tasks").items():
        options = _options(path, f"tasks.{label}", entry)
        options.setdefault("task", label)
        if options["task"] not in TASKS:
            raise _fail(path, f"[tasks.{label}] ", f"unknown task {options['task']!r} (tasks: "
                        f"{', '.join(TASKS)})")  # fmt: skip
        index = leaf_index(TrainConfig)
        foreign = [n for n in options if index[n].path[0] in MODEL_SECTIONS]
        if foreign:
            raise _fail(path, f"[tasks.{label}] ", f"{foreign[0]} is a model option: put it in "
                        "[models.LABEL]")  # fmt: skip
        tasks[label] = options

    models: dict[str, dict[str, Any]] = {}
    only: dict[str, tuple[str, ...]] = {}
    match: dict[str, str] = {}
    for label, entry in _entries(path, data, "models").items():
        own = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
        options = _options(path, f"models.{label}", own)
        options.setdefault("model", label)
        if options["model"] not in MODELS:
            raise _fail(path, f"[models.{label}] ", f"unknown model {options['model']!r} (models: "
                        f"{', '.join(MODELS)})")  # fmt: skip
        index = leaf_index(TrainConfig)
        foreign = [n for n in options if index[n].path[0] == "task"]
        if foreign:
            raise _fail(path, f"[models.{label}] ", f"{foreign[0]} is a task option: put it in "
                        "[tasks.LABEL]")  # fmt: skip
        if "tasks" in entry:
            listed = _list(path, f"[models.{label}] tasks: ", entry["tasks"], str)
            for t in listed:
                if t not in data["tasks"]:
                    raise _fail(path, f"[models.{label}] tasks: ", f"no [tasks.{t}]")
            only[label] = listed
        if "match" in entry:
            if options["model"] in QUANTUM:
                raise _fail(path, f"[models.{label}] ", "match sizes classical baselines")
            match[label] = entry["match"]
        models[label] = options

    cells: list[Cell] = []
    for task_label, task_options in tasks.items():
        on_task = [m for m in models if task_label in only.get(m, (task_label,))]
        qrnns = [m for m in on_task if models[m]["model"] == "qrnn"]
        for model_label in on_task:
            options = {**shared, **task_options, **models[model_label]}
            kind = options["model"]
            matched = None
            if kind not in QUANTUM and "hidden" not in options:
                matched = match.get(model_label)
                if matched is None:
                    if len(qrnns) != 1:
                        raise _fail(path, f"[models.{model_label}] ", f"on task {task_label}: "
                                    "name the QRNN entry it is matched to (match = \"LABEL\"), or "
                                    "give hidden")  # fmt: skip
                    matched = qrnns[0]
                if matched not in qrnns:
                    raise _fail(path, f"[models.{model_label}] match: ", f"{matched!r} is not a "
                                f"qrnn entry that runs on {task_label}")  # fmt: skip
                # the QRNN's own options: build_for_task then sizes the baseline to its count
                # (the --match-params mechanism's default target)
                index = leaf_index(TrainConfig)
                qrnn_opts = {
                    k: v for k, v in models[matched].items()
                    if index[k].path[0] == "qrnn" or k == "embed_dim"
                }  # fmt: skip
                options = {**options, **qrnn_opts, **models[model_label]}
            options |= budget.options()
            options["progress"] = False
            cells.append(
                Cell(task_label, model_label, kind, matched,
                     _cell_sweep(path, name, task_label, model_label, options, lrs, seeds))
            )  # fmt: skip
    return Bench(path, name, seeds, lrs, budget, workers, tuple(cells), tuple(tasks))


def _cell_sweep(path, name, task, model, options, lrs, seeds) -> Sweep:
    where = f"[tasks.{task}] × [models.{model}]: "
    try:
        base = space._check_config(path, where, lambda: TrainConfig.flat(**options))
        for lr in lrs:
            space._check_config(path, f"{where}lr = {lr}: ", lambda v=lr: base.replace(lr=v))
    except QRNNError as error:
        raise _rebrand(error) from None
    dims = {
        "lr": Dimension("lr", float, choices=lrs),
        "seed": Dimension("seed", int, choices=seeds),
    }
    return Sweep(
        path=path, name=f"{name}.{task}.{model}", train=options, space=dims,
        trials=len(lrs) * len(seeds), sampler="grid", pruner="none", base=base,
    )  # fmt: skip


def load(path: str | Path) -> Bench:
    """Read and check the bench spec at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise QRNNError(f"cannot read the bench spec {path}: {error.strerror or error}") from None
    return parse(text, path)
