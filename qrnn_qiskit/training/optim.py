"""The optimiser and its learning-rate schedule (both pure functions of the config and the step, so
a resumed run continues them exactly)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..models.controller import Controller
from .config import OptimConfig


def angle_layers(model: nn.Module) -> list[nn.Linear]:
    """The last layer of every QRNN controller in ``model`` (the layers that write the angles)."""
    return [module.out for module in model.modules() if isinstance(module, Controller)]


def param_groups(model: nn.Module, optim: OptimConfig) -> list[dict[str, Any]]:
    """One group of every parameter, or — with ``angle_lr`` ≠ 1 and a QRNN in the model — the
    angle layers' parameters in a second group whose learning rate is ``angle_lr`` × the rest's
    (each group's ``lr_mult``)."""
    angle = [p for layer in angle_layers(model) for p in layer.parameters()]
    if optim.angle_lr == 1.0 or not angle:
        return [{"params": list(model.parameters()), "lr_mult": 1.0}]
    ids = {id(p) for p in angle}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": rest, "lr_mult": 1.0},
        {"params": angle, "lr_mult": optim.angle_lr, "lr": optim.lr * optim.angle_lr},
    ]


def make_optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """Adam (``--weight-decay 0``, the behaviour before the option existed, so old checkpoints'
    optimiser states resume unchanged) or AdamW with decoupled weight decay, over
    :func:`param_groups`."""
    groups = param_groups(model, optim)
    if optim.weight_decay == 0:
        return torch.optim.Adam(groups, lr=optim.lr)
    return torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)


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
    """Every group's learning rate to ``lr`` × its ``lr_mult``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
