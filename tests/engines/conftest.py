"""Fixtures of the engine suite (the engines themselves: engine_kinds.py)."""

from __future__ import annotations

import pytest

from qrnn_qiskit.backends.conformance import Tolerance, tolerance


@pytest.fixture
def tol():
    """The tolerance of an engine's precision (``tol(engine)``)."""

    def of(engine) -> Tolerance:
        return tolerance(engine)

    return of
