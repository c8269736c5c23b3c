"""What the benchmark scripts share: the grid's command-line options and one subprocess per
measurement."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """--qubits, --batch, --layers, --seq-len, --repeats, --max-seconds with the issue's grid as
    defaults."""
    parser.add_argument("--qubits", type=int, nargs="+", default=[4, 8, 12, 14])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--max-seconds", type=float, default=20.0, help="per measurement, after 3 repeats"
    )


def spawn(script: str, job: dict) -> dict:
    """Run ``script --worker JOB`` in a fresh interpreter (clean peak memory); its last stdout line
    is JSON."""
    out = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(job)], capture_output=True, text=True
    )
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])
