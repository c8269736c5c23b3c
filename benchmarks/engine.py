"""Statevector engine benchmark: the package's engine side by side with a plain per-gate reference.

    python benchmarks/engine.py                      # grid n=4,8,12,14 × B=32,128, L=2, step and
    T=28 python benchmarks/engine.py --qubits 4 8 12 --batch 32          # the foundation issue's
    table python benchmarks/engine.py --memory-check       # n=12, B=64, T=784 forward+backward peak
    memory python benchmarks/engine.py --device cuda --qubits 12 16 20

Each (engine, n, B) runs in a fresh subprocess so that peak RSS belongs to that configuration alone.
Figures: median and range of wall-clock time over --repeats runs, amplitude-gate updates per second
(B · 2^n · gates · T / forward time), peak memory. Nothing here is a test; results go to
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

from grid import (
    add_grid_arguments,
    spawn,
)  # benchmarks/grid.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(job: dict) -> dict:
    import torch
    from reference_engine import PlainEngine

    from qrnn_qiskit.backends import StatevectorEngine
    from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    if job.get("native_threads"):
        from qrnn_qiskit.backends import native

        native.set_threads(job["native_threads"])
    device = torch.device(job["device"])
    n, batch, layers, seq_len = job["n"], job["batch"], job["layers"], job["seq_len"]
    spec = QRNNSpec(n, layers, "cx_ring", "xyz")
    circuit = step_circuit(spec)
    gates = sum(1 for ins in circuit.data if ins.operation.name != "barrier")
    if job["engine"] == "plain":
        engine = PlainEngine(spec, device=str(device))
    else:  # the package's engine with its native kernels or its torch path
        engine = StatevectorEngine(
            circuit, readout_observables(spec), device=device, kernel=job["engine"]
        )

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    gen = torch.Generator().manual_seed(0)
    angles = torch.randn(batch, seq_len, spec.n_params, generator=gen).to(device)

    def run(steps: int, backward: bool) -> None:
        a = angles[:, :steps].clone().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            state, total = engine.initial_state(batch), 0.0
            if job["engine"] != "plain" and backward:
                values, _ = engine.sequence(a)
                total = values.sum()
            else:
                for t in range(steps):
                    state = engine.step(state, a[:, t])
                    total = total + engine.readouts(state).sum()
            if backward:
                total.backward()
        sync()

    results = {}
    base_rss = _peak_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    lengths = (
        (("step", 1), (f"T={seq_len}", seq_len)) if job.get("sequences", True) else (("step", 1),)
    )
    for label, steps in lengths:
        for backward in (False, True):
            run(steps, backward)  # warm-up
            times = []
            deadline = time.perf_counter() + job["max_seconds"]
            for _ in range(job["repeats"]):
                started = time.perf_counter()
                run(steps, backward)
                times.append(time.perf_counter() - started)
                if time.perf_counter() > deadline and len(times) >= 3:
                    break
            key = f"{label} {'fwd+bwd' if backward else 'fwd'}"
            results[key] = {
                "median_ms": 1e3 * statistics.median(times),
                "min_ms": 1e3 * min(times),
                "max_ms": 1e3 * max(times),
                "repeats": len(times),
                "updates_per_s": batch * (1 << n) * gates * steps / statistics.median(times),
            }
    peak = (
        (torch.cuda.max_memory_allocated(device) / 2**20)
        if device.type == "cuda"
        else _peak_mb() - base_rss
    )
    return {"results": results, "peak_mb": peak, "gates": gates}


def _memory_worker(job: dict) -> dict:
    """QRNN-style loop (controller = linear map of the readouts) over T steps, forward +
    backward."""
    import torch

    from qrnn_qiskit.backends import ReversibleTape, StatevectorEngine
    from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    spec = QRNNSpec(job["n"], job["layers"])
    engine = StatevectorEngine(
        step_circuit(spec), readout_observables(spec), device=job["device"], kernel=job["kernel"]
    )
    controller = torch.nn.Linear(spec.n_readouts + 8, spec.n_params).to(job["device"])
    inputs = torch.randn(job["batch"], job["seq_len"], 8, device=job["device"])
    base_rss = _peak_mb()
    started = time.perf_counter()
    state = engine.initial_state(job["batch"])
    z = engine.readouts(state).detach()
    tape, total = ReversibleTape(), 0.0
    for t in range(job["seq_len"]):
        state, z = engine.step_readouts(state, controller(torch.cat([inputs[:, t], z], 1)), tape)
        total = total + z.square().mean()
    total.backward()
    seconds = time.perf_counter() - started
    state_mb = job["batch"] * (1 << job["n"]) * 8 / 2**20
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb() - base_rss,
        "state_mb": state_mb,
        "kernel": engine.kernel,
        "grad_norm": float(controller.weight.grad.norm()),
    }


def _plain_fits(n: int, batch: int, seq_len: int, layers: int, budget_gb: float) -> bool:
    """Plain autograd keeps ~ (2·n·layers + 4) states per step; skip runs that would not fit."""
    return batch * (1 << n) * 8 * seq_len * (2 * n * layers + 4) / 2**30 <= budget_gb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(parser)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument(
        "--native-threads",
        type=int,
        default=0,
        help="threads of the native kernels (0: as many as torch's)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--engines",
        default="native,torch,plain",
        help="native / torch: the package's engine with that kernel; plain: the reference. "
        "Ratios are against the first one",
    )
    parser.add_argument("--plain-memory-gb", type=float, default=6.0)
    parser.add_argument(
        "--memory-check", action="store_true", help="n=12, B=64, T=784 forward+backward memory"
    )
    parser.add_argument(
        "--out", help="JSON path (default: benchmarks/results/engine-<device>[-memory].json)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(_memory_worker(job) if job.get("memory") else _worker(job)))
        return

    import torch

    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "device": args.device,
        "threads": args.threads or torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = Path(
        args.out
        or ROOT
        / "benchmarks"
        / "results"
        / f"engine-{args.device}{'-memory' if args.memory_check else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)

    if args.memory_check:
        job = {
            "memory": True,
            "n": 12,
            "batch": 64,
            "layers": args.layers,
            "seq_len": 784,
            "device": args.device,
            "threads": args.threads,
            "kernel": args.engines.split(",")[0],
        }
        result = spawn(__file__, job)
        print(f"n=12 B=64 L={args.layers} T=784 forward+backward (reversible engine): {result}")
        out.write_text(json.dumps({"meta": meta, "memory_check": {**job, **result}}, indent=2))
        return

    rows = []
    for n in args.qubits:
        for batch in args.batch:
            entry = {"n": n, "batch": batch}
            for engine in args.engines.split(","):
                sequences = engine != "plain" or _plain_fits(
                    n, batch, args.seq_len, args.layers, args.plain_memory_gb
                )
                if not sequences and not _plain_fits(
                    n, batch, 1, args.layers, args.plain_memory_gb
                ):
                    entry[engine] = {
                        "error": f"skipped: plain autograd would need > {args.plain_memory_gb} GB"
                    }
                    continue
                job = {
                    "engine": engine,
                    "n": n,
                    "batch": batch,
                    "layers": args.layers,
                    "seq_len": args.seq_len,
                    "repeats": args.repeats,
                    "max_seconds": args.max_seconds,
                    "device": args.device,
                    "threads": args.threads,
                    "native_threads": args.native_threads,
                    "sequences": sequences,
                }
                entry[engine] = spawn(__file__, job)
                print(f"  measured {engine:5s} n={n:2d} B={batch:3d}", file=sys.stderr, flush=True)
            rows.append(entry)

    engines = args.engines.split(",")
    subject, others = engines[0], engines[1:]
    header = (
        f"| n | B | measurement | {subject} ms (range) | "
        + "".join(f"{o} ms | " for o in others)
        + "".join(f"{o}/{subject} | " for o in others)
        + f"{subject} M amp·gate/s | "
        + "".join(f"{e} peak MB | " for e in engines)
    )
    native_threads = (
        f", native kernels {args.native_threads} threads" if args.native_threads else ""
    )
    print(
        f"\nStatevector engine, L={args.layers}, {meta['device']}, {meta['threads']} torch "
        f"threads{native_threads}, "
        f"torch {meta['torch']}"
    )
    print(header.rstrip())
    print("|---" * (header.count("|") - 1) + "|")
    for entry in rows:
        keys = next((entry[e]["results"] for e in engines if "results" in entry.get(e, {})), {})
        for key in keys:
            measured = {e: entry.get(e, {}).get("results", {}).get(key) for e in engines}
            first = measured[subject]
            cells = [
                str(entry["n"]),
                str(entry["batch"]),
                key,
                f"{first['median_ms']:.2f} ({first['min_ms']:.2f}–{first['max_ms']:.2f})"
                if first
                else entry.get(subject, {}).get("error", "-"),
            ]
            for o in others:
                cells.append(
                    f"{measured[o]['median_ms']:.2f}"
                    if measured[o]
                    else entry.get(o, {}).get(
                        "error", f"skipped: needs > {args.plain_memory_gb} GB"
                    )
                )
            for o in others:
                cells.append(
                    f"{measured[o]['median_ms'] / first['median_ms']:.1f}×"
                    if first and measured[o]
                    else "-"
                )
            cells.append(f"{first['updates_per_s'] / 1e6:.0f}" if first else "-")
            cells += [
                f"{entry[e]['peak_mb']:.0f}" if "peak_mb" in entry.get(e, {}) else "-"
                for e in engines
            ]
            print("| " + " | ".join(cells) + " |")
    out.write_text(json.dumps({"meta": meta, "args": vars(args), "rows": rows}, indent=2))
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
