"""`qrnn demo`: a small coherent QRNN, a same-size LSTM and a measured QRNN trained on copying
memory at equal budgets, compared in one table; then the coherent QRNN's replay and the measured
QRNN's own dynamic circuits on one noisy Heron fake backend."""

from __future__ import annotations

import time
from pathlib import Path

from .data.copying import memoryless_baseline
from .evaluation.demo import DEMO_SAMPLES, DEMO_SHOTS, DEMO_TARGET, demo_hardware_table
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
# equal training budgets (wall-clock minutes each), so no model wins by training longer
DEMO_MINUTES = {"qrnn": 1.0, "lstm": 1.0, "mqrnn": 1.0}
# per-model changes: the measured QRNN's controller writes 1 + k angle sets per step (linear
# feedforward of k = 4 bits), so a width of 30 matches the coherent QRNN's parameters (3,199 vs
# 3,173); the LSTM is matched by --match-params' rule
DEMO_MODEL_OPTIONS = {"mqrnn": {"width": 30}}


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
    minutes: float | None = None,
    root: Path | None = None,
    progress: bool = True,
    samples: int = DEMO_SAMPLES,
    shots: int = DEMO_SHOTS,
    target: str = DEMO_TARGET,
) -> list[RunResult]:
    """Train the demo QRNN, a parameter-matched LSTM and a measured QRNN (the coherent QRNN's
    circuit and controller size, measured weakly every step, linear feedforward), print and return
    the comparison, then the hardware table."""
    root = root or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    scale = minutes / sum(DEMO_MINUTES.values()) if minutes else 1.0
    base = DEMO_CONFIG.replace(progress=progress)
    results = []
    for model in DEMO_MINUTES:
        options = DEMO_MODEL_OPTIONS.get(model, {})
        config = base.replace(model=model, max_minutes=DEMO_MINUTES[model] * scale, **options)
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
        f"QRNN and measured QRNN (mqrnn): {spec.n_qubits} qubits × {spec.layers} layers, LSTM "
        f"matched in parameters; equal budgets of {DEMO_MINUTES['qrnn'] * scale:.1f} min of "
        "training each"
    )
    print(format_table(results, baseline))
    runs = (root / "qrnn", root / "mqrnn")
    demo_hardware_table(*runs, target=target, samples=samples, shots=shots, progress=progress)
    return results
