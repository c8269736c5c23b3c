"""How a trained run is evaluated on a target: ``EvalConfig``, saved with every evaluation; its
fields are the options of ``qrnn eval``/``submit`` (``options.py``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..circuits.dynamic import validate_coupling
from ..options import ConfigError, option, require, require_finite

PROTOCOLS = ("replay", "dynamic")
MAX_SHOTS = 1_000_000  # per circuit; IBM backends accept far fewer (typically 100,000)
MAX_SAMPLES = 100_000
MAX_SEED = 2**31 - 1  # the transpiler needs seed >= 0; round r's simulator seed is seed·100003 + r


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class EvalConfig:
    """How a trained run is evaluated on a target (saved with every evaluation)."""

    target: str = option(
        "exact",
        "exact (outcome probabilities of the ideal circuits) | aer (ideal shots) | "
        "aer-noisy:<fake backend> | aer-noisy:depolarizing:<p> | ibm:<backend>",
    )
    protocol: str = option(
        "replay",
        "replay (the trained model) or dynamic (mid-circuit measurement + feedforward)",
        choices=PROTOCOLS,
    )
    shots: int = option(4000, "shots per circuit")
    samples: int = option(8, "input sequences from the task's evaluation set")
    max_steps: int = option(
        0, "evaluate only the first N steps (0: whole sequences; a prefix has no task metric)"
    )
    seed: int = option(0, "simulator and transpiler seed")
    optimization_level: int = option(1, "preset pass manager level 0..3")
    coupling: str = option("cnot", "dynamic: cnot (projective) or a weak coupling angle in radians")
    corrections: int = option(8, "dynamic: feedforward corrections per step")
    readout_error: float = option(0.0, "aer-noisy:depolarizing: readout flip probability")

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                "protocol", f"must be one of {', '.join(PROTOCOLS)}; got {self.protocol!r}"
            )
        require(
            _int(self.shots) and 1 <= self.shots <= MAX_SHOTS,
            "shots",
            f"must be an integer in 1..{MAX_SHOTS:,}, got {self.shots}",
        )
        require(
            _int(self.samples) and 1 <= self.samples <= MAX_SAMPLES,
            "samples",
            f"must be an integer in 1..{MAX_SAMPLES:,}, got {self.samples}",
        )
        require(
            _int(self.max_steps) and self.max_steps >= 0,
            "max_steps",
            f"must be >= 0, got {self.max_steps}",
        )
        require(
            _int(self.seed) and 0 <= self.seed <= MAX_SEED,
            "seed",
            f"must be an integer in 0..{MAX_SEED:,}, got {self.seed!r}",
        )
        require(
            self.optimization_level in (0, 1, 2, 3),
            "optimization_level",
            f"must be 0..3, got {self.optimization_level}",
        )
        require(
            _int(self.corrections) and self.corrections >= 0,
            "corrections",
            f"must be >= 0, got {self.corrections}",
        )
        require_finite(self.readout_error, "readout_error")
        require(
            0.0 <= self.readout_error <= 0.5,
            "readout_error",
            f"must be in [0, 0.5], got {self.readout_error}",
        )
        try:
            validate_coupling(self.coupling)
        except ValueError as error:
            raise ConfigError("coupling", f": {error}") from None

    def to_dict(self) -> dict:
        return asdict(self)
