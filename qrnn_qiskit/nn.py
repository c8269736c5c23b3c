"""The QRNN as a PyTorch module with the training recipe inside: ``QRNN(input_size, n_qubits)``.

Like ``torch.nn.LSTM``, a :class:`QRNN` maps a feature sequence to an output sequence and a final
state; its outputs are the readouts z_1..z_T (Pauli expectation values of the carried n-qubit
state) and there is no head: put your own ``torch.nn.Linear`` on top. It is the trainer's
:class:`~qrnn_qiskit.models.qrnn.QRNNCore` with the same defaults ``qrnn train`` uses:

* the controller's last-layer initial scale follows the sequence length (``horizon``) by the
  trainer's own rule, :func:`~qrnn_qiskit.models.controller.init_scale_for_length`;
* :func:`param_groups` puts the controller's angle-writing layer in its own parameter group at
  ``ANGLE_LR_DEFAULT`` (0.03) × the learning rate, exactly as the trainer's optimiser does.

Example (a plain PyTorch loop)::

    import torch
    from qrnn_qiskit import QRNN

    qrnn = QRNN(input_size=4, n_qubits=3, horizon=10)
    head = torch.nn.Linear(qrnn.output_size, 1)
    optimizer = torch.optim.Adam(
        qrnn.param_groups(1e-2) + [{"params": head.parameters(), "lr": 1e-2}]
    )
    z, state = qrnn(torch.randn(8, 10, 4))  # z: [8, 10, 9] = <X_q>, <Y_q>, <Z_q> per step

Engines (one argument, ``engine``): ``"statevector"`` (default; the fast local engine),
``"aer"`` (exact Aer through EstimatorQNN + TorchConnector; slow, for cross-checks),
``"noisy:SPEC"`` (the statevector engine behind the noise-aware training wrapper of
``qrnn train --train-noise SPEC``, e.g. ``"noisy:fake_fez:shots=4000"`` or
``"noisy:lambda=0.985,shots=2000"``), or any :class:`~qrnn_qiskit.backends.base.Engine` object.
:meth:`QRNN.replay` runs a (trained) QRNN on a noisy fake backend with the hardware replay protocol.
"""

from __future__ import annotations

from typing import Any

import torch

from .backends import Engine
from .circuits import QRNNSpec, step_circuit
from .errors import QRNNError
from .models.controller import ControllerConfig, init_scale_for_length
from .models.qrnn import QRNNConfig, QRNNCore, QRNNState, default_engine
from .training.config import ANGLE_LR_DEFAULT, OptimConfig
from .training.optim import param_groups as _trainer_param_groups

ENGINES: tuple[str, ...] = ("statevector", "aer", "noisy:SPEC")
DTYPES = (torch.complex64, torch.complex128)
# state-sized buffers per sample while training on the statevector engine (the trainer's figure)
_STATEVECTOR_COPIES = 3

__all__ = ["ANGLE_LR_DEFAULT", "ENGINES", "QRNN", "param_groups"]


def param_groups(
    model: torch.nn.Module, lr: float, angle_lr: float | None = None
) -> list[dict[str, Any]]:
    """Optimizer parameter groups of ``model`` (any module holding QRNNs) with the trainer's
    learning rates: the QRNN controllers' angle-writing layers at ``angle_lr`` × ``lr`` (default
    ``ANGLE_LR_DEFAULT`` = 0.03, ``qrnn train --angle-lr``), every other parameter at ``lr``.

    Every group carries its ``lr`` (so ``torch.optim.Adam(param_groups(model, 1e-2))`` needs no
    default learning rate) and its ``lr_mult``: a schedule that sets ``group["lr"] = base ×
    group["lr_mult"]`` keeps the ratio. ``angle_lr=1`` gives one group.
    """
    optim = OptimConfig(lr=lr) if angle_lr is None else OptimConfig(lr=lr, angle_lr=angle_lr)
    groups = _trainer_param_groups(model, optim)
    for group in groups:
        group["lr"] = optim.lr * group["lr_mult"]
    return groups


