"""Encoder–decoder translation models with soft attention over the encoder's outputs.

``qrnn``: a QRNN encoder reads the source; its readout sequence z^enc_1..z^enc_S is the attention
memory. A QRNN decoder starts from the encoder's final state (ψ, z) at each source's last real
token; at step t its controller receives [e(y_{t-1}); c_t] (and z_{t-1} as feedback), where the
context c_t = Σ_s α_ts z^enc_s and α_t = softmax over the source of score(z_{t-1}, z^enc_s); its
head reads [z_t; c_t]. Scores are ``additive`` (vᵀ tanh(W_q q + W_k k)) or ``dot`` ((W q)·k / √d),
and padding positions get weight exactly 0.

``rnn``/``lstm``/``gru``: the same architecture with a classical encoder (packed, so padding never
enters the state) and a classical decoder cell, query h_{t-1}, head [h_t; c_t].

Training uses teacher forcing (``forward``); decoding is greedy (batched) or beam search (one
sentence). The QRNN encoder keeps each step's state for backward (sources are short and may be
padded); the decoder runs inside the engine's recording scope (the reversible tape).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..circuits import QRNNSpec
from ..data.text import BOS, EOS, PAD
from .config import ATTENTION_SCORES
from .qrnn import QRNNCell, QRNNConfig
from .sequence import CLASSICAL

SEQ2SEQ_MODELS: tuple[str, ...] = ("qrnn", "rnn", "lstm", "gru")
_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def map_state(state, fn):
    """Apply ``fn`` to every tensor of a recurrent state (a tensor or nested tuples of tensors)."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    return type(state)(map_state(part, fn) for part in state)


