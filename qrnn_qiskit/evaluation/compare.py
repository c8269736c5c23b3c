"""Noiseless vs noisy: a Markdown table of every evaluation of a run and PNG plots.

Plots: ``readout_error.png`` (mean |z − z_exact| vs timestep, one line per target × protocol) and
``depolarizing_sweep.png`` (task metric and readout error vs depolarizing strength p of the replay
runs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..backends.noisy import EXACT_ALIASES
from ..errors import QRNNError
from ..fileio import atomic_write_bytes
from ..formatting import markdown_table
from ..training.rundir import EVALS
from .config import EvalConfig
from .runner import PLAN, RESULT, EvalStore, eval_name, pending, run_evaluation


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


def comparison_table(results: Sequence[dict]) -> str:
    """Markdown: task metric per target × protocol, readout errors, and the per-step readout
    error."""
    if not results:
        raise QRNNError("no evaluations to compare; run 'qrnn eval RUN --target ...' first")
    rows = [
        (
            "target",
            "protocol",
            "samples × steps",
            "shots",
            "task metric (noisy)",
            "same samples, noiseless",
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
        rows.append(
            (
                r["target"],
                r["protocol"],
                f"{r['samples']} × {r['steps']}",
                str(shots),
                label + _fmt(noisy, percent),
                label + _fmt(exact, percent),
                f"{r['mean_error']:.4f}",
                f"{r['max_error']:.4f}",
                r["semantics"],
            )
        )
    lines = [markdown_table(rows), "", "Mean abs(z − z_exact) per timestep:", ""]
    steps = max(r["steps"] for r in results)
    per_step = [("target / protocol",) + tuple(f"t={t + 1}" for t in range(steps))]
    for r in results:
        errors = [f"{e:.3f}" for e in r["error_per_step"]] + [""] * (steps - r["steps"])
        per_step.append((f"{r['target']} / {r['protocol']}",) + tuple(errors))
    lines.append(markdown_table(per_step))
    return "\n".join(lines)


def _save_figure(figure, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def plot_readout_error(results: Sequence[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for r in results:
        axis.plot(
            range(1, r["steps"] + 1),
            r["error_per_step"],
            marker=".",
            label=f"{r['target']} / {r['protocol']}",
        )
    axis.set_xlabel("timestep t")
    axis.set_ylabel("mean |z_t − z_t(exact)|")
    axis.set_title("QRNN readout error vs timestep")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
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
) -> tuple[str, list[Path]]:
    """Write RUN/comparison.md and the PNG plots; return (markdown, plot paths)."""
    from ..training import RunDir

    run_dir = RunDir(run_dir).path
    if not (run_dir / "config.json").exists():
        raise QRNNError(f"{run_dir} is not a run directory (no config.json)")
    for p in sweep:
        if not 0 <= p <= 1:
            raise QRNNError(f"--sweep values must be probabilities in [0, 1], got {p}")
    if sweep:
        run_sweep(run_dir, sweep, samples=samples, shots=shots, progress=progress, log=log)
    skipped: list[str] = []
    results = load_results(run_dir, skipped)
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
