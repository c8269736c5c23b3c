"""Evaluate a trained run on a target: one round loop for simulators and IBM, resumable, nothing
lost.

Layout inside a run directory::

    jobs.jsonl                      every IBM job id, appended and fsync'ed right after submission,
                                    before anything waits on it
    evals/<name>/plan.json          the evaluation settings (and the checkpoint step they apply to)
    evals/<name>/circuits.qpy       the ISA circuits submitted to IBM (collect reuses them, never
    re-transpiles) evals/<name>/rounds/NNNN.json   counts of each finished round (atomic)
    evals/<name>/result.json        readouts, readout errors, task metrics, resource report (atomic)

``collect`` replays stored rounds, fetches recorded jobs (never resubmitting one), and submits the
next replay round only when no job is recorded for it.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backends.noisy import Executor, TargetSpec, make_simulator_executor, parse_target
from ..errors import QRNNError
from ..fileio import atomic_write_bytes, atomic_write_json
from ..training import load_run, make_task
from .mitigation import eval_name_suffix, replay_shrink, sampler_options
from .protocols import EvalConfig, Protocol, ReplayProtocol, head_outputs, make_protocol
from .resources import ResourceReport, resource_report

JOBS = "jobs.jsonl"
EVALS = "evals"
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
    sequences."""
    train_config, model, state = load_run(run_dir)
    model.eval()
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


class EvalStore:
    """Files of one evaluation inside a run directory (see the module docstring)."""

    def __init__(self, run_dir: str | Path, name: str) -> None:
        self.run_dir = Path(run_dir)
        self.name = name
        self.path = self.run_dir / EVALS / name

    @property
    def jobs_path(self) -> Path:
        return self.run_dir / JOBS

    def plan(self) -> dict | None:
        path = self.path / "plan.json"
        return json.loads(path.read_text()) if path.exists() else None

    def reset(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)

    def write_plan(self, plan: dict) -> None:
        atomic_write_json(self.path / "plan.json", plan)

    def write_circuits(self, circuits: list) -> None:
        from qiskit import qpy

        buffer = io.BytesIO()
        qpy.dump(circuits, buffer)
        atomic_write_bytes(self.path / "circuits.qpy", buffer.getvalue())

    def read_circuits(self) -> list:
        from qiskit import qpy

        with open(self.path / "circuits.qpy", "rb") as handle:
            return list(qpy.load(handle))

    def round_path(self, r: int) -> Path:
        return self.path / "rounds" / f"{r:04d}.json"

    def load_round(self, r: int) -> list | None:
        path = self.round_path(r)
        return json.loads(path.read_text()) if path.exists() else None

    def save_round(self, r: int, counts: list) -> None:
        atomic_write_json(self.round_path(r), counts)

    def record_job(self, record: dict) -> None:
        """Append one job record to RUN/jobs.jsonl and fsync it (file and folder) before
        returning."""
        self.jobs_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.jobs_path, "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        fd = os.open(self.jobs_path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def jobs(self) -> dict[int, dict]:
        """{round: record} of this evaluation's recorded jobs (the last record of a round wins)."""
        if not self.jobs_path.exists():
            return {}
        out = {}
        for line in self.jobs_path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("eval") == self.name:
                    out[int(record["round"])] = record
        return out

    def result(self) -> dict | None:
        path = self.path / "result.json"
        return json.loads(path.read_text()) if path.exists() else None


def _as_jsonable(counts) -> list:
    return [[{k: float(v) for k, v in row.items()} for row in pub] for pub in counts]


