"""QRNN and classical sequence models."""

from .qrnn import ACTIVATIONS, ANGLE_MAPS, Controller, ControllerConfig, QRNNConfig, QRNNCore
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
    "QRNNConfig",
    "QRNNCore",
    "SequenceModel",
    "build_model",
    "count_parameters",
    "detach_state",
    "match_hidden_size",
]
