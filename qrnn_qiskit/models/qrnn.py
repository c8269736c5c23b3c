"""The QRNN: a classical controller writes every angle of a quantum step circuit, read out by
Paulis.

``QRNNCell`` is one step — θ_t = controller([x_t; z_{t-1}]), (ψ_t, z_t) =
engine.step_readouts(ψ_{t-1}, θ_t) — over any :class:`~qrnn_qiskit.backends.base.Engine`;
``QRNNCore`` runs it over a sequence inside the engine's ``recording`` scope. The seq2seq encoder
and decoder and the hardware protocols use the cell, so the step is written once.

On the statevector engine ``QRNNCore`` runs the same recurrence as one *fused* pass
(:class:`FusedSequence`): the controller's first layer on the inputs for all steps in one matmul,
then per step only the readouts' part of it, the rest of the MLP and one engine call, without
autograd; the backward walks the sequence in reverse (the engine's reversible tape: memory
independent of T) with the MLP's vector-Jacobian products per step and its weight gradients as one
matmul each over all steps. Values and gradients are those of the step-by-step pass (the suite
checks it); set ``core.fused = False`` to run step by step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..backends import Engine, StatevectorEngine
from ..backends.statevector import ReversibleTape
from ..circuits import QRNNSpec, readout_observables, step_circuit
from . import forgetting
from .config import QRNNConfig
from .controller import Controller, Unrolled, activate, activation_backward

QRNNState = tuple[torch.Tensor, torch.Tensor]


def default_engine(spec: QRNNSpec, dtype: torch.dtype = torch.complex64) -> StatevectorEngine:
    """The statevector engine compiled from the spec's Qiskit step circuit and readouts."""
    return StatevectorEngine(step_circuit(spec), readout_observables(spec), dtype=dtype)


