"""The models' configs and choices, which need no torch: the CLI builds its options from them
before importing anything heavy. ``controller.py``, ``qrnn.py``, ``sequence.py`` and
``seq2seq.py`` hold the models themselves (and re-export these names)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ..circuits.spec import FEEDFORWARDS, MEASUREMENTS, QRNNSpec
from ..errors import QRNNError
from ..options import ConfigError, option, require, require_finite

if TYPE_CHECKING:
    from ..circuits.measured import MeasurementSpec

MODELS: tuple[str, ...] = ("qrnn", "mqrnn", "rnn", "lstm", "gru", "orthogonal")
ATTENTION_SCORES: tuple[str, ...] = ("additive", "dot")
ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "gelu", "glu", "leaky_relu", "tanh")
ANGLE_MAPS: tuple[str, ...] = ("identity", "tanh")


@dataclass(frozen=True)
class ControllerConfig:
    """Feedforward controller θ_t = g([e(x_t); z_{t-1}]).

    ``depth`` hidden layers of ``width`` units (0: a single linear map), ``activation`` between
    them, ``dropout`` after each hidden layer, and an ``angle_map`` on the output: ``identity`` (raw
    angles) or ``tanh`` (π·tanh). ``init_scale`` multiplies the last layer's initial weights (small
    → near-identity steps at the start of training; ``None``: 1 here, and
    :func:`init_scale_for_length` of the task's sequence length when a task builds the model).
    """

    width: int = option(128, "controller hidden width")
    depth: int = option(1, "controller hidden layers (0: a linear map)")
    activation: str = option("gelu", "controller nonlinearity", choices=ACTIVATIONS)
    dropout: float = option(0.0, "controller dropout after each hidden layer")
    angle_map: str = option(
        "identity",
        "map of the controller's output to angles: identity (raw) or tanh (π·tanh)",
        choices=ANGLE_MAPS,
    )
    init_scale: float | None = option(
        None,
        "scale of the controller's last-layer initial weights; default: from the task's sequence "
        "length T (1 up to T = 32, 0.1 beyond, ∝ 1/√T past T = 200: init_scale_for_length)",
    )

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                "activation", f"must be one of {', '.join(ACTIVATIONS)}; got {self.activation!r}"
            )
        if self.angle_map not in ANGLE_MAPS:
            raise ConfigError(
                "angle_map", f"must be one of {', '.join(ANGLE_MAPS)}; got {self.angle_map!r}"
            )
        require(_int(self.width) and self.width >= 1, "width", f"must be >= 1, got {self.width}")
        require(_int(self.depth) and self.depth >= 0, "depth", f"must be >= 0, got {self.depth}")
        require_finite(self.dropout, "dropout")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        if self.init_scale is not None:
            require_finite(self.init_scale, "init_scale")
            require(self.init_scale > 0, "init_scale", f"must be > 0, got {self.init_scale}")


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class QRNNConfig:
    """Everything that shapes a QRNN: the circuit spec, the controller and readout feedback."""

    spec: QRNNSpec = option(default_factory=lambda: QRNNSpec(8))
    controller: ControllerConfig = option(default_factory=ControllerConfig)
    feedback: bool = option(True, "feed the previous readouts z_{t-1} to the controller")
    forget_every: int = option(
        0,
        "a non-unitary forgetting step: reset one qubit (cycling through the register) after every "
        "K-th step of each pass, simulated exactly as a mixed state (up to 2^(n-1) state vectors "
        "per sequence; docs/training.md); 0: off",
        metavar="K",
    )

    def __post_init__(self) -> None:
        k = self.forget_every
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ConfigError("forget_every", f"must be an integer >= 0, got {k!r}")

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "controller": asdict(self.controller),
            "feedback": self.feedback,
            "forget_every": self.forget_every,
        }

    @classmethod
    def from_dict(cls, d: dict) -> QRNNConfig:
        return cls(
            QRNNSpec.from_dict(d["spec"]),
            ControllerConfig(**d["controller"]),
            bool(d["feedback"]),
            int(d.get("forget_every", 0)),
        )


def parse_qubits(text: str, n_qubits: int) -> tuple[int, ...]:
    """``all`` or a comma-separated list of qubit indices (one-line QRNNError otherwise)."""
    text = str(text).strip().lower()
    if text in ("all", ""):
        return tuple(range(n_qubits))
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise QRNNError(f"measured qubits must be 'all' or a list like 0,2; got {text!r}") from None


@dataclass(frozen=True)
class MeasuredConfig:
    """The measured QRNN's measurement and feedforward (``--model mqrnn``; circuit and controller
    come from the QRNN options: --qubits, --layers, --entangler, --width, ...)."""

    qubits: str = option(
        "all",
        "mqrnn: data qubits measured every step: all, or a comma-separated list (e.g. 0,2)",
        flag="measure-qubits",
    )
    measurement: str = option(
        "weak",
        "mqrnn: weak (each measured qubit through its own ancilla: H, RZZ(α), Y-basis measure, "
        "reset) or projective (measure the data qubit, then reset it)",
        choices=MEASUREMENTS,
    )
    coupling: float = option(
        math.pi / 4,
        "mqrnn weak measurement: coupling angle α in (0, π/2] (π/2: projective); "
        "E[(-1)^s] = sin α·⟨Z⟩",
    )
    train_coupling: bool = option(
        True,
        "mqrnn weak measurement: train α per measured qubit (α = π/2·sigmoid(u), bounded), "
        "starting at --coupling; --no-train-coupling keeps it fixed",
    )
    feedforward: str = option(
        "linear",
        "mqrnn: how the previous step's bits select the angles in real time: linear "
        "(θ = a(x) + Σ_r b_r(x)·s_r, one if_test per bit), table (θ = c_s(x), 2^k register-"
        "conditioned blocks) or none",
        choices=FEEDFORWARDS,
    )
    feedforward_bits: int = option(
        0, "mqrnn: measured bits fed forward (the first K measured qubits; 0: all)", metavar="K"
    )
    final_z: bool = option(
        False,
        "mqrnn: the head also reads ⟨Z_q⟩ of every data qubit after the step (a terminal "
        "projective readout)",
    )

    def __post_init__(self) -> None:
        if self.measurement not in MEASUREMENTS:
            raise ConfigError(
                "measurement", f"must be one of {', '.join(MEASUREMENTS)}; got {self.measurement!r}"
            )
        if self.feedforward not in FEEDFORWARDS:
            raise ConfigError(
                "feedforward", f"must be one of {', '.join(FEEDFORWARDS)}; got {self.feedforward!r}"
            )
        require_finite(self.coupling, "coupling")
        require(
            0.0 < self.coupling <= math.pi / 2 + 1e-12,
            "coupling",
            f"must be an angle in (0, π/2] (π/2: projective), got {self.coupling}",
        )
        require(
            not (self.train_coupling and self.measurement == "weak" and self.coupling >= 1.5707),
            "coupling",
            "π/2 (projective) cannot be trained through α = π/2·sigmoid(u): use "
            "--no-train-coupling or a smaller --coupling",
        )
        k = self.feedforward_bits
        require(
            isinstance(k, int) and not isinstance(k, bool) and k >= 0,
            "feedforward_bits",
            f"must be an integer >= 0 (0: all measured bits), got {k!r}",
        )

    def measurement_spec(self, n_qubits: int) -> MeasurementSpec:
        from ..circuits.measured import MeasurementSpec

        return MeasurementSpec(
            n_qubits,
            parse_qubits(self.qubits, n_qubits),
            self.measurement,
            self.feedforward,
            self.feedforward_bits or -1,
        )
