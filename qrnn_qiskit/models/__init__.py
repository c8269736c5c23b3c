"""QRNN and classical sequence models."""

from .controller import ACTIVATIONS, ANGLE_MAPS, Controller, ControllerConfig
from .measured import MeasuredConfig, MeasuredCore
from .qrnn import QRNNCell, QRNNConfig, QRNNCore, default_engine
from .sequence import (
    MODELS,
    ClassicalCore,
    InputSpec,
    SequenceModel,
    build_model,
    count_parameters,
    detach_state,
    match_hidden_size,
)

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
