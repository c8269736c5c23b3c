"""The optimiser and its learning-rate schedule (both pure functions of the config and the step, so
a resumed run continues them exactly)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimConfig


def make_optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """Adam (``--weight-decay 0``, the behaviour before the option existed, so old checkpoints'
    optimiser states resume unchanged) or AdamW with decoupled weight decay."""
    if optim.weight_decay == 0:
        return torch.optim.Adam(model.parameters(), lr=optim.lr)
    return torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)


def learning_rate(optim: OptimConfig, step: int) -> float:
    """The learning rate of training step ``step`` (0-based): linear warm-up over ``warmup`` steps,
    then constant, cosine or linear decay to 0 at ``steps``. A pure function of the step, so a
    resumed run continues the schedule exactly."""
    if step < optim.warmup:
        return optim.lr * (step + 1) / optim.warmup
    if optim.schedule == "constant":
        return optim.lr
    progress = (step - optim.warmup) / max(1, optim.steps - optim.warmup)
    progress = min(max(progress, 0.0), 1.0)
    if optim.schedule == "cosine":
        return optim.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return optim.lr * (1.0 - progress)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
