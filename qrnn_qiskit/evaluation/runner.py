"""Evaluate a trained run on a target: one round loop for simulators and IBM, resumable, nothing
lost.

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
attempt's jobs or rounds. ``collect`` replays stored rounds, fetches recorded jobs (never
resubmitting one; only local mode, whose jobs die with their process, submits a lost job again,
seeded as before), and submits the next replay round only when no job is recorded for it.
Unreadable records are one-line errors naming the file and the way out; an unreadable round or
result is derived again from what is recorded.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backends.ibm import LostJobError
from ..backends.noisy import Executor, TargetSpec, make_simulator_executor, parse_target
from ..errors import QRNNError
from ..fileio import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    read_json,
    read_jsonl,
    write_error,
)
from ..training import RunDir, load_run, make_task
from ..training.rundir import EVALS, JOBS, safe_name
from .config import EvalConfig, eval_name_suffix, sampler_options
from .mitigation import make_replay, replay_shrink
from .protocols import DynamicProtocol, HardwareProtocol, ReplayProtocol, head_outputs
from .resources import ResourceReport, resource_report

SEMANTICS = {
    "replay": "the trained model: prefixes re-prepared each step, readouts estimated from shots",
    "dynamic": "a different, measured model: one-shot mid-circuit readouts and linearised if/else "
    "feedforward",
}


def eval_name(config: EvalConfig) -> str:
    """Folder name of an evaluation: target and protocol (plus non-default dynamic coupling)."""
    target = parse_target(config.target, config.readout_error).label
    name = f"{target}-{config.protocol}"
    if config.protocol == "dynamic" and config.coupling != "cnot":
        name += "-weak" if config.coupling == "weak" else f"-weak{config.coupling}"
    name += eval_name_suffix(config)
    if config.max_steps:
        name += f"-steps{config.max_steps}"
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def load_samples(run_dir: str | Path, samples: int, max_steps: int = 0):
    """(train config, model in eval mode, task, inputs [K, T], targets) of the task's first K eval
    sequences. A noise-aware model (``--train-noise``) runs on its bare engine here: the hardware
    supplies the noise, and the noiseless reference readouts are the circuit's own."""
    train_config, model, state = load_run(run_dir)
    model.eval()
    from ..models.noise import NoisyReadoutEngine

    if isinstance(getattr(model.core, "engine", None), NoisyReadoutEngine):
        model.core.engine = model.core.engine.engine
    task = make_task(train_config)
    xs, ys, have = [], [], 0
    for x, y in task.eval_batches():
        xs.append(x)
        ys.append(y)
        have += len(x)
        if have >= samples:
            break
    x, y = torch.cat(xs)[:samples], torch.cat(ys)[:samples]
    if len(x) < samples:
        raise QRNNError(
            f"the task's evaluation set has only {len(x)} sequences; use --samples <= {len(x)}"
        )
    if max_steps:
        x = x[:, :max_steps]
    return train_config, model, task, x, y, int(state["step"])


def build_executor(target: TargetSpec, config: EvalConfig) -> Executor:
    if target.kind == "ibm":
        from ..backends.ibm import IBMExecutor

        return IBMExecutor(
            target.backend,
            optimization_level=config.optimization_level,
            seed_transpiler=config.seed,
            layout_method=config.layout,
            sampler_options=sampler_options(config),
            mode="session" if config.protocol == "replay" else "batch",
        )
    executor = make_simulator_executor(target, config.optimization_level, config.seed)
    if hasattr(executor, "layout_method"):
        executor.layout_method = config.layout
    return executor


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


