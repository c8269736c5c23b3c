"""The engine's autograd functions: one step (with or without its readouts) and the readouts alone,
each with the hand-written backward of ``StatevectorEngine.apply_vjp`` / ``readouts_vjp``."""

from __future__ import annotations

import torch


class StepFunction(torch.autograd.Function):
    """ψ_out, z = U(θ)ψ (and its readouts). Saved for backward: the angles, and without a
    ``ReversibleTape`` also the small op bank [B, ops, 2, 2] and the output state."""

    @staticmethod
    def forward(ctx, state, angles, engine, tape, with_readouts):
        with torch.no_grad():
            bank = engine.bank(angles)
            out, values = engine.apply(state, angles, readouts=with_readouts, bank=bank)
            if values is None:
                values = out.new_zeros(out.shape[0], 0).real
        ctx.engine, ctx.tape, ctx.with_readouts = engine, tape, with_readouts
        if tape is None:
            ctx.save_for_backward(angles, bank, out)
        else:  # keep per-step memory minimal: the bank is recomputed from the angles in backward
            ctx.save_for_backward(angles)
            ctx.position = tape.push(out.detach(), angles.detach())
        return out, values

    @staticmethod
    def backward(ctx, grad_out, grad_values):
        engine = ctx.engine
        if ctx.tape is None:
            angles, bank, out = ctx.saved_tensors
        else:
            (angles,) = ctx.saved_tensors
            bank = None
            with torch.no_grad():
                out = ctx.tape.state_at(ctx.position, engine)
        with torch.no_grad():
            readout_grad = grad_values if ctx.with_readouts else None
            previous, grad_in, grad_angles = engine.apply_vjp(
                out, angles, grad_out, readout_grad, bank=bank
            )
        if ctx.tape is not None:
            ctx.tape.rewind(ctx.position, previous)
        return (
            grad_in if ctx.needs_input_grad[0] else None,
            grad_angles if ctx.needs_input_grad[1] else None,
            None,
            None,
            None,
        )


class ReadoutFunction(torch.autograd.Function):
    """z = ⟨O_k⟩ of a state, with the hand-written backward."""

    @staticmethod
    def forward(ctx, state, engine):
        ctx.engine = engine
        ctx.save_for_backward(state)
        with torch.no_grad():
            return engine.kernels.readouts(state)

    @staticmethod
    def backward(ctx, grad):
        (state,) = ctx.saved_tensors
        with torch.no_grad():
            return ctx.engine.kernels.readouts_vjp(state, grad), None
