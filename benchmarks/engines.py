"""Engine benchmark (not a test): the torch statevector engine against the Aer paths.

Part 1, one step circuit (T = 1), B = 32, L = 2, n = 4, 8 (and 12 within --budget-minutes),
forward+backward of Σ w·z (random w) down to the P angles of every sample:
  statevector     the torch engine (complex64, autograd)
  aer-qnn-stock   EstimatorQNN + TorchConnector on Aer EstimatorV2, qiskit-machine-learning's
  default
                  ParamShiftEstimatorGradient (one pub = one Aer run per sample × observable ×
                  shifted angle)
  aer-qnn         the same with our BroadcastParamShiftGradient (one broadcast pub per circuit)
  aer-direct      Aer EstimatorV2 called directly: one pub for the forward, one for all ±π/2 shifts
Part 2, a QRNN sequence of T = 8 (controller + feedback), B = 32, L = 2, n = 4 and 8:
  statevector     QRNNCore on the torch engine, forward+backward
  aer             QRNNCore on AerEstimatorEngine (EstimatorQNN + TorchConnector over prefix
                  circuits), forward+backward
  aer-runner      AerSequenceRunner, forward only, given all angles (one run() call)
  statevector-fwd the torch engine, forward only over the same angles

Rows whose calibrated estimate exceeds the remaining budget are skipped and say so. Prints a table
with ratios to the statevector row and writes JSON to benchmarks/results/engines-<time>.json.

    python benchmarks/engines.py [--qubits 4 8 12] [--budget-minutes 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from qrnn_qiskit.backends import StatevectorEngine
from qrnn_qiskit.backends.aer import (
    AerEstimatorEngine,
    AerSequenceRunner,
    BroadcastParamShiftGradient,
    aer_estimator,
    calibrate,
    estimate_cost,
)
from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit
from qrnn_qiskit.models import ControllerConfig, QRNNConfig, QRNNCore

RESULTS = Path(__file__).resolve().parent / "results"


def _time(fn: Callable[[], None], repeats: int) -> tuple[float, list[float]]:
    """Median of ``repeats`` timed calls (after one untimed warm-up call when repeats > 1)."""
    if repeats > 1:
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def step_rows(n: int, batch: int, layers: int, repeats: int, budget_s: float, log) -> list[dict]:
    spec = QRNNSpec(n, layers, "cx_ring", "xyz")
    circuit, observables = step_circuit(spec), readout_observables(spec)
    p, r = spec.n_params, spec.n_readouts
    gen = torch.Generator().manual_seed(n)
    angles = torch.rand(batch, p, generator=gen, dtype=torch.float64) * 2 * np.pi - np.pi
    weights = torch.randn(batch, r, generator=gen, dtype=torch.float64)
    rows: list[dict] = []
    started = time.perf_counter()

    def remaining() -> float:
        return budget_s - (time.perf_counter() - started)

    engine = StatevectorEngine(circuit, observables)

    def sv() -> None:
        a = angles.float().clone().requires_grad_(True)
        z = engine.readouts(engine.step(engine.initial_state(batch), a))
        (z * weights.float()).sum().backward()

    seconds, times = _time(sv, repeats)
    rows.append(
        {"part": "step", "n": n, "engine": "statevector", "seconds": seconds, "times": times}
    )
    log(rows[-1])

    estimator = aer_estimator()
    timing = calibrate(spec, estimator)

    def qnn_row(name: str, gradient, broadcast: bool) -> None:
        from qiskit_machine_learning.connectors import TorchConnector
        from qiskit_machine_learning.neural_networks import EstimatorQNN

        estimate = estimate_cost(spec, batch, 1, timing=timing, broadcast=broadcast)
        if estimate.seconds > remaining():
            rows.append(
                {
                    "part": "step",
                    "n": n,
                    "engine": name,
                    "seconds": None,
                    "estimate": estimate.seconds,
                    "skipped": f"estimated {estimate.seconds:.0f} s > {max(remaining(), 0):.0f} s "
                    "left",
                }
            )
            log(rows[-1])
            return
        qnn = EstimatorQNN(
            circuit=circuit,
            estimator=estimator,
            observables=observables,
            input_params=list(circuit.parameters),
            weight_params=[],
            gradient=gradient,
            input_gradients=True,
            default_precision=0.0,
        )
        connector = TorchConnector(qnn)

        def run() -> None:
            a = angles.float().clone().requires_grad_(True)
            (connector(a) * weights.float()).sum().backward()

        reps = 1 if estimate.seconds * (repeats + 1) > remaining() else repeats
        seconds, times = _time(run, reps)
        rows.append(
            {
                "part": "step",
                "n": n,
                "engine": name,
                "seconds": seconds,
                "times": times,
                "estimate": estimate.seconds,
                "pubs": estimate.pubs,
            }
        )
        log(rows[-1])

    from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient

    qnn_row("aer-qnn", BroadcastParamShiftGradient(estimator), True)
    qnn_row("aer-qnn-stock", ParamShiftEstimatorGradient(estimator), False)

    values = angles.numpy()
    shifts = np.concatenate(
        [values[:, None, :] + np.eye(p) * np.pi / 2, values[:, None, :] - np.eye(p) * np.pi / 2],
        axis=1,
    )  # [B, 2P, P]
    column = [[o] for o in observables]  # [R, 1] against parameter sets [B]
    column3 = [[[o]] for o in observables]  # [R, 1, 1] against [B, 2P]
    w = weights.numpy()

    def direct() -> None:
        forward = estimator.run([(circuit, column, values)]).result()[0].data.evs  # [R, B]
        shifted = estimator.run([(circuit, column3, shifts)]).result()[0].data.evs  # [R, B, 2P]
        jac = (shifted[:, :, :p] - shifted[:, :, p:]) / 2  # [R, B, P]
        _ = (forward.T * w).sum(), np.einsum("rbp,br->bp", jac, w)

    seconds, times = _time(direct, repeats)
    rows.append(
        {"part": "step", "n": n, "engine": "aer-direct", "seconds": seconds, "times": times}
    )
    log(rows[-1])
    return rows


def sequence_rows(
    n: int, batch: int, layers: int, steps: int, repeats: int, budget_s: float, log
) -> list[dict]:
    spec = QRNNSpec(n, layers, "cx_ring", "xyz")
    config = QRNNConfig(spec, ControllerConfig(width=64, depth=1))
    features = 16
    gen = torch.Generator().manual_seed(100 + n)
    x = torch.randn(batch, steps, features, generator=gen)
    rows: list[dict] = []
    started = time.perf_counter()
    torch.manual_seed(0)
    sv_core = QRNNCore(features, config)

    def sv() -> None:
        sv_core.zero_grad(set_to_none=True)
        z, _ = sv_core(x)
        z.pow(2).mean().backward()

    seconds, times = _time(sv, repeats)
    rows.append(
        {
            "part": f"sequence T={steps}",
            "n": n,
            "engine": "statevector",
            "seconds": seconds,
            "times": times,
        }
    )
    log(rows[-1])

    torch.manual_seed(0)
    aer_core = QRNNCore(features, config, engine=AerEstimatorEngine(config.spec, force=True))
    estimate = aer_core.engine.estimate(batch, steps, backward=True)
    left = budget_s - (time.perf_counter() - started)
    if estimate.seconds > left:
        rows.append(
            {
                "part": f"sequence T={steps}",
                "n": n,
                "engine": "aer",
                "seconds": None,
                "estimate": estimate.seconds,
                "skipped": f"estimated {estimate.seconds:.0f} s > {left:.0f} s left",
            }
        )
        log(rows[-1])
    else:

        def aer() -> None:
            aer_core.zero_grad(set_to_none=True)
            z, _ = aer_core(x)
            z.pow(2).mean().backward()

        seconds, times = _time(aer, 1)
        rows.append(
            {
                "part": f"sequence T={steps}",
                "n": n,
                "engine": "aer",
                "seconds": seconds,
                "times": times,
                "estimate": estimate.seconds,
                "pubs": estimate.pubs,
                "step_circuits": estimate.step_circuits,
            }
        )
        log(rows[-1])

    # forward only, given the angles: the whole-sequence runner against the torch engine
    angles = (torch.rand(batch, steps, spec.n_params, generator=gen) * 2 * np.pi - np.pi).double()
    engine = StatevectorEngine(step_circuit(spec), readout_observables(spec))

    @torch.no_grad()
    def sv_forward() -> None:
        state = engine.initial_state(batch)
        for t in range(steps):
            state = engine.step(state, angles[:, t].float())
            engine.readouts(state)

    seconds, times = _time(sv_forward, repeats)
    rows.append(
        {
            "part": f"sequence T={steps}, forward",
            "n": n,
            "engine": "statevector-fwd",
            "seconds": seconds,
            "times": times,
        }
    )
    log(rows[-1])
    runner = AerSequenceRunner(spec)
    seconds, times = _time(lambda: runner.run(angles), repeats)
    rows.append(
        {
            "part": f"sequence T={steps}, forward",
            "n": n,
            "engine": "aer-runner",
            "seconds": seconds,
            "times": times,
        }
    )
    log(rows[-1])
    return rows


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "skipped"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(rows: list[dict]) -> str:
    baseline = {}
    for row in rows:
        if row["engine"] in ("statevector", "statevector-fwd"):
            baseline[(row["part"], row["n"])] = row["seconds"]
    lines = [
        f"{'part':<22} {'n':>3} {'engine':<16} {'time':>11} {'× statevector':>14}  note",
        "-" * 90,
    ]
    for row in rows:
        base = baseline.get((row["part"], row["n"]))
        ratio = (
            f"{row['seconds'] / base:,.0f}×"
            if row["seconds"] and base and row["engine"] not in ("statevector", "statevector-fwd")
            else ""
        )
        note = row.get("skipped") or (
            f"est. {row['estimate']:.1f} s" if row.get("estimate") else ""
        )
        lines.append(
            f"{row['part']:<22} {row['n']:>3} {row['engine']:<16} {_fmt(row['seconds']):>11} "
            f"{ratio:>14}  {note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=[4, 8, 12])
    parser.add_argument("--sequence-qubits", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="sequence length T of part 2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--budget-minutes", type=float, default=5.0, help="time budget per qubit count"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    def log(row: dict) -> None:
        print(
            f"  {row['part']:<22} n={row['n']:<3} {row['engine']:<16} {_fmt(row['seconds'])}"
            + (f"  ({row['skipped']})" if row.get("skipped") else ""),
            file=sys.stderr,
            flush=True,
        )

    rows: list[dict] = []
    started = time.perf_counter()
    for n in args.qubits:
        print(f"[step circuit] n={n}, B={args.batch}, L={args.layers}", file=sys.stderr, flush=True)
        rows += step_rows(n, args.batch, args.layers, args.repeats, args.budget_minutes * 60, log)
    for n in args.sequence_qubits:
        print(
            f"[sequence] n={n}, T={args.steps}, B={args.batch}, L={args.layers}",
            file=sys.stderr,
            flush=True,
        )
        rows += sequence_rows(
            n, args.batch, args.layers, args.steps, args.repeats, args.budget_minutes * 60, log
        )
    total = time.perf_counter() - started

    import qiskit
    import qiskit_aer
    import qiskit_machine_learning

    record = {
        "benchmark": "engines",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds_total": total,
        "args": vars(args),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {
            "torch": torch.__version__,
            "qiskit": qiskit.__version__,
            "qiskit_aer": qiskit_aer.__version__,
            "qiskit_machine_learning": qiskit_machine_learning.__version__,
        },
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"engines-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(table(rows))
    print(
        f"\n{total:.0f} s in all; {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; "
        f"saved {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