class Attention(nn.Module):
    """Soft attention of a query [B, Q] over keys [B, S, K]; positions where ``mask`` is False get
    weight 0."""

    def __init__(self, query_size: int, key_size: int, score: str = "additive") -> None:
        super().__init__()
        if score not in ATTENTION_SCORES:
            raise ValueError(
                f"attention score must be one of {', '.join(ATTENTION_SCORES)}; got {score!r}"
            )
        self.score = score
        self.key_size = key_size
        self.query = nn.Linear(query_size, key_size, bias=False)
        if score == "additive":
            self.key = nn.Linear(key_size, key_size)
            self.v = nn.Linear(key_size, 1, bias=False)

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """The part of the score that depends on the keys only (computed once per source)."""
        return self.key(keys) if self.score == "additive" else keys

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, prepared: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(context [B, K], weights [B, S]); every row of weights sums to 1 over the unmasked
        positions."""
        q = self.query(query)
        if self.score == "additive":
            scores = self.v(torch.tanh(prepared + q[:, None, :])).squeeze(-1)
        else:
            scores = torch.einsum("bk,bsk->bs", q, prepared) / math.sqrt(self.key_size)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return torch.einsum("bs,bsk->bk", weights, keys), weights


class QRNNEncoder(nn.Module):
    """A QRNN over the embedded source; outputs its readouts at every step and the state at each
    length.

    No recording scope: a padded step's output is dropped by the mask, so recomputing states
    backwards (ψ_{t-1} = U†ψ_t) would be wrong for that sample; each step keeps its state for
    backward instead (sources are short)."""

    def __init__(
        self, input_size: int, config: QRNNConfig, dtype: torch.dtype = torch.complex64
    ) -> None:
        super().__init__()
        self.core = QRNNCell(input_size, config, dtype=dtype)
        self.output_size = self.core.output_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        psi, z = self.core.initial_state(x.shape[0])
        state = (psi, z.to(x.dtype))
        outputs = []
        for t in range(x.shape[1]):
            z_t, (psi_t, _) = self.core.step(x[:, t], state)
            outputs.append(z_t)
            live = (lengths > t)[:, None]
            state = (torch.where(live, psi_t, state[0]), torch.where(live, z_t, state[1]))
        return torch.stack(outputs, dim=1), state


class QRNNDecoderCell(nn.Module):
    """One QRNN step per target token; the attention query is the previous readouts z_{t-1}."""

    def __init__(
        self, input_size: int, config: QRNNConfig, dtype: torch.dtype = torch.complex64
    ) -> None:
        super().__init__()
        self.core = QRNNCell(input_size, config, dtype=dtype)
        self.output_size = self.core.output_size
        self.query_size = self.core.output_size

    def recording(self, batch: int, steps: int):
        """The engine's scope of one teacher-forced pass (the statevector engine: a reversible
        tape)."""
        return self.core.engine.recording(batch, steps)

    def query(self, state) -> torch.Tensor:
        return state[1]

    def step(self, x: torch.Tensor, state):
        return self.core.step(x, state)


class RNNEncoder(nn.Module):
    """``nn.RNN``/``nn.LSTM``/``nn.GRU`` over the packed source (padding never enters the state)."""

    def __init__(self, kind: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.kind = kind
        self.rnn = CLASSICAL[kind](input_size, hidden_size, batch_first=True)
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, state = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        state = (state[0][0], state[1][0]) if self.kind == "lstm" else state[0]
        return out, state


class RNNDecoderCell(nn.Module):
    """``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell``; the attention query is h_{t-1}."""

    def __init__(self, kind: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.kind = kind
        self.cell = _CELLS[kind](input_size, hidden_size)
        self.output_size = hidden_size
        self.query_size = hidden_size

    def recording(self, batch: int, steps: int):
        return contextlib.nullcontext()

    def query(self, state) -> torch.Tensor:
        return state[0] if self.kind == "lstm" else state

    def step(self, x: torch.Tensor, state):
        state = self.cell(x, state)
        return (state[0] if self.kind == "lstm" else state), state


@dataclass
class Memory:
    """The encoded source: attention keys [B, S, K], their prepared form, padding mask [B, S], final
    state."""

    keys: torch.Tensor
    prepared: torch.Tensor
    mask: torch.Tensor
    state: object

    def select(self, index: torch.Tensor) -> Memory:
        return Memory(
            self.keys[index],
            self.prepared[index],
            self.mask[index],
            map_state(self.state, lambda s: s[index]),
        )


@dataclass
class Translation:
    """A decoded sentence: target ids (without ``</s>``), its log-probability and attention [T,
    S]."""

    ids: list[int]
    score: float
    attention: torch.Tensor


class Seq2Seq(nn.Module):
    """Source ids [B, S] (padded with 0 at the end) → target logits, with attention over the
    encoder."""

    def __init__(
        self,
        kind: str,
        src_vocab: int,
        tgt_vocab: int,
        encoder: nn.Module,
        decoder: nn.Module,
        embed_dim: int,
        attention: str = "additive",
    ) -> None:
        super().__init__()
        self.kind = kind
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.src_embed = nn.Embedding(src_vocab, embed_dim, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, embed_dim, padding_idx=PAD)
        self.encoder = encoder
        self.decoder = decoder
        self.attention = Attention(decoder.query_size, encoder.output_size, attention)
        self.head = nn.Linear(decoder.output_size + encoder.output_size, tgt_vocab)

    @property
    def hidden_size(self) -> int:
        return self.decoder.output_size

    def _check_ids(self, ids: torch.Tensor, vocab: int, what: str) -> None:
        if ids.dim() != 2 or ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"{what} must be an integer tensor [batch, time], got {ids.dtype} "
                f"{tuple(ids.shape)}"
            )
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise ValueError(f"{what} ids must be in 0..{vocab - 1}")

    def encode(self, src: torch.Tensor) -> Memory:
        """Run the encoder over ``src`` [B, S]; every source needs at least one non-padding
        token."""
        self._check_ids(src, self.src_vocab, "source")
        mask = src != PAD
        lengths = mask.sum(dim=1)
        if src.shape[1] == 0 or bool((lengths == 0).any()):
            raise ValueError("every source sentence needs at least one token")
        keys, state = self.encoder(self.src_embed(src), lengths)
        return Memory(keys, self.attention.prepare(keys), mask, state)

    def decode_step(self, memory: Memory, tokens: torch.Tensor, state):
        """One decoder step from the previous target tokens [B]: (logits [B, V], new state,
        attention [B, S])."""
        context, weights = self.attention(
            self.decoder.query(state), memory.keys, memory.prepared, memory.mask
        )
        x = torch.cat([self.tgt_embed(tokens), context], dim=-1)
        out, state = self.decoder.step(x, state)
        return self.head(torch.cat([out, context], dim=-1)), state, weights

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, *, return_attention: bool = False):
        """Teacher forcing: logits [B, T, V] for the targets that follow ``tgt_in`` [B, T] (``<s>``
        first); with ``return_attention`` also the weights [B, T, S]."""
        self._check_ids(tgt_in, self.tgt_vocab, "target")
        memory = self.encode(src)
        state = memory.state
        logits, weights = [], []
        with self.decoder.recording(tgt_in.shape[0], tgt_in.shape[1]):
            for t in range(tgt_in.shape[1]):
                step_logits, state, step_weights = self.decode_step(memory, tgt_in[:, t], state)
                logits.append(step_logits)
                weights.append(step_weights)
        out = torch.stack(logits, dim=1)
        return (out, torch.stack(weights, dim=1)) if return_attention else out

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_len: int) -> list[Translation]:
        """Greedy decoding of a batch: each sentence until ``</s>`` or ``max_len`` tokens."""
        memory = self.encode(src)
        batch = src.shape[0]
        state = memory.state
        token = torch.full((batch,), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(batch, dtype=torch.bool, device=src.device)
        score = torch.zeros(batch, dtype=torch.float64)
        ids, weights = [], []
        for _ in range(max_len):
            logits, state, step_weights = self.decode_step(memory, token, state)
            logp = F.log_softmax(logits.double(), dim=-1)
            token = logp.argmax(dim=-1)
            score += torch.where(done, 0.0, logp.gather(1, token[:, None])[:, 0])
            token = torch.where(done, torch.full_like(token, PAD), token)
            ids.append(token)
            weights.append(step_weights)
            done |= token == EOS
            if bool(done.all()):
                break
        ids_t, weights_t = torch.stack(ids, dim=1), torch.stack(weights, dim=1)
        out = []
        for b in range(batch):
            row = ids_t[b].tolist()
            length = row.index(EOS) + 1 if EOS in row else len(row)
            out.append(
                Translation(
                    [i for i in row[:length] if i != EOS],
                    float(score[b]),
                    weights_t[b, :length, : int(memory.mask[b].sum())],
                )
            )
        return out

    @torch.no_grad()
    def beam_search(
        self, src: torch.Tensor, beam: int, max_len: int, length_penalty: float = 0.6
    ) -> Translation:
        """Beam search for one source [1, S]. At each step the ``beam`` best extensions are kept;
        those ending in ``</s>`` are finished. Stops when ``beam`` hypotheses have finished (or at
        ``max_len``) and returns the one with the best log-probability / length**``length_penalty``.
        With ``beam=1`` this is exactly greedy decoding."""
        if src.dim() != 2 or src.shape[0] != 1:
            raise ValueError(f"beam search decodes one sentence [1, S], got {tuple(src.shape)}")
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        memory = self.encode(src)
        length = int(memory.mask[0].sum())
        state = memory.state
        tokens = torch.full((1,), BOS, dtype=torch.long)
        scores = torch.zeros(1, dtype=torch.float64)
        history: list[list[int]] = [[]]
        attention: list[list[torch.Tensor]] = [[]]
        finished: list[tuple[float, Translation]] = []
        for step in range(max_len):
            alive = len(history)
            logits, state, weights = self.decode_step(
                memory.select(torch.zeros(alive, dtype=torch.long)), tokens, state
            )
            total = scores[:, None] + F.log_softmax(logits.double(), dim=-1)
            top_scores, top = total.view(-1).topk(min(2 * beam, total.numel()))
            keep_from, keep_token, keep_score = [], [], []
            for rank, (value, flat) in enumerate(zip(top_scores.tolist(), top.tolist())):
                origin, token = divmod(flat, total.shape[1])
                path = history[origin] + [token]
                path_attention = attention[origin] + [weights[origin, :length]]
                if token == EOS:
                    if rank < beam:
                        hypothesis = Translation(path[:-1], value, torch.stack(path_attention))
                        finished.append((value / len(path) ** length_penalty, hypothesis))
                    continue
                if len(keep_from) < beam:
                    keep_from.append(origin)
                    keep_token.append(token)
                    keep_score.append(value)
            if len(finished) >= beam or not keep_from:
                break
            index = torch.tensor(keep_from, dtype=torch.long)
            state = map_state(state, lambda s, index=index: s[index])
            history = [history[o] + [t] for o, t in zip(keep_from, keep_token)]
            attention = [attention[o] + [weights[o, :length]] for o in keep_from]
            tokens = torch.tensor(keep_token, dtype=torch.long)
            scores = torch.tensor(keep_score, dtype=torch.float64)
            if step == max_len - 1:  # out of length: the unfinished hypotheses compete as they are
                for path, path_attention, value in zip(history, attention, keep_score):
                    finished.append(
                        (
                            value / len(path) ** length_penalty,
                            Translation(list(path), value, torch.stack(path_attention)),
                        )
                    )
        return max(finished, key=lambda item: item[0])[1]


def build_seq2seq(
    kind: str,
    src_vocab: int,
    tgt_vocab: int,
    *,
    embed_dim: int = 16,
    attention: str = "additive",
    qrnn: QRNNConfig | None = None,
    hidden_size: int = 64,
    dtype: torch.dtype = torch.complex64,
) -> Seq2Seq:
    """A ``qrnn`` (encoder and decoder share the circuit and controller shape, not the weights) or
    classical (``rnn``/``lstm``/``gru``, ``hidden_size`` units) encoder–decoder with ``attention``
    scores."""
    if kind not in SEQ2SEQ_MODELS:
        raise ValueError(f"translation models are {', '.join(SEQ2SEQ_MODELS)}; got {kind!r}")
    if kind == "qrnn":
        config = qrnn or QRNNConfig(QRNNSpec(8))
        encoder: nn.Module = QRNNEncoder(embed_dim, config, dtype)
        decoder: nn.Module = QRNNDecoderCell(embed_dim + encoder.output_size, config, dtype)
    else:
        if hidden_size < 1:
            raise ValueError(f"hidden size must be >= 1, got {hidden_size}")
        encoder = RNNEncoder(kind, embed_dim, hidden_size)
        decoder = RNNDecoderCell(kind, embed_dim + hidden_size, hidden_size)
    return Seq2Seq(kind, src_vocab, tgt_vocab, encoder, decoder, embed_dim, attention)
