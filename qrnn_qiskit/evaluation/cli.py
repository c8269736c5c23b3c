"""CLI of the hardware pipeline: ``qrnn eval``, ``export``, ``submit``, ``collect`` and
``compare``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import QRNNError


def _positive_floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _eval_config(args: argparse.Namespace):
    from .protocols import EvalConfig

    return EvalConfig(
        target=args.target,
        protocol=args.protocol,
        shots=args.shots,
        samples=args.samples,
        max_steps=args.max_steps,
        seed=args.seed,
        optimization_level=args.optimization_level,
        coupling=args.coupling,
        corrections=args.corrections,
        readout_error=args.readout_error,
        mitigate=args.mitigate,
        twins=args.twins,
        layout=args.layout,
        twirling=args.twirling,
        dd=args.dd,
    )


def _confirm(yes: bool):
    if yes:
        return None

    def ask(report) -> bool:
        if not sys.stdin.isatty():
            raise QRNNError(
                "refusing to submit to IBM Quantum without confirmation; pass --yes to submit "
                "non-interactively"
            )
        answer = input(
            f"submit {report.circuits} circuits ({report.total_shots:,} shots) to "
            f"{report.target}? [y/N] "
        )
        return answer.strip().lower() in ("y", "yes")

    return ask


def _print_result(result: dict) -> None:
    metrics = result.get("metrics") or {}
    exact = result.get("exact_metrics") or {}
    summary = ", ".join(
        f"{k} {v:.4f} (noiseless {exact.get(k, float('nan')):.4f})" for k, v in metrics.items()
    )
    print(
        f"{result['target']} / {result['protocol']}: mean |z − z_exact| {result['mean_error']:.4f} "
        f"(max {result['max_error']:.4f})"
        + (f"; {summary}" if summary else "; no task metric (truncated)")
        + f"  [{result['seconds']:.1f} s]"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from .runner import evaluate

    config = _eval_config(args)
    result = evaluate(
        args.run,
        config,
        confirm=_confirm(args.yes),
        progress=args.progress,
        name=args.name,
        submit_only=getattr(args, "submit_only", False),
    )
    if result is None:
        if getattr(args, "submit_only", False):
            print(
                f"job ids recorded in {Path(args.run) / 'jobs.jsonl'}; finish with: qrnn collect "
                f"{args.run}"
            )
        return 0
    _print_result(result)
    print(f"saved {Path(args.run) / 'evals' / result['name'] / 'result.json'}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from ..backends.noisy import parse_target

    if parse_target(args.target).kind != "ibm":
        raise QRNNError(
            f"qrnn submit sends jobs to IBM Quantum (--target ibm:<backend>); run {args.target} "
            "with qrnn eval"
        )
    args.submit_only = True
    return cmd_eval(args)


def cmd_collect(args: argparse.Namespace) -> int:
    from .runner import collect

    for result in collect(args.run, progress=args.progress):
        _print_result(result)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_circuits, parse_input

    x = parse_input(args.input, args.run)
    paths = export_circuits(
        args.run,
        x,
        args.protocol,
        args.format,
        args.out or Path(args.run) / "export",
        args.coupling,
        args.corrections,
    )
    print(f"wrote {len(paths)} file(s): {paths[0]}" + (" …" if len(paths) > 1 else ""))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare

    table, plots = compare(
        args.run,
        sweep=args.sweep or (),
        samples=args.samples,
        shots=args.shots,
        progress=args.progress,
        others=args.others or (),
    )
    print(table)
    print("\nplots: " + ", ".join(str(p) for p in plots))
    return 0


def _eval_arguments(parser: argparse.ArgumentParser, ibm_only: bool = False) -> None:
    parser.add_argument("run", help="run directory with a trained QRNN checkpoint")
    parser.add_argument(
        "--target",
        required=True,
        help="ibm:<backend>"
        if ibm_only
        else "statevector | aer | aer-noisy:<fake backend> | aer-noisy:depolarizing:<p> | "
        "ibm:<backend>",
    )
    parser.add_argument(
        "--protocol",
        choices=("replay", "dynamic"),
        default="replay",
        help="replay (the trained model) or dynamic (mid-circuit measurement + feedforward)",
    )
    parser.add_argument("--shots", type=int, default=4000, help="shots per circuit (default: 4000)")
    parser.add_argument(
        "--samples",
        type=int,
        default=8,
        help="input sequences from the task's evaluation set (default: 8)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=0,
        help="evaluate only the first N steps (0: whole sequences)",
    )
    parser.add_argument("--seed", type=int, default=0, help="simulator and transpiler seed")
    parser.add_argument(
        "--optimization-level",
        type=int,
        default=3,
        help="preset pass manager level 0..3 (default: 3); the layout is chosen once and pinned",
    )
    parser.add_argument(
        "--layout",
        default="esp",
        help="esp (best-ESP embedding of the widest circuit, default) or preset (pass manager's)",
    )
    parser.add_argument(
        "--mitigate",
        default="auto",
        help="replay: auto (esp on aer-noisy:<fake> and ibm:), none, or esp / twins / m3, "
        "combinable with commas (e.g. m3,esp)",
    )
    parser.add_argument(
        "--twins",
        type=int,
        default=8,
        help="--mitigate twins: near-Clifford twin rows per setting and round (default: 8)",
    )
    parser.add_argument(
        "--twirling",
        choices=("auto", "on", "off"),
        default="auto",
        help="ibm: Pauli twirling of gates and measurements (auto: on for replay)",
    )
    parser.add_argument(
        "--dd",
        choices=("off", "XX", "XpXm", "XY4"),
        default="off",
        help="ibm: dynamical decoupling sequence (not for dynamic circuits; default: off)",
    )
    parser.add_argument(
        "--coupling",
        default="cnot",
        help="dynamic: cnot (projective, data qubits measured directly), weak (the measured "
        "default weak coupling) or a weak coupling angle in radians",
    )
    parser.add_argument(
        "--corrections",
        type=int,
        default=-1,
        help="dynamic: feedforward corrections per step (default -1: 8 for cnot, 0 for weak)",
    )
    parser.add_argument(
        "--readout-error",
        type=float,
        default=0.0,
        help="aer-noisy:depolarizing: readout flip probability",
    )
    parser.add_argument(
        "--name", help="evaluation folder name under RUN/evals (default: from target and protocol)"
    )
    parser.add_argument("--yes", action="store_true", help="ibm: submit without asking")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)


def register(sub: argparse._SubParsersAction) -> None:
    """Add eval, export, submit, collect and compare to the ``qrnn`` parser."""
    p = sub.add_parser(
        "eval", help="evaluate a trained QRNN on a simulator or IBM target (replay or dynamic)"
    )
    _eval_arguments(p)
    p.set_defaults(func=cmd_eval, submit_only=False)

    p = sub.add_parser(
        "submit", help="submit a hardware evaluation to IBM Quantum; job ids go to RUN/jobs.jsonl"
    )
    _eval_arguments(p, ibm_only=True)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser(
        "collect", help="fetch recorded IBM jobs, submit the remaining rounds, write results"
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser(
        "export", help="write the bound replay or dynamic circuits of one input sequence"
    )
    p.add_argument("run", help="run directory with a trained QRNN checkpoint")
    p.add_argument(
        "--input",
        default="eval:0",
        help="eval:<index> (task evaluation set) or comma-separated tokens",
    )
    p.add_argument("--protocol", choices=("replay", "dynamic"), default="replay")
    p.add_argument("--format", choices=("qpy", "qasm3"), default="qpy")
    p.add_argument("--out", help="output folder (default: RUN/export)")
    p.add_argument(
        "--coupling", default="cnot", help="dynamic: cnot, weak or a weak coupling angle (radians)"
    )
    p.add_argument(
        "--corrections",
        type=int,
        default=-1,
        help="dynamic: feedforward corrections per step (-1: 8 for cnot, 0 for weak)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "compare", help="noiseless vs noisy table (Markdown) and PNG plots of a run's evaluations"
    )
    p.add_argument("run", help="run directory")
    p.add_argument(
        "--sweep",
        type=_positive_floats,
        help="first evaluate replay on aer-noisy:depolarizing:<p> for these p (comma-separated)",
    )
    p.add_argument(
        "--with",
        dest="others",
        action="append",
        metavar="RUN",
        help="another run to show side by side (e.g. a noise-aware model); repeatable",
    )
    p.add_argument("--samples", type=int, default=8, help="sweep: input sequences (default: 8)")
    p.add_argument(
        "--shots", type=int, default=4000, help="sweep: shots per circuit (default: 4000)"
    )
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=cmd_compare)
