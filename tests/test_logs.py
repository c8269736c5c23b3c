"""``--log tensorboard`` (training/logs.py): event files in the run directory beside
metrics.jsonl, every numeric field of the records (callbacks' extras included), resumes hide the
events after the checkpoint, and a missing tensorboard package is a one-line error."""

import sys

import pytest

from qrnn_qiskit.cli import main
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.training import TrainConfig, Trainer, TrainerCallback, read_metrics
from qrnn_qiskit.training.logs import scalars

pytest.importorskip("tensorboard", reason="make test installs it (the tensorboard extra)")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TINY = TrainConfig.flat(
    delay=2, qubits=3, layers=1, width=8, steps=6, eval_every=2, eval_size=16, batch_size=4,
    lr=1e-2, progress=False, log="tensorboard",
)  # fmt: skip


class LoopGain(TrainerCallback):
    """Adds an extra numeric field to every record, as a loop-gain logger would."""

    def on_evaluation(self, trainer, record):
        record["loop_gain"] = 0.5 + trainer.step
        record["note"] = "not a number"


def events(folder):
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in tags}


def test_tensorboard_events_mirror_metrics_jsonl(tmp_path):
    Trainer.from_config(TINY, tmp_path / "run", callbacks=[LoopGain()]).fit()
    logged = read_metrics(tmp_path / "run")
    found = events(tmp_path / "run")
    assert {
        "train/loss",
        "train/lr",
        "time/seconds",
        "val/loss",
        "val/accuracy",
        "loop_gain",
    } <= set(found)
    assert "note" not in found and "step" not in found
    assert [s for s, _ in found["val/accuracy"]] == [r["step"] for r in logged] == [2, 4, 6]
    for (_, value), record in zip(found["val/loss"], logged):
        assert value == pytest.approx(record["loss"], rel=1e-6)
    assert [v for _, v in found["loop_gain"]] == [2.5, 4.5, 6.5]


def test_a_resume_hides_the_events_after_the_checkpoint(tmp_path):
    Trainer.from_config(TINY.replace(steps=4), tmp_path / "run").fit()
    Trainer.from_config(TINY, tmp_path / "run", resume=True).fit()
    steps = [s for s, _ in events(tmp_path / "run")["val/loss"]]
    assert steps == [2, 4, 6]


def test_scalar_tags():
    record = {"step": 3, "train_loss": 1.0, "lr": 0.1, "seconds": 2, "loss": 0.5, "gain": {"a": 1}}
    assert dict(scalars(record, {"loss": 0.5})) == {
        "train/loss": 1.0, "train/lr": 0.1, "time/seconds": 2.0, "val/loss": 0.5, "gain/a": 1.0,
    }  # fmt: skip


def test_without_tensorboard_the_option_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # an import of it now fails
    with pytest.raises(QRNNError, match=r"needs the tensorboard package: pip install"):
        Trainer.from_config(TINY, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    code = main(
        ["train", "--log", "tensorboard", "--qubits", "3", "--run-dir", str(tmp_path / "b")]
    )
    assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_device_cuda_without_a_gpu_is_a_one_line_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU (tests/test_gpu.py trains on it)")
    code = main(["train", "--device", "cuda", "--qubits", "3", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "no CUDA device" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--device", "cuda", "--model", "lstm"]) == 2
    assert "trains on the CPU (drop --device)" in capsys.readouterr().err