def _positive_int(value: Any, name: str, *, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise QRNNError(f"QRNN {name} must be an integer >= 1, got {value!r}")


def _make_engine(
    engine: str | Engine | None, spec: QRNNSpec, dtype: torch.dtype, horizon: int | None
) -> Engine:
    """The engine named by ``engine`` (see the module docstring), or ``engine`` itself."""
    if engine is None or engine == "statevector":
        return default_engine(spec, dtype)
    if not isinstance(engine, str):
        if not all(hasattr(engine, name) for name in ("n_params", "step_readouts", "recording")):
            raise QRNNError(
                f"QRNN engine must be one of {', '.join(ENGINES)} or an Engine object, got "
                f"{type(engine).__name__}"
            )
        return engine
    if engine == "aer":
        from .backends.aer import AerEstimatorEngine

        return AerEstimatorEngine(spec)
    if engine.startswith("noisy:"):
        from .models.noise import noisy_engine, parse_train_noise

        noise = parse_train_noise(engine.partition(":")[2])
        # the trainer calibrates λ over the task's sequence length, 100 steps when unknown
        return noisy_engine(default_engine(spec, dtype), spec, noise, horizon or 100)
    raise QRNNError(
        f"QRNN engine must be one of {', '.join(ENGINES)} (SPEC as for qrnn train --train-noise, "
        f"e.g. noisy:fake_fez:shots=4000) or an Engine object, got {engine!r}"
    )


class QRNN(torch.nn.Module):
    """A QRNN layer: features [B, T, F] → (readouts [B, T, R], final state).

    Args:
        input_size: features per step F.
        n_qubits: register size n (1..24; memory grows as 2ⁿ per sequence).
        layers: step-circuit layers L (P = 2·n·L angles).
        entangler: ``cz_chain`` (a line of CZ, native on IBM Heron), ``cz_ring``, ``cx_ring``,
            ``cx_ladder``, ``rzz_chain`` or ``rzz_ring``.
        readouts: ``"xyz"`` (⟨X_q⟩, ⟨Y_q⟩, ⟨Z_q⟩: R = 3n), ``"z"`` (R = n), ``"zz"`` or a tuple
            of Pauli strings.
        batch_first: inputs and outputs [B, T, ·] (True, default) or [T, B, ·]. The state is
            batch-first either way.
        horizon: the typical sequence length T; sets the default ``init_scale`` by the trainer's
            rule (1 up to T = 32, 0.1 beyond, 0.1·√(200/T) past 200; ``None``: 1).
        engine: ``"statevector"`` (default; ``None`` means the same), ``"aer"``,
            ``"noisy:SPEC"`` (``--train-noise`` SPEC; λ calibrated over ``horizon`` steps, 100
            when it is ``None``) or an :class:`~qrnn_qiskit.backends.base.Engine`.
        width, depth, activation, dropout, angle_map: the controller MLP (``qrnn train``'s
            ``--width``, ``--depth``, ...; defaults as there).
        init_scale: the controller's last-layer initial scale (``None``: from ``horizon``).
        feedback: feed the previous readouts z_{t-1} to the controller.
        dtype: the state's precision, ``torch.complex64`` (default) or ``torch.complex128``.

    Every invalid argument raises a one-line :class:`~qrnn_qiskit.errors.QRNNError`.
    """

    def __init__(
        self,
        input_size: int,
        n_qubits: int,
        layers: int = 2,
        entangler: str = "cz_chain",
        readouts: str | tuple[str, ...] = "xyz",
        batch_first: bool = True,
        horizon: int | None = None,
        engine: str | Engine | None = "statevector",
        *,
        width: int = 128,
        depth: int = 1,
        activation: str = "gelu",
        dropout: float = 0.0,
        angle_map: str = "identity",
        init_scale: float | None = None,
        feedback: bool = True,
        dtype: torch.dtype = torch.complex64,
    ) -> None:
        super().__init__()
        _positive_int(input_size, "input_size")
        _positive_int(horizon, "horizon", allow_none=True)
        if dtype not in DTYPES:
            raise QRNNError(f"QRNN dtype must be torch.complex64 or torch.complex128, got {dtype}")
        spec = QRNNSpec(n_qubits, layers, entangler, readouts)  # ConfigError is a QRNNError
        if init_scale is None:
            init_scale = init_scale_for_length(horizon)
        controller = ControllerConfig(width, depth, activation, dropout, angle_map, init_scale)
        config = QRNNConfig(spec, controller, bool(feedback))
        try:
            self.core = QRNNCore(
                input_size, config, engine=_make_engine(engine, spec, dtype, horizon), dtype=dtype
            )
        except ValueError as error:  # an engine object of another circuit
            raise QRNNError(f"QRNN engine: {error}") from None
        self.batch_first = bool(batch_first)
        self.horizon = horizon
        self._checked_batches: set[int] = set()

    # -- description -------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self.core.input_size

    @property
    def n_qubits(self) -> int:
        return self.spec.n_qubits

    @property
    def output_size(self) -> int:
        """R, the readouts per step (3n for ``"xyz"``)."""
        return self.core.output_size

    @property
    def spec(self) -> QRNNSpec:
        """The step circuit's :class:`~qrnn_qiskit.circuits.spec.QRNNSpec`."""
        return self.core.config.spec

    @property
    def config(self) -> QRNNConfig:
        """The full :class:`~qrnn_qiskit.models.qrnn.QRNNConfig` (what ``qrnn train`` stores)."""
        return self.core.config

    @property
    def engine(self) -> Engine:
        return self.core.engine

    def circuit(self):
        """The step circuit U(θ) as a ``qiskit.QuantumCircuit`` with P parameters (the single
        definition every engine and hardware target runs)."""
        return step_circuit(self.spec)

    def param_groups(self, lr: float, angle_lr: float | None = None) -> list[dict[str, Any]]:
        """This QRNN's optimizer parameter groups at the trainer's learning rates: the
        angle-writing layer at ``angle_lr`` × ``lr`` (default 0.03 ×), the rest at ``lr``; e.g.
        ``torch.optim.Adam(qrnn.param_groups(1e-2))``. See :func:`param_groups` for a whole
        model."""
        return param_groups(self, lr, angle_lr)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"input_size={self.input_size}, n_qubits={s.n_qubits}, layers={s.layers}, "
            f"entangler={s.entangler!r}, readouts={s.readouts!r}, output_size={self.output_size}, "
            f"batch_first={self.batch_first}, horizon={self.horizon}, "
            f"init_scale={self.config.controller.init_scale:g}, "
            f"engine={type(self.engine).__name__}"
        )

    # -- running -----------------------------------------------------------------------------
    def _check_input(self, x: Any) -> torch.Tensor:
        """``x`` batch-first, or a one-line QRNNError saying what is wrong."""
        layout = "[batch, time, features]" if self.batch_first else "[time, batch, features]"
        if not isinstance(x, torch.Tensor):
            raise QRNNError(f"QRNN input must be a torch.Tensor {layout}, got {type(x).__name__}")
        if not x.is_floating_point():
            raise QRNNError(
                f"QRNN input must be a floating-point tensor, got {x.dtype} (embed token ids "
                "first, e.g. with torch.nn.Embedding)"
            )
        weight = self.core.controller.out.weight
        if x.dtype != weight.dtype:
            raise QRNNError(
                f"QRNN input is {x.dtype} but its parameters are {weight.dtype}; convert the "
                f"input (x.to({weight.dtype})) or the model (.to({x.dtype}))"
            )
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            expected = layout.replace("features", str(self.input_size))
            raise QRNNError(f"QRNN input must be {expected}, got shape {tuple(x.shape)}")
        if not self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise QRNNError(f"QRNN input needs at least one sequence and one step, got {layout}")
        return x

    def _check_state(self, state: Any, batch: int) -> None:
        if state is None:
            return
        if not (
            isinstance(state, tuple)
            and len(state) == 2
            and all(isinstance(part, torch.Tensor) for part in state)
        ):
            raise QRNNError("QRNN state must be the (ψ, z) tuple a previous call returned")
        psi, z = state
        if psi.shape[0] != batch or tuple(z.shape) != (batch, self.output_size):
            raise QRNNError(
                f"QRNN state is for batch {psi.shape[0]} but the input has batch {batch}"
            )

    def _check_memory(self, batch: int) -> None:
        capabilities = getattr(self.engine, "capabilities", None)
        if batch in self._checked_batches or not getattr(capabilities, "statevector", False):
            return
        from .backends.memory import check_memory

        check_memory(self.n_qubits, batch, what="QRNN", copies=_STATEVECTOR_COPIES)
        self._checked_batches.add(batch)

    def forward(
        self, x: torch.Tensor, state: QRNNState | None = None
    ) -> tuple[torch.Tensor, QRNNState]:
        """Run the sequence ``x`` ([B, T, F], or [T, B, F] with ``batch_first=False``) from
        ``state`` (``None``: ψ₀ = |0…0⟩).

        Returns ``(output, state)``: output the readouts z_1..z_T ([B, T, R] or [T, B, R], in
        ``x``'s dtype) and state the final ``(ψ_T, z_T)`` — the engine's quantum state ([B, 2ⁿ]
        complex amplitudes on the statevector engine) and the last readouts [B, R]. Pass it back
        to continue the sequence (as ``torch.nn.LSTM``'s ``(h, c)``; detach it for truncated
        backpropagation through time)."""
        x = self._check_input(x)
        self._check_state(state, x.shape[0])
        self._check_memory(x.shape[0])
        output, state = self.core(x, state)
        if not self.batch_first:
            output = output.transpose(0, 1)
        return output, state

    @torch.no_grad()
    def replay(
        self,
        x: torch.Tensor,
        target: str = "aer-noisy:fake_fez",
        shots: int = 4000,
        *,
        mitigate: str = "auto",
        seed: int = 0,
        optimization_level: int = 3,
        progress: bool = False,
    ) -> torch.Tensor:
        """The readouts of ``x`` (laid out as for :meth:`forward`) estimated on a simulator
        target with the hardware *replay* protocol of ``qrnn eval`` (round t runs the prefix
        circuits U(θ_t)…U(θ_1)|0⟩ with ``shots`` shots per circuit and measurement setting; θ_t
        comes from the controller fed with the readouts estimated at round t−1).

        ``target``: ``exact``, ``aer``, ``aer-noisy:<fake backend>`` (IBM noise models, e.g.
        ``aer-noisy:fake_fez``) or ``aer-noisy:depolarizing:<p>``; ``mitigate`` as ``qrnn eval
        --mitigate`` (``auto``: the in-loop ESP rescale on fake backends). IBM targets need a run
        directory (``qrnn submit``). Returns noisy readouts in ``x``'s dtype; compare them with
        ``self(x)[0]``. A noise-aware engine (``noisy:``) is bypassed: the target is the noise."""
        from .backends.targets import parse_target
        from .evaluation.config import EvalConfig
        from .evaluation.runner import build_executor, make_protocol
        from .models.noise import NoisyReadoutEngine

        x = self._check_input(x)
        config = EvalConfig(
            target=target,
            shots=shots,
            samples=x.shape[0],
            seed=seed,
            optimization_level=optimization_level,
            mitigate=mitigate,
        )
        parsed = parse_target(config.target, config.readout_error)
        if parsed.kind == "ibm":
            raise QRNNError(
                "QRNN.replay runs simulator targets; for IBM Quantum train a run directory and "
                "use qrnn submit"
            )
        engine, was_training = self.core.engine, self.training
        if isinstance(engine, NoisyReadoutEngine):
            self.core.engine = engine.engine
        self.eval()
        try:
            protocol = make_protocol(config, _Replayable(self.core), x)
            executor = build_executor(parsed, config)
            isa = executor.prepare(protocol.templates, dynamic=protocol.dynamic)
            protocol.configure(isa, executor)  # mitigated replay: λ from the ISA templates
            rounds: Any = range(protocol.n_rounds)
            if progress:
                from tqdm.auto import tqdm

                rounds = tqdm(rounds, desc=f"replay on {executor.description}")
            for r in rounds:
                pubs = [(isa[i], values) for i, values in protocol.round_pubs(r)]
                protocol.absorb(r, executor.run(pubs, config.shots, seed=seed * 100_003 + r))
        finally:
            self.core.engine = engine
            self.train(was_training)
        z = torch.as_tensor(protocol.readouts(), dtype=x.dtype)
        return z if self.batch_first else z.transpose(0, 1)


class _Replayable(torch.nn.Module):
    """What the hardware protocols read of a sequence model (``embed`` and ``core``), for a bare
    QRNN whose inputs are already features."""

    def __init__(self, core: QRNNCore) -> None:
        super().__init__()
        self.embed = torch.nn.Identity()
        self.core = core
