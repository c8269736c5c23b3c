"""Sentence tokenization and word vocabularies for translation.

Sentences are normalised (Unicode NFC, the World English Bible's backtick apostrophes as ``'``, the
translators' ``[ ]`` brackets dropped, lower case) and split into words (letters/digits with inner
apostrophes or hyphens) and single punctuation marks. ``detokenize`` joins tokens back into text for
BLEU.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import QRNNError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
_TOKEN = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?)\]»“])")
_NO_SPACE_AFTER = re.compile(r"([(\[«„]) ")


def normalize(text: str) -> str:
    """NFC, ``` ` ``` → ``'``, no ``[``/``]``, lower case."""
    text = unicodedata.normalize("NFC", text).replace("`", "'").replace("[", "").replace("]", "")
    return text.lower()


def tokenize(text: str) -> list[str]:
    """Normalised words and punctuation marks of ``text``."""
    return _TOKEN.findall(normalize(text))


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens → text: spaces between words, none before closing or after opening punctuation."""
    text = " ".join(tokens)
    return _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", text))


@dataclass(frozen=True)
class Vocabulary:
    """Word ↔ id: ``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2, ``</s>`` 3, then words by training
    frequency."""

    words: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if tuple(self.words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], size: int, min_count: int = 1) -> Vocabulary:
        """The ``size - 4`` most frequent words (ties alphabetical) seen at least ``min_count``
        times."""
        if size <= len(SPECIALS):
            raise QRNNError(
                f"--vocab-size must be > {len(SPECIALS)} (padding, unknown, start, end), got {size}"
            )
        counts = Counter(w for sentence in sentences for w in sentence)
        ranked = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(SPECIALS + tuple(ranked[: size - len(SPECIALS)]))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.index.get(t, UNK) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of ``ids`` up to the first ``</s>``, without padding or ``<s>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.words[i])
        return out
