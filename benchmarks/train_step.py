"""Training-step benchmark: the QRNN against a parameter-matched LSTM at the smnist-rows shape, and
the measured QRNN (``--model mqrnn``) beside the QRNN at the same n.

    python benchmarks/train_step.py                     # n = 4, 8, 12; B = 64, T = 28, one thread
    python benchmarks/train_step.py --json out.json     # the same, and the rows as JSON
    python benchmarks/train_step.py --quick             # a smoke run of a few seconds

A *training step* is what the trainer does per batch: zero the gradients, the model on inputs
[B, T, 28] (embedding to 32, the core, a linear head on the last step), cross-entropy, backward,
gradient clipping at 1.0 and an Adam step. The QRNN is ``qrnn train``'s default model for
``--qubits n`` (2 layers, cx_ring, xyz readouts, a 128-wide GELU controller, complex64); the LSTM's
hidden size is chosen by ``match_hidden_size`` to have the QRNN's parameter count. The measurements
of one repeat are taken back to back (QRNN step, LSTM step, engine alone), so a load change on the
machine hits all three; each figure is the median over ``--repeats``.

*mqrnn* is ``qrnn train --model mqrnn --qubits n`` on the same shape: weak measurement of every
qubit, ``--feedforward linear`` (``--mqrnn-feedforward``) of the first min(n, ``--mqrnn-bits``) bits
(default 4: 2^4 = 16 density-matrix blocks; all 6 bits at n = 6 would be 64 blocks of 64 × 64 per
sample and step, ~18 GB of autograd at B = 64, T = 28), the same circuit spec and controller as the
QRNN, exact mixed-state training in complex64; measured for n <= 6 only (the model's limit), in the
same back-to-back repeat. *mqrnn / qrnn* is its step time over the QRNN's.

*engine* is the statevector engine alone over the same sequence — T forward steps with readouts,
then T reversible backward steps (the calls the QRNN's fused pass makes) — and *share* its part of
the QRNN's step.

*bound* is the kernels' arithmetic: amplitudes × gate passes × cycles per amplitude and pass /
clock, per training step:

    B · 2^n · T · (4·G_U + 2·G_R) · c / f

with G_U the compiled step circuit's passes over the state (per segment: one per qubit with a
single-qubit chain, one for a diagonal, one for a permutation), G_R the readouts' passes (one per
qubit whose one-qubit terms are read, one per multi-qubit Pauli term), forward = G_U + G_R and
backward = 3·G_U + G_R (undo the step, carry the state's gradient back, the angles' gradient
products; the readouts' vector-Jacobian product), ``c`` = ``--cycles`` cycles per amplitude and
pass (default: a complex 2×2 update is 8 real FMAs per amplitude, and a core with two 8-lane
float32 FMA units (AVX2) does 16 per cycle: 0.5 in complex64, 1.0 in complex128) and ``f`` =
``--clock-ghz`` (default: the fastest core's MHz in /proc/cpuinfo, which on a virtual machine is
the nominal clock: a core that boosts above it makes the true bound lower). Real passes (RY
chains) and diagonals need fewer FMAs and the count ignores memory traffic, sin/cos of the angles
and per-call overhead, so the figure is a reference scale rather than a hard floor; *engine /
bound* says how far the engine is from it.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after $PYTHONPATH: PYTHONPATH=OTHER_CHECKOUT measures that checkout

import torch  # noqa: E402
from torch import nn  # noqa: E402

from qrnn_qiskit.backends import StatevectorEngine, native  # noqa: E402
from qrnn_qiskit.formatting import markdown_table  # noqa: E402
from qrnn_qiskit.models import (  # noqa: E402
    InputSpec,
    MeasuredConfig,
    build_model,
    count_parameters,
    match_hidden_size,
)
from qrnn_qiskit.training import TrainConfig  # noqa: E402

CLASSES = 10
# cycles per amplitude and pass: 8 real FMAs per amplitude of a complex 2×2 update over 16 float32
# (8 float64) FMA lanes per cycle
DEFAULT_CYCLES = {torch.complex64: 0.5, torch.complex128: 1.0}


def clock_ghz() -> float:
    """The fastest core's clock in /proc/cpuinfo (GHz), else 3.0."""
    try:
        mhz = [
            float(line.split(":")[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        ]
    except OSError:
        mhz = []
    return max(mhz) / 1000 if mhz else 3.0


def passes(engine: StatevectorEngine) -> tuple[int, int]:
    """(G_U, G_R): the step program's and the readouts' passes over one state (module
    docstring)."""
    g_u = 0
    for segment in engine.program.segments:
        g_u += sum(1 for chain in segment.chains if chain)
        g_u += int(bool(getattr(segment, "diagonal", ()))) + int(segment.perm is not None)
    readout = engine.readout_program
    one_qubit = set()
    many = 0
    for x, z in zip(readout.x_masks, readout.z_masks, strict=True):
        support = x | z
        if support and support & (support - 1) == 0:
            one_qubit.add(support)
        elif support:
            many += 1
    return g_u, len(one_qubit) + many


def bound_ms(engine: StatevectorEngine, batch: int, steps: int, cycles: float, ghz: float) -> float:
    """The arithmetic bound of one training step's engine work, in ms (module docstring)."""
    g_u, g_r = passes(engine)
    amplitude_passes = batch * engine.dim * steps * (4 * g_u + 2 * g_r)
    return amplitude_passes * cycles / (ghz * 1e9) * 1e3


def _train_step(model: nn.Module, optimiser, x: torch.Tensor, y: torch.Tensor) -> None:
    optimiser.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimiser.step()


def _engine_pass(engine: StatevectorEngine, angles: torch.Tensor, weights: torch.Tensor) -> None:
    """T forward steps with readouts, then T reversible backward steps (no autograd)."""
    state = engine.initial_state(angles.shape[1])
    with torch.no_grad():
        for t in range(angles.shape[0]):
            state, _ = engine.apply(state, angles[t], readouts=True)
        grad = None
        for t in reversed(range(angles.shape[0])):
            state, grad, _ = engine.apply_vjp(state, angles[t], grad, weights[t])


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1e3


def measure(n: int, args: argparse.Namespace) -> dict:
    """One row: the QRNN at n qubits, its matched LSTM and the engine alone."""
    torch.manual_seed(0)
    config = TrainConfig.flat(task="smnist-rows", qubits=n)
    inputs = InputSpec(features=args.features, embed_dim=args.embed)
    qrnn = build_model("qrnn", inputs, CLASSES, "last", qrnn=config.qrnn, dtype=config.torch_dtype)
    target = count_parameters(qrnn)

    def lstm_of(hidden: int) -> nn.Module:
        return build_model("lstm", inputs, CLASSES, "last", hidden_size=hidden)

    hidden = match_hidden_size(lstm_of, target)
    lstm = lstm_of(hidden)
    mqrnn = None
    measured = None
    if n <= 6 and args.mqrnn_bits > 0:
        measured = MeasuredConfig(
            feedforward=args.mqrnn_feedforward, feedforward_bits=min(n, args.mqrnn_bits)
        )
        mqrnn = build_model(
            "mqrnn", inputs, CLASSES, "last", qrnn=config.qrnn, dtype=config.torch_dtype,
            measured=measured,
        )  # fmt: skip
    engine = qrnn.core.engine
    if args.step_by_step:
        qrnn.core.fused = False
    # an older checkout (PYTHONPATH) without the fused pass runs step by step
    fused = bool(getattr(qrnn.core, "fusable", lambda steps: False)(args.steps))
    x = torch.randn(args.batch, args.steps, args.features)
    y = torch.randint(0, CLASSES, (args.batch,))
    models = [qrnn, lstm] + ([mqrnn] if mqrnn is not None else [])
    optimisers = {m: torch.optim.Adam(m.parameters(), lr=1e-3) for m in models}
    angles = torch.randn(args.steps, args.batch, engine.n_params, dtype=engine.real_dtype)
    weights = torch.randn(args.steps, args.batch, engine.n_readouts, dtype=engine.real_dtype)
    calls = {
        "qrnn": lambda: _train_step(qrnn, optimisers[qrnn], x, y),
        "lstm": lambda: _train_step(lstm, optimisers[lstm], x, y),
        "engine": lambda: _engine_pass(engine, angles, weights),
    }
    if mqrnn is not None:
        calls["mqrnn"] = lambda: _train_step(mqrnn, optimisers[mqrnn], x, y)
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(args.warmup):
        for call in calls.values():
            call()
    for _ in range(args.repeats):
        for name, call in calls.items():
            times[name].append(_timed(call))
    median = {k: statistics.median(v) for k, v in times.items()}
    cycles = args.cycles or DEFAULT_CYCLES[engine.dtype]
    bound = bound_ms(engine, args.batch, args.steps, cycles, args.clock_ghz)
    g_u, g_r = passes(engine)
    return {
        "n": n,
        "qrnn_params": target,
        "lstm_hidden": hidden,
        "lstm_params": count_parameters(lstm),
        "kernel": engine.kernel,
        "fused": fused,
        "qrnn_ms": median["qrnn"],
        "lstm_ms": median["lstm"],
        "ratio": median["qrnn"] / median["lstm"],
        "engine_ms": median["engine"],
        "engine_share": median["engine"] / median["qrnn"],
        "bound_ms": bound,
        "cycles_per_amplitude_pass": cycles,
        "engine_over_bound": median["engine"] / bound,
        "passes": {"step": g_u, "readouts": g_r},
        "mqrnn_params": count_parameters(mqrnn) if mqrnn is not None else None,
        "mqrnn_feedforward": measured.feedforward if measured is not None else None,
        "mqrnn_bits": measured.feedforward_bits if measured is not None else None,
        "mqrnn_ms": median.get("mqrnn"),
        "mqrnn_over_qrnn": median["mqrnn"] / median["qrnn"] if "mqrnn" in median else None,
        "ranges_ms": {k: [min(v), max(v)] for k, v in times.items()},
    }


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    header = [
        "n", "params", "LSTM h", "QRNN ms", "LSTM ms", "QRNN / LSTM", "engine ms", "engine share",
        "bound ms", "engine / bound", "mqrnn ms", "mqrnn / qrnn",
    ]  # fmt: skip
    body = [
        [
            r["n"],
            r["qrnn_params"],
            r["lstm_hidden"],
            f"{r['qrnn_ms']:.1f}",
            f"{r['lstm_ms']:.1f}",
            f"{r['ratio']:.1f}×",
            f"{r['engine_ms']:.1f}",
            f"{100 * r['engine_share']:.0f}%",
            f"{r['bound_ms']:.2f}",
            f"{r['engine_over_bound']:.1f}×",
            "–" if r.get("mqrnn_ms") is None else f"{r['mqrnn_ms']:.1f}",
            "–" if r.get("mqrnn_ms") is None else f"{r['mqrnn_over_qrnn']:.1f}×",
        ]  # fmt: skip
        for r in rows
    ]
    return markdown_table([header, *body])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=[4, 8, 12])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=28, help="sequence length T")
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--embed", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch's and the kernels' threads")
    parser.add_argument(
        "--cycles",
        type=float,
        default=None,
        help="cycles per amplitude and pass (default: 0.5 in complex64, 1.0 in complex128)",
    )
    parser.add_argument("--clock-ghz", type=float, default=None, help="default: /proc/cpuinfo")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--step-by-step", action="store_true", help="the QRNN without its fused sequence pass"
    )
    parser.add_argument(
        "--mqrnn-bits",
        type=int,
        default=4,
        help="measured QRNN: fed-forward bits min(n, K) (0: no measured QRNN rows)",
    )
    parser.add_argument(
        "--mqrnn-feedforward", choices=("linear", "table", "none"), default="linear"
    )
    parser.add_argument("--quick", action="store_true", help="n = 4, B = 8, T = 4, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.qubits, args.batch, args.steps, args.repeats, args.warmup = [4], 8, 4, 2, 1
    args.clock_ghz = args.clock_ghz or clock_ghz()
    torch.set_num_threads(args.threads)
    native.set_threads(args.threads)
    rows = [measure(n, args) for n in args.qubits]
    report = {
        "shape": {
            "batch": args.batch,
            "steps": args.steps,
            "features": args.features,
            "embed": args.embed,
            "head": "last",
            "optimiser": "adam",
        },  # fmt: skip
        "threads": args.threads,
        "repeats": args.repeats,
        "clock_ghz": args.clock_ghz,
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "torch": torch.__version__,
        "rows": rows,
    }
    print(
        f"B = {args.batch}, T = {args.steps}, {args.features} features, embed {args.embed}, "
        f"head on the last step, Adam, {args.threads} thread(s), median of {args.repeats}; "
        f"bound at {rows[0]['cycles_per_amplitude_pass']} cycles per amplitude and pass, "
        f"{args.clock_ghz:.2f} GHz"
    )
    print(table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
