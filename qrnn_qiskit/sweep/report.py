"""``qrnn sweep --report STUDY``: the best trials as a table, and Optuna's standard plots as PNG
(optimisation history, parameter importances, and the intermediate values the pruner saw), drawn
with Optuna's matplotlib backend (no plotly needed)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QRNNError
from ..fileio import make_folder, save_figure
from .storage import require_optuna

PLOTS = ("optimization_history", "param_importances", "intermediate_values")


def _value(trial: Any) -> float | None:
    """A finished trial's value: its objective, or (pruned) its last intermediate value."""
    if trial.value is not None:
        return trial.value
    if trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


def ranked(study: Any) -> list[Any]:
    """Complete trials best first, then pruned ones by their last reported value, then failed."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0

    def key(trial):
        value = _value(trial)
        return sign * value if value is not None and math.isfinite(value) else math.inf

    trials = study.get_trials(deepcopy=False)
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=key)
    pruned = sorted((t for t in trials if t.state == TrialState.PRUNED), key=key)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    return complete + pruned + failed


def table(study: Any, top: int | None = None) -> str:
    """A Markdown table of the study's finished trials (best first)."""
    metric = study.user_attrs.get("qrnn_metric", "value")
    trials = ranked(study)
    names = sorted({name for t in trials for name in t.params})
    value = f"{metric} (best; pruned: last)"
    head = ["rank", "trial", "state", value, *names, "best step", "steps", "s", "run"]
    rows = []
    for i, t in enumerate(trials[:top] if top else trials, 1):
        value = _value(t)
        state = t.state.name.lower()
        if t.user_attrs.get("error"):
            state += f": {t.user_attrs['error'][:60]}"
        if t.system_attrs.get("failed_trial") is not None:
            state += f" (retry of {t.system_attrs['failed_trial']})"
        rows.append(
            [
                str(i), str(t.number), state, "" if value is None else f"{value:.4f}",
                *(_param(t.params.get(n)) for n in names),
                str(t.user_attrs.get("best_step", "")), str(t.user_attrs.get("steps", "")),
                str(t.user_attrs.get("seconds", "")),
                Path(t.user_attrs["run_dir"]).name if "run_dir" in t.user_attrs else "",
            ]
        )  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _param(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def counts(study: Any) -> str:
    from collections import Counter

    states = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no trials"


def plots(study: Any, folder: Path) -> tuple[list[Path], list[str]]:
    """Write the standard plots as PNG into ``folder``; returns (written, reasons for skips)."""
    optuna = require_optuna()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    make_folder(folder, "--plots folder")
    written, skipped = [], []
    for name in PLOTS:
        plot = getattr(views, f"plot_{name}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            skipped.append(f"{name}: {str(error).splitlines()[0][:120]}")
            plt.close("all")
            continue
        axes = axes.flat[0] if isinstance(axes, np.ndarray) else axes
        figure = axes.get_figure()
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        path = folder / f"{name}.png"
        try:
            save_figure(figure, path, dpi=120)
        finally:
            plt.close(figure)
        written.append(path)
    return written, skipped


def load_study(url: str, name: str | None):
    """The study ``name`` at ``url`` (the only one there when ``name`` is None)."""
    optuna = require_optuna()
    from .storage import open_storage

    storage = open_storage(url, create=False)
    names = optuna.get_all_study_names(storage)
    if name is None:
        if len(names) != 1:
            raise QRNNError(f"{url} holds {len(names)} studies ({', '.join(names)}); name one")
        name = names[0]
    if name not in names:
        listed = ", ".join(names) or "none"
        raise QRNNError(f"no study {name!r} in {url} (it holds: {listed})")
    return optuna.load_study(study_name=name, storage=storage)
