"""Fault injection: ``qrnn train``, ``submit`` and ``collect`` are SIGKILLed at random moments and
run again as a user would (``--resume`` once the run has a config.json); every run must finish
with exactly the result of an uninterrupted one: bitwise-equal weights, optimiser state and metrics
for training, equal readouts and metrics for hardware evaluations (IBM in local mode on a fake
backend, where every job is seeded).

The default suite kills each command a few times; ``-m slow`` kills each at least 20 times.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from killing import Zygote, run_until_done

from qrnn_qiskit.fileio import read_jsonl

TRAIN = ["--delay", "1", "--qubits", "2", "--layers", "1", "--width", "4", "--eval-size", "8",
         "--batch-size", "4", "--lr", "1e-2", "--threads", "1", "--no-progress"]  # fmt: skip
SAME_RESULT = ("readouts", "exact", "error_per_step", "mean_error", "max_error", "angles",
               "metrics", "exact_metrics", "train_step", "config", "resources")  # fmt: skip


@pytest.fixture(scope="module")
def zygote():
    with Zygote(env={"QISKIT_IBM_CHANNEL": "local"}) as z:
        yield z


def without_seconds(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def training_state(run: Path) -> dict:
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    return {
        "step": state["step"],
        "running": state["running"],
        "model": state["model"],
        "optimizer": state["optimizer"]["state"],
        "metrics": without_seconds(
            sorted(
                {r["step"]: r for r in read_jsonl(run / "metrics.jsonl")}.values(),
                key=lambda r: r["step"],
            )  # fmt: skip
        ),
        "lines": len((run / "metrics.jsonl").read_text().splitlines()),
    }


def assert_same_training(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["running"] == b["running"]
    assert a["metrics"] == b["metrics"] and b["lines"] == len(b["metrics"])  # nothing logged twice
    for key, tensor in a["model"].items():
        torch.testing.assert_close(tensor, b["model"][key], rtol=0, atol=0, msg=key)
    for index, slots in a["optimizer"].items():
        for name, value in slots.items():
            torch.testing.assert_close(value, b["optimizer"][index][name], rtol=0, atol=0)


def kill_training(zygote, tmp_path: Path, kills: int, steps: int, seed: int) -> tuple[int, int]:
    """(kills that landed, trials): trials of a run killed at random until ``kills`` landed."""
    rng = np.random.default_rng(seed)
    args = [*TRAIN, "--steps", str(steps), "--eval-every", "2"]
    reference = tmp_path / "reference"
    code, seconds = zygote.run(["train", "--run-dir", reference, *args], tmp_path / "log")
    assert code == 0, (tmp_path / "log").read_text()[-2000:]
    expected = training_state(reference)
    landed, trials = 0, 0
    while landed < kills:
        run = tmp_path / f"killed{trials}"
        trials += 1

        def argv(run=run):
            resume = ["--resume"] if (run / "config.json").exists() else []
            return ["train", "--run-dir", run, *args, *resume]

        code, hit = run_until_done(zygote, argv, tmp_path / "log", rng, seconds, kills - landed)
        assert code == 0, (tmp_path / "log").read_text()[-2000:]
        landed += hit
        assert_same_training(expected, training_state(run))
        assert not list(run.glob(".*.tmp"))  # a kill's temporary checkpoint is cleaned up
    return landed, trials


def evaluation_args(steps: int) -> list[str]:
    return ["--target", "ibm:fake_manila", "--samples", "1", "--shots", "64", "--max-steps",
            str(steps), "--seed", "3", "--yes", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(zygote, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("kills") / "run"
    code, _ = zygote.run(["train", "--run-dir", run, *TRAIN, "--steps", "2", "--eval-every", "2"],
                         run.parent / "log")  # fmt: skip
    assert code == 0, (run.parent / "log").read_text()[-2000:]
    return run


def only_result(run: Path) -> dict:
    [path] = (run / "evals").glob("*/result.json")
    result = json.loads(path.read_text())
    return {k: result[k] for k in SAME_RESULT if k in result}


@pytest.fixture(scope="module")
def reference(zygote, trained, tmp_path_factory):
    """Per number of replay steps: the run after an uninterrupted submit, its result after an
    uninterrupted collect, and how long the submit and the collect took."""
    made: dict[int, tuple] = {}

    def get(steps: int) -> tuple:
        if steps not in made:
            tmp = tmp_path_factory.mktemp(f"reference{steps}")
            log = tmp / "log"
            submitted = tmp / "submitted"
            shutil.copytree(trained, submitted)
            code, submit_seconds = zygote.run(["submit", submitted, *evaluation_args(steps)], log)
            assert code == 0, log.read_text()[-2000:]
            done = tmp / "done"
            shutil.copytree(submitted, done)
            code, collect_seconds = zygote.run(["collect", done, "--no-progress"], log)
            assert code == 0, log.read_text()[-2000:]
            made[steps] = submitted, only_result(done), submit_seconds, collect_seconds
        return made[steps]

    return get


def kill_evaluation(zygote, trained, reference, tmp_path, command, kills, steps, seed):
    """(kills that landed, trials): ``command`` killed at random until ``kills`` landed; every
    trial's result must equal the uninterrupted one."""
    rng = np.random.default_rng(seed)
    log = tmp_path / "log"
    submitted, expected, submit_seconds, collect_seconds = reference(steps)
    landed, trials = 0, 0
    while landed < kills:
        run = tmp_path / f"killed{trials}"
        trials += 1
        shutil.copytree(trained if command == "submit" else submitted, run)
        submit = ["submit", run, *evaluation_args(steps)]
        collect = ["collect", run, "--no-progress"]
        killed, window = (
            (submit, submit_seconds) if command == "submit" else (collect, collect_seconds)
        )
        code, hit = run_until_done(
            zygote, lambda argv=killed: argv, log, rng, window, kills - landed
        )
        if command == "submit":
            assert code == 0, log.read_text()[-2000:]
            code, _ = zygote.run(collect, log)
        assert code == 0, log.read_text()[-2000:]
        landed += hit
        assert only_result(run) == expected
        records = read_jsonl(run / "jobs.jsonl")
        assert all(r["round"] < steps for r in records)
        assert not list((run / "evals").rglob(".*.tmp"))
    return landed, trials


