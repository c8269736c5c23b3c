"""Qiskit circuits: the single definition of the QRNN's parametrized step circuit and its
readouts."""

from .spec import (
    ENTANGLERS,
    MAX_QUBITS,
    READOUT_SETS,
    QRNNSpec,
    readout_labels,
    readout_observables,
    step_circuit,
)

__all__ = [
    "ENTANGLERS",
    "MAX_QUBITS",
    "READOUT_SETS",
    "QRNNSpec",
    "readout_labels",
    "readout_observables",
    "step_circuit",
]
