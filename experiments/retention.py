"""Retention (noisy / reference accuracy, 95% bootstrap interval) of every finished evaluation of
the given runs, as `qrnn compare` computes it (noise-aware runs against their training readouts).

    python experiments/retention.py runs/hw/std-cz4 runs/hw/na-fez
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def main() -> None:
    torch.set_num_threads(1)
    from qrnn_qiskit.evaluation.compare import (
        load_results,
        mitigation_label,
        noise_aware_reference,
        retention,
    )

    print(
        "| run | target | protocol | mitigation | n × T | shots | acc | reference acc | "
        "retention [95% CI] | mean abs Δz |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in sys.argv[1:]:
        for r in load_results(run):
            if not r.get("metrics"):
                continue
            ref = noise_aware_reference(run, r["samples"], r["config"]["max_steps"])
            if ref:
                r["reference_metrics"] = ref
            kept = retention(r)
            ref_acc = (
                (sum(ref["accuracy"]) / len(ref["accuracy"]))
                if ref
                else (r["exact_metrics"]["accuracy"])
            )
            label = " (training readouts)" if ref else ""
            text = f"{kept[0]:.1%} [{kept[1]:.1%}, {kept[2]:.1%}]" if kept else "n/a"
            print(
                f"| {Path(run).name} | {r['target']} | {r['protocol']} | {mitigation_label(r)} | "
                f"{r['samples']} × {r['steps']} | {r['config']['shots']} | "
                f"{r['metrics']['accuracy']:.1%} | {ref_acc:.1%}{label} | {text} | "
                f"{r['mean_error']:.4f} |"
            )


if __name__ == "__main__":
    main()
