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


@pytest.fixture(autouse=True)
def _threads():
    """Process-wide thread settings (torch's, the native kernels' budget) are what each test finds
    on a fresh interpreter: an in-process ``qrnn train --threads N`` sets both, and no test may see
    what an earlier one set (the suite runs in random order)."""
    from qrnn_qiskit.backends.statevector import native

    torch_threads = torch.get_num_threads()
    kernels = native.RUNTIME.threads_setting()
    yield
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    native.set_threads(kernels)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture
def cache(cache_root, monkeypatch):
    """Point the dataset cache (QRNN_DATA) at the ``cache_root`` that the requesting test module
    builds."""
    monkeypatch.setenv("QRNN_DATA", str(cache_root))
    return cache_root
