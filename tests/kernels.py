"""The engine kernels every conformance test runs on."""

from __future__ import annotations

import pytest

from qrnn_qiskit.backends import native

KERNELS = ("native", "torch")


def kernel_or_skip(kernel: str, n_qubits: int) -> str:
    """``kernel``, skipping the test where the native kernels cannot run it (too few qubits, no C compiler)."""
    if kernel == "native":
        if n_qubits < native.MIN_QUBITS:
            pytest.skip(f"the native kernels need >= {native.MIN_QUBITS} qubits")
        if native.load() is None:
            pytest.skip(native.status())
    return kernel
