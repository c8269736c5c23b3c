"""The reversible tape: what a sequence of engine steps keeps for its hand-written backward.

Unitary steps are reversible, so backward needs no stored states: from ψ_t it recomputes
ψ_{t-1} = U(θ_t)† ψ_t while it walks the sequence in reverse. The tape keeps the newest state, each
step's angles (small) and a checkpoint every ``checkpoint_every`` steps: checkpoints reset round-off
drift, and a backward that starts before the last step (a loss that ignores the sequence's end)
recomputes forward from the nearest checkpoint. Memory is therefore independent of T.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .engine import StatevectorEngine


class ReversibleTape:
    """The newest state of a sequence of ``step_readouts`` calls, walked backwards during
    backward."""

    def __init__(self, checkpoint_every: int = 64) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.checkpoint_every = checkpoint_every
        self.length = 0
        self._cursor = -1
        self._current: torch.Tensor | None = None
        self._checkpoints: dict[int, torch.Tensor] = {}
        self._angles: list[torch.Tensor] = []

    def push(self, state: torch.Tensor, angles: torch.Tensor) -> int:
        """Record the output ``state`` of a step with ``angles``; returns the step's position."""
        position = self.length
        self.length += 1
        self._current, self._cursor = state, position
        self._angles.append(angles)
        if position % self.checkpoint_every == 0:
            self._checkpoints[position] = state
        return position

    def state_at(self, position: int, engine: StatevectorEngine) -> torch.Tensor:
        """ψ after step ``position`` (recomputed with ``engine.apply`` from a checkpoint if
        needed)."""
        if position > self._cursor or self._current is None:
            raise RuntimeError(
                "reversible backward must run once over the sequence in reverse order "
                f"(step {position} was asked for after step {self._cursor + 1}); "
                "use engine.step for other graphs"
            )
        if position in self._checkpoints:
            return self._checkpoints[position]
        if position == self._cursor:
            return self._current
        start = position - position % self.checkpoint_every
        state = self._checkpoints[start]
        for t in range(start + 1, position + 1):
            state, _ = engine.apply(state, self._angles[t])
        return state

    def angles(self, position: int) -> torch.Tensor:
        """The angles of step ``position``."""
        return self._angles[position]

    def rewind(self, position: int, previous: torch.Tensor) -> None:
        """Backward has walked step ``position`` back to its input ``previous``."""
        self._current, self._cursor = previous, position - 1
