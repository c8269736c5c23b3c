"""The validation-loss trend of every run of the measured bench (qrnn bench's table shows the picked
metric, accuracy, only): per task, model and seed, the loss every 200 steps and the best accuracy.

    python experiments/measured/losses.py [runs/bench/measured]
"""

import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/bench/measured")
print("| task | model | seed | validation loss at steps 200, 400, … | best accuracy | s |")
print("|---|---|---|---|---|---|")
for task in sorted(p for p in root.iterdir() if p.is_dir()):
    for model in sorted(p for p in task.iterdir() if p.is_dir()):
        runs = []
        for trial in model.glob("trial-*"):
            if not (trial / "metrics.jsonl").exists():
                continue  # not started yet
            seed = json.loads((trial / "config.json").read_text())["config"]["run"]["seed"]
            lines = (trial / "metrics.jsonl").read_text().splitlines()
            runs.append((seed, [r for r in map(json.loads, lines) if "loss" in r]))
        for seed, rows in sorted(runs, key=lambda run: run[0]):
            if not rows:
                continue
            losses = " ".join(f"{r['loss']:.3f}" for r in rows if r["step"] % 200 == 0)
            best = max(r["accuracy"] for r in rows)
            print(
                f"| {task.name} | {model.name} | {seed} | {losses} | {100 * best:.1f}% | "
                f"{rows[-1]['seconds']:.0f} |"
            )
