"""Run configuration: one frozen, validated dataclass that is saved with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from ..circuits import ENTANGLERS, MAX_QUBITS, READOUT_SETS, QRNNSpec
from ..errors import QRNNError
from ..models import ACTIVATIONS, ANGLE_MAPS, MODELS, ControllerConfig, QRNNConfig
from ..models.seq2seq import ATTENTION_SCORES

DTYPES = {"complex64": torch.complex64, "complex128": torch.complex128}

# fields that may change when a run is resumed (how long / how it reports), all others must match
# "backend"/"force" too: the statevector and aer backends compute the same model (identical
# state_dicts)
RESUMABLE_FIELDS = ("steps", "max_minutes", "eval_every", "progress", "threads", "backend", "force")
BACKENDS: tuple[str, ...] = ("statevector", "aer")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. Defaults train the copying task with an 8-qubit
    QRNN."""

    task: str = "copying"
    model: str = "qrnn"
    # task options
    delay: int = 20
    val_fraction: float = 0.1  # smnist/pmnist/imdb: validation carved from the training split
    permutation_seed: int = 0  # pmnist: seed of the fixed pixel permutation
    vocab_size: int = 10000  # imdb: word ids incl. padding and unknown
    max_len: int = 200  # imdb: keep the last max_len words of each review
    bptt: int = (
        35  # ptb-word/ptb-char: truncated-BPTT window (state carried across windows, detached)
    )
    # ptb-word/ptb-char: carry the recurrent state across windows (False: restart each window)
    carry: bool = True
    attention: str = "additive"  # mt-de-en: attention score, additive or dot
    beam_size: int = 5  # mt-de-en: beam width for test BLEU and `qrnn translate`
    # QRNN
    qubits: int = 8
    layers: int = 2
    entangler: str = "cx_ring"
    readouts: str = "xyz"
    width: int = 128
    depth: int = 1
    activation: str = "gelu"
    dropout: float = 0.0
    angle_map: str = "identity"
    init_scale: float = 1.0
    feedback: bool = True
    dtype: str = "complex64"
    # classical baselines: hidden size (None: matched to the QRNN these flags describe)
    hidden: int | None = None
    match_params: int | None = None
    # shared
    embed_dim: int = 16
    # optimisation
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    clip: float = 1.0
    seed: int = 0
    eval_every: int = 100
    eval_size: int = 256
    max_minutes: float = 0.0  # 0: no time limit
    threads: int = 0  # 0: torch default
    progress: bool = True
    # where the QRNN's quantum half runs: the torch engine, or Aer through EstimatorQNN +
    # TorchConnector
    backend: str = "statevector"
    force: bool = False  # run aer configurations estimated to take longer than an hour

    def __post_init__(self) -> None:
        from .tasks import TASKS

        def check(ok: bool, message: str) -> None:
            if not ok:
                raise QRNNError(message)

        check(self.task in TASKS, f"unknown task {self.task!r}; choose one of: {', '.join(TASKS)}")
        check(
            self.model in MODELS,
            f"unknown model {self.model!r}; choose one of: {', '.join(MODELS)}",
        )
        check(self.delay >= 1, f"--delay must be >= 1, got {self.delay}")
        check(
            0.0 < self.val_fraction < 1.0,
            f"--val-fraction must be in (0, 1), got {self.val_fraction}",
        )
        check(
            self.permutation_seed >= 0,
            f"--permutation-seed must be >= 0, got {self.permutation_seed}",
        )
        check(
            self.vocab_size >= 3,
            f"--vocab-size must be >= 3 (padding, unknown, one word), got {self.vocab_size}",
        )
        check(self.max_len >= 1, f"--max-len must be >= 1, got {self.max_len}")
        check(self.bptt >= 1, f"--bptt must be >= 1, got {self.bptt}")
        check(
            self.attention in ATTENTION_SCORES,
            f"unknown attention {self.attention!r}; choose one of: {', '.join(ATTENTION_SCORES)}",
        )
        check(self.beam_size >= 1, f"--beam-size must be >= 1, got {self.beam_size}")
        check(
            1 <= self.qubits <= MAX_QUBITS,
            f"--qubits must be in 1..{MAX_QUBITS}, got {self.qubits}",
        )
        check(self.layers >= 1, f"--layers must be >= 1, got {self.layers}")
        check(
            self.entangler in ENTANGLERS,
            f"unknown entangler {self.entangler!r}; choose one of: {', '.join(ENTANGLERS)}",
        )
        check(
            self.readouts in READOUT_SETS,
            f"unknown readouts {self.readouts!r}; choose one of: {', '.join(READOUT_SETS)}",
        )
        check(
            self.activation in ACTIVATIONS,
            f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}",
        )
        check(
            self.angle_map in ANGLE_MAPS,
            f"unknown angle map {self.angle_map!r}; choose one of: {', '.join(ANGLE_MAPS)}",
        )
        check(
            self.dtype in DTYPES,
            f"unknown dtype {self.dtype!r}; choose one of: {', '.join(DTYPES)}",
        )
        check(
            self.width >= 1 and self.depth >= 0,
            f"--width must be >= 1 and --depth >= 0, got {self.width}, {self.depth}",
        )
        check(0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}")
        check(self.init_scale > 0, f"--init-scale must be > 0, got {self.init_scale}")
        check(self.hidden is None or self.hidden >= 1, f"--hidden must be >= 1, got {self.hidden}")
        check(
            self.match_params is None or self.match_params >= 1,
            "--match-params needs a positive parameter count",
        )
        check(self.embed_dim >= 1, f"--embed-dim must be >= 1, got {self.embed_dim}")
        check(self.steps >= 1, f"--steps must be >= 1, got {self.steps}")
        check(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        check(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        check(self.clip >= 0, f"--clip must be >= 0 (0 disables clipping), got {self.clip}")
        check(self.eval_every >= 1, f"--eval-every must be >= 1, got {self.eval_every}")
        check(self.eval_size >= 1, f"--eval-size must be >= 1, got {self.eval_size}")
        check(self.max_minutes >= 0, f"--max-minutes must be >= 0, got {self.max_minutes}")
        check(self.threads >= 0, f"--threads must be >= 0, got {self.threads}")
        check(
            self.backend in BACKENDS,
            f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}",
        )
        check(
            self.backend == "statevector" or self.model == "qrnn",
            f"--backend {self.backend} runs the QRNN's quantum circuit; --model {self.model} is "
            "classical (drop --backend)",
        )

    @property
    def qrnn(self) -> QRNNConfig:
        return QRNNConfig(
            QRNNSpec(self.qubits, self.layers, self.entangler, self.readouts),
            ControllerConfig(
                self.width,
                self.depth,
                self.activation,
                self.dropout,
                self.angle_map,
                self.init_scale,
            ),
            self.feedback,
        )

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise QRNNError(f"config has unknown fields: {', '.join(sorted(unknown))}")
        return cls(**d)

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of fields (other than the resumable ones) whose values differ."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if k not in RESUMABLE_FIELDS and a[k] != b[k]]
