"""German→English translation of Bible verses with an attention encoder–decoder.

``mt-de-en``: Elberfelder → World English Bible verse pairs with at most 20 words on both sides
(12,209), split once 80/10/10 by a fixed seeded permutation (the same for every run), lower-cased
word vocabularies from the training split. Teacher forcing for training; validation: token
loss/perplexity/accuracy and greedy BLEU on the first ``--eval-size`` validation pairs; test: the
same on the whole test split with beam search (``--beam-size``). BLEU is sacrebleu's corpus BLEU
(13a tokenization, case-insensitive) against the normalised references; it is not comparable to
Multi30k/IWSLT figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F

from ...data import bible
from ...data.splits import stable_permutation
from ...data.text import BOS, EOS, PAD, Vocabulary, detokenize, normalize, tokenize
from ...errors import QRNNError
from ...models import count_parameters, match_hidden_size
from ...models.seq2seq import SEQ2SEQ_MODELS, Seq2Seq, Translation, build_seq2seq
from .base import Batch, Task, require_statevector

if TYPE_CHECKING:
    from ..config import TrainConfig

EVAL_BATCH = 256
MT_SPLIT_KEY = (20251029, 5)  # the translation split: fixed, independent of --seed
MT_EPOCH_KEY = 6
MT_FRACTIONS = (0.8, 0.1, 0.1)  # train / validation / test


class TranslationTask(Task):
    """German → English verse translation with an attention encoder–decoder (module docstring)."""

    report_metric = "bleu"
    val_metrics = ("loss", "ppl", "accuracy", "bleu")
    splits = ("val", "test")

    def __init__(self, config: TrainConfig, *, source: str = "de", target: str = "en") -> None:
        self.name = f"mt-{source}-{target}"
        require_statevector(config, self.name)
        if config.engine.device != "cpu":
            raise QRNNError(f"{self.name} trains on the CPU only (drop --device)")
        if config.model.kind not in SEQ2SEQ_MODELS:
            raise QRNNError(
                f"{self.name} trains an encoder-decoder: --model must be one of "
                f"{', '.join(SEQ2SEQ_MODELS)}, "
                f"got {config.model.kind}"
            )
        self.source_language, self.target_language = source, target
        self.batch_size, self.seed, self.eval_size = (
            config.optim.batch_size,
            config.run.seed,
            config.run.eval_size,
        )
        self.beam_size = config.task.beam_size
        corpus = bible.load(source, target)
        src = [tokenize(t) for t in corpus.source]
        tgt = [tokenize(t) for t in corpus.target]
        keep = [
            i
            for i in range(len(corpus))
            if 1 <= len(src[i]) <= config.task.max_len and 1 <= len(tgt[i]) <= config.task.max_len
        ]
        if len(keep) < 10:
            raise QRNNError(
                f"{self.name}: only {len(keep)} sentence pairs have at most --max-len "
                f"{config.task.max_len} tokens"
            )
        order = stable_permutation(len(keep), MT_SPLIT_KEY)
        n_test = max(1, round(MT_FRACTIONS[2] * len(keep)))
        n_val = max(1, round(MT_FRACTIONS[1] * len(keep)))
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": np.sort(order[n_test + n_val :]),
        }
        self.refs = {k: [corpus.refs[keep[i]] for i in v] for k, v in parts.items()}
        self.references = {
            k: [normalize(corpus.target[keep[i]]) for i in v] for k, v in parts.items()
        }
        self.source_texts = {k: [corpus.source[keep[i]] for i in v] for k, v in parts.items()}
        tokens = {
            k: ([src[keep[i]] for i in v], [tgt[keep[i]] for i in v]) for k, v in parts.items()
        }
        self.source_vocab = Vocabulary.build(tokens["train"][0], config.task.vocab_size)
        self.target_vocab = Vocabulary.build(tokens["train"][1], config.task.vocab_size)
        self.max_source_len = max(len(s) for s in tokens["train"][0])
        self.max_target_len = max(len(t) for t in tokens["train"][1]) + 1  # + </s>
        self.ids = {
            k: (
                self._pad([self.source_vocab.encode(s) + [EOS] for s in pair[0]]),
                self._pad([[BOS] + self.target_vocab.encode(t) + [EOS] for t in pair[1]]),
            )
            for k, pair in tokens.items()
        }
        self.steps_per_epoch = math.ceil(len(parts["train"]) / self.batch_size)
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    @staticmethod
    def _pad(rows: list[list[int]]) -> np.ndarray:
        out = np.full((len(rows), max(len(r) for r in rows)), PAD, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.refs.items()}

    # -- model
    # --------------------------------------------------------------------------------------
    def build_model(self, config: TrainConfig) -> Seq2Seq:
        """``qrnn``, or a classical encoder-decoder sized by --hidden, --match-params or (by
        default) to the parameter count of the QRNN encoder-decoder that the same flags describe."""

        def build(kind: str, hidden: int = 64) -> Seq2Seq:
            return build_seq2seq(
                kind,
                len(self.source_vocab),
                len(self.target_vocab),
                embed_dim=config.model.embed_dim,
                attention=config.task.attention,
                qrnn=config.qrnn,
                hidden_size=hidden,
                dtype=config.torch_dtype,
            )

        if config.model.kind == "qrnn":
            return build("qrnn")
        hidden = config.baseline.hidden
        if hidden is None:
            target = config.baseline.match_params or count_parameters(build("qrnn"))
            hidden = match_hidden_size(lambda h: build(config.model.kind, h), target, high=1024)
        return build(config.model.kind, hidden)

    # -- data
    # ---------------------------------------------------------------------------------------
    def _batch(self, split: str, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        src, tgt = self.ids[split][0][rows], self.ids[split][1][rows]
        src = src[:, : int((src != PAD).sum(1).max())]
        tgt = tgt[:, : int((tgt != PAD).sum(1).max())]
        return torch.from_numpy(src), torch.from_numpy(tgt)

    def train_batch(self, step: int) -> Batch:
        """((source [B, S], target input [B, T]), target output [B, T]) of training step
        ``step``."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._order = stable_permutation(
                len(self.refs["train"]), (self.seed, MT_EPOCH_KEY, epoch)
            )
            self._epoch = epoch
        src, tgt = self._batch(
            "train", self._order[position * self.batch_size : (position + 1) * self.batch_size]
        )
        return (src, tgt[:, :-1]), tgt[:, 1:]

    def train_loss(self, model: Seq2Seq, step: int) -> torch.Tensor:
        (src, tgt_in), tgt_out = self.train_batch(step)
        return self.loss(model(src, tgt_in), tgt_out)

    def _eval_rows(self, split: str) -> np.ndarray:
        rows = np.arange(len(self.refs[split]))
        return rows[: self.eval_size] if split == "val" else rows

    def batches(self, split: str) -> Iterator[Batch]:
        """Teacher-forced batches of ``split`` (``evaluate`` adds BLEU)."""
        self.check_split(split)
        rows = self._eval_rows(split)
        for start in range(0, len(rows), EVAL_BATCH):
            src, tgt = self._batch(split, rows[start : start + EVAL_BATCH])
            yield (src, tgt[:, :-1]), tgt[:, 1:]

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), ignore_index=PAD
        )

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        real = targets != PAD
        loss = float(self.loss(outputs, targets))
        return {
            "loss": loss,
            "ppl": math.exp(min(loss, 700.0)),
            "accuracy": float((outputs.argmax(-1) == targets)[real].float().mean()),
        }

    @torch.no_grad()
    def evaluate(self, model: Seq2Seq, split: str = "val") -> dict[str, float]:
        """Teacher-forced token loss, perplexity and accuracy plus corpus BLEU of the decoded split
        (validation: first --eval-size pairs, greedy; test: all pairs, beam search with
        --beam-size)."""
        self.check_split(split)
        was_training = model.training
        model.eval()
        rows = self._eval_rows(split)
        total, correct, count = 0.0, 0, 0
        hypotheses: list[str] = []
        for start in range(0, len(rows), EVAL_BATCH):
            part = rows[start : start + EVAL_BATCH]
            src, tgt = self._batch(split, part)
            logits = model(src, tgt[:, :-1])
            target = tgt[:, 1:]
            real = target != PAD
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    target.reshape(-1),
                    ignore_index=PAD,
                    reduction="sum",
                )
            )
            correct += int((logits.argmax(-1) == target)[real].sum())
            count += int(real.sum())
            if split == "val" or self.beam_size == 1:
                decoded = model.greedy(src, self.max_target_len)
            else:
                decoded = [
                    model.beam_search(
                        src[i : i + 1, : int((src[i] != PAD).sum())],
                        self.beam_size,
                        self.max_target_len,
                    )
                    for i in range(len(part))
                ]
            hypotheses += [detokenize(self.target_vocab.decode(t.ids)) for t in decoded]
        model.train(was_training)
        loss = total / count
        return {
            "loss": loss,
            "ppl": math.exp(min(loss, 700.0)),
            "accuracy": correct / count,
            "bleu": corpus_bleu(hypotheses, [self.references[split][i] for i in rows]),
        }

    def describe(self, metrics: dict[str, float]) -> str:
        return (
            f"validation BLEU {metrics['bleu']:.2f} (greedy), token perplexity "
            f"{metrics['ppl']:.2f}, "
            f"token accuracy {metrics['accuracy']:.2%}"
        )

    # -- translation
    # --------------------------------------------------------------------------------
    def encode_source(self, sentence: str) -> tuple[list[str], torch.Tensor]:
        """(source tokens, ids [1, S] with ``</s>``) of a user's sentence; refuses empty sentences
        and ones longer than the longest training source (the model's limit), rather than truncating
        them."""
        tokens = tokenize(sentence)
        if not tokens:
            raise QRNNError("empty sentence: nothing to translate")
        if len(tokens) > self.max_source_len:
            raise QRNNError(
                f"the sentence has {len(tokens)} tokens; this model reads at most "
                f"{self.max_source_len} "
                f"(its longest training source); split it into shorter sentences"
            )
        return tokens, torch.tensor([self.source_vocab.encode(tokens) + [EOS]], dtype=torch.long)

    def translate(
        self, model: Seq2Seq, sentence: str, beam: int | None = None
    ) -> tuple[str, list[str], Translation]:
        """(translation text, source tokens, decoded ``Translation`` with attention [T, S+1])."""
        tokens, src = self.encode_source(sentence)
        was_training = model.training
        model.eval()
        beam = beam or self.beam_size
        result = (
            model.greedy(src, self.max_target_len)[0]
            if beam == 1
            else model.beam_search(src, beam, self.max_target_len)
        )
        model.train(was_training)
        return detokenize(self.target_vocab.decode(result.ids)), tokens, result

    # -- checkpointed task state
    # --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The vocabularies the model's embeddings and head index (checked on resume and
        translate)."""
        return {
            "vocab": {
                "source": list(self.source_vocab.words),
                "target": list(self.target_vocab.words),
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_vocabulary(self, state)


def check_vocabulary(task: TranslationTask, state: dict[str, Any]) -> None:
    """Refuse a checkpoint whose vocabularies differ from the ones this task built from the data
    cache."""
    saved = state.get("vocab") if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        raise QRNNError(
            "the checkpoint has no vocabularies (written by another version?); retrain the run"
        )
    for side, vocab in (("source", task.source_vocab), ("target", task.target_vocab)):
        words = list(saved.get(side, []))
        if words != list(vocab.words):
            differ = next(
                (i for i, (a, b) in enumerate(zip(words, vocab.words)) if a != b),
                min(len(words), len(vocab)),
            )
            raise QRNNError(
                f"vocabulary mismatch with the checkpoint: its {side} vocabulary has {len(words)} "
                "words, the "
                f"one built from the data cache {len(vocab)} (first difference at id {differ}); "
                "was the "
                "bible cache re-fetched or changed?"
            )


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    """sacrebleu corpus BLEU (13a tokenization, lower-cased), 0..100."""
    import sacrebleu

    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score)
