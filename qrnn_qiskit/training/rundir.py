"""The run directory: the one owner of its files, names and checks.

Layout::

    config.json         the full config, the command line and every resume's command line
    train_noise.json    --model mqrnn --train-noise BACKEND: the calibration numbers applied
    metrics.jsonl       one record per evaluation (append-only, fsync'ed)
    checkpoint.pt       the latest state (atomic); best.pt: the best validation state (atomic)
    test_metrics.json   cached test-split metrics of a checkpoint (qrnn report)
    jobs.jsonl          IBM job records (evaluation.runner), evals/<name>/: one evaluation each
    .lock               advisory lock held by the process that trains the run; evals/.lock: by
                        the process that writes its evaluations (eval, submit, collect)

Every problem with these files is a one-line :class:`~qrnn_qiskit.errors.QRNNError` that names the
file and the fix; nothing here overwrites what a user did not ask to replace.
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from filelock import lock_descriptor, unlock_descriptor

from ..errors import QRNNError
from ..fileio import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_many,
    read_json,
    read_jsonl,
    rewrite_jsonl,
    stale_temp_files,
    truncate_to,
)
from .config import TrainConfig

CONFIG = "config.json"
METRICS = "metrics.jsonl"
TRAIN_NOISE = "train_noise.json"  # --model mqrnn --train-noise BACKEND: the applied calibration
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
TEST_METRICS = "test_metrics.json"
JOBS = "jobs.jsonl"
EVALS = "evals"
LOCK = ".lock"
LOCKS = {"run": LOCK, "evals": f"{EVALS}/{LOCK}"}
CHECKPOINT_KEYS = frozenset({"model", "optimizer", "step", "config"})
NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")


def safe_name(name: str, what: str = "--name") -> str:
    """``name`` if it is a plain folder name (letters, digits, ``_ . + -``; not a path, not ``.`` or
    ``..``), else a one-line error: names are never paths, so nothing outside a run can be
    touched."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", "..") or ".." in name:
        raise QRNNError(
            f"{what} {name!r} is not a plain name: use letters, digits and _ . + - (at most 100, "
            "no / and no ..)"
        )
    return name


