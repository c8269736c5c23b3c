import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same seeds; tests that need other randomness make their own
    generators."""
    torch.manual_seed(1234)
    np.random.seed(1234)
    yield


_TORCH_THREADS = torch.get_num_threads()  # what a fresh interpreter of this suite starts with


@pytest.fixture(autouse=True)
def _threads():
    """Every test starts with the process-wide thread settings of a fresh interpreter (torch's,
    and the native kernels' budget unset): an in-process ``qrnn train --threads N`` — in a test or
    in a module-scoped fixture that trains a run — sets both, and no test may see what another set
    (the suite runs in random order)."""
    from qrnn_qiskit.backends.statevector import native

    if torch.get_num_threads() != _TORCH_THREADS:
        torch.set_num_threads(_TORCH_THREADS)
    native.set_threads(None)
    yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture
def cache(cache_root, monkeypatch):
    """Point the dataset cache (QRNN_DATA) at the ``cache_root`` that the requesting test module
    builds."""
    monkeypatch.setenv("QRNN_DATA", str(cache_root))
    return cache_root
