"""Replay a trained run on fake backends with each mitigation setting; print one table row each.

    python experiments/hw_replay.py RUN --targets fake_fez,fake_kingston,fake_torino \
        --mitigate none,esp --samples 32 --shots 4000

Each row: target, mitigation, samples × steps, accuracy (noisy / noiseless, retention with a 95%
bootstrap interval over sequences), mean |Δz|, seconds. Results stay in RUN/evals/.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def retention_ci(noisy, exact, draws=2000, seed=0):
    noisy, exact = np.asarray(noisy), np.asarray(exact)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(noisy), size=(draws, len(noisy)))
    ratio = noisy[idx].mean(1) / np.maximum(exact[idx].mean(1), 1e-12)
    return noisy.mean() / max(exact.mean(), 1e-12), np.percentile(ratio, [2.5, 97.5])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--targets", default="fake_fez")
    parser.add_argument("--mitigate", default="none,esp")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--shots", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", default="replay")
    parser.add_argument("--coupling", default="cnot")
    parser.add_argument("--corrections", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--twins", type=int, default=8)
    parser.add_argument("--json", help="append result rows to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from qrnn_qiskit.evaluation.config import EvalConfig
    from qrnn_qiskit.evaluation.runner import run_evaluation

    print(
        "| target | mitigate | samples × steps | acc noisy | acc noiseless | retention [95% CI] "
        "| mean abs Δz | raw abs Δz | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for target in args.targets.split(","):
        full = (
            target if ":" in target or target in ("aer", "statevector") else f"aer-noisy:{target}"
        )
        for mitigate in args.mitigate.split("/"):
            config = EvalConfig(
                target=full,
                protocol=args.protocol,
                shots=args.shots,
                samples=args.samples,
                seed=args.seed,
                mitigate=mitigate.replace("+", ","),
                twins=args.twins,
                coupling=args.coupling,
                corrections=args.corrections,
                max_steps=args.max_steps,
            )
            started = time.perf_counter()
            r = run_evaluation(args.run, config, progress=False, log=lambda _: None)
            seconds = time.perf_counter() - started
            sm = r.get("sample_metrics")
            if sm:
                ret, (lo, hi) = retention_ci(sm["noisy"]["accuracy"], sm["exact"]["accuracy"])
                acc = f"{r['metrics']['accuracy']:.1%}"
                exact = f"{r['exact_metrics']['accuracy']:.1%}"
                retention = f"{ret:.1%} [{lo:.1%}, {hi:.1%}]"
            else:
                acc = exact = retention = "n/a"
            raw = (r.get("mitigation") or {}).get("raw_mean_error")
            print(
                f"| {target} | {mitigate} | {r['samples']} × {r['steps']} | {acc} | {exact} | "
                f"{retention} | {r['mean_error']:.4f} | "
                f"{'' if raw is None else f'{raw:.4f}'} | {seconds:.0f} |",
                flush=True,
            )
            if args.json:
                with open(args.json, "a") as handle:
                    row = {
                        k: r[k]
                        for k in (
                            "name",
                            "target",
                            "mean_error",
                            "metrics",
                            "exact_metrics",
                            "error_per_step",
                            "samples",
                            "steps",
                        )
                    }
                    row.update(
                        mitigate=mitigate,
                        seconds=seconds,
                        run=args.run,
                        mitigation=r.get("mitigation"),
                        layout=r.get("layout"),
                    )
                    handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
