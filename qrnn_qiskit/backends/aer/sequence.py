"""Whole QRNN sequences with given angles on Aer's statevector simulator, in one ``run()`` call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...circuits import QRNNSpec
from ...circuits.sequence import SequenceCircuit, simulation_sequence_circuit
from ..memory import check_memory
from .requirements import require_aer


def _as_numpy(values: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().to(torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


class AerSequenceRunner:
    """Runs whole QRNN sequences with given per-step angles on
    ``AerSimulator(method="statevector")``.

    ``run(angles [B, T, P]) → readouts [B, T, R]`` in one ``run()`` call: the simulation-form
    circuit of T steps (built once per T and cached) is bound to all B angle sets at once.
    ``runtime_parameter_bind`` lets Aer bind parameters inside one compiled circuit instead of B
    bound copies (faster for sweeps).
    """

    def __init__(
        self, spec: QRNNSpec, *, simulator=None, runtime_parameter_bind: bool = True
    ) -> None:
        require_aer("the aer sequence runner")
        from qiskit_aer import AerSimulator

        self.spec = spec
        self.n_params = spec.n_params
        self.n_readouts = spec.n_readouts
        options = {"runtime_parameter_bind_enable": True} if runtime_parameter_bind else {}
        self.simulator = (
            simulator if simulator is not None else AerSimulator(method="statevector", **options)
        )
        self._circuits: dict[int, SequenceCircuit] = {}

    def circuit(self, steps: int) -> SequenceCircuit:
        """The (cached) simulation-form circuit of ``steps`` steps."""
        if steps not in self._circuits:
            self._circuits[steps] = simulation_sequence_circuit(self.spec, steps)
        return self._circuits[steps]

    def run(self, angles: np.ndarray | torch.Tensor) -> np.ndarray:
        """Readouts [B, T, R] (float64) of the sequences with angles [B, T, P]."""
        values = _as_numpy(angles)
        if (
            values.ndim != 3
            or values.shape[2] != self.n_params
            or values.shape[0] < 1
            or values.shape[1] < 1
        ):
            raise ValueError(
                f"angles must have shape [batch, steps, {self.n_params}], got {tuple(values.shape)}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError("angles contain NaN or infinite values")
        batch, steps, _ = values.shape
        check_memory(self.spec.n_qubits, batch, what="aer sequence runner")
        seq = self.circuit(steps)
        binds = {
            p: values[:, t, k] for t, vector in enumerate(seq.angles) for k, p in enumerate(vector)
        }
        result = self.simulator.run(seq.circuit, parameter_binds=[binds], shots=1).result()
        if not result.success:
            raise RuntimeError(f"Aer run failed: {result.status}")
        out = np.empty((batch, steps, self.n_readouts))
        for b in range(batch):
            data = result.data(b)
            for t, labels in enumerate(seq.labels):
                out[b, t] = [float(np.real(data[label])) for label in labels]
        return out
