"""`qrnn demo`: a small QRNN and a same-size LSTM trained on copying memory, compared in one
table."""

from __future__ import annotations

import time
from pathlib import Path

from .data.copying import memoryless_baseline
from .evaluation.demo import demo_noisy_comparison
from .formatting import markdown_table
from .training import RunResult, TrainConfig, Trainer

# Chosen so the QRNN clearly beats the memoryless baseline on this 2-core machine within the budget:
# 4 qubits and lr 1e-2 learned fastest in the step-matched ablation (docs/results.md, "Copying
# memory").
DEMO_CONFIG = TrainConfig.flat(
    task="copying",
    model="qrnn",
    delay=5,
    qubits=4,
    layers=2,
    entangler="cz_chain",  # hardware-native: a line of CZ embeds on heavy-hex without SWAPs
    width=64,
    depth=1,
    activation="gelu",
    batch_size=64,
    lr=1e-2,
    clip=1.0,
    steps=100_000,
    eval_every=200,  # each evaluation (512 sequences and the loop-gain monitor) adds wall time
    eval_size=512,
    threads=1,
)
# equal training budgets (wall-clock minutes each), so neither model wins by training longer
DEMO_MINUTES = {"qrnn": 1.75, "lstm": 1.75}


def format_table(results: list[RunResult], baseline: float) -> str:
    header = (
        "model", "params", "steps", "seconds", "recalled acc", "all-position acc", "loss",
        "loss / baseline",
    )  # fmt: skip
    rows = [header]
    for r in results:
        rows.append(
            (
                r.config.model.kind,
                str(r.parameters),
                str(r.steps),
                f"{r.seconds:.0f}",
                f"{r.metrics['accuracy']:.1%}",
                f"{r.metrics['all_position_accuracy']:.1%}",
                f"{r.metrics['loss']:.4f}",
                f"{r.metrics['loss'] / baseline:.2f}",
            )
        )
    rows.append(("memoryless", "0", "-", "-", "12.5%", "-", f"{baseline:.4f}", "1.00"))
    return markdown_table(rows)


def run_demo(
    minutes: float | None = None, root: Path | None = None, progress: bool = True
) -> list[RunResult]:
    """Train the demo QRNN and a parameter-matched LSTM, print and return the comparison."""
    root = root or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    scale = minutes / sum(DEMO_MINUTES.values()) if minutes else 1.0
    base = DEMO_CONFIG.replace(progress=progress)
    results = []
    for model in ("qrnn", "lstm"):
        config = base.replace(model=model, max_minutes=DEMO_MINUTES[model] * scale)
        print(
            f"\n== training {model} on copying memory (delay {config.task.delay}) for up to "
            f"{config.run.max_minutes:.1f} min -> {root / model}"
        )
        trainer = Trainer.from_config(config, root / model, argv=["qrnn", "demo"])
        results.append(trainer.fit())
        print(results[-1].summary)
    baseline = memoryless_baseline(base.task.delay)
    spec = base.qrnn.spec
    print(
        f"\nCopying memory, delay T={base.task.delay} (sequence length {base.task.delay + 20}), "
        f"QRNN: {spec.n_qubits} qubits × {spec.layers} layers, LSTM matched in parameters; "
        f"equal budgets of {DEMO_MINUTES['qrnn'] * scale:.1f} min of training each"
    )
    print(format_table(results, baseline))
    demo_noisy_comparison(root / "qrnn", progress=progress)
    return results
