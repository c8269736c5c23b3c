"""The seam between models and executors: what a QRNN may ask of an engine that runs its step
circuit.

A QRNN (``models.qrnn.QRNNCell``) is typed against :class:`Engine`, never against a concrete class,
so the same model trains on the statevector engine, on Aer through EstimatorQNN + TorchConnector, or
on an engine wrapper (noise models), by swapping that one argument. An engine owns its memory
strategy: a model wraps every pass over a sequence in ``engine.recording(batch, steps)`` and the
engine decides what to keep for backward (the statevector engine: a reversible tape; Aer: nothing,
after checking the pass's cost). Optional capabilities are declared in :class:`EngineCapabilities`,
not guessed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine declares about itself.

    ``statevector``: its state is the 2^n amplitude vector in Qiskit's basis order (comparable with
    ``qiskit.quantum_info.Statevector.data``); otherwise the state is opaque (Aer: the angle
    history). ``reversible``: a recorded pass keeps memory independent of the sequence length.
    """

    statevector: bool = False
    reversible: bool = False


@runtime_checkable
class Engine(Protocol):
    """An executor of one parametrized step circuit U(θ) and its readout observables, for a batch.

    States are opaque tensors [batch, …] that only the engine interprets; angles are [batch,
    n_params] in ``circuit.parameters`` order; readouts are real [batch, n_readouts] and
    differentiable with respect to the angles and the incoming state.
    """

    n_qubits: int
    n_params: int
    n_readouts: int
    capabilities: EngineCapabilities

    def initial_state(self, batch: int) -> torch.Tensor:
        """ψ_0 = |0…0⟩ for ``batch`` samples."""
        ...

    def step(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """U(θ)·state."""
        ...

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        """The readout expectation values of ``state``."""
        ...

    def step_readouts(
        self, state: torch.Tensor, angles: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(U(θ)·state, its readouts) in one call."""
        ...

    def recording(self, batch: int, steps: int) -> AbstractContextManager[None]:
        """The scope of one pass over ``steps`` steps of ``batch`` sequences (see the module
        docstring); may refuse a pass it cannot afford with a ``QRNNError``."""
        ...
