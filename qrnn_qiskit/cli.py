"""Command-line interface: a thin layer over the Python API. Errors print one line and exit with
code 2."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import MISSING, fields, replace
from pathlib import Path

from .errors import QRNNError

_HELP = {
    "task": "task to train: copying, smnist (pixels, T=784), smnist-rows (T=28), pmnist (permuted "
    "pixels), imdb, "
    "ptb-word, ptb-char (Penn Treebank language modelling), mt-de-en (German→English Bible verses)",
    "model": "qrnn or a classical baseline: rnn, lstm, gru, orthogonal (expRNN-style; not for "
    "mt-de-en)",
    "delay": "copying: number of blanks T between the symbols and the marker",
    "val_fraction": "smnist/smnist-rows/pmnist/imdb: fraction of the training split held out for "
    "validation",
    "permutation_seed": "pmnist: seed of the one fixed pixel permutation (recorded in config.json)",
    "vocab_size": "imdb, mt-de-en (per language): vocabulary size including special tokens (most "
    "frequent "
    "training words)",
    "max_len": "imdb: keep the last MAX_LEN words of each review; mt-de-en: drop pairs with more "
    "tokens on a side",
    "bptt": "ptb-word/ptb-char: truncated-BPTT window; the recurrent state is carried (detached) "
    "across windows",
    "carry": "ptb-word/ptb-char: carry the recurrent state across windows (detached); --no-carry "
    "restarts every "
    "training and evaluation window from the initial state",
    "attention": "mt-de-en: attention score over the encoder's outputs, additive or dot",
    "beam_size": "mt-de-en: beam width for test BLEU (qrnn report) and qrnn translate (1: greedy)",
    "qubits": "QRNN register size n",
    "layers": "QRNN step-circuit layers L (P = 2·n·L angles)",
    "entangler": "cx_ring, cz_ring or cx_ladder",
    "readouts": "xyz (3n values), z (n) or zz (n + neighbour correlators)",
    "width": "controller hidden width",
    "depth": "controller hidden layers (0: linear map)",
    "activation": "controller nonlinearity: linear, relu, gelu, glu, leaky_relu, tanh",
    "dropout": "controller dropout",
    "angle_map": "identity (raw angles) or tanh (π·tanh)",
    "init_scale": "scale of the controller's last-layer initial weights",
    "feedback": "feed the previous readouts z_{t-1} to the controller",
    "dtype": "statevector precision: complex64 or complex128",
    "hidden": "classical baselines: hidden size (default: matched to the QRNN these flags "
    "describe)",
    "embed_dim": "input embedding size",
    "steps": "training iterations",
    "batch_size": "batch size",
    "lr": "Adam learning rate",
    "clip": "gradient-norm clipping (0 disables)",
    "seed": "random seed (data, initialisation, dropout)",
    "eval_every": "evaluate, log and checkpoint every N steps",
    "eval_size": "evaluation set size",
    "max_minutes": "stop training after this many minutes (0: no limit)",
    "threads": "torch CPU threads (0: torch default)",
    "progress": "show a progress bar",
    "backend": "where the QRNN's circuits run: statevector (fast torch engine) or aer (exact Aer "
    "via "
    "EstimatorQNN + TorchConnector; slow: O(T³·P) circuits per sample)",
    "force": "run --backend aer plans estimated to take longer than an hour",
}


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    from .training import TrainConfig

    for f in fields(TrainConfig):
        if f.name == "match_params":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=_HELP.get(f.name)
            )
        else:
            kind = type(default) if default is not None else int
            parser.add_argument(
                flag,
                type=kind,
                default=default,
                help=f"{_HELP.get(f.name, '')} (default: {default})",
            )
    parser.add_argument(
        "--match-params",
        metavar="RUN_DIR",
        help="classical baselines: match the parameter count of an existing run",
    )


def _config_from_args(args: argparse.Namespace):
    from .models import count_parameters
    from .training import TrainConfig, load_run

    values = {
        f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "match_params"
    }
    config = TrainConfig(**values)
    if args.match_params:
        if config.model == "qrnn":
            raise QRNNError(
                "--match-params sizes classical baselines; it does not apply to --model qrnn"
            )
        _, reference, _ = load_run(args.match_params)
        config = replace(config, match_params=count_parameters(reference))
    if getattr(args, "epochs", None) is not None:
        from .training.tasks_paper import steps_for_epochs

        config = replace(config, steps=steps_for_epochs(config, args.epochs))
    return config


def _engine_check(config) -> None:
    """``--engine-check``: one conformance batch of the engine this run will train on, before
    training."""
    from .backends import StatevectorEngine
    from .backends.conformance import check_engine
    from .circuits import readout_observables, step_circuit

    if config.model != "qrnn" or config.backend != "statevector":
        raise QRNNError(
            "--engine-check checks the statevector engine of --model qrnn (--backend statevector)"
        )
    spec = config.qrnn.spec
    engine = StatevectorEngine(
        step_circuit(spec), readout_observables(spec), dtype=config.torch_dtype
    )
    result = check_engine(engine, seed=config.seed)
    print(f"engine check ({spec.n_qubits} qubits, {config.dtype}): {result}")
    if not result.ok:
        raise QRNNError(
            "the statevector engine disagrees with Qiskit on this spec; nothing was trained"
        )


def cmd_train(args: argparse.Namespace) -> int:
    from .training import Trainer

    config = _config_from_args(args)
    if args.engine_check:
        _engine_check(config)
    run_dir = Path(args.run_dir or f"runs/{config.task}-{config.model}")
    trainer = Trainer(config, run_dir, resume=args.resume, argv=sys.argv)
    print(
        f"run directory: {run_dir}  parameters: "
        f"{sum(p.numel() for p in trainer.model.parameters())}"
    )
    result = trainer.fit()
    print(
        f"{config.task}/{config.model} after {result.steps} steps, {result.seconds:.0f} s: "
        f"{result.summary}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(
        minutes=args.minutes,
        root=Path(args.run_root) if args.run_root else None,
        progress=args.progress,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qrnn", description="Quantum recurrent neural networks on Qiskit circuits."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a QRNN or a classical baseline on a task")
    _add_config_arguments(train)
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
        help="smnist/smnist-rows/pmnist/imdb: train this many passes over "
        "the training split (sets --steps)",
    )
    train.set_defaults(func=cmd_train)

    demo = sub.add_parser(
        "demo", help="train a small QRNN and a same-size LSTM on copying memory and compare"
    )
    demo.add_argument(
        "--minutes", type=float, default=None, help="override the total training budget"
    )
    demo.add_argument(
        "--run-root", help="folder for the demo's runs (default: runs/demo-TIMESTAMP)"
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
    from .evaluation.report import register as register_report
    from .evaluation.translate import register as register_translate

    return [register_data, register_report, register_hardware, register_translate]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
