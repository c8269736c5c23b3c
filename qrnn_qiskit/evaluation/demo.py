"""The hardware part of ``qrnn demo``: the trained coherent QRNN replayed on one noisy fake backend
(with the in-loop ESP rescale) beside the measured QRNN's own dynamic circuits on the same backend,
each next to its noiseless model, with what each would cost on hardware."""

from __future__ import annotations

import time
from pathlib import Path

from ..formatting import markdown_table
from .compare import retention
from .config import EvalConfig
from .runner import run_evaluation

DEMO_TARGET = "aer-noisy:fake_boston"  # a Heron r3 snapshot (the documented default)
# sized so the demo stays near 8 minutes on a 2-core machine: the measured model's dynamic circuits
# run shot by shot with idle relaxation (docs/measured.md, "Evaluation cost on aer-noisy:<fake>")
DEMO_SAMPLES = 6
DEMO_SHOTS = 1000


def _qpu(result: dict) -> str:
    seconds = (result.get("resources") or {}).get("qpu_seconds")
    return f"{seconds:,.1f}" if seconds is not None else "n/a"


def demo_hardware_table(
    qrnn_run: str | Path,
    mqrnn_run: str | Path,
    target: str = DEMO_TARGET,
    samples: int = DEMO_SAMPLES,
    shots: int = DEMO_SHOTS,
    progress: bool = True,
) -> list[dict]:
    """The coherent QRNN's replay (``--mitigate auto``: the ESP rescale on calibrated targets) and
    the measured QRNN's dynamic circuits on ``target``, ``samples`` sequences each: one table with
    the noiseless and noisy accuracy, the retention (95% bootstrap interval), and the circuits,
    sequential rounds and estimated QPU seconds each protocol needs. Returns the two results."""
    started = time.perf_counter()
    print(
        f"\n== hardware check on {target}: the coherent QRNN's replay beside the measured QRNN's "
        f"own dynamic circuits ({samples} sequences, {shots} shots per circuit)"
    )
    replay = run_evaluation(
        qrnn_run,
        EvalConfig(target=target, protocol="replay", samples=samples, shots=shots, mitigate="auto"),
        progress=progress,
    )
    measured = run_evaluation(
        mqrnn_run,
        EvalConfig(target=target, protocol="dynamic", samples=samples, shots=shots),
        progress=progress,
    )
    rows = [
        (
            "model", "protocol", "circuits", "rounds", "est. QPU s", "noiseless acc", "noisy acc",
            "retention [95% CI]", "mean abs(z − z_exact)",
        )
    ]  # fmt: skip
    # auto: the in-loop ESP rescale where the target has calibrated errors (fake backends)
    rescaled = "replay, ESP rescale" if replay.get("mitigation") else "replay"
    for label, protocol, result in (
        ("qrnn (coherent)", rescaled, replay),
        ("mqrnn (measured)", "its dynamic circuit", measured),
    ):
        resources = result.get("resources") or {}
        kept = retention(result)
        rows.append(
            (
                label,
                protocol,
                f"{resources.get('circuits', 0):,}",
                str(resources.get("rounds", "")),
                _qpu(result),
                f"{result['exact_metrics']['accuracy']:.1%}",
                f"{result['metrics']['accuracy']:.1%}",
                f"{kept[0]:.0%} [{kept[1]:.0%}, {kept[2]:.0%}]" if kept else "n/a",
                f"{result['mean_error']:.4f}",
            )
        )
    print(
        f"\nOn {target}, {samples} sequences ({time.perf_counter() - started:.0f} s; more with: "
        f"qrnn compare {qrnn_run} / {mqrnn_run})"
    )
    print(markdown_table(rows))
    return [replay, measured]
