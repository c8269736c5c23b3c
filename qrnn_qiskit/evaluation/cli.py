"""CLI of the evaluation package: the hardware pipeline (``qrnn eval``, ``export``, ``submit``,
``collect`` and ``compare``), ``qrnn report``, ``gradnorm`` and ``translate``.

Only the parsers live here, with the commands' light checks; each command imports its module (and
torch, Qiskit) when it runs, so ``qrnn --help`` and usage errors import neither."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import QRNNError
from ..options import add_arguments, from_arguments, leaf_index


def _positive_floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _eval_config(args: argparse.Namespace):
    from .config import EvalConfig

    return from_arguments(EvalConfig, args)


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


def _restart(args: argparse.Namespace, config) -> None:
    """``--restart``: end the evaluation's current attempt before running it again (an IBM one is
    kept under RUN/evals/NAME/previous/, its job ids in jobs.jsonl)."""
    from ..training import RunDir
    from .records import EvalStore
    from .runner import eval_name

    if not RunDir(args.run).is_run:
        return  # run_evaluation says what is wrong
    store = EvalStore(args.run, args.name if args.name is not None else eval_name(config))
    with store.lock():
        where = store.set_aside()
    if where is not None:
        print(f"the earlier attempt is kept in {where}")


def _given(args: argparse.Namespace, flag: str) -> bool:
    return any(a == flag or a.startswith(f"{flag}=") for a in getattr(args, "argv", ()))


def _measured_defaults(args: argparse.Namespace) -> None:
    """A measured run (``--model mqrnn``) is evaluated as its own dynamic circuit: --protocol
    defaults to dynamic for it; the coherent dynamic protocol's --coupling/--corrections do not
    apply (one-line errors)."""
    from .runner import coherent_flag_error, is_measured_run

    if not is_measured_run(args.run):
        return
    if not _given(args, "--protocol"):
        args.protocol = "dynamic"
    for flag in ("--coupling", "--corrections"):
        if _given(args, flag):
            raise coherent_flag_error(flag)


def cmd_eval(args: argparse.Namespace) -> int:
    from .runner import run_evaluation

    _measured_defaults(args)
    config = _eval_config(args)
    if args.restart:
        _restart(args, config)
    result = run_evaluation(
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
    from ..backends.targets import parse_target

    if parse_target(args.target).kind != "ibm":
        raise QRNNError(
            f"qrnn submit sends jobs to IBM Quantum (--target ibm:<backend>); run {args.target} "
            "with qrnn eval"
        )
    args.submit_only = True
    return cmd_eval(args)


def cmd_collect(args: argparse.Namespace) -> int:
    from .runner import collect

    collect(args.run, progress=args.progress, on_result=_print_result)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_circuits, parse_input

    config = _eval_config(args)  # validates protocol, coupling and corrections
    if config.protocol != "dynamic":
        for flag in ("--coupling", "--corrections"):
            if any(a == flag or a.startswith(f"{flag}=") for a in getattr(args, "argv", ())):
                raise QRNNError(
                    f"{flag} shapes the dynamic protocol's circuits; --protocol {config.protocol} "
                    f"ignores it (add --protocol dynamic, or drop {flag})"
                )
    x = parse_input(args.input, args.run)
    paths = export_circuits(
        args.run,
        x,
        config.protocol,
        args.format,
        args.out or Path(args.run) / "export",
        config.coupling,
        config.corrections,
    )
    print(f"wrote {len(paths)} file(s): {paths[0]}" + (" …" if len(paths) > 1 else ""))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare

    config = _eval_config(args)  # validates samples and shots
    table, plots = compare(
        args.run,
        sweep=args.sweep or (),
        samples=config.samples,
        shots=config.shots,
        progress=args.progress,
        others=args.others or (),
    )
    print(table)
    print("\nplots: " + ", ".join(str(p) for p in plots))
    return 0


def _eval_arguments(parser: argparse.ArgumentParser, ibm_only: bool = False) -> None:
    from .config import EvalConfig

    parser.add_argument("run", help="run directory with a trained QRNN checkpoint")
    add_arguments(
        parser,
        EvalConfig,
        exclude=("target",),
    )
    parser.add_argument(
        "--target",
        required=True,
        help="ibm:<backend>" if ibm_only else leaf_index(EvalConfig)["target"].help,
    )
    parser.add_argument(
        "--name",
        help="evaluation folder name under RUN/evals: letters, digits and _ . + - (default: from "
        "target and protocol)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start this evaluation over even if it is unfinished or finished (an IBM one is kept "
        "in RUN/evals/NAME/previous/, its job ids stay in RUN/jobs.jsonl)",
    )
    parser.add_argument("--yes", action="store_true", help="ibm: submit without asking")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)


def register(sub: argparse._SubParsersAction) -> None:
    """Add eval, export, submit, collect and compare to the ``qrnn`` parser."""
    from .config import EvalConfig

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
        "collect",
        help="finish the run's unfinished evaluations: fetch recorded IBM jobs (never "
        "resubmitted), submit the remaining rounds, write results",
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
    add_arguments(p, EvalConfig, include=("protocol", "coupling", "corrections"))
    p.add_argument("--format", choices=("qpy", "qasm3"), default="qpy")
    p.add_argument("--out", help="output folder (default: RUN/export)")
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
    add_arguments(
        p,
        EvalConfig,
        include=("samples", "shots"),
        describe={"samples": "sweep: input sequences", "shots": "sweep: shots per circuit"},
    )
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=cmd_compare)


def cmd_report(args: argparse.Namespace) -> int:
    """``qrnn report`` (``report.py``)."""
    from .report import cmd_report as run

    return run(args)


def register_report(subparsers: argparse._SubParsersAction) -> None:
    """Add ``qrnn report`` to the CLI."""
    report = subparsers.add_parser(
        "report", help="results table (Markdown) and learning curves (PNG) for runs"
    )
    report.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run directories written by qrnn train"
    )
    report.add_argument(
        "--plot",
        default="report.png",
        help="PNG file for the learning curves (default: report.png)",
    )
    report.add_argument("--markdown", metavar="PATH", help="also write the table to this file")
    report.add_argument(
        "--test",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="evaluate each final checkpoint on the test split (cached in the run directory)",
    )
    report.set_defaults(func=cmd_report)


def cmd_gradnorm(args: argparse.Namespace) -> int:
    """``qrnn gradnorm`` (``gradnorm.py``)."""
    from .gradnorm import cmd_gradnorm as run

    return run(args)


def register_gradnorm(subparsers: argparse._SubParsersAction) -> None:
    """Add ``qrnn gradnorm`` to the CLI."""
    p = subparsers.add_parser(
        "gradnorm",
        help="‖∂L/∂h_t‖ against t at initialisation and trained (the paper's Figure 3): JSON + PNG",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories of sequence models")
    p.add_argument("--samples", type=int, default=32, help="evaluation sequences (default: 32)")
    p.add_argument(
        "--checkpoint",
        choices=("best", "final"),
        default="best",
        help="the trained model: best.pt where the run kept one (default) or the final checkpoint",
    )
    p.add_argument("--json", default="gradnorm.json", help="curves (default: gradnorm.json)")
    p.add_argument("--plot", default="gradnorm.png", help="PNG (default: gradnorm.png)")
    p.set_defaults(func=cmd_gradnorm)


def cmd_translate(args: argparse.Namespace) -> int:
    """``qrnn translate`` (``translate.py``)."""
    from .translate import cmd_translate as run

    return run(args)


def register_translate(subparsers: argparse._SubParsersAction) -> None:
    """Add ``qrnn translate`` to the CLI."""
    cmd = subparsers.add_parser(
        "translate", help="translate a sentence with a trained translation run (mt-de-en)"
    )
    cmd.add_argument("run", metavar="RUN_DIR", help="run directory of a translation run")
    cmd.add_argument(
        "sentence", help="source sentence (at most as many tokens as the longest training source)"
    )
    cmd.add_argument(
        "--beam", type=int, help="beam width (1: greedy; default: the run's --beam-size)"
    )
    cmd.add_argument(
        "--pair", help="language pair SOURCE-TARGET the run must translate, e.g. de-en"
    )
    cmd.add_argument(
        "--attention-png", metavar="PATH", help="save the attention weights as a heat map"
    )
    cmd.set_defaults(func=cmd_translate)
