"""Command-line interface: a thin layer over the Python API. Errors print one line and exit with
code 2; ``train``'s options are generated from ``TrainConfig``'s fields (``options.py``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import QRNNError
from .options import ConfigError, add_arguments, flag_error, from_arguments, leaves


def _config_from_args(args: argparse.Namespace):
    """The run's config; a bad value is a one-line error before torch is imported (the options
    that read a run or a dataset import it when given)."""
    from .training import TrainConfig

    config = from_arguments(TrainConfig, args)
    try:
        if args.resume:
            config = _keep_changed_defaults(config, args)
        if args.match_params:
            if config.model.kind in ("qrnn", "mqrnn"):
                raise QRNNError(
                    "--match-params sizes classical baselines; it does not apply to --model "
                    f"{config.model.kind}"
                )
            from .models import count_parameters
            from .training import load_run

            _, reference, _ = load_run(args.match_params)
            config = config.replace(match_params=count_parameters(reference))
        if config.model.kind in ("qrnn", "mqrnn") and config.baseline.hidden is not None:
            raise QRNNError(
                f"--hidden sizes classical baselines; it does not apply to --model "
                f"{config.model.kind} (size a QRNN with --qubits, --layers and --width)"
            )
        if args.epochs is not None:
            from .training import steps_for_epochs

            config = config.replace(steps=steps_for_epochs(config, args.epochs))
    except ConfigError as error:
        raise flag_error(TrainConfig, error) from None
    return config


def _given(args: argparse.Namespace, flag: str) -> bool:
    """Whether ``--flag`` was on the command line (as ``--flag V`` or ``--flag=V``)."""
    return any(a == f"--{flag}" or a.startswith(f"--{flag}=") for a in getattr(args, "argv", ()))


def _keep_changed_defaults(config, args: argparse.Namespace):
    """``--resume``: an option whose default changed after the run was written
    (``CHANGED_DEFAULTS``) keeps the run's stored value unless the command line gives it, so the
    original command resumes the original training."""
    from .training import RunDir
    from .training.config import CHANGED_DEFAULTS, TrainConfig

    run_dir = args.run_dir or f"runs/{config.task.name}-{config.model.kind}"
    try:
        stored = RunDir(run_dir).read_config().flat_dict()
    except (QRNNError, OSError):
        return config  # the trainer reports a missing or unreadable run directory
    options = {leaf.dest: leaf for leaf in leaves(TrainConfig)}

    def given(dest: str) -> bool:  # spelled out, or abbreviated (argparse) to a non-default value
        return _given(args, options[dest].flag) or getattr(args, dest) != options[dest].default

    kept = {dest: stored[dest] for dest in CHANGED_DEFAULTS if dest in stored and not given(dest)}
    return config.replace(**kept) if kept else config


def _engine_check(config) -> None:
    """``--engine-check``: one conformance batch of the engine this run will train on, before
    training (the quick mode of the engine conformance suite)."""
    from .backends.conformance import check_engine
    from .circuits import readout_observables, step_circuit
    from .models import InputSpec
    from .training.tasks.base import build_for_task

    if config.model.kind != "qrnn":
        raise QRNNError("--engine-check checks the engine of --model qrnn")
    model = build_for_task(config, InputSpec(features=1, embed_dim=1), 1, "all")
    spec = config.qrnn.spec
    circuit, observables = step_circuit(spec), readout_observables(spec)
    result = check_engine(model.core.engine, circuit, observables, seed=config.run.seed)
    print(f"engine check ({spec.n_qubits} qubits, {config.engine.dtype}): {result}")
    if not result.ok:
        raise QRNNError("the engine disagrees with Qiskit on this spec; nothing was trained")


def cmd_train(args: argparse.Namespace) -> int:
    """``qrnn train``; under ``torchrun --nproc-per-node K`` each process is one data-parallel rank
    (``training/distributed.py``) and rank 0 alone writes and prints."""
    config = _config_from_args(args)

    from .training import Trainer
    from .training.distributed import launch

    if args.engine_check:
        _engine_check(config)
    run_dir = (
        args.run_dir if args.run_dir is not None else f"runs/{config.task.name}-{config.model.kind}"
    )
    with launch(config) as world:
        trainer = Trainer.from_config(
            config, run_dir, resume=args.resume, argv=sys.argv, world=world
        )
        parameters = sum(p.numel() for p in trainer.model.parameters())
        ranks = f"  ranks: {world.world_size}" if world.world_size > 1 else ""
        if world.is_writer:
            print(f"run directory: {run_dir}  parameters: {parameters}{ranks}")
        result = trainer.fit()
    if world.is_writer:
        print(
            f"{config.task.name}/{config.model.kind} after {result.steps} steps, "
            f"{result.seconds:.0f} s: {result.summary}"
            + (f" (stopped: {result.stopped})" if result.stopped else "")
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.minutes is not None and not (args.minutes > 0 and args.minutes < 24 * 60):
        raise QRNNError(f"--minutes must be a number of minutes in (0, 1440), got {args.minutes}")
    if args.samples < 1:
        raise QRNNError(
            f"--samples must be >= 1 (sequences run on the noisy backend), got {args.samples}"
        )
    if args.shots < 1:
        raise QRNNError(f"--shots must be >= 1 (shots per circuit), got {args.shots}")
    from .backends.targets import parse_target

    if parse_target(args.target).kind not in ("aer", "aer-noisy"):  # checked before training
        raise QRNNError(
            f"--target {args.target}: the demo runs an aer or aer-noisy simulator target (e.g. "
            "aer-noisy:fake_kingston); for IBM Quantum use qrnn submit on the demo's runs"
        )
    run_demo(
        minutes=args.minutes,
        samples=args.samples,
        shots=args.shots,
        target=args.target,
        root=Path(args.run_root) if args.run_root else None,
        progress=args.progress,
    )
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .training import TrainConfig

    train = sub.add_parser("train", help="train a QRNN or a classical baseline on a task")
    add_arguments(train, TrainConfig, defaults=TrainConfig())
    train.add_argument(
        "--match-params",
        metavar="RUN_DIR",
        help="classical baselines: match the parameter count of an existing run",
    )
    train.add_argument("--run-dir", help="run directory (default: runs/TASK-MODEL)")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its checkpoint"
    )
    train.add_argument(
        "--engine-check",
        action="store_true",
        help="first run one conformance batch of the engine against Qiskit (and its gradients)",
    )
    train.add_argument(
        "--epochs",
        type=float,
        help="smnist/smnist-rows/pmnist/imdb/ptb/mt: train this many passes over the training "
        "split (sets --steps)",
    )
    train.set_defaults(func=cmd_train)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``qrnn: error: …``, exit code 2) like every other error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"qrnn: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="qrnn", description="Quantum recurrent neural networks on Qiskit circuits."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)

    demo = sub.add_parser(
        "demo",
        help="train a small QRNN, a same-size LSTM and a measured QRNN on copying memory, compare "
        "them, and run both QRNNs on a noisy IBM fake backend",
    )
    demo.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="override the total training budget (split equally between the three models)",
    )
    demo.add_argument(
        "--run-root", help="folder for the demo's runs (default: runs/demo-TIMESTAMP)"
    )
    demo.add_argument(
        "--target",
        default="aer-noisy:fake_boston",
        help="the noisy simulator target of the hardware check (default: aer-noisy:fake_boston, "
        "a Heron r3 snapshot; any aer or aer-noisy target of qrnn eval)",
    )
    demo.add_argument(
        "--samples",
        type=int,
        default=6,
        help="evaluation sequences run on the noisy fake backend (default: 6)",
    )
    demo.add_argument(
        "--shots", type=int, default=1000, help="shots per circuit there (default: 1000)"
    )
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    demo.set_defaults(func=cmd_demo)

    for register in _subcommand_modules():
        register(sub)
    return parser


def _subcommand_modules():
    """``register(subparsers)`` functions of the other command groups (each lives next to its
    code)."""
    from .data.cli import register as register_data
    from .evaluation.cli import register as register_hardware
    from .evaluation.cli import register_gradnorm, register_report, register_translate
    from .sweep.bench_cli import register as register_bench
    from .sweep.cli import register as register_sweep

    return [
        register_data,
        register_report,
        register_gradnorm,
        register_hardware,
        register_translate,
        register_sweep,
        register_bench,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a one-line usage error (exit code 2)
        return int(done.code or 0)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    try:
        code = args.func(args)
    except QRNNError as exc:
        print(f"qrnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"qrnn: interrupted after {time.perf_counter() - started:.0f} s; the last checkpoint "
            "is kept",
            file=sys.stderr,
        )
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
