"""``AerEstimatorEngine``: the QRNN's quantum half on Aer through ``EstimatorQNN`` +
``TorchConnector``, behind the :class:`~qrnn_qiskit.backends.base.Engine` seam, with its cost
guard."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ...circuits import QRNNSpec, readout_observables
from ...circuits.sequence import prefix_circuit
from ...errors import QRNNError
from ..base import EngineCapabilities
from ..memory import check_memory
from .cost import AerCost, calibrate, estimate_cost
from .gradient import BroadcastParamShiftGradient
from .requirements import aer_estimator, require_aer, require_qml

DEFAULT_LIMIT_HOURS = 1.0


class AerEstimatorEngine:
    """The QRNN's quantum half on Aer through ``EstimatorQNN`` + ``TorchConnector`` (exact,
    autograd).

    An :class:`~qrnn_qiskit.backends.base.Engine`, so ``QRNNCore(input_size, config, engine=...)``
    trains on it unchanged. The state is the angle history [B, t·P] (float32): it determines
    ψ_t = U(θ_t)…U(θ_1)|0⟩ exactly, and ``readouts`` evaluates that prefix on Aer's EstimatorV2 with
    ``default_precision=0.0``. Gradients reach every angle (``input_gradients=True``).

    Training on Aer costs O(T³·P) simulated step circuits per sample (prefix circuits and parameter
    shift), so :meth:`recording` estimates the whole plan before the first pass of a new shape
    [B, T]: ``planned_steps`` forward+backward passes plus forward passes over
    ``planned_eval_samples`` samples, timed on this machine, and raises a :class:`QRNNError` with
    the estimate when it exceeds ``limit_hours`` (unless ``force``).

    Args:
        spec: the step circuit's spec.
        estimator: a ``BaseEstimatorV2`` (default: :func:`aer_estimator`, exact statevector).
        gradient: an ``EstimatorQNN`` gradient strategy (default:
            :class:`BroadcastParamShiftGradient` over ``estimator``; pass qiskit-machine-learning's
            ``ParamShiftEstimatorGradient`` for its one-pub-per-shift behaviour).
        planned_steps, planned_eval_samples, force, limit_hours: the cost guard's plan.
    """

    capabilities = EngineCapabilities(statevector=False, reversible=False)

    def __init__(
        self,
        spec: QRNNSpec,
        *,
        estimator=None,
        gradient=None,
        planned_steps: int = 1,
        planned_eval_samples: int = 0,
        force: bool = False,
        limit_hours: float = DEFAULT_LIMIT_HOURS,
    ) -> None:
        require_aer()
        require_qml()
        self.spec = spec
        self.n_qubits = spec.n_qubits
        self.n_params = spec.n_params
        self.observables = readout_observables(spec)
        self.n_readouts = len(self.observables)
        self.estimator = estimator if estimator is not None else aer_estimator()
        self.gradient = (
            gradient if gradient is not None else BroadcastParamShiftGradient(self.estimator)
        )
        self.dtype = torch.float32
        self.device = torch.device("cpu")
        # ⟨0…0|O|0…0⟩: only terms made of I and Z contribute
        z0 = []
        for op in self.observables:
            value = 0.0
            for label, coeff in op.to_list():
                if set(label) <= {"I", "Z"}:
                    value += float(np.real(coeff))
            z0.append(value)
        self._z0 = torch.tensor(z0, dtype=self.dtype)
        # prefix length -> TorchConnector (not registered as modules)
        self._connectors: dict[int, Any] = {}
        self.planned_steps = max(1, int(planned_steps))
        self.planned_eval_samples = max(0, int(planned_eval_samples))
        self.force = force
        self.limit_hours = limit_hours
        self._checked: set[tuple[int, int, bool]] = set()

    def connector(self, steps: int):
        """The (cached) ``TorchConnector(EstimatorQNN)`` of the ``steps``-step prefix: [B, steps·P]
        → [B, R]."""
        if steps not in self._connectors:
            from qiskit_machine_learning.connectors import TorchConnector
            from qiskit_machine_learning.neural_networks import EstimatorQNN

            prefix = prefix_circuit(self.spec, steps)
            qnn = EstimatorQNN(
                circuit=prefix.circuit,
                estimator=self.estimator,
                observables=self.observables,
                input_params=prefix.flat_parameters(),
                weight_params=[],
                gradient=self.gradient,
                input_gradients=True,
                default_precision=0.0,
            )
            self._connectors[steps] = TorchConnector(qnn)
        return self._connectors[steps]

    def initial_state(self, batch: int) -> torch.Tensor:
        """The empty angle history [batch, 0] (ψ_0 = |0…0⟩); checks simulator memory first."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        check_memory(self.n_qubits, batch, what="aer backend")
        return torch.zeros(batch, 0, dtype=self.dtype)

    def _steps_of(self, state: torch.Tensor) -> int:
        if state.dim() != 2 or state.shape[1] % self.n_params:
            raise ValueError(
                f"state must be an angle history [batch, t·{self.n_params}], got "
                f"{tuple(state.shape)}"
            )
        return state.shape[1] // self.n_params

    def step(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Append the step's angles [B, P] to the history."""
        self._steps_of(state)
        if angles.dim() != 2 or angles.shape != (state.shape[0], self.n_params):
            raise ValueError(
                f"angles must have shape [{state.shape[0]}, {self.n_params}], got "
                f"{tuple(angles.shape)}"
            )
        return torch.cat([state, angles.to(self.dtype)], dim=1)

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        """Readouts [B, R] of ψ_t for an angle history of t steps (exact Aer expectation values)."""
        steps = self._steps_of(state)
        if steps == 0:
            return self._z0.expand(state.shape[0], -1).clone()
        return self.connector(steps)(state)

    def step_readouts(
        self, state: torch.Tensor, angles: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` then ``readouts`` (the angle history is the whole state: autograd keeps only
        angles)."""
        state = self.step(state, angles)
        return state, self.readouts(state)

    @contextmanager
    def recording(self, batch: int, steps: int):
        """One pass over [batch, steps]: checks the plan's cost first (forward+backward when
        autograd is enabled, else forward only)."""
        self.check_cost(batch, steps, backward=torch.is_grad_enabled())
        yield

    def plan_cost(self, batch: int, steps: int, backward: bool) -> tuple[float, AerCost]:
        """(estimated seconds for the whole plan, cost of one pass) for passes of shape
        [batch, steps]."""
        one = self.estimate(batch, steps, backward=backward)
        if not backward:
            return one.seconds, one
        total = self.planned_steps * one.seconds
        if self.planned_eval_samples:
            total += self.estimate(self.planned_eval_samples, steps, backward=False).seconds
        return total, one

    def check_cost(self, batch: int, steps: int, backward: bool) -> None:
        """Raise :class:`QRNNError` when the plan for passes of shape [batch, steps] exceeds the
        limit (checked once per shape)."""
        key = (batch, steps, backward)
        if self.force or key in self._checked:
            return
        total, one = self.plan_cost(batch, steps, backward)
        if total > self.limit_hours * 3600:
            if backward:
                plan = f"{self.planned_steps} training steps" + (
                    " and evaluation" if self.planned_eval_samples else ""
                )
            else:
                plan = "one evaluation pass"
            raise QRNNError(
                f"--backend aer: {plan} would take about {total / 3600:.1f} h on this machine "
                f"({one.describe()}; the cost grows as T³·P per sample: prefix circuits and "
                "parameter shift); use --backend statevector (exact, same model), shorter "
                "sequences, fewer qubits/layers, a smaller batch or fewer steps, or pass --force "
                f"(limit {self.limit_hours:g} h)"
            )
        self._checked.add(key)

    def estimate(self, batch: int, steps: int, *, backward: bool = True) -> AerCost:
        """Estimated cost of a pass over B × T on this machine (calibrated on first use)."""
        broadcast = isinstance(self.gradient, BroadcastParamShiftGradient)
        return estimate_cost(
            self.spec,
            batch,
            steps,
            backward=backward,
            timing=calibrate(self.spec),
            broadcast=broadcast,
        )

    def to(self, device: str | torch.device) -> AerEstimatorEngine:
        if torch.device(device).type != "cpu":
            raise QRNNError("the aer backend runs on the CPU; use --backend statevector for GPUs")
        return self

    def __repr__(self) -> str:
        return (
            f"AerEstimatorEngine(n_qubits={self.n_qubits}, params={self.n_params}, "
            f"readouts={self.n_readouts}, gradient={type(self.gradient).__name__})"
        )
