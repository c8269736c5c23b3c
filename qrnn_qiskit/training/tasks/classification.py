"""The paper's classification tasks on real data: sequential MNIST (pixels or rows), permuted MNIST,
IMDB.

Every task reads only the dataset cache (``qrnn data fetch NAME``), carves a fixed validation split
from the official training set (the same for every seed and model, so runs compare), and serves
training batches by epochs: step s belongs to epoch s // steps_per_epoch, whose order is a seeded
permutation of the training examples, so a batch is a pure function of (config, step) and runs
resume exactly. ``eval_batches`` is (the first ``--eval-size`` examples of) the validation split;
``test_batches`` is the official test split.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from ...data import imdb, mnist
from ...data.splits import carve_validation, stable_permutation
from ...errors import QRNNError
from ...models import InputSpec, SequenceModel
from .base import Batch, Task, build_for_task

if TYPE_CHECKING:
    from ..config import TrainConfig

EVAL_BATCH = 256
SPLIT_KEY = (20251029, 1)  # validation carve: fixed, independent of --seed
EPOCH_KEY = 2
PERMUTATION_KEY = 3
BUCKET_BATCHES = (
    50  # IMDB: sort each run of 50 batches by length (less padding), then shuffle those batches
)


class ClassificationTask(Task):
    """Shared machinery: validation carve, epoch orders, batching, cross-entropy and accuracy.

    Subclasses set ``name`` and ``n_classes``, fill ``self.labels`` / ``self.index`` for the splits
    ``train``, ``val``, ``test`` in ``_load``, and implement ``_inputs(split, rows)`` and
    ``inputs``.
    """

    name = "classification"
    n_classes = 2
    report_metric = "accuracy"
    val_metrics = ("loss", "accuracy")
    splits = ("val", "test")

    def __init__(self, config: TrainConfig) -> None:
        self.batch_size = config.optim.batch_size
        self.seed = config.run.seed
        self.eval_size = config.run.eval_size
        self.index: dict[str, np.ndarray] = {}
        self.labels: dict[str, np.ndarray] = {}
        self._load(config)
        self.steps_per_epoch = math.ceil(len(self.index["train"]) / self.batch_size)
        self._epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    # -- data -------------------------------------------------------------------------------------
    def _load(self, config: TrainConfig) -> None:
        raise NotImplementedError

    def _inputs(self, split: str, rows: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def inputs(self, config: TrainConfig) -> InputSpec:
        raise NotImplementedError

    def _carve(self, indices: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        try:
            return carve_validation(indices, fraction, SPLIT_KEY)
        except ValueError as exc:
            raise QRNNError(f"{self.name}: --val-fraction {fraction}: {exc}") from None

    def sizes(self) -> dict[str, int]:
        """Examples per split."""
        return {split: len(rows) for split, rows in self.index.items()}

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Positions into the training split, in the order epoch ``epoch`` visits them."""
        return stable_permutation(len(self.index["train"]), (self.seed, EPOCH_KEY, epoch))

    def _batch(self, split: str, rows: np.ndarray) -> Batch:
        return self._inputs(split, rows), torch.from_numpy(
            self.labels[split][rows].astype(np.int64)
        )

    # -- Task interface
    # --------------------------------------------------------------------------------
    def build_model(self, config: TrainConfig) -> SequenceModel:
        return build_for_task(config, self.inputs(config), self.n_classes, "last", self)

    def train_batch(self, step: int) -> Batch:
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._order, self._epoch = self.epoch_order(epoch), epoch
        rows = self._order[position * self.batch_size : (position + 1) * self.batch_size]
        return self._batch("train", rows)

    def _batches(self, split: str, limit: int) -> Iterator[Batch]:
        rows = self._eval_order(split)[:limit]
        for start in range(0, len(rows), EVAL_BATCH):
            yield self._batch(split, rows[start : start + EVAL_BATCH])

    def _eval_order(self, split: str) -> np.ndarray:
        return np.arange(len(self.index[split]))

    def batches(self, split: str) -> Iterator[Batch]:
        """The validation split (its first ``--eval-size`` examples; the carve is already random)
        or the official test split."""
        self.check_split(split)
        return self._batches(split, self.eval_size if split == "val" else len(self.index[split]))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {
            "loss": float(self.loss(outputs, targets)),
            "accuracy": float((outputs.argmax(-1) == targets).float().mean()),
        }

    def describe(self, metrics: dict[str, float]) -> str:
        return (
            f"validation accuracy {metrics['accuracy']:.2%} (chance {1 / self.n_classes:.0%}), "
            f"loss {metrics['loss']:.4f}"
        )


