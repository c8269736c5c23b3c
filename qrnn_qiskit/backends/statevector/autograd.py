"""The engine's autograd functions: one step (with or without its readouts) and the readouts alone,
each with the hand-written backward of ``StatevectorEngine.apply_vjp`` / ``readouts_vjp``."""

from __future__ import annotations

import torch


class StepFunction(torch.autograd.Function):
    """ψ_out, z = U(θ)ψ (and its readouts). Saved for backward: the angles, and without a
    ``ReversibleTape`` also the output state. Gradients that do not reach an output arrive as
    ``None`` (not materialised), so the kernels skip them."""

    @staticmethod
    def forward(ctx, state, angles, engine, tape, with_readouts):
        ctx.set_materialize_grads(False)
        with torch.no_grad():
            out, values = engine.apply(state, angles, readouts=with_readouts)
            if values is None:
                values = out.new_zeros(out.shape[0], 0).real
        ctx.engine, ctx.tape, ctx.with_readouts = engine, tape, with_readouts
        if tape is None:
            ctx.save_for_backward(angles, out)
        else:  # keep per-step memory minimal: the state is walked back from the tape
            ctx.save_for_backward(angles)
            ctx.position = tape.push(out.detach(), angles.detach())
        return out, values

    @staticmethod
    def backward(ctx, grad_out, grad_values):
        engine = ctx.engine
        if ctx.tape is None:
            angles, out = ctx.saved_tensors
        else:
            (angles,) = ctx.saved_tensors
            with torch.no_grad():
                out = ctx.tape.state_at(ctx.position, engine)
        with torch.no_grad():
            readout_grad = grad_values if ctx.with_readouts else None
            previous, grad_in, grad_angles = engine.apply_vjp(out, angles, grad_out, readout_grad)
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
        ctx.set_materialize_grads(False)
        ctx.engine = engine
        ctx.save_for_backward(state)
        with torch.no_grad():
            return engine.kernels.readouts(state)

    @staticmethod
    def backward(ctx, grad):
        if grad is None:
            return None, None
        (state,) = ctx.saved_tensors
        with torch.no_grad():
            return ctx.engine.kernels.readouts_vjp(state, grad), None
