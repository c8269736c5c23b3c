"""The task names and the options tasks own (``TaskConfig``): plain data, no torch, so the CLI
builds ``qrnn train``'s options without importing the tasks (``registry.py`` maps each name to its
factory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...models.config import ATTENTION_SCORES
from ...options import ConfigError, option, require, require_finite

# the registry's names, in its order (``registry.TASKS`` is checked against this tuple)
TASK_NAMES: tuple[str, ...] = (
    "copying",
    "smnist",
    "smnist-rows",
    "pmnist",
    "imdb",
    "ptb-word",
    "ptb-char",
    "mt-de-en",
)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TaskConfig:
    """The task and the options tasks own (each option says which tasks read it)."""

    name: str = option(
        "copying",
        "task to train: copying, smnist (pixels, T=784), smnist-rows (T=28), pmnist (permuted "
        "pixels), imdb, ptb-word, ptb-char (Penn Treebank language modelling), mt-de-en "
        "(German→English Bible verses)",
        flag="task",
    )
    delay: int = option(20, "copying: number of blanks T between the symbols and the marker")
    val_fraction: float = option(
        0.1,
        "smnist/smnist-rows/pmnist/imdb: fraction of the training split held out for validation",
    )
    permutation_seed: int = option(
        0, "pmnist: seed of the one fixed pixel permutation (recorded in config.json)"
    )
    vocab_size: int = option(
        10000,
        "imdb, mt-de-en (per language): vocabulary size including special tokens (most frequent "
        "training words)",
    )
    max_len: int = option(
        200,
        "imdb: keep the last MAX_LEN words of each review; mt-de-en: drop pairs with more tokens "
        "on a side",
    )
    bptt: int = option(
        35, "ptb-word/ptb-char: truncated-BPTT window (tokens per training step and row)"
    )
    carry: bool = option(
        True,
        "ptb-word/ptb-char: carry the recurrent state across windows (detached); --no-carry "
        "restarts every training and evaluation window from the initial state",
    )
    reset_every: int = option(
        0,
        "ptb-word/ptb-char with the state carried: restart it from the initial state every K "
        "windows, in training and evaluation (a forgetting step; 0: carry it through the epoch)",
    )
    attention: str = option(
        "additive", "mt-de-en: attention score over the encoder's outputs", choices=ATTENTION_SCORES
    )
    beam_size: int = option(
        5, "mt-de-en: beam width for test BLEU (qrnn report) and qrnn translate (1: greedy)"
    )

    def __post_init__(self) -> None:
        require(_int(self.delay) and self.delay >= 1, "delay", f"must be >= 1, got {self.delay}")
        require_finite(self.val_fraction, "val_fraction")
        require(
            0.0 < self.val_fraction < 1.0,
            "val_fraction",
            f"must be in (0, 1), got {self.val_fraction}",
        )
        require(
            _int(self.permutation_seed) and self.permutation_seed >= 0,
            "permutation_seed",
            f"must be >= 0, got {self.permutation_seed}",
        )
        require(
            _int(self.vocab_size) and self.vocab_size >= 3,
            "vocab_size",
            f"must be >= 3 (padding, unknown, one word), got {self.vocab_size}",
        )
        require(
            _int(self.max_len) and self.max_len >= 1, "max_len", f"must be >= 1, got {self.max_len}"
        )
        require(_int(self.bptt) and self.bptt >= 1, "bptt", f"must be >= 1, got {self.bptt}")
        require(
            _int(self.reset_every) and self.reset_every >= 0,
            "reset_every",
            f"must be >= 0, got {self.reset_every}",
        )
        if self.attention not in ATTENTION_SCORES:
            raise ConfigError(
                "attention",
                f"must be one of {', '.join(ATTENTION_SCORES)}; got {self.attention!r}",
            )
        require(
            _int(self.beam_size) and self.beam_size >= 1,
            "beam_size",
            f"must be >= 1, got {self.beam_size}",
        )
