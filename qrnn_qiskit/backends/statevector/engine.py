"""``StatevectorEngine``: the thin facade over a compiled program and one set of kernels.

It compiles the circuit and observables once (``program.py``), chooses its kernels once (native C on
the CPU where they build, torch elsewhere, ``kernels_native.py`` / ``kernels_torch.py``), applies
the circuit's global phase — a constant or a linear function of the angles — in one place
(``_phase``, from ``apply`` and ``apply_vjp``), and exposes the
:class:`~qrnn_qiskit.backends.base.Engine` contract with the reversible tape as its memory strategy
(``recording``).

Basis order is Qiskit's: bit q of the amplitude index is qubit q, so ``state`` compares directly
with ``qiskit.quantum_info.Statevector.data``. Everything is differentiable with autograd.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from ..base import EngineCapabilities
from . import native
from .autograd import ReadoutFunction, StepFunction
from .kernels_native import NativeKernels
from .kernels_torch import TorchKernels
from .program import compile_readouts, compile_step
from .tape import ReversibleTape

KERNELS = ("auto", "native", "torch")


class StatevectorEngine:
    """Batched statevector simulator of one parametrized circuit, compiled from Qiskit.

    Args:
        circuit: a parametrized circuit over ``gates.SUPPORTED_GATES`` (and any constant
            single-qubit or monomial gate); gate angles and the global phase may be numbers or
            linear expressions Σ a·θ + b of the parameters.
        observables: readout observables (Hermitian ``SparsePauliOp`` s on ``circuit.num_qubits``
        qubits). dtype: ``torch.complex64`` (default) or ``torch.complex128``.
        device: torch device ("cpu", "cuda", ...).
        group_size: qubits per Kronecker group of the torch kernels (default:
            :func:`~.kernels_torch.default_group_size`).
        kernel: ``"auto"`` (native CPU kernels where they load, else torch), ``"native"`` (required:
        an
            error if they cannot be built) or ``"torch"``. ``engine.kernel`` says which one runs.
    """

    capabilities = EngineCapabilities(statevector=True, reversible=True)

    def __init__(
        self,
        circuit: QuantumCircuit,
        observables: Sequence[SparsePauliOp],
        *,
        dtype: torch.dtype = torch.complex64,
        device: str | torch.device = "cpu",
        group_size: int | None = None,
        kernel: str = "auto",
    ) -> None:
        if dtype not in (torch.complex64, torch.complex128):
            raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
        if group_size is not None and (
            isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
        ):
            raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be 'auto', 'native' or 'torch', got {kernel!r}")
        self.circuit = circuit
        self.program = compile_step(circuit)
        self.n_qubits = self.program.n_qubits
        self.dim = self.program.dim
        self.dtype = dtype
        self.real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
        self.device = torch.device(device)
        self.parameters = list(self.program.parameters)
        self.n_params = self.program.n_params
        self.observables = list(observables)
        self.readout_program = compile_readouts(self.observables, self.n_qubits)
        self.n_readouts = len(self.observables)
        phase = self.program.phase
        self._phase_coefs = None  # per-sample phase e^{i(θ·coefs + offset)} when parametrized
        self._phase_constant = complex(np.exp(1j * phase.offset)) if phase.constant else None
        if not phase.constant:
            coefs = np.zeros(self.n_params)
            for p, c in phase.terms:
                coefs[p] += c
            self._phase_coefs = torch.tensor(coefs, dtype=torch.float64, device=self.device)
            self._phase_offset = phase.offset
        self.n_segments = len(self.program.segments)
        # the torch kernels always exist: the autograd oracle and the native kernels' fallback
        self.torch_kernels = TorchKernels(
            self.program,
            self.readout_program,
            dtype=dtype,
            device=self.device,
            group_size=group_size,
        )
        self.kernels: TorchKernels | NativeKernels = self._choose_kernels(kernel)
        self.kernel = self.kernels.name
        self._tape: ReversibleTape | None = None

    def _choose_kernels(self, kernel: str) -> TorchKernels | NativeKernels:
        if kernel == "torch" or (kernel == "auto" and self.device.type != "cpu"):
            return self.torch_kernels
        if self.device.type != "cpu":
            raise ValueError(f"kernel='native' runs on the CPU only, not on {self.device}")
        if self.n_qubits < native.MIN_QUBITS:
            if kernel == "native":
                raise ValueError(
                    f"kernel='native' needs at least {native.MIN_QUBITS} qubits, got "
                    f"{self.n_qubits}"
                )
            return self.torch_kernels
        if native.load() is None:
            if kernel == "native":
                raise RuntimeError(f"kernel='native' requested but {native.status()}")
            return self.torch_kernels
        return NativeKernels(self.program, self.readout_program, dtype=self.dtype)

    @property
    def groups(self) -> list[tuple[int, int]]:
        """Qubit groups (lo, hi) of the torch kernels' Kronecker blocks."""
        return self.torch_kernels.groups

    # ------------------------------------------------------------------------------ primitives
    def bank(self, angles: torch.Tensor) -> torch.Tensor:
        """The torch kernels' op bank [B, ops, 2, 2] of ``angles`` [B, P] (differentiable)."""
        return self.torch_kernels.bank(angles)

    @property
    def global_phase(self) -> complex | None:
        """The circuit's global phase e^{iφ} when it is constant, else ``None``."""
        return self._phase_constant

    def _phases(self, angles: torch.Tensor, conjugate: bool) -> torch.Tensor | complex | None:
        """e^{iφ} (or its conjugate) as a number, per sample [B, 1], or ``None`` for 1."""
        if self._phase_coefs is None:
            if self._phase_constant == 1.0:
                return None
            return self._phase_constant.conjugate() if conjugate else self._phase_constant
        # in float64: transpiled circuits carry large constant phases
        phi = torch.matmul(angles.to(torch.float64), self._phase_coefs) + self._phase_offset
        phi = -phi if conjugate else phi
        return torch.complex(torch.cos(phi), torch.sin(phi)).to(self.dtype)[:, None]

    def _phase(
        self, angles: torch.Tensor, *states: torch.Tensor | None, conjugate: bool = False
    ) -> tuple[torch.Tensor | None, ...]:
        """The global phase (or its conjugate) applied to ``states``; the only place it is
        applied."""
        phase = self._phases(angles, conjugate)
        if phase is None:
            return states
        return tuple(s * phase if s is not None else None for s in states)

    def apply(
        self, state: torch.Tensor, angles: torch.Tensor, *, readouts: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(U(θ)·state, its readouts or ``None``), without autograd, on this engine's kernels."""
        out, values = self.kernels.forward(state, angles, readouts)
        (out,) = self._phase(angles, out)
        return out, values

    def apply_vjp(
        self,
        state: torch.Tensor,
        angles: torch.Tensor,
        grad: torch.Tensor | None,
        readout_grad: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Walk one step back from its output ``state``: (ψ_in, ∂L/∂ψ_in, ∂L/∂angles), given the
        gradient ``grad`` of the output state (``None``: zero) and ``readout_grad`` of its readouts
        (``None``: the step's readouts were not read). No autograd. U = e^{iφ}·V: the pair first
        walks back through e^{-iφ} (the readout weights commute with it); a parametrized φ adds
        ∂L/∂φ = -Σ_k Im(g_k* ψ_k) (the readouts' part of g contributes nothing: ⟨ψ|W|ψ⟩ is
        real)."""
        dphi = None
        if self._phase_coefs is not None and grad is not None:
            dphi = -(grad.conj() * state).imag.sum(dim=-1)
        state, grad = self._phase(angles, state, grad, conjugate=True)
        psi, g, grad_angles = self.kernels.backward(state, angles, grad, readout_grad)
        if dphi is not None:
            coefs = self._phase_coefs.to(grad_angles.dtype)
            grad_angles = grad_angles + dphi.to(grad_angles.dtype)[:, None] * coefs
        return psi, g, grad_angles

    # ------------------------------------------------------------------------------ the Engine
    # contract
    def initial_state(self, batch: int) -> torch.Tensor:
        """|0…0⟩ as a [batch, 2**n] complex tensor."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        state = torch.zeros(batch, self.dim, dtype=self.dtype, device=self.device)
        state[:, 0] = 1.0
        return state

    def step(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Apply the circuit with per-sample angles [batch, P] (ordered as ``circuit.parameters``).

        Differentiable; the backward pass is hand-written and recomputes intermediate states from
        the output (unitary steps are reversible), so only the output state is kept for it.
        """
        angles = self._check(state, angles)
        out, _ = StepFunction.apply(state, angles, self, None, False)
        return out

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        """Real expectation values [batch, len(observables)] of the readout observables
        (differentiable)."""
        self._check(state)
        return ReadoutFunction.apply(state, self)

    def step_readouts(
        self, state: torch.Tensor, angles: torch.Tensor, tape: ReversibleTape | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` then ``readouts`` in one call. Inside :meth:`recording` (or with an explicit
        ``tape``) no state is stored for backward at all: the backward pass walks the tape's
        sequence in reverse, recomputing ψ_{t-1} = U(θ_t)† ψ_t."""
        angles = self._check(state, angles)
        return StepFunction.apply(
            state, angles, self, tape if tape is not None else self._tape, True
        )

    @contextmanager
    def recording(self, batch: int | None = None, steps: int | None = None) -> Iterator[None]:
        """One pass over a sequence: with autograd enabled, the steps inside share a
        :class:`ReversibleTape` (memory independent of T); without, nothing is kept."""
        if not torch.is_grad_enabled():
            yield
            return
        previous, self._tape = self._tape, ReversibleTape()
        try:
            yield
        finally:
            self._tape = previous

    def sequence(
        self, angles: torch.Tensor, state: torch.Tensor | None = None, *, reversible: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run fixed angles [batch, T, P] from ``state`` (default |0…0⟩): (readouts [batch, T, R],
        final state)."""
        if angles.dim() != 3:
            raise ValueError(
                f"angles must have shape [batch, T, {self.n_params}], got {tuple(angles.shape)}"
            )
        state = self.initial_state(angles.shape[0]) if state is None else state
        tape = ReversibleTape() if reversible else None
        values = []
        for t in range(angles.shape[1]):
            state, z = self.step_readouts(state, angles[:, t], tape)
            values.append(z)
        return torch.stack(values, dim=1), state

    # ------------------------------------------------------------------------------ oracles
    def step_autograd(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """``step`` differentiated by plain autograd on the torch kernels (keeps every
        intermediate): the oracle for the hand-written backward."""
        angles = self._check(state, angles)
        out = self.torch_kernels.apply_autograd(state, self.torch_kernels.bank(angles))
        phase = self._phases(angles, conjugate=False)
        return out if phase is None else out * phase

    def readouts_autograd(self, state: torch.Tensor) -> torch.Tensor:
        """``readouts`` differentiated by plain autograd: the oracle for the hand-written
        backward."""
        self._check(state)
        return self.torch_kernels.readouts_autograd(state)

    # ------------------------------------------------------------------------------ housekeeping
    def _check(
        self, state: torch.Tensor, angles: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        if state.dim() != 2 or state.shape[1] != self.dim:
            raise ValueError(f"state must have shape [batch, {self.dim}], got {tuple(state.shape)}")
        if state.dtype != self.dtype:
            raise ValueError(f"state dtype {state.dtype} does not match the engine's {self.dtype}")
        if angles is None:
            return None
        if angles.dim() != 2 or angles.shape != (state.shape[0], self.n_params):
            raise ValueError(
                f"angles must have shape [{state.shape[0]}, {self.n_params}], got "
                f"{tuple(angles.shape)}"
            )
        return angles.to(self.real_dtype)

    def to(self, device: str | torch.device) -> StatevectorEngine:
        """A copy of this engine on another device."""
        return StatevectorEngine(
            self.circuit,
            self.observables,
            dtype=self.dtype,
            device=device,
            group_size=self.torch_kernels.group_size,
            kernel="auto" if self.kernel == "native" else "torch",
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tape": None}

    def __repr__(self) -> str:
        return (
            f"StatevectorEngine(n_qubits={self.n_qubits}, params={self.n_params}, "
            f"readouts={self.n_readouts}, segments={self.n_segments}, dtype={self.dtype}, "
            f"device={self.device}, kernel={self.kernel!r})"
        )
