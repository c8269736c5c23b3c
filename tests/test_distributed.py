"""Data-parallel training under torchrun (training/distributed.py): two CPU ranks (gloo) in fresh
interpreters stay in lockstep, match one process on the same global batch, resume, and rank 0 alone
writes the run directory; a batch that does not divide across the ranks is a one-line error."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_worker import ARGS

from qrnn_qiskit.cli import main
from qrnn_qiskit.training import TrainConfig, Trainer
from qrnn_qiskit.training.distributed import SINGLE, ProcessGroup

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # = torchrun, this interpreter


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The worker's output after ``torchrun --standalone --nproc-per-node 2`` (a free port, fresh
    interpreters, one torch thread each, under a hard timeout)."""
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [*TORCHRUN, "--standalone", "--nproc-per-node", "2", str(ROOT / "tests" /
         "ddp_worker.py"), str(out)],
        env=env, cwd=out, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def test_two_ranks_stay_in_lockstep_and_match_one_process(two_ranks, tmp_path):
    out, _ = two_ranks
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=name)
    # one process, the same global batch of 4, straight through 6 steps
    single = Trainer.from_config(TrainConfig.flat(**ARGS, steps=6), tmp_path / "one")
    single.fit()
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(rank0[name], value, rtol=1e-4, atol=1e-5, msg=name)
    logged = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").open()]
    written = [json.loads(line) for line in (out / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in written] == [3, 6]  # one record per evaluation: rank 0 alone wrote
    for a, b in zip(written, logged):
        for key in ("loss", "accuracy", "train_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key


def test_rank_zero_alone_writes_and_the_resume_is_recorded(two_ranks, tmp_path):
    out, stdout = two_ranks
    assert stdout.count("run directory:") == 1 and "ranks: 2" in stdout
    record = json.loads((out / "run" / "config.json").read_text())
    assert len(record["resumes"]) == 1
    state = torch.load(out / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6 and len(state["ranks"]) == 2
    assert not torch.equal(state["ranks"][0]["torch_rng"], state["ranks"][1]["torch_rng"])
    for name, value in torch.load(out / "rank0.pt", weights_only=True).items():
        torch.testing.assert_close(state["model"][name], value, rtol=0, atol=0)
    # a one-process resume of a checkpoint without per-row task state continues it (in a copy:
    # the other test reads the run as torchrun left it)
    shutil.copytree(out / "run", tmp_path / "run")
    config = TrainConfig.flat(**ARGS, steps=7)
    trainer = Trainer.from_config(config, tmp_path / "run", resume=True)
    assert trainer.step == 6 and trainer.fit().steps == 7


def test_a_batch_that_does_not_divide_across_ranks_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(["train", "--batch-size", "5", "--steps", "1", "--qubits", "3", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--batch-size 5 does not divide across 2 ranks" in err and "4 or 6" in err


def test_per_row_task_state_cannot_move_to_another_number_of_ranks():
    state = {"task": {"carry": 1}, "ranks": [{"torch_rng": None, "task": {"carry": 1}}] * 2}
    with pytest.raises(Exception, match="resume it with torchrun --nproc-per-node 2"):
        SINGLE.rank_state(state, per_row=True)
    assert SINGLE.rank_state(state, per_row=False) == ({"carry": 1}, None)
    four = ProcessGroup(3, 4, torch.device("cpu"))
    with pytest.raises(Exception, match="not 4"):
        four.rank_state(state, per_row=True)
    assert four.rank_state(state, per_row=False) == ({"carry": 1}, None)
    two = ProcessGroup(1, 2, torch.device("cpu"))
    assert two.rank_state(state, per_row=True) == ({"carry": 1}, None)


def test_uneven_shards_are_weighted_by_their_rows():
    class Rows:
        name = "rows"

        def train_batch(self, step):
            return torch.arange(3.0).reshape(3, 1), torch.zeros(3)

    shards = []
    for rank in range(4):  # 3 rows over 4 ranks: one rank gets a dummy row of weight 0
        world, task = ProcessGroup(rank, 4, torch.device("cpu")), Rows()
        world.shard(task)
        x, _ = task.train_batch(0)
        shards.append((x.flatten().tolist(), world._share))
    assert shards == [([0.0], 0.0), ([0.0], 1 / 3), ([1.0], 1 / 3), ([2.0], 1 / 3)]
