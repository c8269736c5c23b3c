"""Data-parallel training under ``torchrun``: one process per rank, each training on a shard of
every batch, the ranks kept in lockstep by averaging gradients in one all-reduce per step.

``torchrun --nproc-per-node K -m qrnn_qiskit.cli -- train …`` runs the same ``qrnn train`` command
in K processes (the ``--`` keeps torchrun's parser off ``train``'s options). :func:`launch` reads
torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``),
refuses a ``--batch-size`` that does not divide across the ranks and joins the process group (gloo
on CPUs, NCCL when the engine runs on CUDA). The trainer is handed the resulting :class:`World`;
a plain process gets :data:`SINGLE`, whose every method is the identity, so the training loop has
one code path.

What each rank does (``Trainer`` calls these):

* **batches**: ``--batch-size`` is the *global* batch. :meth:`World.shard` makes the task's
  ``train_batch(step)`` return rank r's contiguous rows ``[r·B/K, (r+1)·B/K)`` of the batch every
  rank computes identically (batches are pure functions of the seed and the step). A task's own
  ``train_loss`` (truncated BPTT, teacher forcing) reads its batch through ``train_batch``, so
  sharding that one method shards every task; a language model's carried state is per row, hence
  per rank.
* **gradients**: :meth:`World.reduce_gradients` sums n_r/N · ∂L_r/∂θ (n_r rows of this rank, N of
  the batch) and n_r/N · L_r over the ranks in one flat all-reduce: for a loss that is a mean over
  rows this *is* the single-process gradient and loss of the whole batch (an epoch's short last
  batch included: its shards may be uneven, the weights keep the mean exact; a rank left without a
  row computes a dummy row with weight 0). mt-de-en's token-mean loss is averaged per shard by rows
  (its shards hold different token counts), which is close to, not equal to, the single-process
  loss. Clipping then sees the same global gradient on every rank.
* **evaluation, callbacks, logs**: rank 0 alone evaluates (on the whole validation set, so
  metrics are the global ones), runs the callbacks, writes the run directory and broadcasts what
  every rank must agree on (metrics, whether to stop). Elapsed time is averaged across ranks each
  step so ``--max-minutes`` stops every rank at the same step.
* **checkpoints**: rank 0 writes one checkpoint; the per-rank parts of the state (each rank's
  torch RNG, and task state that is per row, ``Task.per_row_state``) are gathered into it, so a
  resume with the same number of ranks continues exactly. Without per-row task state a checkpoint
  resumes with any number of ranks (dropout's random streams then restart).

Why not ``DistributedDataParallel``'s wrapper: tasks call model methods other than ``forward``
(``forward_window``, seq2seq teacher forcing and decoding), which the wrapper does not intercept, so
its gradient hooks would not fire. The models here are small (10⁴–10⁶ parameters): one flat
all-reduce after the backward costs less than DDP's bucketing would save.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..errors import QRNNError

if TYPE_CHECKING:
    from .config import TrainConfig
    from .tasks import Task

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
RNG_KEY = 7  # torch seed of rank r: a pure function of (--seed, 7, r)


class SingleProcess:
    """One process: no shards, no communication (the default of every trainer)."""

    rank = 0
    world_size = 1
    is_writer = True

    def shard(self, task: Task) -> None:
        """Make ``task.train_batch`` return this rank's rows (nothing to do here)."""

    def seed(self, seed: int) -> None:
        """Give this rank its own torch random stream (dropout); one process keeps ``seed``'s."""

    def broadcast_parameters(self, model: nn.Module) -> None:
        """Start every rank from rank 0's parameters."""

    def reduce_gradients(self, model: nn.Module, loss: torch.Tensor) -> float:
        """Average the gradients of ``model`` and the loss over the ranks; returns the global
        loss."""
        return loss.item()

    def agree(self, value: float) -> float:
        """The mean of ``value`` over the ranks (the same number on every rank)."""
        return value

    def from_writer(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank."""
        return value

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` (a list on every rank), or None in one process."""
        return None

    def barrier(self) -> None:
        """Wait until every rank gets here."""

    def rank_state(self, state: dict[str, Any], per_row: bool) -> tuple[Any, Any]:
        """(task state, torch RNG state) of this rank in a checkpoint's ``state``: its own entry
        of ``state["ranks"]`` when the checkpoint was written by as many ranks, else rank 0's
        (the RNG then stays this rank's fresh stream when there are several ranks). Task state
        that is per row (a language model's carried state of this rank's rows) cannot move to
        another number of ranks: a one-line error."""
        ranks = state.get("ranks")
        written = len(ranks) if isinstance(ranks, list) else 1
        if written == self.world_size:
            if ranks is None:
                return state.get("task", {}), state.get("torch_rng")
            own = ranks[self.rank]
            return (own["task"] if per_row else state.get("task", {})), own["torch_rng"]
        if per_row:
            launch = (
                f"torchrun --nproc-per-node {written} -m qrnn_qiskit.cli -- train"
                if written > 1
                else "one process (qrnn train)"
            )
            raise QRNNError(
                f"this checkpoint carries per-row task state (the recurrent state of each rank's "
                f"rows) of {written} rank(s); resume it with {launch}, not {self.world_size}"
            )
        rng = state.get("torch_rng") if self.world_size == 1 else None
        return state.get("task", {}), rng


SINGLE = SingleProcess()


class ProcessGroup(SingleProcess):
    """Rank ``rank`` of ``world_size`` in the default ``torch.distributed`` process group."""

    def __init__(self, rank: int, world_size: int, device: torch.device) -> None:
        self.rank = rank
        self.world_size = world_size
        self.is_writer = rank == 0
        self.device = device  # where collectives' tensors live (the GPU for NCCL)
        self._share: float | None = None  # this rank's n_r / N of the last training batch

    def __repr__(self) -> str:
        return f"ProcessGroup(rank={self.rank}, world_size={self.world_size})"

    # -- batches ----------------------------------------------------------------------------------
    def shard(self, task: Task) -> None:
        full = task.train_batch

        def train_batch(step: int):
            batch = full(step)
            total = _rows(batch)
            if total < 1:
                raise QRNNError(f"{task.name}: cannot shard a training batch without rows")
            lo = self.rank * total // self.world_size
            hi = (self.rank + 1) * total // self.world_size
            self._share = (hi - lo) / total
            if hi == lo:  # fewer rows than ranks: a dummy row that the weight 0 cancels
                lo, hi = 0, 1
            return _slice(batch, lo, hi)

        task.train_batch = train_batch  # the instance's own method, shadowed for this process

    def seed(self, seed: int) -> None:
        state = np.random.SeedSequence([seed, RNG_KEY, self.rank]).generate_state(2)
        torch.manual_seed(int(state[0]) << 32 | int(state[1]))

    # -- collectives ------------------------------------------------------------------------------
    def broadcast_parameters(self, model: nn.Module) -> None:
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in list(model.parameters()) + list(model.buffers()):
                moved = tensor.detach().to(self.device)
                dist.broadcast(moved, 0)
                tensor.copy_(moved.to(tensor.device))

    def reduce_gradients(self, model: nn.Module, loss: torch.Tensor) -> float:
        import torch.distributed as dist

        share = self._share if self._share is not None else 1.0 / self.world_size
        self._share = None
        params = [p for p in model.parameters() if p.requires_grad]
        parts = [_real(p.grad if p.grad is not None else torch.zeros_like(p)) for p in params]
        parts.append(loss.detach().reshape(1))
        flat = torch.cat([part.reshape(-1).to(self.device, torch.float64) for part in parts])
        flat.mul_(share)
        dist.all_reduce(flat)
        offset = 0
        for p, part in zip(params, parts):
            chunk = flat[offset : offset + part.numel()].view(part.shape).to(p.device)
            offset += part.numel()
            grad = torch.view_as_complex(chunk.contiguous()) if p.is_complex() else chunk
            p.grad = grad.to(p.dtype)
        return float(flat[-1])

    def agree(self, value: float) -> float:
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def from_writer(self, value: Any) -> Any:
        import torch.distributed as dist

        box = [value if self.is_writer else None]
        dist.broadcast_object_list(box, 0, device=self._object_device())
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, _to_cpu(value))
        return out

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index or 0])
        else:
            dist.barrier()

    def _object_device(self) -> torch.device | None:
        return self.device if self.device.type == "cuda" else None


