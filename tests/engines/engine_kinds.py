"""The engines every conformance test runs on, and how to build them (PennyLane's device-test shape:
one suite, parametrized over every engine; each engine declares what applies to it).

Kinds: ``torch`` and ``native`` (the statevector engine's two kernels), ``cuda`` (the torch kernels
on a GPU: skipped cleanly where there is none) and ``aer`` (EstimatorQNN + TorchConnector on Aer,
exact but slow, so only at small n; its state is an angle history, not a statevector).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from qiskit import QuantumCircuit

from qrnn_qiskit.backends import StatevectorEngine, native
from qrnn_qiskit.circuits import QRNNSpec, readout_observables, step_circuit


@dataclass(frozen=True)
class Kind:
    name: str
    qubits: range  # register sizes this kind is tested at
    statevector: bool  # whether its state compares with Statevector
    any_circuit: bool  # compiles arbitrary circuits (else QRNN specs only)
    dtypes: tuple[torch.dtype, ...]


KINDS = {
    "torch": Kind("torch", range(1, 9), True, True, (torch.complex128, torch.complex64)),
    "native": Kind(
        "native", range(native.MIN_QUBITS, 9), True, True, (torch.complex128, torch.complex64)
    ),
    "cuda": Kind("cuda", range(1, 9), True, True, (torch.complex128, torch.complex64)),
    "aer": Kind("aer", range(1, 4), False, False, (torch.float32,)),
}
STATEVECTOR_KINDS = [k for k in KINDS if KINDS[k].statevector]


def require(kind: str) -> None:
    """Skip where this machine cannot run ``kind`` (no GPU; no C compiler for the native
    kernels)."""
    if kind == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if kind == "native" and native.load() is None:
        pytest.skip(native.status())


def circuit_engine(
    kind: str, circuit: QuantumCircuit, observables, dtype=torch.complex128, group_size=None
) -> StatevectorEngine:
    """A statevector engine of ``kind`` for an arbitrary circuit."""
    require(kind)
    assert KINDS[kind].any_circuit, f"{kind} engines run QRNN specs only"
    return StatevectorEngine(
        circuit,
        observables,
        dtype=dtype,
        group_size=group_size,
        kernel="torch" if kind in ("torch", "cuda") else "native",
        device="cuda" if kind == "cuda" else "cpu",
    )


def spec_engine(kind: str, spec: QRNNSpec, dtype=torch.complex128):
    """The engine of ``kind`` for a QRNN spec (``dtype`` is ignored by Aer: float32)."""
    require(kind)
    if kind == "aer":
        from qrnn_qiskit.backends.aer import AerEstimatorEngine

        return AerEstimatorEngine(spec, force=True)
    return circuit_engine(kind, step_circuit(spec), readout_observables(spec), dtype)


def available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "native":
        return native.load() is not None
    return True


def cases(kinds, build) -> list:
    """``pytest.param`` s of ``build(kind)`` (an iterable of tuples) for every kind, with ids; a
    kind this machine cannot run contributes one skipped case, not one per parameter set."""
    out = []
    for kind in kinds:
        built = list(build(KINDS[kind]))
        if not available(kind):
            reason = "needs a CUDA device" if kind == "cuda" else native.status()
            built = built[:1]
            marks = [pytest.mark.skip(reason=reason)]
        else:
            marks = []
        for case in built:
            out.append(pytest.param(kind, *case, id="-".join([kind, *map(str, case)]), marks=marks))
    return out
