"""What every task is: the base class the trainer and reports talk to (``Task``, with real
defaults for everything optional) and model building for a task; the options tasks own
(``TaskConfig``) live in ``config.py``.

A task supplies data, the model's input/output shape, a loss and metrics; the trainer knows nothing
else about models or data. Tasks are built by the registry (``registry.py``) from a whole
``TrainConfig`` (batch size, seed and evaluation size live in its run and optimiser sections).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ...errors import QRNNError
from ...models import InputSpec, SequenceModel, build_model, count_parameters, match_hidden_size
from ...models.config import QRNNConfig
from ...models.controller import init_scale_for_length

if TYPE_CHECKING:
    from ..config import TrainConfig

Batch = tuple[Any, torch.Tensor]
# metrics that are better when higher; every other one (loss, ppl, bpc) is better when lower
HIGHER_IS_BETTER = frozenset({"accuracy", "all_position_accuracy", "bleu"})


def higher_is_better(metric: str) -> bool:
    return metric in HIGHER_IS_BETTER


def best_of(metric: str, a: float, b: float) -> float:
    """The better of two values of ``metric``."""
    return max(a, b) if higher_is_better(metric) else min(a, b)


class Task:
    """Base class of every task. Subclasses set ``name`` and implement ``build_model``,
    ``train_batch``, ``batches`` (``val``, and ``test`` where ``splits`` has it), ``loss``,
    ``metrics`` and ``describe``; the defaults below serve tasks whose model maps one input tensor
    to outputs.

    Stateful tasks override ``train_loss`` (truncated BPTT, seq2seq teacher forcing), ``evaluate``
    (carried language-model state, decoding for BLEU) and ``state_dict``/``load_state_dict`` (task
    state that checkpoints must hold for exact resume).
    """

    name: str = ""
    report_metric: str = "loss"  # the metric reports and best-model selection use
    report_also: tuple[str, ...] = ()  # metrics the report shows beside it (same evaluation)
    val_metrics: tuple[str, ...] = ("loss",)  # the names evaluate() returns (sweeps check theirs)
    splits: tuple[str, ...] = ("val",)  # evaluation splits ("test" where the task has one)
    steps_per_epoch: int | None = None  # None: data is generated (no epochs)
    horizon: int | None = None  # typical sequence length (LSTM/GRU chrono initialisation)
    chrono_default: bool = False  # whether --chrono-init is on when not given
    # whether state_dict() holds per-row state (a language model's carried recurrent state of each
    # batch row): data-parallel ranks then each checkpoint their own rows' state
    per_row_state: bool = False

    def build_model(self, config: TrainConfig) -> nn.Module:
        raise NotImplementedError

    def train_batch(self, step: int) -> Batch:
        raise NotImplementedError

    def batches(self, split: str) -> Iterator[Batch]:
        """Evaluation batches of ``split`` (one of ``splits``)."""
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def describe(self, metrics: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())

    # -- defaults ----------------------------------------------------------------------------
    def eval_batches(self) -> Iterator[Batch]:
        """The validation batches (hardware evaluations draw their inputs from them)."""
        return self.batches("val")

    def train_loss(self, model: nn.Module, step: int) -> torch.Tensor:
        """The loss of training step ``step``: ``loss(model(x), y)`` on ``train_batch(step)``."""
        x, y = self.train_batch(step)
        return self.loss(model(x), y)

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(
                f"{self.name} has no {split!r} split (it has {', '.join(self.splits)})"
            )

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str = "val") -> dict[str, float]:
        """Metrics on ``split``, averaged over its batches weighted by their size (model in eval
        mode meanwhile)."""
        self.check_split(split)
        was_training = model.training
        model.eval()
        totals: dict[str, float] = {}
        count = 0
        try:
            for x, y in self.batches(split):
                for key, value in self.metrics(model(x), y).items():
                    totals[key] = totals.get(key, 0.0) + value * len(x)
                count += len(x)
        finally:
            model.train(was_training)
        if not count:
            raise ValueError(f"{self.name}: the {split} split is empty")
        return {key: value / count for key, value in totals.items()}

    def state_dict(self) -> dict[str, Any]:
        """Task state a checkpoint must hold for an exact resume (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


def require_statevector(config: TrainConfig, name: str) -> None:
    """Refuse ``--backend aer`` for tasks that train on the statevector engine only."""
    if config.engine.backend != "statevector":
        raise QRNNError(
            f"{name} trains on the statevector engine only (drop --backend {config.engine.backend})"
        )


def build_for_task(
    config: TrainConfig, inputs: InputSpec, n_outputs: int, head: str, task: Task | None = None
) -> SequenceModel:
    """The model ``config.model.kind`` for a task; classical baselines are sized by --hidden,
    --match-params or, by default, to the parameter count of the QRNN the same flags describe."""
    kind = config.model.kind
    if kind == "mqrnn":
        _check_measured_memory(config, task)
        noise = _measured_noise(config)
        model = build_model(
            "mqrnn", inputs, n_outputs, head, qrnn=qrnn_config(config, task),
            dtype=config.torch_dtype, measured=config.measured,
            measured_noise=noise.noise if noise is not None else None,
        )  # fmt: skip
        model.core.noise_record = noise.record if noise is not None else None
        return model
    if kind == "qrnn":
        return build_model(
            "qrnn", inputs, n_outputs, head, qrnn=qrnn_config(config, task),
            dtype=config.torch_dtype,
            engine=_noise_aware(config, _engine(config), task),
        )  # fmt: skip
    hidden = config.baseline.hidden
    if hidden is None:
        target = config.baseline.match_params
        if target is None:
            target = count_parameters(
                build_model("qrnn", inputs, n_outputs, head, qrnn=config.qrnn)
            )
        hidden = match_hidden_size(
            lambda h: build_model(kind, inputs, n_outputs, head, hidden_size=h), target
        )
    return build_model(
        kind,
        inputs,
        n_outputs,
        head,
        hidden_size=hidden,
        chrono_horizon=chrono_horizon(config, task),
    )


def qrnn_config(config: TrainConfig, task: Task | None) -> QRNNConfig:
    """The run's QRNN config with a default (``None``) controller init scale resolved from the
    task's sequence length (:func:`~qrnn_qiskit.models.controller.init_scale_for_length`)."""
    qrnn = config.qrnn
    if qrnn.controller.init_scale is not None:
        return qrnn
    scale = init_scale_for_length(task.horizon if task is not None else None)
    return replace(qrnn, controller=replace(qrnn.controller, init_scale=scale))


def chrono_horizon(config: TrainConfig, task: Task | None) -> int | None:
    """The horizon of LSTM/GRU chrono initialisation for this run (``None``: off)."""
    chrono = config.baseline.chrono_init
    if chrono is None:
        chrono = task is not None and task.chrono_default
    if not chrono or config.model.kind not in ("lstm", "gru"):
        return None
    horizon = task.horizon if task is not None else None
    if horizon is None:
        raise QRNNError(f"--chrono-init needs a sequence length; {config.task.name} has none")
    return max(3, horizon)


STATEVECTOR_COPIES = 3
# the measured QRNN's autograd pass keeps about 5 tensors of its density-matrix blocks per step
# (measured: 4.3-4.9 MB per step for n = 4, 16 blocks, batch 32 in complex64)
MEASURED_TENSORS_PER_STEP = 5


def _check_measured_memory(config: TrainConfig, task: Task | None) -> None:
    """Refuse ``--model mqrnn`` runs whose autograd pass over the task's sequences (2^k blocks of
    2^n × 2^n per sample and step, kept for backward) does not fit in the available memory."""
    from ...backends.memory import available_memory_bytes, format_bytes

    n = config.qrnn.spec.n_qubits
    bits = config.measured.measurement_spec(n).bits
    steps = task.horizon if task is not None and task.horizon else 1
    itemsize = 8 if config.torch_dtype == torch.complex64 else 16
    batch = config.optim.batch_size
    need = MEASURED_TENSORS_PER_STEP * steps * batch * (1 << (2 * n + bits)) * itemsize
    have = available_memory_bytes()
    if need > have:
        raise QRNNError(
            f"--model mqrnn keeps 2^{bits} density matrices of 2^{n} × 2^{n} per sample and step "
            f"for backward: {steps} steps × batch {batch} need about {format_bytes(need)}, "
            f"{format_bytes(have)} is available; use fewer qubits, fed-forward bits, a smaller "
            "batch or shorter sequences"
        )


def _measured_noise(config: TrainConfig):
    """``--model mqrnn --train-noise BACKEND``: the backend's calibrated channels at the layout an
    evaluation of the run would pin (:mod:`~qrnn_qiskit.models.measured_noise`), or None."""
    from ...models.noise import check_measured_noise, parse_train_noise

    noise = parse_train_noise(config.engine.train_noise)
    if not noise.enabled:
        return None
    check_measured_noise(noise)
    from ...models.measured_noise import measured_device_noise

    n = config.qrnn.spec.n_qubits
    return measured_device_noise(
        noise.backend,
        config.qrnn.spec,
        config.measured.measurement_spec(n),
        optimization_level=noise.optimization_level,
        seed=noise.seed,
    )


def _noise_aware(config: TrainConfig, engine, task: Task | None):
    """``engine`` (``None``: the spec's default engine) wrapped for ``--train-noise``, its λ per
    step calibrated over the task's sequence length."""
    from ...models.noise import noisy_engine, parse_train_noise

    noise = parse_train_noise(config.engine.train_noise)
    if not noise.enabled:
        return engine
    from ...models import default_engine

    inner = engine if engine is not None else default_engine(config.qrnn.spec, config.torch_dtype)
    steps = task.horizon if task is not None and task.horizon else 100
    return noisy_engine(inner, config.qrnn.spec, noise, steps)


def _engine(config: TrainConfig):
    """The engine of ``--backend``: ``None`` (the model's default statevector engine), that engine
    on CUDA (``--device cuda``) or Aer through EstimatorQNN + TorchConnector. All refuse, before any
    simulation, specs too large for memory; Aer also refuses (at the first batch) plans estimated to
    take over an hour."""
    from ...backends.memory import check_memory

    run = config.run
    batch = max(config.optim.batch_size, min(run.eval_size, 256))
    if config.engine.backend == "statevector":
        # training holds about three state-sized buffers per sample (state, its gradient, the
        # kernels' scratch), measured at 2.8-3.1 × 2^n·16 bytes for n = 16-18
        check_memory(
            config.qrnn.spec.n_qubits,
            batch,
            what="--backend statevector",
            copies=STATEVECTOR_COPIES,
        )
        if config.engine.device == "cuda":
            from ..devices import cuda_engine

            return cuda_engine(config.qrnn.spec, config.torch_dtype)
        return None
    from ...backends.aer import AerEstimatorEngine

    check_memory(config.qrnn.spec.n_qubits, batch, what="--backend aer")
    evaluations = -(-config.optim.steps // run.eval_every) + 1
    return AerEstimatorEngine(
        config.qrnn.spec,
        planned_steps=config.optim.steps,
        planned_eval_samples=evaluations * run.eval_size,
        force=config.engine.force,
    )
