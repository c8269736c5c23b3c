"""How a trained run is evaluated on a target: ``EvalConfig``, saved with every evaluation; its
fields are the options of ``qrnn eval``/``submit`` (``options.py``). Importing this module imports
no Qiskit (the CLI builds its parser from it); validating a config does."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import QRNNError
from ..options import ConfigError, option, require, require_finite

PROTOCOLS = ("replay", "dynamic")
MAX_SHOTS = 1_000_000  # per circuit; IBM backends accept far fewer (typically 100,000)
MAX_SAMPLES = 100_000
MAX_SEED = 2**31 - 1  # the transpiler needs seed >= 0; round r's simulator seed is seed·100003 + r


MITIGATIONS = ("esp", "twins", "m3")
MITIGATE_CHOICES = "auto, none, or a comma-separated subset of esp, twins, m3"


TWIRLING = ("auto", "on", "off")
DD_SEQUENCES = ("off", "XX", "XpXm", "XY4")


def _target_kind(target: str) -> tuple[str, bool]:
    """(kind, calibrated) of a --target string without building the backend."""
    kind = target.strip().partition(":")[0]
    calibrated = kind == "ibm" or (kind == "aer-noisy" and "depolarizing" not in target)
    return kind, calibrated


def parse_mitigation(text: str, target: str, protocol: str) -> tuple[str, ...]:
    """The mitigation methods of ``--mitigate`` for this target and protocol (a one-line QRNNError
    for unknown or contradictory specs)."""
    if isinstance(text, str) and not text.strip():  # "" ran unmitigated in a folder named -mit
        raise QRNNError(f"--mitigate is empty; use {MITIGATE_CHOICES}")
    text = (text or "auto").strip().lower()
    _, calibrated = _target_kind(target)
    if text == "auto":
        return ("esp",) if calibrated and protocol == "replay" else ()
    if text in ("none", "off"):
        return ()
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in methods if m not in MITIGATIONS]
    if unknown or not methods:
        raise QRNNError(f"unknown --mitigate {text!r}; use {MITIGATE_CHOICES}")
    if len(set(methods)) != len(methods):
        raise QRNNError(f"--mitigate {text}: a method is repeated")
    if protocol != "replay":
        raise QRNNError(
            f"--mitigate {text} applies to the replay protocol (dynamic readouts are single-shot "
            "mid-circuit bits); use --mitigate none"
        )
    if "esp" in methods and not calibrated:
        raise QRNNError(
            f"--mitigate esp needs calibrated gate errors; {target} has none (use "
            "aer-noisy:<fake backend> or ibm:<backend>, or --mitigate none)"
        )
    return methods


def twirling_enabled(config: Any) -> bool:
    """Whether the Sampler twirls gates and measurements (ibm targets; auto: replay only)."""
    kind, _ = _target_kind(config.target)
    if kind != "ibm":
        return False
    if config.twirling == "auto":
        return config.protocol == "replay"
    return config.twirling == "on"


def check_options(config: Any) -> None:
    """Validate the mitigation and suppression fields of an EvalConfig (one-line QRNNErrors)."""
    from ..backends.layout import LAYOUT_METHODS

    parse_mitigation(config.mitigate, config.target, config.protocol)
    if config.layout not in LAYOUT_METHODS:
        raise QRNNError(f"unknown --layout {config.layout!r}; use {', '.join(LAYOUT_METHODS)}")
    if config.twirling not in TWIRLING:
        raise QRNNError(f"unknown --twirling {config.twirling!r}; use {', '.join(TWIRLING)}")
    if config.dd not in DD_SEQUENCES:
        raise QRNNError(f"unknown --dd {config.dd!r}; use {', '.join(DD_SEQUENCES)}")
    kind, _ = _target_kind(config.target)
    asked = [
        flag
        for flag, on in (("--twirling on", config.twirling == "on"), ("--dd", config.dd != "off"))
        if on
    ]
    if asked and kind != "ibm":
        raise QRNNError(
            f"{' and '.join(asked)} are IBM Sampler options (ibm:<backend> targets); "
            f"{config.target} does not take them"
        )
    if asked and config.protocol == "dynamic":
        raise QRNNError(
            f"{' and '.join(asked)}: IBM runtime refuses dynamical decoupling and twirling on "
            "dynamic circuits; use --protocol replay or drop them"
        )


def eval_name_suffix(config: Any) -> str:
    """Evaluation-folder suffix for non-default mitigation and suppression settings."""
    suffix = ""
    if config.mitigate.strip().lower() != "auto":
        suffix += "-mit" + "+".join(m.strip() for m in config.mitigate.lower().split(","))
    if config.twirling != "auto":
        suffix += f"-twirl{config.twirling}"
    if config.dd != "off":
        suffix += f"-dd{config.dd}"
    return suffix


def sampler_options(config: Any) -> dict:
    """The executor Sampler options of an ibm: evaluation (recorded in the plan and jobs)."""
    twirl = twirling_enabled(config)
    options: dict[str, Any] = {
        "twirling": {"enable_gates": twirl, "enable_measure": twirl},
        "dynamical_decoupling": {"enable": config.dd != "off"},
    }
    if config.dd != "off":
        options["dynamical_decoupling"]["sequence_type"] = config.dd
    return options


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
    optimization_level: int = option(
        3, "preset pass manager level 0..3 (the layout is chosen once per evaluation and pinned)"
    )
    coupling: str = option(
        "cnot",
        "dynamic: cnot (projective: the data qubits are measured directly), weak (the measured "
        "default weak coupling) or a weak-coupling angle in radians",
    )
    corrections: int = option(
        -1, "dynamic: feedforward corrections per step (-1: auto, 8 for cnot and 0 for weak)"
    )
    readout_error: float = option(0.0, "aer-noisy:depolarizing: readout flip probability")
    mitigate: str = option(
        "auto",
        "replay mitigation: auto (esp on aer-noisy:<fake> and ibm:), none, or a comma-separated "
        "subset of esp (in-loop ESP rescale), twins (λ from near-Clifford twins), m3 (readout "
        "mitigation with mthree)",
    )
    twins: int = option(8, "--mitigate twins: near-Clifford twin rows per setting and round")
    layout: str = option(
        "esp", "esp (best-ESP embedding of the widest circuit) or preset (the pass manager's)"
    )
    twirling: str = option(
        "auto", "ibm: Pauli twirling of gates and measurements (auto: on for replay)",
        choices=TWIRLING,
    )  # fmt: skip
    dd: str = option(
        "off", "ibm: dynamical decoupling (not for dynamic circuits)", choices=DD_SEQUENCES
    )

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
            _int(self.corrections) and self.corrections >= -1,
            "corrections",
            f"must be >= 0 (or -1: auto), got {self.corrections}",
        )
        require_finite(self.readout_error, "readout_error")
        require(
            0.0 <= self.readout_error <= 0.5,
            "readout_error",
            f"must be in [0, 0.5], got {self.readout_error}",
        )
        from ..circuits.dynamic import validate_coupling  # Qiskit: when a config is built

        try:
            validate_coupling(self.coupling)
        except ValueError as error:
            raise ConfigError("coupling", f"is invalid: {error}") from None
        require(_int(self.twins) and self.twins >= 1, "twins", f"must be >= 1, got {self.twins}")
        check_options(self)

    def to_dict(self) -> dict:
        return asdict(self)
