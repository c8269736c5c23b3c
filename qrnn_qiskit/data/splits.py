"""Seeded permutations that never change across numpy versions (SplitMix64 keys, stable argsort).

Validation splits, epoch orders and the pMNIST pixel order are derived from them, so a run's data is
a pure function of its config and resumes (and reproduces on another machine) exactly.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(x: int) -> int:
    """SplitMix64 finaliser on a Python int (mod 2**64)."""
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _mix_array(x: np.ndarray) -> np.ndarray:
    """The same finaliser on a uint64 array (numpy wraps array arithmetic mod 2**64)."""
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def stable_permutation(n: int, key: tuple[int, ...]) -> np.ndarray:
    """A permutation of ``range(n)`` (int64) determined by the integers in ``key`` alone."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    seed = 0
    for part in key:
        seed = _mix(seed ^ (int(part) & _MASK))
    keys = _mix_array(np.arange(n, dtype=np.uint64) ^ np.uint64(seed))
    return np.argsort(keys, kind="stable").astype(np.int64)


def carve_validation(
    indices: np.ndarray, fraction: float, key: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (train, validation) with ``round(fraction·n)`` seeded validation
    items.

    Training indices come back sorted; validation indices in their random order, so any prefix of
    the validation split is itself a random sample."""
    n = len(indices)
    n_val = int(round(fraction * n))
    if not 0 < n_val < n:
        raise ValueError(
            f"a validation fraction of {fraction} leaves {n - n_val} training and {n_val} "
            f"validation examples out of {n}"
        )
    order = stable_permutation(n, key)
    return np.sort(indices[order[n_val:]]), indices[order[:n_val]]
