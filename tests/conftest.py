import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

# The user's dataset cache as this run found it (QRNN_DATA, else ~/.cache/qrnn-qiskit): only the
# slow real-data tests read it, through the ``real_data`` fixture.
_USER_DATA = os.environ.get("QRNN_DATA") or str(Path.home() / ".cache" / "qrnn-qiskit")
_EMPTY_DATA: str | None = None


def pytest_configure(config):
    """Hermetic suite: every test (and every process it starts) sees an empty dataset cache of its
    own, never what an earlier run left in ``~/.cache`` or in ``$QRNN_DATA``. A test that needs a
    dataset builds a small fixture (tests/datafiles.py, tests/textfiles.py) or asks for
    ``real_data`` (and is marked slow)."""
    global _EMPTY_DATA
    _EMPTY_DATA = tempfile.mkdtemp(prefix="qrnn-test-data-")
    os.environ["QRNN_DATA"] = _EMPTY_DATA


def pytest_unconfigure(config):
    if _EMPTY_DATA is not None:
        shutil.rmtree(_EMPTY_DATA, ignore_errors=True)


@pytest.fixture
def real_data(monkeypatch) -> Path:
    """The user's real dataset cache (for the slow checks of fetched datasets against DATA.md)."""
    monkeypatch.setenv("QRNN_DATA", _USER_DATA)
    return Path(_USER_DATA)


@pytest.fixture(autouse=True)
def _empty_data_cache():
    """The session's empty cache stays empty: a test that fetched into it without its own
    ``QRNN_DATA`` would hand the next test (in random order) a dataset it did not build."""
    yield
    if _EMPTY_DATA is not None and os.listdir(_EMPTY_DATA):
        left = sorted(os.listdir(_EMPTY_DATA))
        shutil.rmtree(_EMPTY_DATA, ignore_errors=True)
        os.makedirs(_EMPTY_DATA, exist_ok=True)
        pytest.fail(f"the test wrote {left} into the shared empty dataset cache; give it its own")


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


@pytest.fixture
def opened_modes(monkeypatch) -> list:
    """Every runtime Session/Batch the IBM boundary opens during the test (local mode included),
    in order: ``RuntimeBoundary.open_mode`` is wrapped, not replaced."""
    from qrnn_qiskit.backends.ibm import RuntimeBoundary

    opened: list = []
    original = RuntimeBoundary.open_mode

    def spy(self, kind, backend, mode_id=None):
        mode = original(self, kind, backend, mode_id)
        opened.append(mode)
        return mode

    monkeypatch.setattr(RuntimeBoundary, "open_mode", spy)
    return opened
