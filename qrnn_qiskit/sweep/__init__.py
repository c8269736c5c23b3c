"""Hyperparameter sweeps on Optuna (``qrnn sweep``): a search-space file (``space``), the study's
storage (``storage``), workers whose trials are run directories (``worker``) and reports
(``report``); benchmark specs on the same machinery (``qrnn bench``: ``bench_spec``, ``bench``).
Optuna is an optional dependency (``pip install 'qrnn-qiskit[sweep]'``), imported only when a
sweep runs. The names below load on first use, so the command-line modules (``cli``,
``bench_cli``) import without torch."""

from __future__ import annotations

from typing import Any

__all__ = ["Dimension", "Sweep", "load", "parse"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import space

        return getattr(space, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
