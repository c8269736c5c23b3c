"""IBM runtime path offline: Session for dependent replay rounds, Batch for dynamic circuits, job
tags and lookup by tag, retries only on transient errors, closed modes, resumable collect.

``FakeServer`` replaces only the network boundary (``backends.boundary.RuntimeBoundary``): it runs
jobs for real on a fake backend through qiskit-ibm-runtime's local executor Sampler, keeps them by
id and tags like IBM's service, and can accept a job and then "lose" the reply carrying its id.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from tiny_runs import quiet, train_tiny_qrnn

from qrnn_qiskit.backends.ibm import IBMExecutor, RuntimeBoundary, is_transient, with_retries
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.evaluation.config import EvalConfig
from qrnn_qiskit.evaluation.runner import collect, run_evaluation


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return train_tiny_qrnn(
        tmp_path_factory.mktemp("rt") / "run", entangler="cz_chain", steps=2, eval_every=2,
        eval_size=8,
    )  # fmt: skip


@pytest.fixture
def run(trained, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained, out, ignore=shutil.ignore_patterns("evals", "jobs.jsonl"))
    return out


class FakeMode:
    def __init__(self, kind: str, backend) -> None:
        self.kind, self._backend = kind, backend
        self.session_id = f"{kind}-{uuid.uuid4().hex[:8]}"
        self.closed = False


class FakeServer(RuntimeBoundary):
    """IBM's side of the wire, offline. ``lose_reply`` makes the next submission succeed on the
    server but raise ``error`` on the client; ``crash`` raises a non-transient error instead (the
    client dies before writing the id)."""

    def __init__(self) -> None:
        from qiskit_ibm_runtime import QiskitRuntimeService

        super().__init__(QiskitRuntimeService(channel="local"))
        self.jobs: dict[str, tuple] = {}  # id → (local job, tags, mode kind, options)
        self.modes: list[FakeMode] = []
        self.submissions = 0
        self.lose_reply: BaseException | None = None
        self.crash = False

    @property
    def local(self) -> bool:  # behaves like the real service: jobs outlive the client
        return False

    def open_mode(self, kind, backend, mode_id=None):
        for mode in self.modes:
            if mode.session_id == mode_id and not mode.closed:
                return mode
        self.modes.append(FakeMode(kind, backend))
        return self.modes[-1]

    def run_sampler(self, mode, pubs, shots, options, tags, seed=None):
        from qiskit_ibm_runtime.executor_sampler import Sampler

        assert not mode.closed, "a job was sent to a closed Session/Batch"
        job = Sampler(mode=mode._backend).run(pubs, shots=shots)
        job_id = f"job-{len(self.jobs)}"
        self.jobs[job_id] = (job, list(tags), mode.kind, dict(options))
        self.submissions += 1
        if self.crash:
            self.crash = False
            raise KeyboardInterrupt("client died after the server accepted the job")
        if self.lose_reply is not None:
            error, self.lose_reply = self.lose_reply, None
            raise error
        return _Handle(job_id, job)

    def find_jobs(self, tags, backend_name):
        return [i for i, (_, t, _, _) in self.jobs.items() if set(tags) <= set(t)]

    def job(self, job_id):
        if job_id not in self.jobs:
            raise KeyError(job_id)
        return _Handle(job_id, self.jobs[job_id][0])

    def close(self, mode):
        mode.closed = True


class _Handle:
    def __init__(self, job_id, job) -> None:
        self._id, self._job = job_id, job

    def job_id(self) -> str:
        return self._id

    def result(self, timeout=None):
        return self._job.result()


def executor(server: FakeServer, mode: str = "session", **kwargs) -> IBMExecutor:
    return IBMExecutor(
        "fake_manila", boundary=server, mode=mode, retry_delay=0.0, sleep=lambda _: None, **kwargs
    )


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]


def test_replay_rounds_run_in_one_session_tagged_and_closed(run):
    server = FakeServer()
    config = EvalConfig(target="ibm:fake_manila", samples=2, shots=100, max_steps=3)
    result = run_evaluation(run, config, executor=executor(server), progress=False, log=quiet)
    assert result is not None and len(result["jobs"]) == 3
    kinds = {kind for _, _, kind, _ in server.jobs.values()}
    assert kinds == {"session"} and len(server.modes) == 1 and server.modes[0].closed
    recs = records(run)
    plan = json.loads((run / "evals" / result["name"] / "plan.json").read_text())
    for r, rec in enumerate(recs):
        assert rec["tags"][1] == f"qrnn-eval:{result['name']}:{plan['attempt']}"
        assert rec["tags"][2] == f"qrnn-round:{r}" and rec["attempt"] == plan["attempt"]
        assert rec["tags"][0] == f"qrnn-run:{run.resolve().name}" and rec["mode"] == "session"
        assert rec["batch"] == server.modes[0].session_id and not rec["recovered_by_tag"]
        assert set(server.jobs[rec["job_id"]][1]) == set(rec["tags"])
    # twirling is paired with the ESP rescale by default on ibm: replay, and recorded
    assert plan["sampler_options"]["twirling"] == {"enable_gates": True, "enable_measure": True}
    assert all(opts["twirling"]["enable_gates"] for *_, opts in server.jobs.values())


def test_dynamic_circuits_go_in_a_batch_without_twirling(run):
    server = FakeServer()
    config = EvalConfig(
        target="ibm:fake_manila", protocol="dynamic", samples=1, shots=50, max_steps=2
    )
    result = run_evaluation(
        run, config, executor=executor(server, mode="batch"), progress=False, log=quiet
    )
    assert result is not None
    [(_, _, kind, options)] = server.jobs.values()
    assert kind == "batch" and server.modes[0].closed
    assert (
        options["twirling"]["enable_gates"] is False
        and options["dynamical_decoupling"]["enable"] is False
    )


def test_a_lost_reply_is_found_by_tag_not_resubmitted(run):
    server = FakeServer()
    server.lose_reply = ConnectionError("connection reset after the server accepted the job")
    config = EvalConfig(target="ibm:fake_manila", samples=1, shots=100, max_steps=2)
    result = run_evaluation(run, config, executor=executor(server), progress=False, log=quiet)
    assert result is not None and server.submissions == 2 == len(server.jobs)  # one per round
    assert [r["job_id"] for r in records(run)] == ["job-0", "job-1"]


def test_collect_looks_a_missing_id_up_by_tag_before_resubmitting(run):
    server = FakeServer()
    server.crash = True  # accepted on the server, the client dies before the id reaches disk
    config = EvalConfig(target="ibm:fake_manila", samples=1, shots=100, max_steps=2)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(
            run, config, executor=executor(server), submit_only=True, progress=False, log=quiet
        )
    assert not (run / "jobs.jsonl").exists() and server.submissions == 1
    results = collect(run, executor=executor(server), progress=False, log=quiet)
    recs = records(run)
    assert [r["round"] for r in recs] == [0, 1] and recs[0]["recovered_by_tag"]
    assert recs[0]["job_id"] == "job-0" and server.submissions == 2  # round 0 never resubmitted
    assert len(results) == 1 and np.array(results[0]["readouts"]).shape == (1, 2, 9)


def test_submit_then_collect_resumes_the_session_without_duplicates(run):
    server = FakeServer()
    config = EvalConfig(target="ibm:fake_manila", samples=1, shots=100, max_steps=3)
    assert (
        run_evaluation(
            run, config, executor=executor(server), submit_only=True, progress=False, log=quiet
        )
        is None
    )
    assert server.submissions == 1 and not server.modes[0].closed  # open for the next rounds
    results = collect(run, executor=executor(server), progress=False, log=quiet)
    assert server.submissions == 3 and len(server.modes) == 1 and server.modes[0].closed
    assert len({r["job_id"] for r in records(run)}) == 3 and len(results[0]["jobs"]) == 3
    with pytest.raises(QRNNError, match="no unfinished"):
        collect(run, executor=executor(server), progress=False, log=quiet)
    assert server.submissions == 3


class ApiError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


@pytest.fixture
def api_error(monkeypatch):
    """Make ApiError count as an API error type (as RequestsApiError does)."""
    import qrnn_qiskit.backends.boundary as boundary

    original = boundary.transient_errors
    monkeypatch.setattr(boundary, "transient_errors", lambda: original() + (ApiError,))
    return ApiError


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 429])
def test_4xx_errors_are_never_retried(api_error, code):
    calls, sleeps = [], []

    def refused():
        calls.append(1)
        raise api_error(code)

    with pytest.raises(QRNNError, match=f"HTTP {code}.*not retried") as info:
        with_retries(refused, sleep=sleeps.append)
    assert len(calls) == 1 and sleeps == [] and "\n" not in str(info.value)


def test_5xx_and_network_errors_are_retried(api_error):
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise api_error(503)
        if len(calls) == 2:
            raise ConnectionError("reset")
        return "ok"

    assert with_retries(flaky, sleep=sleeps.append, base_delay=1.0) == "ok"
    assert sleeps == [1.0, 2.0]
    assert is_transient(api_error(502)) and not is_transient(api_error(404))
    assert not is_transient(ValueError("bad"))


def test_a_4xx_on_submission_submits_once(run, api_error):
    server = FakeServer()
    server.lose_reply = api_error(400)
    config = EvalConfig(target="ibm:fake_manila", samples=1, shots=100, max_steps=1)
    with pytest.raises(QRNNError, match="HTTP 400"):
        run_evaluation(run, config, executor=executor(server), progress=False, log=quiet)
    assert server.submissions == 1 and server.modes[0].closed


def test_local_mode_runs_replay_in_a_session(run, monkeypatch, opened_modes):
    from qiskit_ibm_runtime import Session

    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "local")
    opened = opened_modes
    config = EvalConfig(target="ibm:fake_manila", samples=1, shots=100, max_steps=2, twirling="off")
    result = run_evaluation(run, config, progress=False, log=quiet)
    assert result is not None and len(opened) == 1 and isinstance(opened[0], Session)
    assert not opened[0]._active  # closed at the end