class RunDir:
    """One run directory (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        if str(path).strip() == "":
            raise QRNNError("the run directory must not be empty (pass --run-dir PATH)")
        self.path = Path(path)
        for part in self.path.parts:
            size = len(os.fsencode(part))
            if size > NAME_MAX:
                raise QRNNError(
                    f"{self.path}: the folder name {part[:24]!r}… is {size} bytes, longer than the "
                    f"{NAME_MAX} a file system allows; choose a shorter run directory name"
                )
        try:
            is_file = self.path.exists() and not self.path.is_dir()
        except OSError as error:
            raise QRNNError(
                f"cannot use {self.path}: {error.strerror or error}; choose another run directory"
            ) from None
        if is_file:
            raise QRNNError(
                f"{self.path} is a file, not a run directory; name a run directory instead"
            )
        self._lock_handle: Any = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def is_run(self) -> bool:
        return (self.path / CONFIG).exists()

    # ------------------------------------------------------------------------------ config.json
    def read_record(self) -> dict[str, Any]:
        """config.json as written (one-line errors when missing or garbled)."""
        if not self.is_run:
            raise QRNNError(
                f"{self.path} is not a run directory (no {CONFIG}); train one with qrnn train"
            )
        record = read_json(
            self.path / CONFIG, "the run's config", "restore it from a copy or start a new run"
        )
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            raise QRNNError(
                f"{self.path / CONFIG} is malformed (no config object); restore it or start a new "
                "run"
            )
        return record

    def read_config(self) -> TrainConfig:
        """The run's config (flat pre-version-2 files are migrated)."""
        record = self.read_record()
        try:
            return TrainConfig.from_dict(record["config"])
        except QRNNError as error:
            raise QRNNError(
                f"{self.path / CONFIG}: {error}; restore it from a copy or start a new run"
            ) from None

    def write_config(
        self,
        config: TrainConfig,
        argv: list[str],
        *,
        resume: bool,
        threads: dict[str, int] | None = None,
    ) -> None:
        """config.json: the full config and the command line (a resume keeps the first command line
        and appends its own); ``threads``: the thread budgets in effect ({"torch": N, "kernels":
        K}, the latest start's)."""
        record: dict[str, Any] = {
            "config": config.to_dict(),
            "argv": argv,
            "torch": torch.__version__,
        }
        if threads is not None:
            record["threads"] = dict(threads)
        if resume and self.is_run:
            previous = self.read_record()
            record["argv"] = previous.get("argv", argv)
            record["resumes"] = list(previous.get("resumes", [])) + [argv]
        atomic_write_json(self.path / CONFIG, record)

    def write_train_noise(self, record: dict[str, Any]) -> None:
        """train_noise.json: the calibration numbers of ``--model mqrnn --train-noise BACKEND``
        (rebuilt identically on every start; a resume rewrites the same numbers)."""
        atomic_write_json(self.path / TRAIN_NOISE, record)

    def check_matches(self, config: TrainConfig, saved: TrainConfig, what: str) -> None:
        """The one config-difference check: refuse unless ``config`` and ``saved`` agree on every
        option that is not resumable."""
        diff = config.differences(saved)
        if diff:
            a, b = config.flat_dict(), saved.flat_dict()
            shown = ", ".join(f"--{k.replace('_', '-')} {b[k]!r} (now {a[k]!r})" for k in diff[:4])
            raise QRNNError(
                f"cannot {what} {self.path}: its config differs in {shown}"
                + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
                + "; use the same options or a new --run-dir"
            )

    # ------------------------------------------------------------------------------ metrics.jsonl
    def append_metrics(self, record: dict[str, Any]) -> int:
        """Append ``record`` (fsync'ed); returns metrics.jsonl's size before it."""
        return append_jsonl(self.path / METRICS, record)

    def read_metrics(self, *, quiet: bool = False) -> list[dict[str, Any]]:
        """The evaluation records (torn or garbled lines skipped and reported; the last record of a
        step wins, so a step evaluated again after a resume appears once)."""
        records = read_jsonl(self.path / METRICS, warn=None if quiet else _warn)
        by_step: dict[Any, dict] = {}
        for record in records:
            by_step[record.get("step")] = record
        return sorted(
            (r for r in by_step.values() if isinstance(r.get("step"), int)), key=lambda r: r["step"]
        )

    def truncate_metrics(self, step: int) -> None:
        """Drop records after ``step`` (a resume from an older checkpoint re-does those steps)."""
        records = read_jsonl(self.path / METRICS, warn=None)
        kept = [r for r in records if isinstance(r.get("step"), int) and r["step"] <= step]
        if len(kept) != len(records):
            rewrite_jsonl(self.path / METRICS, kept)

    # ------------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state: dict[str, Any], name: str = CHECKPOINT) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path / name, buffer.getvalue())

    def commit(self, record: dict[str, Any], state: dict[str, Any], best: bool) -> None:
        """One evaluation, all or nothing: its metrics record (appended, fsync'ed) and checkpoint.pt
        (and best.pt when ``best``, written with it as one commit). Whichever is written second,
        a failure takes the first back, so they advance together or not at all (a failed append
        used to leave the checkpoints advanced and the record lost).

        The order keeps a kill harmless too: the first evaluation writes its checkpoints first (a
        kill then leaves a checkpoint without its record, which it carries: the resume logs it;
        metrics without a checkpoint mean a lost checkpoint, which a resume refuses), later ones
        append the record first (a kill leaves one record past the checkpoint: the resume drops
        it)."""
        if not self.has_checkpoint():
            self.write_checkpoints(state, best)
            try:
                self.append_metrics(record)
            except BaseException:
                for name in (CHECKPOINT, BEST):  # neither existed before
                    with contextlib.suppress(OSError):
                        (self.path / name).unlink()
                raise
            return
        size = self.append_metrics(record)
        try:
            self.write_checkpoints(state, best)
        except BaseException:
            truncate_to(self.path / METRICS, size)
            raise

    def write_checkpoints(self, state: dict[str, Any], best: bool) -> None:
        """checkpoint.pt, and best.pt when ``best``, as one commit (both new or both old)."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        files = {self.path / BEST: data} if best else {}
        files[self.path / CHECKPOINT] = data
        atomic_write_many(files)

    def remove_unstarted(self) -> None:
        """Undo a new run that failed before its first checkpoint (called holding the lock): remove
        its config.json, an empty metrics.jsonl, leftover temporaries and the lock file, so the
        same command can run again (it refused: "already exists"; the caller removes the folder
        it created, once empty). A run with a checkpoint or an evaluation record is left as it
        is."""
        if self.has_checkpoint() or self.has_checkpoint(BEST):
            return
        metrics = self.path / METRICS
        with contextlib.suppress(OSError):
            if metrics.exists() and metrics.read_text().strip():
                return
        files = [self.path / CONFIG, self.path / TRAIN_NOISE, metrics, self.path / LOCK]
        for stale in [*files, *stale_temp_files(self.path)]:
            with contextlib.suppress(OSError):
                stale.unlink()

    def has_checkpoint(self, name: str = CHECKPOINT) -> bool:
        return (self.path / name).exists()

    def load_checkpoint(self, name: str = CHECKPOINT) -> dict[str, Any]:
        """A checkpoint loaded safely (``weights_only=True``); every way it can be unusable is a
        one-line error."""
        return load_checkpoint(self.path / name)

    # ------------------------------------------------------------------------------ lock, cleanup
    @contextlib.contextmanager
    def lock(self, part: str = "run") -> Iterator[None]:
        """Hold one of the run's advisory locks and clean the temporary files earlier kills left in
        what it guards. ``part="run"``: the training files (``qrnn train``); ``"evals"``: the
        evaluation records, evals/ and jobs.jsonl (``qrnn eval/submit/collect``), so a run can be
        evaluated while it trains. Another ``qrnn`` process holding the same lock is a one-line
        error that names it."""
        if part not in LOCKS:
            raise ValueError(f"part must be one of {', '.join(LOCKS)}, got {part!r}")
        lock_path = self.path / LOCKS[part]
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "a+")  # noqa: SIM115 - held for the context
        except OSError as error:
            fix = (
                "a file is in the way of that folder: choose another location"
                if error.errno in (errno.ENOTDIR, errno.EEXIST)
                else "it must be a writable folder (fix its permissions or copy the run elsewhere)"
            )
            raise QRNNError(f"cannot use {self.path}: {error.strerror or error}; {fix}") from None
        # filelock's native lock on the descriptor that also holds the holder's line (flock on
        # POSIX, LockFileEx of byte 0 on Windows): exclusive, non-blocking
        if not lock_descriptor(handle.fileno(), blocking=False):
            holder = ""
            with contextlib.suppress(OSError):  # Windows: the holder's locked byte is unreadable
                handle.seek(0)
                holder = handle.read(200).strip()
            handle.close()
            raise QRNNError(
                f"{self.path} is in use by another qrnn process"
                + (f" ({holder})" if holder else "")
                + "; wait for it to finish (or stop it) or use another run directory"
            ) from None
        try:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
                handle.write(f"pid {os.getpid()}: {' '.join(_command())[:160]}\n")
                handle.flush()
            folders = [self.path] if part == "run" else _folders(self.path / EVALS)
            for folder in folders:
                for stale in stale_temp_files(folder):
                    with contextlib.suppress(OSError):
                        stale.unlink()
            yield
        finally:
            unlock_descriptor(handle.fileno())
            handle.close()

    # ------------------------------------------------------------------------------ evaluations
    def eval_dir(self, name: str) -> Path:
        """``evals/<name>`` for a safe ``name`` (never a path)."""
        return self.path / EVALS / safe_name(name)


def _command() -> list[str]:
    import sys

    argv = list(sys.argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return argv


def _folders(root: Path) -> list[Path]:
    """``root`` and every folder below it (evaluation folders and their rounds)."""
    if not root.is_dir():
        return []
    return [root] + sorted(p for p in root.rglob("*") if p.is_dir())


def _warn(message: str) -> None:
    import sys

    print(f"qrnn: warning: {message}", file=sys.stderr)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``); missing, empty, truncated, foreign or
    non-finite checkpoints are one-line errors."""
    path = Path(path)
    run = path.parent
    if not path.exists():
        raise QRNNError(
            f"no checkpoint at {path}; continue the run with 'qrnn train --resume --run-dir {run}' "
            f"(or train it first)"
        )
    if path.is_dir():
        raise QRNNError(f"{path} is a folder, not a checkpoint")
    try:
        if path.stat().st_size == 0:
            raise QRNNError(
                f"{path} is empty (a write was cut short?); delete it and resume, or restore a copy"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
    except QRNNError:
        raise
    except Exception as error:  # noqa: BLE001 - pickle/zip errors of every kind
        first = (str(error).splitlines() or [type(error).__name__])[0]
        if "weights_only" in first or "Weights only" in first:
            first = "it holds objects other than tensors and plain data"
        raise QRNNError(
            f"{path} is not a readable checkpoint ({first[:160]}); delete it and resume, or "
            "restore a copy"
        ) from None
    missing = CHECKPOINT_KEYS - set(state) if isinstance(state, dict) else {"everything"}
    if missing:
        raise QRNNError(
            f"{path} is not a qrnn-qiskit checkpoint (missing {', '.join(sorted(missing))})"
        )
    if isinstance(state["step"], bool) or not isinstance(state["step"], int) or state["step"] < 0:
        raise QRNNError(f"{path} is damaged (step {state['step']!r} is not a step count)")
    if not isinstance(state["model"], dict):
        raise QRNNError(f"{path} is damaged (its model is not a state dict)")
    for key, tensor in state["model"].items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            if not bool(torch.isfinite(tensor).all()):
                raise QRNNError(
                    f"{path} holds non-finite weights ({key}): the run diverged before this "
                    "checkpoint; resume from a copy or retrain with a lower --lr"
                )
        elif isinstance(tensor, float) and not math.isfinite(tensor):
            raise QRNNError(f"{path} holds a non-finite value ({key})")
    return state
