"""Hyperparameter sweeps on Optuna (``qrnn sweep``): a search-space file (``space``), the study's
storage (``storage``), workers whose trials are run directories (``worker``) and reports
(``report``). Optuna is an optional dependency (``pip install 'qrnn-qiskit[sweep]'``), imported
only when a sweep runs."""

from .space import Dimension, Sweep, load, parse

__all__ = ["Dimension", "Sweep", "load", "parse"]
