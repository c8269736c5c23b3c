"""The hardware part of ``qrnn demo``: the trained QRNN replayed exactly and on one noisy fake
backend."""

from __future__ import annotations

import time
from pathlib import Path

from ..formatting import markdown_table
from .config import EvalConfig
from .runner import run_evaluation

DEMO_TARGET = "aer-noisy:fake_fez"
DEMO_SAMPLES = 2
DEMO_SHOTS = 1000


def demo_noisy_comparison(
    run_dir: str | Path,
    target: str = DEMO_TARGET,
    samples: int = DEMO_SAMPLES,
    shots: int = DEMO_SHOTS,
    progress: bool = True,
) -> dict:
    """Replay ``samples`` evaluation sequences on ``target``; print the task metric next to the
    noiseless one."""
    started = time.perf_counter()
    print(
        f"\n== hardware check: replaying the trained QRNN on {samples} sequences on {target} "
        f"({shots} shots per circuit; the resource report below is what real hardware would cost)"
    )
    config = EvalConfig(target=target, protocol="replay", samples=samples, shots=shots)
    result = run_evaluation(run_dir, config, progress=progress)
    exact, noisy = result["exact_metrics"], result["metrics"]
    rows = [
        ("readouts", "recalled acc", "loss", "mean abs(z − z_exact)", "max"),
        ("noiseless (trained model)", f"{exact['accuracy']:.1%}", f"{exact['loss']:.4f}", "0", "0"),
        (
            f"{target}, replay",
            f"{noisy['accuracy']:.1%}",
            f"{noisy['loss']:.4f}",
            f"{result['mean_error']:.4f}",
            f"{result['max_error']:.4f}",
        ),
    ]
    print(
        f"\nQRNN replay, {samples} sequences ({time.perf_counter() - started:.0f} s; "
        f"more with: qrnn compare {run_dir})"
    )
    print(markdown_table(rows))
    return result
