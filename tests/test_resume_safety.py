"""A kill at any point of training leaves a run that resumes to the uninterrupted result: here the
two sides of an evaluation's checkpoint, made deterministic (the random kills are in
test_fault_injection.py)."""

from __future__ import annotations

import pytest
import torch

from qrnn_qiskit.training import RunDir, TrainConfig, Trainer, read_metrics

TINY = TrainConfig.flat(
    delay=1, qubits=2, layers=1, width=4, steps=4, eval_every=2, eval_size=8, batch_size=4,
    lr=1e-2, progress=False, threads=1,
)  # fmt: skip


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even ``except Exception`` handlers)."""


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    path = tmp_path_factory.mktemp("straight") / "run"
    Trainer.from_config(TINY, path).fit()
    return path


def without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.mark.parametrize("where", ["write_checkpoints", "append_metrics"])
@pytest.mark.parametrize("evaluation", [1, 2])
def test_a_kill_at_either_side_of_a_checkpoint_resumes_to_the_same_run(
    straight, tmp_path, monkeypatch, where, evaluation
):
    """A kill between an evaluation's checkpoint and its metrics record (RunDir.commit: the first
    evaluation writes the checkpoint first, which carries the record; later ones append the record
    first, which a resume drops and writes again) resumes to the same run. (The record used to be
    written first at the first evaluation too: a kill left metrics without a checkpoint, a run
    that --resume refused for good.)"""
    calls = []
    real = getattr(RunDir, where)

    def dies(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == evaluation:
            raise Killed
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunDir, where, dies)
    with pytest.raises(Killed):
        Trainer.from_config(TINY, tmp_path / "killed").fit()
    monkeypatch.undo()
    Trainer.from_config(TINY, tmp_path / "killed", resume=True).fit()
    a, b = (RunDir(path).load_checkpoint() for path in (straight, tmp_path / "killed"))
    assert a["step"] == b["step"] == 4 and a["running"] == b["running"]
    for key, tensor in a["model"].items():
        torch.testing.assert_close(tensor, b["model"][key], rtol=0, atol=0, msg=key)
    assert without_seconds(read_metrics(tmp_path / "killed")) == without_seconds(
        read_metrics(straight)
    )
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # no record twice


def test_a_stale_temporary_checkpoint_is_removed_on_the_next_start(tmp_path):
    Trainer.from_config(TINY.replace(steps=2), tmp_path / "run").fit()
    stale = tmp_path / "run" / ".checkpoint.pt.x1y2.tmp"
    stale.write_bytes(b"\0" * 4096)  # what a kill during torch.save's rename window leaves
    Trainer.from_config(TINY, tmp_path / "run", resume=True).fit()
    assert not stale.exists()


@pytest.mark.parametrize("where", ["write_checkpoints", "append_metrics"])
@pytest.mark.parametrize("evaluation", [1, 2])
def test_a_failed_write_at_an_evaluation_advances_neither_the_metrics_nor_the_checkpoints(
    straight, tmp_path, monkeypatch, where, evaluation
):
    """A full disk at an evaluation used to advance checkpoint.pt and best.pt while its metrics
    record was lost (and the message said nothing was overwritten): now the record and the
    checkpoints advance together or not at all, and the resume ends as the uninterrupted run."""
    import errno

    from qrnn_qiskit import fileio
    from qrnn_qiskit.errors import QRNNError

    run = tmp_path / "run"
    calls = []
    real = getattr(RunDir, where)

    def full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == evaluation:
            if where == "append_metrics":  # the line is written, its fsync finds the disk full
                real_write = fileio.os.fsync

                def fsync(fd):
                    raise OSError(errno.ENOSPC, "No space left on device")

                monkeypatch.setattr(fileio.os, "fsync", fsync)
                try:
                    return real(self, *args, **kwargs)
                finally:
                    monkeypatch.setattr(fileio.os, "fsync", real_write)
            raise fileio.write_error(self.file("checkpoint.pt"), OSError(errno.ENOSPC, "full"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunDir, where, full)
    before = {}
    if evaluation == 2:
        original = RunDir.commit

        def remember(self, *args, **kwargs):
            if not before and self.file("checkpoint.pt").exists():
                before.update({p.name: p.read_bytes() for p in run.iterdir() if p.is_file()})
            return original(self, *args, **kwargs)

        monkeypatch.setattr(RunDir, "commit", remember)
    with pytest.raises(QRNNError, match="nothing was overwritten"):
        Trainer.from_config(TINY, run).fit()
    monkeypatch.undo()
    if evaluation == 1:  # the failed first evaluation: no run folder left (its config.json would
        assert not run.exists()  # make the same command refuse: "already exists")
    else:  # the second evaluation changed nothing the first one wrote
        after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        before.pop(".lock", None)
        assert {k: after[k] for k in ("metrics.jsonl", "checkpoint.pt", "best.pt")} == {
            k: before[k] for k in ("metrics.jsonl", "checkpoint.pt", "best.pt")
        }
    assert not list(run.glob(".*.tmp"))
    Trainer.from_config(TINY, run, resume=evaluation > 1).fit()
    assert without_seconds(read_metrics(run)) == without_seconds(read_metrics(straight))
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    a, b = (RunDir(path).load_checkpoint() for path in (straight, run))
    assert a["step"] == b["step"] == 4 and a["running"] == b["running"]
