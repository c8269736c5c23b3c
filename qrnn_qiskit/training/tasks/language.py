"""Penn Treebank language modelling (words, characters) with truncated BPTT.

``ptb-word`` / ``ptb-char``: the training text is one stream cut into ``--batch-size`` parallel
rows; step s reads window s mod W (``--bptt`` tokens per row, W windows per epoch) and predicts the
next token at every step. The recurrent state (the QRNN's ψ and readouts, an LSTM's (h, c)) is
carried from window to window and detached (truncated BPTT); it starts from the initial state at
every epoch. The carried state is part of the checkpoint, so a resumed run continues exactly.
Evaluation reads a whole split as 16 parallel rows with the state carried across windows: perplexity
(words) or bits per character. ``--no-carry`` restarts every window (training and evaluation) from
the initial state instead: a QRNN's unitary steps cannot forget, and after thousands of carried
steps its state is scrambled (see docs/results.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F

from ...data import ptb
from ...errors import QRNNError
from ...models import InputSpec, SequenceModel, detach_state
from .base import Batch, Task, build_for_task, require_statevector

if TYPE_CHECKING:
    from ..config import TrainConfig

EVAL_STREAMS = (
    16  # language-model evaluation: rows read in parallel (each starts from the initial state)
)
EVAL_BATCH = 256


def batchify(ids: np.ndarray, rows: int) -> torch.Tensor:
    """A token stream as ``rows`` contiguous rows [rows, len // rows] (the remainder is dropped)."""
    width = len(ids) // rows
    if width < 2:
        raise QRNNError(f"a stream of {len(ids)} tokens is too short for {rows} rows")
    return torch.from_numpy(
        np.ascontiguousarray(ids[: rows * width].reshape(rows, width)).astype(np.int64)
    )


class LanguageModelTask(Task):
    """Next-token prediction on PTB with truncated BPTT and state carried across windows (module
    docstring)."""

    splits = ("val", "test")

    def __init__(self, config: TrainConfig, *, name: str, level: ptb.Level) -> None:
        require_statevector(config, name)
        self.name, self.level = name, level
        self.report_metric = "ppl" if level == "word" else "bpc"
        self.val_metrics = ("loss", self.report_metric)
        corpus = ptb.load(level)
        self.symbols = corpus.symbols
        self.vocab = len(corpus.symbols)
        self.bptt = config.task.bptt
        self.horizon = self.bptt
        self.carry = config.task.carry
        self.reset_every = config.task.reset_every
        self.per_row_state = self.carry  # the carried state is one per training row
        self.batch_size = config.optim.batch_size
        self.streams = {
            "train": batchify(corpus.splits["train"], config.optim.batch_size),
            "val": batchify(corpus.splits["valid"], EVAL_STREAMS),
            "test": batchify(corpus.splits["test"], EVAL_STREAMS),
        }
        self.steps_per_epoch = (self.streams["train"].shape[1] - 1) // self.bptt
        if self.steps_per_epoch < 1:
            raise QRNNError(
                f"--bptt {self.bptt} is longer than the {self.streams['train'].shape[1]}-token "
                "training rows "
                f"(--batch-size {config.optim.batch_size}); lower one of them"
            )
        self._carry: Any = None
        self._carry_step: int | None = None  # the step whose window continues from self._carry

    # -- Task protocol
    # ------------------------------------------------------------------------------
    def build_model(self, config: TrainConfig) -> SequenceModel:
        return build_for_task(
            config,
            InputSpec(vocab=self.vocab, embed_dim=config.model.embed_dim),
            self.vocab,
            "all",
            self,
        )

    def _window(self, stream: torch.Tensor, start: int, length: int) -> Batch:
        y = stream[:, start + 1 : start + 1 + length]
        return stream[:, start : start + y.shape[1]], y

    def train_batch(self, step: int) -> Batch:
        """Window ``step mod W`` of the training rows: inputs [B, bptt] and next-token targets."""
        return self._window(
            self.streams["train"], (step % self.steps_per_epoch) * self.bptt, self.bptt
        )

    def train_loss(self, model: SequenceModel, step: int) -> torch.Tensor:
        """Loss of the window of ``step``, starting from the state the previous step carried (none
        at an epoch start, or every ``--reset-every`` windows); keeps the window's final state,
        detached, for the next step."""
        if not self._carries(step % self.steps_per_epoch):
            state = None
        elif self._carry_step == step:
            state = self._carry
        else:
            raise QRNNError(
                f"{self.name}: step {step} continues the recurrent state of step {step - 1}, "
                "which was "
                "not carried here (a checkpoint without task state?); start a new run"
            )
        x, y = self.train_batch(step)
        logits, final = model.forward_window(x, state)
        self._carry, self._carry_step = detach_state(final), step + 1
        return self.loss(logits, y)

    def _carries(self, window: int) -> bool:
        """Whether window ``window`` (of a split or an epoch) continues the previous one's state."""
        if not self.carry or window == 0:
            return False
        return not (self.reset_every and window % self.reset_every == 0)

    def batches(self, split: str) -> Iterator[Batch]:
        """The windows of ``split`` (without carried state; ``evaluate`` carries it)."""
        self.check_split(split)
        stream = self.streams[split]
        for start in range(0, stream.shape[1] - 1, self.bptt):
            yield self._window(stream, start, self.bptt)

    @torch.no_grad()
    def evaluate(self, model: SequenceModel, split: str = "val") -> dict[str, float]:
        """Loss over a whole split (``val`` or ``test``) read as 16 rows, state carried across
        windows as in training (``--no-carry``: every window starts from the initial state;
        ``--reset-every K``: every K-th)."""
        self.check_split(split)
        was_training = model.training
        model.eval()
        state, total, count = None, 0.0, 0
        stream = self.streams[split]
        for window, start in enumerate(range(0, stream.shape[1] - 1, self.bptt)):
            x, y = self._window(stream, start, self.bptt)
            logits, state = model.forward_window(x, state if self._carries(window) else None)
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
                )
            )
            count += y.numel()
        model.train(was_training)
        return self._from_loss(total / count)

    def _from_loss(self, loss: float) -> dict[str, float]:
        if self.level == "word":
            return {"loss": loss, "ppl": math.exp(min(loss, 700.0))}
        return {"loss": loss, "bpc": loss / math.log(2)}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return self._from_loss(float(self.loss(outputs, targets)))

    def describe(self, metrics: dict[str, float]) -> str:
        if self.level == "word":
            return (
                f"validation perplexity {metrics['ppl']:.2f} (loss {metrics['loss']:.4f} "
                "nats/word; "
                f"uniform over the vocabulary: {self.vocab})"
            )
        return (
            f"validation {metrics['bpc']:.4f} bits per character "
            f"(uniform over the {self.vocab} symbols: {math.log2(self.vocab):.2f})"
        )

    # -- checkpointed task state
    # --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The carried recurrent state and the step it continues into (for exact resume)."""
        return {"carry": self._carry, "carry_step": self._carry_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._carry, self._carry_step = state.get("carry"), state.get("carry_step")