def _run_rounds(
    protocol: Protocol,
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
                    record = jobs.get(r)
                    if record is None:
                        record = _submit_or_recover(executor, store, config, r, isa_pubs)
                        jobs[r] = record
                        how = "found by tag" if record["recovered_by_tag"] else "submitted"
                        log(f"{how} round {r + 1}/{protocol.n_rounds}: job {record['job_id']}")
                        if submit_only:
                            return False
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


def run_id(run_dir: str | Path) -> str:
    """A stable id of the run directory: its name and a hash of its config.json."""
    import hashlib

    run_dir = Path(run_dir)
    digest = hashlib.sha1((run_dir / "config.json").read_bytes()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{run_dir.resolve().name}-{digest}")


def job_tags(store: EvalStore, r: int) -> list[str]:
    """Tags of round r's job: run, evaluation (its unique id) and round."""
    plan = store.plan() or {}
    return [
        f"qrnn-run:{run_id(store.run_dir)}",
        f"qrnn-eval:{plan.get('eval_id', store.name)}",
        f"qrnn-round:{r}",
    ]


def _submit_or_recover(
    executor: Executor, store: EvalStore, config: EvalConfig, r: int, isa_pubs: list
) -> dict:
    """Record round r's job: one the server already holds under its tags (its id never reached
    disk), else a new submission. The record is fsync'ed before anything waits on the job."""
    tags = job_tags(store, r)
    job_id = executor.find_job(tags)
    recovered = job_id is not None
    if not recovered:
        job_id = executor.submit(isa_pubs, config.shots, tags=tags)
    record = {
        "eval": store.name,
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
    store.record_job(record)
    return record


def _finish(
    protocol: Protocol,
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
        "jobs": [store.jobs()[r]["job_id"] for r in sorted(store.jobs())],
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
    atomic_write_json(store.path / "result.json", result)
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


def evaluate(
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
    (finish with ``collect``).
    """
    started = time.perf_counter()
    target = parse_target(config.target, config.readout_error)
    _, model, task, x, y, train_step = load_samples(run_dir, config.samples, config.max_steps)
    full_length = (
        not config.max_steps or config.max_steps >= x.shape[1] and x.shape[1] == y.shape[-1]
    )
    if target.exact and config.protocol == "dynamic":
        raise QRNNError(
            "dynamic circuits sample mid-circuit measurements and have no exact form; "
            "use --target aer for their ideal (shot-based) simulation"
        )
    protocol = make_protocol(config, model, x)
    store = EvalStore(run_dir, name or eval_name(config))
    executor = executor or build_executor(target, config)
    if executor.remote and hasattr(executor, "sampler_options"):  # the config decides, recorded
        executor.sampler_options = sampler_options(config)
        executor.mode_kind = "session" if config.protocol == "replay" else "batch"
    plan = {"eval": config.to_dict(), "train_step": train_step, "name": store.name}
    if executor.remote:
        plan["sampler_options"] = getattr(executor, "sampler_options", None)
    existing = store.plan()
    resume = executor.remote and existing is not None and store.result() is None
    if resume:
        if {k: existing.get(k) for k in ("eval", "train_step")} != {
            k: plan[k] for k in ("eval", "train_step")
        }:
            raise QRNNError(
                f"{store.path} holds an unfinished evaluation with other settings; finish it with "
                "'qrnn collect' or pass another --name"
            )
        isa = store.read_circuits()
        executor.physical_qubits = existing.get("physical_qubits")
        modes = [j.get("batch") for _, j in sorted(store.jobs().items()) if j.get("batch")]
        if modes and hasattr(executor, "mode_id"):  # reopen the evaluation's Session if open
            executor.mode_id = modes[-1]
    else:
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
        store.reset()
        store.write_plan(
            {
                **plan,
                "eval_id": uuid.uuid4().hex[:16],
                "physical_qubits": executor.physical_qubits,
                "layout": executor_layout(executor),
                "resources": report.to_dict(),
            }
        )
        if executor.remote:
            store.write_circuits(isa)
    done, close = False, True
    try:
        done = _run_rounds(
            protocol,
            isa,
            executor,
            store,
            config,
            submit_only=submit_only,
            progress=progress,
            log=log,
        )
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
    """Names of evaluations in the run that have a plan but no result yet."""
    root = Path(run_dir) / EVALS
    if not root.exists():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if (p / "plan.json").exists() and not (p / "result.json").exists()
    )


def collect(
    run_dir: str | Path,
    *,
    executor: Executor | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Finish every unfinished IBM evaluation of the run: fetch recorded jobs, submit missing
    rounds."""
    names = pending(run_dir)
    if not names:
        raise QRNNError(f"{run_dir} has no unfinished evaluations (submit one with 'qrnn submit')")
    results = []
    for name in names:
        store = EvalStore(run_dir, name)
        config = EvalConfig(**store.plan()["eval"])
        target = parse_target(config.target, config.readout_error)
        if target.kind != "ibm":
            log(f"{name}: not an IBM evaluation; rerun it with 'qrnn eval'")
            continue
        result = evaluate(run_dir, config, executor=executor, progress=progress, log=log, name=name)
        if result is not None:
            results.append(result)
    return results
