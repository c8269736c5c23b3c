"""The statevector engine: a compiled program (``program``), torch and native CPU kernels behind one
interface (``kernels_torch``, ``kernels_native``, ``native``: the runtime of ``native.c``), the
reversible tape (``tape``), the autograd functions (``autograd``) and the facade (``engine``)."""

from . import native
from .engine import KERNELS, StatevectorEngine
from .gates import SUPPORTED_GATES, UnsupportedCircuitError
from .kernels_torch import default_group_size
from .program import compile_readouts, compile_step
from .tape import ReversibleTape

__all__ = [
    "KERNELS",
    "SUPPORTED_GATES",
    "ReversibleTape",
    "StatevectorEngine",
    "UnsupportedCircuitError",
    "compile_readouts",
    "compile_step",
    "default_group_size",
    "native",
]
