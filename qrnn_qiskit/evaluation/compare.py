"""Noiseless vs noisy: a Markdown table of every evaluation of one or more runs and PNG plots.

Table: per evaluation the task metric noisy and noiseless on the same sequences, the *retention*
(noisy / noiseless) with a 95% bootstrap interval over sequences and the sample count, readout
errors, mitigation and semantics. Several runs (``--with``: e.g. a standard and a noise-aware model)
appear side by side, labelled by run.

Plots: ``readout_error.png`` (mean |z − z_exact| vs timestep with 95% error bars over sequences, one
panel per backend, one line per run × protocol × mitigation) and ``depolarizing_sweep.png`` (task
metric and readout error vs depolarizing strength p of the replay runs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..backends.targets import EXACT_ALIASES
from ..errors import QRNNError
from ..fileio import atomic_write_bytes
from ..formatting import markdown_table
from ..training.rundir import EVALS
from .config import EvalConfig
from .records import PLAN, RESULT, EvalStore, pending
from .runner import eval_name, run_evaluation


def load_results(run_dir: str | Path, skipped: list[str] | None = None) -> list[dict]:
    """Every finished evaluation (``evals/*/result.json``) of the run, sorted by target then
    protocol. Unfinished ones (an unreadable result counts as unfinished) are left out and said why:
    appended to ``skipped``, or else printed as warnings."""
    root = Path(run_dir) / EVALS
    results = []
    unfinished = set(pending(run_dir))
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not (folder / PLAN).exists() and not (folder / RESULT).exists():
            continue
        store = EvalStore(run_dir, folder.name)
        if folder.name in unfinished:
            try:
                store.result()
                reason = f"{folder} is unfinished (finish it with 'qrnn collect {run_dir}')"
            except QRNNError as error:
                reason = str(error)
            if skipped is None:
                print(f"qrnn: warning: {reason}; left out", file=sys.stderr)
            else:
                skipped.append(reason)
            continue
        result = store.result()
        if result is not None:
            results.append(result)
    return sorted(results, key=lambda r: (not is_exact(r), r["target"], r["protocol"]))


def is_exact(result: dict) -> bool:
    """Whether an evaluation ran on the exact target (called ``statevector`` before)."""
    return result["target"] in EXACT_ALIASES


def metric_name(result: dict) -> str | None:
    metrics = result.get("metrics") or {}
    return "accuracy" if "accuracy" in metrics else (next(iter(metrics)) if metrics else None)


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:.4f}"


def retention(result: dict, draws: int = 2000, seed: int = 0) -> tuple[float, float, float] | None:
    """(noisy / noiseless task metric, 95% bootstrap interval low, high) over the evaluation's
    sequences (resampled in pairs); None without per-sequence metrics."""
    import numpy as np

    name = metric_name(result)
    per = dict(result.get("sample_metrics") or {})
    if result.get("reference_metrics"):  # a noise-aware model: its own (shrunk) readouts
        per["exact"] = result["reference_metrics"]
    if not name or name not in per.get("noisy", {}) or name not in per.get("exact", {}):
        return None
    noisy, exact = np.asarray(per["noisy"][name]), np.asarray(per["exact"][name])
    if exact.mean() <= 0:
        return None
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(noisy), size=(draws, len(noisy)))
    ratios = noisy[index].mean(axis=1) / np.maximum(exact[index].mean(axis=1), 1e-12)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(noisy.mean() / exact.mean()), float(low), float(high)


def noise_aware_reference(
    run_dir: str | Path, samples: int, max_steps: int = 0
) -> dict[str, list[float]] | None:
    """Per-sequence task metrics of a noise-aware run (``--train-noise``) through its training
    wrapper without shot noise — the readouts its head was trained on — on the first ``samples``
    evaluation sequences; None for ordinary runs."""
    import torch

    from ..models.noise import NoisyReadoutEngine
    from ..training import load_run, make_task

    config, model, _ = load_run(run_dir)
    engine = getattr(model.core, "engine", None)
    if not isinstance(engine, NoisyReadoutEngine):
        return None
    model.eval()
    task = make_task(config)
    xs, ys = zip(*task.eval_batches())
    x, y = torch.cat(xs)[:samples], torch.cat(ys)[:samples]
    if max_steps and max_steps < y.shape[-1]:
        return None
    shots, engine.shots = engine.shots, 0
    out: dict[str, list[float]] = {}
    try:
        with torch.no_grad():
            outputs = model(x)
    finally:
        engine.shots = shots
    for k in range(len(x)):
        for metric, value in task.metrics(outputs[k : k + 1], y[k : k + 1]).items():
            out.setdefault(metric, []).append(float(value))
    return out


def step_errors(result: dict) -> tuple[list[float], list[float]]:
    """Per timestep: mean |z − z_exact| over sequences and readouts, and the half-width of its 95%
    interval over sequences (1.96 standard errors)."""
    import numpy as np

    if "readouts" not in result or "exact" not in result:
        return list(result["error_per_step"]), [0.0] * result["steps"]
    error = np.abs(np.asarray(result["readouts"]) - np.asarray(result["exact"])).mean(axis=2)
    mean = error.mean(axis=0)
    half = 1.96 * error.std(axis=0, ddof=1) / np.sqrt(len(error)) if len(error) > 1 else 0 * mean
    return mean.tolist(), np.asarray(half).tolist()


def protocol_label(result: dict) -> str:
    """The protocol, with coupling and corrections for dynamic evaluations of a coherent run (a
    measured run's own circuit: "dynamic (measured circuit)")."""
    if result["protocol"] != "dynamic":
        return result["protocol"]
    if (result.get("protocol_details") or {}).get("model") == "mqrnn":
        return "dynamic (measured circuit)"
    config = result.get("config") or {}
    corrections = config.get("corrections", -1)
    return (
        f"dynamic ({config.get('coupling', 'cnot')}, "
        f"{'auto' if corrections < 0 else corrections} corr.)"
    )


def mitigation_label(result: dict) -> str:
    methods = (result.get("mitigation") or {}).get("methods")
    if methods:
        return "+".join(methods)
    options = (result.get("config") or {}).get("mitigate", "none")
    return "none" if options in ("auto", "none") else options


def comparison_table(results: Sequence[dict]) -> str:
    """Markdown: task metric per run × target × protocol with retention and its interval, readout
    errors, and the per-step readout error."""
    if not results:
        raise QRNNError("no evaluations to compare; run 'qrnn eval RUN --target ...' first")
    runs = {r.get("run", "") for r in results}
    rows = [
        ("run",) * (len(runs) > 1)
        + (
            "target",
            "protocol",
            "mitigation",
            "samples × steps",
            "shots",
            "task metric (noisy)",
            "same samples, noiseless",
            "retention [95% CI]",
            "mean abs(z − z_exact)",
            "max",
            "semantics",
        )
    ]
    for r in results:
        name = metric_name(r)
        percent = name == "accuracy"
        noisy = (r.get("metrics") or {}).get(name) if name else None
        exact = (r.get("exact_metrics") or {}).get(name) if name else None
        label = f"{name} " if name else ""
        shots = r["config"]["shots"] if not is_exact(r) else "exact"
        kept = retention(r)
        kept_text = (
            f"{kept[0]:.1%} [{kept[1]:.1%}, {kept[2]:.1%}] (n={r['samples']})" if kept else "n/a"
        )
        if kept and r.get("reference_metrics"):
            kept_text += " vs its training readouts"
        rows.append(
            (r.get("run", ""),) * (len(runs) > 1)
            + (
                r["target"],
                protocol_label(r),
                mitigation_label(r),
                f"{r['samples']} × {r['steps']}",
                str(shots),
                label + _fmt(noisy, percent),
                label + _fmt(exact, percent),
                kept_text,
                f"{r['mean_error']:.4f}",
                f"{r['max_error']:.4f}",
                r["semantics"],
            )
        )
    lines = [markdown_table(rows), "", "Mean abs(z − z_exact) per timestep (± 95% interval):", ""]
    steps = max(r["steps"] for r in results)
    per_step = [("evaluation",) + tuple(f"t={t + 1}" for t in range(steps))]
    for r in results:
        mean, half = step_errors(r)
        errors = [f"{m:.3f}±{h:.3f}" for m, h in zip(mean, half)] + [""] * (steps - r["steps"])
        per_step.append((_series_label(r, len(runs) > 1),) + tuple(errors))
    lines.append(markdown_table(per_step))
    return "\n".join(lines)


def _series_label(result: dict, with_run: bool) -> str:
    head = f"{result.get('run', '')}: " if with_run else ""
    return f"{head}{result['target']} / {protocol_label(result)} / {mitigation_label(result)}"


def _save_figure(figure, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def plot_readout_error(results: Sequence[dict], path: Path) -> Path:
    """One panel per backend (target): mean |z − z_exact| vs t with 95% error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = sorted({r["target"] for r in results if r["target"] != "statevector"}) or [
        results[0]["target"]
    ]
    with_run = len({r.get("run", "") for r in results}) > 1
    columns = min(3, len(targets))
    rows = -(-len(targets) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False, sharey=True
    )
    for axis, target in zip(axes.ravel(), targets):
        for r in (r for r in results if r["target"] == target):
            mean, half = step_errors(r)
            axis.errorbar(
                range(1, r["steps"] + 1),
                mean,
                yerr=half,
                marker=".",
                capsize=2,
                label=_series_label(r, with_run).replace(f"{target} / ", ""),
            )
        axis.set_title(target, fontsize=9)
        axis.set_xlabel("timestep t")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6)
    for axis in axes[:, 0]:
        axis.set_ylabel("mean |z_t − z_t(exact)|")
    for axis in axes.ravel()[len(targets) :]:
        axis.set_visible(False)
    figure.suptitle("QRNN readout error vs timestep (95% intervals over sequences)")
    _save_figure(figure, path)
    return path


def sweep_results(results: Sequence[dict]) -> list[tuple[float, dict]]:
    """(p, result) of the depolarizing replay evaluations, by p."""
    out = []
    for r in results:
        if r["protocol"] == "replay" and r["target"].startswith("aer-noisy:depolarizing:"):
            out.append((float(r["target"].split(":")[2]), r))
    return sorted(out, key=lambda pr: pr[0])


def plot_sweep(results: Sequence[dict], path: Path) -> Path | None:
    points = sweep_results(results)
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    ps = [p for p, _ in points]
    name = metric_name(points[0][1])
    if name:
        left.plot(ps, [r["metrics"][name] for _, r in points], marker="o", label="noisy replay")
        left.plot(
            ps,
            [r["exact_metrics"][name] for _, r in points],
            linestyle="--",
            label="noiseless (same samples)",
        )
        left.set_ylabel(f"task {name}")
        left.legend(fontsize=8)
    else:
        left.text(
            0.5, 0.5, "no task metric (truncated sequences)", ha="center", transform=left.transAxes
        )
    right.plot(ps, [r["mean_error"] for _, r in points], marker="o")
    right.set_ylabel("mean |z − z_exact|")
    for axis in (left, right):
        axis.set_xlabel("two-qubit depolarizing probability p")
        axis.set_xscale("symlog", linthresh=min([p for p in ps if p > 0], default=1e-3))
        axis.grid(alpha=0.3)
    figure.suptitle("QRNN under depolarizing noise (replay protocol)")
    _save_figure(figure, path)
    return path


def run_sweep(
    run_dir: str | Path,
    ps: Sequence[float],
    *,
    samples: int,
    shots: int,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> None:
    """Replay evaluations on ``aer-noisy:depolarizing:<p>`` for every p not evaluated yet."""
    done = {p for p, _ in sweep_results(load_results(run_dir))}
    for p in ps:
        if not 0 <= p <= 1:
            raise QRNNError(f"--sweep values must be probabilities in [0, 1], got {p}")
        if p in done:
            continue
        config = EvalConfig(
            target=f"aer-noisy:depolarizing:{p:g}",
            protocol="replay",
            shots=shots,
            samples=samples,
            seed=seed,
        )
        log(f"\n== sweep p={p:g} -> {eval_name(config)}")
        run_evaluation(run_dir, config, progress=progress, log=log)


def compare(
    run_dir: str | Path,
    *,
    sweep: Sequence[float] = (),
    samples: int = 8,
    shots: int = 4000,
    progress: bool = True,
    log: Callable[[str], None] = print,
    others: Sequence[str | Path] = (),
) -> tuple[str, list[Path]]:
    """Write RUN/comparison.md and the PNG plots; return (markdown, plot paths). ``others``: more
    runs (e.g. a noise-aware model) whose evaluations are shown side by side."""
    from ..training import RunDir

    run_dir = RunDir(run_dir).path
    for path in (run_dir, *map(Path, others)):
        if not (path / "config.json").exists():
            raise QRNNError(f"{path} is not a run directory (no config.json)")
    for p in sweep:
        if not 0 <= p <= 1:
            raise QRNNError(f"--sweep values must be probabilities in [0, 1], got {p}")
    if sweep:
        run_sweep(run_dir, sweep, samples=samples, shots=shots, progress=progress, log=log)
    skipped: list[str] = []
    results = []
    for path in (run_dir, *map(Path, others)):
        for r in load_results(path, skipped):
            r["run"] = Path(path).name
            if r.get("metrics"):
                reference = noise_aware_reference(path, r["samples"], r["config"]["max_steps"])
                if reference:
                    r["reference_metrics"] = reference
            results.append(r)
    if not results and skipped:
        raise QRNNError(
            skipped[0] if len(skipped) == 1 else f"no finished evaluations: {'; '.join(skipped)}"
        )
    for reason in skipped:
        print(f"qrnn: warning: {reason}; left out", file=sys.stderr)
    table = comparison_table(results)
    plots = [plot_readout_error(results, run_dir / "readout_error.png")]
    swept = plot_sweep(results, run_dir / "depolarizing_sweep.png")
    if swept:
        plots.append(swept)
    atomic_write_bytes(
        run_dir / "comparison.md", (f"# {run_dir.name}: noiseless vs noisy\n\n{table}\n").encode()
    )
    return table, plots
