"""CLI start-up benchmark: how long ``qrnn --help``, ``qrnn train --help`` and a usage error take,
against ``python -c "import torch"``.

    python benchmarks/cli_startup.py               # median of 5 wall-clock runs per command
    python benchmarks/cli_startup.py --repeats 11

Every run is a fresh interpreter started the way the ``qrnn`` console script starts (``from
qrnn_qiskit.cli import main``), this checkout first on ``PYTHONPATH``; one untimed run of each
command warms the file cache first. The goal: the CLI's answers take at most 0.3× the time of
``import torch`` (they import no torch, Qiskit, Optuna or matplotlib: tests/test_cli_fast.py). Wall
time includes the interpreter's own start (the ``python -c pass`` row), so on a loaded machine the
ratios move with the load: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QRNN = "import sys; from qrnn_qiskit.cli import main; sys.exit(main())"
GOAL = 0.3
COMMANDS: list[tuple[str, list[str], int]] = [  # (label, argv after python, expected exit code)
    ("python -c pass", ["-c", "pass"], 0),
    ("qrnn --help", ["-c", QRNN, "--help"], 0),
    ("qrnn train --help", ["-c", QRNN, "train", "--help"], 0),
    ("qrnn train --model foo (usage error)", ["-c", QRNN, "train", "--model", "foo"], 2),
    ('python -c "import torch"', ["-c", "import torch"], 0),
    ('python -c "import torch, qiskit"', ["-c", "import torch, qiskit"], 0),
]
REFERENCE = 'python -c "import torch"'


def wall(argv: list[str], expected: int) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], env=env, cwd=ROOT, capture_output=True, timeout=300
    )
    seconds = time.perf_counter() - start
    if done.returncode != expected:
        raise SystemExit(
            f"{argv} exited {done.returncode} (expected {expected}): {done.stderr.decode()[-500:]}"
        )
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per command (median)")
    args = parser.parse_args(argv)
    for _, command, code in COMMANDS:  # warm the file cache
        wall(command, code)
    times: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    for _ in range(args.repeats):  # interleaved, so a change of load hits every command
        for label, command, code in COMMANDS:
            times[label].append(wall(command, code))
    medians = {label: statistics.median(ts) for label, ts in times.items()}
    reference = medians[REFERENCE]
    width = max(map(len, medians))
    print(f"CLI start-up, wall clock, median of {args.repeats} (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")  # fmt: skip
    print(f"| {'command':{width}} | median s | min s | × import torch |")
    print(f"|{'-' * (width + 2)}|---------:|------:|---------------:|")
    for label, median in medians.items():
        print(
            f"| {label:{width}} | {median:8.3f} | {min(times[label]):5.3f} | "
            f"{median / reference:14.2f} |"
        )
    cli = [label for label in medians if label.startswith("qrnn")]
    worst = max(medians[label] / reference for label in cli)
    verdict = "meets" if worst <= GOAL else "misses"
    print(f"\nslowest qrnn answer: {worst:.2f}× import torch ({verdict} the goal ≤ {GOAL}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
