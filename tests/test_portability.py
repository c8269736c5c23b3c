"""Portability: the package imports where POSIX-only modules do not exist (Windows has no
``fcntl``; the run-directory and sweep-database locks use filelock, which picks the native lock of
the platform)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# imports every module of the package in an interpreter where ``import fcntl`` fails as it does on
# Windows (a None entry in sys.modules makes every import of the name raise ImportError)
PROBE = """
import importlib, pkgutil, sys, warnings
sys.modules["fcntl"] = None
warnings.simplefilter("ignore")  # filelock: 'only soft file lock is available' without fcntl
import qrnn_qiskit
names = [
    info.name
    for info in pkgutil.walk_packages(qrnn_qiskit.__path__, "qrnn_qiskit.")
    if not info.name.endswith(".__main__")
]
for name in names:
    importlib.import_module(name)
assert sys.modules["fcntl"] is None
print(qrnn_qiskit.__file__)
print(len(names))
"""


def test_every_module_imports_without_fcntl(tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT)}  # this checkout, not an installed copy
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    where, count = done.stdout.split()
    assert Path(where).resolve().is_relative_to(ROOT / "qrnn_qiskit")
    assert int(count) > 50  # the walk found the package's modules, not just its __init__


def test_no_module_of_the_package_imports_fcntl():
    """The same rule read from the sources, so a guarded or lazy ``import fcntl`` (which the probe
    above would not execute) is caught too."""
    users = [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "qrnn_qiskit").rglob("*.py"))
        if any(
            line.strip().startswith(("import fcntl", "from fcntl"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert not users, f"use filelock instead of fcntl (portable): {users}"
