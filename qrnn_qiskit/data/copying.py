"""Copying-memory task generator (docs/data.md): remember 10 symbols across a delay of T blanks."""

from __future__ import annotations

import math

import numpy as np

BLANK = 0
N_SYMBOLS = 8  # symbols are 1..8
MARKER = N_SYMBOLS + 1
N_RECALL = 10
VOCAB = N_SYMBOLS + 2  # blank, 8 symbols, marker
N_CLASSES = N_SYMBOLS + 1  # blank and the 8 symbols (the marker is never a target)


def copying_length(delay: int) -> int:
    """Sequence length T + 20."""
    return delay + 2 * N_RECALL


def copying_batch(
    rng: np.random.Generator, batch: int, delay: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets, both int64 [batch, T+20].

    Input: 10 symbols from {1..8}, T blanks, the marker, 9 blanks.
    Target: T+10 blanks, then the 10 symbols (the first one due at the marker's step).
    """
    if delay < 1:
        raise ValueError(f"delay must be >= 1, got {delay}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    length = copying_length(delay)
    symbols = rng.integers(1, N_SYMBOLS + 1, size=(batch, N_RECALL))
    x = np.full((batch, length), BLANK, dtype=np.int64)
    y = np.full((batch, length), BLANK, dtype=np.int64)
    x[:, :N_RECALL] = symbols
    x[:, N_RECALL + delay] = MARKER
    y[:, -N_RECALL:] = symbols
    return x, y


def memoryless_baseline(delay: int) -> float:
    """Cross-entropy per step of the best memoryless strategy: 10·ln 8 / (T+20)."""
    return N_RECALL * math.log(N_SYMBOLS) / copying_length(delay)
