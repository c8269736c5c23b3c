"""A sweep file: which ``qrnn train`` options every trial shares, which ones the study searches,
and how. TOML (Python's own ``tomllib``)::

    [study]
    name = "copying-ablation"    # default: the file's name without .toml
    trials = 6                   # trials in the whole study, over all workers (grid: the grid)
    sampler = "grid"             # grid (every combination of [space]'s lists), tpe, random
    seed = 0                     # the sampler's seed (every worker must use the same)
    pruner = "median"            # median (Optuna's MedianPruner) or none
    pruner_startup_trials = 2    # trials that finish before any trial is pruned
    pruner_warmup_steps = 300    # training steps before a trial can be pruned
    metric = "accuracy"          # default: the task's validation metric (best.pt's)
    heartbeat_seconds = 10       # a worker killed mid-trial is noticed after grace_seconds
    grace_seconds = 120

    [train]                      # qrnn train options every trial shares (names as in --help,
    task = "copying"             # "-" or "_" alike)
    qubits = 4
    steps = 1000

    [space]
    lr = [1e-3, 3e-3, 1e-2]                        # a list: the choices
    clip = [0.0, 1.0]
    # init_scale = { low = 0.05, high = 1, log = true }   # a range (tpe, random)
    # width = { low = 16, high = 128, step = 16 }

Every name is checked against ``TrainConfig``'s options (:func:`~qrnn_qiskit.options.leaf_index`),
every value against the option's type and choices, and every range end and choice is built into a
real ``TrainConfig`` once, so a trial never fails on its config: a mistake is a one-line
:class:`~qrnn_qiskit.errors.QRNNError` naming the file, the table and the option.
"""

from __future__ import annotations

import difflib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import QRNNError
from ..options import ConfigError, Leaf, flag_error, leaf_index, scalar_type
from ..training.config import MAX_SEED, TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (the sweep extra installs it)
    import tomli as tomllib

SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("median", "none")
STUDY_KEYS = {
    "name": str,
    "trials": int,
    "sampler": str,
    "seed": int,
    "pruner": str,
    "pruner_startup_trials": int,
    "pruner_warmup_steps": int,
    "metric": str,
    "heartbeat_seconds": int,
    "grace_seconds": int,
}
RANGE_KEYS = {"low", "high", "log", "step"}
# options a sweep sets itself (the trial's run directory) or that are not TrainConfig fields
NOT_SWEPT = {"run_dir", "resume", "epochs", "match_params", "engine_check"}


@dataclass(frozen=True)
class Dimension:
    """One searched option: ``choices`` (a list) or a range ``low``..``high`` (``log`` scale,
    ``step``), of the option's scalar ``kind`` (int, float, str, bool)."""

    name: str
    kind: type
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def suggest(self, trial: Any) -> Any:
        """This dimension's value in an Optuna trial."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind is int:
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list[Any]:
        """The values every trial's config is checked at (each choice, both range ends)."""
        if self.choices is not None:
            return list(self.choices)
        return [self.kind(self.low), self.kind(self.high)]

    def describe(self) -> Any:
        if self.choices is not None:
            return list(self.choices)
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class Sweep:
    """A parsed, checked sweep file."""

    path: Path
    name: str
    train: dict[str, Any]
    space: dict[str, Dimension]
    trials: int
    sampler: str = "tpe"
    seed: int = 0
    pruner: str = "median"
    pruner_startup_trials: int = 2
    pruner_warmup_steps: int = 0
    metric: str | None = None
    heartbeat_seconds: int = 10
    grace_seconds: int = 120
    base: TrainConfig = field(default_factory=TrainConfig)

    def config(self, params: dict[str, Any]) -> TrainConfig:
        """The ``TrainConfig`` of a trial with ``params`` (the searched options' values)."""
        return self.base.replace(**params)

    def grid(self) -> dict[str, list]:
        return {name: list(d.choices or ()) for name, d in self.space.items()}

    def identity(self) -> str:
        """What a study is *of*: the shared options and the search space (canonical JSON). Workers
        may differ in their trial budget, sampler or pruner, never in this."""
        return json.dumps(
            {"train": self.train, "space": {k: d.describe() for k, d in self.space.items()}},
            sort_keys=True,
        )


def _fail(path: Path, where: str, message: str) -> QRNNError:
    return QRNNError(f"sweep {path}: {where}{message}")


def _unknown(path: Path, table: str, name: str, known: list[str]) -> QRNNError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return _fail(path, f"[{table}] ", f"{name} is not a qrnn train option{hint}")