class MNISTTask(ClassificationTask):
    """Sequential MNIST: ``pixels`` (T=784, 1 feature), ``rows`` (T=28, 28 features), optionally
    with one fixed pixel permutation (pMNIST, seeded by ``--permutation-seed``, which config.json
    records)."""

    n_classes = mnist.N_CLASSES

    def __init__(
        self, config: TrainConfig, *, name: str, mode: str, permuted: bool = False
    ) -> None:
        self.name, self.mode, self.permuted = name, mode, permuted
        self.horizon = mnist.SIDE if mode == "rows" else mnist.SIDE * mnist.SIDE
        # pixel by pixel the label depends on strokes hundreds of steps back: chrono
        # initialisation for LSTM/GRU; 28 rows are short enough for PyTorch's default
        self.chrono_default = mode == "pixels"
        side = mnist.SIDE
        self.permutation = (
            stable_permutation(side * side, (config.task.permutation_seed, PERMUTATION_KEY))
            if permuted
            else None
        )
        super().__init__(config)

    def _load(self, config: TrainConfig) -> None:
        data = mnist.load()
        train, val = self._carve(np.arange(len(data.train_labels)), config.task.val_fraction)
        self._images = {
            "train": data.train_images,
            "val": data.train_images,
            "test": data.test_images,
        }
        self.index = {"train": train, "val": val, "test": np.arange(len(data.test_labels))}
        self.labels = {
            "train": data.train_labels[train],
            "val": data.train_labels[val],
            "test": data.test_labels,
        }

    def inputs(self, config: TrainConfig) -> InputSpec:
        return InputSpec(
            features=mnist.SIDE if self.mode == "rows" else 1, embed_dim=config.model.embed_dim
        )

    def _inputs(self, split: str, rows: np.ndarray) -> torch.Tensor:
        images = mnist.normalize(self._images[split][self.index[split][rows]])
        if self.mode == "rows":
            return torch.from_numpy(images)  # [B, 28, 28]: row t is step t
        pixels = images.reshape(len(rows), -1)
        if self.permutation is not None:
            pixels = pixels[:, self.permutation]
        return torch.from_numpy(np.ascontiguousarray(pixels)[:, :, None])


class IMDBTask(ClassificationTask):
    """IMDB sentiment: word ids (vocabulary from the training part of the carve, ``--vocab-size``
    ids with padding 0 and unknown 1), the last ``--max-len`` words of each review, padded at the
    end; the model reads each review's last real step. Batches are cut to their longest review."""

    name = "imdb"
    n_classes = 2

    chrono_default = True  # sentiment words sit up to --max-len (200) steps before the read-out

    def __init__(self, config: TrainConfig) -> None:
        self.horizon = config.task.max_len
        super().__init__(config)

    def _load(self, config: TrainConfig) -> None:
        data = imdb.load()
        train, val = self._carve(np.flatnonzero(data.split == imdb.TRAIN), config.task.val_fraction)
        test = np.flatnonzero(data.split == imdb.TEST)
        self.vocabulary = imdb.build_vocabulary(data, train, config.task.vocab_size)
        self.index, self._ids, self._lengths = {}, {}, {}
        for split, reviews in (("train", train), ("val", val), ("test", test)):
            self._ids[split], self._lengths[split] = imdb.encode(
                data, reviews, self.vocabulary, config.task.max_len
            )
            self.index[split] = reviews
            self.labels[split] = data.labels[reviews]

    def inputs(self, config: TrainConfig) -> InputSpec:
        return InputSpec(
            vocab=config.task.vocab_size, embed_dim=config.model.embed_dim, pad_id=imdb.PAD
        )

    def _inputs(self, split: str, rows: np.ndarray) -> torch.Tensor:
        longest = int(self._lengths[split][rows].max())
        return torch.from_numpy(self._ids[split][rows, :longest])

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Shuffled, then bucketed: every run of 50 batches is sorted by length and cut into
        batches, and all batches are shuffled again (less padding, still a seeded function of the
        epoch)."""
        order = super().epoch_order(epoch)
        chunk = BUCKET_BATCHES * self.batch_size
        lengths = self._lengths["train"]
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        short = [
            b for b in batches if len(b) < self.batch_size
        ]  # at most one per chunk; visited last
        shuffled = stable_permutation(len(full), (self.seed, EPOCH_KEY, epoch, 1))
        return np.concatenate([full[i] for i in shuffled] + short) if batches else order

    def _eval_order(self, split: str) -> np.ndarray:
        # evaluation metrics do not depend on order: sort by length so batches carry little padding
        order = np.arange(len(self.index[split]))
        if split == "val":  # keep the (random) first --eval-size examples, then sort them
            order = order[: self.eval_size]
        return order[np.argsort(self._lengths[split][order], kind="stable")]
