"""`qrnn translate RUN "sentence"`: decode one sentence with a trained translation run (+ attention
heat map).

Sentences longer than the model's limit (its longest training source, in tokens) are refused, not
truncated: a translation of a cut sentence would look complete and be wrong.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import QRNNError
from ..fileio import save_figure
from ..training import RunDir, load_run, make_task
from ..training.tasks.translation import TranslationTask, check_vocabulary


def load_translator(run_dir: str | Path, pair: str | None = None):
    """(task, model) of a translation run; clear errors for other runs, another language pair or a
    vocabulary that no longer matches the checkpoint."""
    rd = RunDir(run_dir)
    config = rd.read_config()
    name = config.task.name
    if not name.startswith("mt-"):
        raise QRNNError(
            f"{rd.path} was trained on {name}; qrnn translate needs a translation run (mt-de-en)"
        )
    if pair is not None:
        from ..data.bible import check_pair

        parts = pair.split("-")
        if len(parts) != 2:
            raise QRNNError(
                f"unknown language pair {pair!r}; write it as SOURCE-TARGET, e.g. de-en"
            )
        check_pair(*parts)
        if f"mt-{pair}" != name:
            raise QRNNError(f"unknown language pair {pair} for {rd.path}: it translates {name[3:]}")
    task = make_task(config)
    if not isinstance(task, TranslationTask):
        raise QRNNError(f"{rd.path}: task {name} is not a translation task")
    state = rd.load_checkpoint()
    check_vocabulary(task, state.get("task", {}))
    _, model, _ = load_run(rd)
    model.eval()
    return task, model


def save_attention_png(path: str | Path, source: list[str], target: list[str], weights) -> Path:
    """Heat map of attention weights [len(target)+1, len(source)+1] (rows: target words then
    </s>)."""
    from matplotlib.figure import Figure

    path = Path(path)
    rows, cols = weights.shape
    figure = Figure(
        figsize=(max(4.0, 0.45 * cols + 2), max(3.0, 0.4 * rows + 1.5)), layout="constrained"
    )
    axis = figure.subplots()
    image = axis.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(cols), (source + ["</s>"])[:cols], rotation=60, ha="right")
    axis.set_yticks(range(rows), (target + ["</s>"])[:rows])
    axis.set_xlabel("source")
    axis.set_ylabel("translation")
    figure.colorbar(image, ax=axis, label="attention weight")
    return save_figure(figure, path, dpi=120)


def cmd_translate(args: argparse.Namespace) -> int:
    if args.beam is not None and args.beam < 1:
        raise QRNNError(f"--beam must be >= 1, got {args.beam}")
    task, model = load_translator(args.run, args.pair)
    text, source, result = task.translate(model, args.sentence, args.beam)
    print(text if text else "(empty translation: the model ended the sentence at once)")
    unknown = [w for w in source if w not in task.source_vocab.index]
    if unknown:
        print(f"({len(unknown)} source word(s) unknown to the model: {', '.join(unknown[:8])})")
    if args.attention_png:
        target = task.target_vocab.decode(result.ids)
        print(
            "attention heat map: "
            f"{save_attention_png(args.attention_png, source, target, result.attention)}"
        )
    return 0
