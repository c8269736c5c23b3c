"""Task registry: each task supplies data, the model's input/output shape, a loss and metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch.nn import functional as F

from ..data.copying import N_CLASSES, N_RECALL, VOCAB, copying_batch, memoryless_baseline
from ..models import InputSpec, SequenceModel, build_model, count_parameters, match_hidden_size

if TYPE_CHECKING:
    from .config import TrainConfig

Batch = tuple[torch.Tensor, torch.Tensor]


class Task(Protocol):
    """What the trainer needs from a task; it knows nothing else about models or data.

    Optional methods, used when present (see tasks_text.py): ``train_loss(model, step)`` replaces
    ``loss(model(x), y)`` on ``train_batch(step)`` (truncated BPTT carrying state between steps,
    seq2seq teacher forcing); ``evaluate(model, split)`` replaces the ``eval_batches``/``metrics``
    average; ``state_dict()``/``load_state_dict(d)`` put task state (carried recurrent state,
    vocabularies) into checkpoints so that resume stays exact.
    """

    name: str

    def build_model(self, config: TrainConfig) -> SequenceModel: ...

    def train_batch(self, step: int) -> Batch: ...

    def eval_batches(self) -> Iterator[Batch]: ...

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]: ...

    def describe(self, metrics: dict[str, float]) -> str: ...


def build_for_task(
    config: TrainConfig, inputs: InputSpec, n_outputs: int, head: str
) -> SequenceModel:
    """The model ``config.model`` for a task; classical baselines are sized by --hidden,
    --match-params or, by default, to the parameter count of the QRNN that the same flags
    describe."""
    if config.model == "qrnn" and config.backend == "aer":
        return _build_aer_qrnn(config, inputs, n_outputs, head)
    if config.model == "qrnn":
        return build_model(
            "qrnn", inputs, n_outputs, head, qrnn=config.qrnn, dtype=config.torch_dtype
        )
    hidden = config.hidden
    if hidden is None:
        target = config.match_params
        if target is None:
            target = count_parameters(
                build_model("qrnn", inputs, n_outputs, head, qrnn=config.qrnn)
            )
        hidden = match_hidden_size(
            lambda h: build_model(config.model, inputs, n_outputs, head, hidden_size=h), target
        )
    return build_model(config.model, inputs, n_outputs, head, hidden_size=hidden)


def _build_aer_qrnn(
    config: TrainConfig, inputs: InputSpec, n_outputs: int, head: str
) -> SequenceModel:
    """The same QRNN with its quantum half on Aer (EstimatorQNN + TorchConnector); refuses, before
    any simulation, specs too large for memory and (at the first batch) plans estimated to take over
    an hour."""
    from ..backends.aer import check_memory
    from ..models.aer_core import AerQRNNCore

    check_memory(
        config.qubits, max(config.batch_size, min(config.eval_size, 256)), what="--backend aer"
    )
    evaluations = -(-config.steps // config.eval_every) + 1
    core = AerQRNNCore(
        inputs.embed_dim,
        config.qrnn,
        planned_steps=config.steps,
        planned_eval_samples=evaluations * config.eval_size,
        force=config.force,
    )
    return SequenceModel(inputs, core, n_outputs, head)


class CopyingTask:
    """Copying memory (DATA.md): batches are a pure function of (seed, step), so runs resume
    exactly."""

    name = "copying"

    def __init__(self, config: TrainConfig) -> None:
        self.delay = config.delay
        self.batch_size = config.batch_size
        self.seed = config.seed
        self.eval_size = config.eval_size
        self.baseline = memoryless_baseline(self.delay)

    def build_model(self, config: TrainConfig) -> SequenceModel:
        return build_for_task(
            config, InputSpec(vocab=VOCAB, embed_dim=config.embed_dim), N_CLASSES, "all"
        )

    def train_batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, 1, step])
        x, y = copying_batch(rng, self.batch_size, self.delay)
        return torch.from_numpy(x), torch.from_numpy(y)

    def eval_batches(self) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, 2])
        remaining = self.eval_size
        while remaining > 0:
            size = min(remaining, 256)
            x, y = copying_batch(rng, size, self.delay)
            remaining -= size
            yield torch.from_numpy(x), torch.from_numpy(y)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        recalled = outputs[:, -N_RECALL:].argmax(-1) == targets[:, -N_RECALL:]
        return {
            "loss": float(self.loss(outputs, targets)),
            "accuracy": float(recalled.float().mean()),
        }

    def describe(self, metrics: dict[str, float]) -> str:
        return (
            f"recalled-symbol accuracy {metrics['accuracy']:.2%} (chance 12.50%), "
            f"loss {metrics['loss']:.4f} vs memoryless baseline {self.baseline:.4f} "
            f"({metrics['loss'] / self.baseline:.2f}× baseline)"
        )


TASKS: dict[str, Callable[[TrainConfig], Task]] = {"copying": CopyingTask}

# the paper's tasks on real datasets (smnist, smnist-rows, pmnist, imdb); imported here, after the
# names tasks_paper needs from this module exist, so that every user of TASKS sees them
from .tasks_paper import PAPER_TASKS  # noqa: E402

TASKS.update(PAPER_TASKS)

# Penn Treebank language modelling (ptb-word, ptb-char) and German→English translation (mt-de-en)
from .tasks_text import TEXT_TASKS  # noqa: E402

TASKS.update(TEXT_TASKS)


def make_task(config: TrainConfig) -> Task:
    return TASKS[config.task](config)
