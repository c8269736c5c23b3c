"""The engine kernels every conformance test runs on."""

from __future__ import annotations

import pytest

from qrnn_qiskit.backends import native

KERNELS = ("native", "torch")


def kernel_or_skip(kernel: str, n_qubits: int) -> str:
    """``kernel``, skipping the test where the native kernels cannot run here (no C compiler). Tests
    do not ask for them below ``native.MIN_QUBITS`` qubits (an error, tested in
    test_engine_native.py)."""
    if kernel == "native":
        assert n_qubits >= native.MIN_QUBITS, "parametrize the native kernels only where they apply"
        if native.load() is None:
            pytest.skip(native.status())
    return kernel
