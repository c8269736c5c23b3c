"""Executors of the QRNN step circuit. ``StatevectorEngine`` is the fast batched torch engine."""

from .statevector import SUPPORTED_GATES, ReversibleTape, StatevectorEngine, UnsupportedCircuitError

__all__ = ["SUPPORTED_GATES", "ReversibleTape", "StatevectorEngine", "UnsupportedCircuitError"]
