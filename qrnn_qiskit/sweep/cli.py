"""``qrnn sweep``: run a worker of a study, or report on one.

::

    qrnn sweep sweeps/copying_ablation.toml              # a worker; run it again for another
    qrnn sweep FILE --storage postgresql://user@host/db  # workers on many machines
    qrnn sweep --report copying-ablation                 # best trials + PNG plots
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import QRNNError
from ..fileio import make_folder

DEFAULT_ROOT = Path("runs/sweeps")


def _where(name: str, args: argparse.Namespace) -> tuple[Path, str]:
    from .storage import default_url

    root = Path(args.root) if args.root else DEFAULT_ROOT / name
    return root, args.storage or default_url(root)


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.report is not None:
        if args.file is not None:
            raise QRNNError("give a sweep FILE to run a worker, or --report STUDY, not both")
        return _report(args)
    if args.file is None:
        raise QRNNError("name a sweep file (qrnn sweep FILE) or a study (qrnn sweep --report NAME)")
    from ..training.rundir import safe_name
    from .space import load
    from .worker import objective_metric, run_worker, summary

    sweep = load(args.file)
    objective_metric(sweep)  # an unknown [study] metric: refused before any folder or trial
    if args.trials is not None:
        if sweep.sampler == "grid":
            raise QRNNError("--trials: a grid runs every one of its points (drop --trials)")
        if args.trials < 1:
            raise QRNNError(f"--trials must be >= 1, got {args.trials}")
        sweep = type(sweep)(**{**sweep.__dict__, "trials": args.trials})
    name = safe_name(args.study or sweep.name, "--study")
    root, url = _where(name, args)
    if args.storage is None:
        make_folder(root, "--root folder")
    print(f"study {name}: {sweep.trials} trials ({sweep.sampler}) in {root}", flush=True)
    from .storage import storage_errors

    with storage_errors(url):
        state = run_worker(sweep, url, name, root)
    print(summary(state, name))
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..training.rundir import safe_name
    from .report import counts, load_study, plots, table

    if args.top < 1:
        raise QRNNError(f"--top must be >= 1 (the number of trials shown), got {args.top}")

    given = Path(args.report)
    if (given / "study.db").exists() and args.root is None:  # a sweep folder
        root, name = given, None
        url = args.storage or f"sqlite:///{(given / 'study.db').as_posix()}"
    else:
        name = safe_name(args.report, "--report")
        root, url = _where(name, args)
    from .storage import storage_errors

    with storage_errors(url):
        study = load_study(url, name)
        print(f"study {study.study_name} ({study.direction.name.lower()} "
              f"{study.user_attrs.get('qrnn_metric', 'value')}): {counts(study)}")  # fmt: skip
        print(table(study, args.top))
    written, skipped = plots(study, Path(args.plots) if args.plots else root / "plots")
    for path in written:
        print(f"plot: {path}")
    for reason in skipped:
        print(f"plot skipped: {reason}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``qrnn sweep`` to the CLI."""
    sweep = subparsers.add_parser(
        "sweep",
        help="hyperparameter search on Optuna over qrnn train options (one worker per command)",
        description="Run one worker of an Optuna study described by a TOML sweep file (run the "
        "same command again, here or on another machine with a shared --storage, for more "
        "workers), or report on a study. Every trial is a run directory ROOT/trial-NNNN.",
    )
    sweep.add_argument("file", nargs="?", metavar="FILE", help="sweep file (TOML; sweeps/*.toml)")
    sweep.add_argument("--study", help="study name (default: [study] name, else the file's name)")
    sweep.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage URL (default: sqlite:///ROOT/study.db); e.g. "
        "postgresql://user@host/db for workers on many machines",
    )
    sweep.add_argument("--root", help="folder of the trials' run directories (default: "
                       "runs/sweeps/STUDY)")  # fmt: skip
    sweep.add_argument(
        "--trials", type=int, help="trials in the whole study (tpe, random; overrides the file)"
    )
    sweep.add_argument(
        "--report",
        metavar="STUDY",
        help="print the study's best trials and write its plots (a study name or a sweep folder)",
    )
    sweep.add_argument("--top", type=int, default=10, help="--report: trials shown (default: 10)")
    sweep.add_argument("--plots", metavar="DIR", help="--report: folder for the PNG plots "
                       "(default: ROOT/plots)")  # fmt: skip
    sweep.set_defaults(func=cmd_sweep)
