"""The QRNN's classical loop z_{t-1} → controller → θ_t → U(θ_t) → z_t, measured.

Unitarity protects the quantum half of the recurrence; the classical feedback loop is where a
QRNN's gradients explode (issue 13). :func:`loop_report` measures, on one batch of a task:

- the **loop gain** g_t = σ_max(∂z_t/∂z_{t-1}) with ψ_{t-1} held fixed (:func:`loop_jacobian`,
  one vector-Jacobian product per readout through the engine's own backward), at a few evenly
  spaced steps: its median and maximum over those steps and the largest single-sample value;
- how **scrambled** the state is: the mean |z| over every step and at each sample's last real step,
  and the spread of the last readouts over the batch (a Haar-random n-qubit state has mean
  |⟨P⟩| ≈ :func:`random_state_z_abs`, ~0.05 at n = 8: its local readouts carry no information);
- the mean |θ| the controller writes.

The trainer logs these at every evaluation (``metrics.jsonl``: ``gain_median``, ``gain_max``,
``gain_peak``, ``z_abs``, ``z_abs_last``, ``z_spread_last``, ``angle_abs``).
"""

from __future__ import annotations

import math
import statistics

import torch
from torch import nn

from .forgetting import select
from .qrnn import QRNNCell, QRNNCore

REPORT_KEYS: tuple[str, ...] = (
    "gain_median",
    "gain_max",
    "gain_peak",
    "z_abs",
    "z_abs_last",
    "z_spread_last",
    "angle_abs",
)


def loop_jacobian(
    cell: QRNNCell, x_t: torch.Tensor, z_prev: torch.Tensor, psi_prev: torch.Tensor
) -> torch.Tensor:
    """Per-sample ∂z_t/∂z_{t-1} [B, R, R] (row: output readout, column: input readout) with the
    step features x_t and ψ_{t-1} held fixed, by R vector-Jacobian products (the samples of a
    batch are independent). ``psi_prev`` may be an ensemble (:mod:`.forgetting`). Zero for a cell
    without readout feedback."""
    batch, readouts = z_prev.shape
    if not cell.config.feedback:
        return z_prev.new_zeros(batch, readouts, readouts)
    z = z_prev.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        _, out = cell.advance(psi_prev.detach(), cell.angles(x_t.detach(), z))
        out = out.to(z.dtype)
        eye = torch.eye(out.shape[1], dtype=out.dtype)
        rows = []
        for r in range(out.shape[1]):
            (g,) = torch.autograd.grad(
                out, z, eye[r].expand_as(out), retain_graph=r + 1 < out.shape[1]
            )
            rows.append(g)
    return torch.stack(rows, dim=1)


def random_state_z_abs(n_qubits: int) -> float:
    """E|⟨P⟩| of one non-identity Pauli on a Haar-random n-qubit state, ≈ √(2/π)/√(2ⁿ+1): the
    scrambled level of the readouts."""
    return math.sqrt(2 / math.pi) / math.sqrt((1 << n_qubits) + 1)


def loop_report(
    model: nn.Module, x: torch.Tensor, *, n_times: int = 8, lengths: torch.Tensor | None = None
) -> dict[str, float]:
    """Loop gain and scrambling monitor of a model with a :class:`QRNNCore` (``model.core``,
    ``model.embed``) on inputs ``x`` (see the module docstring for the keys).

    The gain is measured at ``n_times`` evenly spaced steps, over the samples whose step t is a real
    token (``lengths``, or the non-padding tokens of a model whose inputs have a ``pad_id``); each
    value is the batch mean of the per-sample σ_max. Runs without gradients except the Jacobians,
    in eval mode, and leaves the model's mode as it was."""
    core = getattr(model, "core", None)
    if not isinstance(core, QRNNCore):
        raise ValueError(f"loop_report needs a model with a QRNN core, got {type(core).__name__}")
    if n_times < 1:
        raise ValueError(f"n_times must be >= 1, got {n_times}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            features = model.embed(x)
        batch, steps, _ = features.shape
        if lengths is None:
            pad = getattr(getattr(model, "inputs", None), "pad_id", None)
            if pad is not None and x.dim() == 2:
                lengths = (x != pad).sum(dim=1)
            else:
                lengths = torch.full((batch,), steps)
        lengths = lengths.clamp(1, steps)
        count = min(n_times, steps)
        times = {round(i * (steps - 1) / max(count - 1, 1)) for i in range(count)}
        if count == 1:
            times = {steps - 1}
        gains: list[float] = []
        peak = 0.0
        zs, thetas = [], []
        forget = bool(core.config.forget_every)
        with torch.no_grad():
            psi, z = core.initial_state(batch)
            z = z.to(features.dtype)
            for t in range(steps):
                x_t = features[:, t]
                real = lengths > t
                if t in times and core.config.feedback and bool(real.any()):
                    psi_real = select(psi, batch, real) if forget else psi[real]
                    jac = loop_jacobian(core, x_t[real], z[real], psi_real)
                    sigma = torch.linalg.matrix_norm(jac.double(), ord=2)
                    gains.append(float(sigma.mean()))
                    peak = max(peak, float(sigma.max()))
                angles = core.angles(x_t, z)
                psi, z = core.advance(psi, angles)
                (psi, z), _ = core.forget(t, (psi, z.to(features.dtype)), batch)
                zs.append(z)
                thetas.append(angles)
        zs_all, thetas_all = torch.stack(zs, dim=1), torch.stack(thetas, dim=1)
        last = zs_all[torch.arange(batch), lengths - 1]
        mask = (torch.arange(steps)[None, :] < lengths[:, None]).to(zs_all.dtype)
        real_steps = mask.sum()
        return {
            "gain_median": statistics.median(gains) if gains else 0.0,
            "gain_max": max(gains) if gains else 0.0,
            "gain_peak": peak,
            "z_abs": float((zs_all.abs().mean(-1) * mask).sum() / real_steps),
            "z_abs_last": float(last.abs().mean()),
            "z_spread_last": float(last.std(dim=0).mean()) if batch > 1 else 0.0,
            "angle_abs": float((thetas_all.abs().mean(-1) * mask.to(thetas_all.dtype)).sum())
            / float(real_steps),
        }
    finally:
        model.train(was_training)


def feedback_gain(cell: QRNNCell) -> torch.Tensor:
    """‖∂θ/∂z‖_F² of the cell's controller linearised with every activation slope taken as 1 (exact
    for a linear controller): the product of its layers' weights, the first restricted to the
    columns that read z_{t-1} (GLU layers: their value half). A differentiable stand-in for the
    loop gain's classical factor, for ``--gain-penalty``; 0 without readout feedback."""
    if not cell.config.feedback:
        return torch.zeros(())
    linears = [m for m in cell.controller.hidden if isinstance(m, nn.Linear)]
    linears.append(cell.controller.out)
    glu = cell.controller.config.activation == "glu"
    cols = slice(cell.input_size, cell.input_size + cell.n_readouts)
    product = None
    for i, layer in enumerate(linears):
        w = layer.weight if i else layer.weight[:, cols]
        if glu and i < len(linears) - 1:
            w = w[: w.shape[0] // 2]
        product = w if product is None else w @ product
    return product.pow(2).sum()


def gain_penalty(model: nn.Module) -> torch.Tensor:
    """Σ :func:`feedback_gain` over every QRNN cell of ``model`` (the seq2seq encoder and decoder
    each have one)."""
    cells = [m for m in model.modules() if isinstance(m, QRNNCell)]
    if not cells:
        return torch.zeros(())
    return torch.stack([feedback_gain(c) for c in cells]).sum()
