"""``qrnn --help``, every ``qrnn SUB --help`` and usage errors answer without importing torch,
Qiskit or the other heavy dependencies: the parser is built from light config modules and every
command imports its own code when it runs.

Each call runs in a fresh interpreter (the test process has imported everything already), which
then reports which heavy modules are in ``sys.modules``. No timings here (benchmarks/cli_startup.py
measures them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qrnn_qiskit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "torch",
    "qiskit",
    "qiskit_aer",
    "qiskit_ibm_runtime",
    "qiskit_machine_learning",
    "optuna",
    "matplotlib",
    "scipy",
)
SCRIPT = """
import contextlib, io, json, sys
from qrnn_qiskit import cli
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        code = cli.main(json.loads(sys.argv[1]))
    except SystemExit as done:
        code = done.code
heavy = [name for name in json.loads(sys.argv[2]) if name in sys.modules]
print(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
                  "heavy": heavy}))
"""


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple]:
    """Every (sub)command of ``parser`` as argv prefixes: ``()``, ``("train",)``,
    ``("data", "fetch")``, …"""
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


COMMANDS = _commands(build_parser())
# argparse usage errors, unknown choices, and a value the config refuses (validated before torch)
BAD = [
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["train", "--qubits", "x"], "argument --qubits: expected an integer, got 'x'"),
    (["train", "--model", "foo"], "argument --model: invalid choice: 'foo'"),
    (["train", "--entangler", "bad"], "argument --entangler: invalid choice: 'bad'"),
    (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["train", "--qubits", "99"], "--qubits must be an integer in 1..24, got 99"),
    (["eval"], "the following arguments are required: run, --target"),
    (["eval", "run", "--target", "exact", "--protocol", "zzz"], "invalid choice: 'zzz'"),
    (["data", "fetch"], "the following arguments are required: name"),
    (["sweep", "--top", "x"], "argument --top: invalid int value: 'x'"),
    (["report"], "the following arguments are required: RUN_DIR"),
]


def run_cli(argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_every_subcommand_is_covered():
    names = {c[0] for c in COMMANDS if c}
    assert {"train", "demo", "data", "eval", "report", "sweep", "translate"} <= names
    assert ("data", "fetch") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "qrnn")
def test_help_imports_nothing_heavy(command):
    result = run_cli([*command, "--help"])
    assert result["code"] == 0, result
    assert result["stdout"].startswith("usage: qrnn"), result
    assert result["heavy"] == []


@pytest.mark.parametrize(
    ("argv", "message"), BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_arguments_import_nothing_heavy(argv, message):
    result = run_cli(argv)
    assert result["code"] == 2, result
    assert result["stdout"] == ""
    assert result["stderr"].startswith("qrnn: error: ") and message in result["stderr"], result
    assert result["stderr"].count("\n") == 1  # one line
    assert result["heavy"] == []


def test_long_phases_say_what_they_do_on_stderr(capsys):
    """The layout search and the level-3 transpile announce themselves through ``status`` (the
    runner passes ``formatting.status``, which writes to stderr) and leave stdout alone."""
    from qiskit import QuantumCircuit

    from qrnn_qiskit.backends.noisy import AerExecutor
    from qrnn_qiskit.backends.targets import parse_target
    from qrnn_qiskit.formatting import status

    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    said: list[str] = []
    executor = AerExecutor(parse_target("aer-noisy:fake_manila"))
    executor.status = said.append
    executor.prepare([circuit, circuit])
    assert said == [
        "choosing the layout on fake_manila (esp, optimization level 3)…",
        "transpiling 2 templates for fake_manila (optimization level 3)…",
    ]
    executor = AerExecutor(parse_target("aer-noisy:depolarizing:0.01"), optimization_level=1)
    executor.status = status
    executor.prepare([circuit])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "transpiling 1 templates for aer-noisy:depolarizing:0.01 (optimization level 1)…\n"
    )
