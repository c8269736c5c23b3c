"""The records of hardware evaluations (RUN/evals/<name>/, RUN/jobs.jsonl) survive what users and
kills do to them: safe names, attempts that never mix job ids, unreadable files as one-line errors,
a failed write that leaves nothing half-made, lost local jobs, the evaluation lock.

IBM Quantum runs offline: qiskit-ibm-runtime's local mode on a fake backend, and for the behaviour
of the real channel (jobs outlive the client) :class:`FakeIBM`, which replaces only the network
boundary (``service.job(id)``, ``service.jobs(job_tags=…)``) by the jobs it has seen submitted.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest

from qrnn_qiskit import fileio
from qrnn_qiskit.backends.ibm import IBMExecutor, RuntimeBoundary
from qrnn_qiskit.cli import main
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.evaluation.config import EvalConfig
from qrnn_qiskit.evaluation.runner import collect, pending, run_evaluation
from qrnn_qiskit.training import RunDir, TrainConfig, Trainer

IBM = EvalConfig(target="ibm:fake_manila", samples=1, shots=64, max_steps=2, seed=5)
NAME = "ibm_fake_manila-replay-steps2"
SAME = ("readouts", "exact", "error_per_step", "mean_error", "angles", "train_step", "config")


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("records") / "run"
    config = TrainConfig.flat(
        delay=1, qubits=2, layers=1, width=4, steps=2, eval_every=2, eval_size=8, batch_size=4,
        progress=False, threads=1,
    )  # fmt: skip
    Trainer.from_config(config, path, argv=["test"]).fit()
    return path


@pytest.fixture(scope="module")
def submitted(trained, tmp_path_factory) -> Path:
    """The run after ``qrnn submit`` in local mode: round 0's job recorded (and lost with its
    process)."""
    path = tmp_path_factory.mktemp("submitted") / "run"
    shutil.copytree(trained, path)
    submit(path)
    return path


@pytest.fixture(scope="module")
def finished(trained, tmp_path_factory) -> tuple[Path, dict]:
    """The run after an uninterrupted local-mode evaluation, and its result."""
    path = tmp_path_factory.mktemp("finished") / "run"
    shutil.copytree(trained, path)
    return path, run_evaluation(path, IBM, executor=local_executor(), progress=False, log=quiet)


def copy(source: Path, tmp_path: Path) -> Path:
    path = tmp_path / "run"
    shutil.copytree(source, path)
    return path


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return copy(trained, tmp_path)


class FakeIBM:
    """IBM Quantum's side of the network: every job submitted in local mode is kept, and any later
    client can look it up by id, as on the real service (local mode's jobs die with their
    process). Only the network boundary, ``service.job(id)`` and ``service.jobs(job_tags=…)``, is
    replaced."""

    is_local = False
    channel = "ibm_quantum_platform"

    def __init__(self, monkeypatch) -> None:
        from qiskit_ibm_runtime import QiskitRuntimeService
        from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService

        self.local = QiskitRuntimeService(channel="local")
        self.kept: dict[str, object] = {}
        self.tags: dict[str, list[str]] = {}  # job id → its tags (local mode keeps none)
        submit = QiskitRuntimeLocalService._run_executor
        run_sampler = RuntimeBoundary.run_sampler

        def recording(service, *args, **kwargs):
            job = submit(service, *args, **kwargs)
            self.kept[job.job_id()] = job
            return job

        def tagging(boundary, mode, pubs, shots, options, tags, seed=None):
            job = run_sampler(boundary, mode, pubs, shots, options, tags, seed)
            self.tags[job.job_id()] = list(tags)
            return job

        monkeypatch.setattr(QiskitRuntimeLocalService, "_run_executor", recording)
        monkeypatch.setattr(RuntimeBoundary, "run_sampler", tagging)

    def backend(self, name):
        return self.local.backend(name)

    def backends(self):
        return self.local.backends()

    def job(self, job_id):
        return self.kept[job_id]

    def jobs(self, job_tags, backend_name, limit):
        """``service.jobs(job_tags=…)``: the kept jobs that carry every tag, newest first."""
        found = [i for i in reversed(self.kept) if set(job_tags) <= set(self.tags.get(i, ()))]
        return [self.kept[i] for i in found[:limit]]

    def client(self) -> IBMExecutor:
        """A new client process's executor."""
        return IBMExecutor("fake_manila", service=self)


