"""Sequence models: input embedding → recurrent core (QRNN or classical) → head; and size
matching."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..backends import Engine
from ..circuits import QRNNSpec
from .config import MODELS
from .measured import MeasuredConfig, MeasuredCore, StepNoise
from .orthogonal import OrthogonalCore
from .qrnn import QRNNConfig, QRNNCore

CLASSICAL = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class ClassicalCore(nn.Module):
    """A single-layer ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` with the same interface as
    ``QRNNCore``."""

    def __init__(
        self, kind: str, input_size: int, hidden_size: int, chrono_horizon: int | None = None
    ) -> None:
        super().__init__()
        if kind not in CLASSICAL:
            raise ValueError(f"classical model must be one of {', '.join(CLASSICAL)}; got {kind!r}")
        self.kind = kind
        self.hidden_size = hidden_size
        self.rnn = CLASSICAL[kind](input_size, hidden_size, batch_first=True)
        if chrono_horizon is not None:
            chrono_init(self.rnn, chrono_horizon)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def forward(self, x: torch.Tensor, state=None):
        return self.rnn(x, state)


def chrono_init(rnn: nn.Module, horizon: int) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018) of an ``nn.LSTM``/``nn.GRU`` for dependencies
    up to ``horizon`` steps: the forget gate's (GRU: the update gate's) bias b ~ log U(1, horizon −
    1), the LSTM input gate's bias −b, so the cell keeps its memory for ~U(1, horizon) steps at
    the start instead of ~2. The input-side biases of those gates are zeroed (the two add up)."""
    if not isinstance(rnn, (nn.LSTM, nn.GRU)):
        raise ValueError(f"chrono initialisation applies to LSTM and GRU, not {type(rnn).__name__}")
    if horizon < 3:
        raise ValueError(
            f"chrono initialisation needs a horizon of at least 3 steps, got {horizon}"
        )
    h = rnn.hidden_size
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
            bias = torch.log(torch.empty(h).uniform_(1.0, float(horizon - 1)))
            if isinstance(rnn, nn.LSTM):  # gates (i, f, g, o)
                b_ih[: 2 * h] = 0.0
                b_hh[h : 2 * h] = bias
                b_hh[:h] = -bias
            else:  # GRU gates (r, z, n): h' = (1 − z)·n + z·h, z plays the forget gate
                b_ih[h : 2 * h] = 0.0
                b_hh[h : 2 * h] = bias


@dataclass(frozen=True)
class InputSpec:
    """Token inputs (``vocab`` > 0, embedded to ``embed_dim``) or real features (``features`` > 0).

    ``pad_id``: token inputs padded at the end with this id; a ``head="last"`` model then reads each
    sequence's last non-padding step when no explicit ``lengths`` are given.
    """

    vocab: int = 0
    features: int = 0
    embed_dim: int = 16
    pad_id: int | None = None

    def __post_init__(self) -> None:
        if (self.vocab > 0) == (self.features > 0):
            raise ValueError(
                "exactly one of vocab (token inputs) or features (real-valued inputs) must be > 0"
            )
        if self.pad_id is not None and not 0 <= self.pad_id < self.vocab:
            raise ValueError(f"pad_id must be a token id in 0..{self.vocab - 1}, got {self.pad_id}")


class SequenceModel(nn.Module):
    """Embedding (nn.Embedding for tokens, nn.Linear for reals) → core → linear head.

    ``head="last"`` classifies from the last step (or from ``lengths - 1`` when sequences are
    padded); ``head="all"`` predicts at every step.
    """

    def __init__(
        self,
        inputs: InputSpec,
        core: nn.Module,
        n_outputs: int,
        head: Literal["last", "all"] = "all",
    ):
        super().__init__()
        if head not in ("last", "all"):
            raise ValueError(f"head must be 'last' or 'all', got {head!r}")
        self.inputs = inputs
        if inputs.vocab:
            self.embed: nn.Module = nn.Embedding(
                inputs.vocab, inputs.embed_dim, padding_idx=inputs.pad_id
            )
        else:
            self.embed = nn.Linear(inputs.features, inputs.embed_dim)
        self.core = core
        self.head_mode = head
        self.head = nn.Linear(core.output_size, n_outputs)

    @property
    def hidden_size(self) -> int:
        """Width of the core's outputs (readouts of a QRNN, hidden units of a classical core)."""
        return self.core.output_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        self.forward_check(x)
        return self._forward(x, lengths)

    def forward_window(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        """``head="all"``: outputs for one window of a longer stream, starting from the core
        ``state`` the previous window returned (None: the initial state), and the core's state after
        the window. Truncated BPTT passes that state on detached (``detach_state``)."""
        if self.head_mode != "all":
            raise ValueError("forward_window needs a model with head='all'")
        self.forward_check(x)
        hidden, final = self.core(self.embed(x), state)
        return self.head(hidden), final

    def forward_check(self, x: torch.Tensor) -> None:
        """Raise ValueError unless ``x`` has the shape and dtype of this model's inputs."""
        if self.inputs.vocab:
            if x.dim() != 2 or x.dtype not in (torch.long, torch.int32, torch.int64):
                raise ValueError(
                    f"token inputs must be an integer tensor [batch, time], got {x.dtype} "
                    f"{tuple(x.shape)}"
                )
        elif x.dim() != 3 or x.shape[-1] != self.inputs.features:
            raise ValueError(
                f"real inputs must be [batch, time, {self.inputs.features}], got {tuple(x.shape)}"
            )

    def _forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        hidden, _ = self.core(self.embed(x))
        return self.apply_head(hidden, x, lengths)

    def apply_head(
        self, hidden: torch.Tensor, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The head on core outputs [B, T, H] for inputs ``x``: every step, or each sequence's last
        real step (``lengths``, or the non-padding tokens when the inputs have a ``pad_id``).
        Hardware protocols use it on readouts estimated from shots."""
        if self.head_mode == "all":
            return self.head(hidden)
        if lengths is None and self.inputs.pad_id is not None:
            lengths = (x != self.inputs.pad_id).sum(dim=1)
        if lengths is None:
            return self.head(hidden[:, -1])
        index = (lengths.to(hidden.device) - 1).clamp(min=0)
        return self.head(hidden[torch.arange(hidden.shape[0], device=hidden.device), index])


def detach_state(state):
    """A recurrent state (tensor, or tuples/lists of them, or None) cut from the autograd graph."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(part) for part in state)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(
    kind: str,
    inputs: InputSpec,
    n_outputs: int,
    head: Literal["last", "all"] = "all",
    *,
    qrnn: QRNNConfig | None = None,
    hidden_size: int = 64,
    dtype: torch.dtype = torch.complex64,
    engine: Engine | None = None,
    chrono_horizon: int | None = None,
    measured: MeasuredConfig | None = None,
    measured_noise: StepNoise | None = None,
) -> SequenceModel:
    """Build a ``SequenceModel`` of the given kind (``qrnn``, ``mqrnn``, ``rnn``, ``lstm``, ``gru``,
    ``orthogonal``). A QRNN runs on ``engine`` (default: the statevector engine in ``dtype``); a
    measured QRNN takes its circuit and controller from ``qrnn`` and its measurement from
    ``measured`` (exact density-matrix simulation in ``dtype``, with the channels of
    ``measured_noise``); an LSTM/GRU gets chrono
    initialisation for ``chrono_horizon`` steps when it is given."""
    if kind not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {kind!r}")
    if kind == "qrnn":
        config = qrnn or QRNNConfig(QRNNSpec(8))
        core: nn.Module = QRNNCore(inputs.embed_dim, config, engine=engine, dtype=dtype)
    elif kind == "mqrnn":
        config = qrnn or QRNNConfig(QRNNSpec(4))
        core = MeasuredCore(
            inputs.embed_dim,
            config.spec,
            config.controller,
            measured or MeasuredConfig(),
            dtype,
            noise=measured_noise,
        )
    else:
        if hidden_size < 1:
            raise ValueError(f"hidden size must be >= 1, got {hidden_size}")
        core = (
            OrthogonalCore(inputs.embed_dim, hidden_size)
            if kind == "orthogonal"
            else ClassicalCore(
                kind,
                inputs.embed_dim,
                hidden_size,
                chrono_horizon if kind in ("lstm", "gru") else None,
            )
        )
    return SequenceModel(inputs, core, n_outputs, head)


def match_hidden_size(
    build: Callable[[int], nn.Module], target: int, low: int = 1, high: int = 4096
) -> int:
    """Hidden size h in [low, high] whose model ``build(h)`` has the parameter count closest to
    ``target``."""
    if target < 1:
        raise ValueError(f"target parameter count must be >= 1, got {target}")
    lo, hi = low, high
    while lo < hi:  # smallest h with count >= target (counts grow with h)
        mid = (lo + hi) // 2
        if count_parameters(build(mid)) >= target:
            hi = mid
        else:
            lo = mid + 1
    candidates = [h for h in (lo - 1, lo) if low <= h <= high]
    return min(candidates, key=lambda h: abs(count_parameters(build(h)) - target))
