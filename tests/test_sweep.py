"""``qrnn sweep`` (qrnn_qiskit/sweep): search-space files checked against TrainConfig's options,
studies in SQLite shared by workers, trials as run directories, pruning through the trainer's
evaluations, retries of killed trials that resume their run directory, and reports with PNG plots.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qrnn_qiskit.cli import main
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.sweep import parse
from qrnn_qiskit.sweep.worker import Pruning, make_pruner, run_worker
from qrnn_qiskit.training import Trainer, read_metrics

optuna = pytest.importorskip("optuna", reason="make test installs it (the sweep extra)")

ROOT = Path(__file__).resolve().parents[1]
TINY = """
[study]
name = "tiny"
pruner = "none"

[train]
delay = 2
qubits = 3
layers = 1
width = 8
steps = 6
eval_every = 3
eval_size = 16
batch_size = 4
threads = 1
"""
GRID = (
    TINY
    + """
[space]
lr = [1e-3, 1e-2]
clip = [0.0, 1.0]
"""
)


def sweep_file(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def worker(path, root, *extra):
    """A worker in a fresh interpreter (one torch thread), under a hard timeout."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "qrnn_qiskit.cli", "sweep", str(path), "--root", str(root), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def study_of(root, name="tiny"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root}/study.db")


# ---------------------------------------------------------------------------------- the file
@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("lr2 = [1e-3]", r"\[space\] lr2 is not a qrnn train option \(did you mean lr\?\)"),
        ("lr = { low = 1e-2, high = 1e-3 }", r"impossible range: low 0.01 must be below high"),
        ("lr = { low = 0, high = 1e-3, log = true }", "a log range needs low > 0"),
        ("lr = { low = 1e-3, high = 1e-2, step = 1 }", "step 1.0 is wider than the range"),
        ("lr = [0.0, 1e-3]", r"\[space\] lr = 0.0: --lr must be > 0"),
        ("depth = [1, 2.5]", "depth: expected an integer, got 2.5"),
        ("entangler = ['cx_ring', 'ring']", "must be one of cx_ring, cz_ring, cx_ladder"),
        ("entangler = { low = 1, high = 2 }", "a range needs a numeric option"),
        ("feedback = [true, 1]", "expected true or false"),
        ("steps = [5]", "steps is also fixed in"),
        ("run_dir = ['a']", "run_dir is not a qrnn train option"),
        ("lr = []", "an empty list of choices"),
        ("task = ['copying', 'smnist-rows']", "task cannot be searched: scores of different"),
        ("lr = { low = 1e-3, high = 1e-2, step = nan }", "step must be a finite number, got nan"),
        ("lr = { low = 1e-3, high = inf }", r"\[space\] lr = inf: --lr must be a finite number"),
        ("lr = [nan]", r"\[space\] lr = nan: --lr must be a finite number"),
    ],
)
def test_a_bad_search_space_is_a_one_line_error(tmp_path, space, message):
    with pytest.raises(QRNNError, match=message) as error:
        parse(TINY + "\n[space]\n" + space + "\n", tmp_path / "s.toml")
    assert "\n" not in str(error.value) and str(error.value).startswith(f"sweep {tmp_path}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TINY.replace('pruner = "none"', 'pruner = "hyperband"'), "pruner: must be one of"),
        (TINY.replace('pruner = "none"', "budget = 3"), "unknown setting 'budget'"),
        (TINY + "[space]\nlr = { low = 1e-3, high = 1e-2 }\n", "trials is required"),
        (
            TINY.replace("[study]", "[study]\nsampler = 'grid'") + "[space]\nlr = { low = 1e-3, "
            "high = 1e-2 }\n",
            "grid needs lists of choices",
        ),  # fmt: skip
        (GRID.replace("[study]", "[study]\ntrials = 3"), "a grid of 4 points runs 4 trials"),
        (TINY + "[space]\n", r"\[space\] is empty"),
        (TINY.replace("qubits = 3", "qubits = 0") + "[space]\nlr = [1e-3]\n", "--qubits"),
        (GRID + "[extra]\n", "unknown table"),
        ("[study\n", "not valid TOML"),
        # issue 21.8: accepted, then every trial (or another worker's live trial) failed
        (
            GRID.replace("[study]", "[study]\nseed = 4294967296"),
            r"seed: must be an integer in 0\.\.",
        ),
        (GRID.replace("[study]", "[study]\nheartbeat_seconds = 120"), "must be below grace"),
        (
            GRID.replace("[study]", "[study]\nheartbeat_seconds = 5\ngrace_seconds = 5"),
            r"heartbeat_seconds: \(5\) must be below grace_seconds \(5\)",
        ),  # fmt: skip
        (GRID.replace('name = "tiny"', 'name = ""'), "name: must not be empty"),
    ],
)
def test_a_bad_sweep_file_is_a_one_line_error(tmp_path, text, message):
    with pytest.raises(QRNNError, match=message) as error:
        parse(text, tmp_path / "s.toml")
    assert "\n" not in str(error.value)