World = SingleProcess  # the interface; ProcessGroup is the multi-process one


# ---------------------------------------------------------------------------------- batches
def _rows(batch: Any) -> int:
    """Rows of a batch: the first dimension of its first tensor (batches are (inputs, targets),
    inputs a tensor or a tuple of them)."""
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return int(batch.shape[0])
    if isinstance(batch, (tuple, list)):
        for part in batch:
            rows = _rows(part)
            if rows >= 0:
                return rows
    return -1


def _slice(batch: Any, lo: int, hi: int) -> Any:
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return batch[lo:hi]
    if isinstance(batch, (tuple, list)):
        return type(batch)(_slice(part, lo, hi) for part in batch)
    return batch


def _real(tensor: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor


def _to_cpu(value: Any) -> Any:
    """``value`` with every tensor moved to the CPU (object collectives pickle them)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_to_cpu(v) for v in value)
    return value


# ---------------------------------------------------------------------------------- launching
def torchrun_world_size(environ: dict[str, str] | None = None) -> int:
    """The number of ranks torchrun started (1 outside torchrun)."""
    env = os.environ if environ is None else environ
    try:
        return int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        raise QRNNError(f"WORLD_SIZE={env['WORLD_SIZE']!r} is not a number of ranks") from None


def check_batch(config: TrainConfig, world_size: int) -> None:
    """Refuse a global batch that does not split into equal shards."""
    batch = config.optim.batch_size
    if batch % world_size:
        lower = batch - batch % world_size
        raise QRNNError(
            f"--batch-size {batch} does not divide across {world_size} ranks (every rank trains "
            f"on batch-size / ranks rows): use a multiple of {world_size} such as "
            f"{max(lower, world_size)} or {lower + world_size}"
        )


def _device(config: TrainConfig, local_rank: int) -> torch.device:
    """Where this rank's collectives run: its GPU when the engine runs on CUDA, else the CPU."""
    if config.engine.device != "cuda":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise QRNNError("--device cuda: this machine has no CUDA device (torch sees none)")
    if local_rank >= torch.cuda.device_count():
        raise QRNNError(
            f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); start at "
            f"most {torch.cuda.device_count()} processes per node"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@contextlib.contextmanager
def launch(config: TrainConfig, *, timeout_minutes: float = 30.0) -> Iterator[SingleProcess]:
    """The :class:`World` of this process: :data:`SINGLE` outside torchrun; under torchrun with
    more than one rank, this rank of a process group joined here (and left on exit). A process
    group that is already initialised (a caller's own) is used as it is and left alone."""
    import torch.distributed as dist

    world_size = torchrun_world_size()
    if world_size <= 1:
        yield SINGLE
        return
    check_batch(config, world_size)
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise QRNNError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} is not set: start data-parallel "
            "training with torchrun --nproc-per-node K -m qrnn_qiskit.cli -- train …"
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = _device(config, local_rank)
    owner = not dist.is_initialized()
    if owner:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes),
        )
    try:
        yield ProcessGroup(rank, world_size, device)
    finally:
        if owner:
            dist.destroy_process_group()
