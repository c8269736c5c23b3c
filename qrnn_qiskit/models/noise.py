"""Noise-aware training: an engine wrapper whose readouts look like a noisy replay's.

On IBM (fake) backends a replay readout is, to a good approximation, the noiseless one shrunk by a
per-step factor λ_t (the ESP of the transpiled step-t prefix, times the readout contraction of the
measured qubits) plus shot noise. ``NoisyReadoutEngine`` wraps any engine with the
``StatevectorEngine`` interface and applies exactly that to every ``step_readouts`` output, so a
model trained through it meets the same readouts on hardware without mitigation:

    z̃_t = λ_t ⊙ z_t + ε_t,   ε_t ~ N(0, (1 − (λ_t ⊙ z_t)²) / shots), ε detached.

λ [T, R] comes from ``calibrate_shrink`` (a named fake backend: the replay templates transpiled at
level 3 on the layout an evaluation would pin), or a constant per-step factor. The state stays
pure; only what the controller and the head see changes. ``initial_state`` starts the step
counter that picks λ_t (the counter rides on the state tensor), ``readouts`` (z_0) stays exact.

Spec strings (``--train-noise``): ``fake_fez``, ``fake_fez:shots=4000``, ``shots=2000``,
``lambda=0.985,shots=4000`` (λ_t = 0.985^t), comma-separated ``key=value`` after an optional
backend name; ``none`` for off. For ``--model mqrnn`` only a fake backend with dynamic circuits
(optionally ``:level=L,seed=S``, its layout choice) applies: its calibrated channels enter the
exact simulation (:mod:`qrnn_qiskit.models.measured_noise`); :func:`check_measured_noise` refuses
the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import QRNNError

_STEP = "_qrnn_noise_step"


@dataclass(frozen=True)
class TrainNoise:
    """A parsed ``--train-noise`` spec: ``backend`` (fake name for λ), ``per_step`` (constant λ per
    step, used without a backend), ``shots`` (0: no shot noise), ``optimization_level``,
    ``seed``."""

    backend: str = ""
    per_step: float = 1.0
    shots: int = 0
    optimization_level: int = 3
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.backend) or self.per_step < 1.0 or self.shots > 0

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "per_step": self.per_step,
            "shots": self.shots,
            "optimization_level": self.optimization_level,
            "seed": self.seed,
        }


MAX_SHOTS = 10**9  # the Gaussian shot noise is ~1/sqrt(shots): more is no noise at all
MAX_SEED = 2**31 - 1  # Aer's seeds


def parse_train_noise(text: str | None) -> TrainNoise:
    """``[fake backend][:key=value,...]`` with keys shots, lambda, level, seed; ``none`` for off.
    One-line QRNNError for anything else."""
    text = (text or "none").strip()
    if text.lower() in ("none", "off", ""):
        return TrainNoise()
    head, _, tail = text.partition(":")
    if "=" in head:  # no backend, only options
        head, tail = "", text
    backend = ""
    if head:
        from ..backends.noisy import fake_backend

        fake_backend(head)  # validates (a wrong name lists the valid ones)
        backend = head.lower()
    values: dict = {}
    for item in filter(None, (part.strip() for part in tail.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in ("shots", "lambda", "level", "seed"):
            raise QRNNError(
                f"unknown --train-noise option {item!r}; write [fake backend][:]shots=N,"
                "lambda=λ,level=L,seed=S (e.g. fake_fez:shots=4000)"
            )
        try:
            values[key] = float(value) if key == "lambda" else int(value)
        except ValueError:
            raise QRNNError(f"--train-noise {key}={value!r} is not a number") from None
    per_step = values.get("lambda", 1.0)
    if backend and "lambda" in values:
        raise QRNNError(
            "--train-noise: give a backend (λ from its calibrations) or lambda=, not both"
        )
    if not 0.0 < per_step <= 1.0:
        raise QRNNError(f"--train-noise lambda must be in (0, 1], got {per_step}")
    shots = values.get("shots", 0)
    if not 0 <= shots <= MAX_SHOTS:  # 1e20 passed here and overflowed at the first step
        raise QRNNError(f"--train-noise shots must be in 0..{MAX_SHOTS:,}, got {shots}")
    seed = values.get("seed", 0)
    if not 0 <= seed <= MAX_SEED:
        raise QRNNError(f"--train-noise seed must be in 0..{MAX_SEED:,}, got {seed}")
    level = values.get("level", 3)
    if level not in (0, 1, 2, 3):
        raise QRNNError(f"--train-noise level must be 0..3, got {level}")
    noise = TrainNoise(backend, per_step, shots, level, seed)
    if not noise.enabled:
        raise QRNNError(f"--train-noise {text!r} adds no noise; use none")
    return noise


def check_measured_noise(noise: TrainNoise) -> None:
    """Refuse, in one line, ``--train-noise`` forms that make no sense for ``--model mqrnn`` (its
    noise is a fake backend's calibrated channels inside the exact simulation: no readout shrink,
    no shot noise) and backends without dynamic circuits."""
    if not noise.enabled:
        return
    if not noise.backend or noise.shots or noise.per_step < 1.0:
        raise QRNNError(
            "--model mqrnn takes a fake backend alone (its calibrated channels enter the exact "
            "simulation, e.g. fake_kingston, optionally :level=L,seed=S); shots= and lambda= "
            "shape --model qrnn's readouts"
        )
    from ..backends.calibration import supports_dynamic
    from ..backends.targets import fake_backend

    device = fake_backend(noise.backend)
    if not supports_dynamic(device.target):
        raise QRNNError(
            f"{device.name} has no mid-circuit measure + reset + if_else (dynamic circuits): the "
            "measured QRNN cannot run there; use e.g. fake_kingston or fake_boston"
        )


def calibrate_shrink(spec, noise: TrainNoise, steps: int) -> np.ndarray:
    """λ [steps, R] per step and readout: from ``noise.backend``'s calibrations for the replay
    templates of ``spec`` (the layout a replay evaluation would pin there), else per_step^t."""
    from ..circuits.replay import measured_prefix, measurement_settings
    from ..circuits.spec import readout_labels

    n_readouts = len(readout_labels(spec))
    if not noise.backend:
        t = np.arange(1, steps + 1, dtype=float)[:, None]
        return np.repeat(noise.per_step**t, n_readouts, axis=1)
    from ..backends.layout import shrink_table
    from ..backends.noisy import AerExecutor, parse_target

    settings, assignment = measurement_settings(spec)
    templates = [measured_prefix(spec, t, s) for t in range(1, steps + 1) for s in settings]
    executor = AerExecutor(
        parse_target(f"aer-noisy:{noise.backend}"),
        noise.optimization_level,
        noise.seed,
        relax_idle=False,  # only its ISA circuits and calibrations are used; nothing runs
    )
    isa = executor.prepare(templates)
    return shrink_table(
        spec,
        isa,
        executor.calibration_target,
        steps,
        settings,
        assignment,
        measure=True,
        device=executor.description,
    )


class NoisyReadoutEngine:
    """``engine`` with replay-like readouts: z_t → λ_t·z_t (+ shot noise). An
    :class:`~qrnn_qiskit.backends.base.Engine` (everything but the readouts of ``step_readouts``,
    ``recording`` and ``capabilities`` included, is the wrapped engine's); drops into
    ``QRNNCore(engine=...)``.

    ``shrink`` [T, R] (or None: no shrink); steps past T continue geometrically with the last
    step's ratio. ``enabled = False`` passes readouts through unchanged."""

    def __init__(
        self,
        engine,
        shrink: np.ndarray | None = None,
        shots: int = 0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        self.engine = engine
        if shrink is not None:
            shrink = np.asarray(shrink, dtype=float)
            if shrink.ndim != 2 or shrink.shape[1] != engine.n_readouts or len(shrink) < 1:
                raise QRNNError(
                    f"shrink must be [steps, {engine.n_readouts}], got {tuple(shrink.shape)}"
                )
            if (shrink <= 0).any() or (shrink > 1).any():
                raise QRNNError("shrink factors must lie in (0, 1]")
        if shots < 0:
            raise QRNNError(f"shots must be >= 0, got {shots}")
        self.shrink = shrink
        self.shots = int(shots)
        self.generator = generator
        self.enabled = True

    # the engine's interface ------------------------------------------------------------
    n_params = property(lambda self: self.engine.n_params)
    n_readouts = property(lambda self: self.engine.n_readouts)
    n_qubits = property(lambda self: self.engine.n_qubits)
    dtype = property(lambda self: self.engine.dtype)
    device = property(lambda self: self.engine.device)

    def __getattr__(self, name: str):  # circuit, observables, kernel, sequence, ...
        if name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)

    def initial_state(self, batch: int) -> torch.Tensor:
        state = self.engine.initial_state(batch)
        setattr(state, _STEP, 0)
        return state

    def step(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        out = self.engine.step(state, angles)
        setattr(out, _STEP, getattr(state, _STEP, 0) + 1)
        return out

    def readouts(self, state: torch.Tensor) -> torch.Tensor:
        return self.engine.readouts(state)

    def step_readouts(self, state: torch.Tensor, angles: torch.Tensor):
        out, z = self.engine.step_readouts(state, angles)
        t = getattr(state, _STEP, 0) + 1
        setattr(out, _STEP, t)
        return out, self.corrupt(z, t)

    # the noise -------------------------------------------------------------------------
    def factor(self, t: int) -> np.ndarray | None:
        """λ_t [R] (t ≥ 1)."""
        if self.shrink is None:
            return None
        if t <= len(self.shrink):
            return self.shrink[t - 1]
        last = self.shrink[-1]
        ratio = self.shrink[-1] / self.shrink[-2] if len(self.shrink) > 1 else last
        return last * np.clip(ratio, 0.0, 1.0) ** (t - len(self.shrink))

    def corrupt(self, z: torch.Tensor, t: int) -> torch.Tensor:
        if not self.enabled:
            return z
        lam = self.factor(t)
        if lam is not None:
            z = z * torch.as_tensor(lam, dtype=z.dtype, device=z.device)
        if self.shots:
            with torch.no_grad():
                variance = (1.0 - z.detach() ** 2).clamp_min(0.0) / self.shots
                noise = (
                    torch.randn(z.shape, dtype=z.dtype, device=z.device, generator=self.generator)
                    * variance.sqrt()
                )
            z = z + noise
        return z

    def __repr__(self) -> str:
        lam = (
            "none"
            if self.shrink is None
            else f"{self.shrink[0].mean():.3f}…{self.shrink[-1].mean():.3f}"
        )
        return f"NoisyReadoutEngine({self.engine!r}, shrink={lam}, shots={self.shots})"


def noisy_engine(engine, spec, noise: TrainNoise, steps: int) -> NoisyReadoutEngine:
    """The wrapper for a parsed spec: λ calibrated for ``steps`` steps, shot noise at its shots."""
    shrink = calibrate_shrink(spec, noise, steps) if noise.backend or noise.per_step < 1 else None
    return NoisyReadoutEngine(engine, shrink, noise.shots)


__all__ = [
    "NoisyReadoutEngine",
    "TrainNoise",
    "calibrate_shrink",
    "check_measured_noise",
    "noisy_engine",
    "parse_train_noise",
]