@pytest.fixture
def server(monkeypatch) -> FakeIBM:
    return FakeIBM(monkeypatch)


def local_executor() -> IBMExecutor:
    from qiskit_ibm_runtime import QiskitRuntimeService

    return IBMExecutor("fake_manila", service=QiskitRuntimeService(channel="local"))


def submit(run: Path, executor=None, config: EvalConfig = IBM) -> None:
    executor = executor or local_executor()
    assert (
        run_evaluation(run, config, executor=executor, submit_only=True, progress=False, log=quiet)
        is None
    )


_SHARED: list[IBMExecutor] = []


def shared_executor() -> IBMExecutor:
    """One local-mode executor for the tests that fail before any job runs (building one loads
    every fake backend)."""
    if not _SHARED:
        _SHARED.append(local_executor())
    return _SHARED[0]


def job_records(run: Path) -> list[dict]:
    return fileio.read_jsonl(run / "jobs.jsonl")


def snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# ---------------------------------------------------------------------------------------- jobs
def test_collect_in_a_new_client_fetches_recorded_jobs_and_never_resubmits(run, server, capsys):
    submit(run, server.client())
    assert len(server.kept) == 1
    with open(run / "jobs.jsonl", "a") as handle:
        handle.write('{"eval": "' + NAME + '", "round": 1, "job')  # a kill mid-append
    # a new process: nothing in memory but the run directory and IBM's server
    [result] = collect(run, executor=server.client(), progress=False, log=quiet)
    assert "skipped 1 unreadable record(s) (the last line" in capsys.readouterr().err
    records = job_records(run)
    assert [r["round"] for r in records] == [0, 1] and len(server.kept) == 2
    assert result["jobs"] == [r["job_id"] for r in records]
    assert set(result["jobs"]) == set(server.kept)


def test_a_lost_local_job_is_resubmitted_with_its_seed_and_gives_the_same_result(
    submitted, finished, tmp_path
):
    """Local mode: a kill between a submission and its saved round used to leave the evaluation
    stuck for good ("nothing was resubmitted"); the job is now run again, seeded as before."""
    run = copy(submitted, tmp_path)
    lines: list[str] = []
    [result] = collect(run, executor=local_executor(), progress=False, log=lines.append)
    assert any("resubmitted round 1" in line for line in lines)
    records = job_records(run)
    assert [r["round"] for r in records] == [0, 0, 1]
    assert records[1]["replaces"] == records[0]["job_id"]
    for key in SAME:
        assert result[key] == finished[1][key], key


def test_rerunning_a_finished_ibm_evaluation_keeps_it_and_restart_never_reuses_its_jobs(
    finished, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "local")
    run, first = copy(finished[0], tmp_path), finished[1]
    args = ["eval", str(run), "--target", "ibm:fake_manila", "--samples", "1", "--shots", "64",
            "--max-steps", "2", "--seed", "5", "--yes", "--no-progress"]  # fmt: skip
    before = snapshot(run)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a finished IBM evaluation; it is kept" in err[0]
    assert "--restart" in err[0] and snapshot(run) == before
    assert main([*args, "--restart"]) == 0
    second = json.loads((run / "evals" / NAME / "result.json").read_text())
    kept = run / "evals" / NAME / "previous" / first["attempt"]
    assert json.loads((kept / "result.json").read_text()) == first
    assert not set(second["jobs"]) & set(first["jobs"]) and len(second["jobs"]) == 2
    assert second["readouts"] == first["readouts"]  # same seed, same local simulation
    assert len(job_records(run)) == 4  # every job id ever submitted stays recorded


def test_a_simulator_evaluation_is_simply_run_again(run):
    config = EvalConfig(target="exact", samples=1, max_steps=2)
    a = run_evaluation(run, config, progress=False, log=quiet)
    b = run_evaluation(run, config, progress=False, log=quiet)
    assert a["readouts"] == b["readouts"] and a["attempt"] != b["attempt"]
    assert not (run / "evals" / "exact-replay-steps2" / "previous").exists()


