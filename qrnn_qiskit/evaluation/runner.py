"""Evaluate a trained run on a target: one round loop for simulators and IBM, resumable, nothing
lost.

An evaluation's records (plan, circuits, rounds, job records, result) are kept by
:class:`~qrnn_qiskit.evaluation.records.EvalStore`, which describes their layout; the rounds' jobs
are submitted, recorded and fetched by ``evaluation.jobs``. This module plans an evaluation,
resumes an unfinished one and writes its result; ``collect`` finishes every unfinished evaluation
of a run (simulator ones are run again).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backends.noisy import Executor, RemoteExecutor, make_simulator_executor
from ..backends.targets import TargetSpec, parse_target
from ..errors import QRNNError
from ..fileio import atomic_write_json
from ..formatting import status
from ..models import MeasuredCore
from ..training import RunDir, load_run, make_task
from .config import EvalConfig, eval_name_suffix, sampler_options
from .jobs import _run_rounds
from .measured import MeasuredProtocol
from .mitigation import make_replay, replay_shrink
from .protocols import DynamicProtocol, HardwareProtocol, ReplayProtocol, head_outputs
from .records import CIRCUITS, RESULT, EvalStore, _new_attempt, _warn, is_remote_plan, pending
from .resources import ResourceReport, resource_report

SEMANTICS = {
    "replay": ReplayProtocol.semantics,
    "dynamic": DynamicProtocol.semantics,
    "measured": MeasuredProtocol.semantics,
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
            mode="session" if config.protocol == "replay" else "batch",  # = dependent_rounds
        )
    executor = make_simulator_executor(target, config.optimization_level, config.seed)
    if executor.layout_method is not None:  # the executor chooses physical qubits
        executor.layout_method = config.layout
    return executor


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
        "semantics": protocol.semantics,
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
        # thermal relaxation of idle qubits (aer-noisy:<fake>); absent in results from before it
        "idle_relaxation": report.idle_relaxation,
        "seconds": round(time.perf_counter() - started, 3),
        "jobs": [jobs[r]["job_id"] for r in sorted(jobs)],
        "attempt": store.attempt,
        "readouts": z.tolist(),
        "exact": exact.tolist(),
    }
    if isinstance(protocol, ReplayProtocol):
        result["angles"] = protocol.angles_used().tolist()
    extras = protocol.extras()
    if extras is not None:
        result["mitigation"] = extras
    details = protocol.details()
    if details is not None:
        result["protocol_details"] = details
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
    return executor.layout.to_dict() if executor.layout is not None else None


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


def is_measured_run(run_dir: str | Path) -> bool:
    """Whether the run's config.json names a measured QRNN (``--model mqrnn``), read without
    building the model (False when it cannot be read: loading the run says what is wrong)."""
    import json

    try:
        config = json.loads((Path(run_dir) / "config.json").read_text())["config"]
        return config["model"]["kind"] == "mqrnn"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def coherent_flag_error(flag: str) -> QRNNError:
    """The one-line error for a flag of the coherent model's dynamic protocol given for a measured
    run."""
    return QRNNError(
        f"{flag} shapes the coherent model's dynamic protocol; a measured run's circuit is fixed "
        f"by its training (its measurement and coupling are in config.json): drop {flag}"
    )


def make_protocol(
    config: EvalConfig, model, x: torch.Tensor, target: TargetSpec | None = None
) -> HardwareProtocol:
    """The protocol of ``config``: replay (mitigated when ``--mitigate`` asks for it) or dynamic;
    a measured run (``MeasuredCore``) is evaluated as its own dynamic circuit (``MeasuredProtocol``;
    on the exact target without circuits, jobs within the IBM broadcast budget on ibm: targets)."""
    target = target or parse_target(config.target, config.readout_error)
    if isinstance(model.core, MeasuredCore):
        if config.protocol == "replay":
            raise QRNNError(
                "a measured run has no replay: its model is its dynamic circuit; use --protocol "
                "dynamic (default for it)"
            )
        if config.coupling != "cnot" or config.corrections != -1:
            raise coherent_flag_error(
                "--coupling" if config.coupling != "cnot" else "--corrections"
            )
        from ..circuits.measured import JOB_BROADCAST_BUDGET

        return MeasuredProtocol(
            model,
            x,
            sampled=not target.exact,
            budget=JOB_BROADCAST_BUDGET if target.kind == "ibm" else None,
        )
    if target.exact and config.protocol == "dynamic":
        raise QRNNError(
            "dynamic circuits sample mid-circuit measurements and have no exact form; "
            "use --target aer for their ideal (shot-based) simulation"
        )
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
    protocol = make_protocol(config, model, x, target)
    executor = executor or build_executor(target, config)
    if progress:  # say what the transpiler and the layout search are doing (stderr)
        executor.status = status
    plan = {"eval": config.to_dict(), "train_step": train_step, "name": store.name}
    if isinstance(executor, RemoteExecutor):  # the config decides, recorded
        executor.sampler_options = sampler_options(config)
        executor.mode_kind = "session" if protocol.dependent_rounds else "batch"
        plan["sampler_options"] = executor.sampler_options
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
        if modes and isinstance(executor, RemoteExecutor):  # reopen the evaluation's Session
            executor.mode_id = modes[-1]
    if isa is None:
        isa = executor.prepare(protocol.templates, dynamic=protocol.dynamic)
    protocol.configure(isa, executor)  # e.g. mitigated replay: λ from the ISA templates, M3 cals
    if progress and executor.seconds_target is not None:  # scheduling every template: seconds
        status(
            f"estimating the resources of {len(isa)} templates on {target.label} (QPU time, "
            "success probabilities)…"
        )
    report = resource_report(
        target.label,
        config.protocol,
        protocol.templates,
        isa,
        protocol.schedule(),
        config.shots,
        physical_qubits=executor.physical_qubits,
        seconds_target=executor.seconds_target,
        rep_delay=executor.rep_delay,
        exact=executor.exact,
        calibration=replay_shrink(protocol, isa, executor),
        idle_relaxation=executor.idle_relaxation,
        dependent_rounds=protocol.dependent_rounds,
        measure_instruction=executor.measure_instruction if protocol.dynamic else None,
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
        if close:
            executor.close()
    if not done:
        return None
    return _finish(
        protocol, model, task, y, config, store, report, started, train_step, full_length
    )


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