def test_a_sweep_file_becomes_trial_configs(tmp_path):
    sweep = parse(GRID.replace("eval_every", "eval-every"), tmp_path / "s.toml")
    assert sweep.sampler == "grid" and sweep.trials == 4 and sweep.name == "tiny"
    config = sweep.config({"lr": 1e-2, "clip": 0.0})
    assert config.optim.lr == 1e-2 and config.optim.clip == 0.0 and config.qrnn.spec.n_qubits == 3
    assert config.run.eval_every == 3 and config.run.progress is False
    ranged_text = TINY.replace("[study]", "[study]\ntrials = 2")
    ranged_text += "[space]\nembed_dim = { low = 4, high = 16, step = 4 }\n"
    ranged = parse(ranged_text, tmp_path)
    assert ranged.sampler == "tpe" and ranged.space["embed_dim"].kind is int
    median = make_pruner(parse(GRID.replace('"none"', '"median"'), tmp_path / "m.toml"))
    assert isinstance(median, optuna.pruners.MedianPruner)


def test_the_cli_refuses_bad_input_with_exit_code_2(tmp_path, capsys):
    bad = sweep_file(tmp_path, TINY + "[space]\nlr = { low = 1, high = 0.1 }\n")
    assert main(["sweep", str(bad), "--root", str(tmp_path / "r")]) == 2
    good = sweep_file(tmp_path, GRID, "good.toml")
    for url in ("nosuchdb://x", f"sqlite:///{tmp_path}/missing/folder/study.db",
                "postgresql://user:secret@127.0.0.1:1/db"):  # fmt: skip
        assert main(["sweep", str(good), "--storage", url, "--root", str(tmp_path / "r")]) == 2
    assert main(["sweep", "--report", "nothing", "--root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all(line.startswith("qrnn: error: ") for line in err), err
    assert "impossible range" in err[0] and "cannot open the study storage" in err[1]
    assert "does not exist" in err[2] and "secret" not in err[3] and "no study storage" in err[4]


def test_an_unknown_metric_is_refused_before_any_folder_or_trial(tmp_path, capsys):
    """It failed every trial at its first evaluation while the worker exited 0."""
    bad = sweep_file(tmp_path, GRID.replace('pruner = "none"', 'pruner = "none"\nmetric = "acc"'))
    assert main(["sweep", str(bad), "--root", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "[study] metric: 'acc' is not a validation metric of task copying (it " in err[0]
    )
    assert "has loss, accuracy, all_position_accuracy); use one of them" in err[0]
    assert not (tmp_path / "r").exists()


@pytest.fixture
def finished_study(tmp_path):
    root = tmp_path / "study"
    root.mkdir()
    study = optuna.create_study(
        study_name="tiny", storage=f"sqlite:///{root}/study.db", direction="maximize"
    )
    study.set_user_attr("qrnn_metric", "accuracy")
    study.optimize(lambda t: t.suggest_float("lr", 0, 1), n_trials=3)
    return root


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top", "-1"], "--top must be >= 1 (the number of trials shown), got -1"),
        (["--top", "0"], "--top must be >= 1"),
        (["--plots", "/proc/qrnn/plots"], "cannot write /proc/qrnn/plots"),
        (["--plots", "{tmp}/file"], "is a file, not a --plots folder; choose another location"),
    ],
)
def test_a_bad_report_option_is_one_line(finished_study, tmp_path, capsys, extra, message):
    (tmp_path / "file").write_text("precious\n")
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(["sweep", "--report", str(finished_study), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert (tmp_path / "file").read_text() == "precious\n"
    assert not (finished_study / "plots").exists()


def test_a_read_only_study_db_is_one_line(finished_study, tmp_path, capsys, monkeypatch):
    """SQLite opened read-only (a read-only file or folder; chmod does not bite as root)."""
    import sqlite3

    from qrnn_qiskit.sweep import storage

    def read_only(path):
        def connect():
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)  # fmt: skip

        return {"creator": connect}

    monkeypatch.setattr(storage, "_sqlite_engine", read_only)
    path = sweep_file(tmp_path, GRID)
    before = (finished_study / "study.db").read_bytes()
    assert main(["sweep", str(path), "--root", str(finished_study), "--study", "other"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "failed: attempt to write a readonly database; " in err[0], err
    assert "study.db must be a writable file in a writable folder" in err[0]
    assert (finished_study / "study.db").read_bytes() == before
    assert not list(finished_study.glob("trial-*"))


def test_a_study_of_another_task_is_refused(tmp_path, capsys):
    root = tmp_path / "root"
    copying = sweep_file(tmp_path, GRID.replace("steps = 6", "steps = 1"))
    assert main(["sweep", str(copying), "--root", str(root)]) == 0
    other = GRID.replace("[train]", "[train]\ntask = 'smnist-rows'").replace(
        'pruner = "none"', 'pruner = "none"\nmetric = "accuracy"'
    )
    assert main(["sweep", str(sweep_file(tmp_path, other, "o.toml")), "--root", str(root)]) == 2
    assert "is a study of task 'copying', not 'smnist-rows'" in capsys.readouterr().err
    changed = sweep_file(tmp_path, GRID.replace("1e-2]", "3e-2]"), "c.toml")
    assert main(["sweep", str(changed), "--root", str(root)]) == 2
    assert "created from another sweep" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- workers
def test_two_workers_share_one_sqlite_study_with_distinct_trials(tmp_path):
    path, root = sweep_file(tmp_path, GRID), tmp_path / "runs"
    workers = [worker(path, root), worker(path, root)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-2000:]
        assert "study tiny: 4 trial(s) done, 0 running" in out
    trials = study_of(root).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    points = {(t.params["lr"], t.params["clip"]) for t in trials}
    assert points == {(1e-3, 0.0), (1e-3, 1.0), (1e-2, 0.0), (1e-2, 1.0)}  # the whole grid, once
    dirs = {t.user_attrs["run_dir"] for t in trials}
    assert dirs == {str((root / f"trial-{n:04d}").resolve()) for n in range(4)}
    for t in trials:  # every trial a normal run directory, its value its best validation accuracy
        logged = read_metrics(t.user_attrs["run_dir"])
        assert [r["step"] for r in logged] == [3, 6]
        assert t.value == max(r["accuracy"] for r in logged)
        argv = json.loads((Path(t.user_attrs["run_dir"]) / "config.json").read_text())["argv"]
        assert argv[:2] == ["qrnn", "train"] and f"{t.params['lr']}" in argv
    # the same command once more: the study is finished, nothing runs again
    again = worker(path, root)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0 and "trial" not in out.replace("trial(s)", "").split("\n", 1)[1]
    assert len(study_of(root).trials) == 4


def test_a_worker_killed_mid_trial_is_resumed_by_the_next(tmp_path):
    text = TINY.replace("steps = 6", "steps = 150").replace("eval_every = 3", "eval_every = 5")
    text = text.replace('pruner = "none"', 'pruner = "none"\nheartbeat_seconds = 1\n'
                        "grace_seconds = 2") + "[space]\nlr = [1e-2]\n"  # fmt: skip
    path, root = sweep_file(tmp_path, text), tmp_path / "runs"
    first = worker(path, root)
    checkpoint = root / "trial-0000" / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    second = worker(path, root)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-2000:]
    assert "retry of trial 0, resuming trial-0000" in out
    killed, retry = study_of(root).trials
    assert (killed.state.name, retry.state.name) == ("FAIL", "COMPLETE")
    assert retry.system_attrs["failed_trial"] == 0
    assert retry.user_attrs["run_dir"] == str((root / "trial-0000").resolve())
    record = json.loads((root / "trial-0000" / "config.json").read_text())
    assert len(record["resumes"]) == 1
    assert [r["step"] for r in read_metrics(root / "trial-0000")] == list(range(5, 151, 5))
    # the resumed trial ends where an uninterrupted run of it ends
    sweep = parse(text, path)
    straight = Trainer.from_config(sweep.config({"lr": 1e-2}), tmp_path / "straight")
    straight.fit()
    resumed = torch.load(root / "trial-0000" / "checkpoint.pt", weights_only=True)["model"]
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed[name], value, msg=name)


def test_pruning_stops_a_trial_after_its_checkpoint(tmp_path):
    class Hopeless:  # an Optuna trial whose pruner always says stop
        reported: list = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return True

    trial = Hopeless()
    pruning = Pruning(trial, "accuracy")
    sweep = parse(GRID, tmp_path / "s.toml")
    result = Trainer.from_config(
        sweep.config({"lr": 1e-2, "clip": 1.0}), tmp_path / "run", callbacks=[pruning]
    ).fit()
    assert result.steps == 3 and result.stopped.startswith("pruned at step 3 (accuracy")
    assert [s for s, _ in trial.reported] == [3]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 3


def test_report_prints_the_best_trials_and_writes_png_plots(tmp_path, capsys):
    root = tmp_path / "runs"
    state = run_worker(parse(GRID, tmp_path / "s.toml"), f"sqlite:///{root}/study.db", "tiny", root)
    assert state.done == 4
    capsys.readouterr()
    assert main(["sweep", "--report", str(root), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "study tiny (maximize accuracy): 4 complete" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "rank" not in line]
    assert len(rows) == 3 and rows[0].startswith("| 1 | ")
    best = study_of(root).best_trial
    assert f"| {best.number} | complete | {best.value:.4f} |" in rows[0]
    for name in ("optimization_history", "param_importances", "intermediate_values"):
        png = root / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (
        main(["sweep", "--report", "tiny", "--root", str(root), "--plots", str(tmp_path / "p")])
        == 0
    )
    assert (tmp_path / "p" / "optimization_history.png").exists()
