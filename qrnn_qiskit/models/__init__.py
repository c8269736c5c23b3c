"""QRNN and classical sequence models.

The configs and choices (``config.py``) load with the package; the models, which need torch, load
on first use of their names (so the CLI's parser imports no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ACTIVATIONS, ANGLE_MAPS, MODELS, ControllerConfig, MeasuredConfig, QRNNConfig

if TYPE_CHECKING:
    from .controller import Controller
    from .measured import MeasuredCore
    from .qrnn import QRNNCell, QRNNCore, default_engine
    from .sequence import (
        ClassicalCore,
        InputSpec,
        SequenceModel,
        build_model,
        count_parameters,
        detach_state,
        match_hidden_size,
    )

_CONTROLLER = ("Controller",)
_MEASURED = ("MeasuredCore",)
_QRNN = ("QRNNCell", "QRNNCore", "default_engine")
_SEQUENCE = (
    "ClassicalCore",
    "InputSpec",
    "SequenceModel",
    "build_model",
    "count_parameters",
    "detach_state",
    "match_hidden_size",
)


def __getattr__(name: str) -> Any:
    """The torch half of the package, imported when first asked for."""
    if name in _CONTROLLER:
        from . import controller as module
    elif name in _MEASURED:
        from . import measured as module
    elif name in _QRNN:
        from . import qrnn as module
    elif name in _SEQUENCE:
        from . import sequence as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "ACTIVATIONS",
    "ANGLE_MAPS",
    "MODELS",
    "ClassicalCore",
    "Controller",
    "ControllerConfig",
    "InputSpec",
    "MeasuredConfig",
    "MeasuredCore",
    "QRNNCell",
    "QRNNConfig",
    "QRNNCore",
    "SequenceModel",
    "build_model",
    "count_parameters",
    "default_engine",
    "detach_state",
    "match_hidden_size",
]