def _submit(
    executor: Executor,
    isa_pubs: list,
    config: EvalConfig,
    store: EvalStore,
    r: int,
    seed: int,
    replaces: str | None = None,
) -> dict:
    """Record round ``r``'s job: one the server already holds under its tags (its id never reached
    disk), else a new submission, tagged with the run, the evaluation attempt and the round. The
    record is fsync'ed in jobs.jsonl before anything waits on the job; a record that cannot be
    written names the job id, so no job is ever lost silently."""
    tags = job_tags(store, r)
    job_id = executor.find_job(tags) if replaces is None and hasattr(executor, "find_job") else None
    recovered = job_id is not None
    if not recovered:
        job_id = executor.submit(isa_pubs, config.shots, tags=tags, seed=seed)
    record = {
        "eval": store.name,
        "attempt": store.attempt,
        "round": r,
        "job_id": job_id,
        "recovered_by_tag": recovered,
        "tags": tags,
        "target": config.target,
        "protocol": config.protocol,
        "channel": getattr(executor, "channel", ""),
        "mode": getattr(executor, "mode_kind", None),
        "batch": getattr(executor, "batch_id", None),  # Session or Batch id
        "sampler_options": getattr(executor, "sampler_options", None),
        "shots": config.shots,
        "pubs": len(isa_pubs),
        "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if replaces:
        record["replaces"] = replaces
    try:
        store.record_job(record)
    except QRNNError as error:
        raise QRNNError(
            f"job {job_id} (round {r + 1}) was submitted but could not be recorded ({error}); "
            f"after fixing that, add this line to {store.jobs_path} and run 'qrnn collect': "
            + json.dumps(record, sort_keys=True)
        ) from None
    return record


def _run_rounds(
    protocol: HardwareProtocol,
    isa: list,
    executor: Executor,
    store: EvalStore,
    config: EvalConfig,
    *,
    submit_only: bool,
    progress: bool,
    log: Callable[[str], None],
) -> bool:
    """Advance the rounds; returns True when all rounds have results (False: stopped after
    submitting)."""
    jobs = store.jobs()
    bar = tqdm(
        total=protocol.n_rounds,
        disable=not progress,
        desc=f"{protocol.name} on {executor.description}",
        dynamic_ncols=True,
        file=sys.stderr,
    )
    try:
        for r in range(protocol.n_rounds):
            pubs = protocol.round_pubs(r)
            counts = store.load_round(r)
            if counts is None:
                isa_pubs = [(isa[i], values) for i, values in pubs]
                if executor.remote:
                    seed = config.seed * 100_003 + r
                    record = jobs.get(r)
                    if record is None:
                        record = _submit(executor, isa_pubs, config, store, r, seed)
                        jobs[r] = record
                        how = "found by tag" if record.get("recovered_by_tag") else "submitted"
                        log(f"{how} round {r + 1}/{protocol.n_rounds}: job {record['job_id']}")
                        if submit_only:
                            return False
                    try:
                        counts = executor.fetch(record["job_id"])
                    except LostJobError as lost:  # local mode only: nothing was paid for
                        record = _submit(
                            executor, isa_pubs, config, store, r, seed, replaces=record["job_id"]
                        )
                        jobs[r] = record
                        log(f"{lost}; resubmitted round {r + 1} as job {record['job_id']}")
                        counts = executor.fetch(record["job_id"])
                else:
                    counts = executor.run(isa_pubs, config.shots, seed=config.seed * 100_003 + r)
                counts = _as_jsonable(counts)
                store.save_round(r, counts)
            protocol.absorb(r, counts)
            bar.update(1)
    finally:
        bar.close()
    return True


def job_tags(store: EvalStore, r: int) -> list[str]:
    """Tags of round r's job: the run (its folder name), the evaluation attempt and the round —
    stable across processes, so 'qrnn collect' can find a job whose id never reached disk."""
    run = re.sub(r"[^A-Za-z0-9_.-]", "_", store.run_dir.resolve().name)
    return [f"qrnn-run:{run}", f"qrnn-eval:{store.name}:{store.attempt}", f"qrnn-round:{r}"]


def _finish(
    protocol: HardwareProtocol,
    model,
    task,
    y: torch.Tensor,
    config: EvalConfig,
    store: EvalStore,
    report: ResourceReport,
    started: float,
    train_step: int,
    full_length: bool,
) -> dict:
    z = protocol.readouts()
    jobs = store.jobs()
    exact = protocol.exact.double().numpy()
    error = np.abs(z - exact)
    result: dict[str, Any] = {
        "name": store.name,
        "target": parse_target(config.target, config.readout_error).label,
        "protocol": config.protocol,
        "semantics": SEMANTICS[config.protocol],
        "config": config.to_dict(),
        "train_step": train_step,
        "samples": protocol.samples,
        "steps": protocol.steps,
        "error_per_step": error.mean(axis=(0, 2)).tolist(),
        "mean_error": float(error.mean()),
        "max_error": float(error.max()),
        "metrics": None,
        "exact_metrics": None,
        "resources": report.to_dict(),
        "seconds": round(time.perf_counter() - started, 3),
        "jobs": [jobs[r]["job_id"] for r in sorted(jobs)],
        "attempt": store.attempt,
        "readouts": z.tolist(),
        "exact": exact.tolist(),
    }
    if isinstance(protocol, ReplayProtocol):
        result["angles"] = protocol.angles_used().tolist()
    if hasattr(protocol, "extras"):
        result["mitigation"] = protocol.extras()
    result["layout"] = store.plan().get("layout") if store.plan() else None
    if full_length:
        with torch.no_grad():
            noisy = torch.as_tensor(z, dtype=torch.float32)
            result["metrics"] = task.metrics(head_outputs(model, noisy, protocol.x), y)
            result["exact_metrics"] = task.metrics(
                head_outputs(model, protocol.exact, protocol.x), y
            )
            result["sample_metrics"] = per_sample_metrics(
                task, model, protocol.x, y, noisy, protocol.exact
            )
    atomic_write_json(store.path / RESULT, result)
    return result


def executor_layout(executor: Executor) -> dict | None:
    layout = getattr(executor, "layout", None)
    return layout.to_dict() if layout is not None else None


def per_sample_metrics(task, model, x, y, noisy, exact) -> dict:
    """{"noisy": {metric: [K]}, "exact": {metric: [K]}}: the task metrics of every sequence, for
    confidence intervals in ``qrnn compare``."""
    out: dict = {"noisy": {}, "exact": {}}
    for key, readouts in (("noisy", noisy), ("exact", exact)):
        outputs = head_outputs(model, readouts, x)
        for k in range(len(x)):
            for metric, value in task.metrics(outputs[k : k + 1], y[k : k + 1]).items():
                out[key].setdefault(metric, []).append(float(value))
    return out


def make_protocol(config: EvalConfig, model, x: torch.Tensor) -> HardwareProtocol:
    """The protocol of ``config``: replay (mitigated when ``--mitigate`` asks for it) or dynamic."""
    if config.protocol == "replay":
        return make_replay(config, model, x)
    return DynamicProtocol(model, x, config.coupling, config.corrections)


def run_evaluation(
    run_dir: str | Path,
    config: EvalConfig,
    *,
    executor: Executor | None = None,
    confirm: Callable[[ResourceReport], bool] | None = None,
    submit_only: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    name: str | None = None,
) -> dict | None:
    """Evaluate the run's model on ``config.target``; print the resource report first.

    Simulator targets run to completion and return the result. For ``ibm:`` targets
    ``confirm(report)`` must approve (``--yes`` passes ``None``), jobs are recorded in
    RUN/jobs.jsonl, and with ``submit_only`` the call returns ``None`` after the first submission
    (finish with ``collect``). An unfinished IBM evaluation of the same settings is resumed; a
    finished one is kept (start it over with :meth:`EvalStore.set_aside`, ``--restart``). The run's
    evaluation lock is held throughout.
    """
    store = EvalStore(run_dir, name if name is not None else eval_name(config))
    run = load_samples(run_dir, config.samples, config.max_steps)
    with store.lock():
        return _evaluate(
            store, config, run, executor=executor, confirm=confirm, submit_only=submit_only,
            progress=progress, log=log,
        )  # fmt: skip


def _evaluate(
    store: EvalStore,
    config: EvalConfig,
    run: tuple,
    *,
    executor: Executor | None,
    confirm: Callable[[ResourceReport], bool] | None,
    submit_only: bool,
    progress: bool,
    log: Callable[[str], None],
) -> dict | None:
    started = time.perf_counter()
    target = parse_target(config.target, config.readout_error)
    _, model, task, x, y, train_step = run
    full_length = (
        not config.max_steps or config.max_steps >= x.shape[1] and x.shape[1] == y.shape[-1]
    )
    if target.exact and config.protocol == "dynamic":
        raise QRNNError(
            "dynamic circuits sample mid-circuit measurements and have no exact form; "
            "use --target aer for their ideal (shot-based) simulation"
        )
    protocol = make_protocol(config, model, x)
    executor = executor or build_executor(target, config)
    if executor.remote and hasattr(executor, "sampler_options"):  # the config decides, recorded
        executor.sampler_options = sampler_options(config)
        executor.mode_kind = "session" if config.protocol == "replay" else "batch"
    plan = {"eval": config.to_dict(), "train_step": train_step, "name": store.name}
    if executor.remote:
        plan["sampler_options"] = getattr(executor, "sampler_options", None)
    existing = store.plan()
    resume = False
    if existing is not None:
        same = {k: existing.get(k) for k in ("eval", "train_step")} == {
            k: plan[k] for k in ("eval", "train_step")
        }
        if store.finished(existing):
            if is_remote_plan(existing):
                raise QRNNError(
                    f"{store.path} holds a finished IBM evaluation; it is kept: pass --restart to "
                    "run it again (the finished one moves to previous/) or choose another --name"
                )
        elif is_remote_plan(existing) and not same:
            raise QRNNError(
                f"{store.path} holds an unfinished IBM evaluation with other settings; finish it "
                "with 'qrnn collect', start it over with --restart, or pass another --name"
            )
        else:
            resume = executor.remote and same
    isa = None
    if resume:
        store.resume(existing)
        try:
            isa = store.read_circuits()
        except QRNNError:
            if store.jobs():
                raise
            log(f"{store.path / CIRCUITS} is missing or unreadable and no job ran from it: the "
                "evaluation starts again")  # fmt: skip
            resume = False
        executor.physical_qubits = existing.get("physical_qubits")
        modes = [j.get("batch") for _, j in sorted(store.jobs().items()) if j.get("batch")]
        if modes and hasattr(executor, "mode_id"):  # reopen the evaluation's Session if open
            executor.mode_id = modes[-1]
    if isa is None:
        isa = executor.prepare(protocol.templates, dynamic=protocol.dynamic)
    if hasattr(protocol, "configure"):  # mitigated replay: λ from the ISA templates, M3 cals
        protocol.configure(isa, executor)
    report = resource_report(
        target.label,
        config.protocol,
        protocol.templates,
        isa,
        protocol.schedule(),
        config.shots,
        physical_qubits=executor.physical_qubits,
        seconds_target=executor.seconds_target,
        rep_delay=getattr(executor, "rep_delay", 250e-6),
        exact=executor.exact,
        calibration=replay_shrink(protocol, isa, executor),
    )
    log(report.format())
    if executor.remote and not resume and confirm is not None and not confirm(report):
        log("not submitted")
        return None
    if not resume:
        store.begin(
            {**plan, "attempt": _new_attempt(), "physical_qubits": executor.physical_qubits,
             "layout": executor_layout(executor), "resources": report.to_dict()},
            isa if executor.remote else None,
        )  # fmt: skip
    done, close = False, True
    try:
        done = _run_rounds(
            protocol, isa, executor, store, config, submit_only=submit_only, progress=progress,
            log=log,
        )  # fmt: skip
        # a Session stays open between 'qrnn submit' and 'qrnn collect' while rounds remain
        close = done or not submit_only or protocol.n_rounds == 1
    finally:
        if close and hasattr(executor, "close"):
            executor.close()
    if not done:
        return None
    return _finish(
        protocol, model, task, y, config, store, report, started, train_step, full_length
    )


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


def collect(
    run_dir: str | Path,
    *,
    executor: Executor | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_result: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Finish every unfinished evaluation of the run: for IBM ones fetch recorded jobs (never
    resubmitting one) and submit missing rounds; simulator ones are run again. Each evaluation is
    collected on its own: one that cannot be finished is reported and the others still are."""
    rd = RunDir(run_dir)
    if not rd.is_run:
        raise QRNNError(
            f"{rd.path} is not a run directory (no config.json); pass the run directory that "
            "'qrnn submit' wrote to"
        )
    names = pending(rd.path)
    if not names:
        raise QRNNError(f"{rd.path} has no unfinished evaluations (submit one with 'qrnn submit')")
    results, failed = [], []
    for name in names:
        try:
            store = EvalStore(rd, name)
            config = store.config(store.plan() or {})
            remote = parse_target(config.target, config.readout_error).kind == "ibm"
            if not remote:
                log(f"{name}: a simulator evaluation; running it again")
            result = run_evaluation(
                rd.path, config, executor=executor if remote else None, progress=progress,
                log=log, name=name,
            )  # fmt: skip
        except QRNNError as error:
            failed.append((name, error))
            continue
        if result is not None:
            results.append(result)
            if on_result is not None:
                on_result(result)
    if len(failed) == 1 and len(names) == 1:
        raise QRNNError(f"{failed[0][0]}: {failed[0][1]}")
    if failed:
        for name, error in failed:
            _warn(f"{name}: {error}")
        raise QRNNError(
            f"{len(failed)} of {len(names)} unfinished evaluation(s) could not be collected "
            f"({', '.join(name for name, _ in failed)}; see the warnings above)"
        )
    return results
