"""``qrnn gradnorm RUN...``: the paper's Figure 3 — how the loss gradient reaches back in time.

For one evaluation batch of each run's task, ‖∂L/∂h_t‖ (the mean over the batch of each sample's
norm) against t, for the model at initialisation (rebuilt from the run's config and seed) and as
trained: the QRNN's hidden state h_t = (ψ_t, z_t) — the state vector and the readouts fed back to
the controller —, an LSTM's (h_t, c_t), a GRU's or RNN's h_t and the orthogonal RNN's h_t. L is the
task's training loss on the batch. The model is unrolled step by step with the same parameters and
the same arithmetic as its own forward (``unroll`` is checked against it), so these are the
gradients that training sees. JSON (every curve) and one PNG (log scale, one panel per quantity).
"""

from __future__ import annotations

import argparse
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import QRNNError
from ..fileio import atomic_write_bytes, atomic_write_many
from ..models import QRNNCore, SequenceModel
from ..models.orthogonal import OrthogonalCore, mod_relu
from ..models.sequence import ClassicalCore
from ..models.stability import loop_report
from ..training import RunDir, TrainConfig, load_run, make_task
from ..training.rundir import BEST


def _retained(t: torch.Tensor) -> torch.Tensor:
    t.retain_grad()
    return t


def unroll(model: SequenceModel, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, list]]:
    """(the core's outputs [B, T, H] the head reads, {state name: [per-step tensors with retained
    gradients]}) of ``model`` on inputs ``x``, unrolled one step at a time."""
    core = model.core
    features = model.embed(x)
    batch, steps = features.shape[:2]
    states: dict[str, list] = {}
    outputs = []
    if isinstance(core, QRNNCore):
        psi, z = core.initial_state(batch)
        state = (psi, z.to(features.dtype))
        states = {"psi": [], "z": []}
        for t in range(steps):
            # step and readouts as two calls (one step_readouts in training): ψ_t then feeds both,
            # so its gradient is the whole ∂L/∂ψ_t (through z_t and through later steps)
            psi = _retained(core.engine.step(state[0], core.angles(features[:, t], state[1])))
            z = _retained(core.engine.readouts(psi).to(features.dtype))
            state = (psi, z)
            states["psi"].append(psi)
            states["z"].append(z)
            outputs.append(z)
    elif isinstance(core, ClassicalCore):
        rnn = core.rnn
        w_ih, w_hh, b_ih, b_hh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
        h = features.new_zeros(batch, core.hidden_size)
        c = torch.zeros_like(h)
        states = {"h": [], "c": []} if core.kind == "lstm" else {"h": []}
        for t in range(steps):
            gi = features[:, t] @ w_ih.T + b_ih
            gh = h @ w_hh.T + b_hh
            if core.kind == "lstm":
                i, f, g, o = (gi + gh).chunk(4, dim=-1)
                c = _retained(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g))
                h = _retained(torch.sigmoid(o) * torch.tanh(c))
                states["c"].append(c)
            elif core.kind == "gru":
                ri, zi, ni = gi.chunk(3, dim=-1)
                rh, zh, nh = gh.chunk(3, dim=-1)
                r, u = torch.sigmoid(ri + rh), torch.sigmoid(zi + zh)
                n = torch.tanh(ni + r * nh)
                h = _retained((1 - u) * n + u * h)
            else:
                h = _retained(torch.tanh(gi + gh))
            states["h"].append(h)
            outputs.append(h)
    elif isinstance(core, OrthogonalCore):
        recurrent = core.recurrent_matrix().T
        drive = core.input(features)
        h = features.new_zeros(batch, core.hidden_size)
        states = {"h": []}
        for t in range(steps):
            h = _retained(mod_relu(drive[:, t] + h @ recurrent, core.bias))
            states["h"].append(h)
            outputs.append(h)
    else:
        raise QRNNError(f"qrnn gradnorm does not know the core {type(core).__name__}")
    return torch.stack(outputs, dim=1), states


def gradient_norms(model: SequenceModel, task, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """{"loss": L, state name: [mean_b ‖∂L/∂state_t‖ for t = 1..T]} on one batch (dropout off)."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            hidden, states = unroll(model, x)
            loss = task.loss(model.apply_head(hidden, x), y)
            loss.backward()
    finally:
        model.train(was_training)
    out: dict[str, Any] = {"loss": float(loss.detach())}
    for name, tensors in states.items():
        out[name] = [
            float(t.grad.reshape(t.shape[0], -1).norm(dim=1).mean()) if t.grad is not None else 0.0
            for t in tensors
        ]
    return out


def _batch(task, samples: int, pad_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` validation sequences; with padded token inputs, full-length ones of the longest
    length first (so every curve's step t is a real token of every sample: padded steps carry no
    gradient), shorter ones only where too few are full."""
    if pad_id is None:
        xs, ys, have = [], [], 0
        for x, y in task.batches("val"):
            xs.append(x)
            ys.append(y)
            have += len(x)
            if have >= samples:
                break
        return torch.cat(xs)[:samples], torch.cat(ys)[:samples]
    rows: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    for x, y in task.batches("val"):
        real = (x != pad_id).sum(dim=1)
        rows += [(int(real[i]), x[i], y[i]) for i in range(len(x))]
    longest = max(r[1].shape[0] for r in rows)
    # stable: full-length rows first in their validation order, then the longest of the rest
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0] != longest, -rows[i][0]))
    chosen = [rows[i] for i in order[:samples]]
    width = max(r[1].shape[0] for r in chosen)
    x = torch.full((len(chosen), width), pad_id, dtype=chosen[0][1].dtype)
    for i, (_, row, _) in enumerate(chosen):
        x[i, : row.shape[0]] = row
    return x, torch.stack([r[2] for r in chosen])