# ------------------------------------------------------------------------------- default: bounded
def test_killed_training_resumes_to_the_uninterrupted_run(zygote, tmp_path):
    landed, _ = kill_training(zygote, tmp_path, kills=2, steps=6, seed=1)
    assert landed >= 2


@pytest.mark.parametrize("command", ["submit", "collect"])
def test_killed_submit_and_collect_finish_with_the_uninterrupted_result(
    zygote, trained, reference, tmp_path, command
):
    landed, _ = kill_evaluation(
        zygote, trained, reference, tmp_path, command, kills=2, steps=1, seed=2
    )
    assert landed >= 2


@pytest.mark.parametrize("command", ["train", "submit"])
def test_a_real_file_size_limit_is_one_line_and_the_run_goes_on_once_lifted(
    zygote, trained, reference, tmp_path, command
):
    """A full disk, for real: ``ulimit -f`` (RLIMIT_FSIZE, SIGXFSZ ignored) makes every write past
    the limit fail with EFBIG. The command says so in one line, leaves what was there intact, and
    the same command works once space is back."""
    log = tmp_path / "log"
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    if command == "train":
        argv = ["train", "--run-dir", run, *TRAIN, "--steps", "4", "--eval-every", "2", "--resume"]
        limit = (run / "checkpoint.pt").stat().st_size // 2
    else:
        argv = ["submit", run, *evaluation_args(1)]
        limit = 2048  # circuits.qpy (~4 KB) is larger
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    code, _ = zygote.run(argv, log, fsize=limit)
    errors = [line for line in log.read_text().splitlines() if line.startswith("qrnn: error:")]
    assert code == 2 and len(errors) == 1, log.read_text()[-2000:]
    assert "File too large; the disk (or the file-size limit) is full" in errors[0]
    if command == "train":  # config.json records the resume; the checkpoint is intact
        before.pop(run / "config.json")
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert {p: after.get(p) for p in before} == before
    assert not list(run.rglob(".*.tmp")) and not (run / "evals" / "ibm_fake_manila-replay-steps1"
                                                  / "plan.json").exists()  # fmt: skip
    code, _ = zygote.run(argv, log)
    assert code == 0, log.read_text()[-2000:]


# ------------------------------------------------------------------------------- slow: >= 20 kills
@pytest.mark.slow
def test_twenty_kills_of_training(zygote, tmp_path):
    landed, trials = kill_training(zygote, tmp_path, kills=24, steps=12, seed=11)
    print(f"train: {landed} kills over {trials} runs, every run resumed to the same result")
    assert landed >= 20


@pytest.mark.slow
@pytest.mark.parametrize("command", ["submit", "collect"])
def test_twenty_kills_of_submit_and_collect(zygote, trained, reference, tmp_path, command):
    landed, trials = kill_evaluation(
        zygote, trained, reference, tmp_path, command, kills=24, steps=2, seed=12
    )
    print(f"{command}: {landed} kills over {trials} runs, every run collected the same result")
    assert landed >= 20