class QRNNCell(nn.Module):
    """One QRNN step over an injected :class:`~qrnn_qiskit.backends.base.Engine` (default: the
    statevector engine of the spec in ``dtype``). The state is (ψ, z): the engine's state and the
    readouts of the last step, z in the features' dtype."""

    def __init__(
        self,
        input_size: int,
        config: QRNNConfig,
        engine: Engine | None = None,
        dtype: torch.dtype = torch.complex64,
    ) -> None:
        super().__init__()
        self.config = config
        self.input_size = input_size
        spec = config.spec
        self.engine: Engine = engine if engine is not None else default_engine(spec, dtype)
        if self.engine.n_params != spec.n_params:
            raise ValueError(
                f"engine has {self.engine.n_params} parameters, the spec needs {spec.n_params}"
            )
        self.n_readouts = self.engine.n_readouts
        if config.forget_every and not isinstance(self.engine, StatevectorEngine):
            raise ValueError(
                "the forgetting step (forget_every) needs the statevector engine; got "
                f"{type(self.engine).__name__}"
            )
        in_features = input_size + (self.n_readouts if config.feedback else 0)
        self.controller = Controller(in_features, spec.n_params, config.controller)

    @property
    def output_size(self) -> int:
        return self.n_readouts

    def initial_state(self, batch: int) -> QRNNState:
        """(ψ_0 = |0…0⟩, z_0 = readouts of ψ_0)."""
        psi = self.engine.initial_state(batch)
        return psi, self.engine.readouts(psi)

    def angles(self, x_t: torch.Tensor, z_prev: torch.Tensor) -> torch.Tensor:
        """Circuit angles θ_t [B, P] from step features x_t [B, F] and previous readouts z_{t-1}
        [B, R]: the host-side half of a step (hardware protocols call it between executions)."""
        if not self.config.feedback:
            return self.controller(x_t)
        return self.controller(torch.cat([x_t, z_prev.to(x_t.dtype)], dim=-1))

    def step(self, x_t: torch.Tensor, state: QRNNState) -> tuple[torch.Tensor, QRNNState]:
        """(z_t [B, R], (ψ_t, z_t)) of one step from features x_t [B, F] and state (ψ_{t-1},
        z_{t-1})."""
        psi, z = state
        psi, z = self.engine.step_readouts(psi, self.angles(x_t, z))
        z = z.to(x_t.dtype)
        return z, (psi, z)

    def advance(
        self, psi: torch.Tensor, angles: torch.Tensor, tape: ReversibleTape | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ψ_t, z_t) of one step with angles [B, P] (z in the engine's real dtype): a pure state
        on any engine, or with ``config.forget_every`` an ensemble (ψ [B·r, 2ⁿ], :mod:`.forgetting`)
        whose branches all get their sequence's angles, z_t = Tr(Pρ_t); ``tape``: the reversible
        tape of the current stretch between resets."""
        if not self.config.forget_every:
            return self.engine.step_readouts(psi, angles)
        batch = angles.shape[0]
        spread = forgetting.spread(angles, forgetting.branches(psi, batch))
        psi, values = self.engine.step_readouts(psi, spread, tape)
        return psi, forgetting.ensemble_readouts(values, batch)

    def forget(self, t: int, state: QRNNState, batch: int) -> tuple[QRNNState, bool]:
        """The state after step ``t`` of a pass, with the reset applied when one is due; and
        whether one was (the engine's reversible tape cannot walk back through it)."""
        every = self.config.forget_every
        if not forgetting.reset_due(t, every):
            return state, False
        n = self.config.spec.n_qubits
        psi = forgetting.reset(state[0], batch, forgetting.reset_qubit(t, every, n), n)
        return (psi, state[1]), True


def _steps(engine, unrolled: Unrolled, pre, psi, z, wz, weights, record: dict | None):
    """The recurrence over the T steps of ``pre`` [T, B, H] (the first layer's input part, bias
    included) from (ψ, z), without autograd: (readouts [T, B, R], ψ_T). With ``record``, what the
    backward needs is kept in it (the engine's tape, angles, activations, previous readouts)."""
    real = engine.real_dtype
    tanh = unrolled.angle_map == "tanh"
    chain = [(act, weights[2 * i], weights[2 * i + 1]) for i, (act, _) in enumerate(unrolled.chain)]
    wz_t = wz.t()
    feedback = wz.shape[-1] > 0  # else the controller reads the inputs only
    zs = []
    steps = pre.shape[0]
    if record is not None:
        tape = record["tape"] = ReversibleTape()
        # per chain layer, [T, B, width] buffers filled step by step: the activations' inputs
        # (where their derivative needs them, else None) and outputs
        hs = record["hs"] = [None] * len(chain)
        acts = record["acts"] = [None] * len(chain)
        record["z_prev"], record["angles"] = [], []
    for t in range(steps):
        h = torch.addmm(pre[t], z, wz_t) if feedback else pre[t]
        if record is not None and feedback:
            record["z_prev"].append(z)
        for i, (act, w, b) in enumerate(chain):
            a = activate(act, h)
            if record is not None:
                if t == 0:
                    acts[i] = a.new_empty((steps, *a.shape))
                    if act in _NEEDS_INPUT:
                        hs[i] = h.new_empty((steps, *h.shape))
                acts[i][t] = a
                if hs[i] is not None:
                    hs[i][t] = h
            h = torch.addmm(b, a, w.t())
        y = torch.tanh(h) if tanh else h
        angles = (math.pi * y if tanh else h).to(real)
        psi, values = engine.apply(psi, angles, readouts=True)
        z = values.to(pre.dtype)
        zs.append(z)
        if record is not None:
            tape.push(psi, angles)
            if tanh:
                record["angles"].append(y)
    return torch.stack(zs), psi


# activations whose derivative needs their input (the others' need only their output)
_NEEDS_INPUT = ("gelu", "leaky_relu", "glu")


class FusedSequence(torch.autograd.Function):
    """(readouts [T, B, R], ψ_T) of the QRNN recurrence as one autograd node (see the module
    docstring). Inputs: the statevector engine, the controller :class:`Unrolled`, ``pre`` [T, B, H]
    (the first layer on the inputs, with its bias), ψ_0, z_0, the first layer's readout weights
    ``wz`` [H, R] and the chain's (weight, bias) pairs, flattened."""

    @staticmethod
    def forward(ctx, engine, unrolled, pre, psi0, z0, wz, *weights):
        """(readouts [T, B, R], ψ_T); keeps the engine's reversible tape for the backward."""
        ctx.set_materialize_grads(False)
        record: dict = {}
        with torch.no_grad():
            zs, psi = _steps(engine, unrolled, pre, psi0, z0, wz, weights, record)
        ctx.engine, ctx.unrolled, ctx.record = engine, unrolled, record
        ctx.save_for_backward(wz, *weights)
        return zs, psi

    @staticmethod
    def backward(ctx, grad_zs, grad_psi):
        """Gradients of ``pre``, ψ_0, z_0, ``wz`` and the chain's weights, walking the sequence in
        reverse."""
        engine, unrolled, record = ctx.engine, ctx.unrolled, ctx.record
        wz, *weights = ctx.saved_tensors
        tape, hs, acts, angles = record["tape"], record["hs"], record["acts"], record["angles"]
        steps = tape.length
        tanh = unrolled.angle_map == "tanh"
        chain = [(act, weights[2 * i]) for i, (act, _) in enumerate(unrolled.chain)]
        carry, g_psi = None, grad_psi
        with torch.no_grad():
            # the elementwise activations' derivatives for all steps at once (an activation's
            # backward op has a large fixed cost per call; the ones are a broadcast scalar, no
            # memory); GLU's backward runs per step
            slopes = []
            for i, (act, _) in enumerate(chain):
                if act in ("glu", "linear"):
                    slopes.append(None)
                    continue
                ones = acts[i].new_ones(()).expand_as(acts[i])
                slopes.append(activation_backward(act, ones, hs[i], acts[i]))
                hs[i] = None
            if tanh:  # θ = π·tanh(h): dθ/dh = π·(1 - y²)
                y = torch.stack(angles)
                record["angles"] = None
                map_slope = activation_backward("tanh", torch.full_like(y, math.pi), y, y)
                del y
            d_pre, d_chain = None, [None] * len(chain)  # [T, B, width] each, filled per step
            for t in reversed(range(steps)):
                g_z = grad_zs[t] if grad_zs is not None else None
                if carry is not None:
                    g_z = carry if g_z is None else g_z + carry
                out = tape.state_at(t, engine)
                previous, g_psi, g_angles = engine.apply_vjp(out, tape.angles(t), g_psi, g_z)
                tape.rewind(t, previous)
                dh = g_angles.to(wz.dtype)
                if tanh:
                    dh = dh * map_slope[t]
                for i in reversed(range(len(chain))):
                    act, w = chain[i]
                    if d_chain[i] is None:
                        d_chain[i] = dh.new_empty((steps, *dh.shape))
                    d_chain[i][t] = dh
                    da = torch.mm(dh, w)
                    if slopes[i] is not None:
                        dh = da * slopes[i][t]
                    elif act == "linear":
                        dh = da
                    else:
                        dh = activation_backward(act, da, hs[i][t], acts[i][t])
                if d_pre is None:
                    d_pre = dh.new_empty((steps, *dh.shape))
                d_pre[t] = dh
                carry = torch.mm(dh, wz) if wz.shape[-1] else None
            flat = d_pre.reshape(-1, d_pre.shape[-1])
            d_wz = torch.zeros_like(wz)
            if record["z_prev"]:
                z_prev = torch.stack(record["z_prev"])
                d_wz = torch.mm(flat.t(), z_prev.reshape(-1, z_prev.shape[-1]))
            d_weights = []
            for i in range(len(chain)):
                g = d_chain[i].reshape(-1, d_chain[i].shape[-1])
                a = acts[i].reshape(-1, acts[i].shape[-1])
                d_weights += [torch.mm(g.t(), a), g.sum(dim=0)]
        ctx.record = None
        d_z0 = carry if carry is not None else None
        return (None, None, d_pre, g_psi, d_z0, d_wz, *d_weights)


class QRNNCore(QRNNCell):
    """Recurrent core: ψ_t = U(θ_t) ψ_{t-1}, θ_t = controller([x_t; z_{t-1}]), z_t = readouts(ψ_t).

    ``forward(x)`` maps features [B, T, F] to readouts [B, T, R]; each pass is one
    ``engine.recording(B, T)`` scope (the statevector engine keeps no state per step: memory
    independent of T). On the statevector engine the pass is fused (:class:`FusedSequence`) unless
    ``fused`` is False or the controller's dropout is active. With ``config.forget_every`` the
    state is an ensemble of branches (:mod:`.forgetting`) and the pass runs step by step.
    """

    fused: bool = True

    def fusable(self, steps: int) -> bool:
        """Whether a pass of ``steps`` steps runs fused: the plain statevector engine on the CPU
        (not a subclass or a wrapper, which may change what a step returns), no active dropout,
        at least one step; anything else runs step by step."""
        return (
            self.fused
            and steps > 0
            and type(self.engine) is StatevectorEngine
            and self.engine.device.type == "cpu"
            and self.controller.unrollable
            and not self.config.forget_every
        )

    def _forward_fused(self, x: torch.Tensor, state: QRNNState | None):
        unrolled = self.controller.unrolled()
        first = unrolled.first
        features = self.input_size
        # the first layer on the inputs for every step at once, time-major [T, B, H]
        pre = nn.functional.linear(x.transpose(0, 1), first.weight[:, :features], first.bias)
        wz = first.weight[:, features:]
        psi, z = state if state is not None else self.initial_state(x.shape[0])
        z = z.to(x.dtype)
        weights = [p for _, lin in unrolled.chain for p in (lin.weight, lin.bias)]
        if torch.is_grad_enabled():
            zs, psi = FusedSequence.apply(self.engine, unrolled, pre, psi, z, wz, *weights)
        else:
            zs, psi = _steps(self.engine, unrolled, pre, psi, z, wz, weights, None)
        outputs = zs.transpose(0, 1)
        return outputs, (psi, outputs[:, -1])

    def forward(
        self, x: torch.Tensor, state: QRNNState | None = None
    ) -> tuple[torch.Tensor, QRNNState]:
        """Features [B, T, F] → (readouts [B, T, R], final (ψ_T, z_T))."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input [batch, time, {self.input_size}], got {tuple(x.shape)}"
            )
        if self.fusable(x.shape[1]):
            return self._forward_fused(x, state)
        if self.config.forget_every:
            return self._forward_forgetting(x, state)
        batch, steps, _ = x.shape
        with self.engine.recording(batch, steps):
            psi, z = state if state is not None else self.initial_state(batch)
            state = (psi, z.to(x.dtype))
            outputs = []
            for t in range(steps):
                z, state = self.step(x[:, t], state)
                outputs.append(z)
        return torch.stack(outputs, dim=1), state

    def _forward_forgetting(self, x: torch.Tensor, state: QRNNState | None):
        batch, steps, _ = x.shape
        psi, z = state if state is not None else self.initial_state(batch)
        state = (psi, z.to(x.dtype))
        record = torch.is_grad_enabled()
        tape = ReversibleTape() if record else None
        outputs = []
        for t in range(steps):
            psi, z = self.advance(state[0], self.angles(x[:, t], state[1]), tape)
            z = z.to(x.dtype)
            outputs.append(z)
            state, was_reset = self.forget(t, (psi, z), batch)
            if was_reset and record:
                tape = ReversibleTape()  # a reset is not reversible: a new segment
        return torch.stack(outputs, dim=1), state
