"""Accuracy of a run on its task's first K evaluation sequences through the noise-aware wrapper
(the readouts it was trained to expect) — the reference for a noise-aware model's retention.

    python experiments/wrapper_accuracy.py RUN --samples 32 [--shots 4000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from qrnn_qiskit.evaluation.runner import load_samples
    from qrnn_qiskit.models.noise import NoisyReadoutEngine

    _, model, task, x, y, _ = load_samples(args.run, args.samples)
    record = json.loads((Path(args.run) / "train_noise.json").read_text())
    shrink = np.array(record["shrink"]) if record["shrink"] is not None else None
    base = model.core.engine
    accs = []
    for seed in range(args.seeds):
        model.core.engine = NoisyReadoutEngine(
            base, shrink, args.shots, generator=torch.Generator().manual_seed(seed)
        )
        with torch.no_grad():
            accs.append(task.metrics(model(x), y)["accuracy"])
    model.core.engine = base
    with torch.no_grad():
        plain = task.metrics(model(x), y)["accuracy"]
    print(
        f"{args.run}: wrapper ({record['spec']}, shots={args.shots}) accuracy "
        f"{np.mean(accs):.1%} over {args.seeds} seed(s) on {args.samples} sequences; "
        f"bare engine {plain:.1%}"
    )


if __name__ == "__main__":
    main()
