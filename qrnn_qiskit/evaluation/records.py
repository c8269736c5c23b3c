"""The records of evaluations inside a run directory: plans, circuits, rounds, job records and
results, each of one attempt.

Layout inside a run directory::

    jobs.jsonl                      every IBM job id, appended and fsync'ed right after submission,
                                    before anything waits on it (never rewritten)
    evals/.lock                     held by the process writing evaluation records
    evals/<name>/circuits.qpy       the ISA circuits submitted to IBM (collect reuses them, never
                                    re-transpiles); written before plan.json
    evals/<name>/plan.json          the evaluation settings, the checkpoint step and the attempt id
    evals/<name>/rounds/NNNN.json   counts of each finished round (atomic)
    evals/<name>/result.json        readouts, readout errors, task metrics, resource report (atomic)
    evals/<name>/previous/<id>/     an IBM attempt set aside by --restart (kept, never deleted)

``<name>`` is a plain name (:func:`~qrnn_qiskit.training.rundir.safe_name`), never a path. Every
record carries its plan's attempt id, so a re-run under the same name never picks up another
attempt's jobs or rounds. Unreadable records are one-line errors naming the file and the way out;
an unreadable round or result is derived again from what is recorded.
"""

from __future__ import annotations

import io
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import QRNNError
from ..fileio import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    read_json,
    read_jsonl,
    write_error,
)
from ..training import RunDir
from ..training.rundir import EVALS, JOBS, safe_name
from .config import EvalConfig

PLAN = "plan.json"
RESULT = "result.json"
CIRCUITS = "circuits.qpy"
ROUNDS = "rounds"
PREVIOUS = "previous"
RESULT_KEYS = (
    "target", "protocol", "semantics", "config", "samples", "steps", "error_per_step",
    "mean_error", "max_error", "readouts", "exact",
)  # fmt: skip


def _warn(message: str) -> None:
    print(f"qrnn: warning: {message}", file=sys.stderr)


def _new_attempt() -> str:
    """An id for one attempt at an evaluation: its plan, rounds, job records and result carry it, so
    records of an earlier attempt under the same name are never mixed in."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def is_remote_plan(plan: dict) -> bool:
    """Whether a plan's evaluation runs on IBM Quantum (jobs that cost time and are recorded)."""
    return str(plan.get("eval", {}).get("target", "")).startswith("ibm:")


