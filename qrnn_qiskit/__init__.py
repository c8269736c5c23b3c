"""qrnn-qiskit: hybrid quantum-classical recurrent neural networks on Qiskit circuits.

The Python API's entry point is :class:`qrnn_qiskit.QRNN` (``qrnn_qiskit.nn``), a PyTorch module
in the spirit of ``torch.nn.LSTM`` with the training recipe's defaults; :func:`param_groups` gives
any model holding QRNNs the trainer's learning rates. Both are imported on first use, so
``import qrnn_qiskit`` itself loads neither torch nor Qiskit.
"""

from __future__ import annotations

from typing import Any

__all__ = ["QRNN", "QRNNError", "param_groups"]

_LAZY = {"QRNN": "nn", "param_groups": "nn", "QRNNError": "errors"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
