"""``qrnn bench SPEC``: run a benchmark spec (a worker; run it again for more), print its plan
(``--dry-run``) or its table (``--report``). The parser imports nothing heavy; the handler does.

::

    qrnn bench benchmarks/specs/table.toml --dry-run     # the plan and its budget; runs nothing
    qrnn bench benchmarks/specs/table.toml &             # two workers on one machine
    qrnn bench benchmarks/specs/table.toml
    qrnn bench benchmarks/specs/table.toml --report      # the table and curves so far
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_ROOT = Path("runs/bench")


def cmd_bench(args: argparse.Namespace) -> int:
    from ..errors import QRNNError
    from ..training.rundir import safe_name
    from .bench_spec import load

    if args.workers is not None and args.workers < 1:
        raise QRNNError(f"--workers must be >= 1, got {args.workers}")
    bench = load(args.spec)
    safe_name(bench.name, "[bench] name")
    if args.dry_run:
        print(bench.plan(args.workers))
        return 0
    from .bench import check_storage, run_bench, write_results
    from .storage import default_url

    root = Path(args.root) if args.root else DEFAULT_ROOT / bench.name
    url = args.storage or default_url(root)
    if args.storage is None and not args.report:
        root.mkdir(parents=True, exist_ok=True)
    if args.report:
        from .storage import open_storage

        open_storage(url, create=False)
        write_results(bench, url, root)
        return 0
    check_storage(url)  # a storage that cannot be opened fails here, before any run
    print(f"bench {bench.name}: {bench.runs} runs in {len(bench.cells)} studies, in {root}",
          flush=True)  # fmt: skip
    if run_bench(bench, url, root):
        write_results(bench, url, root)
    else:
        print(f"bench {bench.name}: runs are still going elsewhere; the worker that finishes last "
              "writes the table (or: qrnn bench SPEC --report)")  # fmt: skip
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``qrnn bench`` to the CLI."""
    bench = subparsers.add_parser(
        "bench",
        help="benchmark runner: tasks × models × seeds under one budget, tuned alike, as a table",
        description="Run one worker of a benchmark spec (TOML; benchmarks/specs/*.toml): every "
        "(task, model) is a grid study of the spec's learning rates × seeds on the sweep "
        "machinery (run the same command again, here or elsewhere with a shared --storage, for "
        "more workers). When every run has finished, the table goes to stdout and ROOT/table.md, "
        "learning curves to ROOT/curves-TASK-{steps,seconds}.png. docs/benchmarking.md.",
    )
    bench.add_argument("spec", metavar="SPEC", help="bench spec (TOML)")
    bench.add_argument(
        "--dry-run", action="store_true", help="print the plan and its budget; run nothing"
    )
    bench.add_argument(
        "--workers",
        type=int,
        help="--dry-run: workers of the wall-clock estimate ([bench] workers)",
    )
    bench.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage URL (default: sqlite:///ROOT/study.db); e.g. "
        "postgresql://user@host/db for workers on many machines",
    )
    bench.add_argument("--root", help="folder of the runs and the table (default: runs/bench/NAME)")
    bench.add_argument(
        "--report", action="store_true", help="write the table and curves of the runs so far"
    )
    bench.set_defaults(func=cmd_bench)
