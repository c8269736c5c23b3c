"""The installable wheel: built from the source tree, installed with plain ``pip install`` (not
editable) into a folder of its own, and used from a folder outside the source tree, so only the
files the wheel ships are there. It trains a small QRNN on the native kernels (compiled from the
installed C sources into an empty kernel cache) and replays the run on a noisy fake backend."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "qrnn_qiskit"
# what the build reads besides the package (pyproject names the readme and the license file)
BUILD_FILES = ("pyproject.toml", "README.md", "LICENSE")


def package_data_files() -> set[str]:
    """Every non-Python file of the package in the source tree (the files under version control
    where git can say which they are), as paths relative to the repository root."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--", PACKAGE],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        listed = [
            p.relative_to(ROOT).as_posix() for p in (ROOT / PACKAGE).rglob("*") if p.is_file()
        ]
    return {
        name
        for name in listed
        if "__pycache__" not in name
        and not name.endswith((".py", ".pyc"))
        and (ROOT / name).exists()
    }


def has_build_backend() -> bool:
    """Whether this environment has setuptools >= 77 (pyproject's build requirement)."""
    try:
        major = int(version("setuptools").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return False
    return major >= 77


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 120) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (a build in the source tree would reuse a stale
    build/ folder, whose leftovers end up in the wheel)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in BUILD_FILES:
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / PACKAGE, src / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    # no build isolation where the environment has the build backend pyproject asks for (an
    # isolated build downloads it; venvs of Python 3.12+ come without setuptools)
    isolation = ["--no-build-isolation"] if has_build_backend() else []
    run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", *isolation,
         "--no-cache-dir", "-q", "-w", str(tmp / "dist")],
        cwd=tmp,
        timeout=300,
    )  # fmt: skip
    (built,) = (tmp / "dist").glob("qrnn_qiskit-*.whl")
    return built


def test_the_wheel_holds_every_package_file_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = package_data_files()
    assert any(name.endswith(".h") for name in data)  # the rule below is not checked vacuously
    missing = sorted(data - names)
    assert not missing, f"the wheel lacks package files (pyproject package-data): {missing}"
    licenses = [n for n in names if ".dist-info/licenses/" in n or n.endswith(".dist-info/LICENSE")]
    assert [Path(n).name for n in licenses] == ["LICENSE"], sorted(names)
    text = zipfile.ZipFile(wheel).read(licenses[0]).decode()
    assert "Apache License" in text and "Version 2.0" in text
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    )
    assert b"License-Expression: Apache-2.0" in metadata


def test_the_installed_wheel_trains_on_the_native_kernels_and_evaluates(wheel, tmp_path):
    site = tmp_path / "site"
    run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir", "-q",
         "--target", str(site), str(wheel)],
        cwd=tmp_path,
    )  # fmt: skip
    cwd = tmp_path / "elsewhere"  # outside the source tree: no qrnn_qiskit/ folder to import
    cwd.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("QRNN_NATIVE", "QRNN_NATIVE_THREADS", "PYTHONPATH", "PYTHONSAFEPATH")
    }
    env |= {
        # the venv's editable install of a checkout must not win over the installed wheel
        "PYTHONPATH": str(site),
        # an empty kernel cache: the kernels are compiled from the installed C sources
        "QRNN_NATIVE_CACHE": str(tmp_path / "kernels"),
        "QRNN_DATA": str(tmp_path / "data"),
    }
    python = [sys.executable, "-m"]

    where = run(
        [sys.executable, "-c",
         "import qrnn_qiskit; from qrnn_qiskit.backends.statevector import native; "
         "print(qrnn_qiskit.__file__); print(native.__file__); print(native.status())"],
        cwd=cwd, env=env,
    ).splitlines()  # fmt: skip
    for path in where[:2]:
        assert Path(path).resolve().is_relative_to(site.resolve()), where
    assert where[2] == "native CPU kernels loaded", where

    run_dir = tmp_path / "run"
    out = run(
        [*python, "qrnn_qiskit.cli", "train", "--task", "copying", "--delay", "2",
         "--qubits", "3", "--layers", "1", "--width", "8", "--steps", "3", "--eval-every", "3",
         "--eval-size", "8", "--batch-size", "4", "--threads", "1", "--no-progress",
         "--engine-check", "--run-dir", str(run_dir)],
        cwd=cwd, env=env,
    )  # fmt: skip
    assert "native kernels: states" in out and ": ok" in out, out
    assert len(list((tmp_path / "kernels").glob("qrnn_native_*.so"))) == 1
    assert (run_dir / "checkpoint.pt").is_file()

    out = run(
        [*python, "qrnn_qiskit.cli", "eval", str(run_dir), "--target", "aer-noisy:fake_manila",
         "--samples", "1", "--shots", "100", "--max-steps", "2", "--no-progress"],
        cwd=cwd, env=env,
    )  # fmt: skip
    assert "aer-noisy:fake_manila / replay" in out, out
    (result,) = (run_dir / "evals").glob("*/result.json")
    assert json.loads(result.read_text())["steps"] == 2