def test_one_evaluation_that_cannot_be_collected_does_not_block_the_others(
    submitted, tmp_path, capsys
):
    run = copy(submitted, tmp_path)
    other = EvalConfig(target="exact", samples=1, max_steps=1)
    run_evaluation(run, other, progress=False, log=quiet)
    (run / "evals" / "exact-replay-steps1" / "result.json").unlink()  # as if killed
    (run / "evals" / NAME / "plan.json").write_text("{torn")
    assert pending(run) == ["exact-replay-steps1", NAME]
    with pytest.raises(QRNNError, match=r"1 of 2 unfinished evaluation\(s\) could not be"):
        collect(run, progress=False, log=quiet)
    err = capsys.readouterr().err
    assert f"{NAME}: " in err and "plan.json is not valid JSON" in err and "--restart" in err
    assert pending(run) == [NAME]  # the other one was finished


# ---------------------------------------------------------------------------------------- files
@pytest.mark.parametrize(
    "damage",
    [
        "plan.json:garbled",
        "plan.json:empty",
        "plan.json:not-a-plan",
        "circuits.qpy:garbled",
        "circuits.qpy:truncated",
        "circuits.qpy:missing",
    ],
)
def test_an_unreadable_record_of_an_unfinished_evaluation_is_one_line_and_changes_nothing(
    submitted, tmp_path, damage
):
    run = copy(submitted, tmp_path)
    name, how = damage.split(":")
    path = run / "evals" / NAME / name
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    else:
        path.write_bytes({"garbled": b"\x00{x", "empty": b"", "not-a-plan": b"[1, 2]"}[how])
    before = snapshot(run)
    for command in (["eval"], ["collect"]):
        args = [str(run), "--no-progress"]
        if command == ["eval"]:
            args += ["--target", "ibm:fake_manila", "--samples", "1", "--shots", "64",
                     "--max-steps", "2", "--seed", "5", "--yes"]  # fmt: skip
        with pytest.raises(QRNNError) as error:
            if command == ["eval"]:
                run_evaluation(run, IBM, executor=shared_executor(), progress=False, log=quiet)
            else:
                collect(run, executor=shared_executor(), progress=False, log=quiet)
        message = str(error.value)
        assert "\n" not in message
        if command == ["eval"]:
            assert str(path) in message and "--restart" in message
    assert snapshot(run) == before


@pytest.mark.parametrize("how", ["missing", "garbled", "not-a-result"])
def test_a_lost_result_is_rebuilt_from_the_stored_rounds_without_new_jobs(
    finished, tmp_path, how, server, capsys
):
    run, first = copy(finished[0], tmp_path), finished[1]
    path = run / "evals" / NAME / "result.json"
    if how == "missing":
        path.unlink()
    else:
        path.write_text({"garbled": '{"target": ', "not-a-result": '{"target": "x"}'}[how])
    assert pending(run) == [NAME]
    if how != "missing":
        assert main(["compare", str(run)]) == 2  # the only evaluation: nothing to compare
        [error] = capsys.readouterr().err.strip().splitlines()
        assert "rebuild it from the stored rounds with 'qrnn collect" in error
    [again] = collect(run, executor=server.client(), progress=False, log=quiet)
    assert server.kept == {} and again["jobs"] == first["jobs"]
    for key in SAME:
        assert again[key] == first[key], key


def test_a_garbled_round_is_run_again_from_its_job_and_gives_the_same_counts(
    finished, tmp_path, capsys
):
    run, first = copy(finished[0], tmp_path), finished[1]
    (run / "evals" / NAME / "result.json").unlink()
    (run / "evals" / NAME / "rounds" / "0000.json").write_text("[[{")
    [again] = collect(run, executor=local_executor(), progress=False, log=quiet)
    assert "0000.json is not valid JSON" in capsys.readouterr().err
    assert again["readouts"] == first["readouts"]


