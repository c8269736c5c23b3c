"""The QRNN core trained on Aer: ``QRNNCore`` over an :class:`AerEstimatorEngine`, with a cost
guard."""

from __future__ import annotations

import torch

from ..backends.aer import AerCost, AerEstimatorEngine
from ..errors import QRNNError
from .qrnn import QRNNConfig, QRNNCore

DEFAULT_LIMIT_HOURS = 1.0


class AerQRNNCore(QRNNCore):
    """``QRNNCore`` (same controller, feedback and forward code) whose quantum half runs on Aer
    through ``EstimatorQNN`` + ``TorchConnector`` (see
    :class:`~qrnn_qiskit.backends.aer.AerEstimatorEngine`).

    Aer training costs O(T³·P) simulated step circuits per sample (prefix circuits and parameter
    shift), so before the first pass of a new shape [B, T] it estimates the whole plan:
    ``planned_steps`` forward+backward passes plus forward passes over ``planned_eval_samples``
    samples, timed on this machine, and raises a :class:`QRNNError` with the estimate when it
    exceeds ``limit_hours`` (unless ``force``). Parameters and ``state_dict`` equal the statevector
    core's: checkpoints move between them.
    """

    def __init__(
        self,
        input_size: int,
        config: QRNNConfig,
        engine: AerEstimatorEngine | None = None,
        *,
        planned_steps: int = 1,
        planned_eval_samples: int = 0,
        force: bool = False,
        limit_hours: float = DEFAULT_LIMIT_HOURS,
    ) -> None:
        super().__init__(input_size, config, engine or AerEstimatorEngine(config.spec))
        self.planned_steps = max(1, int(planned_steps))
        self.planned_eval_samples = max(0, int(planned_eval_samples))
        self.force = force
        self.limit_hours = limit_hours
        self._checked: set[tuple[int, int, bool]] = set()

    def plan_cost(self, batch: int, steps: int, backward: bool) -> tuple[float, AerCost]:
        """(estimated seconds for the whole plan, cost of one pass) for passes of shape [batch,
        steps]."""
        engine: AerEstimatorEngine = self.engine  # type: ignore[assignment]
        one = engine.estimate(batch, steps, backward=backward)
        if not backward:
            return one.seconds, one
        total = self.planned_steps * one.seconds
        if self.planned_eval_samples:
            total += engine.estimate(self.planned_eval_samples, steps, backward=False).seconds
        return total, one

    def check_cost(self, batch: int, steps: int, backward: bool) -> None:
        """Raise :class:`QRNNError` when the plan for passes of shape [batch, steps] exceeds the
        limit."""
        key = (batch, steps, backward)
        if self.force or key in self._checked:
            return
        total, one = self.plan_cost(batch, steps, backward)
        if total > self.limit_hours * 3600:
            plan = (
                f"{self.planned_steps} training steps"
                + (" and evaluation" if self.planned_eval_samples else "")
                if backward
                else "one evaluation pass"
            )
            raise QRNNError(
                f"--backend aer: {plan} would take about {total / 3600:.1f} h on this machine "
                f"({one.describe()}; the cost grows as T³·P per sample: prefix circuits and "
                "parameter shift); "
                "use --backend statevector (exact, same model), shorter sequences, fewer "
                "qubits/layers, "
                f"a smaller batch or fewer steps, or pass --force (limit {self.limit_hours:g} h)"
            )
        self._checked.add(key)

    def forward(self, x: torch.Tensor, state=None):
        if x.dim() == 3:
            self.check_cost(x.shape[0], x.shape[1], self.training and torch.is_grad_enabled())
        return super().forward(x, state)