def _initial_model(config: TrainConfig, task) -> nn.Module:
    torch.manual_seed(config.run.seed)  # the initialisation the run started from
    return task.build_model(config)


def run_gradnorm(
    runs: Sequence[str | Path], *, samples: int = 32, checkpoint: str = "best"
) -> list[dict[str, Any]]:
    """Curves for every run, at initialisation and trained (``best`` checkpoint where the run kept
    one, else the final one; ``final`` for the final checkpoint)."""
    if samples < 1:
        raise QRNNError(f"--samples must be >= 1, got {samples}")
    out = []
    for run in runs:
        rd = RunDir(run)
        config = rd.read_config()
        if config.task.name.startswith("mt-"):  # refused before make_task loads any dataset
            raise QRNNError(
                f"{rd.path} is a translation run; qrnn gradnorm reads sequence models (copying, "
                "smnist, pmnist, imdb, ptb)"
            )
        task = make_task(config)
        name = BEST if checkpoint == "best" and rd.has_checkpoint(BEST) else "checkpoint.pt"
        _, trained, state = load_run(rd, name)
        x, y = _batch(task, samples, getattr(getattr(trained, "inputs", None), "pad_id", None))
        for label, model in (("init", _initial_model(config, task)), ("trained", trained)):
            curves = gradient_norms(model, task, x, y)
            if isinstance(model.core, QRNNCore):  # the loop gain and scrambling, same batch
                curves["loop"] = loop_report(model, x)
            out.append(
                {
                    "run": str(rd.path),
                    "task": config.task.name,
                    "model": config.model.kind,
                    "when": label,
                    "step": 0 if label == "init" else int(state["step"]),
                    "samples": len(x),
                    **curves,
                }
            )
    return out


LABELS = {
    "psi": "QRNN ‖∂L/∂ψ_t‖",
    "z": "QRNN ‖∂L/∂z_t‖ (readouts)",
    "h": "‖∂L/∂h_t‖",
    "c": "LSTM ‖∂L/∂c_t‖",
}


def plot(curves: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One panel per state quantity, ‖∂L/∂·_t‖ against t on a log scale, init dashed; written to
    ``path`` in the format its suffix names."""
    path = Path(path)
    atomic_write_bytes(path, render(curves, path))
    return path


def render(curves: Sequence[dict[str, Any]], path: str | Path) -> bytes:
    """:func:`plot`'s image, as the bytes of the file ``path`` names."""
    from matplotlib.figure import Figure

    quantities = [q for q in LABELS if any(q in c for c in curves)]
    figure = Figure(figsize=(4.6 * len(quantities), 3.8), layout="constrained")
    axes = figure.subplots(1, len(quantities), squeeze=False)[0]
    for axis, quantity in zip(axes, quantities):
        for c in curves:
            if quantity not in c:
                continue
            values = [v if v > 0 else math.nan for v in c[quantity]]
            axis.plot(
                range(1, len(values) + 1), values, linestyle="--" if c["when"] == "init" else "-",
                label=f"{c['model']} ({c['when']}, {Path(c['run']).name})",
            )  # fmt: skip
        axis.set_yscale("log")
        axis.set_xlabel("timestep t")
        axis.set_title(LABELS[quantity])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=plot_format(path), dpi=120)
    return buffer.getvalue()


def plot_format(path: str | Path) -> str:
    """The image format ``--plot`` names by its suffix (a one-line error for a folder, no suffix
    or a suffix Matplotlib cannot write), checked before any work."""
    from matplotlib.figure import Figure

    path = Path(path)
    if path.is_dir():
        raise QRNNError(f"--plot {path} is a folder; name an image file, e.g. {path / 'g.png'}")
    suffix = path.suffix.lower().lstrip(".")
    formats = Figure().canvas.get_supported_filetypes()
    if suffix not in formats:
        raise QRNNError(
            f"--plot {path}: {'.' + suffix if suffix else 'no suffix'} is not an image format; "
            "name a .png, .pdf or .svg file"
        )
    return suffix


def cmd_gradnorm(args: argparse.Namespace) -> int:
    plot_format(args.plot)  # before any work: nothing is written for a bad --plot
    if Path(args.json).is_dir():
        raise QRNNError(
            f"--json {args.json} is a folder; name a file, e.g. {Path(args.json) / 'g.json'}"
        )
    curves = run_gradnorm(args.runs, samples=args.samples, checkpoint=args.checkpoint)
    for c in curves:
        parts = [f"{c['model']:>10} {c['when']:>7} (step {c['step']}) loss {c['loss']:.4f}"]
        for quantity in LABELS:
            if quantity in c:
                values = c[quantity]
                parts.append(f"{quantity}: t=1 {values[0]:.3g}, t=T {values[-1]:.3g}")
        if "loop" in c:
            loop = c["loop"]
            parts.append(
                f"loop gain median {loop['gain_median']:.3g} (max {loop['gain_max']:.3g}), "
                f"mean |z| at T {loop['z_abs_last']:.3g}"
            )
        print(f"{Path(c['run']).name}: " + "; ".join(parts))
    # both files or neither (an unwritable --plot used to leave the JSON written)
    data = (json.dumps({"curves": curves}, indent=2, sort_keys=True) + "\n").encode()
    atomic_write_many({Path(args.json): data, Path(args.plot): render(curves, args.plot)})
    print(f"curves: {args.json}; plot: {args.plot}")
    return 0