def full_disk_at(monkeypatch, name: str, code: int = errno.ENOSPC) -> None:
    """Writes of files called ``name`` fail as on a full disk, at the file boundary (the write to
    the atomic write's temporary file)."""
    real = fileio.os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(code, fileio.os.strerror(code))

    def fdopen(fd, *args, **kwargs):
        handle = real(fd, *args, **kwargs)
        if Path(fileio.os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{name}."):
            return Full(handle)
        return handle

    monkeypatch.setattr(fileio.os, "fdopen", fdopen)


@pytest.mark.parametrize("name", ["circuits.qpy", "plan.json"])
def test_a_submit_that_fails_on_a_full_disk_leaves_no_half_evaluation(run, monkeypatch, name):
    """plan.json used to be written before circuits.qpy: a full disk left a plan without circuits
    that could never be collected."""
    full_disk_at(monkeypatch, name)
    with pytest.raises(QRNNError, match="disk .* is full: free space"):
        submit(run, shared_executor())
    assert not (run / "evals" / NAME / "plan.json").exists() and not (run / "jobs.jsonl").exists()
    assert pending(run) == [] and not list(run.rglob("*.tmp"))


def test_a_plan_without_circuits_from_an_older_version_starts_again_when_no_job_ran(
    submitted, tmp_path
):
    run = copy(submitted, tmp_path)
    (run / "evals" / NAME / "circuits.qpy").unlink()
    (run / "jobs.jsonl").unlink()
    lines: list[str] = []
    run_evaluation(run, IBM, executor=local_executor(), submit_only=True, progress=False,
                   log=lines.append)  # fmt: skip
    assert any("no job ran from it: the evaluation starts again" in line for line in lines)
    assert (run / "evals" / NAME / "circuits.qpy").exists() and len(job_records(run)) == 1


def test_a_job_that_cannot_be_recorded_is_named(run, monkeypatch):
    def full(path, record):
        raise fileio.write_error(Path(path), OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr("qrnn_qiskit.evaluation.runner.append_jsonl", full)
    with pytest.raises(QRNNError) as error:
        submit(run, local_executor())
    message = str(error.value)
    assert "was submitted but could not be recorded" in message and '"job_id": "' in message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------- names
@pytest.mark.parametrize("name", ["..", ".", "/tmp/elsewhere", "a/b", "", "../x", "..."])
@pytest.mark.parametrize("command", ["eval", "submit"])
def test_an_evaluation_name_is_never_a_path(run, capsys, name, command, tmp_path):
    """--name used to be a path that was rmtree'd (--name .. wiped the run); "" fell back to the
    default name silently."""
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "keep").write_text("x")
    before = snapshot(run)
    target = "exact" if command == "eval" else "ibm:fake_manila"
    args = [command, str(run), "--target", target, "--samples", "1", "--no-progress", "--yes"]
    assert main([*args, "--name", name.replace("/tmp/elsewhere", str(victim))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a plain name" in err[0]
    assert snapshot(run) == before and (victim / "keep").exists()


# ---------------------------------------------------------------------------------------- lock
def test_the_evaluation_lock_names_its_holder_and_training_can_go_on(run):
    rd = RunDir(run)
    with rd.lock("evals"):
        with pytest.raises(QRNNError, match=r"in use by another qrnn process \(pid \d+: "):
            run_evaluation(run, EvalConfig(target="exact", samples=1, max_steps=1),
                           progress=False, log=quiet)  # fmt: skip
        with rd.lock("run"):  # training this run meanwhile is allowed
            pass
    with rd.lock("run"), pytest.raises(QRNNError, match="in use by another qrnn process"):
        with RunDir(run).lock("run"):
            pass


def test_stale_temporary_files_under_evals_are_cleaned_when_an_evaluation_starts(run):
    rounds = run / "evals" / "exact-replay-steps1" / "rounds"
    rounds.mkdir(parents=True)
    stale = [rounds / ".0000.json.abc.tmp", run / "evals" / ".x.tmp"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    run_evaluation(run, EvalConfig(target="exact", samples=1, max_steps=1), progress=False,
                   log=quiet)  # fmt: skip
    assert not any(p.exists() for p in stale)


def test_collect_on_a_path_that_is_not_a_run_says_so(tmp_path, capsys):
    assert main(["collect", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "is not a run directory (no config.json)" in err and "no unfinished" not in err
