"""Executors of the QRNN step circuit behind one seam (``base.Engine``): the statevector engine
(``statevector``), exact Aer (``aer``), noisy simulators and fake backends (``noisy``) and IBM
Quantum (``ibm``)."""

from .base import Engine, EngineCapabilities
from .statevector import (
    SUPPORTED_GATES,
    ReversibleTape,
    StatevectorEngine,
    UnsupportedCircuitError,
    native,
)

__all__ = [
    "SUPPORTED_GATES",
    "Engine",
    "EngineCapabilities",
    "ReversibleTape",
    "StatevectorEngine",
    "UnsupportedCircuitError",
    "native",
]
