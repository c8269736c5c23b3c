"""`qrnn gradnorm`: the step-by-step unroll equals each model's own forward, its gradients are the
training gradients, and the command writes the curves of trained runs at init and trained."""

from __future__ import annotations

import json

import pytest
import torch

from qrnn_qiskit.cli import main
from qrnn_qiskit.evaluation.gradnorm import gradient_norms, unroll
from qrnn_qiskit.training import TrainConfig, Trainer, make_task

TINY = TrainConfig.flat(delay=2, qubits=3, layers=1, width=8, steps=2, eval_every=2, eval_size=8,
                        batch_size=4, progress=False, threads=1)  # fmt: skip


@pytest.mark.parametrize("kind", ["qrnn", "lstm", "gru", "rnn", "orthogonal"])
def test_the_unroll_is_the_models_own_forward_and_its_gradients(kind):
    config = TINY.replace(model=kind, dtype="complex128", chrono_init=False)
    task = make_task(config)
    torch.manual_seed(0)
    model = task.build_model(config).double()
    x, y = next(task.batches("val"))
    reference = task.loss(model(x), y)
    hidden, states = unroll(model, x)
    loss = task.loss(model.apply_head(hidden, x), y)
    torch.testing.assert_close(loss, reference, atol=1e-10, rtol=0)
    params = [p for p in model.parameters() if p.requires_grad]
    expected = torch.autograd.grad(reference, params)
    got = torch.autograd.grad(loss, params, retain_graph=True)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)
    norms = gradient_norms(model, task, x, y)
    names = {"qrnn": {"psi", "z"}, "lstm": {"h", "c"}}.get(kind, {"h"})
    assert names <= set(norms) and all(len(norms[n]) == x.shape[1] for n in names)
    assert all(v > 0 for n in names for v in norms[n][-5:])  # the last steps feed the loss


def test_cli_writes_curves_at_init_and_trained(tmp_path, capsys):
    for kind in ("qrnn", "lstm"):
        Trainer.from_config(TINY.replace(model=kind), tmp_path / kind).fit()
    out, png = tmp_path / "g.json", tmp_path / "g.png"
    runs = [str(tmp_path / "qrnn"), str(tmp_path / "lstm")]
    assert main(["gradnorm", *runs, "--samples", "4", "--json", str(out), "--plot", str(png)]) == 0
    curves = json.loads(out.read_text())["curves"]
    assert [(c["model"], c["when"]) for c in curves] == [
        ("qrnn", "init"), ("qrnn", "trained"), ("lstm", "init"), ("lstm", "trained")
    ]  # fmt: skip
    assert curves[1]["step"] == 2 and len(curves[0]["psi"]) == 22 and png.stat().st_size > 0
    assert "t=T" in capsys.readouterr().out
    assert curves[0]["loop"]["gain_median"] > 0 and "loop" not in curves[2]


def test_translation_runs_are_refused_in_one_line(tmp_path, capsys):
    run = tmp_path / "mt"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"config": TrainConfig.flat(task="mt-de-en").to_dict()})
    )
    assert main(["gradnorm", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "translation run" in err and len(err.splitlines()) == 1


def test_padded_inputs_use_full_length_sequences_first():
    from qrnn_qiskit.evaluation.gradnorm import _batch

    class Padded:
        def batches(self, split):
            yield torch.tensor([[5, 6, 0, 0], [5, 6, 7, 8]]), torch.tensor([0, 1])
            yield torch.tensor([[5, 6, 7, 0], [1, 2, 3, 4]]), torch.tensor([1, 0])

    x, y = _batch(Padded(), 3, pad_id=0)
    assert x.tolist() == [[5, 6, 7, 8], [1, 2, 3, 4], [5, 6, 7, 0]] and y.tolist() == [1, 0, 1]