class EvalStore:
    """Files of one evaluation inside a run directory (see the module docstring).

    The name is a plain folder name (:func:`~qrnn_qiskit.training.rundir.safe_name`), never a path.
    Every record of an evaluation carries its plan's ``attempt`` id; records of another attempt
    (a re-run under the same name) are ignored, and a finished IBM evaluation is never replaced
    without ``--restart``, which moves it to ``previous/<attempt>/``.
    """

    def __init__(self, run_dir: str | Path, name: str) -> None:
        self.run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.run_dir = self.run.path
        self.name = safe_name(name)
        self.path = self.run.eval_dir(self.name)
        self.attempt: str | None = None  # the attempt being run (set by begin/resume)

    @property
    def jobs_path(self) -> Path:
        return self.run_dir / JOBS

    def lock(self):
        """The run's evaluation lock (evals/.lock): one process writes evaluation records at a
        time."""
        return self.run.lock("evals")

    def _fix(self) -> str:
        return (
            "restore it, or start this evaluation over with --restart (earlier job ids stay in "
            f"{JOBS})"
        )

    # ------------------------------------------------------------------------------ plan
    def plan(self) -> dict | None:
        """plan.json, or None when the evaluation was never started (one-line errors when it is
        unreadable)."""
        path = self.path / PLAN
        if not path.exists() and not path.is_symlink():
            return None
        plan = read_json(path, "an evaluation plan", self._fix())
        if (
            not isinstance(plan, dict)
            or not isinstance(plan.get("eval"), dict)
            or not _int(plan.get("train_step"))
        ):
            raise QRNNError(f"{path} is damaged (no settings or checkpoint step); {self._fix()}")
        return plan

    def config(self, plan: dict) -> EvalConfig:
        """The plan's evaluation settings as an :class:`EvalConfig`."""
        try:
            return EvalConfig(**plan["eval"])
        except (TypeError, QRNNError) as error:
            raise QRNNError(
                f"{self.path / PLAN} holds settings this version cannot use ({error}); "
                + self._fix()
            ) from None

    def begin(self, plan: dict, circuits: list | None = None) -> None:
        """Start a new attempt: set the previous one aside (IBM: moved to previous/<attempt>/;
        simulators: removed), then write circuits.qpy and, last, plan.json: an evaluation whose
        plan exists always has its circuits."""
        self.set_aside()
        self.attempt = plan["attempt"]
        if circuits is not None:
            self.write_circuits(circuits)
        atomic_write_json(self.path / PLAN, plan)

    def resume(self, plan: dict) -> None:
        self.attempt = plan.get("attempt")

    def set_aside(self) -> Path | None:
        """End the current attempt: an IBM evaluation (or one whose plan is unreadable) is moved
        to previous/<attempt>/ and that folder returned; a simulator evaluation, cheap to rerun,
        is removed."""
        names = [PLAN, CIRCUITS, RESULT, ROUNDS]
        present = [n for n in names if (self.path / n).exists()]
        if not present:
            return None
        try:
            plan = self.plan()
        except QRNNError:
            plan = None
        keep = plan is None or is_remote_plan(plan)
        try:
            if not keep:
                for n in present:
                    target = self.path / n
                    if target.is_dir() and not target.is_symlink():
                        for f in target.iterdir():
                            f.unlink()
                        target.rmdir()
                    else:
                        target.unlink()
                return None
            attempt = (plan or {}).get("attempt") or time.strftime("unknown-%Y%m%dT%H%M%S")
            where = self.path / PREVIOUS / safe_name(str(attempt), "attempt")
            where.mkdir(parents=True, exist_ok=True)
            for n in present:
                os.replace(self.path / n, where / n)
            return where
        except OSError as error:
            raise write_error(self.path, error) from None

    # ------------------------------------------------------------------------------ circuits
    def write_circuits(self, circuits: list) -> None:
        from qiskit import qpy

        buffer = io.BytesIO()
        qpy.dump(circuits, buffer)
        atomic_write_bytes(self.path / CIRCUITS, buffer.getvalue())

    def read_circuits(self) -> list:
        """The ISA circuits the jobs ran (one-line errors when missing or unreadable)."""
        from qiskit import qpy

        path = self.path / CIRCUITS
        try:
            with open(path, "rb") as handle:
                circuits = list(qpy.load(handle))
        except FileNotFoundError:
            raise QRNNError(f"{path} is missing; {self._fix()}") from None
        except Exception as error:  # noqa: BLE001 - qpy raises struct, Qiskit and QPY errors
            first = (str(error).splitlines() or [type(error).__name__])[0][:160]
            raise QRNNError(f"{path} is not readable QPY ({first}); {self._fix()}") from None
        if not circuits:
            raise QRNNError(f"{path} holds no circuits; {self._fix()}")
        return circuits

    # ------------------------------------------------------------------------------ rounds
    def round_path(self, r: int) -> Path:
        return self.path / ROUNDS / f"{r:04d}.json"

    def load_round(self, r: int) -> list | None:
        """Counts of round ``r`` of this attempt, or None: not run yet, another attempt's, or
        unreadable (reported; the round is then fetched again from its recorded job, or rerun)."""
        path = self.round_path(r)
        if not path.exists():
            return None
        try:
            saved = read_json(path, "a round's counts", "it is fetched or run again")
        except QRNNError as error:
            _warn(str(error))
            return None
        if isinstance(saved, list):  # written before attempts existed
            saved = {"attempt": None, "counts": saved}
        if not isinstance(saved, dict) or saved.get("attempt") != self.attempt:
            return None
        counts = saved.get("counts")
        if not isinstance(counts, list) or not all(
            isinstance(pub, list) and all(isinstance(c, dict) for c in pub) for pub in counts
        ):
            _warn(f"{path} is damaged (no counts); it is fetched or run again")
            return None
        return counts

    def save_round(self, r: int, counts: list) -> None:
        atomic_write_json(self.round_path(r), {"attempt": self.attempt, "counts": counts})

    # ------------------------------------------------------------------------------ jobs
    def record_job(self, record: dict) -> None:
        """Append one job record to RUN/jobs.jsonl and fsync it (file and folder) before
        returning."""
        append_jsonl(self.jobs_path, record)

    def jobs(self) -> dict[int, dict]:
        """{round: record} of the current attempt's recorded jobs."""
        return self.jobs_of(self.attempt)

    def jobs_of(self, attempt: str | None) -> dict[int, dict]:
        """{round: record} of an attempt's recorded jobs (the last record of a round wins; a torn
        line is skipped and reported)."""
        out = {}
        for record in read_jsonl(self.jobs_path):
            if (
                record.get("eval") == self.name
                and record.get("attempt") == attempt
                and _int(record.get("round"))
                and isinstance(record.get("job_id"), str)
            ):
                out[record["round"]] = record
        return out

    # ------------------------------------------------------------------------------ result
    def result(self) -> dict | None:
        """result.json, or None when there is none (one-line errors when it is unreadable)."""
        path = self.path / RESULT
        if not path.exists():
            return None
        fix = (
            "rebuild it from the stored rounds with 'qrnn collect "
            f"{self.run_dir}' (no job is resubmitted), or re-run it with 'qrnn eval'"
        )
        result = read_json(path, "an evaluation result", fix)
        missing = [k for k in RESULT_KEYS if k not in result] if isinstance(result, dict) else []
        if not isinstance(result, dict) or missing:
            raise QRNNError(f"{path} is damaged (missing {', '.join(missing[:3]) or 'all'}); {fix}")
        return result

    def finished(self, plan: dict, *, quiet: bool = False) -> bool:
        """Whether this plan's attempt has its result (an unreadable result is reported unless
        ``quiet`` and counts as unfinished: collect rebuilds it from the stored rounds)."""
        try:
            result = self.result()
        except QRNNError as error:
            if not quiet:
                _warn(str(error))
            return False
        return result is not None and result.get("attempt") == plan.get("attempt")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_jsonable(counts) -> list:
    return [[{k: float(v) for k, v in row.items()} for row in pub] for pub in counts]


def pending(run_dir: str | Path) -> list[str]:
    """Names of the run's evaluations that have a plan but no result of that plan yet (an
    unreadable plan or result counts as unfinished)."""
    root = RunDir(run_dir).path / EVALS
    if not root.is_dir():
        return []
    names = []
    for folder in sorted(p for p in root.iterdir() if (p / PLAN).exists()):
        try:
            store = EvalStore(run_dir, folder.name)
            plan = store.plan()
        except QRNNError:
            names.append(folder.name)
            continue
        if plan is not None and not store.finished(plan, quiet=True):
            names.append(folder.name)
    return names