def _options() -> dict[str, Leaf]:
    return {d: leaf for d, leaf in leaf_index(TrainConfig).items() if leaf.cli}


def _value(path: Path, table: str, name: str, leaf: Leaf, value: Any) -> Any:
    """``value`` as option ``name``'s type (TOML ints for float options are floats)."""
    kind = scalar_type(leaf)
    where = f"[{table}] {name}: "
    if kind is bool:
        if not isinstance(value, bool):
            raise _fail(path, where, f"expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, where, f"expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, where, f"expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise _fail(path, where, f"expected a string, got {value!r}")
    if leaf.choices and value not in leaf.choices:
        allowed = ", ".join(map(str, leaf.choices))
        raise _fail(path, where, f"must be one of {allowed}; got {value!r}")
    if leaf.parse is not None:
        try:
            return leaf.parse(value)
        except Exception as error:  # noqa: BLE001 - the option's own parser says what is wrong
            raise _fail(path, where, str(error)) from None
    return value


def _dimension(path: Path, name: str, leaf: Leaf, spec: Any) -> Dimension:
    kind = scalar_type(leaf)
    where = f"[space] {name}: "
    if kind is None:
        raise _fail(path, where, "this option cannot be searched")
    if isinstance(spec, list):
        if not spec:
            raise _fail(path, where, "an empty list of choices")
        values = tuple(_value(path, "space", name, leaf, v) for v in spec)
        if len(set(map(repr, values))) != len(values):
            raise _fail(path, where, f"the choices repeat a value: {spec}")
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
            raise _fail(path, where, "choices must be plain values (numbers, strings, booleans)")
        return Dimension(name, kind, choices=values)
    if not isinstance(spec, dict):
        raise _fail(path, where, f"expected a list of choices or {{ low, high }}, got {spec!r}")
    extra = sorted(set(spec) - RANGE_KEYS)
    if extra or "low" not in spec or "high" not in spec:
        raise _fail(
            path, where, f"a range is {{ low, high, log?, step? }}; got keys {', '.join(spec)}"
        )
    if kind not in (int, float):
        raise _fail(path, where, f"a range needs a numeric option; {name} takes {kind.__name__}")
    low = _value(path, "space", name, leaf, spec["low"])
    high = _value(path, "space", name, leaf, spec["high"])
    log = spec.get("log", False)
    step = spec.get("step")
    if not isinstance(log, bool):
        raise _fail(path, where, f"log must be true or false, got {log!r}")
    if step is not None:
        step = _value(path, "space", name, leaf, step)
    if not low < high:
        raise _fail(path, where, f"impossible range: low {low} must be below high {high}")
    if log and low <= 0:
        raise _fail(path, where, f"a log range needs low > 0, got {low}")
    if step is not None and not math.isfinite(step):  # TOML has nan and inf
        raise _fail(path, where, f"step must be a finite number, got {step}")
    if step is not None and (step <= 0 or log):
        raise _fail(path, where, "step must be > 0 and cannot be combined with log")
    if step is not None and step > high - low:
        raise _fail(path, where, f"step {step} is wider than the range {low}..{high}")
    return Dimension(name, kind, low=low, high=high, log=log, step=step)


def _check_config(path: Path, where: str, build) -> TrainConfig:
    try:
        return build()
    except ConfigError as error:
        raise _fail(path, where, str(flag_error(TrainConfig, error))) from None
    except QRNNError as error:
        raise _fail(path, where, str(error)) from None


def _study_settings(path: Path, study: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in study.items():
        kind = STUDY_KEYS.get(key)
        if kind is None:
            known = ", ".join(STUDY_KEYS)
            raise _fail(path, "[study] ", f"unknown setting {key!r} (settings: {known})")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise _fail(path, f"[study] {key}: ", f"expected an integer, got {value!r}")
        if kind is str and not isinstance(value, str):
            raise _fail(path, f"[study] {key}: ", f"expected a string, got {value!r}")
        out[key] = value
    for key, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        if key in out and out[key] not in allowed:
            raise _fail(
                path, f"[study] {key}: ", f"must be one of {', '.join(allowed)}; got {out[key]!r}"
            )
    for key in ("trials", "heartbeat_seconds", "grace_seconds"):
        if key in out and out[key] < 1:
            raise _fail(path, f"[study] {key}: ", f"must be >= 1, got {out[key]}")
    for key in ("pruner_startup_trials", "pruner_warmup_steps", "seed"):
        if key in out and out[key] < 0:
            raise _fail(path, f"[study] {key}: ", f"must be >= 0, got {out[key]}")
    if out.get("seed", 0) > MAX_SEED:  # the samplers' NumPy seeds: every trial would die
        raise _fail(
            path, "[study] seed: ", f"must be an integer in 0..{MAX_SEED}, got {out['seed']}"
        )
    if "name" in out and not out["name"].strip():
        raise _fail(path, "[study] name: ", "must not be empty (drop it to use the file's name)")
    heartbeat = out.get("heartbeat_seconds", Sweep.heartbeat_seconds)
    grace = out.get("grace_seconds", Sweep.grace_seconds)
    if heartbeat >= grace:  # a live trial would look dead to another worker between two beats
        raise _fail(
            path,
            "[study] heartbeat_seconds: ",
            f"({heartbeat}) must be below grace_seconds ({grace}), or another worker fails this "
            "worker's live trial; lower heartbeat_seconds or raise grace_seconds",
        )
    return out


def parse(text: str, path: Path) -> Sweep:
    """A :class:`Sweep` from the TOML ``text`` of ``path`` (module docstring)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _fail(path, "", f"not valid TOML ({error})") from None
    extra = sorted(set(data) - {"study", "train", "space"})
    if extra:
        raise _fail(path, "", f"unknown table(s) {', '.join(extra)}; a sweep has [study], "
                    "[train] and [space]")  # fmt: skip
    for table in ("study", "train", "space"):
        if not isinstance(data.get(table, {}), dict):
            raise _fail(path, "", f"{table} must be a table ([{table}])")
    settings = _study_settings(path, data.get("study", {}))
    options = _options()
    known = sorted(options)
    train: dict[str, Any] = {}
    for raw, value in data.get("train", {}).items():
        name = raw.replace("-", "_")
        if name not in options or name in NOT_SWEPT:
            if name in NOT_SWEPT:
                raise _fail(path, "[train] ", f"{raw} is set by qrnn sweep (or not a trial option)")
            raise _unknown(path, "train", raw, known)
        train[name] = _value(path, "train", raw, options[name], value)
    train.setdefault("progress", False)  # workers print one line per trial instead
    space: dict[str, Dimension] = {}
    for raw, spec in data.get("space", {}).items():
        name = raw.replace("-", "_")
        if name not in options or name in NOT_SWEPT:
            raise _unknown(path, "space", raw, known)
        if name in train:
            raise _fail(path, "[space] ", f"{raw} is also fixed in [train]; keep one")
        if name == "task":  # one study ranks one metric of one task
            raise _fail(path, "[space] ", "task cannot be searched: scores of different tasks do "
                        "not compare; set task in [train] and run one study per task")  # fmt: skip
        space[name] = _dimension(path, name, options[name], spec)
    if not space:
        raise _fail(path, "", "[space] is empty: name at least one option to search")
    base = _check_config(path, "[train] ", lambda: TrainConfig.flat(**train))
    for name, dimension in space.items():
        for value in dimension.corners():
            _check_config(path, f"[space] {name} = {value!r}: ",
                          lambda n=name, v=value: base.replace(**{n: v}))  # fmt: skip
    gridded = all(d.choices is not None for d in space.values())
    sampler = settings.get("sampler", "grid" if gridded else "tpe")
    if sampler == "grid":
        ranges = [n for n, d in space.items() if d.choices is None]
        if ranges:
            raise _fail(path, "[study] sampler: ", f"grid needs lists of choices; {ranges[0]} "
                        "is a range (use tpe or random, or list its values)")  # fmt: skip
        size = 1
        for d in space.values():
            size *= len(d.choices or ())
        trials = settings.get("trials", size)
        if trials != size:
            raise _fail(path, "[study] trials: ", f"a grid of {size} points runs {size} trials, "
                        f"not {trials} (drop trials, or use tpe or random)")  # fmt: skip
    else:
        if "trials" not in settings:
            raise _fail(path, "[study] ", f"trials is required with sampler = {sampler!r}")
        trials = settings["trials"]
    rest = {k: v for k, v in settings.items() if k not in ("name", "trials", "sampler")}
    return Sweep(
        path=path, name=settings.get("name", path.stem), train=train, space=space, trials=trials,
        sampler=sampler, base=base, **rest,
    )  # fmt: skip


def load(path: str | Path) -> Sweep:
    """Read and check the sweep file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise QRNNError(f"cannot read the sweep file {path}: {error.strerror or error}") from None
    return parse(text, path)
