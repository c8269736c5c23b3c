"""Qiskit circuits: the single definition of the QRNN's parametrized step circuit and its
readouts."""

from .spec import (
    ALL_ENTANGLERS,
    ENTANGLERS,
    MAX_QUBITS,
    READOUT_SETS,
    RZZ_ENTANGLERS,
    QRNNSpec,
    readout_labels,
    readout_observables,
    step_circuit,
)

__all__ = [
    "ALL_ENTANGLERS",
    "ENTANGLERS",
    "RZZ_ENTANGLERS",
    "MAX_QUBITS",
    "READOUT_SETS",
    "QRNNSpec",
    "readout_labels",
    "readout_observables",
    "step_circuit",
]
