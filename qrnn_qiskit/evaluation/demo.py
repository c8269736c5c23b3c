"""The hardware part of ``qrnn demo``: the trained QRNN replayed on one noisy fake backend, raw and
with the in-loop ESP rescale, next to the noiseless model."""

from __future__ import annotations

import time
from pathlib import Path

from ..formatting import markdown_table
from .compare import retention
from .config import EvalConfig
from .runner import run_evaluation

DEMO_TARGET = "aer-noisy:fake_fez"
DEMO_SAMPLES = 2
DEMO_SHOTS = 2000
DEMO_MITIGATIONS = ("esp",)  # add "none" for a raw replay (one more replay's time)


def _row(label: str, result: dict) -> tuple:
    noisy = result["metrics"]
    kept = retention(result)
    kept_text = f"{kept[0]:.0%} [{kept[1]:.0%}, {kept[2]:.0%}]" if kept else "n/a"
    return (
        label,
        f"{noisy['accuracy']:.1%}",
        kept_text,
        f"{noisy['loss']:.4f}",
        f"{result['mean_error']:.4f}",
        f"{result['max_error']:.4f}",
    )


def demo_noisy_comparison(
    run_dir: str | Path,
    target: str = DEMO_TARGET,
    samples: int = DEMO_SAMPLES,
    shots: int = DEMO_SHOTS,
    progress: bool = True,
    mitigations: tuple[str, ...] = DEMO_MITIGATIONS,
) -> dict:
    """Replay ``samples`` evaluation sequences on ``target`` for each mitigation; print the task
    metric and its retention (noisy / noiseless, 95% bootstrap interval) next to the noiseless
    one. Returns the last (mitigated) result."""
    started = time.perf_counter()
    print(
        f"\n== hardware check: replaying the trained QRNN on {samples} sequences on {target} "
        f"({shots} shots per circuit, raw and with the in-loop ESP rescale; the resource report "
        "below is what real hardware would cost)"
    )
    results = []
    for i, mitigate in enumerate(mitigations):
        config = EvalConfig(
            target=target, protocol="replay", samples=samples, shots=shots, mitigate=mitigate
        )
        log = print if i == len(mitigations) - 1 else (lambda _: None)
        results.append(run_evaluation(run_dir, config, progress=progress, log=log))
    exact = results[-1]["exact_metrics"]
    rows = [
        ("readouts", "recalled acc", "retention [95% CI]", "loss", "mean abs(z − z_exact)", "max"),
        ("noiseless (trained model)", f"{exact['accuracy']:.1%}", "100%", f"{exact['loss']:.4f}")
        + ("0", "0"),
    ]
    for mitigate, result in zip(mitigations, results):
        label = "raw" if mitigate == "none" else f"--mitigate {mitigate}"
        rows.append(_row(f"{target}, replay, {label}", result))
    print(
        f"\nQRNN replay, {samples} sequences ({time.perf_counter() - started:.0f} s; "
        f"more with: qrnn compare {run_dir})"
    )
    print(markdown_table(rows))
    raw = (results[-1].get("mitigation") or {}).get("raw_mean_error")
    if raw is not None:
        print(
            f"(the same circuits' estimates before the rescale: mean abs(z − z_exact) {raw:.4f}; "
            "the rescale divides by the predicted shrink, no extra shots)"
        )
    return results[-1]
